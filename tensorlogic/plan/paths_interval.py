"""Tree refinement by interval DP over leaf orders.

Fix a linear order of the operands.  The best contraction tree whose every node contracts a *contiguous
interval* of that order is found exactly by the O(n^3) interval DP of the matrix-chain problem (with the
general cost model: an interval keeps the labels it shares with the output or with operands outside it).
Any tree is an interval tree of its own leaf order -- of every leaf order obtained by swapping the two
children of some of its nodes -- so the DP's tree is never worse than the tree the order came from.

``refine`` uses that as a local search: read the best tree's leaves in some order (``guided_order`` first:
each node's children oriented towards the neighbouring blocks they share most labels with; then random
reorientations), run the interval DP, keep the result if it is better, repeat.  Each round can restructure
the tree globally (not just small subtrees), which is what greedy trees usually need: on lattices, MERA
networks and the language-model instances of the einsum benchmark one to a few rounds from a greedy or
bucket-elimination tree reach the best known costs.

The DP is run with the current best cost as a cap: an interval whose result alone (or whose cost plus its
result, which its parent step must at least pay) exceeds the cap is dropped at once.
"""

from __future__ import annotations

import random
import time

from .paths_chain import optimal_chain
from .paths_common import Network, Objective, Tree

__all__ = ["absorbing_cherries", "guided_order", "interval_dp", "leaf_order", "refine"]


def leaf_order(tree: Tree, rng: random.Random | None = None, flip: float = 0.5) -> list[int]:
    """Leaves of ``tree`` left to right; with ``rng``, the children of each node swapped with probability
    ``flip``."""
    n = tree.net.n
    out: list[int] = []
    stack = [tree.root]
    children = tree.children
    rand = rng.random if rng is not None else None
    while stack:
        u = stack.pop()
        if u < n:
            out.append(u)
            continue
        a, b = children[u]
        if rand is not None and rand() < flip:
            a, b = b, a
        stack.append(b)
        stack.append(a)
    return out


def guided_order(tree: Tree, rng: random.Random | None = None, flip: float = 0.0) -> list[int]:
    """Leaves of ``tree`` with the children of each node oriented so that each child sits next to the
    neighbouring block it shares the most with: going down from the root with the labels of the blocks left
    and right of the current node, children ``(a, b)`` are placed as ``a b`` when
    ``|a & left| * |b & right| >= |b & left| * |a & right|`` (extents multiplied), else as ``b a``.  Distant
    operands that share little end up far apart, so the intervals the DP builds have small boundaries.  With
    ``rng`` the orientation is reversed with probability ``flip`` (and exact ties are broken at random)."""
    net = tree.net
    n = net.n
    prod = net.prod
    children = tree.children
    eff = tree.eff
    rand = rng.random if rng is not None else None
    out: list[int] = []
    stack: list[tuple[int, int, int]] = [(tree.root, 0, 0)]
    while stack:
        v, left, right = stack.pop()
        if v < n:
            out.append(v)
            continue
        a, b = children[v]
        ea = eff[a]
        eb = eff[b]
        keep = prod(ea & left) * prod(eb & right)
        swap = prod(eb & left) * prod(ea & right)
        if swap > keep or (swap == keep and rand is not None and rand() < 0.5):
            a, b, ea, eb = b, a, eb, ea
        if rand is not None and flip and rand() < flip:
            a, b, ea, eb = b, a, eb, ea
        stack.append((b, ea, right))
        stack.append((a, left, eb))
    return out


def interval_dp(
    net: Network,
    masks: list[int],
    ext: int,
    obj: Objective,
    cap: int | float | None = None,
    work: list[int] | None = None,
    limit: int | None = None,
) -> tuple[tuple, list[tuple[int, int]]] | None:
    """Best interval tree over items in the order given (``masks``: the labels each carries; ``ext``: labels
    needed outside all of them): ``((primary, secondary), ssa_pairs)`` with ``0..k-1`` the items.

    With ``cap``, only trees of primary cost at most ``cap`` are looked for (``None`` if there is none): an
    interval whose result alone is larger than ``cap``, or that cannot be built within it, is dropped at
    once, which skips most of the work on networks where distant operands share little.  Objectives summed
    over steps only: the secondary criterion (largest intermediate) breaks exact ties of the primary cost.
    ``work[0]`` is increased by the number of split points examined (plus four per interval); past
    ``limit`` of them the DP gives up and returns ``None``."""
    n = len(masks)
    prefix = [0] * (n + 1)
    for i in range(n):
        prefix[i + 1] = prefix[i] | masks[i]
    suffix = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] | masks[i]
    out = ext
    prod = net.prod
    pget = net._prod.get
    alpha = obj.alpha
    # row_*[i][j] and col_*[j][i] both hold interval i..j (cost, kept labels), so the inner loop reads flat
    # lists.  A step's flops are size(result) * prod(summed labels) (times 2 when any is summed): the summed
    # labels are small sets whose products the cache holds, and a step that sums nothing costs its result size.
    inf = float("inf")
    if cap is None:
        cap = inf
    row_c = [[inf] * n for _ in range(n)]  # (dropped intervals keep cost inf)
    col_c = [[inf] * n for _ in range(n)]
    row_e = [[0] * n for _ in range(n)]
    col_e = [[0] * n for _ in range(n)]
    big = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    uni = list(masks)  # uni[i]: union of masks i..j for the current length
    # live intervals (finite cost) by start (their ends) and by end (their starts, minus one: the split points
    # they give): a split needs both halves live, so the inner loop runs over the shorter of the two lists
    ends: list[list[int]] = [[i] for i in range(n)]
    starts: list[list[int]] = [[i - 1] for i in range(n)]
    steps = 0
    for i in range(n):
        row_e[i][i] = col_e[i][i] = masks[i]
        row_c[i][i] = col_c[i][i] = 0
    if limit is None:
        limit = inf
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            if steps > limit:
                if work is not None:
                    work[0] += steps
                return None
            j = i + length - 1
            u = uni[i] | masks[j]
            uni[i] = u
            ks = u & (out | prefix[i] | suffix[j + 1])
            size = pget(ks)
            if size is None:
                size = prod(ks)
            steps += 4  # (an interval's own bookkeeping costs about four split points)
            if size > cap:
                continue
            rc = row_c[i]
            cc = col_c[j]
            left_ends = ends[i]
            right_starts = starts[j]
            splits = left_ends if len(left_ends) <= len(right_starts) else right_starts
            steps += len(splits)
            re = row_e[i]
            ce = col_e[j]
            nks = ~ks
            best = cap
            best_m = -1
            for m in splits:
                c = rc[m] + cc[m + 1] + size
                if c > best:
                    continue
                summed = (re[m] | ce[m + 1]) & nks
                if summed:
                    q = pget(summed)
                    if q is None:
                        q = prod(summed)
                    c += (q + q - 1) * size
                if c < best or best_m < 0 and c == best:
                    best = c
                    best_m = m
                elif c == best:
                    bg = big[i]
                    if max(bg[m], big[m + 1][j]) < max(bg[best_m], big[best_m + 1][j]):
                        best_m = m
            if best_m < 0 or length < n and best + size > cap:
                # (a proper interval's result still enters its parent's step, which costs at least its size)
                continue
            if alpha:
                best += alpha * size
            left_ends.append(j)
            right_starts.append(i - 1)
            rc[j] = cc[i] = best
            re[j] = ce[i] = ks
            split[i][j] = best_m
            big[i][j] = max(size, big[i][best_m], big[best_m + 1][j])
    if work is not None:
        work[0] += steps
    if row_c[0][n - 1] == inf:
        return None
    pairs: list[tuple[int, int]] = []
    ids: dict[tuple[int, int], int] = {(i, i): i for i in range(n)}
    stack: list[tuple[int, int, bool]] = [(0, n - 1, False)]
    while stack:  # post-order without recursion (orders can be long)
        i, j, done = stack.pop()
        if i == j:
            continue
        m = split[i][j]
        if done:
            pairs.append((ids[i, m], ids[m + 1, j]))
            ids[i, j] = n + len(pairs) - 1
        else:
            stack.append((i, j, True))
            stack.append((m + 1, j, False))
            stack.append((i, m, False))
    return (row_c[0][n - 1], big[0][n - 1]), pairs


def refine(
    tree: Tree,
    obj: Objective,
    rng: random.Random,
    rounds: int,
    patience: int | None = None,
    work: int | None = None,
    used: list[int] | None = None,
    deadline: float | None = None,
    coarsen: bool = False,
    expect: int = 0,
) -> Tree:
    """Best tree found by interval DPs over leaf orders of the best tree so far: the guided order first, then
    alternately randomly flipped orders and guided orders with random reversals.  At most ``rounds`` rounds;
    stops early after ``patience`` rounds without gain, once ``work`` split points have been examined (added
    to ``used[0]``; a round that would overrun it is abandoned, and none is started with less left than the
    last one took), or at ``deadline`` (a ``time.perf_counter()`` value).

    With ``coarsen``, the starting tree's *absorbing cherries* (two operands contracted first into a result no
    larger than the larger of them: a vector absorbed into a matrix, a Hadamard product) stay fixed and
    enter the DP as one item each: fewer items make a round several times cheaper (its work grows as the
    cube of the items), and such steps are part of nearly every good tree.  ``expect``: the work a round is
    expected to take (no round starts with less than that left)."""
    net = tree.net
    if net.n < 3:
        return tree
    best = tree
    score = tree.score(obj)
    partner: dict[int, int] = {}
    item_mask: dict[int, int] = {}
    if coarsen and obj.by_sum:
        for v, (a, b) in absorbing_cherries(tree):
            partner[a] = b
            partner[b] = a
            item_mask[min(a, b)] = tree.eff[v]
    stale = 0
    done = [0]
    last = expect
    for r in range(rounds):
        if work is not None and work - done[0] <= last:
            break  # (not enough left for a round like the last one)
        if deadline is not None and time.perf_counter() > deadline:
            break
        if r == 0:
            order = guided_order(best)
        elif r % 2:
            order = leaf_order(best, rng, 0.5)
        else:
            order = guided_order(best, rng, 0.2)
        before = done[0]
        if partner:
            res = _coarse_round(best, obj, order, partner, item_mask, score, done, work)
            last = done[0] - before
            if res is not None:
                best = res
                score = res.score(obj)
                stale = 0
            else:
                stale += 1
                if patience is not None and stale >= patience:
                    break
            continue
        if obj.by_sum:
            limit = None if work is None else work - done[0]
            res = interval_dp(net, [net.masks[i] for i in order], net.out, obj, score[0], done, limit)
        else:  # the largest intermediate first: the general interval DP (no cap), its pairs over operands
            res = optimal_chain(net, order, obj)
            done[0] += net.n * net.n * net.n // 6
            order = list(range(net.n))
        last = done[0] - before
        if res is not None and res[0] < score:
            ids = list(order)
            new = Tree(net)
            for x, y in res[1]:
                ids.append(new.join(ids[x], ids[y]))
            best = new
            score = new.score(obj)
            stale = 0
        else:
            stale += 1
            if patience is not None and stale >= patience:
                break
    if used is not None:
        used[0] += done[0]
    return best


def absorbing_cherries(tree: Tree) -> list[tuple[int, tuple[int, int]]]:
    """Nodes of ``tree`` contracting two operands into a result no larger than the larger of them."""
    net = tree.net
    n = net.n
    prod = net.prod
    masks = net.masks
    out = []
    for v, (a, b) in tree.children.items():
        if a < n and b < n and tree.size[v] <= max(prod(masks[a]), prod(masks[b])):
            out.append((v, (a, b)))
    return out


def _coarse_round(
    best: Tree,
    obj: Objective,
    order: list[int],
    partner: dict[int, int],
    item_mask: dict[int, int],
    score: tuple,
    done: list[int],
    work: int | None,
) -> Tree | None:
    """One interval-DP round over ``order`` with each fixed cherry as one item; the better tree or None."""
    net = best.net
    items: list[int] = []  # a leaf, or the smaller leaf of a fixed cherry
    masks: list[int] = []
    fixed = 0
    seen: set[int] = set()
    for leaf in order:
        other = partner.get(leaf)
        if other is None:
            items.append(leaf)
            masks.append(net.masks[leaf])
        elif other not in seen:  # (a cherry's two leaves are adjacent in every leaf order of the tree)
            seen.add(leaf)
            items.append(min(leaf, other))
            masks.append(item_mask[min(leaf, other)])
    new = Tree(net)
    ids: list[int] = []
    for it in items:
        other = partner.get(it)
        if other is None:
            ids.append(it)
        else:
            node = new.join(it, other)
            fixed += new.flops[node] + (obj.alpha * new.size[node] if obj.alpha else 0)
            ids.append(node)
    if len(items) < 2:
        return None
    limit = None if work is None else work - done[0]
    res = interval_dp(net, masks, net.out, obj, score[0] - fixed, done, limit)
    if res is None:
        return None
    for x, y in res[1]:
        ids.append(new.join(ids[x], ids[y]))
    return new if new.score(obj) < score else None
