"""Checkmate's MILP for rematerialisation on any graph (Jain et al. 2020, section 4), solved by HiGHS.

Stages t = 0..N-1; stage t computes node t for the first time (nodes in topological order). Binary
variables: R[t,i] (node i is computed in stage t), S[t,i] (i is live, kept, when stage t starts),
F[t,i,k] (i is freed right after k is computed in stage t; i is k or an input of k); continuous U[t,k]
(memory in use after k is computed in stage t). Constraints:
  R[t,t] = 1;  R[t,k] <= R[t,i] + S[t,i] for each input i of k;  S[t+1,i] <= R[t,i] + S[t,i];
  R[t,i] + S[t,i] <= 1 (never recompute a kept value);  outputs, once computed, stay (S = 1, R = 0);
  U[t,0] = static + sum_i mem_i S[t,i] + mem_0 R[t,0];
  U[t,k] = U[t,k-1] - sum_{i in inputs(k-1) + {k-1}} mem_i F[t,i,k-1] + mem_k R[t,k];
  U[t,k] + workspace_k R[t,k] <= budget;
  F[t,i,k] = R[t,k] (1 - S[t+1,i]) prod_{j reads i, k < j <= t} (1 - R[t,j]), linearised with the
  hazard count h = (1 - R[t,k]) + S[t+1,i] + sum_j R[t,j]:  1 - F <= h  and  kappa F <= kappa - h.
Objective: minimise sum cost_i R[t,i]. With `budget=None` the budget is a variable and the objective is
that variable: the smallest budget any schedule meets (reported when a budget is infeasible).
Costs and sizes are scaled to at most 1 before solving. scipy.optimize.milp (HiGHS) with a time limit;
a result not proven optimal says so (`Schedule.optimal`, `note`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from .remat import RematGraph, Schedule, Step, _finish, lower_bound_budget


@dataclass
class MilpResult:
    status: str  # "optimal" | "feasible" (time limit, incumbent) | "infeasible" | "unknown" (no incumbent)
    objective: float
    R: np.ndarray | None = None  # [t, i]
    S: np.ndarray | None = None
    gap: float | None = None
    bound: float | None = None  # the solver's dual bound on the objective (graph units)


class _Model:
    """Variables and sparse constraint rows for scipy.optimize.milp."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.integer: list[int] = []
        self.rows: list[int] = []
        self.cols: list[int] = []
        self.vals: list[float] = []
        self.row_lb: list[float] = []
        self.row_ub: list[float] = []

    def var(self, lb: float = 0.0, ub: float = 1.0, integer: bool = True) -> int:
        self.lb.append(lb)
        self.ub.append(ub)
        self.integer.append(1 if integer else 0)
        return len(self.lb) - 1

    def row(self, terms: list[tuple[int, float]], lb: float, ub: float) -> None:
        r = len(self.row_lb)
        for c, v in terms:
            self.rows.append(r)
            self.cols.append(c)
            self.vals.append(v)
        self.row_lb.append(lb)
        self.row_ub.append(ub)


def _build(graph: RematGraph, budget: float | None, cost: np.ndarray, mem: np.ndarray, ws: np.ndarray,
           static: float, lower: float = 0.0, recompute_backward: bool = True):
    N = graph.n
    users = graph.users()
    m = _Model()
    R = {(t, i): m.var() for t in range(N) for i in range(t + 1)}
    S = {(t, i): m.var() for t in range(1, N) for i in range(t)}
    for t in range(N):
        m.lb[R[t, t]] = 1.0
    for i in range(N):  # without recompute_backward a backward value is computed once, in its own stage
        if graph.backward[i] and not recompute_backward:
            for t in range(i + 1, N):
                m.ub[R[t, i]] = 0.0
    for o in graph.outputs:
        for t in range(o + 1, N):
            m.ub[R[t, o]] = 0.0
            m.lb[S[t, o]] = 1.0
    B = m.var(lower, np.inf, integer=False) if budget is None else None
    for t in range(N):
        for k in range(t + 1):
            for i in set(graph.deps[k]):
                m.row([(R[t, k], 1.0), (R[t, i], -1.0)] + ([(S[t, i], -1.0)] if (t, i) in S else []), -np.inf, 0)
        for i in range(t):
            m.row([(R[t, i], 1.0), (S[t, i], 1.0)], -np.inf, 1.0)
        if t + 1 < N:
            for i in range(t + 1):
                m.row([(S[t + 1, i], 1.0), (R[t, i], -1.0)] + ([(S[t, i], -1.0)] if (t, i) in S else []),
                      -np.inf, 0)
    # memory and frees
    for t in range(N):
        U = [m.var(0.0, np.inf, integer=False) for _ in range(t + 1)]
        F: dict[tuple[int, int], int] = {}
        for k in range(t + 1):
            for i in sorted(set(graph.deps[k]) | {k}):
                f = F[i, k] = m.var()
                later = [R[t, j] for j in users[i] if k < j <= t]
                if i in graph.outputs:
                    m.ub[f] = 0.0
                    continue
                nxt = [(S[t + 1, i], 1.0)] if t + 1 < N else []
                # 1 - F <= h
                m.row([(R[t, k], 1.0), (f, -1.0)] + [(x, -1.0) for x in later] + [(x, -c) for x, c in nxt],
                      -np.inf, 0.0)
                kappa = 2 + len(later)
                m.row([(f, float(kappa)), (R[t, k], -1.0)] + [(x, 1.0) for x in later] + nxt, -np.inf, kappa - 1.0)
        first = [(U[0], 1.0), (R[t, 0], -mem[0])] + [(S[t, i], -mem[i]) for i in range(t)]
        m.row(first, static, static)
        for k in range(1, t + 1):
            terms = [(U[k], 1.0), (U[k - 1], -1.0), (R[t, k], -mem[k])]
            terms += [(F[i, k - 1], mem[i]) for i in sorted(set(graph.deps[k - 1]) | {k - 1})]
            m.row(terms, 0.0, 0.0)
        for k in range(t + 1):
            terms = [(U[k], 1.0), (R[t, k], ws[k])]
            if B is None:
                m.row(terms, -np.inf, budget)
            else:
                m.row(terms + [(B, -1.0)], -np.inf, 0.0)
    c = np.zeros(len(m.lb))
    if B is None:
        for (_, i), x in R.items():
            c[x] = cost[i]
    else:  # least budget first; among those, least cost (a tie-break far below any budget difference)
        c[B] = 1.0
        eps = 1e-4 / max(float(cost.sum()) * N, 1e-30)
        for (_, i), x in R.items():
            c[x] = eps * cost[i]
    return m, R, S, c


def milp_solve(graph: RematGraph, budget: float | None, time_limit: float = 60.0,
               gap: float = 1e-6, recompute_backward: bool = True) -> MilpResult:
    """Solve Checkmate's MILP (`budget=None`: the smallest budget). Objective in the graph's own units."""
    cost_scale = max(max(graph.cost, default=1.0), 1e-30)
    mem_scale = max(max(list(graph.mem) + list(graph.workspace) + [graph.static], default=1.0), 1e-30)
    cost = np.asarray(graph.cost, float) / cost_scale
    mem = np.asarray(graph.mem, float) / mem_scale
    ws = np.asarray(graph.workspace, float) / mem_scale
    scaled_budget = None if budget is None else budget / mem_scale * (1 + 1e-9)
    lower = lower_bound_budget(graph) / mem_scale * (1 - 1e-9)
    m, R, S, c = _build(graph, scaled_budget, cost, mem, ws, graph.static / mem_scale, lower, recompute_backward)
    A = coo_matrix((m.vals, (m.rows, m.cols)), shape=(len(m.row_lb), len(m.lb))).tocsr()
    res = milp(c, integrality=np.asarray(m.integer), bounds=Bounds(m.lb, m.ub),
               constraints=LinearConstraint(A, m.row_lb, m.row_ub),
               options={"time_limit": time_limit, "mip_rel_gap": gap, "presolve": True})
    if res.x is None:
        return MilpResult("infeasible" if res.status == 2 else "unknown", np.inf)
    N = graph.n
    Rm = np.zeros((N, N), dtype=bool)
    Sm = np.zeros((N, N), dtype=bool)
    for (t, i), x in R.items():
        Rm[t, i] = res.x[x] > 0.5
    for (t, i), x in S.items():
        Sm[t, i] = res.x[x] > 0.5
    scale = mem_scale if budget is None else cost_scale
    status = "optimal" if res.status == 0 else "feasible"
    dual = getattr(res, "mip_dual_bound", None)
    bound = float(dual) * scale if dual is not None and np.isfinite(dual) else None
    return MilpResult(status, float(res.fun) * scale, Rm, Sm, getattr(res, "mip_gap", None), bound)


def steps_from(graph: RematGraph, R: np.ndarray, S: np.ndarray) -> list[Step]:
    """The schedule of a solution: per stage its computations in order, each input freed after its last
    reader in the stage unless kept for the next stage; what is not kept is freed at the stage's end."""
    N = graph.n
    users = graph.users()
    live: set[int] = set()
    steps: list[Step] = []

    def kept(t: int, i: int) -> bool:
        return i in graph.outputs or (t + 1 < N and bool(S[t + 1, i]))

    for t in range(N):
        for k in range(t + 1):
            if not R[t, k]:
                continue
            steps.append(("compute", k))
            live.add(k)
            for i in sorted(set(graph.deps[k]) | {k}):
                if i in live and not kept(t, i) and not any(R[t, j] for j in users[i] if k < j <= t):
                    live.remove(i)
                    steps.append(("free", i))
        for i in sorted(live):
            if not kept(t, i):
                live.remove(i)
                steps.append(("free", i))
    return steps


def min_budget(graph: RematGraph, time_limit: float = 60.0, recompute_backward: bool = True
               ) -> tuple[float, bool, list[Step]]:
    """The smallest budget any schedule meets (Checkmate's model), whether it is proven, and that schedule
    (empty when none was found: then the budget is only the single-node lower bound)."""
    r = milp_solve(graph, None, time_limit, recompute_backward=recompute_backward)
    if r.R is None:
        return lower_bound_budget(graph), False, []
    steps = steps_from(graph, r.R, r.S)
    return _finish(graph, "milp", None, steps).peak, r.status == "optimal", steps


def solve_milp(graph: RematGraph, budget: float, time_limit: float = 60.0, gap: float = 1e-6,
               recompute_backward: bool = True) -> Schedule:
    """The least-cost schedule within `budget` bytes by Checkmate's MILP, or infeasible with the smallest
    budget (from the budget-minimising MILP). `recompute_backward=False` computes every backward value once
    (a smaller model that HiGHS solves much faster; its optimum may cost more)."""
    r = milp_solve(graph, budget, time_limit, gap, recompute_backward) if budget >= lower_bound_budget(graph) else \
        MilpResult("infeasible", np.inf)
    if r.R is None:
        from .remat import greedy_checkpoints

        fallback = greedy_checkpoints(graph, budget)
        if fallback.feasible:  # the solver timed out without a schedule (a proven infeasible budget has none)
            fallback.strategy, fallback.optimal = "milp", False
            fallback.note = f"no MILP schedule within {time_limit:g} s: greedy checkpointing"
            return fallback
        least, proven, steps = min_budget(graph, time_limit, recompute_backward)
        if steps and r.status == "unknown" and least <= budget:  # no cost-optimal schedule, but one that fits
            return _finish(graph, "milp", budget, steps, optimal=False,
                           note=f"no schedule within {time_limit:g} s; the least-budget MILP's schedule")
        if fallback.min_budget is not None and fallback.min_budget < least:
            least, proven = fallback.min_budget, False
        if r.status == "infeasible":  # proven (by the solver or the single-node bound)
            return Schedule("milp", budget, [], feasible=False, min_budget=least, optimal=True,
                            note="" if proven else "smallest budget found, not proven")
        return Schedule("milp", budget, [], feasible=False, min_budget=least, optimal=False,
                        note=f"no schedule found within {time_limit:g} s (not proven infeasible)")
    s = _finish(graph, "milp", budget, steps_from(graph, r.R, r.S), optimal=r.status == "optimal")
    if r.status != "optimal":
        s.note = f"time limit {time_limit:g} s; relative gap {r.gap:.3g}" if r.gap is not None else "time limit"
        s.lower_bound = r.bound
    else:
        s.lower_bound = s.cost
    return s
