"""Keep or recompute (tensorlogic/plan/remat*.py) against exhaustive search and an independent replay.

The reference is a brute force written here: a shortest-path search over every schedule of Checkmate's
model (stage t ends with the first computation of node t; within a stage nodes are computed in index order,
each at most once; values may be freed at any time; outputs stay once computed). The MILP and the chain DP
must reach its least cost at every budget, their schedules must replay (by the replay below, not the
library's) within the budget, and infeasible budgets must come back with the search's least budget.
"""

from __future__ import annotations

import heapq
import itertools
import random

import numpy as np
import pytest

import tensorlogic as tl
from tensorlogic.plan.remat import RematGraph, chain_graph, solve, store_all
from tensorlogic.plan.remat_chain import chain_shape
from tensorlogic.plan.remat_graph import graph_from_plan, plan_remat


# ---------------------------------------------------------------------------------------- references
def brute_force(g: RematGraph, budget: float | None, recompute_backward: bool = True) -> float:
    """Least cost within `budget` (inf when none); with budget None: the least peak any schedule has.
    Without `recompute_backward`, a backward node is computed only in its own stage."""
    n = g.n
    start = (0, -1, frozenset())
    best: dict = {start: 0.0}
    heap = [(0.0, 0, start)]
    tie = itertools.count(1)
    while heap:
        key, _, state = heapq.heappop(heap)
        if best.get(state, np.inf) < key:
            continue
        t, j, live = state
        if t == n and g.outputs <= live:
            return key
        used = g.static + sum(g.mem[v] for v in live)
        moves = [((t, j, live - {v}), key) for v in live if v not in g.outputs]
        for v in range(j + 1, min(t, n - 1) + 1):
            if v in live or any(d not in live for d in g.deps[v]):
                continue
            if v < t and g.backward[v] and not recompute_backward:
                continue
            peak = used + g.mem[v] + g.workspace[v]
            if budget is not None and peak > budget + 1e-9:
                continue
            nxt = (t + 1, -1, live | {v}) if v == t else (t, v, live | {v})
            moves.append((nxt, key + g.cost[v] if budget is not None else max(key, peak)))
        for nxt, k2 in moves:
            if k2 < best.get(nxt, np.inf):
                best[nxt] = k2
                heapq.heappush(heap, (k2, next(tie), nxt))
    return np.inf


def replay(g: RematGraph, steps: list[tuple[str, int]]) -> tuple[float, float]:
    """Cost and peak of a schedule; asserts it is valid."""
    live: set[int] = set()
    peak = cost = 0.0
    for op, v in steps:
        used = g.static + sum(g.mem[u] for u in live)
        if op == "compute":
            assert v not in live
            assert all(d in live for d in g.deps[v]), f"{g.names[v]} before its inputs"
            peak = max(peak, used + g.mem[v] + g.workspace[v])
            cost += g.cost[v]
            live.add(v)
        else:
            assert op == "free" and v in live
            live.remove(v)
    assert g.outputs <= live, "an output is missing at the end"
    return cost, peak


def random_graph(rng: random.Random, n: int) -> RematGraph:
    deps = [()]
    for v in range(1, n):
        k = rng.choice([1, 1, 2])
        deps.append(tuple(sorted(rng.sample(range(v), min(k, v)))))
    half = n // 2
    return RematGraph([f"v{i}" for i in range(n)], [float(rng.randint(1, 5)) for _ in range(n)],
                      [float(rng.randint(1, 4)) for _ in range(n)], deps, [v >= half for v in range(n)],
                      static=float(rng.randint(0, 2)), workspace=[float(rng.randint(0, 2)) for _ in range(n)])


def random_chain(rng: random.Random, n: int) -> RematGraph:
    def ints(lo: int, hi: int, k: int) -> list[float]:
        return [float(rng.randint(lo, hi)) for _ in range(k)]
    return chain_graph(n, ints(1, 4, n + 1), ints(1, 4, n), ints(1, 3, n + 1), ints(1, 3, n))


def check(g: RematGraph, budget: float, strategy: str, recompute_backward: bool = True) -> None:
    want = brute_force(g, budget, recompute_backward)
    if strategy == "milp":
        s = solve(g, budget, strategy, time_limit=30, recompute_backward=recompute_backward)
    else:
        s = solve(g, budget, strategy)
    if want == np.inf:
        assert not s.feasible and s.optimal
        assert s.min_budget == pytest.approx(brute_force(g, None, recompute_backward))
        return
    assert s.feasible, f"{strategy} says infeasible at {budget}, brute force finds cost {want}"
    cost, peak = replay(g, s.steps)
    assert peak <= budget + 1e-9
    assert cost == pytest.approx(s.cost)
    assert cost == pytest.approx(want), f"{strategy} cost {cost} != optimum {want} at budget {budget}"


# ---------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("seed", range(6))
def test_milp_matches_brute_force_on_random_graphs(seed):
    rng = random.Random(seed)
    g = random_graph(rng, rng.randint(4, 7))
    lo, hi = brute_force(g, None), store_all(g).peak
    for budget in sorted({lo, (lo + hi) / 2, hi, lo - 0.5}):
        check(g, budget, "milp")


@pytest.mark.parametrize("seed", range(4))
def test_milp_without_backward_recomputation_matches_brute_force(seed):
    rng = random.Random(50 + seed)
    g = random_graph(rng, rng.randint(5, 7))
    lo, hi = brute_force(g, None, False), store_all(g).peak
    for budget in sorted({lo, (lo + hi) / 2, lo - 0.5}):
        check(g, budget, "milp", recompute_backward=False)


@pytest.mark.parametrize("seed", range(16))
def test_dp_matches_brute_force_on_random_chains(seed):
    rng = random.Random(100 + seed)
    g = random_chain(rng, rng.randint(1, 4))
    assert chain_shape(g) is not None
    lo, hi = brute_force(g, None), store_all(g).peak
    for budget in np.unique(np.linspace(lo - 1, hi, 6).round()):
        check(g, float(budget), "dp")


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_dp_matches_brute_force_on_unit_chains_at_every_budget(n):
    g = chain_graph(n)
    for budget in range(1, int(store_all(g).peak) + 1):
        check(g, float(budget), "dp")


def test_dp_and_milp_agree_on_a_random_chain():
    rng = random.Random(7)
    g = random_chain(rng, 5)
    hi = store_all(g).peak
    for budget in (hi, hi * 0.7, hi * 0.5):
        dp, milp = solve(g, budget, "dp"), solve(g, budget, "milp", time_limit=30)
        assert dp.feasible == milp.feasible
        if dp.feasible and milp.optimal:
            assert dp.cost == pytest.approx(milp.cost)


def test_unit_chain_figures_by_dp():
    g = chain_graph(16)
    base = store_all(g)
    assert (base.cost, base.peak) == (33, 18)
    assert replay(g, base.steps) == (33, 18)
    for budget, extra in ((13, 5), (9, 9)):  # 72% and 50% of the peak: +15.2% and +27.3% compute
        s = solve(g, budget, "dp")
        cost, peak = replay(g, s.steps)
        assert peak <= budget and cost == 33 + extra
    assert round(100 * 5 / 33, 1) == 15.2 and round(100 * 9 / 33, 1) == 27.3
    assert solve(g, 3, "dp").feasible
    low = solve(g, 2.9, "dp")
    assert not low.feasible and low.min_budget == 3


def test_unit_chain_figures_by_milp():
    g = chain_graph(16)
    for budget, cost in ((13, 38), (9, 42)):
        s = solve(g, budget, "milp", time_limit=60)
        assert s.optimal and replay(g, s.steps)[0] == cost and replay(g, s.steps)[1] <= budget
    assert not solve(chain_graph(6), 2.5, "milp", time_limit=30).feasible
    assert solve(chain_graph(6), 2.5, "milp", time_limit=30).min_budget == 3


def test_baselines_are_valid_schedules():
    rng = random.Random(3)
    for _ in range(20):
        g = random_graph(rng, rng.randint(3, 12))
        for strategy in ("store_all", "sqrt", "greedy"):
            s = solve(g, store_all(g).peak, strategy)
            cost, peak = replay(g, s.steps)
            assert cost == pytest.approx(s.cost) and peak == pytest.approx(s.peak)
    g = chain_graph(16)
    s = solve(g, None, "sqrt")
    assert replay(g, s.steps)[1] < 18  # checkpoints every 4 layers hold less than store-all


def test_graph_of_a_gradient_program():
    src = """tensor X[16, 4]
tensor Y[16, 2]
tensor W1[8, 4] learnable
tensor W2[2, 8] learnable
H[b, j] = relu(W1[j, i] X[b, i])
Z[b, o] = W2[o, j] H[b, j]
Loss = (Z[b, o] - Y[b, o])^2
"""
    rng = np.random.default_rng(0)
    data = {"X": rng.standard_normal((16, 4)), "Y": rng.standard_normal((16, 2))}
    prog = tl.Program(src)
    gp = tl.Program(prog.grad_source("Loss", **data))
    gp.analyze(**data, **prog.params)
    plan = gp.plan()
    g = graph_from_plan(plan)
    names = {n: k for k, n in enumerate(g.names)}
    assert {"H", "Z", "Grad_W1", "Grad_W2"} <= set(names)
    assert not g.backward[names["H"]] and g.backward[names["Grad_W1"]]
    assert g.mem[names["H"]] == 16 * 8 * 8
    assert names["H"] in g.deps[names["Z"]]
    assert {names["Grad_W1"], names["Grad_W2"]} == g.outputs
    assert g.static == 8 * (16 * 4 + 16 * 2 + 8 * 4 + 2 * 8)  # X, Y, W1, W2
    # the plan replays the run query by query (plan/memory.py), store_all the dependency order: close, not equal
    assert store_all(g).peak == pytest.approx(plan.peak_bytes, rel=0.05)
    tight = solve(g, 0.8 * store_all(g).peak, "milp", time_limit=30)
    if tight.feasible:
        assert replay(g, tight.steps)[1] <= 0.8 * store_all(g).peak


def test_bad_graphs_and_strategies_are_refused():
    with pytest.raises(ValueError, match="topological"):
        RematGraph(["a", "b"], [1, 1], [1, 1], [(1,), ()], [False, True])
    with pytest.raises(ValueError, match="strategy"):
        solve(chain_graph(2), 5, "magic")
    with pytest.raises(ValueError, match="chain"):
        solve(random_graph(random.Random(1), 6), 10, "dp")


def test_schedules_run_on_the_executor():
    """A schedule run by the executor: its measured peak is within the budget and the gradients equal an
    ordinary run's (needs `Executor.run_schedule`, the runtime side of --memory-budget)."""
    src = "tensor X[512, 8]\ntensor Y[512, 8]\n" + "".join(f"tensor W{i}[8, 8] learnable\n" for i in range(1, 6))
    prev = "X"
    for i in range(1, 5):
        src += f"H{i}[b, j] = relu(W{i}[j, k] {prev}[b, k])\n"
        prev = f"H{i}"
    src += f"Z[b, j] = W5[j, k] {prev}[b, k]\nLoss = (Z[b, j] - Y[b, j])^2\n"
    rng = np.random.default_rng(1)
    data = {"X": rng.standard_normal((512, 8)), "Y": rng.standard_normal((512, 8))}
    prog = tl.Program(src)
    gsrc = prog.grad_source("Loss", **data)
    values = {**data, **prog.params}
    ref = tl.Program(gsrc)
    ref.run(**values)
    probe = tl.Program(gsrc)
    probe.analyze(**values)
    g = graph_from_plan(probe.plan())
    budget = 0.7 * store_all(g).peak
    s = solve(g, budget, "milp", time_limit=30, recompute_backward=False)
    assert s.feasible
    recomputed = len([1 for op, _ in s.steps if op == "compute"]) - g.n
    assert recomputed > 0  # the budget forces recomputation
    probe.executor.run_schedule(g.tensors, s.steps)
    assert probe.executor.peak_bytes <= budget
    for t in (t for node in g.outputs for t in g.tensors[node]):
        np.testing.assert_array_equal(probe.executor.dense(t), ref[t])


def test_plan_remat_picks_store_all_when_it_fits_and_refuses_below_the_least_budget():
    src = "tensor X[256, 8]\ntensor Y[256, 8]\ntensor W1[8, 8] learnable\ntensor W2[8, 8] learnable\n"
    src += "H[b, j] = relu(W1[j, k] X[b, k])\nZ[b, j] = W2[j, k] H[b, k]\nLoss = (Z[b, j] - Y[b, j])^2\n"
    rng = np.random.default_rng(2)
    data = {"X": rng.standard_normal((256, 8)), "Y": rng.standard_normal((256, 8))}
    prog = tl.Program(src)
    gp = tl.Program(prog.grad_source("Loss", **data))
    gp.analyze(**data, **prog.params)
    plan = gp.plan()
    g, s = plan_remat(plan, plan.peak_bytes * 2)
    assert s.strategy == "store_all" and s.feasible
    g, s = plan_remat(plan, g.static)  # the data alone fill this budget
    assert not s.feasible and s.min_budget > g.static
    brute = brute_force(g, None, recompute_backward=False)
    assert s.min_budget >= brute - 1e-6
    if s.optimal:
        assert s.min_budget == pytest.approx(brute)


# ---------------------------------------------------------------------------------------- layered graphs
def random_layered(rng: random.Random, n: int, single: bool = False) -> RematGraph:
    """A sequential network's gradient graph: forward f_0..f_{n-1} (a chain), then per layer k = n-1..0 a
    group of backward nodes reading f_k and the group above's last node; each group but the top also
    makes an output (a weight gradient) unless `single` (one node per group: Checkmate's chain)."""
    names, cost, mem, deps, bwd, ws = [], [], [], [], [], []
    outs: set[int] = set()

    def node(name: str, d: tuple[int, ...], backward: bool) -> int:
        names.append(name)
        cost.append(float(rng.randint(1, 4)))
        mem.append(float(rng.randint(1, 3)))
        ws.append(float(rng.randint(0, 1)))
        deps.append(d)
        bwd.append(backward)
        return len(names) - 1

    fwd = [node("f0", (), False)]
    for k in range(1, n):
        fwd.append(node(f"f{k}", (fwd[-1],), False))
    carried = None
    for k in range(n - 1, -1, -1):
        g = node(f"g{k}", (fwd[k],) + ((carried,) if carried is not None else ()), True)
        if not single and carried is not None:
            outs.add(node(f"w{k}", (carried, fwd[k]), True))
        if not single and rng.random() < 0.5:
            g = node(f"a{k}", (g, fwd[k]), True)
        carried = g
    outs.add(carried)
    return RematGraph(names, cost, mem, deps, bwd, outs, static=float(rng.randint(0, 2)), workspace=ws)


@pytest.mark.parametrize("seed", range(6))
def test_layered_schedules_are_valid_and_never_beat_the_optimum(seed):
    from tensorlogic.plan.remat_layers import layer_chain

    rng = random.Random(200 + seed)
    g = random_layered(rng, rng.randint(2, 3))
    assert layer_chain(g) is not None
    lo, hi = brute_force(g, None), store_all(g).peak
    assert solve(g, hi, "layers").cost == pytest.approx(store_all(g).cost)  # store-all fits: nothing recomputed
    for budget in sorted({lo, (lo + hi) / 2, hi * 0.8}):
        s = solve(g, budget, "layers")
        if not s.feasible:
            continue
        cost, peak = replay(g, s.steps)
        assert peak <= budget + 1e-9 and cost == pytest.approx(s.cost)
        assert cost >= brute_force(g, budget) - 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_layered_schedule_of_one_node_groups_is_the_optimum(seed):
    """One backward node per layer: the grouping is Checkmate's chain itself, and the DP is exact on it."""
    rng = random.Random(300 + seed)
    g = random_layered(rng, rng.randint(2, 4), single=True)
    lo, hi = brute_force(g, None), store_all(g).peak
    for budget in sorted({lo, (lo + hi) / 2, hi}):
        s = solve(g, budget, "layers")
        assert s.feasible
        cost, peak = replay(g, s.steps)
        assert peak <= budget + 1e-9
        assert cost == pytest.approx(brute_force(g, budget))


def test_non_layered_graphs_are_refused_by_the_layered_strategy():
    from tensorlogic.plan.remat_layers import layer_chain

    assert layer_chain(chain_graph(4)) is None  # b_(n-1) reads two forward values (f_(n-1) and the loss)
    with pytest.raises(ValueError, match="sequential"):
        solve(random_graph(random.Random(1), 6), 10, "layers")


def mlp_gradient(layers: int, width: int, batch: int):
    src = f"tensor X[{batch}, {width}]\ntensor Y[{batch}, {width}]\n"
    src += "".join(f"tensor W{i}[{width}, {width}] learnable\n" for i in range(1, layers + 2))
    prev = "X"
    for i in range(1, layers + 1):
        src += f"H{i}[b, j] = relu(W{i}[j, k] {prev}[b, k])\n"
        prev = f"H{i}"
    src += f"Z[b, j] = W{layers + 1}[j, k] {prev}[b, k]\nLoss = (Z[b, j] - Y[b, j])^2\n"
    rng = np.random.default_rng(3)
    data = {"X": rng.standard_normal((batch, width)), "Y": rng.standard_normal((batch, width))}
    prog = tl.Program(src)
    return prog.grad_source("Loss", **data), {**data, **prog.params}


def attention_gradient():
    src = """tensor X[4, 6, 8]
tensor Tgt[4, 6, 5]
tensor WQ[2, 4, 8] learnable
tensor WK[2, 4, 8] learnable
tensor WV[2, 4, 8] learnable
tensor WS[8, 2, 4] learnable
tensor WA[12, 8] learnable
tensor WO[5, 8] learnable
Q[n, h, p, k] = WQ[h, k, d] X[n, p, d]
K[n, h, p, k] = WK[h, k, d] X[n, p, d]
V[n, h, p, k] = WV[h, k, d] X[n, p, d]
C[n, h, p, q.] = softmax(Q[n, h, p, k] K[n, h, q, k] / 2)
A[n, h, p, k] = C[n, h, p, q] V[n, h, q, k]
R[n, p, d.] = lnorm(WS[d, h, k] A[n, h, p, k] + X[n, p, d])
M[n, p, f] = relu(WA[f, d] R[n, p, d])
Out[n, p, t.] = softmax(WO[t, f] M[n, p, f])
Loss = - Tgt[n, p, t] log(Out[n, p, t])
"""
    rng = np.random.default_rng(4)
    data = {"X": rng.standard_normal((4, 6, 8)), "Tgt": np.eye(5)[rng.integers(0, 5, (4, 6))]}
    prog = tl.Program(src.replace("WO[5, 8]", "WO[5, 12]"))
    return prog.grad_source("Loss", **data), {**data, **prog.params}


@pytest.mark.parametrize("make", [lambda: mlp_gradient(3, 8, 64), attention_gradient], ids=["mlp", "attention"])
def test_model_is_exact_node_by_node(make):
    """The executor's counted peak while it computes each node never exceeds the model's (static bytes, what is
    live, the node's output and workspace), and store-all's counted peak equals the modelled one."""
    gsrc, values = make()
    gp = tl.Program(gsrc)
    gp.analyze(**values)
    g = graph_from_plan(gp.plan())
    base = store_all(g)
    ex = gp.executor
    live: set[int] = set()
    for op, v in base.steps:
        if op == "free":
            live.discard(v)
            ex.run_schedule(g.tensors, [(op, v)])
            continue
        ex.peak_bytes = 0
        ex.run_schedule(g.tensors, [(op, v)])
        modelled = g.static + sum(g.mem[u] for u in live) + g.mem[v] + g.workspace[v]
        assert ex.peak_bytes <= modelled, g.names[v]
        live.add(v)
    run = tl.Program(gsrc)
    run.analyze(**values)
    run.executor.run_schedule(g.tensors, base.steps)
    assert run.executor.peak_bytes == base.peak


@pytest.mark.parametrize("seed", range(4))
def test_a_heuristic_schedule_warm_starts_the_milp(seed):
    """A schedule read as Checkmate's stages (`stages_of`) is a solution of the MILP within the same budget:
    the MILP's own reading of it (`steps_from`) replays at no more memory, and the solver started from it
    reaches the exhaustive optimum (backward values computed once)."""
    from tensorlogic.plan.remat_milp import milp_solve, stages_of, steps_from, warm_start

    rng = random.Random(400 + seed)
    g = random_layered(rng, 3)
    lo, hi = brute_force(g, None, False), store_all(g).peak
    budget = (lo + hi) / 2
    start = warm_start(g, budget)
    assert start is not None
    stages = stages_of(g, start.steps)
    assert stages is not None
    cost, peak = replay(g, steps_from(g, *stages))
    assert cost == pytest.approx(start.cost) and peak <= start.peak + 1e-9
    r = milp_solve(g, budget, 30, recompute_backward=False, start=start.steps)
    assert r.status == "optimal" and r.objective == pytest.approx(brute_force(g, budget, False))
    assert r.objective <= start.cost + 1e-9


def test_auto_runs_a_layered_schedule_on_the_executor():
    """`auto` picks the layered DP for an MLP's gradient graph under a tight budget; the executor runs its
    schedule within the budget, with the gradients of an ordinary run, bit for bit."""
    gsrc, values = mlp_gradient(4, 8, 256)
    ref = tl.Program(gsrc)
    ref.run(**values)
    gp = tl.Program(gsrc)
    gp.analyze(**values)
    g, s = plan_remat(gp.plan(), 0.8 * store_all(graph_from_plan(gp.plan())).peak)
    assert s.feasible and s.strategy == "layers"
    assert len([1 for op, _ in s.steps if op == "compute"]) > g.n  # it recomputes
    assert replay(g, s.steps)[1] <= s.budget
    gp.executor.run_schedule(g.tensors, s.steps)
    assert gp.executor.peak_bytes <= s.budget
    for t in (t for node in g.outputs for t in g.tensors[node]):
        np.testing.assert_array_equal(gp.executor.dense(t), ref[t])
