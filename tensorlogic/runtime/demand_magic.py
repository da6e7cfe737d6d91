"""Magic-set rewriting with sideways information passing, and the chain linearization it uses first.

`rewrite(query_pred, adornment, constants, ...)` turns the rules a query needs into rules that derive only
facts the query can use (Beeri and Ramakrishnan's generalized magic sets):

* An *adornment* says which positions of a predicate are bound (`b`) when it is called: `Reach^bf` is Reach
  asked with its first position known. Each (predicate, adornment) reached from the query gets its own copy
  of the predicate's rules, and a *magic* predicate `m^Reach^bf` holding the bound values asked for.
* Sideways information passing (SIPS): the body atoms of a rule are ordered greedily, starting from the
  head's bound variables: next an atom with bound arguments, first one that asks its relation exactly what
  the head is asked (a recursive call passing the binding through: its magic rule is trivial), then the
  one with the most bound arguments, a relation computed elsewhere before a rewritten one on ties, then
  program order. Each atom of a rewritten relation is
  called with the adornment its bound arguments give at that point.
* Rewritten rule: `P^a(t) <- m^P^a(bound t), A1', ..., An'` (atoms renamed to their adorned copies).
  Magic rule, for every rewritten atom Ai of the body with a bound position:
  `m^Q^b(bound args of Ai) <- m^P^a(bound t), A1', ..., A(i-1)'` (plus the comparisons and negated atoms
  whose variables are bound by then). The magic predicate depends on the rewritten relations themselves
  when an earlier atom is recursive: for `Reach(x,z) <- Reach(x,y), Reach(y,z)` asked `Reach^bf(c, z)`,
  `m^Reach^bf(y) <- m^Reach^bf(x), Reach^bf(x, y)`, so the y found for c are asked next. Magic and
  rewritten rules are evaluated together, semi-naively (`demand_rules.fixpoint`).
* The query seeds `m^P^a` with its constants. Atoms called with nothing bound, negated atoms, and relations
  that are not Boolean relational rules are read in full from the executor (computed by the usual
  strata): negation stays stratified because negated relations are never rewritten.

Chain linearization (`chain_rules`; the rule shapes are `linearize.classify`, shared with the full
evaluation of `runtime/seminaive.py`). For a single recursive binary relation P, magic sets alone keep the
non-linear `P(x,z) <- P(x,y), P(y,z)` expensive: the y reached from c are asked too, and their closure is
most of the full one. When every rule of P is an exit rule B (no P in its body), a left-linear rule
`P(x,z) <- P(x,y), R(y,z)`, a right-linear rule `P(x,z) <- L(x,y), P(y,z)` or the transitivity rule
`P(x,z) <- P(x,y), P(y,z)`, P is L* B R* (its transitive closure when the transitivity rule is there), and
with the first position bound it is evaluated as the left-linear program

    P(x, z) <- T(x, b), B(b, z)          T(x, x) <- .   (x bound by the magic set)
    P(x, z) <- P(x, y), R(y, z)          T(x, w) <- T(x, v), L(v, w)
                                         T(x, y) <- P(x, y)          (only with the transitivity rule)

that keeps x fixed (T holds what x reaches through L, or through a P fact), so a single-source question is
a single-source search whatever the rules' shape; with only the second position bound the mirror image
keeps z fixed. The proof: any relation closed under the rules contains L* B R*, and L* B R* closed under
composition is its transitive closure; T and P above compute exactly those words starting at x.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .demand_rules import Atom, Rule, Term
from .linearize import classify


class Unsupported(Exception):
    """The rewriting does not apply (the caller evaluates the relation in full and filters it)."""


def adorned(pred: str, a: str) -> str:
    return f"{pred}^{a}"


def magic(pred: str, a: str) -> str:
    return f"m^{pred}^{a}"


def _bound_args(atom: Atom, a: str) -> tuple[Term, ...]:
    return tuple(t for t, x in zip(atom.args, a) if x == "b")


# ---------------------------------------------------------------------------------------------- linearization


def chain_rules(p: str, rules: list[Rule], side: int, helper: str) -> list[Rule] | None:
    """The rules of the binary relation `p` linearized to keep position `side` (0 or 1) fixed, with the
    helper relation named `helper` (T above), or None when some rule is not a chain rule, every recursive
    rule already keeps the position fixed, or a rewritten rule would not be safe with that position bound."""
    kinds = [classify(p, r) for r in rules]
    if None in kinds or all(k in ("exit", ("left", "right")[side]) for k in kinds):
        return None  # not chain rules, or they already keep the position fixed: plain magic sets do it
    s, y = "%s", "%y"  # fresh variables (no identifier of the language starts with %)
    out = [Rule(Atom(helper, (s, s)), ())]
    if "trans" in kinds:
        out.append(Rule(Atom(helper, (s, y)), (Atom(p, (s, y) if side == 0 else (y, s)),)))
    for r, k in zip(rules, kinds):
        h = r.head.args
        if k == "exit":  # P(h0,h1) <- B   =>   P(s, h1) <- T(s, h0), B   (mirrored: P(h0, s) <- T(s, h1), B)
            head = Atom(p, (s, h[1]) if side == 0 else (h[0], s))
            t = Atom(helper, (s, h[0] if side == 0 else h[1]))
            out.append(Rule(head, (t, *r.body), r.compares, r.negated))
        elif k == "trans":
            continue
        elif (k == "left") == (side == 0):  # the rule already keeps the position fixed
            out.append(r)
        else:
            rest = tuple(a for a in r.body if a.pred != p)
            rec = next(a for a in r.body if a.pred == p)
            # right-linear P(x,z) <- L(x,y), P(y,z), side 0:  T(s, y) <- T(s, x), L(x, y)
            # left-linear P(x,z) <- P(x,y), R(y,z), side 1:   T(s, y) <- T(s, z), R(y, z)
            step_from, step_to = (h[0], rec.args[0]) if side == 0 else (h[1], rec.args[1])
            out.append(Rule(Atom(helper, (s, step_to)), (Atom(helper, (s, step_from)), *rest), r.compares,
                            r.negated))
    for r in out:
        need = set(r.head.vars()) | {t for c in r.compares for t in c[1:] if isinstance(t, str)}
        need |= {t for a in r.negated for t in a.vars()}
        if not need <= {s} | r.body_vars():
            return None
    return out


# ---------------------------------------------------------------------------------------------- magic sets


@dataclass
class Rewritten:
    """The rewritten program: rules, seed facts (the query's magic set), the predicates read in full, and
    the extent of every predicate the rules define."""

    rules: list[Rule] = field(default_factory=list)
    seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)  # magic predicate -> the query's constants
    full: set[str] = field(default_factory=set)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    answer: str = ""  # the adorned query predicate
    linearized: list[str] = field(default_factory=list)


def _sips(body: tuple[Atom, ...], bound: set[str], rewritable: Callable[[str], bool], head: Atom, a: str
          ) -> list[Atom]:
    """Body atoms in sideways-information-passing order (see the module docstring)."""
    left = list(body)
    order = []
    bound = set(bound)
    asked = _bound_args(head, a)

    def score(x: Atom, k: int) -> tuple:
        nb = sum(1 for t in x.args if isinstance(t, int) or t in bound)
        b = "".join("b" if isinstance(t, int) or t in bound else "f" for t in x.args)
        same = x.pred == head.pred and b == a and _bound_args(x, b) == asked  # asks exactly what the head is
        return (nb > 0, same, nb, not rewritable(x.pred), -k)

    while left:
        k = max(range(len(left)), key=lambda k: score(left[k], k))
        x = left.pop(k)
        order.append(x)
        bound |= set(x.vars())
    return order


def rewrite(pred: str, adorn: str, consts: tuple[int, ...], rules_of: Callable[[str], list[Rule] | None],
            shape_of: Callable[[str], tuple[int, ...]], linearize: bool = True) -> Rewritten:
    """Magic-set rewriting of the rules `pred` needs, asked with adornment `adorn` and the constants `consts`
    at its bound positions. `rules_of(p)` gives the rules of a relation that may be rewritten (None for one
    read in full); `shape_of(p)` its extent."""
    out = Rewritten()
    out.answer = adorned(pred, adorn)
    out.seeds[magic(pred, adorn)] = consts
    todo = [(pred, adorn)]
    seen = {(pred, adorn)}
    helpers: dict[str, list[Rule]] = {}
    helper_shape: dict[str, tuple[int, ...]] = {}

    def rules_for(p: str, a: str) -> list[Rule]:
        if p in helpers:
            return helpers[p]
        rs = rules_of(p)
        if rs is None:
            raise Unsupported(p)
        shape = shape_of(p)
        if linearize and len(shape) == 2 and "b" in a:
            for side in (0, 1):
                if a[side] != "b":
                    continue
                helper = f"{p}~T{side}"
                got = chain_rules(p, rs, side, helper)
                if got is not None:
                    ext = shape[side]
                    helper_shape[helper] = (ext, ext)
                    lin = [r for r in got if r.head.pred == p]
                    helpers[helper] = [r for r in got if r.head.pred == helper]
                    out.linearized.append(p)
                    return lin
        return rs

    def rewritable(p: str) -> bool:
        return p in helpers or rules_of(p) is not None

    def shape(p: str) -> tuple[int, ...]:
        return helper_shape[p] if p in helper_shape else shape_of(p)

    while todo:
        p, a = todo.pop()
        sh = shape(p)
        out.shapes[adorned(p, a)] = sh
        out.shapes[magic(p, a)] = tuple(n for n, x in zip(sh, a) if x == "b")
        for r in rules_for(p, a):
            head_magic = Atom(magic(p, a), _bound_args(r.head, a))
            bound = set(head_magic.vars())
            body: list[Atom] = [head_magic]
            magic_rules = []
            for atom in _sips(r.body, bound, rewritable, r.head, a):
                if rewritable(atom.pred):
                    b = "".join("b" if isinstance(t, int) or t in bound else "f" for t in atom.args)
                    if "b" not in b:
                        if atom.pred in helpers:
                            raise Unsupported(atom.pred)
                        out.full.add(atom.pred)
                        body.append(atom)
                    else:
                        cmps = tuple(c for c in r.compares if all(not isinstance(t, str) or t in bound for t in c[1:]))
                        negs = tuple(n for n in r.negated if set(n.vars()) <= bound)
                        m = Atom(magic(atom.pred, b), _bound_args(atom, b))
                        mr = Rule(m, tuple(body), cmps, negs)
                        if not (len(body) == 1 and body[0] == m and not mr.compares and not mr.negated):
                            magic_rules.append(mr)
                        if (atom.pred, b) not in seen:
                            seen.add((atom.pred, b))
                            todo.append((atom.pred, b))
                        body.append(Atom(adorned(atom.pred, b), atom.args))
                else:
                    out.full.add(atom.pred)
                    body.append(atom)
                bound |= set(atom.vars())
            out.full |= {n.pred for n in r.negated}
            rule = Rule(Atom(adorned(p, a), r.head.args), tuple(body), r.compares, r.negated)
            for x in [rule, *magic_rules]:
                if not x.safe():
                    raise Unsupported(str(x))
            out.rules.append(rule)
            out.rules += magic_rules
    return out
