"""Greedy contraction orders: deterministic variants and Boltzmann-sampled random restarts.

``greedy_ssa`` contracts, at every step, a pair of operands chosen by a ranking of candidate steps.
Candidates are pairs sharing a *connecting* label (not in the output, not held by every operand), or, once
none remain, every pair (outer products).  A heap with lazy deletion keeps a run at about O(n^2 log n):
the labels a pair keeps do not change while both operands are alive (a label held by a third operand stays
held by whatever that operand is contracted into), so a candidate's cost is computed once.

Rankings (``rank``):

* ``"flops"``: cheapest step first, ties by memory delta (result size minus input sizes);
* ``"size"``: smallest result first;
* ``"delta"``: largest memory reduction first (opt_einsum's ``memory-removed``);
* ``"costmod"``: cotengra's random-greedy cost ``size - costmod * (size_a + size_b)``;
* ``"tuples"``: smallest estimated join result first (sparse operands, see ``TupleEstimator``).

With ``temperature > 0`` the choice is Boltzmann-sampled among the ``nbranch`` best candidates
(probability ~ ``exp(-(cost - cost_min) / (temperature * max(1, |cost_min|)))``, as opt_einsum's and
cotengra's random greedy do), driven by a seeded ``random.Random`` so runs are reproducible.

``oe_greedy_ssa`` and ``branch1_ssa`` re-implement opt_einsum's ``greedy`` and ``branch-1`` heuristics (the
paths opt_einsum's ``auto`` takes beyond 8 operands) in this module's encoding, so the planner can always
consider the order ``auto`` would pick and is never worse than it.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict

from .paths_common import Network, bits

__all__ = ["TupleEstimator", "branch1_ssa", "greedy_ssa", "oe_greedy_ssa"]


class TupleEstimator:
    """Join-size estimates for sparse operands, as a relational query optimiser makes them.

    An operand with ``T`` stored tuples over labels of extents ``d_l`` is assumed uniform and independent:
    label ``l`` takes ``min(d_l, T)`` distinct values.  Joining ``A`` and ``B`` gives
    ``|A| * |B| / prod over shared labels of max(distinct_A(l), distinct_B(l))`` tuples; projecting onto the
    kept labels (summing the others) caps that at the product of the kept labels' distinct counts.
    """

    def __init__(self, net: Network, nnz: dict[int, int]):
        self.net = net
        self.stats: dict[int, tuple[float, dict[int, float]]] = {}
        for i, m in enumerate(net.masks):
            dense = net.prod(m)
            t = float(min(max(int(nnz.get(i, dense)), 0), dense))
            self.stats[i] = (t, {b: float(min(net.size[b], t)) for b in bits(m)})

    def join(self, a: int, b: int, kept: int) -> tuple[float, dict[int, float]]:
        ta, da = self.stats[a]
        tb, db = self.stats[b]
        est = ta * tb
        d: dict[int, float] = {}
        for lab, va in da.items():
            vb = db.get(lab)
            if vb is None:
                d[lab] = va
            else:
                top = max(va, vb)
                if top > 0:
                    est /= top
                d[lab] = min(va, vb)
        for lab, vb in db.items():
            if lab not in d:
                d[lab] = vb
        cap = 1.0
        kd: dict[int, float] = {}
        for lab in bits(kept):
            v = d.get(lab, 1.0)
            cap *= v
            kd[lab] = v
        est = min(est, cap)
        for lab in kd:
            kd[lab] = min(kd[lab], est)
        return est, kd


def greedy_ssa(
    net: Network,
    rank: str = "flops",
    rng: random.Random | None = None,
    temperature: float = 0.0,
    costmod: float = 1.0,
    nbranch: int = 8,
    estimator: TupleEstimator | None = None,
) -> list[tuple[int, int]]:
    """One greedy run; returns SSA pairs (ids ``0..n-1`` operands, ``n + t`` the result of pair ``t``)."""
    bit_list = net.bit_list
    n = net.n
    if n <= 1:
        return []
    out = net.out
    conn = ~(out | net.common)
    prod = net.prod
    eff: dict[int, int] = dict(enumerate(net.masks))
    osize: dict[int, int] = {i: prod(m) for i, m in eff.items()}
    count = [o.bit_count() if hasattr(o, "bit_count") else bin(o).count("1") for o in net.owners]
    ge2 = 0
    ge3 = 0
    for b, c in enumerate(count):
        if c >= 2:
            ge2 |= 1 << b
        if c >= 3:
            ge3 |= 1 << b
    # owners restricted to connecting labels, as sets of alive node ids
    holders: dict[int, set[int]] = defaultdict(set)
    for i, m in eff.items():
        for b in bit_list(m & conn):
            holders[b].add(i)

    heap: list = []
    leaf: dict[int, int] = {i: 1 << i for i in range(n)}
    pair_cache = net._pairs
    pair_sizes = net.pair_sizes
    est_stats = estimator.stats if estimator is not None else None

    def push(i: int, j: int) -> None:
        if i > j:
            i, j = j, i
        ls = leaf[i] | leaf[j]
        hit = pair_cache.get(ls)  # a pair's result depends only on its leaf set: shared across runs
        if hit is None:
            ei, ej = eff[i], eff[j]
            inv = ei | ej
            both = ei & ej
            kept = (inv & out) | (both & ge3) | ((inv ^ both) & ge2)
            flops, size = pair_sizes(ei, ej, osize[i], osize[j], kept)
            if inv != kept:
                flops += flops
            if len(pair_cache) < 500_000:
                pair_cache[ls] = (kept, size, flops)
        else:
            kept, size, flops = hit
        delta = size - osize[i] - osize[j]
        if rank == "flops":
            key: tuple = (flops, delta)
        elif rank == "size":
            key = (size, delta, flops)
        elif rank == "delta":
            key = (delta, flops)
        elif rank == "costmod":
            key = (size - costmod * (osize[i] + osize[j]), flops)
        else:  # tuples
            est, _ = estimator.join(i, j, kept)
            key = (est, flops)
        heapq.heappush(heap, (key, i, j, kept, size))

    seen: set[tuple[int, int]] = set()
    for hs in holders.values():
        hs_sorted = sorted(hs)
        for x, i in enumerate(hs_sorted):
            for j in hs_sorted[x + 1 :]:
                if (i, j) not in seen:
                    seen.add((i, j))
                    push(i, j)
    del seen

    alive = set(range(n))
    pairs: list[tuple[int, int]] = []
    all_pairs = False
    thermal = temperature > 0 and rng is not None
    while len(alive) > 1:
        chosen = None
        if thermal:
            choices = []
            while heap and len(choices) < nbranch:
                item = heapq.heappop(heap)
                if item[1] in alive and item[2] in alive:
                    choices.append(item)
            if choices:
                if len(choices) == 1:
                    chosen = choices[0]
                else:
                    cmin = choices[0][0][0]
                    temp = temperature * max(1.0, abs(cmin))
                    weights = []
                    for c in choices:
                        x = (c[0][0] - cmin) / temp
                        weights.append(math.exp(-x) if x < 700 else 0.0)
                    r = rng.random() * sum(weights)
                    pick = len(choices) - 1
                    for idx, w in enumerate(weights):
                        r -= w
                        if r <= 0:
                            pick = idx
                            break
                    chosen = choices.pop(pick)
                    for c in choices:
                        heapq.heappush(heap, c)
        else:
            while heap:
                item = heapq.heappop(heap)
                if item[1] in alive and item[2] in alive:
                    chosen = item
                    break
        if chosen is None:
            # No two remaining operands share a connecting label: consider every pair.
            all_pairs = True
            rest = sorted(alive)
            for x, i in enumerate(rest):
                for j in rest[x + 1 :]:
                    push(i, j)
            continue
        _, i, j, kept, size = chosen
        k = n + len(pairs)
        pairs.append((i, j))
        alive.discard(i)
        alive.discard(j)
        ei, ej = eff.pop(i), eff.pop(j)
        for b in bit_list(ei & conn):
            holders[b].discard(i)
        for b in bit_list(ej & conn):
            holders[b].discard(j)
        touched = ei | ej
        while touched:
            bit = touched & -touched
            touched ^= bit
            b = bit.bit_length() - 1
            c = count[b] - (1 if ei & bit else 0) - (1 if ej & bit else 0) + (1 if kept & bit else 0)
            count[b] = c
            if c >= 2:
                ge2 |= bit
            else:
                ge2 &= ~bit
            if c >= 3:
                ge3 |= bit
            else:
                ge3 &= ~bit
        eff[k] = kept
        osize[k] = size
        leaf[k] = leaf[i] | leaf[j]
        if est_stats is not None:
            est_stats[k] = estimator.join(i, j, kept)
        alive.add(k)
        if all_pairs:
            neighbours = alive - {k}
        else:
            neighbours = set()
            for b in bit_list(kept & conn):
                neighbours |= holders[b]
                holders[b].add(k)
            neighbours.discard(k)
        for m in sorted(neighbours):
            push(m, k)
    return pairs


# ------------------------------------------------------------------------- opt_einsum's own heuristics


def oe_greedy_ssa(net: Network) -> list[tuple[int, int]]:
    """opt_einsum's ``greedy`` (Hadamard products first, then largest memory reduction, then outer products
    smallest first), with labels held by every operand treated as output labels, as opt_einsum does."""
    bit_list = net.bit_list
    n = net.n
    if n <= 1:
        return []
    prod = net.prod
    output = net.out | net.common
    remaining: dict[int, int] = {}
    path: list[tuple[int, int]] = []
    next_id = n
    for ssa_id, key in enumerate(net.masks):
        if key in remaining:
            path.append((remaining[key], ssa_id))
            remaining[key] = next_id
            next_id += 1
        else:
            remaining[key] = ssa_id
    dim_to_keys: dict[int, set[int]] = defaultdict(set)
    for key in remaining:
        for dim in bit_list(key & ~output):
            dim_to_keys[dim].add(key)
    ref2 = 0
    ref3 = 0
    for dim, keys in dim_to_keys.items():
        if len(keys) >= 2:
            ref2 |= 1 << dim
        if len(keys) >= 3:
            ref3 |= 1 << dim
    footprints = {key: prod(key) for key in remaining}
    pair_sizes = net.pair_sizes

    def candidate(k1: int, k2: int):
        either = k1 | k2
        two = k1 & k2
        one = either ^ two
        k12 = (either & output) | (two & ref3) | (one & ref2)
        f1 = footprints[k1]
        f2 = footprints[k2]
        cost = pair_sizes(k1, k2, f1, f2, k12)[1] - f1 - f2
        id1, id2 = remaining[k1], remaining[k2]
        if id1 > id2:
            k1, id1, k2, id2 = k2, id2, k1, id1
        return (cost, id2, id1), k1, k2, k12

    queue: list = []
    for keys in dim_to_keys.values():
        ordered = sorted(keys, key=remaining.__getitem__)
        for x, k1 in enumerate(ordered[:-1]):
            heapq.heappush(queue, min(candidate(k1, k2) for k2 in ordered[x + 1 :]))
    while queue:
        _, k1, k2, k12 = heapq.heappop(queue)
        if k1 not in remaining or k2 not in remaining:
            continue
        id1 = remaining.pop(k1)
        id2 = remaining.pop(k2)
        for dim in bit_list(k1 & ~output):
            dim_to_keys[dim].discard(k1)
        for dim in bit_list(k2 & ~output):
            dim_to_keys[dim].discard(k2)
        path.append((id1, id2))
        if k12 in remaining:
            path.append((remaining[k12], next_id))
            next_id += 1
        else:
            for dim in bit_list(k12 & ~output):
                dim_to_keys[dim].add(k12)
        remaining[k12] = next_id
        next_id += 1
        for dim in bit_list((k1 | k2) & ~output):
            c = len(dim_to_keys[dim])
            bit = 1 << dim
            if c <= 1:
                ref2 &= ~bit
                ref3 &= ~bit
            elif c == 2:
                ref2 |= bit
                ref3 &= ~bit
            else:
                ref2 |= bit
                ref3 |= bit
        footprints[k12] = prod(k12)
        k2s = set()
        for dim in bit_list(k12):
            ks = dim_to_keys.get(dim)
            if ks:
                k2s |= ks
        k2s.discard(k12)
        if k2s:
            heapq.heappush(queue, min(candidate(k12, k2) for k2 in k2s))
    final = [(prod(key & output), ssa_id, key) for key, ssa_id in remaining.items()]
    heapq.heapify(final)
    _, id1, k1 = heapq.heappop(final)
    while final:
        _, id2, k2 = heapq.heappop(final)
        path.append((min(id1, id2), max(id1, id2)))
        k12 = (k1 | k2) & output
        _, id1, k1 = heapq.heappushpop(final, (prod(k12), next_id, k12))
        next_id += 1
    return path


def branch1_ssa(net: Network) -> list[tuple[int, int]]:
    """opt_einsum's ``branch-1`` (used by ``auto`` for 9 to 14 operands): at each step the candidate with
    the largest memory reduction among pairs sharing any label (all pairs if none do), skipping candidates
    whose running flops exceed 4x the best seen at that depth."""
    bit_list = net.bit_list
    n = net.n
    if n <= 1:
        return []
    out = net.out
    prod = net.prod
    inputs = list(net.masks)
    count = [o.bit_count() if hasattr(o, "bit_count") else bin(o).count("1") for o in net.owners]
    remaining = set(range(n))
    path: list[tuple[int, int]] = []
    flops = 0
    size = 0
    best_progress: dict[int, float] = {}
    cache: dict[tuple[int, int], tuple[int, int, int]] = {}

    def assess(i: int, j: int):
        key = (inputs[i], inputs[j])  # (by label sets, as opt_einsum caches: the kept labels of the first pair seen)
        hit = cache.get(key)
        if hit is None:
            k1, k2 = inputs[i], inputs[j]
            either = k1 | k2
            shared = k1 & k2
            keep = 0
            for b in bit_list(either):
                if (out >> b) & 1 or count[b] - ((k1 >> b) & 1) - ((k2 >> b) & 1) > 0:
                    keep |= 1 << b
            k12 = either & keep
            f12 = prod(either) * (2 if shared & ~keep else 1)
            hit = cache[key] = (k12, f12, prod(k12))
        k12, f12, s12 = hit
        new_flops = flops + f12
        new_size = max(size, s12)
        depth = len(inputs)
        bp = best_progress.get(depth, math.inf)
        if new_flops < bp:
            best_progress[depth] = new_flops
        elif new_flops > 4 * bp:
            return None
        cost = s12 - prod(inputs[i]) - prod(inputs[j])
        return (cost, f12, new_flops, new_size, (i, j), k12)

    while len(remaining) > 1:
        candidates = []
        for i, j in _combinations(remaining):
            if i > j:
                i, j = j, i
            if not inputs[i] & inputs[j]:
                continue
            c = assess(i, j)
            if c:
                heapq.heappush(candidates, c)
        if not candidates:
            for i, j in _combinations(remaining):
                if i > j:
                    i, j = j, i
                c = assess(i, j)
                if c:
                    heapq.heappush(candidates, c)
        _, f12, new_flops, new_size, (i, j), k12 = heapq.heappop(candidates)
        k1, k2 = inputs[i], inputs[j]
        for b in bit_list(k1 | k2):
            count[b] += ((k12 >> b) & 1) - ((k1 >> b) & 1) - ((k2 >> b) & 1)
        path.append((i, j))
        remaining = (remaining - {i, j}) | {len(inputs)}
        inputs.append(k12)
        flops, size = new_flops, new_size
    return path


def _combinations(s: set[int]):
    items = list(s)  # the iteration order of the set, as itertools.combinations(s, 2) would see it
    for x, i in enumerate(items):
        for j in items[x + 1 :]:
            yield i, j


# ------------------------------------------------------------------------------- variable elimination


def elimination_ssa(net: Network, rng: random.Random | None = None, temperature: float = 0.0) -> list[tuple[int, int]]:
    """Bucket elimination, the classic order for graphical models: repeatedly pick the summed label whose
    *bucket* (every operand holding it) has the smallest combined extent (min-weight heuristic, Boltzmann-
    sampled among the best few with ``rng``), contract the bucket pairwise (smallest result first), and
    finish with outer products of what is left, smallest first.  Good on dense hypergraphs where many
    operands share each label."""
    bit_list = net.bit_list
    n = net.n
    if n <= 1:
        return []
    out = net.out
    prod = net.prod
    eff: dict[int, int] = dict(enumerate(net.masks))
    leaf: dict[int, int] = {i: 1 << i for i in range(n)}
    holders: dict[int, set[int]] = defaultdict(set)
    for i, m in eff.items():
        for b in bit_list(m & ~out):
            holders[b].add(i)
    pairs: list[tuple[int, int]] = []
    kept_cache = net._kept
    # bucket weight of every label held by two or more operands, updated only for the labels a contraction
    # touches (recomputing all of them per elimination dominated the run on dense joins)
    weight: dict[int, int] = {}

    def reweigh(lab: int) -> None:
        hs = holders[lab]
        if len(hs) >= 2:
            u = 0
            for h in hs:
                u |= eff[h]
            weight[lab] = prod(u)
        else:
            weight.pop(lab, None)

    def kept_of(ls: int, inv: int) -> int:
        kept = kept_cache.get(ls)
        if kept is None:
            kept = net.kept(ls, inv)
            if len(kept_cache) < 200_000:
                kept_cache[ls] = kept
        return kept

    def contract(a: int, b: int) -> int:
        v = n + len(pairs)
        pairs.append((a, b))
        ea, eb = eff.pop(a), eff.pop(b)
        ls = leaf.pop(a) | leaf.pop(b)
        kept = kept_of(ls, ea | eb)
        eff[v] = kept
        leaf[v] = ls
        touched = (ea | eb) & ~out
        for lab in bit_list(touched):
            hs = holders[lab]
            hs.discard(a)
            hs.discard(b)
            if (kept >> lab) & 1:
                hs.add(v)
        for lab in bit_list(touched):
            reweigh(lab)
        return v

    for lab in list(holders):
        reweigh(lab)
    while weight:
        if rng is not None and temperature > 0 and len(weight) > 1:
            scored = sorted((w, lab) for lab, w in weight.items())
            choices = scored[:6]
            cmin = math.log2(max(choices[0][0], 1))
            weights = [math.exp(-(math.log2(max(c, 1)) - cmin) / temperature) for c, _ in choices]
            pick = rng.choices([lab for _, lab in choices], weights=weights)[0]
        else:
            pick = min((w, lab) for lab, w in weight.items())[1]
        bucket = sorted(holders[pick])
        while len(bucket) > 1:
            best = None
            for x, a in enumerate(bucket):
                for b in bucket[x + 1 :]:
                    inv = eff[a] | eff[b]
                    kept = kept_of(leaf[a] | leaf[b], inv)
                    key = (prod(kept), prod(inv), a, b)
                    if best is None or key < best:
                        best = key
            _, _, a, b = best
            v = contract(a, b)
            bucket = [h for h in bucket if h not in (a, b)] + [v]
    rest = sorted(eff, key=lambda v: (prod(eff[v]), v))
    while len(rest) > 1:
        a, b = rest[0], rest[1]
        v = contract(a, b)
        rest = sorted(rest[2:] + [v], key=lambda u: (prod(eff[u]), u))
    return pairs
