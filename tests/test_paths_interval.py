"""Tests for fast mode's interval DP over leaf orders (tensorlogic.plan.paths_interval) and for fast mode's
quality and safety: never worse than opt_einsum's ``auto``, plans that execute to numpy's numbers, and the
best-known costs on networks where greedy orders are far off."""

from __future__ import annotations

import functools
import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_paths import _check_costs, _random_graph, _sizes, run_plan

from tensorlogic.plan.contract import contract_path, parse_equation, plan_join
from tensorlogic.plan.paths_common import Network, Tree, parse_minimize
from tensorlogic.plan.paths_greedy import greedy_ssa, oe_greedy_ssa
from tensorlogic.plan.paths_interval import absorbing_cherries, guided_order, interval_dp, leaf_order, refine

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench" / "einsum_benchmark"


def _bench(name: str):
    path = BENCH / f"{name}.json"
    if not path.exists():
        path = Path(__file__).parent / "data" / f"{name}.json"
    data = json.loads(path.read_text())
    return data["format_string"], [tuple(s) for s in data["shapes"]]


@st.composite
def joins(draw, min_operands=3, max_operands=7, max_size=4):
    """A random join (labels of each operand, output, sizes), connected or not, hyperedges allowed."""
    n = draw(st.integers(min_operands, max_operands))
    pool = [f"l{k}" for k in range(draw(st.integers(2, 12)))]
    sizes = {lab: draw(st.integers(1, max_size)) for lab in pool}
    terms = [tuple(dict.fromkeys(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4)))) for _ in range(n)]
    present = sorted({lab for t in terms for lab in t})
    out = tuple(draw(st.permutations(present))[: draw(st.integers(0, min(3, len(present))))])
    return terms, out, sizes


def interval_reference(terms, out, sizes) -> int:
    """Cheapest tree contracting only contiguous runs of ``terms`` (in the order given), by plain recursion:
    a run keeps the labels that occur in the output or in an operand outside it."""
    n = len(terms)
    outside_cache: dict[tuple[int, int], frozenset] = {}

    def kept(i: int, j: int) -> frozenset:
        if (i, j) not in outside_cache:
            inside = frozenset().union(*terms[i : j + 1])
            others = frozenset().union(*(terms[:i] + terms[j + 1 :])) if n > j - i + 1 else frozenset()
            outside_cache[i, j] = frozenset(lab for lab in inside if lab in out or lab in others)
        return outside_cache[i, j]

    @functools.cache
    def best(i: int, j: int) -> int:
        if i == j:
            return 0
        result = None
        for m in range(i, j):
            left = frozenset(terms[i]) if m == i else kept(i, m)
            right = frozenset(terms[j]) if m + 1 == j else kept(m + 1, j)
            inv = left | right
            f = 1
            for lab in inv:
                f *= sizes[lab]
            if inv != kept(i, j):
                f *= 2
            c = best(i, m) + best(m + 1, j) + f
            result = c if result is None else min(result, c)
        return result

    return best(0, n - 1)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(joins(), st.integers(0, 2**31 - 1))
def test_interval_dp_equals_plain_recursion(case, seed):
    terms, out, sizes = case
    order = list(range(len(terms)))
    random.Random(seed).shuffle(order)
    net = Network(terms, out, sizes)
    obj = parse_minimize("flops")
    ordered = [terms[i] for i in order]
    expected = interval_reference(ordered, set(out), sizes)
    (cost, _), pairs = interval_dp(net, [net.masks[i] for i in order], net.out, obj)
    assert cost == expected
    # the pairs build a tree of exactly that cost (item k is operand order[k])
    ids = list(order)
    tree = Tree(net)
    for x, y in pairs:
        ids.append(tree.join(ids[x], ids[y]))
    assert tree.total_flops() == expected and len(pairs) == len(terms) - 1
    # a cap below the optimum finds nothing; a cap at it finds it
    if expected > 0:
        assert interval_dp(net, [net.masks[i] for i in order], net.out, obj, cap=expected - 1) is None
    assert interval_dp(net, [net.masks[i] for i in order], net.out, obj, cap=expected)[0][0] == expected


def test_leaf_orders_are_permutations_and_refine_never_worsens():
    obj = parse_minimize("flops")
    for seed in range(8):
        inputs, sizes = _random_graph(24, 2, seed=seed, bond=3)
        net = Network(inputs, (), sizes)
        tree = Tree.from_ssa(net, greedy_ssa(net, "size"))
        rng = random.Random(seed)
        for order in (leaf_order(tree), leaf_order(tree, rng), guided_order(tree), guided_order(tree, rng, 0.3)):
            assert sorted(order) == list(range(net.n))
        # the tree's own leaf order admits the tree itself: the DP is at most its cost
        (cost, _), _ = interval_dp(net, [net.masks[i] for i in leaf_order(tree)], net.out, obj)
        assert cost <= tree.total_flops()
        better = refine(tree, obj, rng, 6)
        assert better.total_flops() <= tree.total_flops()
        again = Tree.from_ssa(net, better.to_ssa())
        assert again.total_flops() == better.total_flops()
        assert again.leafset[again.root] == net.all_leaves
        # ranked by the largest intermediate first, the general interval DP is used
        by_size = parse_minimize("size")
        smaller = refine(tree, by_size, rng, 3)
        assert smaller.score(by_size) <= tree.score(by_size)
        assert max(smaller.size.values()) <= max(tree.size.values())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(joins(min_operands=4, max_operands=9), st.integers(0, 2**31 - 1))
def test_coarsened_round_equals_plain_recursion_over_items(case, seed):
    """A coarsened round (the start tree's absorbing cherries fixed as one item each) finds the cheapest
    interval tree over those items in the guided order: checked against the plain recursion on the items'
    label sets plus the fixed cherries' own cost, or keeps the start tree when that is not cheaper."""
    terms, out, sizes = case
    net = Network(terms, out, sizes)
    obj = parse_minimize("flops")
    rng = random.Random(seed)
    tree = Tree.from_ssa(net, greedy_ssa(net, "costmod", rng=rng, temperature=0.5, costmod=rng.uniform(0.1, 4)))
    cherries = absorbing_cherries(tree)
    for v, (a, b) in cherries:  # an absorbing cherry: two operands, a result no larger than the larger one
        assert a < net.n and b < net.n and tree.size[v] <= max(net.prod(net.masks[a]), net.prod(net.masks[b]))
    partner = {a: b for _, (a, b) in cherries} | {b: a for _, (a, b) in cherries}
    items, fixed, seen = [], 0, set()
    names = {b: lab for lab, b in net.bit.items()}
    for leaf in guided_order(tree):
        other = partner.get(leaf)
        if other is None:
            items.append(terms[leaf])
        elif other not in seen:
            seen.add(leaf)
            v = next(v for v, pair in cherries if leaf in pair)
            items.append(tuple(names[b] for b in range(len(names)) if (tree.eff[v] >> b) & 1))
            fixed += tree.flops[v]
    expected = min(tree.total_flops(), fixed + interval_reference(items, set(out), sizes)) if len(items) > 1 \
        else tree.total_flops()
    better = refine(tree, obj, rng, 1, coarsen=True)
    assert better.total_flops() == expected
    assert better.leafset[better.root] == net.all_leaves
    assert Tree.from_ssa(net, better.to_ssa()).total_flops() == expected


# ------------------------------------------------------------------------------------------- fast mode


@st.composite
def medium_equations(draw):
    """Equations of 9 to 18 operands (past fast mode's exhaustive DP), letters as labels, small extents."""
    n = draw(st.integers(9, 18))
    pool = "abcdefghijklmnop"[: draw(st.integers(6, 16))]
    sizes = {lab: draw(st.integers(1, 3)) for lab in pool}
    terms = [draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True)) for _ in range(n)]
    present = sorted({lab for t in terms for lab in t})
    out = draw(st.permutations(present))[: draw(st.integers(0, 2))]
    equation = ",".join("".join(t) for t in terms) + "->" + "".join(out)
    return equation, [tuple(sizes[lab] for lab in t) for t in terms], draw(st.integers(0, 2**31 - 1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(medium_equations())
def test_fast_mode_not_worse_than_auto_and_executes_like_numpy(case):
    oe = pytest.importorskip("opt_einsum")
    equation, shapes, seed = case
    plan = contract_path(equation, shapes)
    auto = oe.contract_path(equation, *shapes, shapes=True, optimize="auto")[1].opt_cost
    assert plan.flops <= int(auto)
    _check_costs(plan, _sizes(equation, shapes))
    rng = np.random.default_rng(seed)
    arrays = [rng.standard_normal(s) for s in shapes]
    expected = np.einsum(equation, *arrays, optimize="greedy")
    assert np.allclose(run_plan(plan, arrays), expected)


def test_fast_mode_is_deterministic_on_medium_joins():
    inputs, sizes = _random_graph(26, 3, seed=5, bond=2)
    plans = [plan_join(inputs, (), sizes) for _ in range(3)]
    assert all(p.path == plans[0].path for p in plans)
    assert plan_join(inputs, (), sizes, seed=1).flops > 0


def test_fast_mode_reaches_the_optimum_on_a_4x4_lattice():
    oe = pytest.importorskip("opt_einsum")
    labels: dict[tuple[int, int], list[str]] = {(r, c): [] for r in range(4) for c in range(4)}
    sizes = {}
    for r in range(4):
        for c in range(4):
            for dr, dc in ((0, 1), (1, 0)):
                if r + dr < 4 and c + dc < 4:
                    lab = f"b{len(sizes)}"
                    sizes[lab] = 4
                    labels[r, c].append(lab)
                    labels[r + dr, c + dc].append(lab)
    inputs = [tuple(labels[r, c]) for r in range(4) for c in range(4)]
    plan = plan_join(inputs, (), sizes)
    names = {lab: chr(ord("a") + k) for k, lab in enumerate(sorted(sizes))}
    eq = ",".join("".join(names[lab] for lab in t) for t in inputs) + "->"
    shapes = [(4,) * len(t) for t in inputs]
    optimum = int(oe.contract_path(eq, *shapes, shapes=True, optimize="dp")[1].opt_cost)  # exact here
    greedy = int(oe.contract_path(eq, *shapes, shapes=True, optimize="greedy")[1].opt_cost)
    assert plan.flops <= 1.10 * optimum < greedy


@pytest.mark.parametrize(
    "name, best_known",
    [("str_nw_mera_open_26", 31_030_930_938), ("lm_batch_likelihood_sentence_3_12d", 1_562_294_244)],
)
def test_fast_mode_near_best_known_where_greedy_is_far_off(name, best_known):
    eq, shapes = _bench(name)
    plan = contract_path(eq, shapes)
    assert plan.flops <= 1.10 * best_known
    terms, out = parse_equation(eq)
    sizes = _sizes(eq, shapes)
    net = Network([tuple(t) for t in terms], tuple(out), sizes)
    assert Tree.from_ssa(net, oe_greedy_ssa(net)).total_flops() > 1.5 * best_known  # greedy alone is far off
