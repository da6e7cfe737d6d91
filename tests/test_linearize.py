"""The chain linearization of full evaluation (`runtime/linearize.py`): a one-relation stratum with the
transitivity rule `Reach(x,z) <- Reach(x,y), Reach(y,z)` is evaluated as its left-linear (or right-linear)
equivalent on the chain fast path.

References, each independent of the engine: networkx reachability on random graphs with cycles and self-loops,
closed forms on chains (N(N-1)/2) and cycles (N^2), a naive fixpoint written here (nested loops over Python
sets) for programs with given facts, several exit rules, comparisons and mixed rules; and the general
semi-naive loop (`seminaive.LINEARIZE = False`), which evaluates the transitivity rule as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorlogic as tl
from tensorlogic.runtime import seminaive

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINEARIZED = "semi-naive (linearized: transitivity rule as left-linear)"

EXIT = "Reach(x,y) <- Edge(x,y).\n"
TRANS = "Reach(x,z) <- Reach(x,y), Reach(y,z).\n"
LEFT = "Reach(x,z) <- Reach(x,y), Edge(y,z).\n"
RIGHT = "Reach(x,z) <- Edge(x,y), Reach(y,z).\n"
PROGRAMS = {"nonlinear": EXIT + TRANS, "mixed-left": EXIT + LEFT + TRANS, "mixed-right": EXIT + RIGHT + TRANS,
            "trans-first": TRANS + EXIT, "both-sides": EXIT + LEFT + TRANS + RIGHT}
KINDS = {"mixed-right": LINEARIZED.replace("left", "right"),
         "both-sides": f"semi-naive ({seminaive.AUTOMATON})"}
Q_FIRST = "semi-naive (linearized: right-linear rules first, then transitivity rule as left-linear)"


# ---------------------------------------------------------------------------------------------- references


def closure_pairs(edges) -> set[tuple[int, int]]:
    """Pairs joined by a path of one or more edges (networkx; (x, x) when x lies on a cycle or has a loop)."""
    g = nx.DiGraph()
    g.add_edges_from(map(tuple, edges))
    desc = {x: nx.descendants(g, x) for x in g.nodes}
    out = set()
    for x in g.nodes:
        out |= {(x, y) for y in desc[x]}
        if any(s == x or x in desc[s] for s in g.successors(x)):
            out.add((x, x))
    return out


def naive(rules: list[tuple], rels: dict[str, set]) -> set[tuple[int, int]]:
    """Naive least fixpoint of rules (head_vars, [(relation, vars), ...], [(op, a, b), ...]) defining
    'Reach', by nested loops over Python sets (every rule on the whole relation until nothing changes)."""
    ops = {"!=": lambda a, b: a != b, "<": lambda a, b: a < b}
    reach = set(rels.get("Reach", set()))
    while True:
        rels = {**rels, "Reach": reach}
        new = set()
        for head, body, cmps in rules:
            envs = [{}]
            for rel, vs in body:
                envs = [{**env, **dict(zip(vs, t))} for env in envs for t in rels[rel]
                        if all(env.get(v, x) == x for v, x in zip(vs, t))]
            new |= {tuple(env[v] for v in head) for env in envs
                    if all(ops[op](env[a], env[b]) for op, a, b in cmps)}
        if new <= reach:
            return reach
        reach |= new


def run(src: str, edges, **more) -> tl.Program:
    prog = tl.Program(src)
    prog.analyze(Edge=[tuple(map(int, r)) for r in edges], **more)
    prog.executor.ensure({"Reach"})
    return prog


def facts(prog: tl.Program) -> set[tuple[int, int]]:
    return set(prog.executor.relation("Reach").tuples())


def report(prog: tl.Program):
    [s] = [s for s in prog.report.strata if "Reach" in s.tensors]
    return s


def general(src: str, edges, monkeypatch, **more) -> tl.Program:
    """The same program through the general semi-naive loop (no linearization)."""
    with monkeypatch.context() as m:
        m.setattr(seminaive, "LINEARIZE", False)
        prog = run(src, edges, **more)
    assert report(prog).kind == "semi-naive"
    return prog


@st.composite
def graphs(draw, max_nodes: int = 14):
    n = draw(st.integers(1, max_nodes))
    pairs = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))  # self-loops and cycles included
    return sorted(set(draw(st.lists(pairs, min_size=1, max_size=3 * n))))


@pytest.fixture(params=["numpy", "kernels"])
def rounds_kind(request, monkeypatch):
    """Both the numpy rounds (TL_NUMBA=0) and the compiled kernels (TL_NUMBA=1) of the fast path."""
    monkeypatch.setenv("TL_NUMBA", "0" if request.param == "numpy" else "1")
    return request.param


# ---------------------------------------------------------------------------------------------- random graphs


@SETTINGS
@given(graphs(), st.sampled_from(sorted(PROGRAMS)))
def test_linearized_closure_matches_networkx_and_the_general_loop(edges, name):
    want = closure_pairs(edges)
    prog = run(PROGRAMS[name], edges)
    assert facts(prog) == want
    assert report(prog).kind == KINDS.get(name, LINEARIZED)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(seminaive, "LINEARIZE", False)
        assert facts(run(PROGRAMS[name], edges)) == want


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_graph_with_both_round_kinds(seed, rounds_kind, monkeypatch):
    rng = np.random.default_rng(seed)
    n = 300
    edges = sorted(set(map(tuple, rng.integers(0, n, size=(900, 2)).tolist())))
    want = closure_pairs(edges)
    for name, src in PROGRAMS.items():
        prog = run(src, edges)
        assert facts(prog) == want, name
        assert "linearized" in report(prog).kind
    assert facts(general(EXIT + TRANS, edges, monkeypatch)) == want


# ---------------------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("n", [2, 3, 17, 300])
def test_chain_closure_has_n_n_minus_1_over_2_pairs_in_n_minus_1_rounds(n, rounds_kind, monkeypatch):
    edges = [(i, i + 1) for i in range(n - 1)]
    prog = run(EXIT + TRANS, edges)
    assert len(prog.executor.relation("Reach")) == n * (n - 1) // 2
    # rounds of the linear program actually run: one per path length (the general loop doubles: ~log2 n)
    assert (report(prog).kind, report(prog).rounds) == (LINEARIZED, n - 1)
    slow = general(EXIT + TRANS, edges, monkeypatch)
    assert facts(slow) == facts(prog)
    assert report(slow).rounds == (n - 2).bit_length() + 1


@pytest.mark.parametrize("n", [1, 2, 5, 64])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_cycle_closure_has_n_squared_pairs(n, name, rounds_kind):
    edges = [(i, (i + 1) % n) for i in range(n)]
    assert len(run(PROGRAMS[name], edges).executor.relation("Reach")) == n * n


# ---------------------------------------------------------------------------------------------- rule shapes


def test_given_facts_and_several_exit_rules_against_a_naive_fixpoint(rounds_kind, monkeypatch):
    """B' is the given facts plus every exit rule's results (one of them a two-atom path, one with a
    comparison): the transitivity rule composes all of them."""
    rng = np.random.default_rng(7)
    n = 40
    e = set(map(tuple, rng.integers(0, n, size=(50, 2)).tolist()))
    f = set(map(tuple, rng.integers(0, n, size=(30, 2)).tolist()))
    given_facts = {(3, 17), (17, 3), (39, 0)}
    src = (f"domain N: {n}\ntensor Edge(N, N)\ntensor F(N, N)\n"
           + "".join(f"Reach({a},{b})\n" for a, b in sorted(given_facts))
           + "Reach(x,y) <- Edge(x,y), x != y.\nReach(x,z) <- F(x,y), Edge(y,z).\n" + TRANS)
    rules = [(("x", "y"), [("Edge", ("x", "y"))], [("!=", "x", "y")]),
             (("x", "z"), [("F", ("x", "y")), ("Edge", ("y", "z"))], []),
             (("x", "z"), [("Reach", ("x", "y")), ("Reach", ("y", "z"))], [])]
    want = naive(rules, {"Edge": e, "F": f, "Reach": given_facts})
    prog = run(src, sorted(e), F=sorted(f))
    assert facts(prog) == want
    assert report(prog).kind == LINEARIZED
    assert facts(general(src, sorted(e), monkeypatch, F=sorted(f))) == want


def test_a_longer_left_rule_mixed_with_transitivity_against_a_naive_fixpoint(rounds_kind):
    rng = np.random.default_rng(3)
    n = 30
    e = set(map(tuple, rng.integers(0, n, size=(35, 2)).tolist()))
    f = set(map(tuple, rng.integers(0, n, size=(25, 2)).tolist()))
    src = (f"domain N: {n}\ntensor Edge(N, N)\ntensor F(N, N)\n" + "Reach(x,y) <- Edge(x,y).\n"
           + "Reach(x,w) <- Reach(x,y), F(y,z), F(z,w).\n" + TRANS)
    rules = [(("x", "y"), [("Edge", ("x", "y"))], []),
             (("x", "w"), [("Reach", ("x", "y")), ("F", ("y", "z")), ("F", ("z", "w"))], []),
             (("x", "z"), [("Reach", ("x", "y")), ("Reach", ("y", "z"))], [])]
    prog = run(src, sorted(e), F=sorted(f))
    assert facts(prog) == naive(rules, {"Edge": e, "F": f})
    assert report(prog).kind == LINEARIZED


@st.composite
def linear_rules(draw):
    """A left-linear rule `Reach(v0, vk) <- Reach(v0, v1), A2, ..., Ak` (or its right-linear mirror) whose other
    atoms form a path through Edge and F, each in a random orientation: (source text, naive rule)."""
    length = draw(st.integers(1, 3))
    vs = [f"v{i}" for i in range(length + 2)]
    right = draw(st.booleans())
    steps = [(draw(st.sampled_from(["Edge", "F"])), draw(st.booleans())) for _ in range(length)]
    if right:  # L path from v0 to v(k), then Reach(vk, vk+1)
        atoms = [(r, (vs[i], vs[i + 1]) if fwd else (vs[i + 1], vs[i])) for i, (r, fwd) in enumerate(steps)]
        atoms.append(("Reach", (vs[length], vs[length + 1])))
    else:  # Reach(v0, v1), then an R path from v1 to v(k+1)
        atoms = [("Reach", (vs[0], vs[1]))]
        atoms += [(r, (vs[i + 1], vs[i + 2]) if fwd else (vs[i + 2], vs[i + 1])) for i, (r, fwd) in enumerate(steps)]
    order = draw(st.permutations(atoms))
    text = f"Reach({vs[0]},{vs[-1]}) <- " + ", ".join(f"{r}({a},{b})" for r, (a, b) in order) + ".\n"
    return text, ((vs[0], vs[-1]), list(atoms), []), right


@SETTINGS
@given(st.lists(linear_rules(), min_size=1, max_size=2), graphs(8), graphs(8), st.booleans())
def test_random_linear_rules_with_transitivity_match_a_naive_fixpoint(linear, edges, f_edges, trans_first):
    n = max(max(max(e) for e in edges), max(max(e) for e in f_edges)) + 1
    rules = [(("x", "y"), [("Edge", ("x", "y"))], []), *(r[1] for r in linear),
             (("x", "z"), [("Reach", ("x", "y")), ("Reach", ("y", "z"))], [])]
    want = naive(rules, {"Edge": set(edges), "F": set(f_edges)})
    text = "".join(r[0] for r in linear)
    body = TRANS + EXIT + text if trans_first else EXIT + text + TRANS
    p = tl.Program(f"domain N: {n}\ntensor Edge(N, N)\ntensor F(N, N)\n" + body)
    p.analyze(Edge=edges, F=f_edges)
    assert set(map(tuple, p.query("Reach(x, y)"))) == want, body
    sides = {r[2] for r in linear}
    kind = KINDS["both-sides"] if len(sides) == 2 else KINDS["mixed-right"] if sides == {True} else LINEARIZED
    assert report(p).kind == kind


@pytest.mark.parametrize("automaton", [True, False], ids=["automaton", "q-first"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_both_sides_with_longer_paths_against_a_naive_fixpoint(seed, automaton, monkeypatch):
    """Left- and right-linear rules through two-atom paths next to the transitivity rule: the product
    automaton, and (when it does not apply: a key space too large) Q = L* B' first."""
    if not automaton:
        monkeypatch.setattr(seminaive, "automaton_closure", lambda *a: None)
    rng = np.random.default_rng(seed)
    n = 20
    e = set(map(tuple, rng.integers(0, n, size=(18, 2)).tolist()))
    f = set(map(tuple, rng.integers(0, n, size=(22, 2)).tolist()))
    src = (f"domain N: {n}\ntensor Edge(N, N)\ntensor F(N, N)\n" + "Reach(x,y) <- Edge(x,y), x != y.\n"
           + "Reach(x,w) <- Reach(x,y), F(y,z), Edge(w,z).\n" + "Reach(x,z) <- F(y,x), F(y,w), Reach(w,z).\n"
           + TRANS)
    rules = [(("x", "y"), [("Edge", ("x", "y"))], [("!=", "x", "y")]),
             (("x", "w"), [("Reach", ("x", "y")), ("F", ("y", "z")), ("Edge", ("w", "z"))], []),
             (("x", "z"), [("F", ("y", "x")), ("F", ("y", "w")), ("Reach", ("w", "z"))], []),
             (("x", "z"), [("Reach", ("x", "y")), ("Reach", ("y", "z"))], [])]
    prog = run(src, sorted(e), F=sorted(f))
    assert facts(prog) == naive(rules, {"Edge": e, "F": f})
    assert report(prog).kind == (KINDS["both-sides"] if automaton else Q_FIRST)


@pytest.mark.parametrize("extra, rule, linearized", [
    (LEFT + RIGHT, None, True),  # both sides and transitivity: Q = L* B' first
    ("Reach(x,z) <- Reach(x,y), Edge(y,z), y != z.\n", ("!=", "y", "z"), False),  # not a chain: general loop
    ("", None, True),
], ids=["left-and-right", "comparison", "plain"])
def test_programs_linearized_or_not_match_a_naive_fixpoint(extra, rule, linearized):
    rng = np.random.default_rng(11)
    n = 25
    e = set(map(tuple, rng.integers(0, n, size=(40, 2)).tolist()))
    rules = [(("x", "y"), [("Edge", ("x", "y"))], []),
             (("x", "z"), [("Reach", ("x", "y")), ("Reach", ("y", "z"))], [])]
    if extra == LEFT + RIGHT:
        rules += [(("x", "z"), [("Reach", ("x", "y")), ("Edge", ("y", "z"))], []),
                  (("x", "z"), [("Edge", ("x", "y")), ("Reach", ("y", "z"))], [])]
    elif rule:
        rules.append((("x", "z"), [("Reach", ("x", "y")), ("Edge", ("y", "z"))], [rule]))
    prog = run(EXIT + TRANS + extra, sorted(e))
    assert facts(prog) == naive(rules, {"Edge": e})
    assert ("linearized" in report(prog).kind) == linearized


def test_empty_base_derives_nothing():
    prog = run("domain N: 5\ntensor Edge(N, N)\nReach(x,y) <- Edge(x,y), x < 0.\n" + TRANS, [(0, 1)])
    assert facts(prog) == set() and report(prog).rounds == 0


def test_sparse_large_ids_run_over_ranks():
    """Ids up to 10**6 (a key space too large for a bitmap): B' is ranked with the other relations."""
    rng = np.random.default_rng(5)
    names = np.sort(rng.choice(10**6, size=12, replace=False))
    small = rng.integers(0, 12, size=(20, 2))
    edges = sorted({(int(names[a]), int(names[b])) for a, b in small} | {(999_999, int(names[0]))})
    for name, src in PROGRAMS.items():
        prog = run(src, edges)
        assert facts(prog) == closure_pairs(edges), name
        assert "linearized" in report(prog).kind


def test_query_with_a_constant_still_uses_the_demand_linearization():
    edges = [(i, i + 1) for i in range(30)] + [(30, 0)]
    prog = tl.Program(EXIT + TRANS)
    prog.analyze(Edge=edges)
    got = sorted(int(r[0]) if np.ndim(r) else int(r) for r in prog.query("Reach(3, y)"))
    assert got == list(range(31))


def test_tl_run_stats_says_the_stratum_was_linearized(tmp_path):
    (tmp_path / "e.tsv").write_text("".join(f"{i}\t{i + 1}\n" for i in range(9)))
    (tmp_path / "p.tl").write_text('Edge = "e.tsv"\n' + EXIT + TRANS + "Facts = Reach(x,y)\nFacts?\n")
    r = subprocess.run([sys.executable, "-c", "import sys; from tensorlogic.cli import main; sys.exit(main())",
                        "run", "--stats", str(tmp_path / "p.tl")], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Facts = 45" in r.stdout
    assert "Reach: semi-naive (linearized: transitivity rule as left-linear), 9 rounds" in r.stderr
