"""Subtree reconfiguration: local exact re-optimisation of a contraction tree.

Take an internal node ``v`` and grow a subtree below it by repeatedly opening the most expensive node of its
frontier, until the frontier has ``k`` nodes.  The frontier nodes are items of a small exact subset DP
(``paths_exact.optimal_items``) whose external labels are the labels ``v`` keeps; if the DP's order is
cheaper than the current inside of the subtree, it replaces it.  Because a node's cost depends only on the
leaf sets of its children, nothing outside the subtree changes cost, so every accepted move strictly lowers
the cost of the whole tree.  Passes repeat over all nodes, most expensive first, until a pass improves
nothing or the deadline passes (this is cotengra's ``subtree_reconfigure``, here with an exact DP that
includes outer products for small ``k``).  With ``rng`` the frontier node to open is sampled (weighted by
cost) instead of always the most expensive, which explores different subtrees on later passes.
"""

from __future__ import annotations

import random
import time

from .paths_common import Objective, Tree
from .paths_exact import optimal_items

__all__ = ["reconfigure"]


def _subtree_cost(tree: Tree, obj: Objective, inner: list[int]):
    if obj.by_sum:
        if obj.alpha:
            total = sum(tree.flops[v] + obj.alpha * tree.size[v] for v in inner)
        else:
            total = sum(tree.flops[v] for v in inner)
        return (total, max(tree.size[v] for v in inner))
    return (max(tree.size[v] for v in inner), sum(tree.flops[v] for v in inner))


def _select(tree: Tree, v: int, k: int, rng: random.Random | None) -> tuple[list[int], list[int]]:
    children = tree.children
    frontier = list(children[v])
    inner = [v]
    while len(frontier) < k:
        opens = [f for f in frontier if f in children]
        if not opens:
            break
        if rng is None:
            pick = max(opens, key=lambda f: (tree.flops[f], f))
        else:
            weights = [float(tree.flops[f]) + 1.0 for f in opens]
            pick = rng.choices(opens, weights=weights)[0]
        frontier.remove(pick)
        frontier.extend(children[pick])
        inner.append(pick)
    return frontier, inner


def _replace(tree: Tree, v: int, frontier: list[int], inner: list[int], pairs: list[tuple[int, int]]) -> None:
    for u in inner:
        if u != v:
            del tree.children[u]
            del tree.leafset[u]
            del tree.eff[u]
            del tree.flops[u]
            del tree.size[u]
            tree.parent.pop(u, None)
    ids = list(frontier)
    last = len(pairs) - 1
    for t, (x, y) in enumerate(pairs):
        node = v if t == last else tree.new_id()
        tree.join(ids[x], ids[y], node=node)  # (join moves tree.root; the caller restores it)
        ids.append(node)


def reconfigure(
    tree: Tree,
    obj: Objective,
    k: int = 8,
    deadline: float | None = None,
    rng: random.Random | None = None,
    outer_max: int = 7,
    max_passes: int = 50,
    min_share: float = 0.0,
) -> bool:
    """Improve ``tree`` in place; returns whether anything improved.  Subtrees whose current cost is below
    ``min_share`` of the whole tree's are skipped (a quick mode: they cannot gain much)."""
    net = tree.net
    if net.n < 3:
        return False
    root = tree.root
    any_improved = False
    conn = ~(net.out | net.common)
    for _ in range(max_passes):
        improved = False
        floor = tree.score(obj)[0] * min_share if min_share else 0
        order = sorted(tree.children, key=lambda u: (-tree.flops[u], u))
        for v in order:
            if v not in tree.children:
                continue
            if deadline is not None and time.perf_counter() > deadline:
                return any_improved
            frontier, inner = _select(tree, v, k, rng)
            if len(inner) < 2:
                continue
            current = _subtree_cost(tree, obj, inner)
            if current[0] < floor:
                continue
            items = [tree.eff[f] for f in frontier]
            res = optimal_items(net, items, tree.eff[v], obj, outer=len(items) <= outer_max, conn=conn)
            if res is None:
                continue
            cost, pairs = res
            if cost < current:
                _replace(tree, v, frontier, inner, pairs)
                tree.root = root
                improved = True
                any_improved = True
        if not improved:
            break
    return any_improved
