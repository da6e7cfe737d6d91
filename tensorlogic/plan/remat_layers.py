"""Rematerialisation of layered gradient programs through the exact chain dynamic program.

A gradient program of a sequential network (an MLP; any stack of layers each reading only the previous one)
is not Checkmate's linear graph node for node: each layer's backward pass is several strata (`Grad_H`,
`Adj_H`, `Grad_W`). It is one after grouping. `layer_chain(graph)` finds the grouping when it exists:

- the forward nodes form a chain, f_k reading only f_{k-1};
- every backward node joins a group b_k: a node reading forward values reads exactly one, f_k; a node reading
  none joins the group of its readers (an output read by nobody: the group of its inputs);
- a node of group b_k reads only nodes of b_k and b_{k+1}.

Group b_k is then one node of a chain (`remat.chain_graph`): its cost is the sum of its nodes' costs; its
output is what b_{k-1} reads (the adjoint carried down); its workspace is the most its nodes hold at once
beyond f_k, b_{k+1}'s carried values and its own (replayed node by node, each freed after its last reader
in the group). Outputs (the weight gradients) stay live once computed; the chain counts them as static from
the start, a slight over-estimate. The chain DP (`remat_chain.py`) solves the chain exactly; its schedule is
expanded node by node (`expand`: a group's internal values are freed after their last reader, b_{k+1}'s
carried values right after b_k's last read of them) and replayed on the real graph by `remat.simulate`, which
gives the true cost and peak. Because the chain over-estimates some peaks and the expansion frees earlier,
the chain's allowance is searched by bisection for the largest one whose expansion fits the real budget.

This is not proven optimal for the real graph (the grouping forbids, e.g., computing half a group); the
MILP's bound (`remat_milp.py`) says how far from optimal it can be.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .remat import RematGraph, Schedule, ScheduleError, Step, chain_graph, simulate, store_all


@dataclass
class LayerChain:
    """A layered graph's grouping and its chain (see the module docstring)."""

    graph: RematGraph
    fwd: list[int]  # real node of f_k
    groups: list[list[int]]  # real nodes of b_k, in topological order
    carried: list[set[int]]  # nodes of b_k read by b_{k-1}
    chain: RematGraph


def _groups(graph: RematGraph, fwd: list[int]) -> list[int] | None:
    pos = {v: k for k, v in enumerate(fwd)}
    users = graph.users()
    group: dict[int, int] = {}
    for v in range(graph.n - 1, -1, -1):  # readers first
        if not graph.backward[v]:
            continue
        fr = {pos[d] for d in graph.deps[v] if not graph.backward[d]}
        if len(fr) > 1:
            return None
        if fr:
            group[v] = fr.pop()
        elif users[v]:
            group[v] = max(group[u] for u in users[v])
        else:
            group[v] = -1  # decided below, from its inputs
    for v in range(graph.n):
        if graph.backward[v] and group[v] == -1:
            ins = [group[d] for d in graph.deps[v] if graph.backward[d]]
            if not ins:
                return None
            group[v] = min(ins)
    out = [-1] * graph.n
    for v, k in group.items():
        out[v] = k
    return out


def layer_chain(graph: RematGraph) -> LayerChain | None:
    """The grouping of a layered gradient graph into Checkmate's linear graph, or None."""
    fwd = [v for v in range(graph.n) if not graph.backward[v]]
    if not fwd or any(graph.backward[d] for v in fwd for d in graph.deps[v]):
        return None
    for k, v in enumerate(fwd):
        if set(graph.deps[v]) - ({fwd[k - 1]} if k else set()):
            return None
    group = _groups(graph, fwd)
    if group is None:
        return None
    n = len(fwd)
    groups: list[list[int]] = [[] for _ in range(n)]
    for v in range(graph.n):
        if graph.backward[v]:
            if not 0 <= group[v] < n:
                return None
            groups[group[v]].append(v)
    carried: list[set[int]] = [set() for _ in range(n)]
    for v in range(graph.n):
        if not graph.backward[v]:
            continue
        for d in graph.deps[v]:
            if graph.backward[d]:
                if group[d] not in (group[v], group[v] + 1):
                    return None
                if group[d] == group[v] + 1:
                    carried[group[d]].add(d)
            elif d != fwd[group[v]]:
                return None
    if any(o not in graph.outputs and not graph.backward[o] for o in graph.outputs) or \
            any(not graph.backward[o] for o in graph.outputs):
        return None
    return LayerChain(graph, fwd, groups, carried, _chain(graph, fwd, groups, carried))


def _chain(graph: RematGraph, fwd: list[int], groups: list[list[int]], carried: list[set[int]]) -> RematGraph:
    n = len(fwd)
    users = graph.users()
    outs = graph.outputs
    outs_of = [sum(graph.mem[v] for v in groups[k] if v in outs) for k in range(n)]
    so_far = [sum(outs_of[j] for j in range(k, n)) for k in range(n + 1)]  # outputs live once b_k is done
    cb, mb, wb = [], [], []
    for k in range(n):
        cb.append(sum(graph.cost[v] for v in groups[k]))
        mine = sum(graph.mem[v] for v in carried[k] if v not in outs) + so_far[k]
        mb.append(mine)
        # replay the group: f_k, b_{k+1}'s carried values and the outputs so far live
        held = {v for v in (carried[k + 1] if k + 1 < n else set()) if v not in outs}
        base = graph.mem[fwd[k]] + sum(graph.mem[v] for v in held) + so_far[k + 1]
        used, peak, live, done = base, base, set(held), set()
        for v in groups[k]:
            peak = max(peak, used + graph.mem[v] + graph.workspace[v])
            used += graph.mem[v]
            live.add(v)
            done.add(v)
            for d in sorted(live):
                if d not in outs and d not in carried[k] and all(u in done for u in users[d]):
                    live.discard(d)
                    used -= graph.mem[d]
        # the chain holds b_{k+1} (with the outputs so far) and b_k (with them again) while computing b_k:
        # the workspace takes the outputs counted twice off again (it may be negative)
        wb.append(peak - base - mine)
    c = chain_graph(n, [graph.cost[v] for v in fwd] + [0.0], cb, [graph.mem[v] for v in fwd] + [0.0], mb)
    c.workspace = [graph.workspace[v] for v in fwd] + [0.0] + [wb[k] for k in range(n - 1, -1, -1)]
    c.static = graph.static
    return c


def expand(lc: LayerChain, chain_steps: list[Step]) -> list[Step]:
    """The chain schedule as a schedule of the real graph (see the module docstring)."""
    g, n = lc.graph, len(lc.fwd)
    users = g.users()
    live: set[int] = set()
    steps: list[Step] = []
    computed = [0] * g.n

    def free(v: int) -> None:
        if v in live and v not in g.outputs:
            live.discard(v)
            steps.append(("free", v))

    for v in range(lc.fwd[0]):  # constants the plan puts first (Grad_Loss = 1): computed first, as there
        if g.backward[v] and not g.deps[v]:
            live.add(v)
            computed[v] += 1
            steps.append(("compute", v))
    for op, c in chain_steps:
        if c < n:
            v = lc.fwd[c]
            if op == "compute":
                live.add(v)
                steps.append(("compute", v))
            else:
                free(v)
            continue
        if c == n:  # the chain's empty loss node
            continue
        k = 2 * n - c
        if op == "free":
            for v in sorted(lc.carried[k]):
                free(v)
            continue
        nodes = lc.groups[k]
        for v in nodes:
            if computed[v] and not g.deps[v]:
                continue
            live.add(v)
            computed[v] += 1
            steps.append(("compute", v))
            for d in sorted(set(g.deps[v]) | {v}):
                if not g.backward[d] or d in lc.carried[k]:
                    continue
                if all(computed[u] for u in users[d]):
                    free(d)
    return steps


def solve_layers(graph: RematGraph, budget: float, lc: LayerChain | None = None) -> Schedule:
    """The chain DP's schedule of a layered graph within `budget` bytes (see the module docstring)."""
    from .remat_chain import ChainDP

    lc = lc or layer_chain(graph)
    if lc is None:
        raise ValueError("the layered strategy needs a sequential network's gradient graph (see remat_layers.py)")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * lc.chain.n + 1000))
    try:
        dp = ChainDP(lc.chain)
        lo, hi = graph.static, max(store_all(lc.chain).peak, budget) * 1.5
        best: tuple[float, float, list[Step]] | None = None

        def attempt(b: float) -> str:  # "low": no chain schedule; "high": its expansion is over the budget
            nonlocal best
            if dp.best(b) == float("inf"):
                return "low"
            real = expand(lc, dp.steps(b))
            try:
                cost, peak = simulate(graph, real)
            except ScheduleError:  # not expected (tests replay every expansion); never return a bad schedule
                return "high"
            if peak > budget * (1 + 1e-12):
                return "high"
            if best is None or cost < best[0]:
                best = (cost, peak, real)
            return "ok"

        if attempt(hi) != "ok":  # the chain's allowance: the budget itself, else searched up or down from it
            first = attempt(budget)
            a, b = (budget, hi) if first != "high" else (lo, budget)
            for _ in range(40):
                mid = (a + b) / 2
                if attempt(mid) == "high":
                    b = mid
                else:
                    a = mid
                if b - a <= 1e-6 * hi:
                    break
        if best is None:
            return Schedule("layers", budget, [], feasible=False, min_budget=None, optimal=False,
                            note="no chain schedule fits")
        return Schedule("layers", budget, best[2], best[0], best[1], optimal=False,
                        note="chain DP over layers (not proven optimal for the graph)")
    finally:
        sys.setrecursionlimit(limit)
