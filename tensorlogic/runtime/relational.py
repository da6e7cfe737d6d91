"""Boolean equations as relational queries: sparse joins over integer tuples.

An equation whose left side is a relation and whose right side is a join of Boolean reads (plain variables
and constants), built-in comparisons and negated reads is a conjunctive query. `RelationalForm` recognises
it once; `evaluate` runs it with `backends.relations.join_project` (sort-merge or sparse-matrix joins, in
the planner's greedy order), filters comparisons, anti-joins negations and projects onto the head with
deduplication. Semi-naive evaluation substitutes one body atom's relation with its delta.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..backends.relations import Relation, join_project
from ..ir.nodes import Compare, Equation, IConst, IVar, Join, Node, Not, Read, Reduce

_CMP = {"!=": np.not_equal, "==": np.equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
        ">=": np.greater_equal}


@dataclass
class RelationalForm:
    """An equation seen as `head :- atoms, comparisons, not negated`."""

    eq: Equation
    atoms: list[Read]
    compares: list[Compare]
    negated: list[Read]


def _plain(r: Read) -> bool:
    return all(isinstance(p.expr, IVar | IConst) and not p.virtual for p in r.pos)


def relational_form(eq: Equation, is_boolean: Callable[[str], bool]) -> RelationalForm | None:
    """The equation as a conjunctive query, or None when it needs dense evaluation."""
    if not eq.boolean or eq.op != "+" or eq.virtual_var is not None:
        return None
    if not all(isinstance(p.expr, IVar | IConst) and not p.virtual for p in eq.lhs_pos):
        return None
    body: Node = eq.rhs.operand if isinstance(eq.rhs, Reduce) else eq.rhs
    factors = body.factors if isinstance(body, Join) and not any(body.divides) else [body]
    atoms, compares, negated = [], [], []
    for f in factors:
        if isinstance(f, Read) and _plain(f) and is_boolean(f.tensor):
            atoms.append(f)
        elif isinstance(f, Compare) and all(isinstance(x, IVar | IConst) for x in (f.left, f.right)):
            compares.append(f)
        elif isinstance(f, Not) and _plain(f.operand) and is_boolean(f.operand.tensor):
            negated.append(f.operand)
        else:
            return None
    pos_vars = {p.expr.name for a in atoms for p in a.pos if isinstance(p.expr, IVar)}
    if not pos_vars:
        return None
    needed = {p.expr.name for p in eq.lhs_pos if isinstance(p.expr, IVar)}
    needed |= {x.name for c in compares for x in (c.left, c.right) if isinstance(x, IVar)}
    needed |= {p.expr.name for a in negated for p in a.pos if isinstance(p.expr, IVar)}
    if not needed <= pos_vars:
        return None  # an unsafe rule: some variable is bound by no positive atom
    return RelationalForm(eq, atoms, compares, negated)


def _operand(rel: Relation, r: Read) -> tuple[Relation, tuple[str, ...]]:
    """Select the read's constants, keep its variable columns."""
    for k, p in enumerate(r.pos):
        if isinstance(p.expr, IConst):
            if not 0 <= p.expr.value < rel.shape[k]:
                return Relation.empty(0, ()), ()
            rel = rel.select(k, p.expr.value)
    keep = [k for k, p in enumerate(r.pos) if isinstance(p.expr, IVar)]
    names = tuple(r.pos[k].expr.name for k in keep)
    if len(keep) == len(r.pos):
        return rel, names
    cols = rel.cols[:, keep]
    return Relation.from_tuples(cols, len(keep), tuple(rel.shape[k] for k in keep)), names


def evaluate(form: RelationalForm, get: Callable[[Read], Relation], sizes: dict[str, int],
             head_shape: tuple[int, ...], bind: dict[str, int | Relation] | None = None,
             plan: list | None = None) -> Relation:
    """Tuples of the head derived by one evaluation of the rule body.

    `get(read)` gives each atom's relation (the full one, or a delta in semi-naive rounds); `bind` fixes
    variables to values (a query's constants pushed into the rule), or, for a unary `Relation`, restricts a
    variable to its members (a magic set: see `runtime/demand.py`). `plan`, a list, is the join order: when
    empty it receives the order chosen, else it is followed (semi-naive rounds plan each rule variant once).
    """
    eq = form.eq
    operands = []
    restrict = {v: r for v, r in (bind or {}).items() if isinstance(r, Relation)}
    bind = {v: c for v, c in (bind or {}).items() if not isinstance(c, Relation)}
    for v, r in restrict.items():
        operands.append((r, (v,)))
    for a in form.atoms:
        rel, names = _operand(get(a), a)
        if not names and len(rel) == 0:
            return Relation.empty(len(head_shape), head_shape)
        if not names:
            continue  # a ground atom that holds: no constraint
        if bind:
            for k, v in enumerate(names):
                if v in bind:
                    rel = rel.select(k, bind[v])
        operands.append((rel, names))
    if any(len(r) == 0 for r, _ in operands):
        return Relation.empty(len(head_shape), head_shape)
    out_vars: list[str] = []
    for p in eq.lhs_pos:
        if isinstance(p.expr, IVar) and p.expr.name not in out_vars:
            out_vars.append(p.expr.name)
    for c in form.compares:
        for x in (c.left, c.right):
            if isinstance(x, IVar) and x.name not in out_vars:
                out_vars.append(x.name)
    for a in form.negated:
        for p in a.pos:
            if isinstance(p.expr, IVar) and p.expr.name not in out_vars:
                out_vars.append(p.expr.name)
    # variables range over what the positive atoms hold (Datalog semantics: a relation that a rule with a
    # constant head extended past another's extent is read in full); head rows outside its shape are dropped
    res = join_project(operands, tuple(out_vars), {}, order=plan or None, record=plan)
    if (not form.compares and not form.negated and res.shape == tuple(head_shape)
            and [p.expr.name if isinstance(p.expr, IVar) else None for p in eq.lhs_pos] == out_vars):
        return res  # already sorted, unique and within the head's shape
    cols = res.cols
    if form.compares or form.negated:
        mask = np.ones(len(cols), dtype=bool)
        for c in form.compares:
            a = cols[:, out_vars.index(c.left.name)] if isinstance(c.left, IVar) else c.left.value
            b = cols[:, out_vars.index(c.right.name)] if isinstance(c.right, IVar) else c.right.value
            mask &= _CMP[c.op](a, b)
        for a in form.negated:
            rows = np.stack([cols[:, out_vars.index(p.expr.name)] if isinstance(p.expr, IVar)
                             else np.full(len(cols), p.expr.value) for p in a.pos], axis=1) if a.pos else None
            if rows is not None and len(rows):
                mask &= ~get(a).contains(rows)
        cols = cols[mask]
    head_cols = [cols[:, out_vars.index(p.expr.name)] if isinstance(p.expr, IVar)
                 else np.full(len(cols), p.expr.value, dtype=np.int64) for p in eq.lhs_pos]
    if not head_cols:
        return Relation.from_tuples(np.zeros((min(1, len(cols)), 0), np.int64), 0, ())
    rows = np.stack(head_cols, axis=1) if len(cols) else np.zeros((0, len(head_cols)), np.int64)
    if len(rows):
        inside = np.all(rows < np.asarray(head_shape, dtype=np.int64), axis=1)
        rows = rows if inside.all() else rows[inside]
    return Relation.from_tuples(rows, len(head_cols), head_shape)


def count_form(eq: Equation, is_boolean: Callable[[str], bool],
               is_weighted: Callable[[str], bool] | None = None) -> RelationalForm | None:
    """A numeric equation that sums a join of relations (`N[x] = Reach(x,y)`, `N = Edge(x,y) Edge(y,z)`) as
    a conjunctive query whose answers are counted, or None. Its value at a head cell is the number of
    assignments of the body's variables that satisfy the body (projection as a segment sum). Atoms may also
    read numeric tensors for which `is_weighted` holds (weighted relations, stored sparse): each assignment
    then counts the product of their values (a weighted segment sum)."""
    if eq.boolean or eq.op != "+" or eq.virtual_var is not None:
        return None
    if not all(isinstance(p.expr, IVar) and not p.virtual for p in eq.lhs_pos):
        return None
    def flat(n: Node) -> list[Node] | None:  # sums of products of 0/1 reads: where each sum sits is moot
        if isinstance(n, Reduce):
            return flat(n.operand)
        if isinstance(n, Join):
            if any(n.divides):
                return None
            out = []
            for f in n.factors:
                got = flat(f)
                if got is None:
                    return None
                out += got
            return out
        return [n]

    factors = flat(eq.rhs)
    if factors is None:
        return None
    rhs = factors[0] if len(factors) == 1 else Join(factors, [False] * len(factors))
    atom = is_boolean if is_weighted is None else (lambda n: is_boolean(n) or is_weighted(n))
    form = relational_form(replace(eq, boolean=True, rhs=rhs), atom)
    if form is None or form.negated:
        return None
    return RelationalForm(eq, form.atoms, form.compares, form.negated)


def count(form: RelationalForm, get: Callable[[Read], Relation], sizes: dict[str, int],
          head_shape: tuple[int, ...], weight: Callable[[Read], Any] | None = None) -> np.ndarray:
    """Dense head of a counting form (see `count_form`): the satisfying assignments of all body variables
    are joined without projection, then counted per head cell with a bincount of their head keys. `weight(a)`
    gives an atom's values (a `SparseTensor`: `get` gives its support) or None for a 0/1 relation; each
    assignment then counts the product of its atoms' values at its cells."""
    eq = form.eq
    head = [p.expr.name for p in eq.lhs_pos]
    body_vars: list[str] = list(dict.fromkeys(head))
    for a in form.atoms:
        for p in a.pos:
            if isinstance(p.expr, IVar) and p.expr.name not in body_vars:
                body_vars.append(p.expr.name)
    operands = []
    for a in form.atoms:
        rel, names = _operand(get(a), a)
        if not names and len(rel) == 0:
            return np.zeros(head_shape)
        if names:
            operands.append((rel, names))
    weighted = [(a, w) for a in form.atoms if weight is not None and (w := weight(a)) is not None]
    if (not head and not form.compares and not weighted and len(operands) == 1
            and len(set(operands[0][1])) == operands[0][0].arity):
        return np.array(float(len(operands[0][0])))  # a scalar count of one relation: its size
    w = None
    if (len(form.atoms) == 1 and len(weighted) == 1 and len(operands) == 1 and not form.compares
            and all(isinstance(p.expr, IVar) for p in form.atoms[0].pos)
            and len(set(operands[0][1])) == operands[0][0].arity):
        # one weighted atom of distinct variables (`Out[x] = W(x,y)`): its own entries, values aligned
        names, values = operands[0][1], weighted[0][1]
        cols = values.coords[:, [names.index(v) for v in body_vars]]
        w, weighted = values.values, []
    else:
        cols = join_project(operands, tuple(body_vars), sizes).cols
    if form.compares:
        mask = np.ones(len(cols), dtype=bool)
        for c in form.compares:
            a = cols[:, body_vars.index(c.left.name)] if isinstance(c.left, IVar) else c.left.value
            b = cols[:, body_vars.index(c.right.name)] if isinstance(c.right, IVar) else c.right.value
            mask &= _CMP[c.op](a, b)
        cols = cols[mask]
    for a, values in weighted:  # each assignment's weight: the product of its weighted atoms' values
        at = np.stack([cols[:, body_vars.index(p.expr.name)] if isinstance(p.expr, IVar)
                       else np.full(len(cols), p.expr.value, dtype=np.int64) for p in a.pos], axis=1)
        got = values.lookup(at.reshape(len(cols), len(a.pos)))
        w = got if w is None else w * got
    if not head:
        return np.array(float(len(cols)) if w is None else float(w.sum()))
    idx = [cols[:, body_vars.index(v)] for v in head]
    inside = np.ones(len(cols), dtype=bool)
    for k, n in enumerate(head_shape):
        inside &= idx[k] < n
    flat = np.ravel_multi_index(tuple(i[inside] for i in idx), head_shape)
    if w is not None and not inside.all():
        w = w[inside]
    return np.bincount(flat, weights=w, minlength=int(np.prod(head_shape))).astype(np.float64).reshape(head_shape)
