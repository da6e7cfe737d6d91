"""Tests for the contraction-order planner (tensorlogic.plan.contract)."""

from __future__ import annotations

import random
import string
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference_algorithms import classic_matrix_chain

from tensorlogic.plan.contract import ContractionPlan, contract_path, parse_equation, plan_join

# ---------------------------------------------------------------------------------------- test helpers


def _letters(labels: set[str]) -> dict[str, str]:
    assert len(labels) <= 52, "a single step uses more labels than numpy.einsum supports"
    return dict(zip(sorted(labels), string.ascii_letters))


def _sub(labels: tuple[str, ...], m: dict[str, str]) -> str:
    return "".join(m[lab] for lab in labels)


def run_plan(plan: ContractionPlan, arrays: list[np.ndarray]) -> np.ndarray:
    """Execute a plan pairwise with numpy.einsum (labels mapped to letters per step)."""
    ops = list(arrays)
    labs = list(plan.inputs)
    if not plan.steps:
        m = _letters(set(labs[0]) | set(plan.output))
        return np.einsum(f"{_sub(labs[0], m)}->{_sub(plan.output, m)}", ops[0])
    for step in plan.steps:
        i, j = step.operands
        assert 0 <= i < j < len(ops)
        assert (labs[i], labs[j]) == step.inputs
        m = _letters(set(step.inputs[0]) | set(step.inputs[1]))
        eq = f"{_sub(step.inputs[0], m)},{_sub(step.inputs[1], m)}->{_sub(step.output, m)}"
        res = np.einsum(eq, ops[i], ops[j])
        assert res.size == step.size
        for k in (j, i):
            del ops[k]
            del labs[k]
        ops.append(res)
        labs.append(step.output)
    assert len(ops) == 1 and labs[0] == plan.output
    return ops[0]


def check_structure(plan: ContractionPlan, sizes: dict[str, int]) -> None:
    """Path validity and flop/size accounting, recomputed independently."""
    n = len(plan.inputs)
    assert len(plan.path) == len(plan.steps) == max(n - 1, 0)
    assert plan.path == [s.operands for s in plan.steps]
    current = list(plan.inputs)
    total = 0
    for idx, step in enumerate(plan.steps):
        i, j = step.operands
        assert 0 <= i < j < len(current)
        assert step.inputs == (current[i], current[j])
        others = [lab for k, t in enumerate(current) if k not in (i, j) for lab in t]
        involved = set(step.inputs[0]) | set(step.inputs[1])
        needed = {lab for lab in involved if lab in plan.output or lab in others}
        if idx == len(plan.steps) - 1:
            assert step.output == plan.output
        assert set(step.output) == needed and len(step.output) == len(needed)
        assert set(step.summed) == involved - needed
        flops = int(np.prod([sizes[lab] for lab in involved], dtype=object)) * (2 if step.summed else 1)
        assert step.flops == flops
        assert step.size == int(np.prod([sizes[lab] for lab in step.output], dtype=object))
        total += flops
        del current[j]
        del current[i]
        current.append(step.output)
    if plan.steps:
        assert plan.flops == total
        assert plan.largest_intermediate == max(s.size for s in plan.steps)


def _sizes_from(equation: str, shapes: list[tuple[int, ...]]) -> dict[str, int]:
    terms, _ = parse_equation(equation)
    return {lab: d for t, sh in zip(terms, shapes) for lab, d in zip(t, sh)}


# ---------------------------------------------------------------------------- random einsum equations


@st.composite
def einsum_cases(draw):
    n = draw(st.integers(2, 6))
    pool = "abcdefgh"[: draw(st.integers(1, 8))]
    sizes = {lab: draw(st.integers(1, 4)) for lab in pool}
    terms = [draw(st.lists(st.sampled_from(pool), min_size=0, max_size=4)) for _ in range(n)]
    if n >= 3 and draw(st.booleans()):
        hub = draw(st.sampled_from(pool))
        for k in draw(st.lists(st.integers(0, n - 1), min_size=3, max_size=n, unique=True)):
            if hub not in terms[k]:
                terms[k].append(hub)
    present = sorted({lab for t in terms for lab in t})
    lhs = ",".join("".join(t) for t in terms)
    if draw(st.integers(0, 4)) == 0:
        equation = lhs  # implicit output
    else:
        out = draw(st.permutations(present))[: draw(st.integers(0, len(present)))]
        equation = lhs + "->" + "".join(out)
    shapes = [tuple(sizes[lab] for lab in t) for t in terms]
    seed = draw(st.integers(0, 2**31 - 1))
    return equation, shapes, seed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(einsum_cases())
def test_pairwise_execution_matches_einsum(case):
    equation, shapes, seed = case
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    expected = np.einsum(equation, *arrays)
    sizes = _sizes_from(equation, shapes)
    for minimize in ("flops", "size"):
        plans = {
            effort: contract_path(equation, shapes, minimize=minimize, effort=effort) for effort in ("fast", "high")
        }
        for plan in plans.values():
            check_structure(plan, sizes)
            got = run_plan(plan, arrays)
            assert got.shape == expected.shape
            assert np.allclose(got, expected)
        fast, high = plans["fast"], plans["high"]
        if minimize == "flops":
            assert high.flops <= fast.flops
        else:
            assert high.largest_intermediate <= fast.largest_intermediate


def test_any_unicode_character_is_a_label():
    # opt_einsum's convention beyond 52 indices: digits and other Unicode characters are labels too.
    plan = contract_path("a1,1é->aé", [(2, 3), (3, 4)])
    assert plan.steps[0].summed == ("1",)
    assert plan.flops == 2 * 2 * 3 * 4


def test_implicit_output_follows_numpy():
    assert parse_equation("ab,bc") == (["ab", "bc"], "ac")
    assert parse_equation("ba,ca") == (["ba", "ca"], "bc")
    assert parse_equation("ii") == (["ii"], "")
    assert parse_equation("Ba,ab") == (["Ba", "ab"], "Bb")  # uppercase sorts first, as in numpy
    assert np.einsum("Ba,ab", np.ones((2, 3)), np.ones((3, 4))).shape == (2, 4)
    assert parse_equation(" a b , b c -> a c ") == (["ab", "bc"], "ac")


# -------------------------------------------------------------------------------------- matrix chains


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=4, max_size=9))
def test_matrix_chain_high_effort_is_optimal(dims):
    n = len(dims) - 1
    labels = string.ascii_letters[: n + 1]
    equation = ",".join(labels[k : k + 2] for k in range(n)) + f"->{labels[0]}{labels[n]}"
    shapes = [(dims[k], dims[k + 1]) for k in range(n)]
    optimum = 2 * classic_matrix_chain(dims)
    high = contract_path(equation, shapes, effort="high")
    # The exhaustive DP also considers outer products, which can beat the classic optimum with extents of 1.
    assert high.flops <= optimum
    if min(dims) > 1:
        assert high.flops == optimum
    check_structure(high, _sizes_from(equation, shapes))
    fast = contract_path(equation, shapes)
    assert fast.flops >= high.flops


def test_matrix_chain_textbook_example():
    # CLRS 15.2: dimensions 30x35, 35x15, 15x5, 5x10, 10x20, 20x25 -> 15125 scalar multiplications.
    dims = [30, 35, 15, 5, 10, 20, 25]
    shapes = [(dims[k], dims[k + 1]) for k in range(6)]
    plan = contract_path("ab,bc,cd,de,ef,fg->ag", shapes, effort="high")
    assert plan.flops == 2 * 15125


# --------------------------------------------------------------------------------------- large joins


def _random_tree(n: int, seed: int) -> tuple[list[tuple[str, ...]], tuple[str, ...], dict[str, int]]:
    rnd = random.Random(seed)
    terms: list[list[str]] = [[] for _ in range(n)]
    sizes: dict[str, int] = {}
    for i in range(1, n):
        parent = rnd.randrange(i)
        lab = f"e{i}"
        terms[i].append(lab)
        terms[parent].append(lab)
        sizes[lab] = rnd.randint(2, 4)
    open_labels = []
    for i in rnd.sample(range(n), 3):
        lab = f"o{i}"
        terms[i].append(lab)
        sizes[lab] = 2
        open_labels.append(lab)
    return [tuple(t) for t in terms], tuple(open_labels), sizes


def test_greedy_200_operand_tree_is_fast_and_valid():
    inputs, output, sizes = _random_tree(200, seed=7)
    t0 = time.perf_counter()
    plan = plan_join(inputs, output, sizes)
    elapsed = time.perf_counter() - t0
    assert len(plan.path) == 199
    assert elapsed < 5.0
    check_structure(plan, sizes)
    plan_size = plan_join(inputs, output, sizes, minimize="size")
    check_structure(plan_size, sizes)


def test_greedy_many_disconnected_operands():
    inputs = [(f"x{i}",) for i in range(150)] + [(f"y{i}", "z") for i in range(50)]
    sizes = {f"x{i}": 2 for i in range(150)} | {f"y{i}": 3 for i in range(50)} | {"z": 2}
    plan = plan_join(inputs, ("z",), sizes)
    assert len(plan.steps) == 199
    check_structure(plan, sizes)


def test_tree_execution_matches_chain_order():
    """Execute a 40-operand tree network with two different plans; both must agree."""
    inputs, output, sizes = _random_tree(40, seed=3)
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.5, 1.0, [sizes[lab] for lab in t]) for t in inputs]
    a = run_plan(plan_join(inputs, output, sizes), arrays)
    b = run_plan(plan_join(inputs, output, sizes, minimize="size"), arrays)
    assert np.allclose(a, b)


def _ring(n: int, seed: int) -> tuple[list[tuple[str, ...]], list[np.ndarray], float]:
    rng = np.random.default_rng(seed)
    mats = [np.linalg.qr(rng.standard_normal((3, 3)))[0] for _ in range(n)]
    labels = [f"i{k}" for k in range(n - 1)] + ["p'"]
    inputs = [(labels[k - 1], labels[k]) for k in range(n)]  # operand 0 = (p', i0), ..., closes the ring
    expected = float(np.trace(np.linalg.multi_dot(mats)))
    return inputs, mats, expected


def test_more_than_52_labels_via_plan_join():
    n = 60
    inputs, mats, expected = _ring(n, seed=1)
    sizes = {lab: 3 for t in inputs for lab in t}
    assert len(sizes) == n > 52
    for minimize in ("flops", "size"):
        plan = plan_join(inputs, (), sizes, minimize=minimize)
        check_structure(plan, sizes)
        assert len(plan.steps) == n - 1
        assert np.allclose(run_plan(plan, mats), expected)


def test_more_than_52_labels_exact_dp():
    # 10 operands, each with 6 private summed labels plus ring labels: 70 labels in all.
    n = 10
    inputs, _, _ = _ring(n, seed=2)
    inputs = [t + tuple(f"q{k}_{r}" for r in range(6)) for k, t in enumerate(inputs)]
    sizes = {lab: 2 for t in inputs for lab in t}
    assert len(sizes) == 70
    high = plan_join(inputs, ("i0",), sizes, effort="high")
    fast = plan_join(inputs, ("i0",), sizes)
    check_structure(high, sizes)
    assert high.flops <= fast.flops
    rng = np.random.default_rng(5)
    arrays = [rng.uniform(0.2, 0.6, [2] * len(t)) for t in inputs]
    assert np.allclose(run_plan(high, arrays), run_plan(fast, arrays))


def test_labels_are_arbitrary_strings():
    sizes = {"p'": 3, "dx": 4, "y": 5}
    plan = plan_join([("p'", "dx"), ("dx", "y")], ("p'",), sizes)
    assert plan.steps[0].summed == ("dx", "y")
    assert plan.steps[0].output == ("p'",)
    assert plan.flops == 2 * 3 * 4 * 5


# ----------------------------------------------------------------------------------- special shapes


def test_single_operand_is_a_pure_reduction():
    plan = contract_path("ijk->i", [(2, 3, 4)])
    assert plan.path == [] and plan.steps == []
    assert plan.flops == 24
    assert plan.largest_intermediate == 2
    trace = contract_path("ii", [(5, 5)])
    assert trace.flops == 5 and trace.output == ()


def test_single_operand_reductions_fold_into_first_step():
    plan = contract_path("abc,cd->d", [(2, 3, 4), (4, 5)])
    (step,) = plan.steps
    assert set(step.summed) == {"a", "b", "c"}
    assert step.flops == 2 * 2 * 3 * 4 * 5


def test_diagonal_and_scalar_operands():
    rng = np.random.default_rng(4)
    eq = "aab,,bc->c"
    shapes = [(3, 3, 2), (), (2, 4)]
    arrays = [rng.standard_normal(s) for s in shapes]
    for effort in ("fast", "high"):
        plan = contract_path(eq, shapes, effort=effort)
        assert np.allclose(run_plan(plan, arrays), np.einsum(eq, *arrays))


def test_zero_size_dimension():
    plan = contract_path("ab,bc->ac", [(2, 0), (0, 3)])
    assert plan.flops == 0
    assert run_plan(plan, [np.ones((2, 0)), np.ones((0, 3))]).shape == (2, 3)


# ------------------------------------------------------------------------------------------ memory limit


MEM_EQ = "f,adb,fa->"
MEM_SHAPES = [(4,), (9, 8, 4), (4, 9)]


def test_memory_limit_switches_objective():
    by_flops = contract_path(MEM_EQ, MEM_SHAPES)
    by_size = contract_path(MEM_EQ, MEM_SHAPES, minimize="size")
    assert by_size.largest_intermediate < by_flops.largest_intermediate
    limited = contract_path(MEM_EQ, MEM_SHAPES, memory_limit=by_size.largest_intermediate)
    assert limited.largest_intermediate <= by_size.largest_intermediate
    unlimited = contract_path(MEM_EQ, MEM_SHAPES, memory_limit=by_flops.largest_intermediate)
    assert unlimited.flops == by_flops.flops


def test_memory_limit_unreachable_slices():
    best = contract_path(MEM_EQ, MEM_SHAPES, minimize="size", effort="high").largest_intermediate
    plan = contract_path(MEM_EQ, MEM_SHAPES, memory_limit=best - 1)
    assert plan.sliced and plan.slice_count > 1
    assert plan.largest_intermediate <= best - 1
    assert "sliced over" in str(plan) and "memory_limit" in str(plan)
    with pytest.raises(ValueError, match="slicing") as info:
        contract_path(MEM_EQ, MEM_SHAPES, memory_limit=0)
    assert f"{best:,}" in str(info.value)


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("equation", "shapes", "pattern"),
    [
        (
            "ab,bc->ac",
            [(2, 3), (4, 5)],
            r"operand 1 \('bc'\): label 'b' has size 4.*operand 0 \('ab'\).*size 3",
        ),
        ("ab,bc->ac", [(2, 3), (3,)], r"operand 1 \('bc'\) has 1 dimension"),
        ("ab,bc->ac", [(2, 3)], r"2 operand\(s\) but 1 shape"),
        ("ii->i", [(2, 3)], r"operand 0 \('ii'\): label 'i' has size 3.*same operand"),
        ("ab,bc->ad", [(2, 3), (3, 4)], r"output label 'd'"),
        ("ab,bc->aa", [(2, 3), (3, 4)], r"appears more than once"),
        ("ab,b>c->ac", [(2, 3), (3, 4)], r"stray '>'"),
        ("...a,a->", [(2,), (2,)], r"ellipsis"),
        ("a->b->c", [(2,)], r"more than one"),
    ],
)
def test_shape_and_equation_errors(equation, shapes, pattern):
    with pytest.raises(ValueError, match=pattern):
        contract_path(equation, shapes)


def test_plan_join_validation():
    with pytest.raises(ValueError, match="no size given for label 'b'"):
        plan_join([("a", "b")], ("a",), {"a": 2})
    with pytest.raises(ValueError, match="at least one operand"):
        plan_join([], (), {})
    with pytest.raises(ValueError, match="minimize"):
        plan_join([("a",)], (), {"a": 2}, minimize="time")
    with pytest.raises(ValueError, match="effort"):
        plan_join([("a",)], (), {"a": 2}, effort="max")
    with pytest.raises(TypeError):
        plan_join(["ab"], (), {"a": 2, "b": 2})


# ------------------------------------------------------------------------------------------ rendering


def test_str_lists_every_step():
    shapes = [(2, 3), (3, 4), (4, 5), (5, 6)]
    plan = contract_path("ab,bc,cd,de->ae", shapes)
    text = str(plan)
    lines = text.splitlines()
    assert "ab,bc,cd,de->ae" in lines[0]
    for k, step in enumerate(plan.steps):
        row = next(line for line in lines if line.split()[:1] == [str(k)])
        assert f"({step.operands[0]}, {step.operands[1]})" in row
        assert f"{''.join(step.inputs[0])},{''.join(step.inputs[1])} -> {''.join(step.output)}" in row
        assert f"{step.flops:,}" in row and f"{step.size:,}" in row
    assert f"total flops: {plan.flops:,}" in text
    assert f"largest intermediate: {plan.largest_intermediate:,}" in text
    multi = plan_join([("p'", "dx"), ("dx", "y")], ("p'",), {"p'": 3, "dx": 4, "y": 5})
    assert "[p' dx],[dx y] -> [p']" in str(multi)
    assert "single operand" in str(contract_path("ab->", [(2, 2)]))


def test_shared_batch_label_does_not_trigger_outer_products():
    # Every operand shares the batch label "b"; cheapest-step-first alone would pair non-neighbours
    # (outer products in the chain labels) and blow up the intermediates.
    rnd = random.Random(11)
    n = 120
    inputs = [("b", f"i{k}", f"i{k + 1}") for k in range(n)]
    sizes = {"b": 4} | {f"i{k}": rnd.randint(2, 8) for k in range(n + 1)}
    plan = plan_join(inputs, ("b", "i0", f"i{n}"), sizes)
    check_structure(plan, sizes)
    assert plan.largest_intermediate <= 4 * 8 * 8
    assert plan.flops <= n * 2 * 4 * 8**3
