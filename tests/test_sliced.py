"""Sliced joins under a memory budget (plan/slicing.py, runtime/sliced.py): results equal numpy.einsum, the
executor-counted peak stays under the budget, gradients equal torch.autograd's and an unsliced run's, and a
budget below slicing's reach is refused before running with the least budget that fits."""

from __future__ import annotations

import re
import string
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorlogic as tl
from tensorlogic.backends.numpy_backend import get_backend
from tensorlogic.cli import main
from tensorlogic.plan.program import parse_bytes
from tensorlogic.plan.slicing import MAX_CHUNKS, least_workspace, simulate_path, slice_join
from tensorlogic.runtime import sliced as runtime_sliced
from tensorlogic.runtime.dense import DenseEvaluator, Labeled
from tensorlogic.runtime.sliced import sliced_join

THREE_WAY = "Y[a, b, f, g] = A[a, b, c, f] B[a, b, c, g] C[c, f, g]\n"  # every pairwise product is Y times c


@st.composite
def equations(draw):
    """A random join: 2-5 operands over labels a-f of extents 1-6, some labels kept in the output."""
    n = draw(st.integers(2, 5))
    labels = string.ascii_lowercase[:6]
    ops = [tuple(draw(st.lists(st.sampled_from(labels), min_size=1, max_size=4, unique=True))) for _ in range(n)]
    used = sorted({v for t in ops for v in t})
    out = tuple(v for v in used if draw(st.booleans()))
    sizes = {v: draw(st.integers(1, 6)) for v in used}
    seed = draw(st.integers(0, 2 ** 31))
    frac = draw(st.floats(0.0, 1.0))
    return ops, out, sizes, seed, frac


def _einsum(ops, out, arrays):
    letters = {v: v for t in ops for v in t}
    return np.einsum(",".join("".join(letters[v] for v in t) for t in ops) + "->" + "".join(out), *arrays)


def _evaluator(limit: int) -> DenseEvaluator:
    ev = DenseEvaluator(get_backend("numpy"), lambda r: None, {}, where="test")
    ev.join_limit = limit
    return ev


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(equations())
def test_sliced_join_equals_einsum_under_random_limits(case):
    ops, out, sizes, seed, frac = case
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=[sizes[v] for v in t]) for t in ops]
    ref = _einsum(ops, out, arrays)
    full = slice_join(ops, out, sizes, 1 << 60)
    least = least_workspace(ops, out, sizes)
    limit = int(least.workspace + frac * max(full.workspace - least.workspace, 0))  # elements
    sj = slice_join(ops, out, sizes, limit)
    assert sj.workspace <= limit and sj.n_chunks <= MAX_CHUNKS
    xs = [Labeled(a, t) for a, t in zip(arrays, ops)]
    join = SimpleNamespace(factors=[None] * len(ops), divides=[False] * len(ops), span=None)
    ev = _evaluator(8 * limit)
    res = sliced_join(ev, join, xs, out, sizes, 1)  # (no base plan given: it always runs the join itself)
    np.testing.assert_allclose(res.arr, ref, rtol=1e-10, atol=1e-10)
    assert res.vars == out
    assert ev.max_transient <= 8 * limit  # what the executor counts for this join


def test_simulated_workspace_is_the_largest_product():
    # ab,bc -> ac (6 elements) then ac,cd -> ad (8)
    work, flops = simulate_path((("a", "b"), ("b", "c"), ("c", "d")), ("a", "d"), [(0, 1), (0, 1)],
                                {"a": 2, "b": 5, "c": 3, "d": 4})
    assert work == 8
    assert flops == 2 * (2 * 5 * 3) + 2 * (2 * 3 * 4)


def test_chunks_are_blocks_not_single_values():
    ops, out = [("a", "b", "c", "f"), ("a", "b", "c", "g"), ("c", "f", "g")], ("a", "b", "f", "g")
    sizes = dict(a=4, b=4, c=85, f=96, g=96)
    sj = slice_join(ops, out, sizes, 1_000_000)
    assert sj.chunks and all(c > 1 for _, c in sj.chunks)
    assert sj.n_chunks < 96  # far fewer chunks than one value at a time
    assert sj.workspace <= 1_000_000
    assert "chunks" in str(sj.plan) and "sliced over" in str(sj.plan)


def _three_way(a=4, b=4, c=85, f=96, g=96, seed=0):
    rng = np.random.default_rng(seed)
    return dict(A=rng.normal(size=(a, b, c, f)), B=rng.normal(size=(a, b, c, g)), C=rng.normal(size=(c, f, g)))


@pytest.mark.parametrize("budget", ["40MB", "20MB", "14MB"])
def test_program_runs_under_budget_with_executor_counted_peak(budget):
    vals = _three_way()
    src = THREE_WAY + "Y?\n"
    plain = tl.Program(src)
    plain.run(**vals)
    assert plain.executor.peak_bytes > 100 * 2 ** 20  # unsliced: the 100 MB pairwise product
    prog = tl.Program(src)
    prog.run(memory_budget=budget, **vals)
    limit = parse_bytes(budget)
    assert prog.executor.peak_bytes <= limit
    np.testing.assert_allclose(prog["Y"], np.einsum("abcf,abcg,cfg->abfg", vals["A"], vals["B"], vals["C"]),
                               rtol=1e-10, atol=1e-10)
    plan = prog.plan(limit)
    assert plan.slicing.sliced and plan.peak_bytes <= limit
    assert abs(plan.peak_bytes - prog.executor.peak_bytes) <= 0.1 * plan.peak_bytes  # prediction vs counted


def test_budget_below_slicing_reach_is_refused_with_the_least_budget(tmp_path):
    vals = _three_way(a=2, b=2, c=20, f=24, g=24)
    path = tmp_path / "three.tl"
    path.write_text(THREE_WAY + "Y?\n")
    prog = tl.load(str(path))
    with pytest.raises(tl.TLRuntimeError) as info:
        prog.run(memory_budget=100_000, **vals)
    msg = str(info.value)
    assert "nothing was run" in msg and "at least" in msg
    least = int(re.search(r"\(([\d,]+) bytes", msg).group(1).replace(",", ""))
    inputs = sum(v.nbytes for v in vals.values())
    assert least < inputs + 3 * 8 * 2 * 2 * 24 * 24  # the data, the result (counted twice) and a little more
    ok = tl.load(str(path))
    ok.run(memory_budget=least, **vals)
    assert ok.executor.peak_bytes <= least
    np.testing.assert_allclose(ok["Y"], np.einsum("abcf,abcg,cfg->abfg", vals["A"], vals["B"], vals["C"]),
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(tl.TLRuntimeError):
        tl.load(str(path)).run(memory_budget=least - 4096, **vals)


def test_tl_plan_says_which_indices_are_sliced(tmp_path, capsys):
    path = tmp_path / "p.tl"
    path.write_text("index a, b: 4\nindex c: 85\nindex f, g: 96\nA[a, b, c, f] = 1\nB[a, b, c, g] = 1\n"
                    "C[c, f, g] = 1\n" + THREE_WAY + "Y?\n")
    assert main(["plan", "--memory-budget", "40MB", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"sliced over \S+ in [\d,]+ chunks", out)
    assert "fits" in out
    assert main(["plan", "--memory-budget", "1MB", str(path)]) == 1
    assert "smallest memory budget slicing can meet" in capsys.readouterr().out


def test_torch_backend_slices_too():
    vals = _three_way(a=2, b=2, c=20, f=24, g=24)
    prog = tl.Program(THREE_WAY + "Y?\n", backend="torch")
    plain = tl.Program(THREE_WAY + "Y?\n")
    plain.run(**vals)
    budget = plain.executor.peak_bytes // 2
    prog.run(memory_budget=budget, **vals)
    assert prog.executor.peak_bytes <= budget
    np.testing.assert_allclose(prog["Y"], plain["Y"], rtol=1e-10, atol=1e-10)


TRAIN = THREE_WAY + "Loss = Y[a, b, f, g] Y[a, b, f, g]\n"


def _torch_grads(vals):
    t = {k: torch.tensor(v, requires_grad=True) for k, v in vals.items()}
    y = torch.einsum("abcf,abcg,cfg->abfg", t["A"], t["B"], t["C"])
    (y * y).sum().backward()
    return {k: t[k].grad.numpy() for k in t}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_gradients_with_and_without_slicing(monkeypatch, backend):
    sliced = []
    monkeypatch.setattr(runtime_sliced, "slice_join", lambda *a: sliced.append(slice_join(*a)) or sliced[-1])
    vals = _three_way(a=2, b=3, c=40, f=30, g=30)
    monkeypatch.setenv("TL_SHARE", "0")  # the reference peak without the shared A B temporary
    plain = tl.Program(TRAIN, backend=backend)
    ref = plain.grad("Loss", ["A", "B", "C"], **vals)
    unsliced_peak = plain.last_peak_bytes
    monkeypatch.delenv("TL_SHARE")  # a budgeted run shares no sub-join by itself
    budget = int(unsliced_peak * (0.8 if backend == "numpy" else 0.5))
    prog = tl.Program(TRAIN, backend=backend)
    got = prog.grad("Loss", ["A", "B", "C"], memory_budget=budget, **vals)
    assert prog.last_peak_bytes <= budget
    assert any(sj.chunks for sj in sliced)  # some join of the step did run in slices
    want = _torch_grads(vals)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-12)  # only the summation order differs
        np.testing.assert_allclose(got[k], want[k], rtol=1e-10, atol=1e-10)


def test_training_budget_below_reach_gives_the_least_budget(monkeypatch):
    # a budget turns sub-join sharing off: a shared A B would be the very product slicing avoids
    vals = _three_way(a=2, b=3, c=40, f=30, g=30)
    prog = tl.Program(TRAIN)
    with pytest.raises(tl.TLRuntimeError) as info:
        prog.grad("Loss", ["A", "C"], memory_budget=300_000, **vals)
    msg = str(info.value)
    assert "nothing was run" in msg
    least = int(re.search(r"\(([\d,]+) bytes", msg).group(1).replace(",", ""))
    ok = tl.Program(TRAIN)
    got = ok.grad("Loss", ["A", "C"], memory_budget=least, **vals)
    assert ok.last_peak_bytes <= least
    want = _torch_grads(vals)
    np.testing.assert_allclose(got["A"], want["A"], rtol=1e-10, atol=1e-10)
    # slicing lowers the least budget: without it, a node's unsliced workspace alone exceeds it
    from tensorlogic.plan.remat import solve
    from tensorlogic.plan.remat_graph import graph_from_plan

    gp = next(v[0] for k, v in ok._grad_programs.items() if isinstance(k, tuple) and k[0] == "Loss")
    graph = graph_from_plan(gp.plan(), {"Grad_A", "Grad_C", "Loss"})
    assert max(graph.compute_peak(v) for v in range(graph.n)) > least
    assert not solve(graph, float(least), "milp").feasible


def test_tl_run_with_a_budget_and_tl_debug_plan(tmp_path, capsys, monkeypatch):
    path = tmp_path / "p.tl"
    path.write_text("index a, b: 2\nindex c: 20\nindex f, g: 24\nA[a, b, c, f] = 1\nB[a, b, c, g] = 1\n"
                    "C[c, f, g] = 1\n" + THREE_WAY + "S = Y[a, b, f, g]\nS?\n")
    monkeypatch.setenv("TL_DEBUG", "plan")
    assert main(["run", "--memory-budget", "250KB", str(path)]) == 0
    got = capsys.readouterr()
    assert float(got.out.split("=")[-1]) == pytest.approx(2 * 2 * 24 * 24 * 20.0)  # every product is 1
    assert "sliced join (stratum" in got.err and re.search(r"sliced over \S+ in [\d,]+ chunks", got.err)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(equations())
def test_random_programs_under_random_budgets(case):
    ops, out, sizes, seed, frac = case
    rng = np.random.default_rng(seed)
    vals = {f"T{k}": rng.normal(size=[sizes[v] for v in t]) for k, t in enumerate(ops)}
    rhs = " ".join(f"T{k}[{', '.join(t)}]" for k, t in enumerate(ops))
    src = (f"Y[{', '.join(out)}] = {rhs}\n" if out else f"Y = {rhs}\n") + "Y?\n"
    plain = tl.Program(src)
    plain.run(**vals)
    probe = tl.Program(src)
    probe.analyze(**vals)
    least = probe.plan(1).slicing.least_budget  # (a 1-byte budget does not fit: the least one that does)
    top = max(plain.executor.peak_bytes, least)
    budget = int(least + frac * (top - least))
    prog = tl.Program(src)
    prog.run(memory_budget=budget, **vals)
    assert prog.executor.peak_bytes <= budget
    np.testing.assert_allclose(prog["Y"], _einsum(ops, out, list(vals.values())), rtol=1e-10, atol=1e-10)


def test_a_join_that_cannot_fit_what_is_left_is_a_clear_error():
    rng = np.random.default_rng(0)
    xs = [Labeled(rng.normal(size=(3, 4)), ("i", "j")), Labeled(rng.normal(size=(4, 5)), ("j", "k"))]
    ev = _evaluator(8 * 10)  # 10 elements left; the result alone has 15
    join = SimpleNamespace(factors=[None, None], divides=[False, False], span=None)
    with pytest.raises(tl.TLRuntimeError) as info:
        sliced_join(ev, join, xs, ("i", "k"), {"i": 3, "j": 4, "k": 5}, 1)
    msg = str(info.value)
    assert "even sliced as far as it goes" in msg and "raise the memory budget by at least" in msg
    ev = _evaluator(8 * 16)  # the result and one value of a sliced index fit
    res = sliced_join(ev, join, xs, ("i", "k"), {"i": 3, "j": 4, "k": 5}, 1)
    np.testing.assert_allclose(res.arr, xs[0].arr @ xs[1].arr, rtol=1e-12)
    assert ev.max_transient <= 8 * 16


def test_slicing_is_traded_against_recomputation(monkeypatch):
    from tensorlogic.learn.budget import _best_schedule, slice_nodes
    from tensorlogic.plan.remat import simulate, solve, store_all
    from tensorlogic.plan.remat_graph import graph_from_plan

    vals = _three_way(a=2, b=3, c=40, f=30, g=30)
    prog = tl.Program(TRAIN)
    prog.grad("Loss", ["A", "B", "C"], **vals)
    gp = next(v[0] for k, v in prog._grad_programs.items() if isinstance(k, tuple) and k[0] == "Loss")
    plan, outs = gp.plan(), {"Grad_A", "Grad_B", "Grad_C", "Loss"}
    budget = int(store_all(graph_from_plan(plan, outs)).peak * 0.9)
    graph, sched = _best_schedule(plan, outs, budget, "milp")
    assert sched.feasible and sched.peak <= budget
    cost, peak = simulate(graph, sched.steps)  # a replay of the chosen schedule
    assert peak <= budget and cost == pytest.approx(sched.cost)
    only_needed = graph_from_plan(plan, outs)
    slice_nodes(only_needed, plan, budget)
    as_needed = solve(only_needed, float(budget), "milp")
    least = graph_from_plan(plan, outs)
    slice_nodes(least, plan, None)
    everything = solve(least, float(budget), "milp")
    assert everything.feasible and sched.cost <= everything.cost
    assert not as_needed.feasible or sched.cost <= as_needed.cost
