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
Costs and sizes are scaled to at most 1 before solving. HiGHS with a time limit, through the bindings
scipy ships (`scipy.optimize._highspy`), which take a warm start: the best heuristic schedule (`warm_start`:
the layered chain DP or greedy checkpointing) read as stages (`stages_of`), with the frees and memory it
implies. Without those bindings, scipy.optimize.milp (no warm start). A result not proven optimal says so
(`Schedule.optimal`, `note`) and keeps the solver's bound (`Schedule.lower_bound`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from .remat import RematGraph, Schedule, Step, _finish, forward_first, forward_order, lower_bound_budget


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
        self.F: list[dict[tuple[int, int], int]] = []  # per stage: (i, k) -> the column of F[t,i,k]
        self.U: list[list[int]] = []  # per stage: the columns of U[t,k]

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
        m.F.append(F)
        m.U.append(U)
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


def stages_of(graph: RematGraph, steps: list[Step]) -> tuple[np.ndarray, np.ndarray] | None:
    """A schedule as Checkmate's stages (R, S), or None when it does not have their form (stage t ends with
    the first computation of node t; within a stage, nodes are computed in index order, each at most once).
    A value the schedule frees in a stage before reading it there is not kept into that stage (the MILP
    counts a kept value for the whole stage). The MILP's own frees (after the last read in a stage, unless
    kept) then never hold more than the schedule did, so a schedule within the budget is a solution."""
    N = graph.n
    R = np.zeros((N, N), dtype=bool)
    S = np.zeros((N, N), dtype=bool)
    stages: list[list[Step]] = [[]]
    for op, v in steps:
        stages[-1].append((op, v))
        if op == "compute" and v == len(stages) - 1:
            stages.append([])
    if len(stages) != N + 1 or any(op == "compute" for op, _ in stages[N]):
        return None
    live: set[int] = set()
    for t in range(N):
        first: dict[int, str] = {}
        last = -1
        for op, v in stages[t]:
            if op == "compute":
                if v <= last or v > t or R[t, v]:
                    return None
                R[t, v], last = True, v
                for d in graph.deps[v]:
                    first.setdefault(d, "read")
            else:
                first.setdefault(v, "free")
        for i in live:
            if first.get(i) != "free":
                S[t, i] = True
        for op, v in stages[t]:
            if op == "compute":
                live.add(v)
            else:
                live.discard(v)
    return R, S


def _highs(c, A, row_lb, row_ub, lb, ub, integer, time_limit: float, gap: float, start):
    """HiGHS through scipy's bundled bindings, with `start` ((column, value) pairs, a partial solution that
    HiGHS completes) as a warm start; scipy.optimize.milp (no warm start) when the bindings are missing.
    Returns (x or None, status: 0 optimal, 1 time limit, 2 infeasible, 3 other; dual bound; gap)."""
    try:
        import scipy.optimize._highspy._core as h
    except ImportError:
        h = None
    if h is None or not hasattr(h, "_Highs"):
        res = milp(c, integrality=np.asarray(integer), bounds=Bounds(lb, ub),
                   constraints=LinearConstraint(A, row_lb, row_ub),
                   options={"time_limit": time_limit, "mip_rel_gap": gap, "presolve": True})
        status = 0 if res.status == 0 else 2 if res.status == 2 else 1 if res.x is not None else 3
        return res.x, status, getattr(res, "mip_dual_bound", None), getattr(res, "mip_gap", None)
    csc = A.tocsc()
    lp = h.HighsLp()
    lp.num_col_, lp.num_row_ = len(c), A.shape[0]
    lp.a_matrix_.num_col_, lp.a_matrix_.num_row_ = len(c), A.shape[0]
    lp.a_matrix_.format_ = h.MatrixFormat.kColwise
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = np.asarray(c, float), np.asarray(lb, float), np.asarray(ub, float)
    lp.row_lower_, lp.row_upper_ = np.asarray(row_lb, float), np.asarray(row_ub, float)
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = csc.indptr, csc.indices, csc.data
    lp.integrality_ = [h.HighsVarType(int(i)) for i in integer]
    solver = h._Highs()
    for key, val in (("output_flag", False), ("time_limit", float(time_limit)), ("mip_rel_gap", float(gap)),
                     ("presolve", "on")):
        solver.setOptionValue(key, val)
    solver.passModel(lp)
    if start:
        idx = np.asarray([k for k, _ in start], dtype=np.int32)
        solver.setSolution(len(idx), idx, np.asarray([v for _, v in start], dtype=np.float64))
    solver.run()
    ms = solver.getModelStatus()
    info = solver.getInfo()
    has = info.objective_function_value != h.kHighsInf and int(info.primal_solution_status) == 2
    x = np.asarray(solver.getSolution().col_value) if has else None
    if ms == h.HighsModelStatus.kOptimal:
        status = 0
    elif ms == h.HighsModelStatus.kInfeasible:
        status, x = 2, None
    else:
        status = 1 if x is not None else 3
    return x, status, info.mip_dual_bound, info.mip_gap


def _start_values(graph: RematGraph, m: _Model, R: dict, S: dict, R0: np.ndarray, S0: np.ndarray,
                  mem: np.ndarray, static: float) -> list[tuple[int, float]]:
    """Every column's value for the stages (R0, S0): the frees and memory they imply (as the constraints
    define them), so that HiGHS can take the start as it is."""
    N = graph.n
    users = graph.users()
    out = [(x, float(R0[t, i])) for (t, i), x in R.items()] + [(x, float(S0[t, i])) for (t, i), x in S.items()]
    for t in range(N):
        kept = S0[t + 1] if t + 1 < N else np.zeros(N, dtype=bool)
        freed: dict[tuple[int, int], float] = {}
        for (i, k), x in m.F[t].items():
            f = bool(R0[t, k]) and i not in graph.outputs and not kept[i] and \
                not any(R0[t, j] for j in users[i] if k < j <= t)
            freed[i, k] = float(f)
            out.append((x, float(f)))
        u = static + sum(mem[i] for i in range(t) if S0[t, i]) + mem[0] * R0[t, 0]
        out.append((m.U[t][0], u))
        for k in range(1, t + 1):
            u += mem[k] * R0[t, k] - sum(mem[i] * freed[i, k - 1] for i in set(graph.deps[k - 1]) | {k - 1})
            out.append((m.U[t][k], u))
    return out


def milp_solve(graph: RematGraph, budget: float | None, time_limit: float = 60.0,
               gap: float = 1e-6, recompute_backward: bool = True, start: list[Step] | None = None
               ) -> MilpResult:
    """Solve Checkmate's MILP (`budget=None`: the smallest budget). Objective in the graph's own units.
    `start`: a schedule within the budget (of the stages' form, `stages_of`) to start the search from."""
    cost_scale = max(max(graph.cost, default=1.0), 1e-30)
    mem_scale = max(max(list(graph.mem) + list(graph.workspace) + [graph.static], default=1.0), 1e-30)
    cost = np.asarray(graph.cost, float) / cost_scale
    mem = np.asarray(graph.mem, float) / mem_scale
    ws = np.asarray(graph.workspace, float) / mem_scale
    scaled_budget = None if budget is None else budget / mem_scale * (1 + 1e-9)
    lower = lower_bound_budget(graph) / mem_scale * (1 - 1e-9)
    m, R, S, c = _build(graph, scaled_budget, cost, mem, ws, graph.static / mem_scale, lower, recompute_backward)
    A = coo_matrix((m.vals, (m.rows, m.cols)), shape=(len(m.row_lb), len(m.lb))).tocsr()
    warm = None
    if start is not None and (stages := stages_of(graph, start)) is not None:
        warm = _start_values(graph, m, R, S, stages[0], stages[1], mem, graph.static / mem_scale)
    xs, code, dual, rel_gap = _highs(c, A, m.row_lb, m.row_ub, m.lb, m.ub, m.integer, time_limit, gap, warm)
    scale = mem_scale if budget is None else cost_scale
    bound = float(dual) * scale if dual is not None and np.isfinite(dual) and code != 2 else None
    if xs is None:
        return MilpResult("infeasible" if code == 2 else "unknown", np.inf, bound=bound)
    N = graph.n
    Rm = np.zeros((N, N), dtype=bool)
    Sm = np.zeros((N, N), dtype=bool)
    for (t, i), x in R.items():
        Rm[t, i] = xs[x] > 0.5
    for (t, i), x in S.items():
        Sm[t, i] = xs[x] > 0.5
    return MilpResult("optimal" if code == 0 else "feasible", float(c @ xs) * scale, Rm, Sm, rel_gap, bound)


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


def warm_start(graph: RematGraph, budget: float) -> Schedule | None:
    """The cheapest heuristic schedule within `budget`: the layered chain DP (`remat_layers.py`, when the graph
    has that form) or greedy checkpointing; None when neither fits."""
    from .remat import greedy_checkpoints
    from .remat_layers import layer_chain, solve_layers

    found = []
    lc = layer_chain(graph)
    if lc is not None:
        found.append(solve_layers(graph, budget, lc))
    found.append(greedy_checkpoints(graph, budget))
    fits = [s for s in found if s.feasible and s.peak <= budget * (1 + 1e-9)]
    return min(fits, key=lambda s: s.cost) if fits else None


def solve_milp(graph: RematGraph, budget: float, time_limit: float = 60.0, gap: float = 1e-6,
               recompute_backward: bool = True, warm: bool = True) -> Schedule:
    """The least-cost schedule within `budget` bytes by Checkmate's MILP, or infeasible with the smallest
    budget (from the budget-minimising MILP). `recompute_backward=False` computes every backward value once
    (a smaller model that HiGHS solves much faster; its optimum may cost more). With `warm`, the search starts
    from the best heuristic schedule (`warm_start`), which is also the answer when HiGHS finds nothing better
    in time (the result then keeps the solver's bound). When no schedule fits, the least budget is searched
    for at most 15 s (it is only for the message)."""
    order = forward_order(graph)
    if order != list(range(graph.n)):  # solved with the forward pass first (see remat.forward_first)
        s = solve_milp(forward_first(graph), budget, time_limit, gap, recompute_backward, warm)
        s.steps = [(op, order[v]) for op, v in s.steps]
        return s
    feasible = budget >= lower_bound_budget(graph)
    start = warm_start(graph, budget) if warm and feasible else None
    r = milp_solve(graph, budget, time_limit, gap, recompute_backward, start.steps if start else None) \
        if feasible else MilpResult("infeasible", np.inf)
    if r.R is None and start is not None:  # the solver timed out without a schedule of its own
        start.strategy, start.optimal, start.budget = "milp", False, budget
        start.note = f"no better MILP schedule within {time_limit:g} s: the {start.note or 'heuristic'} start"
        start.lower_bound = r.bound
        return start
    if r.R is None:
        from .remat import greedy_checkpoints

        fallback = greedy_checkpoints(graph, budget)
        if fallback.feasible:  # the solver timed out without a schedule (a proven infeasible budget has none)
            fallback.strategy, fallback.optimal = "milp", False
            fallback.note = f"no MILP schedule within {time_limit:g} s: greedy checkpointing"
            return fallback
        least, proven, steps = min_budget(graph, min(time_limit, 15.0), recompute_backward)  # for the message
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
    if start is not None and start.cost < s.cost * (1 - 1e-9):  # HiGHS dropped the start: keep the better one
        s = _finish(graph, "milp", budget, start.steps, optimal=False)
    if r.status != "optimal" or not s.optimal:
        s.optimal = False
        s.note = f"time limit {time_limit:g} s; relative gap {r.gap:.3g}" if r.gap is not None else "time limit"
        s.lower_bound = r.bound
    else:
        s.lower_bound = s.cost
    return s
