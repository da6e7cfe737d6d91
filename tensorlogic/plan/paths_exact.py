"""Exact contraction order by dynamic programming over subsets of operands.

``optimal_items`` finds the optimal binary tree over ``k`` *items* (operands, or in subtree reconfiguration
the roots of subtrees), each given by the label set its result carries, where ``ext`` is the set of labels
needed outside all the items (the output, or the rest of the network).  Hyperedges need no special care: a
subset keeps exactly the labels of its items that occur in ``ext`` or in an item outside the subset.

Two modes:

* ``outer=True``: every split of every subset is tried, outer products included: the exhaustive optimum over
  all pairwise orders, at ``3**k / 2`` split evaluations (about 0.3 s in CPython for ``k = 12``).
* ``outer=False``: only splits whose two parts share a *connecting* label (a label not in the join's output
  and not held by every operand, as opt_einsum's ``dp`` does), enumerating only connected subsets.  Cheap on
  sparse networks (chains, trees, rings, lattices of moderate size).  When the items fall into several
  components under those labels, each component is solved alone and the components are then combined
  exhaustively (or smallest-first when there are many).

A split is skipped as soon as its children's costs alone reach the best cost found for the subset (costs
only grow), which prunes most of the work on typical networks.  ``budget`` bounds the number of split
evaluations; ``None`` is returned when it runs out.
"""

from __future__ import annotations

import time

from .paths_common import Network, Objective

__all__ = ["components", "optimal_items", "smallest_first"]


class _Budget(Exception):
    pass


def components(items: list[int], conn: int) -> list[list[int]]:
    k = len(items)
    seen = [False] * k
    comps: list[list[int]] = []
    for start in range(k):
        if seen[start]:
            continue
        seen[start] = True
        comp = [start]
        stack = [start]
        while stack:
            i = stack.pop()
            mi = items[i] & conn
            if not mi:
                continue
            for j in range(k):
                if not seen[j] and items[j] & mi:
                    seen[j] = True
                    comp.append(j)
                    stack.append(j)
        comps.append(sorted(comp))
    return comps


def optimal_items(
    net: Network,
    items: list[int],
    ext: int,
    obj: Objective,
    outer: bool = True,
    budget: int | None = None,
    conn: int | None = None,
    deadline: float | None = None,
):
    """Optimal tree over ``items``; returns ``(cost, pairs)`` with ``pairs`` in SSA form over item ids
    (``0..k-1`` the items, ``k + t`` the result of pair ``t``), or ``None`` if ``budget`` (split evaluations
    and subsets visited) or the ``deadline`` (a ``time.perf_counter()`` value) ran out."""
    k = len(items)
    if k == 1:
        return obj.zero(), []
    if conn is None:
        conn = ~(net.out | net.common)
    counter = [budget if budget is not None else -1, deadline]
    try:
        if outer:
            return _solve_all(net, items, ext, obj, counter)
        comps = components(items, conn)
        if len(comps) == 1:
            return _solve_connected(net, items, ext, obj, conn, counter)
        return _solve_components(net, items, ext, obj, conn, comps, counter)
    except _Budget:
        return None


def _emit(split: dict[int, int] | list[int], k: int, full: int) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []

    def rec(s: int) -> int:
        if not s & (s - 1):
            return s.bit_length() - 1
        a = split[s]
        x = rec(a)
        y = rec(s ^ a)
        pairs.append((x, y))
        return k + len(pairs) - 1

    rec(full)
    return pairs


def _solve_all(net: Network, items: list[int], ext: int, obj: Objective, counter: list[int]):
    k = len(items)
    full = (1 << k) - 1
    union = [0] * (full + 1)
    for s in range(1, full + 1):
        low = s & -s
        union[s] = union[s ^ low] | items[low.bit_length() - 1]
    prod = net.prod
    pget = net._prod.get
    by_sum = obj.by_sum
    alpha = obj.alpha
    cost: list = [None] * (full + 1)
    eff = [0] * (full + 1)
    split = [0] * (full + 1)
    for i in range(k):
        cost[1 << i] = (0, 0)
        eff[1 << i] = items[i]
    left = counter[0]
    deadline = counter[1]
    ticks = 0
    for s in range(3, full + 1):
        if not s & (s - 1):
            continue
        low = s & -s
        rest = s ^ low
        ks = union[s] & (ext | union[full ^ s])
        size_s = prod(ks)
        not_ks = ~ks
        best = None
        best_a = 0
        sub = rest
        while sub:
            # a = sub | low runs over all proper subsets containing the lowest item, except s itself at
            # the start (sub == rest gives a == s, skipped by starting one below).
            sub = (sub - 1) & rest
            a = sub | low
            b = s ^ a
            ca = cost[a]
            cb = cost[b]
            if by_sum:
                lb = ca[0] + cb[0]
                if best is not None and lb >= best[0]:
                    continue
                inv = eff[a] | eff[b]
                f = pget(inv)
                if f is None:
                    f = prod(inv)
                if inv & not_ks:
                    f += f
                c = (lb + (f + alpha * size_s if alpha else f), max(ca[1], cb[1], size_s))
            else:
                m = max(ca[0], cb[0], size_s)
                if best is not None and m > best[0]:
                    continue
                inv = eff[a] | eff[b]
                f = pget(inv)
                if f is None:
                    f = prod(inv)
                if inv & not_ks:
                    f += f
                c = (m, ca[1] + cb[1] + f)
            if best is None or c < best:
                best = c
                best_a = a
        work = 1 << bin(rest).count("1")
        if left >= 0:
            left -= work
            if left < 0:
                raise _Budget
        ticks += work
        if deadline is not None and ticks > 20_000:
            ticks = 0
            if time.perf_counter() > deadline:
                raise _Budget
        cost[s] = best
        eff[s] = ks
        split[s] = best_a
    counter[0] = left
    return cost[full], _emit(split, k, full)


def _solve_connected(net: Network, items: list[int], ext: int, obj: Objective, conn: int, counter: list[int]):
    k = len(items)
    full = (1 << k) - 1
    nbr = [0] * k
    for i in range(k):
        ci = items[i] & conn
        for j in range(k):
            if j != i and items[j] & ci:
                nbr[i] |= 1 << j
    # Connected subsets by size, grown one neighbour at a time.
    level = {1 << i for i in range(k)}
    by_size: list[list[int]] = []
    left = counter[0]
    deadline = counter[1]
    while level:
        by_size.append(sorted(level))
        if left >= 0:
            left -= len(level) * k
            if left < 0:
                raise _Budget
        if deadline is not None and time.perf_counter() > deadline:
            raise _Budget
        nxt: set[int] = set()
        for s in level:
            grow = 0
            m = s
            while m:
                low = m & -m
                grow |= nbr[low.bit_length() - 1]
                m ^= low
            grow &= ~s
            while grow:
                low = grow & -grow
                nxt.add(s | low)
                grow ^= low
        level = nxt
    union: dict[int, int] = {}

    def union_of(s: int) -> int:
        u = union.get(s)
        if u is None:
            u = 0
            m = s
            while m:
                low = m & -m
                u |= items[low.bit_length() - 1]
                m ^= low
            union[s] = u
        return u

    prod = net.prod
    pget = net._prod.get
    by_sum = obj.by_sum
    alpha = obj.alpha
    cost: dict[int, tuple] = {}
    eff: dict[int, int] = {}
    split: dict[int, int] = {}
    for i in range(k):
        cost[1 << i] = (0, 0)
        eff[1 << i] = items[i]
    ticks = 0
    for group in by_size[1:]:
        for s in group:
            low = s & -s
            rest = s ^ low
            ks = union_of(s) & (ext | union_of(full ^ s))
            size_s = prod(ks)
            not_ks = ~ks
            best = None
            best_a = 0
            sub = rest
            while sub:
                sub = (sub - 1) & rest
                a = sub | low
                ca = cost.get(a)
                if ca is None:
                    continue
                b = s ^ a
                cb = cost.get(b)
                if cb is None:
                    continue
                ea = eff[a]
                eb = eff[b]
                if not ea & eb & conn:
                    continue
                if by_sum:
                    lb = ca[0] + cb[0]
                    if best is not None and lb >= best[0]:
                        continue
                    inv = ea | eb
                    f = pget(inv)
                    if f is None:
                        f = prod(inv)
                    if inv & not_ks:
                        f += f
                    c = (lb + (f + alpha * size_s if alpha else f), max(ca[1], cb[1], size_s))
                else:
                    m = max(ca[0], cb[0], size_s)
                    if best is not None and m > best[0]:
                        continue
                    inv = ea | eb
                    f = pget(inv)
                    if f is None:
                        f = prod(inv)
                    if inv & not_ks:
                        f += f
                    c = (m, ca[1] + cb[1] + f)
                if best is None or c < best:
                    best = c
                    best_a = a
            work = 1 << bin(rest).count("1")
            if left >= 0:
                left -= work
                if left < 0:
                    raise _Budget
            ticks += work
            if deadline is not None and ticks > 20_000:
                ticks = 0
                if time.perf_counter() > deadline:
                    raise _Budget
            if best is not None:
                cost[s] = best
                eff[s] = ks
                split[s] = best_a
    counter[0] = left
    return cost[full], _emit(split, k, full)


def _solve_components(
    net: Network,
    items: list[int],
    ext: int,
    obj: Objective,
    conn: int,
    comps: list[list[int]],
    counter: list[int],
):
    k = len(items)
    pairs: list[tuple[int, int]] = []
    roots: list[int] = []
    comp_items: list[int] = []
    comp_costs = []
    unions = []
    for comp in comps:
        u = 0
        for i in comp:
            u |= items[i]
        unions.append(u)
    for c, comp in enumerate(comps):
        others = 0
        for d, u in enumerate(unions):
            if d != c:
                others |= u
        sub_ext = ext | others
        if len(comp) == 1:
            roots.append(comp[0])
            comp_items.append(items[comp[0]])
            comp_costs.append(obj.zero())
            continue
        sub_items = [items[i] for i in comp]
        cost, sub_pairs = _solve_connected(net, sub_items, sub_ext, obj, conn, counter)
        ids = list(comp)
        for x, y in sub_pairs:
            pairs.append((ids[x], ids[y]))
            ids.append(k + len(pairs) - 1)
        roots.append(ids[-1])
        comp_items.append(unions[c] & sub_ext)
        comp_costs.append(cost)
    # Combine the components.
    total = obj.zero()
    for c in comp_costs:
        total = (total[0] + c[0], max(total[1], c[1])) if obj.by_sum else (max(total[0], c[0]), total[1] + c[1])
    if len(roots) <= 10:
        top_cost, top_pairs = _solve_all(net, comp_items, ext, obj, [-1, None])
    else:
        top_cost, top_pairs = smallest_first(net, comp_items, ext, obj)
    ids = list(roots)
    for x, y in top_pairs:
        pairs.append((ids[x], ids[y]))
        ids.append(k + len(pairs) - 1)
    if obj.by_sum:
        cost = (total[0] + top_cost[0], max(total[1], top_cost[1]))
    else:
        cost = (max(total[0], top_cost[0]), total[1] + top_cost[1])
    return cost, pairs


def smallest_first(net: Network, items: list[int], ext: int, obj: Objective):
    """Combine disconnected pieces pairwise, smallest results first (outer products)."""
    import heapq

    k = len(items)
    heap = [(net.prod(m), i) for i, m in enumerate(items)]
    heapq.heapify(heap)
    eff = dict(enumerate(items))
    cost = {i: obj.zero() for i in range(k)}
    pairs: list[tuple[int, int]] = []
    alive_union = 0
    for m in items:
        alive_union |= m
    alive = set(range(k))
    while len(heap) > 1:
        _, a = heapq.heappop(heap)
        _, b = heapq.heappop(heap)
        alive.discard(a)
        alive.discard(b)
        others = 0
        for v in alive:
            others |= eff[v]
        inv = eff[a] | eff[b]
        kept = inv & (ext | others)
        f, s = net.step_cost(eff[a], eff[b], kept)
        v = k + len(pairs)
        pairs.append((a, b))
        eff[v] = kept
        cost[v] = obj.combine(cost[a], cost[b], f, s)
        alive.add(v)
        heapq.heappush(heap, (s, v))
    return cost[heap[0][1]], pairs
