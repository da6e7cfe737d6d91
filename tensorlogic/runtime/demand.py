"""Demand-driven evaluation of queries with constants: magic sets for one recursive relation.

A query `Reach(17, y)?` needs only the facts of `Reach` whose first position is 17. For a relation computed
by one relational stratum, each constant position k of the query gets a *magic set* M_k: the values that
position can take in any fact a derivation of an answer uses. It is the least set with

    M_k(c)                                        (the query's constant)
    M_k(w) <- M_k(v), A1, ..., An                 for every rule  Head(.., v, ..) <- .., Head(.., w, ..), ..

where v is the head's variable at position k, w the recursive atom's term at position k, and A1..An the
rule's positive atoms over relations computed before the stratum (the sideways information a rule passes
from its head to its recursive atom). M_k is a small semi-naive fixpoint of its own. The stratum is then
evaluated with every rule restricted to v in M_k (an extra unary atom in its body; `relational.evaluate`'s
`bind`), and the answer is the restricted relation filtered by the constant. Soundness: a rule instance
whose head has v in M_k derives its recursive atoms with w in M_k by construction, so every fact the
answer's derivations need is derived.

When the recursion passes the constant's position through unchanged (`Reach(x,z) <- Reach(x,y), Edge(y,z)`
keeps x), M_k is just {c} and the evaluation is a single-source search; when it does not
(`Reach(x,z) <- Edge(x,y), Reach(y,z)`), M_k is the set of nodes reachable from c, and the restricted
closure is still far smaller than the full one. A position gets no magic set (the query falls back to the
full relation, filtered) when a head writes a constant or an expression there, or when w is bound by no
earlier-stratum atom together with v (e.g. `Reach(y,z)` in the non-linear `Reach(x,y), Reach(y,z)`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backends.relations import Relation, join_project
from ..ir.graph import strata
from ..ir.nodes import IConst, IVar, Read, reads
from .relational import _operand

if TYPE_CHECKING:
    from .executor import Executor


def magic_set(ex: Executor, name: str, k: int, c: int, equations: list, outside: dict[str, Relation]
              ) -> tuple[Relation, dict[int, str]] | None:
    """(M_k, head variable at k per equation id) for the relation `name` queried with `c` at position `k`,
    or None when position k cannot be restricted."""
    extent = ex.prog.tensors[name].storage_shape[k]
    heads: dict[int, str] = {}
    steps: list[tuple[list[tuple[Relation, tuple[str, ...]]], str, str | int]] = []
    for e in equations:
        p = e.lhs_pos[k].expr
        if not isinstance(p, IVar):
            return None
        v = heads[e.id] = p.name
        form = ex.forms[e.id]
        base = []
        for a in form.atoms:
            if a.tensor in outside:
                rel, names = _operand(outside[a.tensor], a)
                if names:
                    base.append((rel, names))
        for a in form.atoms:
            if a.tensor != name:
                continue
            w = a.pos[k].expr
            if isinstance(w, IConst):
                steps.append(([], v, w.value))
            elif w.name == v:
                continue  # the position passes through unchanged: demand stays the same
            else:
                used = base
                if not any(w.name in ns for _, ns in used):
                    return None  # w is not bound by earlier-stratum atoms: everything may be demanded
                steps.append((used, v, w.name))
    seed = Relation.from_tuples([(c,)], 1, (extent,))
    magic, delta = seed, seed
    while len(delta):
        new = Relation.empty(1, (extent,))
        for used, v, w in steps:
            if isinstance(w, int):
                got = Relation.from_tuples([(w,)], 1, (extent,)) if 0 <= w < extent else new
            else:
                sizes = {v: extent, w: extent}
                got = join_project([(delta, (v,)), *used], (w,), sizes)
                got = got if got.shape == (extent,) else got.with_shape((extent,))
            new = new.union(got)
        delta = new.difference(magic)
        magic = magic.union(delta)
    return magic, heads


def demand_relation(ex: Executor, r: Read) -> Relation | None:
    """The relation `r.tensor` restricted by magic sets for `r`'s constants (all its facts that match them,
    and possibly more), computed without the full relation; None when no constant position can be
    restricted or the relation is not computed by a single relational stratum."""
    name = r.tensor
    if name in ex.computed:
        return None
    consts = {k: p.expr.value for k, p in enumerate(r.pos) if isinstance(p.expr, IConst)}
    if not consts:
        return None
    sts = strata(ex.prog.equations, {name})
    if not sts or name not in sts[-1].tensors:
        return None
    st = sts[-1]
    if st.tensors != [name] or not st.recursive or any(ex.forms.get(e.id) is None for e in st.equations):
        return None
    if not ex.is_boolean(name):
        return None
    ex.ensure({x.tensor for e in st.equations for x in reads(e.rhs)} - {name})
    outside = {a.tensor: ex.relation(a.tensor) for e in st.equations for a in reads(e.rhs) if a.tensor != name}
    bind: dict[int, dict] = {}
    for k, c in consts.items():
        if not 0 <= c < ex.prog.tensors[name].storage_shape[k]:
            continue
        got = magic_set(ex, name, k, c, st.equations, outside)
        if got is None:
            continue
        magic, heads = got
        for eid, v in heads.items():
            b = bind.setdefault(eid, {})
            b[v] = c if len(magic) == 1 and _invariant(ex, st, k) else magic
    if not bind:
        return None
    saved = ex.values[name]
    ex.semi_naive(st, bind)
    result = ex.values[name]
    ex.values[name] = saved
    ex.report.strata[-1].kind = "semi-naive (demand-driven: magic sets for the query's constants)"
    return result if isinstance(result, Relation) else Relation.from_dense(result)


def _invariant(ex: Executor, st, k: int) -> bool:
    """Whether every recursive atom carries the head's variable at position k (then binding is selection)."""
    for e in st.equations:
        v = e.lhs_pos[k].expr
        for a in ex.forms[e.id].atoms:
            if a.tensor in st.tensors and a.pos[k].expr != v:
                return False
    return True
