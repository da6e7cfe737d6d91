"""Tests of tensorlogic.backends.relations against independent references (Python sets, numpy, networkx)."""

from __future__ import annotations

import itertools
from contextlib import contextmanager

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorlogic.backends.relation_joins as joins_mod
import tensorlogic.backends.relation_keys as keys_mod
import tensorlogic.backends.relations as rel_mod
from tensorlogic.backends.relations import Relation, join_project

VARS = ("a", "b", "c", "d")
BIG = 2**40  # extents whose products overflow int64 keys: exercises the lexsort / ranking fallbacks


# ---------------------------------------------------------------------------------------------------------
# references and helpers
# ---------------------------------------------------------------------------------------------------------


def brute_force(operands, out_vars):
    """Conjunctive query by enumerating every combination of operand tuples."""
    result = set()
    for combo in itertools.product(*(sorted(tuples) for tuples, _ in operands)):
        binding = {}
        ok = True
        for tup, (_, vs) in zip(combo, operands):
            for v, x in zip(vs, tup):
                if binding.setdefault(v, x) != x:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            result.add(tuple(binding[v] for v in out_vars))
    return result


def assert_canonical(r: Relation):
    c = r.cols
    assert c.dtype == np.int64
    assert c.shape == (len(r), r.arity)
    tuples = r.tuples()
    assert tuples == sorted(set(tuples)), "rows must be sorted and unique"
    if len(r) and r.arity:
        assert (c >= 0).all()
        assert (c.max(axis=0) < np.asarray(r.shape)).all()


# each tuning knob, by the module that defines (and reads) it
_KNOBS = {
    "_SPARSE_MIN_PAIRS": joins_mod, "_SPARSE_RATIO": joins_mod, "_DENSE_RATIO": joins_mod,
    "_DENSE_BLOCK_BYTES": joins_mod, "_BITMAP_RATIO": keys_mod, "_BITMAP_MIN": keys_mod, "_KEYS_ONLY_ROWS": rel_mod,
}
MODES = ("auto", "sparse", "dense", "merge", "bitmap", "nobitmap")


@contextmanager
def sparse_mode(mode: str):
    """Force the sparse CSR x CSR product ('sparse'), the product with a dense factor in small row blocks
    ('dense'), forbid both ('merge'), or keep the cost rules ('auto'); 'bitmap' / 'nobitmap' keep the join
    rules but make set operations on keys use Boolean bitmaps whenever the key range has at most 2**20
    cells / never, and relations built from rows keep only their keys (rows decoded on first use)."""
    saved = {k: getattr(m, k) for k, m in _KNOBS.items()}
    if mode == "sparse":
        joins_mod._SPARSE_MIN_PAIRS, joins_mod._SPARSE_RATIO, joins_mod._DENSE_RATIO = 0, 0.0, -1.0
    elif mode == "dense":
        joins_mod._SPARSE_MIN_PAIRS, joins_mod._SPARSE_RATIO, joins_mod._DENSE_RATIO = 0, 0.0, float("inf")
        joins_mod._DENSE_BLOCK_BYTES = 1  # blocks of 8 rows: many blocks even for small relations
    elif mode == "merge":
        joins_mod._SPARSE_MIN_PAIRS = 1 << 62
    elif mode == "bitmap":
        keys_mod._BITMAP_RATIO, keys_mod._BITMAP_MIN, rel_mod._KEYS_ONLY_ROWS = 0, 1 << 20, -1
    elif mode == "nobitmap":
        keys_mod._BITMAP_RATIO, keys_mod._BITMAP_MIN, rel_mod._KEYS_ONLY_ROWS = 0, -1, -1
    else:
        assert mode == "auto"
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(_KNOBS[k], k, v)


def random_tuples(rng, n, shape):
    return {tuple(int(rng.integers(0, s)) for s in shape) for _ in range(n)}


# ---------------------------------------------------------------------------------------------------------
# join_project against brute force
# ---------------------------------------------------------------------------------------------------------


@st.composite
def queries(draw):
    big = draw(st.booleans())
    sizes = {v: draw(st.integers(1, 3)) for v in VARS}
    operands = []  # (Relation, vars, python set)
    for _ in range(draw(st.integers(1, 4))):
        arity = draw(st.integers(1, 3))
        vs = tuple(draw(st.lists(st.sampled_from(VARS), min_size=arity, max_size=arity)))
        shape = tuple(BIG if big else sizes[v] + draw(st.integers(0, 1)) for v in vs)
        cell = st.tuples(*(st.integers(0, sizes[v] - 1) for v in vs))
        # mostly non-empty operands, so that most queries get past the empty-operand shortcut
        tuples = draw(st.sets(cell, min_size=0 if draw(st.integers(0, 9)) == 0 else 1, max_size=10))
        rel = Relation.from_tuples(list(tuples), arity, shape)
        if draw(st.integers(0, 4)) == 0:  # a constant in the atom: R(x, 2)
            pos = draw(st.integers(0, arity - 1))
            val = draw(st.integers(0, sizes[vs[pos]]))
            rel = rel.select(pos, val)
            tuples = {t for t in tuples if t[pos] == val}
        operands.append((rel, vs, tuples))
    present = sorted({v for _, vs, _ in operands for v in vs})
    out = list(draw(st.permutations(present)))[: draw(st.integers(0, len(present)))]
    if out and draw(st.integers(0, 5)) == 0:
        out.insert(draw(st.integers(0, len(out))), draw(st.sampled_from(out)))  # repeated head variable
    order = None
    if len(operands) > 1 and draw(st.booleans()):
        order, k = [], len(operands)
        while k > 1:
            i = draw(st.integers(0, k - 1))
            j = draw(st.integers(0, k - 2))
            order.append((i, j if j < i else j + 1))
            k -= 1
    var_sizes = {v: (BIG if big else sizes[v]) for v in VARS}
    mode = draw(st.sampled_from(MODES))
    return operands, tuple(out), var_sizes, order, mode


@given(queries())
@settings(max_examples=60, deadline=None)
def test_join_project_matches_brute_force(q):
    operands, out_vars, var_sizes, order, mode = q
    with sparse_mode(mode):
        result = join_project([(r, vs) for r, vs, _ in operands], out_vars, var_sizes, order=order)
    expected = brute_force([(t, vs) for _, vs, t in operands], out_vars)
    assert set(result.tuples()) == expected
    assert result.arity == len(out_vars)
    assert result.shape == tuple(var_sizes[v] for v in out_vars)
    assert_canonical(result)


@given(queries())
@settings(max_examples=60, deadline=None)
def test_every_contraction_order_agrees(q):
    operands, out_vars, var_sizes, order, _ = q
    ops = [(r, vs) for r, vs, _ in operands]
    greedy = join_project(ops, out_vars, var_sizes)
    left_deep = [(0, 1)] * (len(ops) - 1)
    np.testing.assert_array_equal(join_project(ops, out_vars, var_sizes, order=left_deep).cols, greedy.cols)


def test_paths_agree_on_larger_random_graphs():
    rng = np.random.default_rng(1)
    for n, m in [(50, 400), (300, 3000), (2000, 4000)]:
        edges = rng.integers(0, n, (m, 2))
        e = Relation.from_tuples(edges, 2, (n, n))
        ops = [(e, ("x", "y")), (e, ("y", "z"))]
        sizes = {"x": n, "y": n, "z": n}
        results = {}
        for mode in MODES:
            with sparse_mode(mode):
                results[mode] = join_project(ops, ("x", "z"), sizes)
        dense = (e.to_dense() @ e.to_dense()) > 0
        for r in results.values():
            np.testing.assert_array_equal(r.to_dense() > 0, dense)
            assert_canonical(r)
        # projection onto (z, x) and a three-way path with an existential middle
        zx = join_project(ops, ("z", "x"), sizes)
        np.testing.assert_array_equal(zx.to_dense() > 0, dense.T)
        three = join_project(ops + [(e, ("z", "w"))], ("x", "w"), {**sizes, "w": n})
        np.testing.assert_array_equal(three.to_dense() > 0, (dense.astype(int) @ e.to_dense()) > 0)


@pytest.mark.parametrize("block_bytes", [1, 1 << 10, 1 << 18])
def test_dense_factor_products_match_numpy(block_bytes, monkeypatch):
    """The products with one dense Boolean factor, called directly: rows in any order, several row blocks
    (the last one partial), empty rows and columns, an empty factor."""
    monkeypatch.setattr(joins_mod, "_DENSE_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(5)
    for nrow, inner, ncol, na, nb in [(37, 11, 23, 120, 40), (100, 50, 3, 600, 70), (9, 4, 9, 0, 10), (1, 1, 1, 1, 1)]:
        a = np.zeros((nrow, inner), dtype=bool)
        b = np.zeros((inner, ncol), dtype=bool)
        a[rng.integers(0, nrow, na), rng.integers(0, inner, na)] = True
        b[rng.integers(0, inner, nb), rng.integers(0, ncol, nb)] = True
        r, sa = np.nonzero(a)
        sb, c = np.nonzero(b)
        perm_a, perm_b = rng.permutation(r.shape[0]), rng.permutation(sb.shape[0])
        r, sa, sb, c = r[perm_a], sa[perm_a], sb[perm_b], c[perm_b]
        expected = np.flatnonzero((a.astype(np.int64) @ b.astype(np.int64)) > 0)
        for product in (joins_mod._dense_left_product, joins_mod._dense_right_product):
            got = product(r, sa, sb, c, nrow, inner, ncol)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, expected)


def test_cost_rule_picks_the_dense_factor_for_dense_results(monkeypatch):
    """A product whose result covers most cells goes through a dense factor; a sparse one does not."""
    calls = []
    for name in ("_dense_left_product", "_dense_right_product"):
        fn = getattr(joins_mod, name)
        monkeypatch.setattr(joins_mod, name, lambda *a, fn=fn, name=name: calls.append(name) or fn(*a))
    rng = np.random.default_rng(6)
    n = 400
    dense = Relation.from_tuples(rng.integers(0, n, (40_000, 2)), 2, (n, n))
    edges = Relation.from_tuples(rng.integers(0, n, (2_000, 2)), 2, (n, n))
    sizes = dict.fromkeys("xyz", n)
    got = join_project([(dense, ("x", "y")), (edges, ("y", "z"))], ("x", "z"), sizes)
    assert calls == ["_dense_left_product"]
    expected = (dense.to_dense() @ edges.to_dense()) > 0
    np.testing.assert_array_equal(got.to_dense() > 0, expected)
    assert_canonical(got)
    # the same product with the sparse operand on the left: the dense factor is the right one
    got = join_project([(edges, ("x", "y")), (dense, ("y", "z"))], ("x", "z"), sizes)
    assert calls[-1] == "_dense_right_product"
    np.testing.assert_array_equal(got.to_dense() > 0, (edges.to_dense() @ dense.to_dense()) > 0)
    calls.clear()
    sparse = Relation.from_tuples(rng.integers(0, 20_000, (3_000, 2)), 2, (20_000, 20_000))
    sizes = dict.fromkeys("xyz", 20_000)
    join_project([(sparse, ("x", "y")), (sparse, ("y", "z"))], ("x", "z"), sizes)
    assert calls == []


def test_huge_extents_fall_back_to_ranking():
    """Ids up to 2**40 (key products beyond int64): results agree with brute force on every path."""
    rng = np.random.default_rng(4)
    ids = np.array([0, 7, 2**39, BIG - 1])
    a = {tuple(int(x) for x in ids[rng.integers(0, 4, 3)]) for _ in range(30)}
    b = {tuple(int(x) for x in ids[rng.integers(0, 4, 2)]) for _ in range(10)}
    ra = Relation.from_tuples(list(a), 3, (BIG,) * 3)
    rb = Relation.from_tuples(list(b), 2, (BIG,) * 2)
    sizes = dict.fromkeys("xyzw", BIG)
    for ops, out in [
        ([(ra, ("x", "y", "z")), (rb, ("z", "w"))], ("w", "y", "x")),  # row index (x, y) overflows
        ([(ra, ("x", "y", "z")), (rb, ("y", "z"))], ("x",)),  # shared key (y, z) overflows
        ([(ra, ("x", "y", "z")), (rb, ("z", "w"))], ("x", "w")),  # indices compressed by ranking
        ([(ra, ("x", "y", "z")), (rb, ("w", "w"))], ("z", "w")),
    ]:
        expected = brute_force([(set(r.tuples()), vs) for r, vs in ops], out)
        for mode in ("sparse", "dense", "merge"):
            with sparse_mode(mode):
                got = join_project(ops, out, sizes)
            assert set(got.tuples()) == expected
            assert_canonical(got)


def test_explicit_order_with_single_steps():
    e = Relation.from_tuples([(0, 1), (1, 2), (2, 0), (2, 3)], 2, (4, 4))
    ops = [(e, ("x", "y")), (e, ("y", "z")), (e, ("z", "w"))]
    sizes = dict.fromkeys("xyzw", 4)
    greedy = join_project(ops, ("x", "w"), sizes)
    for order in ([(1,), (0, 2), (0, 1)], [(0, 2), (0, 1)], [(1, 2)], [(2, 1), (0,), (1, 0)]):
        assert join_project(ops, ("x", "w"), sizes, order=order).tuples() == greedy.tuples()
    assert set(greedy.tuples()) == brute_force([(set(e.tuples()), vs) for _, vs in ops], ("x", "w"))


def test_triangles_and_cross_product():
    rng = np.random.default_rng(2)
    n = 12
    e = Relation.from_tuples(rng.integers(0, n, (40, 2)), 2, (n, n))
    t = set(e.tuples())
    ops = [(e, ("x", "y")), (e, ("y", "z")), (e, ("z", "x"))]
    sizes = dict.fromkeys("xyzuv", n)
    got = join_project(ops, ("x", "y", "z"), sizes)
    assert set(got.tuples()) == brute_force([(t, vs) for _, vs in ops], ("x", "y", "z"))
    cross = join_project([(e, ("x", "y")), (e, ("u", "v"))], ("v", "x"), sizes)
    assert set(cross.tuples()) == {(v, x) for x, _ in t for _, v in t}


def test_repeated_variables_and_empty_head():
    r = Relation.from_tuples([(0, 0, 1), (1, 1, 1), (2, 1, 2), (3, 3, 3)], 3, (4, 4, 4))
    assert join_project([(r, ("x", "x", "y"))], ("y", "x"), {"x": 4, "y": 4}).tuples() == [
        (1, 0),
        (1, 1),
        (3, 3),
    ]
    assert join_project([(r, ("x", "x", "x"))], ("x",), {"x": 4}).tuples() == [(1,), (3,)]
    assert join_project([(r, ("x", "x", "y"))], ("x", "x"), {"x": 4}).tuples() == [(0, 0), (1, 1), (3, 3)]
    # an empty head asks whether the body has a solution: one empty tuple, or none
    yes = join_project([(r, ("x", "y", "z"))], (), {})
    no = join_project([(r.select(0, 0), ("x", "y", "z")), (r, ("x", "x", "x"))], (), {})
    assert (len(yes), yes.arity, yes.shape) == (1, 0, ())
    assert len(no) == 0 and no.arity == 0
    assert yes.to_dense() == 1.0 and no.to_dense() == 0.0


def test_empty_operands_and_shapes():
    e = Relation.empty(2, (5, 5))
    r = Relation.from_tuples([(1, 2)], 2, (5, 5))
    out = join_project([(r, ("x", "y")), (e, ("y", "z"))], ("x", "z"), {"x": 5, "y": 5, "z": 7})
    assert len(out) == 0 and out.shape == (5, 7)
    # a variable missing from var_sizes takes the smallest extent of its positions
    out = join_project([(r, ("x", "y"))], ("y",), {})
    assert out.shape == (5,) and out.tuples() == [(2,)]


@pytest.mark.parametrize("mode", MODES)
def test_values_beyond_a_smaller_extent_never_match(mode):
    """A variable's positions may have different extents: values beyond the smallest one match nothing."""
    r1 = Relation.from_tuples([(0, 7), (1, 2), (0, 2), (2, 9), (3, 4)], 2, (4, 10))
    r2 = Relation.from_tuples([(2, 0), (4, 1), (4, 4)], 2, (5, 5))
    r3 = Relation.from_tuples([(0, 7, 1), (1, 2, 1), (0, 2, 0), (3, 9, 1)], 3, (4, 10, 2))
    r4 = Relation.from_tuples([(2,), (4,)], 1, (5,))
    cases = [([(r1, ("x", "y")), (r2, ("y", "z"))], out) for out in [("x",), ("y",), ("y", "x"), ("x", "z"), ("z",)]]
    cases += [([(r3, ("x", "y", "w")), (r4, ("y",))], out) for out in [("x",), ("x", "w"), ("w", "y")]]
    cases += [([(r1, ("x", "y")), (r1, ("x", "y")), (r4, ("y",))], ("y", "x"))]
    for ops, out in cases:
        expected = brute_force([(set(r.tuples()), vs) for r, vs in ops], out)
        with sparse_mode(mode):
            got = join_project(ops, out, {})
        assert set(got.tuples()) == expected, (out, got.tuples())
        assert_canonical(got)


def test_join_project_errors():
    r = Relation.from_tuples([(1, 2)], 2, (5, 5))
    with pytest.raises(ValueError, match="occur in no operand"):
        join_project([(r, ("x", "y"))], ("x", "w"), {"x": 5, "y": 5, "w": 5})
    with pytest.raises(ValueError):
        join_project([(r, ("x",))], ("x",), {"x": 5})
    with pytest.raises(ValueError):
        join_project([(r, ("x", "y")), (r, ("y", "z"))], ("x",), {}, order=[(0, 0)])
    with pytest.raises(ValueError):
        join_project([(r, ("x", "y")), (r, ("y", "z"))], ("x",), {}, order=[(0, 2)])
    with pytest.raises(ValueError, match="var_sizes"):
        join_project([(r, ("x", "y"))], ("y",), {"y": 2})


# ---------------------------------------------------------------------------------------------------------
# Relation set operations against Python sets
# ---------------------------------------------------------------------------------------------------------


@st.composite
def relation_pairs(draw):
    arity = draw(st.integers(0, 3))
    big = draw(st.booleans())
    extent = draw(st.integers(1, 5))
    cell = st.tuples(*([st.integers(0, extent - 1)] * arity))
    s1, s2, probes = (draw(st.sets(cell, max_size=12)) for _ in range(3))
    shape1 = tuple(BIG if big else extent + draw(st.integers(0, 2)) for _ in range(arity))
    shape2 = tuple(BIG if big else extent + draw(st.integers(0, 2)) for _ in range(arity))
    return arity, s1, s2, shape1, shape2, sorted(probes)


@given(relation_pairs())
@settings(max_examples=60, deadline=None)
def test_set_operations_match_python_sets(case):
    arity, s1, s2, shape1, shape2, probes = case
    r1 = Relation.from_tuples(list(s1), arity, shape1)
    r2 = Relation.from_tuples(list(s2), arity, shape2)
    assert_canonical(r1)
    assert set(r1.tuples()) == s1 and len(r1) == len(s1)
    u = r1.union(r2)
    assert set(u.tuples()) == s1 | s2
    assert u.shape == tuple(max(x, y) for x, y in zip(shape1, shape2))
    assert_canonical(u)
    d = r1.difference(r2)
    assert set(d.tuples()) == s1 - s2 and d.shape == shape1
    assert_canonical(d)
    # the difference is disjoint from what was subtracted, so the union may skip the membership test
    assert set(r2.union(d).tuples()) == s1 | s2
    rows = np.array(probes, dtype=np.int64).reshape(len(probes), arity)
    np.testing.assert_array_equal(r1.contains(rows), np.array([p in s1 for p in probes], dtype=bool))
    for pos in range(arity):
        for val in (0, 1, 7):
            sel = r1.select(pos, val)
            assert set(sel.tuples()) == {t for t in s1 if t[pos] == val}
            assert sel.shape == shape1
            assert_canonical(sel)


def test_contains_out_of_range_and_negative():
    r = Relation.from_tuples([(0, 1), (2, 3)], 2, (3, 4))
    got = r.contains(np.array([[0, 1], [2, 3], [-1, 1], [3, 3], [2, 4], [0, 0]]))
    np.testing.assert_array_equal(got, [True, True, False, False, False, False])


def test_many_small_unions_then_difference():
    """A long chain of unions (pending sorted runs inside) stays a correct set."""
    rng = np.random.default_rng(3)
    shape = (40, 40)
    acc, ref = Relation.empty(2, shape), set()
    for step in range(200):
        batch = random_tuples(rng, int(rng.integers(0, 30)), shape)
        delta = Relation.from_tuples(list(batch), 2, shape).difference(acc)
        assert set(delta.tuples()) == batch - ref
        acc = acc.union(delta) if step % 3 else delta.union(acc)
        ref |= batch
        assert len(acc) == len(ref)
        if step % 37 == 0:
            probes = np.array(sorted(random_tuples(rng, 50, shape)))
            np.testing.assert_array_equal(acc.contains(probes), [tuple(p) in ref for p in probes.tolist()])
    assert set(acc.tuples()) == ref
    assert_canonical(acc)
    expected = Relation.from_tuples(list(ref), 2, shape).to_dense()
    np.testing.assert_array_equal(acc.to_dense(), expected)


def test_membership_bitmap_is_per_relation():
    """A difference caches a membership bitmap on the subtracted relation and a union passes an updated copy
    on: the older relation still answers for its own tuples only."""
    rng = np.random.default_rng(7)
    shape = (60, 60)
    base_set = random_tuples(rng, 2500, shape)
    base = Relation.from_tuples(list(base_set), 2, shape)
    probe_set = random_tuples(rng, 3000, shape)
    probe = Relation.from_tuples(list(probe_set), 2, shape)
    delta = probe.difference(base)
    assert base._bits is not None  # dense enough: the difference built a bitmap
    assert set(delta.tuples()) == probe_set - base_set
    grown = base.union(delta)
    assert grown._bits is not None and grown._bits is not base._bits
    assert set(grown.tuples()) == base_set | probe_set
    cells = np.array([(i, j) for i in range(60) for j in range(60)])
    np.testing.assert_array_equal(base.contains(cells), [tuple(c) in base_set for c in cells.tolist()])
    np.testing.assert_array_equal(grown.contains(cells), [tuple(c) in base_set | probe_set for c in cells.tolist()])
    # a union that does not know its operands are disjoint tests membership with the bitmap
    again = grown.union(probe)
    assert len(again) == len(grown)
    more = Relation.from_tuples([(0, 0), (59, 59), (30, 1)], 2, shape)
    assert set(grown.union(more).tuples()) == base_set | probe_set | set(more.tuples())
    assert set(grown.difference(more).tuples()) == (base_set | probe_set) - set(more.tuples())


def test_from_tuples_sorts_dedups_and_validates():
    r = Relation.from_tuples([(2, 1), (0, 3), (2, 1), (0, 0)], 2, (3, 4))
    assert r.tuples() == [(0, 0), (0, 3), (2, 1)]
    assert not r.cols.flags.writeable
    assert Relation.from_tuples(np.array([[3], [1], [3]]), 1, (4,)).tuples() == [(1,), (3,)]
    assert Relation.from_tuples(iter([]), 2, (3, 3)).cols.shape == (0, 2)
    assert Relation.from_tuples([(1, 5)], 2).shape == (2, 6)
    with pytest.raises(ValueError):
        Relation.from_tuples([(0, 4)], 2, (3, 4))
    with pytest.raises(ValueError):
        Relation.from_tuples([(-1, 0)], 2, (3, 4))
    with pytest.raises(ValueError):
        Relation.from_tuples([(0, 1, 2)], 2, (3, 4))
    with pytest.raises(ValueError):
        Relation.from_tuples([(0, 1)], 2, (3,))
    big = Relation.from_tuples([(BIG - 1, 2), (5, 2), (5, 1)], 2, (BIG, BIG))
    assert big.tuples() == [(5, 1), (5, 2), (BIG - 1, 2)]


@pytest.mark.parametrize("keys_only_rows", [-1, 1 << 14])
def test_from_tuples_keeps_keys_only_for_many_rows(keys_only_rows, monkeypatch):
    """Above `_KEYS_ONLY_ROWS` rows a relation stores only its keys; its rows decode to the same canonical
    array, and the caller's array is never shared."""
    monkeypatch.setattr(rel_mod, "_KEYS_ONLY_ROWS", keys_only_rows)
    rng = np.random.default_rng(8)
    for rows in (np.array([[2, 1], [0, 3], [2, 1], [0, 0]]), rng.integers(0, 300, (20_000, 2))):
        canonical = np.unique(rows, axis=0)
        for src in (rows, canonical):  # unsorted with duplicates; already canonical
            arr = src.copy()
            r = Relation.from_tuples(arr, 2, (300, 300))
            assert (r._cols is None) == (len(canonical) > keys_only_rows)
            arr[:] = 0  # the relation does not see later changes to the caller's array
            np.testing.assert_array_equal(r.cols, canonical)
            assert_canonical(r)
            assert not r.cols.flags.writeable


@st.composite
def dense_arrays(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), max_size=3)))
    size = int(np.prod(shape))
    bits = draw(st.lists(st.booleans(), min_size=size, max_size=size))
    return shape, bits


@given(dense_arrays())
@settings(max_examples=60, deadline=None)
def test_dense_round_trip(case):
    shape, bits = case
    a = np.array(bits, dtype=bool).reshape(shape) * 2.5
    r = Relation.from_dense(a)
    assert r.shape == shape and r.arity == len(shape)
    assert_canonical(r)
    assert set(r.tuples()) == {tuple(int(i) for i in t) for t in np.argwhere(a)}
    np.testing.assert_array_equal(r.to_dense(), (a != 0).astype(np.float64))
    assert r.to_dense(np.int8).dtype == np.int8
    np.testing.assert_array_equal(Relation.from_tuples(r.cols, r.arity, shape).to_dense(), r.to_dense())


def test_empty_with_shape_and_nbytes():
    e = Relation.empty(3, (2, 3, 4))
    assert len(e) == 0 and e.cols.shape == (0, 3) and e.to_dense().shape == (2, 3, 4)
    assert not e.to_dense().any()
    r = Relation.from_tuples([(1, 2), (0, 0)], 2, (3, 3))
    g = r.with_shape((10, 20))
    assert g.shape == (10, 20) and g.tuples() == r.tuples() and g.to_dense().sum() == 2
    assert r.with_shape((3, 3)) is r
    with pytest.raises(ValueError):
        r.with_shape((1, 3))
    assert r.nbytes() >= r.cols.nbytes == 2 * 2 * 8
    with pytest.raises(ValueError):
        r.union(Relation.empty(1, (3,)))


# ---------------------------------------------------------------------------------------------------------
# transitive closure against networkx
# ---------------------------------------------------------------------------------------------------------


def closure_naive(e: Relation, n: int) -> Relation:
    sizes = {"x": n, "y": n, "z": n}
    r = e
    while True:
        new = r.union(join_project([(r, ("x", "y")), (e, ("y", "z"))], ("x", "z"), sizes))
        if len(new) == len(r):
            return r
        r = new


def closure_semi_naive(e: Relation, n: int) -> Relation:
    sizes = {"x": n, "y": n, "z": n}
    r = delta = e
    while len(delta):
        delta = join_project([(delta, ("x", "y")), (e, ("y", "z"))], ("x", "z"), sizes).difference(r)
        r = r.union(delta)
    return r


@pytest.mark.parametrize("seed,n,p", [(0, 25, 0.06), (1, 40, 0.03), (2, 60, 0.05), (3, 200, 0.004)])
def test_transitive_closure_matches_networkx(seed, n, p):
    g = nx.gnp_random_graph(n, p, seed=seed, directed=True)
    e = Relation.from_tuples(list(g.edges()), 2, (n, n))
    expected = set(nx.transitive_closure(g, reflexive=False).edges())
    for mode in MODES:
        with sparse_mode(mode):
            naive = closure_naive(e, n)
            semi = closure_semi_naive(e, n)
        assert set(naive.tuples()) == expected
        assert set(semi.tuples()) == expected
        assert_canonical(semi)


@pytest.mark.parametrize("mode", MODES)
def test_chain_closure_semi_naive(mode):
    n = 300
    e = Relation.from_tuples(np.stack([np.arange(n - 1), np.arange(1, n)], axis=1), 2, (n, n))
    with sparse_mode(mode):
        r = closure_semi_naive(e, n)
    assert len(r) == n * (n - 1) // 2
    np.testing.assert_array_equal(r.to_dense(), np.triu(np.ones((n, n)), k=1))


# ---------------------------------------------------------------------------------------------------------
# join orders planned once per fixpoint
# ---------------------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), max_size=8), min_size=3, max_size=3))
def test_recorded_join_order_replays_to_the_same_answer(rels):
    ops = [(set(r), vs) for r, vs in zip(rels, [("a", "b"), ("b", "c"), ("c", "d")])]
    operands = [(Relation(sorted(t), (5, 5)), vs) for t, vs in ops]
    plan: list = []
    first = join_project(operands, ("a", "d"), {}, record=plan)
    want = brute_force(ops, ("a", "d"))
    assert set(first.tuples()) == want
    if want:  # a join that ran to its end recorded its steps
        assert len(plan) == 2
    if plan:
        again = join_project(operands, ("a", "d"), {}, order=list(plan))
        assert set(again.tuples()) == want


def test_semi_naive_plans_each_rule_variant_once(monkeypatch):
    """A three-atom recursive rule outside the chain fast path (a comparison): the greedy planner runs in
    first delta round only, and the fixpoint equals a brute-force one."""
    import tensorlogic as tl

    calls = []
    greedy = joins_mod._greedy_pair
    monkeypatch.setattr(joins_mod, "_greedy_pair", lambda q, t: calls.append(1) or greedy(q, t))
    n = 12
    edges = [(i, i + 1) for i in range(n - 1)]
    src = ("R(x,y) <- Edge(x,y).\nR(x,z) <- R(x,y), Edge(y,w), Edge(w,z), x != z.\n"
           f"domain N: {n}\ntensor Edge(N, N)\n")
    p = tl.Program(src)
    p.analyze(Edge=edges)
    got = set(map(tuple, p.query("R(x, y)")))
    want = set(edges)
    while True:
        new = {(x, z) for (x, y) in want for (y2, w) in edges if y2 == y for (w2, z) in edges if w2 == w
               if x != z} - want
        if not new:
            break
        want |= new
    assert got == want
    [report] = [s for s in p.report.strata if "R" in s.tensors]
    assert report.rounds > 3
    assert len(calls) == 1  # the variant's first delta round (round 1 joins an empty R); not once per round


@given(st.lists(st.integers(-5, 2**45), max_size=300))
@settings(max_examples=40, deadline=None)
def test_sorted_unique_with_the_compiled_radix_sort_equals_numpy_unique(values):
    """With the kernels loaded, large sorts go through the compiled radix sort (negative keys or a range past
    44 bits fall back to numpy's sort): the result is numpy's unique either way."""
    from tensorlogic.runtime import chain_kernels

    assert chain_kernels._load() is not None  # numba is a dependency
    a = np.array(values, dtype=np.int64)
    old = keys_mod._RADIX_MIN
    keys_mod._RADIX_MIN = 1
    try:
        got = keys_mod._sorted_unique(a)
    finally:
        keys_mod._RADIX_MIN = old
    np.testing.assert_array_equal(got, np.unique(a))
