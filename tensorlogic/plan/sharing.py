"""Partial sub-join sharing: a pair of factors that several joins have in common is computed once.

`A[i,k] = X[i,j] Y[j,k] Z[k]` and `B[i,k] = X[i,j] Y[j,k] W[k]` both contain `X[i,j] Y[j,k]` (summed over
`j`, which neither needs afterwards).  `share_subjoins(analyzed)` finds such pairs, asks the join planner what
each consumer costs with the pair contracted first (the pair replaced by one operand) against its own best
order, and when the total saving is positive (the pair is then computed once instead of once per consumer)
rewrites the program:

    _shared1[i,k] = sum[j](X[i,j] Y[j,k])
    A[i,k] = _shared1[i,k] Z[k]
    B[i,k] = _shared1[i,k] W[k]

The rewrite is a planning-stage program transformation on a copy of the analysed program, made for the
executor (`Program.executor`) and the plan (`tl plan` prints a "shared" line per temporary); the program the
user wrote, its analysis, autodiff and everything that reads `Program.analyzed` stay untouched, so gradient
programs are derived from the original equations (and are themselves rewritten when they run).  The
executor is not changed: a temporary is an ordinary tensor equation, evaluated before its readers and freed
after the last of them.

What is shared (conservative, so the rewrite cannot change a result):

* dense numeric equations outside recursive strata and layered loops, no softmax/lnorm head;
* pairs of plain reads (index variables only, no constants, arithmetic, virtual or normalised positions) of
  dense numeric tensors (no Boolean, relation or sparse operands, which run as relational or sparse joins),
  neither a divisor, in products whose other factors may be anything (a constant, a sum, a function, a
  divisor): the pair's summed variables are those no other factor uses anywhere;
* two reads that occur, up to a consistent renaming of index variables with equal ranges starting at 0, in
  two or more joins, at least one of which has another factor (a product that is entirely the pair is
  already shared by the executor's join cache);
* the temporary sums the pair's index variables that every consumer sums and no other factor of it reads.

The estimate counts FLOPs in the planner's convention plus ``EQUATION_OVERHEAD_FLOPS`` per extra equation
(the executor's fixed cost of evaluating one: small tensors are not worth a temporary).  Pairs are taken
greedily, best saving first, and the search repeats on the rewritten program (a temporary can pair up again),
at most ``MAX_SHARED`` times.  ``TL_SHARE=0`` turns the rewrite off.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass

from ..analysis.data import TupleSet
from ..ir.graph import strata
from ..ir.nodes import Equation, IVar, Join, Node, Pos, Read, Reduce, equation_str, expr_str, free_vars, node_vars, walk
from .program import cached_plan_join

__all__ = ["SharedJoin", "share_subjoins", "shared_of", "EQUATION_OVERHEAD_FLOPS", "MAX_SHARED"]

EQUATION_OVERHEAD_FLOPS = 20_000
"""What one more equation costs the executor, in FLOPs (about 20-40 us of per-equation Python at numpy's
pace on small operands): a temporary must save more than this."""
MAX_SHARED = 16
"""At most this many temporaries per program."""


@dataclass
class SharedJoin:
    """One temporary: its equation, the equations that read it, and the estimated FLOPs saved."""

    name: str
    equation: Equation
    consumers: list[str]  # left-hand tensors of the rewritten equations, in program order
    saving: int
    before: int  # FLOPs of the consumers' joins planned on their own
    after: int  # FLOPs of the consumers' joins with the pair contracted first, plus the temporary's

    def describe(self) -> str:
        return (f"shared: {equation_str(self.equation)}  computed once for {', '.join(self.consumers)}; "
                f"estimated flops {self.before:,} -> {self.after:,} (saves {self.saving:,})")


@dataclass
class _Site:
    """A join with two or more plain reads inside one equation of the working copy."""

    eq_index: int  # position of the equation in the working list
    join: Join
    reduce: Reduce | None
    out: tuple[str, ...]  # labels the join's result keeps
    plain: tuple[int, ...] = ()  # positions of the factors that may pair up (plain reads, not divisors)


def shared_of(prog) -> list[SharedJoin]:
    """The temporaries a rewritten program carries (empty for any other program)."""
    return list(getattr(prog, "shared", []) or [])


def share_subjoins(prog):
    """The analysed program with shared pairs computed once (see the module docstring), or ``prog`` itself
    when nothing is worth sharing.  The copy shares ``prog``'s data (so rebinding inputs reaches both) and
    carries ``.shared``, the list of `SharedJoin`s."""
    if os.environ.get("TL_SHARE", "1") == "0":
        return prog
    equations = list(prog.equations)
    tensors = dict(prog.tensors)
    slot_domain = dict(prog.slot_domain)
    shared: list[SharedJoin] = []
    next_id = max((e.id for e in equations), default=0) + 1
    copied: dict[int, Equation] = {}  # position in the working list -> the original it is a copy of
    while len(shared) < MAX_SHARED:
        best = _best_pair(equations, tensors, prog)
        if best is None:
            break
        saving, before, after, group, summed, kept = best
        name = _fresh_name(tensors, len(shared) + 1)
        # work on copies of the consumers' equations (the original program is never changed)
        fresh: dict[int, Equation] = {}
        for site, *_ in group:
            if site.eq_index not in copied and site.eq_index not in fresh:
                fresh[site.eq_index] = equations[site.eq_index]
                equations[site.eq_index] = _copy_equation(equations[site.eq_index])
        group = [(_relocate(site, equations, fresh), ra, rb, order) for site, ra, rb, order in group]
        copied.update(fresh)
        first_site, ra0, rb0, order0 = group[0]
        eq0 = equations[first_site.eq_index]
        ranges = {v: eq0.ranges[v] for v in order0}
        kept_vars = [order0[c] for c in kept]
        summed_vars = tuple(order0[c] for c in summed)
        join = Join([_copy_read(ra0), _copy_read(rb0)], [False, False])
        rhs: Node = Reduce(summed_vars, join) if summed_vars else join
        lhs_pos = tuple(Pos(IVar(v)) for v in kept_vars)
        temp = Equation(next_id, name, lhs_pos, "+", rhs, False, eq0.span, "", ranges)
        temp.text = equation_str(temp)
        next_id += 1
        shape = tuple(ranges[v][1] for v in kept_vars)
        domains = tuple(_slot_of(slot_domain, (ra0, rb0), v) for v in kept_vars)
        tensors[name] = dataclasses.replace(
            tensors[ra0.tensor], name=name, arity=len(kept_vars), boolean=False, shape=shape, domains=domains,
            virtual_axis=None, has_data=False, has_equations=True, learnable=False, const=False, sparse=False,
            span=None)
        for k, d in enumerate(domains):
            if d is not None:
                slot_domain[(name, k)] = d
        consumers: list[str] = []
        for site, ra, rb, order in group:
            ren = [order[c] for c in kept]
            _replace_pair(site, ra, rb, Read(name, tuple(Pos(IVar(v)) for v in ren)), {order[c] for c in summed})
            eq = equations[site.eq_index]
            if site.reduce is not None and not site.reduce.over:  # nothing left to sum there
                _replace_node(eq, site.reduce, site.reduce.operand)
            eq.text = equation_str(eq)
            if eq.lhs not in consumers:
                consumers.append(eq.lhs)
        # the temporary goes just before its first reader (program order is evaluation order within a stratum)
        first = min(site.eq_index for site, *_ in group)
        equations.insert(first, temp)
        copied = {i + 1 if i >= first else i: e for i, e in copied.items()}
        shared.append(SharedJoin(name, temp, consumers, saving, before, after))
    if not shared:
        return prog
    out = dataclasses.replace(prog, equations=equations, tensors=tensors, slot_domain=slot_domain)
    out.data = prog.data  # (the same dict: inputs rebound on the original reach the copy)
    out.shared = shared
    return out


# --------------------------------------------------------------------------------------------- finding


def _plain(r: Node, tensors, data: dict) -> bool:
    if not isinstance(r, Read) or not r.pos:
        return False
    t = tensors.get(r.tensor)
    if t is None or t.boolean or t.sparse or t.virtual_axis is not None:
        return False
    if isinstance(data.get(r.tensor), TupleSet):  # tuples (weighted facts, files): may be stored sparse, and a
        return False  # dense temporary of a sparse product could be far larger than the work it saves
    return all(isinstance(p.expr, IVar) and not p.virtual and not p.normalized for p in r.pos)


def _sites(equations: list[Equation], tensors, prog) -> list[_Site]:
    """Every product of plain reads in a dense, non-recursive equation."""
    ok_eqs: set[int] = set()
    for st in strata(equations, None):
        if st.recursive:
            continue
        for e in st.equations:
            ok_eqs.add(id(e))
    sites = []
    for k, eq in enumerate(equations):
        if id(eq) not in ok_eqs or eq.boolean or eq.virtual_var or eq.norm_var:
            continue
        lhs = tensors.get(eq.lhs)
        if lhs is None or lhs.boolean or lhs.virtual_axis is not None:
            continue
        for m in walk(eq.rhs):
            if isinstance(m, Reduce) and isinstance(m.operand, Join):
                join, red = m.operand, m
            elif isinstance(m, Join) and not any(isinstance(p, Reduce) and p.operand is m for p in walk(eq.rhs)):
                join, red = m, None
            else:
                continue
            plain = tuple(x for x, f in enumerate(join.factors) if not join.divides[x] and _plain(f, tensors, prog.data)
                          and all(v in eq.ranges and eq.ranges[v][0] == 0 for v in _vars(f)))
            if len(join.factors) < 2 or len(plain) < 2:
                continue
            over = set(red.over) if red is not None else set()
            labels = _union([_labels(f) for f in join.factors])
            if any(v not in eq.ranges for v in labels):
                continue
            sites.append(_Site(k, join, red, tuple(v for v in labels if v not in over), plain))
    return sites


def _labels(f: Node) -> list[str]:
    """The index variables of a factor's value (what the join planner sees)."""
    return _vars(f) if isinstance(f, Read) and all(isinstance(p.expr, IVar) for p in f.pos) else free_vars(f)


def _vars(r: Read) -> list[str]:
    out: list[str] = []
    for p in r.pos:
        if p.expr.name not in out:
            out.append(p.expr.name)
    return out


def _union(groups) -> list[str]:
    out: list[str] = []
    for g in groups:
        for v in g:
            if v not in out:
                out.append(v)
    return out


def _key(ra: Read, rb: Read, ranges) -> tuple[tuple, list[str]]:
    """A canonical key of the pair up to renaming of index variables, and its variables in canonical order."""
    best = None
    for x, y in ((ra, rb), (rb, ra)):
        order = _union([_vars(x), _vars(y)])
        num = {v: c for c, v in enumerate(order)}
        key = (x.tensor, tuple(num[p.expr.name] for p in x.pos), y.tensor, tuple(num[p.expr.name] for p in y.pos),
               tuple(ranges[v] for v in order))
        if best is None or key < best[0]:
            best = (key, order)
    return best


def _best_pair(equations: list[Equation], tensors, prog):
    """The pair with the largest estimated saving: (saving, before, after, group, summed, kept) or None;
    ``group`` lists (site, read a, read b, variables in canonical order) per consumer."""
    sites = _sites(equations, tensors, prog)
    buckets: dict[tuple, list] = {}
    for site in sites:
        eq = equations[site.eq_index]
        fs = site.join.factors
        seen_here: set[tuple] = set()
        for i, x in enumerate(site.plain):
            for y in site.plain[i + 1 :]:
                key, order = _key(fs[x], fs[y], eq.ranges)
                if key in seen_here:
                    continue  # (the same pair twice in one product: shared by the first only)
                seen_here.add(key)
                buckets.setdefault(key, []).append((site, fs[x], fs[y], order))
    best = None
    for key, group in buckets.items():
        if len(group) < 2 or all(len(site.join.factors) == 2 for site, *_ in group):
            continue
        res = _evaluate(group, equations, key)
        if res is not None and (best is None or res[0] > best[0]):
            best = res
    return best


def _evaluate(group, equations, key):
    """Estimated saving of computing the pair once for every site of ``group``."""
    nvars = len(key[4])
    summed = set(range(nvars))
    for site, ra, rb, order in group:
        # (every variable used anywhere in another factor, summed inside it or not, stays out of the pair's sum)
        others = set(_union([node_vars(f) for f in site.join.factors if f is not ra and f is not rb]))
        local = {c for c, v in enumerate(order) if v not in site.out and v not in others}
        summed &= local
    kept = [c for c in range(nvars) if c not in summed]
    sizes0 = [hi - lo for lo, hi in key[4]]
    pair_flops = 1
    for d in sizes0:
        pair_flops *= d
    if summed:
        pair_flops *= 2
    before = after = 0
    for site, ra, rb, order in group:
        eq = equations[site.eq_index]
        sizes = {v: hi - lo for v, (lo, hi) in eq.ranges.items()}
        inputs = [tuple(_labels(f)) for f in site.join.factors]
        before += cached_plan_join(inputs, site.out, sizes).flops
        rest = [tuple(_labels(f)) for f in site.join.factors if f is not ra and f is not rb]
        temp = tuple(order[c] for c in kept)
        if rest:
            after += cached_plan_join(rest + [temp], site.out, sizes).flops
        else:  # the product was just the pair: what is left sums the temporary down to the result
            extra = [v for v in temp if v not in site.out]
            n = 1
            for v in temp:
                n *= sizes[v]
            after += n * (2 if extra else 1) if extra or list(site.out) != list(temp) else 0
    after += pair_flops + EQUATION_OVERHEAD_FLOPS
    saving = before - after
    if saving <= 0:
        return None
    return saving, before, after, group, sorted(summed), kept


# --------------------------------------------------------------------------------------------- rewriting


def _fresh_name(tensors, k: int) -> str:
    name = f"_shared{k}"
    while name in tensors:
        k += 1
        name = f"_shared{k}"
    return name


def _copy_equation(eq: Equation) -> Equation:
    new = copy.copy(eq)
    new.rhs = copy.deepcopy(eq.rhs)
    new.ranges = dict(eq.ranges)
    return new


def _copy_read(r: Read) -> Read:
    return Read(r.tensor, tuple(r.pos), False, r.span)


def _relocate(site: _Site, equations: list[Equation], originals: dict[int, Equation]) -> _Site:
    """The site in the (copied) equation now at its position: the same join, found by its place in the walk
    of the original (``originals``: position -> the equation copied there just now)."""
    eq = equations[site.eq_index]
    if site.eq_index not in originals:
        return site  # (already a working copy)
    old_nodes = list(walk(originals[site.eq_index].rhs))
    new_nodes = list(walk(eq.rhs))
    k = next(i for i, m in enumerate(old_nodes) if m is site.join)
    join = new_nodes[k]
    red = new_nodes[next(i for i, m in enumerate(old_nodes) if m is site.reduce)] if site.reduce is not None else None
    return _Site(site.eq_index, join, red, site.out)


def _replace_pair(site: _Site, ra: Read, rb: Read, temp: Read, summed: set[str]) -> None:
    """Replace reads ``ra`` and ``rb`` of the site's join (the originals' counterparts in the copy) by
    ``temp``, and drop the variables summed inside the temporary from the site's summation."""
    join = site.join
    ia = _index_of(join, ra, -1)
    ib = _index_of(join, rb, ia)
    keep = [k for k in range(len(join.factors)) if k not in (ia, ib)]
    divides = [join.divides[k] for k in keep]
    join.factors[:] = [temp] + [join.factors[k] for k in keep]
    join.divides[:] = [False] + divides
    if site.reduce is not None:
        site.reduce.over = tuple(v for v in site.reduce.over if v not in summed)


def _replace_node(eq: Equation, old: Node, new: Node) -> None:
    """Put ``new`` where ``old`` is in the equation's right-hand side."""
    if eq.rhs is old:
        eq.rhs = new
        return
    for m in walk(eq.rhs):
        for f in dataclasses.fields(m):
            v = getattr(m, f.name)
            if v is old:
                setattr(m, f.name, new)
                return
            if isinstance(v, list):
                for k, x in enumerate(v):
                    if x is old:
                        v[k] = new
                        return


def _index_of(join: Join, r: Read, taken: int) -> int:
    for k, f in enumerate(join.factors):
        if f is r and k != taken:
            return k
    # (the site was relocated into a copy: match by content, skipping the factor already taken)
    for k, f in enumerate(join.factors):
        if k != taken and isinstance(f, Read) and f.tensor == r.tensor and f.pos == r.pos:
            return k
    raise ValueError(f"read {expr_str(r)} not found in {expr_str(join)}")


def _slot_of(slot_domain, reads: tuple[Read, Read], v: str):
    for r in reads:
        for k, p in enumerate(r.pos):
            if p.expr.name == v:
                return slot_domain.get((r.tensor, k))
    return None
