"""Chain linearization: the rule shapes of a single recursive binary relation, shared by the full (query-less)
evaluation of `runtime/seminaive.py` and the magic-set rewriting of `runtime/demand_magic.py`.

`classify(p, rule)` says whether a rule of the binary relation p is an exit rule B (no p in its body), a
left-linear rule `p(x,z) <- p(x,y), R(y,z)`, a right-linear rule `p(x,z) <- L(x,y), p(y,z)` or the
transitivity rule `p(x,z) <- p(x,y), p(y,z)`. When all of a relation's rules have one of these shapes, p is
L* B R*, or its transitive closure (L* B R*)+ when the transitivity rule is there.

Full evaluation (`full_linearization`). With the transitivity rule and no right-linear rule,
p = (B' R*)+ = B' (R | B')*, where B' is the relation's given facts plus what its exit rules derive (a
relation computed once, before the fixpoint). So the stratum is evaluated as the left-linear program

    p(x, z) <- B'(x, z)          p(x, z) <- p(x, y), R(y, z)          p(x, z) <- p(x, y), B'(y, z)

(the transitivity rule replaced by the last rule), which keeps x fixed and runs on the chain fast path row
by row; with no left-linear rule, the mirror image p = (L | B')* B' is right-linear
(`p(x, z) <- B'(x, y), p(y, z)`). Proof (left): B' (R | B')* contains B' and is closed under the left
rules and under composition (a word of B'(R|B')* followed by one is again one), so it contains p; and every
word of it is derived by the rules (B' by the exit rules, a step R by a left rule, a step B' by the
transitivity rule with a B' fact on the right).

With both left- and right-linear rules next to the transitivity rule, p = (L* B' R*)+ is one left-linear
closure over a product automaton (`runtime/linearize_both.py`). When its key space is too large, p =
Q (R | Q)* with Q = L* B': two fixpoints on the fast path, first Q (the right-linear rules alone, from B',
column by column), then the left-linear program above with Q in place of B' (row by row; correct, but each
fact steps through a closure-sized row of Q). A word of (L* B' R*)+ is Q R* Q R* ... Q R*, and a word
Q R^i Q R^j ... of Q (R | Q)* groups into (L* B' R^i)(L* B' R^j)...

Queries with constants (`demand_magic.chain_rules`) use the same classification with a helper relation
T(x, .) seeded by the magic set, which handles both sides at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .demand_rules import Rule


def classify(p: str, rule: Rule) -> str | None:
    """'exit', 'left', 'right' or 'trans' for a rule of the binary relation p, or None (not a chain rule)."""
    rec = [a for a in rule.body if a.pred == p]
    if any(a.pred == p for a in rule.negated):
        return None
    if not rec:
        return "exit"
    h = rule.head.args
    if not all(isinstance(t, str) for t in h + tuple(t for a in rec for t in a.args)):
        return None
    if len(rec) == 2 and len(rule.body) == 2 and not rule.compares and not rule.negated:
        (a1, b1), (a2, b2) = rec[0].args, rec[1].args
        if b1 == a2 and (a1, b2) == h and len({a1, b1, b2}) == 3:
            return "trans"
        if b2 == a1 and (a2, b1) == h and len({a2, a1, b1}) == 3:
            return "trans"
        return None
    if len(rec) != 1 or len(set(h)) != 2:
        return None
    (u, v), (x, z) = rec[0].args, h
    rest = [a for a in rule.body if a is not rec[0]]
    rest_vars = {t for a in rest + list(rule.negated) for t in a.vars()}
    rest_vars |= {t for c in rule.compares for t in c[1:] if isinstance(t, str)}
    if u == x and v != z and v != x and x not in rest_vars:
        return "left"
    if v == z and u != x and u != z and z not in rest_vars:
        return "right"
    return None


@dataclass(frozen=True)
class Linearization:
    """How to evaluate a stratum of one binary relation with the transitivity rule as a linear program:
    `side` 0 replaces each transitivity rule by `p(x,z) <- p(x,y), B'(y,z)` (left-linear), 1 by
    `p(x,z) <- B'(x,y), p(y,z)` (right-linear); `trans` are the replaced rules' indices, `exits` those of the
    exit rules (B' is the relation's given facts plus their results)."""

    side: int
    trans: tuple[int, ...]
    exits: tuple[int, ...]
    first: tuple[int, ...] = ()  # right-linear rules evaluated first, into Q = L* B' (both sides present)
    left: tuple[int, ...] = ()  # ... and then the left-linear rules (only set with `first`)
    with_base: bool = True  # the rule through B' (or Q) replaces the transitivity rule; False: left out

    @property
    def skip(self) -> tuple[int, ...]:
        """Rules the fast path leaves out: the transitivity rules, and the rules of the first fixpoint."""
        return self.trans + self.first

    def first_fixpoint(self) -> Linearization:
        """The fixpoint of Q = L* B': the right-linear rules alone (when `first` is set)."""
        return Linearization(1, self.trans + self.left, self.exits, (), (), False)

    def describe(self) -> str:
        if self.first:
            return "linearized: right-linear rules first, then transitivity rule as left-linear"
        return "linearized: transitivity rule as " + ("left-linear" if self.side == 0 else "right-linear")


def full_linearization(p: str, rules: list[Rule]) -> Linearization | None:
    """The linearization of the binary relation p's rules for full evaluation (see the module docstring), or
    None when some rule is not a chain rule or there is no transitivity rule."""
    kinds = [classify(p, r) for r in rules]
    if None in kinds or "trans" not in kinds:
        return None
    trans = tuple(i for i, k in enumerate(kinds) if k == "trans")
    exits = tuple(i for i, k in enumerate(kinds) if k == "exit")
    if "left" in kinds and "right" in kinds:
        return Linearization(0, trans, exits, tuple(i for i, k in enumerate(kinds) if k == "right"),
                             tuple(i for i, k in enumerate(kinds) if k == "left"))
    return Linearization(1 if "right" in kinds else 0, trans, exits)
