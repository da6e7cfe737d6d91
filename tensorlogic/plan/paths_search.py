"""Which path algorithms run for a join, and how the best result is kept.

Order of business for a join of ``n`` operands:

1. at most ``FAST_EXHAUSTIVE`` (fast) / ``HIGH_EXHAUSTIVE`` (high) operands: the exhaustive subset DP,
   outer products included -- optimal, returned at once (and so never worse than opt_einsum's ``auto``,
   which is ``optimal`` up to 4 operands and branch-and-bound up to 8);
2. a join that falls apart under its contracted labels (parts linked only by output or batch labels) is
   planned part by part, the parts combined optimally; opt_einsum's own orders for the whole join are
   still compared;
3. chain networks (``paths_chain``): the exact interval DP, returned at once;
4. otherwise (``paths_fast.fast_search``) a pool of starting trees: opt_einsum's ``greedy`` (and ``branch-1`` up to 14
   operands, which is what ``auto`` runs there), our greedy ranked by memory delta (and by flops above
   ``FAST_SMALL_N`` operands) and bucket elimination; then interval DP over leaf orders of the best trees
   (``paths_interval``), which restructures a tree globally and is never worse than the tree it starts
   from; above ``FAST_SMALL_N`` operands also Boltzmann-sampled greedy runs, subtree reconfiguration and a
   second interval phase.  Quality mode starts from this result and searches on (below).

``effort="fast"`` (the default; the runtime plans every join of every equation with it; its search and its
``FAST_*`` limits are in ``paths_fast``) is deterministic for
a given ``seed``, with work limits rather than clocks, sized for 5 ms of CPU up to ``FAST_SMALL_N`` operands
in the whole join: ``7,500 - FAST_INTERVAL_WORK_PER_LABEL x (label incidences)`` units of interval-DP work
clamped to ``FAST_INTERVAL_WORK_MIN``..``FAST_INTERVAL_WORK`` (denser joins spend more on the greedy starts),
one guided round over a coarsened order (absorbing cherries fixed) from each of the best
``FAST_INTERVAL_STARTS`` trees, then full rounds on the best with ``FAST_INTERVAL_PATIENCE``, none started
with less left than it is predicted to take; above, a budget of ``FAST_INTERVAL_WORK_LARGE`` units,
``FAST_TRIALS // 2`` random greedy runs and ``FAST_RECONF_PASSES`` reconfiguration passes with
``FAST_RECONF_K``-item subtrees.  Joins above ``FAST_INTERVAL_MAX_N`` operands skip the interval DP and get
``FAST_RECONF_K_LARGE``-item subtrees.

``effort="high"`` spends up to ``time_budget`` seconds (default ``HIGH_TIME_BUDGET`` = 5): fast mode's result
first, a fifth of the budget on random restarts (greedy and bucket elimination), interval DP from the best
three trees, then iterated local search -- the best three trees, then fresh random trees and re-shaped
copies of the best, each polished by subtree reconfiguration with 6-, 8- and (for competitive trees, with a
few interval rounds) 10-item subtrees -- until the deadline or until ``HIGH_PATIENCE`` restarts in a row
bring nothing.  Its result depends on how much search fits in the budget, so it is reproducible only up to
timing.
"""

from __future__ import annotations

import math
import random
import time

from .paths_chain import chain_order, optimal_chain
from .paths_common import Network, Objective, Tree
from .paths_exact import components, optimal_items, smallest_first
from .paths_fast import (
    FAST_ELIMINATION_MAX_LABELS,
    FAST_ELIMINATION_MIN_N,
    FAST_RANKS,
    FAST_RECONF_MAX_N,
    FAST_SMALL_N,
    FAST_TRIALS,
    Pool,
    copy_tree,
    estimate_tuples,
    fast_reconf,
    fast_search,
)
from .paths_greedy import TupleEstimator, branch1_ssa, elimination_ssa, greedy_ssa, oe_greedy_ssa
from .paths_interval import refine
from .paths_reconf import reconfigure

__all__ = ["search", "estimate_tuples"]

FAST_EXHAUSTIVE = 8
HIGH_EXHAUSTIVE = 12
FAST_CHAIN_MAX = 160
HIGH_CHAIN_MAX = 600
FAST_DP_MAX = 16
FAST_DP_BUDGET = 3_000
HIGH_DP_MAX = 40
HIGH_DP_BUDGET = 2_000_000
HIGH_RANKS = ("flops", "delta", "size")
HIGH_RECONF_KS = (6, 8, 10)
HIGH_INTERVAL_MAX_N = 600
HIGH_INTERVAL_ROUNDS = 24
HIGH_INTERVAL_POLISH = 4
HIGH_PATIENCE = 40
HIGH_TIME_BUDGET = 5.0


def _sub_network(net: Network, members: list[int], ext: int) -> Network:
    inputs = [tuple(net.labels_of(net.masks[i])) for i in members]
    union = 0
    for i in members:
        union |= net.masks[i]
    output = tuple(net.labels_of(union & ext))
    sizes = {lab: net.size[net.bit[lab]] for term in inputs for lab in term}
    return Network(inputs, output, sizes)


def _by_components(
    net: Network, obj: Objective, effort: str, budget: float | None, seed: int, comps: list[list[int]]
) -> tuple[Tree, str]:
    """Plan each part of a join that falls apart under contracted labels (parts linked only by output or
    batch labels, or not at all) on its own, then combine the parts optimally (up to 10) or smallest first."""
    unions = []
    for comp in comps:
        u = 0
        for i in comp:
            u |= net.masks[i]
        unions.append(u)
    pairs: list[tuple[int, int]] = []
    roots: list[int] = []
    items: list[int] = []
    names: set[str] = set()
    for c, comp in enumerate(comps):
        others = 0
        for d, u in enumerate(unions):
            if d != c:
                others |= u
        ext = net.out | others
        items.append(unions[c] & ext)
        if len(comp) == 1:
            roots.append(comp[0])
            continue
        sub = _sub_network(net, comp, ext)
        share = None if budget is None else budget * len(comp) / net.n
        tree, algorithm = search(sub, obj, effort, share, seed, whole_n=net.n)
        names.add(algorithm)
        ids = list(comp)
        for x, y in tree.to_ssa():
            ids.append(net.n + len(pairs))
            pairs.append((ids[x], ids[y]))
        roots.append(ids[-1])
    if len(items) <= 10:
        _, top = optimal_items(net, items, net.out, obj, outer=True)
    else:
        _, top = smallest_first(net, items, net.out, obj)
    ids = list(roots)
    for x, y in top:
        ids.append(net.n + len(pairs))
        pairs.append((ids[x], ids[y]))
    label = " / ".join(sorted(names)) or "outer products"
    return Tree.from_ssa(net, pairs), f"{len(comps)} independent parts: {label}"


def search(
    net: Network,
    obj: Objective,
    effort: str = "fast",
    time_budget: float | None = None,
    seed: int = 0,
    estimator: TupleEstimator | None = None,
    whole_n: int = 0,
) -> tuple[Tree, str]:
    """Best tree found for ``net`` under ``obj`` and the name of the algorithm that found it (``whole_n``: the
    number of operands of the join ``net`` is a part of, which sets fast mode's work limits)."""
    n = net.n
    if n == 1:
        return Tree(net), "single"
    if n == 2:
        return Tree.from_ssa(net, [(0, 1)]), "pair"
    high = effort == "high"
    start = time.perf_counter()
    budget = (HIGH_TIME_BUDGET if time_budget is None else float(time_budget)) if high else None
    deadline = start + budget if budget is not None else None
    rng = random.Random(seed)
    pool = Pool(net, obj, estimator)
    full_ext = net.out

    if estimator is None:
        if n <= (HIGH_EXHAUSTIVE if high else FAST_EXHAUSTIVE):
            _, pairs = optimal_items(net, list(net.masks), full_ext, obj, outer=True)
            pool.add_pairs(pairs, "subset DP (exact)")
            return pool.best
        comps = components(list(net.masks), ~(net.out | net.common))
        if len(comps) > 1:
            tree, algorithm = _by_components(net, obj, effort, budget, seed, comps)
            pool.add(tree, algorithm)
            # what opt_einsum's auto would do on the whole join, so fast mode is never worse than it
            pool.add_pairs(oe_greedy_ssa(net), "greedy (opt_einsum)")
            if n <= 14:
                pool.add_pairs(branch1_ssa(net), "branch-1 (opt_einsum)")
            if high or max(n, whole_n) > FAST_SMALL_N:  # (small joins: the parts were refined already)
                pool.add_pairs(greedy_ssa(net, "flops"), "greedy (flops)")
                if n <= FAST_RECONF_MAX_N:  # (in quality mode too: the parts were polished, not the whole)
                    fast_reconf(pool, obj)
            return pool.best
        order = chain_order(net)
        if order is not None and n <= (HIGH_CHAIN_MAX if high else FAST_CHAIN_MAX):
            _, pairs = optimal_chain(net, order, obj)
            pool.add_pairs(pairs, "chain DP (exact)")
            return pool.best

    if estimator is None:
        # (quality mode starts from fast mode's result, with its own random stream, so it is never worse)
        fast_search(net, obj, rng if not high else random.Random(seed), pool, max(n, whole_n))
        if not high:
            return pool.best

    # Deterministic heuristics.
    pool.add_pairs(oe_greedy_ssa(net), "greedy (opt_einsum)")
    if n <= 14:
        pool.add_pairs(branch1_ssa(net), "branch-1 (opt_einsum)")
    if estimator is not None:
        ranks: tuple[str, ...] = ("tuples", "flops")
    else:
        ranks = HIGH_RANKS if high else FAST_RANKS
    for rank in ranks:
        pool.add_pairs(greedy_ssa(net, rank, estimator=estimator), f"greedy ({rank})")
    if estimator is not None:
        for t in range(FAST_TRIALS if not high else 32):
            pairs = greedy_ssa(net, "tuples", rng=rng, temperature=0.05 * (t + 1), estimator=estimator)
            pool.add_pairs(pairs, "random greedy (tuples)")
        return pool.best

    if high or FAST_ELIMINATION_MIN_N <= n and len(net.size) <= FAST_ELIMINATION_MAX_LABELS:
        pool.add_pairs(elimination_ssa(net), "bucket elimination")

    # Connected-subset DP while it is cheap.
    if n <= (HIGH_DP_MAX if high else FAST_DP_MAX):
        res = optimal_items(
            net,
            list(net.masks),
            full_ext,
            obj,
            outer=False,
            budget=HIGH_DP_BUDGET if high else FAST_DP_BUDGET,
            deadline=start + 0.3 * budget if high else None,
        )
        if res is not None:
            pool.add_pairs(res[1], "connected subset DP")

    def random_trial() -> None:
        costmod = rng.uniform(0.1, 4.0)
        temperature = math.exp(rng.uniform(math.log(0.001), math.log(1.0)))
        pairs = greedy_ssa(net, "costmod", rng=rng, temperature=temperature, costmod=costmod)
        pool.add_pairs(pairs, "random greedy")

    if not high:
        for _ in range(FAST_TRIALS if n <= 16 else FAST_TRIALS // 2):
            random_trial()
        if n <= FAST_RECONF_MAX_N:
            fast_reconf(pool, obj)
        return pool.best

    # Quality mode: restarts for a share of the budget, then iterated local search: polish the best few
    # distinct trees, then fresh random-greedy trees, by subtree reconfiguration with growing subtrees,
    # until the deadline or until several restarts in a row bring nothing.
    trials = 0
    trial_end = start + 0.2 * budget
    while trials < 8 or (time.perf_counter() < trial_end and trials < 256):
        random_trial()
        if trials % 4 == 0:
            pool.add_pairs(elimination_ssa(net, rng, rng.uniform(0.2, 2.0)), "random bucket elimination")
        trials += 1
        if time.perf_counter() > deadline:
            break

    def polish(tree: Tree) -> Tree:
        for k in HIGH_RECONF_KS[:-1]:
            if time.perf_counter() > deadline:
                return tree
            reconfigure(tree, obj, k=k, deadline=deadline)
        # the largest subtrees and interval rounds only for trees that are competitive
        if pool.score(tree)[0] <= 1.25 * pool.pool[0][0][0] and time.perf_counter() < deadline:
            if interval:
                tree = refine(tree, obj, rng, HIGH_INTERVAL_POLISH, patience=2, deadline=deadline)
            reconfigure(tree, obj, k=HIGH_RECONF_KS[-1], deadline=deadline)
        return tree

    # interval DP over leaf orders from the best few trees (cheap, and restructures trees globally)
    interval = n <= HIGH_INTERVAL_MAX_N
    if interval:
        for _, _, tree, algorithm in list(pool.pool[:3]):
            if time.perf_counter() > deadline:
                break
            better = refine(tree, obj, rng, HIGH_INTERVAL_ROUNDS, patience=8, deadline=deadline)
            pool.add(better, algorithm + " + interval DP over leaf orders")

    starts = [(tree, algorithm) for _, _, tree, algorithm in pool.pool[:3]]
    for tree, algorithm in starts:
        if time.perf_counter() > deadline:
            break
        pool.add(polish(copy_tree(tree)), algorithm + " + subtree reconfiguration")
    stale = 0
    restarts = 0
    while time.perf_counter() < deadline and stale < HIGH_PATIENCE:
        before = pool.pool[0][0]
        if restarts % 4 == 2:
            tree = Tree.from_ssa(net, elimination_ssa(net, rng, rng.uniform(0.2, 2.0)))
            algorithm = "random bucket elimination"
        elif restarts % 2 == 0:
            # a fresh random-greedy tree
            costmod = rng.uniform(0.1, 4.0)
            temperature = math.exp(rng.uniform(math.log(0.001), math.log(1.0)))
            tree = Tree.from_ssa(net, greedy_ssa(net, "costmod", rng=rng, temperature=temperature, costmod=costmod))
            algorithm = "random greedy"
        else:
            # the best tree, re-polished with randomly shaped subtrees
            tree, algorithm = pool.best
            tree = copy_tree(tree)
            for k in (8, 10, 12):
                if time.perf_counter() > deadline:
                    break
                reconfigure(tree, obj, k=k, deadline=deadline, rng=rng, max_passes=2)
        pool.add(polish(tree), algorithm.replace(" + subtree reconfiguration", "") + " + subtree reconfiguration")
        stale = 0 if pool.pool[0][0] < before else stale + 1
        restarts += 1
    return pool.best
