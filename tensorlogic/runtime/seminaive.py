"""Semi-naive evaluation of a recursive stratum of Datalog rules (the executor's `semi_naive`).

Round 1 evaluates every rule on the stratum's initial values (its facts and data). Each later round evaluates,
for every rule and every body atom that reads a relation of the stratum, the rule with that atom replaced by
the facts that are new since the previous round (the delta) and the other atoms by the full relations, and
keeps what is not known yet. This is exact for linear and non-linear rules alike
(`Reach(x,z) <- Reach(x,y), Reach(y,z)` gets two evaluations a round, one per atom): a derivation that uses
a fact first derived in round k is found in round k+1, through the atom that reads that fact.

Reported: `rounds`, the rounds that derived new facts (the base round included when it derives any; the
final round that finds nothing new is not counted, as the published benchmark counts do), and `derived`,
the tuples produced by rule bodies before known facts were removed (the work a query's magic set saves;
see `runtime/demand.py`).

A stratum of chain rules (one binary relation, linear rules whose atoms form a path) continues after round 1
on the fast path of `runtime/chains.py`. A stratum of one binary relation whose rules are exit, left-linear
(or right-linear) and transitivity rules (`Reach(x,z) <- Reach(x,y), Reach(y,z)`) is linearized first
(`runtime/linearize.py`): the transitivity rule becomes `Reach(x,z) <- Reach(x,y), B'(y,z)`, B' the given
facts plus the exit rules' results, and the whole fixpoint runs on the fast path; its rounds are those of
the linear program, and the report says `linearized` (`LINEARIZE = False` or `TL_LINEARIZE=0` turns it off).

Join orders are planned once per fixpoint: each rule variant (a rule with one atom read as the delta) takes
the planner's greedy order (`join_project`, by estimated output sizes) in its first delta round, and later
rounds follow it rather than planning again. The known facts of each relation are also a compiled membership
bitmap (`_Seen`) when the kernels are loaded: a round's new facts are its derived tuples that are not set there.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import numpy as np

from ..backends.relations import Relation
from ..ir.graph import Stratum
from ..ir.nodes import Read, reads
from . import chain_kernels, relational
from .chains import run_chains
from .demand import rule_of
from .linearize import full_linearization
from .linearize_both import automaton_closure

if TYPE_CHECKING:
    from .executor import Executor

# Evaluate a one-relation stratum with the transitivity rule as its linear equivalent on the chain fast path
# (runtime/linearize.py); False (or TL_LINEARIZE=0) runs the general loop instead.
LINEARIZE = True
AUTOMATON = "linearized: left- and right-linear rules with transitivity, as a product automaton"


def semi_naive(ex: Executor, st: Stratum, bind: dict[int, dict] | None = None, notes: list[str] | None = None
               ) -> tuple[dict[str, Relation], int, int]:
    """Least fixpoint of the relational stratum `st`: (relation per tensor, rounds, derived tuples).

    `bind` maps an equation id to variable bindings for `relational.evaluate` (a query's constants, or magic
    sets restricting variables). `notes` (when given) gets a line for the report when the stratum was
    linearized."""
    names = set(st.tensors)
    outside = {a.tensor: ex.relation(a.tensor) for e in st.equations for a in reads(e.rhs)
               if a.tensor not in names}  # converted once, not once per round
    full: dict[str, Relation] = {}
    for t in st.tensors:
        v = ex.initial(t)
        full[t] = v if isinstance(v, Relation) else Relation.from_dense(v)
    forms = [ex.forms[e.id] for e in st.equations]
    bind = bind or {}
    if len(st.tensors) == 1 and not bind and _linearize_enabled():
        done = _linearized(ex, st, full, outside, notes)
        if done is not None:
            return done
    derived = 0

    def empty(t: str) -> Relation:
        return Relation.empty(len(full[t].shape), full[t].shape)

    delta = {t: empty(t) for t in st.tensors}
    for f in forms:  # round 1: every rule on the initial values
        new = ex.eval_relational(f, lambda r: full[r.tensor] if r.tensor in names else outside[r.tensor],
                                 bind.get(f.eq.id))
        derived += len(new)
        delta[f.eq.lhs] = delta[f.eq.lhs].union(new.difference(full[f.eq.lhs]))
    for t in st.tensors:
        full[t] = full[t].union(delta[t])
    rounds = 1 if any(len(d) for d in delta.values()) else 0
    if rounds and len(st.tensors) == 1 and not bind:  # chain rules: the fast path of runtime/chains.py
        t = st.tensors[0]
        done = run_chains(ex, st, full[t], delta[t], outside, rounds)
        if done is not None:
            full[t], rounds, more = done
            return full, rounds, derived + more
    plans: dict[tuple[int, int], list] = {}  # (rule, delta atom) -> join order, chosen in its first round
    work = sum(len(r) for r in full.values()) + sum(len(r) for r in outside.values())
    seen = {t: _Seen.of(full[t], work) for t in st.tensors}
    while True:
        if ex.debug:
            sizes = ", ".join(f"{t}: +{len(delta[t])}" for t in st.tensors)
            print(f"[fixpoint] round {rounds}: {sizes}", file=sys.stderr)
        new_delta = {t: empty(t) for t in st.tensors}
        for i, f in enumerate(forms):
            for j, a in enumerate(f.atoms):
                if a.tensor not in names or len(delta[a.tensor]) == 0:
                    continue

                def get(r: Read, a: Read = a, delta: dict = delta) -> Relation:
                    if r is a:
                        return delta[r.tensor]
                    return full[r.tensor] if r.tensor in names else outside[r.tensor]

                new = relational.evaluate(f, get, {v: r[1] for v, r in f.eq.ranges.items()},
                                          ex.prog.tensors[f.eq.lhs].storage_shape, bind.get(f.eq.id),
                                          plans.setdefault((i, j), []))
                derived += len(new)
                s = seen[f.eq.lhs]
                fresh = s.fresh(new) if s is not None else None
                if fresh is None:
                    fresh = new.difference(full[f.eq.lhs])
                new_delta[f.eq.lhs] = new_delta[f.eq.lhs].union(fresh)
        delta = new_delta
        for t, s in seen.items():
            if s is not None and len(delta[t]) and delta[t].shape == full[t].shape:
                delta[t]._excluded = full[t]  # disjoint from the known facts: the union below need not test
        if not any(len(d) for d in delta.values()):
            break
        rounds += 1
        for t in st.tensors:
            full[t] = full[t].union(delta[t])
    return full, rounds, derived


def _linearize_enabled() -> bool:
    return LINEARIZE and os.environ.get("TL_LINEARIZE", "").strip() != "0"


def _linearized(ex: Executor, st: Stratum, full: dict[str, Relation], outside: dict[str, Relation],
                notes: list[str] | None) -> tuple[dict[str, Relation], int, int] | None:
    """The fixpoint of a one-relation stratum with the transitivity rule, evaluated as the equivalent linear
    program on the chain fast path (`runtime/linearize.py`), or None when that does not apply (the caller
    runs the general loop). Round 1 is B': the given facts plus the exit rules' results; the rounds counted
    are those of the linear program (a chain of N nodes: N - 1, where the general loop takes about log2 N)."""
    t = st.tensors[0]
    if len(full[t].shape) != 2:
        return None
    forms = [ex.forms[e.id] for e in st.equations]
    lin = full_linearization(t, [rule_of(f) for f in forms])
    if lin is None:
        return None
    base, derived = full[t], 0
    for i in lin.exits:
        new = ex.eval_relational(forms[i], lambda r: outside[r.tensor])
        derived += len(new)
        base = base.union(new.difference(base))
    if len(base) == 0:
        return {t: base}, 0, derived  # nothing to start from: the linear rules derive nothing either
    rounds = 1
    if lin.first:  # both sides: one closure over a product automaton (runtime/linearize_both.py)
        done = automaton_closure(ex, st, base, outside, lin)
        if done is not None:
            if notes is not None:
                notes.append(AUTOMATON)
            rel, rounds, more = done
            return {t: rel}, rounds, derived + more
    if lin.first:  # ... or, when its key space is too large, Q = L* B' first, then Q in place of B'
        done = run_chains(ex, st, base, base, outside, 1, lin.first_fixpoint())
        if done is None:
            return None
        base, rounds, more = done
        derived += more
    done = run_chains(ex, st, base, base, outside, rounds, lin, base)
    if done is None:
        return None
    if notes is not None:
        notes.append(lin.describe())
    rel, rounds, more = done
    return {t: rel}, rounds, derived + more


class _Seen:
    """The known facts of a stratum relation as a compiled membership bitmap of its key space, so that a
    round's new facts are found (and recorded) in one pass instead of binary searches over the growing
    relation's sorted runs; used when the kernels are loaded or the stratum is large enough to load them
    (`chain_kernels.kernels`) and the key space has at most 2**29 cells (a 64 MB bitmap)."""

    def __init__(self, kern, rel: Relation) -> None:
        self.kern = kern
        self.shape = rel.shape
        self.words = np.zeros((int(np.prod(rel.shape)) + 63) // 64, dtype=np.uint64)
        kern.set_bits(self.words, rel._get_keys())

    @classmethod
    def of(cls, rel: Relation, work: int) -> _Seen | None:
        ext = int(np.prod(rel.shape)) if rel.shape else 1
        if not rel.shape or ext > chain_kernels._BIG_BITMAP:
            return None
        kern = chain_kernels.kernels(ext, len(rel), work)
        return cls(kern, rel) if kern is not None and rel._get_keys() is not None else None

    def fresh(self, new: Relation) -> Relation | None:
        """The facts of `new` not known yet, now known; None when `new` has another shape."""
        keys = new._get_keys() if new.shape == self.shape else None
        if keys is None:
            return None
        return Relation._make(self.shape, keys=self.kern.take_new(self.words, keys.astype(np.int64, copy=False)))

