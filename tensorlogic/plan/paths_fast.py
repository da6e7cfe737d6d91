"""Fast mode's search beyond the exact cases, and the pool of best trees every search keeps.

``fast_search`` (what ``paths_search.search`` runs for a join that is neither small enough for the exhaustive
DP nor a chain): cheap starting trees -- opt_einsum's own ``greedy`` (and ``branch-1`` up to 14 operands,
what ``auto`` runs there, so the result is never worse than ``auto``), our greedy ranked by memory delta (and
by flops above ``FAST_SMALL_N`` operands) and bucket elimination -- then interval DP over leaf orders of the
best trees (``paths_interval``); above ``FAST_SMALL_N`` operands also Boltzmann-sampled greedy runs, subtree
reconfiguration and a second interval phase.  Limits are work counts, not clocks, sized for 5 ms of CPU up
to ``FAST_SMALL_N`` operands (see ``fast_search`` and docs/planner.md).
"""

from __future__ import annotations

import math
import random

from .paths_common import Network, Objective, Tree
from .paths_greedy import TupleEstimator, branch1_ssa, elimination_ssa, greedy_ssa, oe_greedy_ssa
from .paths_interval import absorbing_cherries, refine
from .paths_reconf import reconfigure

__all__ = ["Pool", "copy_tree", "estimate_tuples", "fast_interval", "fast_reconf", "fast_search"]

FAST_TRIALS = 4
FAST_RANKS = ("delta",)
FAST_RANKS_LARGE = ("flops", "delta")
FAST_SMALL_N = 30
FAST_INTERVAL_WORK = 5_000
FAST_INTERVAL_WORK_MIN = 3_000
FAST_INTERVAL_WORK_PER_LABEL = 33
FAST_INTERVAL_WORK_LARGE = 400_000
FAST_INTERVAL_ROUNDS = 40
FAST_INTERVAL_PATIENCE = 4
FAST_INTERVAL_STARTS = 3
FAST_INTERVAL_MAX_N = 128
FAST_INTERVAL_MULTI_MAX_N = 64
FAST_RECONF_K = 5
FAST_RECONF_K_LARGE = 7
FAST_RECONF_K_OUTER = 5
FAST_RECONF_MIN_SHARE = 0.01
FAST_RECONF_PASSES = 2
FAST_RECONF_MAX_N = 400
FAST_ELIMINATION_MIN_N = 31
FAST_ELIMINATION_MAX_LABELS = 400


def estimate_tuples(net: Network, estimator: TupleEstimator, tree: Tree) -> dict[int, float]:
    """Estimated tuple count of every internal node of ``tree`` (keyed by node id)."""
    est: dict[int, float] = {}
    stats: dict[int, tuple[float, dict[int, float]]] = {i: estimator.stats[i] for i in range(net.n)}
    saved = estimator.stats
    estimator.stats = stats
    try:
        for v in tree.internal_postorder():
            a, b = tree.children[v]
            stats[v] = estimator.join(a, b, tree.eff[v])
            est[v] = stats[v][0]
    finally:
        estimator.stats = saved
    return est


class Pool:
    """The best distinct trees found so far (at most 8, best first, by the objective's score or, for sparse
    joins, by the estimated tuples), with the name of the algorithm that found each."""

    def __init__(self, net: Network, obj: Objective, estimator: TupleEstimator | None):
        self.net = net
        self.obj = obj
        self.estimator = estimator
        self.pool: list[tuple[tuple, int, Tree, str]] = []  # (score, seq, tree, algorithm), best first
        self.seen: set[tuple] = set()
        self.seq = 0

    def score(self, tree: Tree) -> tuple:
        if self.estimator is not None:
            est = estimate_tuples(self.net, self.estimator, tree)
            return (sum(est.values()), tree.total_flops(), max(tree.size.values(), default=0))
        return self.obj.score(list(tree.flops.values()), list(tree.size.values()))

    def add(self, tree: Tree, algorithm: str) -> tuple:
        s = self.score(tree)
        if s not in self.seen:
            self.seen.add(s)
            self.seq += 1
            self.pool.append((s, self.seq, tree, algorithm))
            self.pool.sort(key=lambda e: (e[0], e[1]))
            del self.pool[8:]
        return s

    def add_pairs(self, pairs: list[tuple[int, int]], algorithm: str) -> tuple:
        return self.add(Tree.from_ssa(self.net, pairs), algorithm)

    @property
    def best(self) -> tuple[Tree, str]:
        _, _, tree, algorithm = self.pool[0]
        return tree, algorithm


def copy_tree(tree: Tree) -> Tree:
    """An independent copy of ``tree`` (reconfiguration changes trees in place)."""
    return Tree.from_ssa(tree.net, tree.to_ssa())


def fast_reconf(pool: Pool, obj: Objective) -> None:
    tree, algorithm = pool.best
    tree = copy_tree(tree)
    # joins too large for the interval phase get larger subtrees (their only global improvement step)
    if reconfigure(
        tree,
        obj,
        k=FAST_RECONF_K if tree.net.n <= FAST_INTERVAL_MAX_N else FAST_RECONF_K_LARGE,
        max_passes=FAST_RECONF_PASSES,
        outer_max=FAST_RECONF_K_OUTER,
        min_share=FAST_RECONF_MIN_SHARE,
    ):
        pool.add(tree, algorithm + " + subtree reconfiguration")


def fast_search(net: Network, obj: Objective, rng: random.Random, pool: Pool, whole_n: int) -> tuple[Tree, str]:
    """Fast mode beyond the exact cases: cheap starting trees (opt_einsum's own orders among them, so the
    result is never worse than its ``auto``), then interval DP over randomly flipped leaf orders of the best
    tree for a fixed amount of work; beyond ``FAST_SMALL_N`` operands also random greedy runs and subtree
    reconfiguration.  ``whole_n`` is the size of the join this network is part of (the time target is set
    by the whole join)."""
    n = net.n
    small = whole_n <= FAST_SMALL_N
    pool.add_pairs(oe_greedy_ssa(net), "greedy (opt_einsum)")
    if n <= 14:
        pool.add_pairs(branch1_ssa(net), "branch-1 (opt_einsum)")
    for rank in FAST_RANKS if small else FAST_RANKS_LARGE:
        pool.add_pairs(greedy_ssa(net, rank), f"greedy ({rank})")
    if len(net.size) <= FAST_ELIMINATION_MAX_LABELS:
        pool.add_pairs(elimination_ssa(net), "bucket elimination")
    if not small:
        for _ in range(FAST_TRIALS // 2):
            costmod = rng.uniform(0.1, 4.0)
            temperature = math.exp(rng.uniform(math.log(0.001), math.log(1.0)))
            pairs = greedy_ssa(net, "costmod", rng=rng, temperature=temperature, costmod=costmod)
            pool.add_pairs(pairs, "random greedy")
    interval = n <= FAST_INTERVAL_MAX_N
    if small:
        # the greedy starts cost more on denser joins: what is left of the time target goes to the interval DP
        incidences = sum(m.bit_count() for m in net.masks)
        work = max(FAST_INTERVAL_WORK_MIN, min(FAST_INTERVAL_WORK, 7_500 - FAST_INTERVAL_WORK_PER_LABEL * incidences))
    else:
        work = FAST_INTERVAL_WORK_LARGE
    if interval:
        # several starts on small and medium joins (different greedy trees lead to different local optima);
        # on large ones a round is costly and the budget goes to the best tree
        nstarts = FAST_INTERVAL_STARTS if n <= FAST_INTERVAL_MULTI_MAX_N else 1
        fast_interval(pool, obj, rng, nstarts, work if small else work // 2, small)
    if not small and n <= FAST_RECONF_MAX_N:
        fast_reconf(pool, obj)
        if interval:
            fast_interval(pool, obj, rng, 1, work // 2, small)
    return pool.best


def fast_interval(pool: Pool, obj: Objective, rng: random.Random, nstarts: int, work: int, small: bool) -> None:
    """Interval DP over leaf orders of the best ``nstarts`` trees within ``work`` split points.  Small joins
    (a tight time target): the guided order of each start, coarsened (its absorbing cherries as one item
    each: a cheaper round), one round each while a round like the last one fits, then full rounds on the best
    tree if one is predicted to fit.  Otherwise each start in turn gets an equal share of what is
    left, with patience (some starts need several rounds before they overtake the others)."""
    starts = [(tree, algorithm) for _, _, tree, algorithm in pool.pool[:nstarts]]
    tag = " + interval DP over leaf orders"
    used = [0]
    if not small:
        for k, (tree, algorithm) in enumerate(starts):
            share = (work - used[0]) // (len(starts) - k)
            better = refine(tree, obj, rng, FAST_INTERVAL_ROUNDS, FAST_INTERVAL_PATIENCE, share, used)
            if better is not tree:
                pool.add(better, algorithm + tag)
        return
    last = 0
    for tree, algorithm in starts:
        if work - used[0] <= last:
            break
        before = used[0]
        better = refine(tree, obj, rng, 1, work=work - used[0], used=used, coarsen=True)
        last = used[0] - before
        if better is not tree:
            pool.add(better, algorithm + tag)
    tree, algorithm = pool.best
    # the starts' rounds were over coarsened orders: a full round costs about (n / items)^2.5 times more
    items = tree.net.n - len(absorbing_cherries(tree))
    expect = int(last * (tree.net.n / max(items, 1)) ** 2.5)
    if work - used[0] > expect:
        better = refine(tree, obj, rng, FAST_INTERVAL_ROUNDS, FAST_INTERVAL_PATIENCE, work - used[0], expect=expect)
    elif work - used[0] > last:  # (no full round fits: more coarsened ones)
        better = refine(tree, obj, rng, FAST_INTERVAL_ROUNDS, FAST_INTERVAL_PATIENCE, work - used[0], expect=last,
                        coarsen=True)
    else:
        return
    if better is not tree:
        pool.add(better, algorithm.replace(tag, "") + tag)
