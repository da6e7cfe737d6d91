"""Exact order for chain (linear) networks: the classic O(n^3) matrix-chain interval DP, generalised.

A join is a *chain* when its operands can be ordered so that each shares contracted labels only with its
neighbours, ignoring labels that are in the output or held by every operand (batch labels), and labels of a
single operand.  Matrix chains (``ab,bc,cd,...``), batched chains (``xab,xbc,...->xad``) and chains with
open legs on the way all qualify.  Contracting two non-adjacent operands of a chain is an outer product in
the contracted labels, so the optimum is found among trees that only ever contract contiguous intervals;
the DP below finds the best of those exactly, with the general cost model (a node keeps the labels of its
interval that occur in the output or outside the interval).
"""

from __future__ import annotations

from .paths_common import Network, Objective

__all__ = ["chain_order", "optimal_chain"]


def chain_order(net: Network) -> list[int] | None:
    """Operand positions in chain order, or ``None`` if the join is not a chain (or has <= 2 operands)."""
    n = net.n
    if n <= 2:
        return None
    conn = ~(net.out | net.common)
    nbr: list[list[int]] = [[] for _ in range(n)]
    edges = 0
    for b, owners in enumerate(net.owners):
        if not (conn >> b) & 1:
            continue
        holders = owners.bit_count() if hasattr(owners, "bit_count") else bin(owners).count("1")
        if holders <= 1:
            continue
        if holders > 2:
            return None
        low = owners & -owners
        i = low.bit_length() - 1
        j = (owners ^ low).bit_length() - 1
        if j not in nbr[i]:
            nbr[i].append(j)
            nbr[j].append(i)
            edges += 1
            if len(nbr[i]) > 2 or len(nbr[j]) > 2:
                return None
    if edges != n - 1:
        return None
    ends = [i for i in range(n) if len(nbr[i]) == 1]
    if len(ends) != 2:
        return None
    order = [min(ends)]
    prev = -1
    while len(order) < n:
        cur = order[-1]
        nxt = [j for j in nbr[cur] if j != prev]
        if not nxt:
            return None
        prev = cur
        order.append(nxt[0])
    if len(set(order)) != n:
        return None
    return order


def optimal_chain(net: Network, order: list[int], obj: Objective) -> tuple[tuple, list[tuple[int, int]]]:
    """Best interval tree over operands in ``order``; returns ``(cost, ssa_pairs)`` over operand positions."""
    n = len(order)
    masks = [net.masks[i] for i in order]
    prefix = [0] * (n + 1)
    for i in range(n):
        prefix[i + 1] = prefix[i] | masks[i]
    suffix = [0] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] | masks[i]
    out = net.out
    prod = net.prod
    pget = net._prod.get
    by_sum = obj.by_sum
    alpha = obj.alpha
    # eff[i][j]: labels carried by the result of interval i..j (raw labels for single operands).
    eff = [[0] * n for _ in range(n)]
    cost: list[list] = [[None] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    uni = [[0] * n for _ in range(n)]
    for i in range(n):
        uni[i][i] = masks[i]
        eff[i][i] = masks[i]
        cost[i][i] = (0, 0)
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            u = uni[i][j - 1] | masks[j]
            uni[i][j] = u
            ks = u & (out | prefix[i] | suffix[j + 1])
            size_s = prod(ks)
            not_ks = ~ks
            best = None
            best_k = i
            row_i = cost[i]
            eff_i = eff[i]
            for m in range(i, j):
                ca = row_i[m]
                cb = cost[m + 1][j]
                if by_sum:
                    lb = ca[0] + cb[0]
                    if best is not None and lb >= best[0]:
                        continue
                    inv = eff_i[m] | eff[m + 1][j]
                    f = pget(inv)
                    if f is None:
                        f = prod(inv)
                    if inv & not_ks:
                        f += f
                    c = (lb + (f + alpha * size_s if alpha else f), max(ca[1], cb[1], size_s))
                else:
                    mx = max(ca[0], cb[0], size_s)
                    if best is not None and mx > best[0]:
                        continue
                    inv = eff_i[m] | eff[m + 1][j]
                    f = pget(inv)
                    if f is None:
                        f = prod(inv)
                    if inv & not_ks:
                        f += f
                    c = (mx, ca[1] + cb[1] + f)
                if best is None or c < best:
                    best = c
                    best_k = m
            cost[i][j] = best
            eff[i][j] = ks
            split[i][j] = best_k
    pairs: list[tuple[int, int]] = []
    ids: dict[tuple[int, int], int] = {(i, i): order[i] for i in range(n)}
    stack: list[tuple[int, int, bool]] = [(0, n - 1, False)]
    while stack:  # post-order without recursion (chains can be long)
        i, j, done = stack.pop()
        if i == j:
            continue
        m = split[i][j]
        if done:
            pairs.append((ids[i, m], ids[m + 1, j]))
            ids[i, j] = net.n + len(pairs) - 1
        else:
            stack.append((i, j, True))
            stack.append((m + 1, j, False))
            stack.append((i, m, False))
    return cost[0][n - 1], pairs
