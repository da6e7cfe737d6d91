"""Slicing: fit a contraction under a memory limit by looping over some indices.

Fixing a label to one value at a time (a *slice*) removes it from every intermediate, so each slice's
largest intermediate shrinks by that label's extent while the whole join is done ``extent`` times.  When
no contraction order fits ``memory_limit``, ``choose_slices`` greedily picks, one at a time, the label that
most reduces the largest intermediate per extra flop (``log(largest_before / largest_after) /
log(flops_after / flops_before)``; labels that cost no extra flops -- e.g. output labels -- win outright),
re-plans the per-slice network after each pick (keeping the old order if it is better), and stops as soon
as the largest per-slice intermediate fits.  Slices of a summed label are added up; slices of an output
label fill different parts of the output.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .paths_common import Network, Objective, Tree, bits

__all__ = ["choose_slices"]


def _largest(tree: Tree) -> int:
    return max(tree.size.values(), default=0)


def _fit_key(tree: Tree, limit: int) -> tuple[int, int]:
    return (max(_largest(tree) - limit, 0), tree.total_flops())


def choose_slices(
    net: Network,
    tree: Tree,
    obj: Objective,
    memory_limit: int,
    replan: Callable[[Network], Tree],
) -> tuple[int, Tree, list[str]]:
    """Returns ``(sliced label mask, per-slice tree, notes)``; raises ``ValueError`` if even slicing every
    label does not fit."""
    sliced = 0
    count = 1
    cur = tree
    notes: list[str] = []
    all_labels = (1 << len(net.size)) - 1
    while _largest(cur) > memory_limit:
        if memory_limit < 1 or (all_labels & ~sliced) == 0:
            raise ValueError(
                f"memory_limit={memory_limit:,} elements cannot be met even by slicing over every index "
                "(each slice still needs one element)"
            )
        largest = _largest(cur)
        flops = cur.total_flops() * count
        cand = 0
        for v, s in cur.size.items():
            if s > memory_limit:
                cand |= cur.eff[v]
        cand &= ~sliced
        best = None
        for b in bits(cand):
            d = net.size[b]
            if d <= 1:
                continue
            new_largest = 0
            new_flops = 0
            for v, (x, y) in cur.children.items():
                s = cur.size[v]
                if (cur.eff[v] >> b) & 1:
                    s //= d
                new_largest = max(new_largest, s)
                f = cur.flops[v]
                if ((cur.eff[x] | cur.eff[y]) >> b) & 1:
                    f //= d
                new_flops += f
            new_flops *= count * d
            gain = math.log(largest / max(new_largest, 1))
            extra = math.log(max(new_flops, 1) / max(flops, 1))
            score = gain / extra if extra > 1e-12 else math.inf
            key = (-score, new_flops, new_largest, b)
            if best is None or key < best[0]:
                best = (key, b, new_largest, new_flops)
        if best is None:
            # Every label of the oversized intermediates has extent <= 1: slice the largest remaining label.
            rest = [b for b in bits(all_labels & ~sliced) if net.size[b] > 1]
            if not rest:
                raise ValueError(
                    f"memory_limit={memory_limit:,} elements cannot be met: the intermediates that exceed it "
                    "have no index left to slice"
                )
            b = max(rest, key=lambda x: (net.size[x], -x))
            best = (None, b, None, None)
        b = best[1]
        sliced |= 1 << b
        count *= net.size[b]
        sub = net.with_unit_labels(sliced)
        kept_order = Tree.from_ssa(sub, cur.to_ssa())
        fresh = replan(sub)
        cur = fresh if _fit_key(fresh, memory_limit) < _fit_key(kept_order, memory_limit) else kept_order
        notes.append(
            f"slice {net.names[b]!r} (extent {net.size[b]}): largest intermediate {largest:,} -> "
            f"{_largest(cur):,} elements, flops {flops:,} -> {cur.total_flops() * count:,}"
        )
    del obj
    return sliced, cur, notes
