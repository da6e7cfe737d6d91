"""Datalog rules as plain data, and their semi-naive least fixpoint: the evaluator of rewritten programs.

The magic-set rewriting of `runtime/demand_magic.py` produces rules over predicates that are not tensors of
the program (adorned relations `Reach^bf`, magic sets `m^Reach^bf`, helper relations of the chain
linearization), so it works on its own small rule type instead of the IR: an `Atom` is a predicate name and
a tuple of terms (a variable name, or an integer constant), a `Rule` a head atom, positive body atoms,
built-in comparisons and negated atoms.

`fixpoint` evaluates a rule set bottom-up, one strongly connected component of its predicate dependency
graph after another (networkx, in topological order), each component semi-naively as in
`runtime/seminaive.py`: round 1 evaluates every rule on the current relations, each later round every rule
once per body atom of the component with that atom replaced by the previous round's new facts. A rule is
evaluated with `join_project` (the sort-merge / sparse-product joins of the main engine), comparisons are
filters and negated atoms anti-joins, exactly as `runtime/relational.py` evaluates a program's rules.
Predicates that no rule defines are read through a callback (the program's own relations: data, or
relations computed in full).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np

from ..backends.relations import Relation, join_project
from .relational import _CMP

Term = str | int  # a variable name, or an integer constant


@dataclass(frozen=True)
class Atom:
    """`pred(args)`: a predicate applied to variables (str) and integer constants."""

    pred: str
    args: tuple[Term, ...]

    def vars(self) -> list[str]:
        return [a for a in self.args if isinstance(a, str)]

    def __str__(self) -> str:
        return f"{self.pred}({', '.join(map(str, self.args))})"


@dataclass(frozen=True)
class Rule:
    """`head <- body, compares, not negated` (compares are (op, left, right) with op one of != == < <= > >=)."""

    head: Atom
    body: tuple[Atom, ...]
    compares: tuple[tuple[str, Term, Term], ...] = ()
    negated: tuple[Atom, ...] = ()

    def body_vars(self) -> set[str]:
        return {v for a in self.body for v in a.vars()}

    def safe(self) -> bool:
        """Every variable of the head, the comparisons and the negated atoms occurs in a positive atom."""
        need = set(self.head.vars()) | {x for c in self.compares for x in c[1:] if isinstance(x, str)}
        need |= {v for a in self.negated for v in a.vars()}
        return need <= self.body_vars()

    def __str__(self) -> str:
        parts = [str(a) for a in self.body] + [f"{c[1]} {c[0]} {c[2]}" for c in self.compares]
        parts += [f"not {a}" for a in self.negated]
        return f"{self.head} <- {', '.join(parts)}"


class UnsafeRule(ValueError):
    """A rewritten rule has a head variable that no body atom binds (the rewriting cannot be used)."""


def _operand(rel: Relation, args: tuple[Term, ...]) -> tuple[Relation | None, tuple[str, ...]]:
    """The atom's relation with its constants selected and only its variable columns kept; (None, ()) for a
    ground atom that does not hold."""
    for k, a in enumerate(args):
        if isinstance(a, int):
            if not 0 <= a < rel.shape[k]:
                return None, ()
            rel = rel.select(k, a)
    keep = [k for k, a in enumerate(args) if isinstance(a, str)]
    names = tuple(args[k] for k in keep)
    if len(keep) == len(args):
        return rel, names
    if not keep:
        return (rel if len(rel) else None), ()
    cols = rel.cols[:, keep]
    return Relation.from_tuples(cols, len(keep), tuple(rel.shape[k] for k in keep)), names


def evaluate_rule(rule: Rule, body: list[Relation], negated: list[Relation], head_shape: tuple[int, ...],
                  cache: dict | None = None, fixed: list[bool] | None = None) -> Relation:
    """The head tuples one evaluation of `rule` derives from the given relations of its body atoms (in
    order) and of its negated atoms. Rows outside `head_shape` are dropped (as `relational.evaluate` does).
    `cache` keeps the selected operands of atoms marked in `fixed` (relations that do not change)."""
    empty = Relation.empty(len(head_shape), head_shape)
    operands = []
    for k, (atom, rel) in enumerate(zip(rule.body, body)):
        key = (id(rel), atom.args)
        if cache is not None and fixed and fixed[k] and key in cache:
            got = cache[key][1]
        else:
            got = _operand(rel, atom.args)
            if cache is not None and fixed and fixed[k]:
                cache[key] = (rel, got)  # the relation is kept alive with its id
        op, names = got
        if op is None:
            return empty
        if names:
            operands.append((op, names))
    if any(len(r) == 0 for r, _ in operands):
        return empty
    out_vars: list[str] = []
    for v in rule.head.vars() + [x for c in rule.compares for x in c[1:] if isinstance(x, str)] + [
            v for a in rule.negated for v in a.vars()]:
        if v not in out_vars:
            out_vars.append(v)
    bound = {v for _, names in operands for v in names}
    if not set(out_vars) <= bound:
        raise UnsafeRule(str(rule))
    res = join_project(operands, tuple(out_vars), {})
    if (not rule.compares and not rule.negated and res.shape == tuple(head_shape)
            and list(rule.head.args) == out_vars):
        return res  # already sorted, unique and within the head's shape
    cols = res.cols
    if rule.compares or rule.negated:
        mask = np.ones(len(cols), dtype=bool)
        for op, left, right in rule.compares:
            a = cols[:, out_vars.index(left)] if isinstance(left, str) else left
            b = cols[:, out_vars.index(right)] if isinstance(right, str) else right
            mask &= _CMP[op](a, b)
        for atom, rel in zip(rule.negated, negated):
            if atom.args and len(cols):
                rows = np.stack([cols[:, out_vars.index(a)] if isinstance(a, str) else np.full(len(cols), a)
                                 for a in atom.args], axis=1)
                mask &= ~rel.contains(rows)
            elif len(rel):
                mask[:] = False  # a nullary negated atom that holds
        cols = cols[mask]
    head = [cols[:, out_vars.index(a)] if isinstance(a, str) else np.full(len(cols), a, dtype=np.int64)
            for a in rule.head.args]
    if not head:
        return Relation.from_tuples(np.zeros((min(1, len(cols)), 0), np.int64), 0, ())
    rows = np.stack(head, axis=1) if len(cols) else np.zeros((0, len(head)), np.int64)
    if len(rows):
        inside = np.all((rows >= 0) & (rows < np.asarray(head_shape, dtype=np.int64)), axis=1)
        rows = rows if inside.all() else rows[inside]
    return Relation.from_tuples(rows, len(head), head_shape)


@dataclass
class FixpointResult:
    values: dict[str, Relation]  # every predicate a rule defines or a seed holds
    rounds: int  # rounds that derived new facts, summed over the components
    derived: int  # tuples produced by rule bodies before known facts were removed (the work done)


def fixpoint(rules: list[Rule], seeds: dict[str, Relation], shapes: dict[str, tuple[int, ...]],
             outside: Callable[[str], Relation], debug: Callable[[str], None] | None = None) -> FixpointResult:
    """Least fixpoint of `rules` over the facts `seeds`; predicates neither defined nor seeded are read with
    `outside` (each once). `shapes` gives the extent of every defined or seeded predicate."""
    defined = {r.head.pred for r in rules} | set(seeds)
    g = nx.DiGraph()
    g.add_nodes_from(defined)
    for r in rules:
        for a in r.body + r.negated:
            if a.pred in defined:
                g.add_edge(a.pred, r.head.pred)
    cond = nx.condensation(g)
    values: dict[str, Relation] = {}
    read: dict[str, Relation] = {}
    cache: dict = {}
    rounds = derived = 0

    def base(p: str) -> Relation:
        if p in values:
            return values[p]
        if p not in read:
            read[p] = outside(p)
        return read[p]

    for c in nx.topological_sort(cond):
        comp = set(cond.nodes[c]["members"])
        crules = [r for r in rules if r.head.pred in comp]
        full = {p: seeds.get(p, Relation.empty(len(shapes[p]), shapes[p])) for p in comp}
        fixed = [[a.pred not in comp for a in r.body] for r in crules]
        delta = {p: Relation.empty(len(shapes[p]), shapes[p]) for p in comp}
        for r, fx in zip(crules, fixed):  # round 1: every rule on the current relations
            new = evaluate_rule(r, [full[a.pred] if a.pred in comp else base(a.pred) for a in r.body],
                                [base(a.pred) for a in r.negated], shapes[r.head.pred], cache, fx)
            derived += len(new)
            delta[r.head.pred] = delta[r.head.pred].union(new.difference(full[r.head.pred]))
        for p in comp:
            full[p] = full[p].union(delta[p])
        n = 1 if any(len(d) for d in delta.values()) else 0
        recursive = any(a.pred in comp for r in crules for a in r.body)
        while recursive and any(len(d) for d in delta.values()):
            if debug:
                debug(f"[demand] {sorted(comp)} round {n}: " + ", ".join(f"{p} +{len(d)}" for p, d in delta.items()))
            new_delta = {p: Relation.empty(len(shapes[p]), shapes[p]) for p in comp}
            for r, fx in zip(crules, fixed):
                for i, a in enumerate(r.body):
                    if a.pred not in comp or len(delta[a.pred]) == 0:
                        continue
                    body = [delta[b.pred] if j == i else full[b.pred] if b.pred in comp else base(b.pred)
                            for j, b in enumerate(r.body)]
                    new = evaluate_rule(r, body, [base(b.pred) for b in r.negated], shapes[r.head.pred], cache, fx)
                    derived += len(new)
                    h = r.head.pred
                    new_delta[h] = new_delta[h].union(new.difference(full[h]))
            delta = new_delta
            if any(len(d) for d in delta.values()):
                n += 1
                for p in comp:
                    full[p] = full[p].union(delta[p])
        rounds += n
        values.update(full)
    return FixpointResult(values, rounds, derived)
