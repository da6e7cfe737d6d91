"""Exact dynamic program for rematerialisation on chains (Checkmate's linear graph, any costs and sizes).

The chain (`remat.chain_graph`): forward nodes f_0..f_n (f_n the loss), backward nodes b_{n-1}..b_0, f_i
reads f_{i-1}, b_i reads f_i and b_{i+1} (b_{n-1} reads f_n). Memory and cost as in `remat.py`.

Internally a virtual f_0 (the data: no cost, no bytes, always live) precedes the real f_0, so every real
value may be dropped and recomputed. Two sub-problems, each under a memory allowance M (the bytes its own
live values may take; what the callers hold is subtracted):
- S(s, e, k, M): f_s and the gradient g_e reaching segment s..e (b_{e+1}, or the loss when e = n-1) are
  live; compute b_e, ..., b_k and end with b_k live and f_s freed. k = s finishes the segment; k > s leaves
  s..k-1 to the caller, f_s having been dropped on its last use (a non-persistent checkpoint).
- F(s, k, M): the same from f_s before any gradient exists (the forward pass is part of it).
Choices: "keep": hold f_s, advance to f_j (computing f_{s+1}..f_j, keeping only the newest), solve above j
(allowance M - mem(f_s)), possibly leaving j..j2-1, then continue from f_s with the gradient b_{j2};
"jump": advance to f_j freeing f_s once f_{s+1} exists, then solve from f_j leaving s..k-1 to the caller;
base: compute b_s. With only "keep" and base this is the recursion of optimal persistent checkpointing for
heterogeneous chains (Beaumont et al. 2019, after Griewank's revolve); "jump" adds the schedules that drop
a checkpoint on its last use, which Checkmate's model allows and which are cheaper on some heterogeneous
chains. The search over states (s, e, k, M) is O(n^5) per allowance: fine for the chains of a network's
layers (n up to ~30). tests/test_remat.py checks it against exhaustive search over Checkmate's model.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache

from .remat import RematGraph, Schedule, Step, _finish

INF = math.inf


def chain_shape(graph: RematGraph) -> int | None:
    """n when `graph` is Checkmate's linear graph with n forward layers (2n+1 nodes), else None."""
    size = graph.n
    if size < 3 or size % 2 == 0:
        return None
    n = size // 2
    for v in range(size):
        want: tuple[int, ...] = () if v == 0 else (v - 1,) if v <= n else (v - 1, 2 * n - v)
        if tuple(sorted(set(graph.deps[v]))) != tuple(sorted(want)):
            return None
    if graph.outputs - {2 * n}:
        return None
    return n


class ChainDP:
    """The dynamic program over one chain; `best(M)` the least cost, `steps(M)` the schedule."""

    def __init__(self, graph: RematGraph):
        n = chain_shape(graph)
        if n is None:
            raise ValueError("the dynamic program needs a chain (forward layers, loss, backward layers)")
        # Internally a virtual f_0 (the data: no cost, no bytes, always live) comes first, so the real f_i
        # is internal i+1 and may itself be dropped and recomputed; the internal b_0 is that virtual node's
        # (nothing: the real b_0, the output, stays live). The loss is internal n+1.
        self.g, self.n = graph, n + 1
        self.fnode = [-1] + list(range(n + 1))
        self.mf = [0.0] + [graph.mem[i] for i in range(n + 1)]
        self.wf = [0.0] + [graph.workspace[i] for i in range(n + 1)]
        self.cf = [0.0] + [graph.cost[i] for i in range(n + 1)]
        self.bnode = [-1] + [2 * n - i for i in range(n)]
        self.mb = [0.0] + [graph.mem[v] for v in self.bnode[1:]]
        self.wb = [0.0] + [graph.workspace[v] for v in self.bnode[1:]]
        self.cb = [0.0] + [graph.cost[v] for v in self.bnode[1:]]
        self._S = lru_cache(maxsize=None)(self._sol)
        self._F = lru_cache(maxsize=None)(self._fwd)

    def mg(self, e: int) -> float:
        return self.mf[self.n] if e == self.n - 1 else self.mb[e + 1]

    def _advance(self, s: int, j: int, extra: float, M: float, drop: bool = False) -> float:
        """Cost of computing f_{s+1}..f_j keeping only the newest, holding `extra` bytes and f_s (or, with
        `drop`, freeing f_s once f_{s+1} is computed); INF when that exceeds M."""
        cost = 0.0
        for k in range(s + 1, j + 1):
            prev = self.mf[k - 1] if k - 1 > s else 0.0
            held = 0.0 if drop and k > s + 1 else self.mf[s]
            if held + extra + prev + self.mf[k] + self.wf[k] > M:
                return INF
            cost += self.cf[k]
        return cost

    def _sol(self, s: int, e: int, k: int, M: float) -> tuple[float, tuple]:
        """f_s and g_e live; compute b_e..b_k and end with g_{k-1} (b_k) live and f_s freed; when k > s the
        segment s..k-1 is left to the caller (f_s was dropped on its last use)."""
        if k == e + 1:
            return (0.0, ("drop",)) if s > 0 else (INF, ())
        if s == e:
            if s == 0:
                return (0.0, ("done",))
            ok = self.mf[s] + self.mg(e) + self.mb[s] + self.wb[s] <= M
            return (self.cb[s], ("base",)) if ok else (INF, ())
        best: tuple[float, tuple] = (INF, ())
        for j in range(s + 1, e + 1):  # keep f_s, advance to f_j, solve above j, come back to s
            adv = self._advance(s, j, self.mg(e), M)
            if adv == INF:
                break
            for j2 in range(j, e + 1):
                if k > j2 - 1 + 1:
                    continue
                up = self._S(j, e, j2, M - self.mf[s])[0]
                if up == INF:
                    continue
                total = adv + up + self._S(s, j2 - 1, k, M)[0]
                if total < best[0]:
                    best = (total, ("keep", j, j2))
        if s > 0 and k > s:  # f_s dropped after its last use: advance to f_j without it
            for j in range(s + 1, min(k, e) + 1):
                adv = self._advance(s, j, self.mg(e), M, drop=True)
                if adv == INF:
                    break
                total = adv + self._S(j, e, k, M)[0]
                if total < best[0]:
                    best = (total, ("jump", j))
        return best

    def _fwd(self, s: int, k: int, M: float) -> tuple[float, tuple]:
        """f_s live, no gradient yet; end with g_{k-1} live (b_k, or the loss when k = n) and f_s freed,
        leaving s..k-1 to the caller when k > s."""
        best: tuple[float, tuple] = (INF, ())
        N = self.n
        for j in range(s + 1, N + 1):
            adv = self._advance(s, j, 0.0, M)
            if adv == INF:
                break
            if j == N:
                total = adv + self._S(s, N - 1, k, M)[0]
                if total < best[0]:
                    best = (total, ("keep", j, N))
                continue
            for j2 in range(j, N + 1):
                if k > j2:
                    continue
                up = self._F(j, j2, M - self.mf[s])[0]
                if up == INF:
                    continue
                total = adv + up + self._S(s, j2 - 1, k, M)[0]
                if total < best[0]:
                    best = (total, ("keep", j, j2))
        if s > 0 and k > s:
            for j in range(s + 1, k + 1):
                adv = self._advance(s, j, 0.0, M, drop=True)
                if adv == INF:
                    break
                rest = 0.0 if j == N else self._F(j, k, M)[0]
                if adv + rest < best[0]:
                    best = (adv + rest, ("jump", j))
        return best

    def best(self, budget: float) -> float:
        """Least total cost within `budget` bytes (INF when none fits)."""
        return self._F(0, 0, budget - self.g.static)[0]

    def steps(self, budget: float) -> list[Step]:
        out: list[Step] = []
        self._emit_f(0, 0, budget - self.g.static, out)
        return out

    def _emit_advance(self, s: int, j: int, out: list[Step], drop: bool = False) -> None:
        for k in range(s + 1, j + 1):
            out.append(("compute", self.fnode[k]))
            if k - 1 > s or (drop and k - 1 == s and s > 0):
                out.append(("free", self.fnode[k - 1]))

    def _grad_node(self, e: int) -> int:
        return self.fnode[self.n] if e == self.n - 1 else self.bnode[e + 1]

    def _emit_f(self, s: int, k: int, M: float, out: list[Step]) -> None:
        _, choice = self._F(s, k, M)
        if choice[0] == "keep":
            _, j, j2 = choice
            self._emit_advance(s, j, out)
            if j == self.n:
                self._emit_s(s, self.n - 1, k, M, out)
            else:
                self._emit_f(j, j2, M - self.mf[s], out)
                self._emit_s(s, j2 - 1, k, M, out)
        else:
            _, j = choice
            self._emit_advance(s, j, out, drop=True)
            if j < self.n:
                self._emit_f(j, k, M, out)

    def _emit_s(self, s: int, e: int, k: int, M: float, out: list[Step]) -> None:
        _, choice = self._S(s, e, k, M)
        kind = choice[0]
        if kind == "drop":
            out.append(("free", self.fnode[s]))
        elif kind == "base":
            out += [("compute", self.bnode[s]), ("free", self.fnode[s]), ("free", self._grad_node(e))]
        elif kind == "keep":
            _, j, j2 = choice
            self._emit_advance(s, j, out)
            self._emit_s(j, e, j2, M - self.mf[s], out)
            self._emit_s(s, j2 - 1, k, M, out)
        elif kind == "jump":
            _, j = choice
            self._emit_advance(s, j, out, drop=True)
            self._emit_s(j, e, k, M, out)


def min_chain_budget(dp: ChainDP, hi: float) -> float:
    """The smallest budget with a schedule: the least of the candidate budgets (static bytes plus sums of
    live sizes; exact for integer sizes) found by bisection between the lower bound and `hi`."""
    from .remat import lower_bound_budget

    lo = lower_bound_budget(dp.g)
    if dp.best(lo) < INF:
        return lo
    sizes = dp.mf + dp.mb + dp.wf + dp.wb
    integral = all(float(x).is_integer() for x in sizes + [dp.g.static])
    if integral:
        a, b = int(math.ceil(lo)), int(math.ceil(hi))  # dp.best(b) is finite
        while a < b:
            mid = (a + b) // 2
            if dp.best(mid) < INF:
                b = mid
            else:
                a = mid + 1
        return float(a)
    a, b = lo, hi
    for _ in range(60):
        mid = (a + b) / 2
        if dp.best(mid) < INF:
            b = mid
        else:
            a = mid
    return b


def solve_chain(graph: RematGraph, budget: float) -> Schedule:
    """The optimal schedule of a chain under `budget` bytes, or an infeasible result with the least budget."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * graph.n + 1000))
    try:
        dp = ChainDP(graph)
        if dp.best(budget) == INF:
            from .remat import store_all

            least = min_chain_budget(dp, store_all(graph).peak)
            return Schedule("dp", budget, [], feasible=False, min_budget=least, optimal=True)
        return _finish(graph, "dp", budget, dp.steps(budget), optimal=True)
    finally:
        sys.setrecursionlimit(limit)
