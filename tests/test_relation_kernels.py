"""The compiled (numba) kernels of the chain fast path and their numpy fallback: both paths (``TL_NUMBA=1``
forces the kernels even on tiny inputs, ``TL_NUMBA=0`` disables them) must give the facts and the rounds of a
brute-force naive fixpoint written here, for chain rules in every orientation, several recursive rules in
one stratum and multi-step chains; the kernels' helpers (radix sort, bitmap scan, bit setting and clearing)
against numpy; and the decision to load numba only for strata large enough to pay for it."""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorlogic as tl
from tensorlogic.runtime import chain_kernels

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODES = ["1", "0"]  # the compiled kernels and the numpy rounds (numba is a dependency: both always run)


def test_the_kernels_load():
    assert chain_kernels._load() is not None, "numba (a dependency of the package) could not be imported"


@contextmanager
def numba_mode(mode: str):
    old = os.environ.get("TL_NUMBA")
    os.environ["TL_NUMBA"] = mode
    try:
        yield
    finally:
        if old is None:
            del os.environ["TL_NUMBA"]
        else:
            os.environ["TL_NUMBA"] = old


def naive(rules: list[tuple[list[tuple[str, str, str]], str, str]], rels: dict[str, set]) -> tuple[set, int]:
    """Naive fixpoint of R: every rule (body atoms (relation, var, var), head vars) on all facts until nothing
    is new; (facts, rounds that derived something)."""
    facts: set = set()
    rounds = 0
    while True:
        env_rels = {**rels, "R": facts}
        new = set()
        for body, hx, hy in rules:
            envs = [{}]
            for r, a, b in body:
                envs = [{**env, a: x, b: y} for env in envs for (x, y) in env_rels[r]
                        if env.get(a, x) == x and env.get(b, y) == y and (a != b or x == y)]
            new |= {(env[hx], env[hy]) for env in envs}
        new -= facts
        if not new:
            return facts, rounds
        facts |= new
        rounds += 1


def evaluate(src: str, n: int, edges, f_edges, mode: str) -> tuple[set, int]:
    decl = f"domain N: {n}\ntensor Edge(N, N)\n" + ("tensor F(N, N)\n" if f_edges else "")
    p = tl.Program(src + decl)
    p.analyze(Edge=sorted(edges), **({"F": sorted(f_edges)} if f_edges else {}))
    with numba_mode(mode):
        got = set(map(tuple, p.query("R(x, y)")))
    [report] = [s for s in p.report.strata if "R" in s.tensors]
    return got, report.rounds


def graphs(n: int, max_size: int = 30):
    return st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), min_size=1, max_size=max_size,
                    unique=True)


@st.composite
def chain_rule(draw, vs: list[str]):
    """A body that is a path v0 - v1 - ... - vk of binary atoms in random orientations, one of them R."""
    length = len(vs) - 1
    rec = draw(st.integers(0, length - 1))
    body = []
    for i in range(length):
        rel = "R" if i == rec else draw(st.sampled_from(["Edge", "F"]))
        a, b = (vs[i], vs[i + 1]) if draw(st.booleans()) else (vs[i + 1], vs[i])
        body.append((rel, a, b))
    return draw(st.permutations(body))


@st.composite
def chain_programs(draw):
    """A base rule and one or two linear recursive chain rules of 1 to 4 atoms."""
    rules = [([("Edge", "x", "y")], "x", "y")]
    for _ in range(draw(st.integers(1, 2))):
        k = draw(st.integers(1, 4))
        vs = ["v0", "v1", "v2", "v3", "v4"][: k + 1]
        rules.append((draw(chain_rule(vs)), vs[0], vs[-1]))
    text = "".join(f"R({hx},{hy}) <- " + ", ".join(f"{r}({a},{b})" for r, a, b in body) + ".\n"
                   for body, hx, hy in rules)
    return text, rules


@SETTINGS
@given(chain_programs(), graphs(9), graphs(9))
def test_chain_fixpoints_on_both_paths_match_a_naive_fixpoint(prog, edges, f_edges):
    src, rules = prog
    n = 9
    want, want_rounds = naive(rules, {"Edge": set(edges), "F": set(f_edges)})
    for mode in MODES:
        got, rounds = evaluate(src, n, edges, f_edges, mode)
        assert got == want, (mode, src)
        assert rounds == want_rounds, (mode, src)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("n", [2, 40, 300])
def test_chain_closure_closed_form_on_both_paths(mode, n):
    edges = [(i, i + 1) for i in range(n - 1)]
    got, rounds = evaluate("R(x,y) <- Edge(x,y).\nR(x,z) <- R(x,y), Edge(y,z).\n", n, edges, [], mode)
    assert len(got) == n * (n - 1) // 2 and rounds == n - 1
    assert got == {(i, j) for i in range(n) for j in range(i + 1, n)}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rule", ["R(x,z) <- R(x,y), Edge(y,z).", "R(x,z) <- Edge(x,y), R(y,z).",
                                  "R(x,z) <- Edge(x,y), R(y,z).\nR(x,z) <- Edge(x,y), Edge(y,w), R(w,z)."])
def test_left_and_right_linear_closures_on_a_random_graph_match_networkx(mode, rule):
    """Left-linear rules run row by row, right-linear ones column by column (on transposed keys)."""
    import networkx as nx

    rng = np.random.default_rng(7)
    n = 60
    edges = sorted({(int(a), int(b)) for a, b in rng.integers(0, n, size=(90, 2))})
    g = nx.DiGraph(edges)
    want = {(x, y) for x in g for y in nx.descendants(g, x)}
    want |= {(x, x) for x in g if any(x in nx.descendants(g, s) or s == x for s in g.successors(x))}
    got, rounds = evaluate("R(x,y) <- Edge(x,y).\n" + rule + "\n", n, edges, [], mode)
    assert got == want
    assert rounds == naive([([("Edge", "x", "y")], "x", "y"), ([("R", "x", "y"), ("Edge", "y", "z")], "x", "z")],
                           {"Edge": set(edges)})[1] or "Edge(y,w)" in rule


@pytest.mark.parametrize("mode", MODES)
def test_same_generation_on_a_binary_tree_on_both_paths(mode):
    depth = 7
    child = np.arange(1, 2 ** (depth + 1) - 1)
    edges = list(zip(((child - 1) // 2).tolist(), child.tolist()))
    n = 2 ** (depth + 1) - 1
    src = "R(x,y) <- Edge(p,x), Edge(p,y), x != y.\nR(x,y) <- Edge(a,x), R(a,b), Edge(b,y).\n"
    got, rounds = evaluate(src, n, edges, [], mode)
    level = np.floor(np.log2(np.arange(n) + 1)).astype(int)
    want = {(x, y) for x in range(n) for y in range(n) if x != y and level[x] == level[y] and level[x] >= 1}
    assert got == want and rounds == depth


# ---------------------------------------------------------------------------------------------- kernel helpers


@given(st.lists(st.integers(0, 2**31 - 1), max_size=3000))
@settings(max_examples=30, deadline=None)
def test_radix_sort_equals_numpy_sort(values):
    from tensorlogic.backends import relation_kernels as rk

    a = np.array(values, dtype=np.int64)
    np.testing.assert_array_equal(rk.radix_sort(a, 31), np.sort(a))


@given(st.sets(st.integers(0, 5000), max_size=400))
@settings(max_examples=30, deadline=None)
def test_bitmap_set_scan_and_clear_equal_numpy(keys):
    from tensorlogic.backends import relation_kernels as rk

    k = np.array(sorted(keys), dtype=np.int64)
    words = np.zeros((5001 + 63) // 64, dtype=np.uint64)
    rk.set_bits(words, k)
    bits = np.unpackbits(words.view(np.uint8), bitorder="little")
    np.testing.assert_array_equal(np.flatnonzero(bits), k)
    np.testing.assert_array_equal(rk.bitmap_keys(words, len(k)), k)
    rk.clear_words(words, k)
    assert not words.any()


# ---------------------------------------------------------------------------------------------- when to compile


def test_kernels_are_not_loaded_for_a_small_stratum(monkeypatch):
    """Automatic mode: a stratum below the work threshold never imports numba (`tl run` on a tiny program
    stays fast); a large one does; TL_NUMBA=0 or the module flag turns them off."""
    loads = []
    monkeypatch.setattr(chain_kernels, "_LOADED", None)
    monkeypatch.setattr(chain_kernels, "_load", lambda: loads.append(1) or "kernels")
    monkeypatch.delenv("TL_NUMBA", raising=False)
    assert chain_kernels.kernels(100, 10, 50) is None and not loads
    assert chain_kernels.kernels(100, 10, chain_kernels._MIN_WORK) == "kernels" and loads
    monkeypatch.setenv("TL_NUMBA", "1")
    assert chain_kernels.kernels(100, 10, 50) == "kernels"
    # a huge, sparse key space keeps the numpy rounds (sorted keys) until the facts are dense enough
    assert chain_kernels.kernels(2**31, 10, 10**9) is None
    assert chain_kernels.kernels(2**31, 2**31 // chain_kernels._SPARSE_BITS, 10**9) == "kernels"
    monkeypatch.setenv("TL_NUMBA", "0")
    assert chain_kernels.kernels(100, 10, 10**9) is None
    monkeypatch.setenv("TL_NUMBA", "")
    monkeypatch.setattr(chain_kernels, "ENABLED", False)
    assert chain_kernels.kernels(100, 10, 10**9) is None


def test_tiny_program_in_a_fresh_process_does_not_import_numba(tmp_path):
    import subprocess
    import sys

    code = ("import sys, tensorlogic as tl\n"
            "p = tl.Program('R(x,y) <- Edge(x,y).\\nR(x,z) <- R(x,y), Edge(y,z).\\n')\n"
            "p.analyze(Edge=[(0, 1), (1, 2), (2, 3)])\n"
            "assert len(p.query('R(x, y)')) == 6\n"
            "print('numba' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if k != "TL_NUMBA"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("mode", MODES)
def test_closure_over_sparse_large_ids_on_both_paths(mode):
    """Ids up to 10**6 (a key space past 2**31): the stratum runs over ranks of the ids in use and maps the
    result back (compiled, when the kernels are loaded)."""
    import networkx as nx

    rng = np.random.default_rng(3)
    names = np.sort(rng.choice(10**6, size=40, replace=False))
    small = rng.integers(0, 40, size=(70, 2))
    edges = sorted({(int(names[a]), int(names[b])) for a, b in small} | {(999_999, int(names[0]))})
    g = nx.DiGraph(edges)
    want = {(x, y) for x in g for y in nx.descendants(g, x)}
    want |= {(x, x) for x in g if any(x in nx.descendants(g, s) or s == x for s in g.successors(x))}
    got, _ = evaluate("R(x,y) <- Edge(x,y).\nR(x,z) <- R(x,y), Edge(y,z).\n", 10**6, edges, [], mode)
    assert got == want


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rule", ["R(x,z) <- R(x,y), R(y,z).", "R(x,z) <- R(x,y), Edge(y,z), x != z."])
def test_general_loop_with_compiled_membership_matches_networkx(mode, rule):
    """Rules outside the chain fast path (non-linear, a comparison): the general semi-naive loop, whose known
    facts are a compiled membership bitmap when the kernels run (TL_NUMBA=1), must give the closure."""
    import networkx as nx

    rng = np.random.default_rng(11)
    n = 50
    edges = sorted({(int(a), int(b)) for a, b in rng.integers(0, n, size=(80, 2))})
    g = nx.DiGraph(edges)
    want = {(x, y) for x in g for y in nx.descendants(g, x)}
    want |= {(x, x) for x in g if any(x in nx.descendants(g, s) or s == x for s in g.successors(x))}
    if "!=" in rule:
        want = {(x, y) for (x, y) in want if x != y} | set(edges)
    got, _ = evaluate("R(x,y) <- Edge(x,y).\n" + rule + "\n", n, edges, [], mode)
    assert got == want
