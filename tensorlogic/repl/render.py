"""Text the REPL shows about tensors: `:show NAME` (type, domains, shape, role and a summary of the value).

Relations list how many tuples hold and the first ones with their symbols; numeric tensors give min, max,
mean and the number of nonzeros, and the values themselves when the tensor is small.
"""

from __future__ import annotations

import numpy as np

from ..api import Program

MAX_ROWS = 12  # tuples of a relation listed by :show
MAX_CELLS = 64  # a numeric tensor with at most this many cells is printed whole


def _domain_text(prog: Program, name: str, k: int) -> str:
    a = prog.analyzed
    dom = a.domain_of(name, k)
    size = a.tensors[name].shape[k]
    if dom.symbolic:
        syms = dom.symbols or []
        shown = ", ".join(syms[:6]) + (", ..." if len(syms) > 6 else "")
        return f"{dom.name} ({len(syms)} symbol{'s' if len(syms) != 1 else ''}: {shown})"
    return f"{dom.name} (0..{size - 1})" if size else f"{dom.name} (empty)"


def _role(prog: Program, name: str) -> str:
    t = prog.analyzed.tensors[name]
    n = sum(1 for e in prog.analyzed.equations if e.lhs == name)
    eqs = f"computed by {n} equation{'s' if n != 1 else ''}"
    if t.has_data and t.has_equations:
        return f"data, plus {eqs}"
    if t.has_data:
        return "data"
    if t.learnable:
        return "learnable parameter (random initial values)"
    return eqs if t.has_equations else "declared"


def describe(prog: Program, name: str) -> str:
    """What `:show NAME` prints."""
    a = prog.analyzed
    t = a.tensors[name]
    kind = "relation (Boolean)" if t.boolean else "real tensor"
    if t.arity == 0:
        kind = "Boolean scalar" if t.boolean else "real scalar"
    lines = [f"{name}: {kind}"]
    if t.arity:
        doms = [_domain_text(prog, name, k) + (" (virtual)" if k == t.virtual_axis else "") for k in range(t.arity)]
        lines.append("  domains: " + "; ".join(doms))
        lines.append("  shape:   " + " x ".join(str(n) for n in t.shape)
                     + (f" (stored {' x '.join(map(str, t.storage_shape)) or 'scalar'})" if t.virtual_axis is not None
                        else ""))
    lines.append(f"  role:    {_role(prog, name)}")
    ex = prog.executor
    ex.ensure({name})
    if t.boolean and t.virtual_axis is None and t.arity:
        lines += _relation_summary(prog, name)
    else:
        lines += _numeric_summary(np.asarray(ex.dense(name), dtype=np.float64))
    return "\n".join(lines)


def _relation_summary(prog: Program, name: str) -> list[str]:
    t = prog.analyzed.tensors[name]
    rel = prog.executor.relation(name)
    total = int(np.prod(t.shape)) if t.shape else 1
    lines = [f"  value:   {len(rel)} of {total} tuples hold"]
    doms = [prog.analyzed.domain_of(name, k) for k in range(t.arity)]
    rows = [[str(d.label(int(v))) for d, v in zip(doms, row)] for row in rel.cols[:MAX_ROWS]]
    if rows:
        widths = [max(len(r[k]) for r in rows) for k in range(t.arity)]
        lines += ["    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        if len(rel) > MAX_ROWS:
            lines.append(f"    ... ({len(rel) - MAX_ROWS} more)")
    return lines


def _numeric_summary(arr: np.ndarray) -> list[str]:
    if arr.size == 0:
        return ["  value:   empty"]
    if arr.ndim == 0:
        return [f"  value:   {float(arr):.6g}"]
    nz = int(np.count_nonzero(arr))
    lines = [f"  value:   min {arr.min():.6g}, max {arr.max():.6g}, mean {arr.mean():.6g}, "
             f"{nz} of {arr.size} nonzero"]
    if arr.size <= MAX_CELLS:
        with np.printoptions(precision=4, suppress=True, linewidth=100):
            lines += ["    " + line for line in str(arr).splitlines()]
    return lines
