"""Demand-driven evaluation of queries with constants: magic sets with sideways information passing.

A query `Reach(17, y)?` on a program that has not computed `Reach` needs only the facts of `Reach` whose
first position is 17, and the facts those depend on. `demand_relation` reads the program's Boolean
relational rules (the equations `runtime/relational.py` evaluates as conjunctive queries) as plain rules
(`demand_rules.Rule`), rewrites the ones the query needs with magic sets (`demand_magic.rewrite`: one
adorned copy and one magic predicate per relation and binding pattern, the chain linearization first for a
single recursive binary relation) and evaluates the rewritten program semi-naively
(`demand_rules.fixpoint`). The result holds every fact of the relation matching the query's constants
(and possibly some more true facts); `runtime/queries.py` filters it by the constants.

What is rewritten: a relation whose equations all have a relational form, that is Boolean, not yet
computed, and whose stratum the executor would evaluate relationally (semi-naive or once), including
non-linear and mutually recursive strata and relations computed from them. Everything else a rewritten rule
reads (data, numeric tensors, negated relations, relations asked with no bound position) is computed in full
by the executor first. A relation's facts given as data enter through an extra rule `P(v..) <- P@init(v..)`.
When the rewriting does not apply, `demand_relation` returns None and the query falls back to the full
relation, filtered.

The report gets one stratum (`semi-naive (demand-driven: magic sets ...)`) whose `derived` counts the tuples
produced by the rewritten rules' bodies (magic rules included), and whose `rounds` sums the rounds of the
rewritten program's components.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..backends.relations import Relation
from ..ir.graph import strata
from ..ir.nodes import IConst, IVar, Read
from .demand_magic import Unsupported, rewrite
from .demand_rules import Atom, Rule, Term, UnsafeRule, fixpoint

if TYPE_CHECKING:
    from .executor import Executor, StratumReport

LINEARIZE = True  # the chain linearization of demand_magic (tests turn it off to exercise plain magic sets)
KIND = "semi-naive (demand-driven: magic sets for the query's constants)"


def _term(e) -> Term:
    return e.name if isinstance(e, IVar) else int(e.value)


def rule_of(form) -> Rule:
    """A relational form (`relational.RelationalForm`) as a plain rule."""
    eq = form.eq
    return Rule(Atom(eq.lhs, tuple(_term(p.expr) for p in eq.lhs_pos)),
                tuple(Atom(a.tensor, tuple(_term(p.expr) for p in a.pos)) for a in form.atoms),
                tuple((c.op, _term(c.left), _term(c.right)) for c in form.compares),
                tuple(Atom(a.tensor, tuple(_term(p.expr) for p in a.pos)) for a in form.negated))


class _Program:
    """The executor's program seen as rules: which relations may be rewritten, their rules and data."""

    def __init__(self, ex: Executor):
        self.ex = ex
        key = ("demand", "strata")
        if key not in ex._strata:
            by_tensor = {}
            for st in strata(ex.prog.equations):
                for t in st.tensors:
                    by_tensor[t] = st
            ex._strata[key] = by_tensor
        self.stratum = ex._strata[key]
        self.cache: dict[str, list[Rule] | None] = {}
        self.init: dict[str, Relation] = {}

    def relational(self, name: str) -> bool:
        """Whether the executor evaluates the relation's stratum relationally (semi-naive, or once)."""
        ex = self.ex
        st = self.stratum.get(name)
        if st is None or name in ex.computed or not ex.is_boolean(name):
            return False
        if any(ex.prog.tensors[t].virtual_axis is not None for t in st.tensors):
            return False
        eqs = st.equations if st.recursive else [e for e in st.equations if e.lhs == name]
        if any(e.virtual_var is not None or ex.forms.get(e.id) is None for e in eqs):
            return False
        return all(ex.is_boolean(t) for t in st.tensors)

    def rules_of(self, name: str) -> list[Rule] | None:
        """The relation's rules (its data as a rule reading `name@init`), or None if it is read in full."""
        if name not in self.cache:
            rules = None
            if "^" not in name and "@" not in name and "~" not in name and self.relational(name):
                ex = self.ex
                rules = [rule_of(ex.forms[e.id]) for e in ex.prog.equations if e.lhs == name]
                init = ex.initial(name)
                init = init if isinstance(init, Relation) else Relation.from_dense(init)
                if len(init):
                    self.init[name + "@init"] = init
                    vs = tuple(f"%v{k}" for k in range(init.arity))
                    rules.append(Rule(Atom(name, vs), (Atom(name + "@init", vs),)))
            self.cache[name] = rules
        return self.cache[name]

    def shape_of(self, name: str) -> tuple[int, ...]:
        return tuple(self.ex.prog.tensors[name].storage_shape)

    def outside(self, name: str) -> Relation:
        if name in self.init:
            return self.init[name]
        self.ex.ensure({name})
        return self.ex.relation(name)


def demand_relation(ex: Executor, r: Read) -> Relation | None:
    """The relation `r.tensor` restricted to what the query `r` (with constants) needs: every fact that
    matches the constants, and possibly more true facts, computed without the full relation; None when the
    rewriting does not apply (the caller computes the full relation and filters it)."""
    name = r.tensor
    if name in ex.computed or not any(isinstance(p.expr, IConst) for p in r.pos):
        return None
    if not all(isinstance(p.expr, IVar | IConst) for p in r.pos):
        return None
    prog = _Program(ex)
    if prog.rules_of(name) is None:
        return None
    shape = prog.shape_of(name)
    consts = tuple(int(p.expr.value) for p in r.pos if isinstance(p.expr, IConst))
    adorn = "".join("b" if isinstance(p.expr, IConst) else "f" for p in r.pos)
    bound = [k for k, x in enumerate(adorn) if x == "b"]
    if any(not 0 <= c < shape[k] for c, k in zip(consts, bound)):
        return Relation.empty(len(shape), shape)  # no fact can hold a constant outside the extent
    try:
        rew = rewrite(name, adorn, consts, prog.rules_of, prog.shape_of, linearize=LINEARIZE)
    except Unsupported:
        return None
    if ex.debug:
        print(f"[demand] {name}^{adorn}{consts}: " + "\n  ".join(map(str, rew.rules)), file=sys.stderr)
    full = {p for p in rew.full if p not in prog.init}
    ex.ensure(full)
    seeds = {m: Relation.from_tuples([c], len(c), rew.shapes[m]) for m, c in rew.seeds.items()}
    debug = (lambda s: print(s, file=sys.stderr)) if ex.debug else None
    try:
        res = fixpoint(rew.rules, seeds, rew.shapes, prog.outside, debug)
    except UnsafeRule:
        return None
    ex.report.strata.append(_report([name], res.rounds, res.derived))
    out = res.values.get(rew.answer)
    return out if out is not None else Relation.empty(len(shape), shape)


def _report(tensors: list[str], rounds: int, derived: int) -> StratumReport:
    from .executor import StratumReport

    return StratumReport(tensors, KIND, rounds, "fixpoint", derived=derived)
