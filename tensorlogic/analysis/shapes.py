"""Shapes and index ranges.

Extents come from data (dense arrays fix them; facts and tuples give lower bounds), declarations and
symbol tables, and flow through plain index variables: all slots where one variable appears plainly in an
equation share a domain, hence an extent. A computed tensor's extent is the largest index its equations
write, plus one. Each equation's variables get a half-open range:

- a plain occurrence `T[.., i, ..]` gives `i` the range of that position;
- with no plain occurrence, `T[t-1]` gives `t` the values that read inside `T`, `T[x/S]` gives `[0, n*S)`,
  and a sum of variables `T[x+dx]` gives `x` the range `[0, n)` (reads outside are zero padding, so a
  convolution keeps its input's size);
- a constant shift `T[i-1]` or `T[t+1]` always restricts its variable to values that land inside `T`
  (so `X[i,j] = sig(W[i,j,k] X[i-1,k])` never overwrites layer 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.nodes import IBin, IConst, IExpr, IVar, Pos, ix_str, ix_vars, reads
from ..syntax import ast
from ..syntax.diagnostics import Diagnostic
from .data import TupleSet

if TYPE_CHECKING:  # pragma: no cover
    from .program import _Analyzer

Range = tuple[int, int]


def _shift(e: IExpr) -> tuple[str, int] | None:
    """`v + c` / `v - c` / `c + v` as (v, c); a plain variable as (v, 0)."""
    if isinstance(e, IVar):
        return e.name, 0
    if isinstance(e, IBin) and e.op in "+-":
        if isinstance(e.left, IVar) and isinstance(e.right, IConst):
            return e.left.name, e.right.value if e.op == "+" else -e.right.value
        if e.op == "+" and isinstance(e.right, IVar) and isinstance(e.left, IConst):
            return e.right.name, e.left.value
    return None


def interval(e: IExpr, rng: dict[str, Range]) -> tuple[int, int] | None:
    """Smallest and largest value of an index expression over the ranges, or None if a range is unknown."""
    if isinstance(e, IVar):
        r = rng.get(e.name)
        return None if r is None else (r[0], r[1] - 1)
    if isinstance(e, IConst):
        return e.value, e.value
    if isinstance(e, IBin):
        a, b = interval(e.left, rng), interval(e.right, rng)
        if a is None or b is None:
            return None
        if e.op == "+":
            return a[0] + b[0], a[1] + b[1]
        if e.op == "-":
            return a[0] - b[1], a[1] - b[0]
        if e.op in "/%" and b[0] == b[1] and b[0] > 0:
            return (a[0] // b[0], a[1] // b[0]) if e.op == "/" else (0, b[0] - 1)
        return None
    return None


def _meet(a: Range | None, b: Range) -> Range:
    if a is None:
        return b
    return max(a[0], b[0]), min(a[1], b[1])


def infer_ranges(A: _Analyzer) -> None:
    """Fill tensor shapes, domains' extents, and every equation's and query's variable ranges."""
    ext: dict[str, int] = {}
    why: dict[str, tuple[str, int]] = {}
    lower: dict[str, int] = {}

    def dom(slot):
        return A.slot_domain[slot]

    def fix(slot, n: int, span) -> None:
        d = dom(slot)
        if d in ext and ext[d] != n:
            t0, k0 = why[d]
            A.errors.append(Diagnostic(
                f"inconsistent sizes: {slot[0]} position {slot[1] + 1} has size {n} but {t0} position {k0 + 1} "
                f"has size {ext[d]}, and the two share an index (domain {d})", span,
                "indices that appear together must range over the same values"))
            return
        ext[d], why[d] = n, slot

    for name, d in A.domains.items():
        if d.symbolic:
            ext[name], why[name] = len(d.symbols), (name, 0)
        elif d.declared_size is not None:
            ext[name], why[name] = d.declared_size, (name, 0)
    for name, value in A.data.items():
        t = A.tensors[name]
        stored = [k for k in range(t.arity) if k != t.virtual_axis]
        if isinstance(value, np.ndarray):
            if value.ndim != len(stored):
                A.errors.append(Diagnostic(f"{name} is given {value.ndim}-dimensional data but is used with "
                                           f"{len(stored)} stored indices", t.span))
                continue
            for k, n in zip(stored, value.shape):
                fix((name, k), int(n), t.span)
        elif isinstance(value, TupleSet) and len(value.ids):
            for j, k in enumerate(stored):
                d = dom((name, k))
                lower[d] = max(lower.get(d, 0), int(value.ids[:, j].max()) + 1)
    idx_sizes: dict[str, int] = {}
    for d in A.low.decls:
        if isinstance(d, ast.TensorDecl) and d.dims:
            for k, ds in enumerate(d.dims):
                if ds.size is not None:
                    fix((d.name, k), ds.size, ds.span)
        if isinstance(d, ast.IndexDecl) and d.size is not None:
            for v in d.names:
                idx_sizes[v] = d.size
    if A.errors:
        return

    def occurrences(stmt, lhs_name=None, lhs_pos=()):
        occ = []
        if lhs_name is not None:
            occ += [((lhs_name, k), p, True) for k, p in enumerate(lhs_pos)]
        for r in reads(stmt):
            occ += [((r.tensor, k), p, False) for k, p in enumerate(r.pos)]
        return [(s, p, lhs) for s, p, lhs in occ if A.tensors[s[0]].virtual_axis != s[1]]

    declared = {(d.name, k) for d in A.low.decls if isinstance(d, ast.TensorDecl) and d.dims
                for k, ds in enumerate(d.dims) if ds.size is not None or ds.domain is not None}

    def computed(slot) -> bool:
        """A position only equations define: its size is the largest index they write, plus one."""
        t = A.tensors[slot[0]]
        return (t.has_equations and not t.has_data and slot not in declared and slot[1] != t.virtual_axis
                and not A.domains[dom(slot)].symbolic)

    slot_ext: dict = {}
    slot_lower: dict = {}
    for eq in A.low.equations:  # constants written on the left are lower bounds (of the slot, when computed)
        for k, p in enumerate(eq.lhs_pos):
            if isinstance(p.expr, IConst) and k != A.tensors[eq.lhs].virtual_axis:
                if computed((eq.lhs, k)):
                    slot_lower[(eq.lhs, k)] = max(slot_lower.get((eq.lhs, k), 0), p.expr.value + 1)
                    continue
                d = dom((eq.lhs, k))
                lower[d] = max(lower.get(d, 0), p.expr.value + 1)

    def size_of(slot) -> int | None:
        if slot in slot_ext:
            return slot_ext[slot]
        d = dom(slot)
        return ext.get(d) if d in ext else None

    def ranges_for(occ, slices, all_vars, inferring_for: str | None = None) -> dict[str, Range]:
        if inferring_for is not None:  # while sizing a tensor, its own positions do not bound its indices
            occ = [o for o in occ if not (o[0][0] == inferring_for and computed(o[0]))]
        rng: dict[str, Range] = {}
        for slot, p, _ in occ:
            n = size_of(slot)
            if isinstance(p.expr, IVar) and n is not None:
                rng[p.expr.name] = _meet(rng.get(p.expr.name), (0, n))
        for v in all_vars:
            if v not in rng and v in idx_sizes:
                rng[v] = (0, idx_sizes[v])
        for s in slices:
            n = size_of((s.tensor, s.axis))
            start = s.start.value if isinstance(s.start, IConst) else 0
            if n is None:
                if s.stop is None or not isinstance(s.stop, IConst):
                    continue
                stop = s.stop.value
            else:
                stop = s.stop.value if isinstance(s.stop, IConst) else n
                start, stop = (start + n if start < 0 else start), (stop + n if stop < 0 else stop)
                stop = min(stop, n)
            rng[s.var] = (0, max(0, stop - start))
        for _ in range(2):
            for slot, p, _ in occ:
                n = size_of(slot)
                if n is None:
                    continue
                unknown = [v for v in ix_vars(p.expr) if v not in rng]
                if len(unknown) != 1:
                    continue
                u = unknown[0]
                sh = _shift(p.expr)
                e = p.expr
                if sh is not None:
                    rng[u] = (max(0, -sh[1]), max(max(0, -sh[1]), n - sh[1]))
                elif isinstance(e, IBin) and e.op == "/" and isinstance(e.left, IVar) and isinstance(e.right, IConst):
                    rng[u] = (0, n * e.right.value)
                elif isinstance(e, IBin) and e.op in "+-":
                    rng[u] = (0, n)
        for slot, p, is_lhs in occ:  # constant shifts restrict their variable to in-bounds values
            if is_lhs and computed(slot):
                continue  # ...except where they write a tensor whose size they decide
            n = size_of(slot)
            sh = _shift(p.expr)
            if n is not None and sh is not None and sh[1] != 0 and sh[0] in rng:
                lo, hi = _meet(rng[sh[0]], (-sh[1], n - sh[1]))
                rng[sh[0]] = (lo, max(lo, hi))
        return rng

    slices_of = A.low.slices
    changed, passes, growing = True, 0, set()
    limit = len(A.low.equations) + 3
    while changed and passes < limit:
        changed, passes, growing = False, passes + 1, set()
        for eq in A.low.equations:
            occ = occurrences(eq.rhs, eq.lhs, eq.lhs_pos)
            all_vars = set(eq.lhs_vars()) | {v for _, p, _ in occ for v in ix_vars(p.expr)}
            rng = ranges_for(occ, slices_of.get(eq.id, []), all_vars, eq.lhs)
            _concat_ranges(eq, rng)
            for k, p in enumerate(eq.lhs_pos):
                slot = (eq.lhs, k)
                if A.tensors[eq.lhs].virtual_axis == k:
                    continue
                iv = interval(p.expr, rng)
                if computed(slot):
                    if iv is not None:
                        n = max(iv[1] + 1, lower.get(dom(slot), 0), slot_lower.get(slot, 0), 0)
                        if n > slot_ext.get(slot, -1):
                            if slot in slot_ext:
                                growing.add(slot)
                            slot_ext[slot] = n
                            changed = True
                    continue
                if size_of(slot) is not None:
                    continue
                if iv is not None:
                    d = dom(slot)
                    ext[d] = max(iv[1] + 1, lower.get(d, 0), 0)
                    why[d] = slot
                    changed = True
    if changed:
        for t, k in sorted(growing):
            A.errors.append(Diagnostic(
                f"the size of {t} position {k + 1} keeps growing: each equation for it writes past its end",
                A.tensors[t].span, f"give its index a range, e.g. `tensor {t}[...]` with sizes or `index v: N`"))
    for slot in list(A.slot_domain):
        if computed(slot) and slot not in slot_ext and slot in slot_lower and dom(slot) not in ext:
            slot_ext[slot] = max(slot_lower[slot], lower.get(dom(slot), 0))
        elif computed(slot) and slot not in slot_ext and dom(slot) in lower and dom(slot) not in ext:
            slot_ext[slot] = lower[dom(slot)]
    for d, lb in lower.items():
        if d not in ext:
            ext[d] = lb
        elif lb > ext[d] and not A.domains[d].symbolic:
            t0, k0 = why[d]
            A.errors.append(Diagnostic(f"index {lb - 1} is outside {t0} position {k0 + 1}, whose size is {ext[d]}",
                                       A.tensors[t0].span))
    # final ranges, and errors for what is still unknown
    for eq in A.low.equations:
        _rebase_negative_slices(eq, slices_of.get(eq.id, []), size_of)
        occ = occurrences(eq.rhs, eq.lhs, eq.lhs_pos)
        all_vars = set(eq.lhs_vars()) | {v for _, p, _ in occ for v in ix_vars(p.expr)}
        from ..ir.nodes import node_vars

        all_vars |= set(node_vars(eq.rhs))
        rng = ranges_for(occ, slices_of.get(eq.id, []), all_vars)
        _concat_ranges(eq, rng)
        if any(r.tensor in A.undefined for r in reads(eq.rhs)):
            eq.ranges = rng
            continue  # already reported: do not add its consequences
        for v in sorted(all_vars - set(rng), key=str):
            if eq.virtual_var == v:
                continue
            A.errors.append(Diagnostic(
                f"index '{v}' has no known range in {eq.text or eq.lhs}", eq.span,
                f"give a tensor it indexes a size (data, a literal, or `tensor {eq.lhs}[...]`), or declare "
                f"`index {v}: N`"))
        if eq.virtual_var is not None and eq.virtual_var not in rng:
            A.errors.append(Diagnostic(f"the virtual index '{eq.virtual_var}' has no known range", eq.span,
                                       "it must also index a stored tensor, e.g. U[j,t]"))
        eq.ranges = rng
        for slot, p, _ in occ:  # a learnable tensor indexed by a declared index (`index i: 4`) takes its size
            if size_of(slot) is None and isinstance(p.expr, IVar) and rng.get(p.expr.name, (1, 0))[0] == 0 \
                    and not computed(slot):
                ext[dom(slot)] = rng[p.expr.name][1]
    for q in A.low.queries:
        if any(r.tensor in A.undefined for r in reads(q.expr)):
            continue
        occ = occurrences(q.expr)
        q.ranges = ranges_for(occ, [], set(q.free))
        for v in q.free:
            if v not in q.ranges:
                A.errors.append(Diagnostic(f"index '{v}' has no known range in the query {q.text}", q.span))
    for name, t in A.tensors.items():
        shape, doms = [], []
        for k in range(t.arity):
            d = dom((name, k))
            doms.append(d)
            if k == t.virtual_axis:
                shape.append(0)
                continue
            n = size_of((name, k))
            if n is None and not A.errors and name not in A.undefined:
                A.errors.append(Diagnostic(f"the size of {name} position {k + 1} is unknown", t.span,
                                           f"declare it: tensor {name}[...] with sizes"))
            shape.append(n or 0)
        t.shape, t.domains = tuple(shape), tuple(doms)


def _rebase_negative_slices(eq, slices, size_of) -> None:
    """`X[-2:]` reads from n-2: rewrite the slice's offset once the size n is known."""
    from ..ir.nodes import Pos, Read, walk

    shift: dict[str, tuple[int, int]] = {}
    for s in slices:
        n = size_of((s.tensor, s.axis))
        if isinstance(s.start, IConst) and s.start.value < 0 and n is not None:
            shift[s.var] = (s.start.value, s.start.value + n)
    if not shift:
        return

    def fix(pos):
        out = []
        for p in pos:
            e = p.expr
            if (isinstance(e, IBin) and e.op == "+" and isinstance(e.left, IVar) and e.left.name in shift
                    and isinstance(e.right, IConst) and e.right.value == shift[e.left.name][0]):
                e = IBin("+", e.left, IConst(shift[e.left.name][1]))
            out.append(Pos(e, p.virtual, p.normalized, p.span))
        return tuple(out)

    for m in walk(eq.rhs):
        if isinstance(m, Read):
            m.pos = fix(m.pos)
    eq.lhs_pos = fix(eq.lhs_pos)


def _concat_ranges(eq, rng: dict[str, Range]) -> None:
    """The concatenated index ranges over the product of the merged indices' ranges."""
    from ..ir.nodes import Concat, walk

    for m in walk(eq.rhs):
        if isinstance(m, Concat) and all(v in rng for v in m.merged):
            total = 1
            for v in m.merged:
                total *= rng[v][1] - rng[v][0]
            rng[m.into] = _meet(rng.get(m.into), (0, total)) if m.into in rng else (0, total)


__all__ = ["infer_ranges", "interval", "Pos", "ix_str"]
