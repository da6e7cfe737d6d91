"""Answering queries, and turning tensors into Python values, JSON and tables.

A query's free variables (in order of first appearance) are the answer's columns. A Boolean query with
free variables answers the sorted list of tuples of constants that hold; without free variables, true or
false. A numeric query answers a number, or nested lists over its free variables (dense, in index order).
Constants in a query select rows before anything is joined: a relational query reads only the matching
rows, and a relation defined by recursive rules is computed demand-driven, only the facts the query's
constants can need (magic sets, see `runtime/demand.py`).
"""

from __future__ import annotations

import numpy as np

from ..ir.nodes import IConst, IVar, QueryIR, Read, reads
from .demand import demand_relation
from .dense import DenseEvaluator, align
from .executor import Executor


def _labels(ex: Executor, q: QueryIR) -> dict[str, callable]:
    """For each free variable, a function from position to constant (symbol or integer)."""
    out = {}
    for r in reads(q.expr):
        for k, p in enumerate(r.pos):
            if isinstance(p.expr, IVar) and p.expr.name not in out:
                out[p.expr.name] = ex.prog.domain_of(r.tensor, k).label
    return out


def _sort_key(row: tuple) -> tuple:
    return tuple((0, v, "") if isinstance(v, int) else (1, 0, str(v)) for v in row)


def answer(ex: Executor, q: QueryIR) -> object:
    """The query's answer as plain Python values (the `value` of `tl run --json`)."""
    rs = reads(q.expr)
    labels = _labels(ex, q)
    single = isinstance(q.expr, Read) and all(isinstance(p.expr, IVar | IConst) for p in q.expr.pos)
    if q.boolean and single:
        r = q.expr
        names = [p.expr.name for p in r.pos if isinstance(p.expr, IVar)]
        if len(names) == len(set(names)):
            rel = demand_relation(ex, r)
            if rel is None:
                ex.ensure({r.tensor})
                rel = ex.relation(r.tensor)
            for k, p in enumerate(r.pos):
                if isinstance(p.expr, IConst):
                    if not 0 <= p.expr.value < rel.shape[k]:
                        return [] if names else False
                    rel = rel.select(k, p.expr.value)
            if not names:
                return len(rel) > 0
            keep = [k for k, p in enumerate(r.pos) if isinstance(p.expr, IVar)]
            cols = np.unique(rel.cols[:, keep], axis=0) if len(rel) else np.zeros((0, len(keep)), np.int64)
            rows = [tuple(labels[n](int(v)) for n, v in zip(names, row)) for row in cols]
            return [list(t) for t in sorted(rows, key=_sort_key)]
    ex.ensure({r.tensor for r in rs})
    ev = DenseEvaluator(ex.backend, ex.read_current, q.ranges, ex.functions, q.text)
    res = ev.eval(q.expr)
    order = tuple(q.free)
    shape = tuple(q.ranges[v][1] - q.ranges[v][0] for v in order)
    arr = np.broadcast_to(align(res, order), shape)
    if q.boolean:
        if not order:
            return bool(arr > 0)
        idx = np.argwhere(arr > 0)
        rows = [tuple(labels.get(v, int)(int(i) + q.ranges[v][0]) for v, i in zip(order, row)) for row in idx]
        return [list(t) for t in sorted(rows, key=_sort_key)]
    if not order:
        return float(arr)
    return np.asarray(arr, dtype=np.float64).tolist()


def format_answer(q: QueryIR, value: object, ex: Executor) -> str:
    """A readable rendering of an answer for the terminal."""
    if isinstance(value, bool):
        return f"{q.text}? {'true' if value else 'false'}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:  # counts print exactly
            return f"{q.text} = {int(value)}"
        return f"{q.text} = {value:.6g}"
    if q.boolean:
        rows = value or []
        header = list(q.free)
        if not rows:
            return f"{q.text}? no answers"
        cells = [[str(c) for c in row] for row in rows]
        widths = [max(len(h), *(len(r[k]) for r in cells)) for k, h in enumerate(header)]
        lines = [f"{q.text}? {len(rows)} answer{'s' if len(rows) != 1 else ''}",
                 "  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                 "  " + "  ".join("-" * w for w in widths)]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
        return "\n".join(lines)
    arr = np.asarray(value, dtype=np.float64)
    labels = _labels(ex, q)
    if arr.ndim == 1:
        v = q.free[0]
        lo = q.ranges[v][0]
        names = [str(labels.get(v, int)(i + lo)) for i in range(arr.shape[0])]
        w = max([len(v)] + [len(n) for n in names])
        lines = [f"{q.text} =", f"  {v.ljust(w)}  value", f"  {'-' * w}  -----"]
        lines += [f"  {n.ljust(w)}  {x:.6g}" for n, x in zip(names, arr)]
        return "\n".join(lines)
    if arr.ndim == 2 and arr.shape[1] <= 12:
        r, c = q.free
        rows = [str(labels.get(r, int)(i + q.ranges[r][0])) for i in range(arr.shape[0])]
        cols = [str(labels.get(c, int)(j + q.ranges[c][0])) for j in range(arr.shape[1])]
        body = [[f"{x:.6g}" for x in row] for row in arr]
        w0 = max([len(f"{r}\\{c}")] + [len(x) for x in rows])
        ws = [max(len(cols[j]), *(len(b[j]) for b in body)) if body else len(cols[j]) for j in range(len(cols))]
        lines = [f"{q.text} =", "  " + f"{r}\\{c}".ljust(w0) + "  " + "  ".join(x.rjust(w) for x, w in zip(cols, ws))]
        lines += ["  " + name.ljust(w0) + "  " + "  ".join(x.rjust(w) for x, w in zip(b, ws))
                  for name, b in zip(rows, body)]
        return "\n".join(lines)
    with np.printoptions(precision=6, suppress=True, linewidth=110):
        return f"{q.text} =  (indices {', '.join(q.free)})\n{arr}"
