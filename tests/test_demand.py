"""Demand-driven queries with constants (runtime/demand*.py): answers against networkx, brute-force searches
written here and the naive evaluator of test_datalog_random; the derived-tuple counter shows the demand path
was taken (far less work than the full closure) for left-, right- and non-linear transitive closure, with
and without the chain linearization, mutual recursion, same generation and relations computed from a
recursive one; the p2p-Gnutella09 single-source cases behind @pytest.mark.slow."""

from __future__ import annotations

import random
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order
from test_datalog_random import Case, naive_eval, parse_rule

import tensorlogic as tl
import tensorlogic.runtime.demand as demand
from tensorlogic.runtime.demand_magic import rewrite
from tensorlogic.runtime.demand_rules import Rule

DATA = Path(__file__).resolve().parent / "data" / "datalog"

TC = {
    "left": "Reach(x,y) <- Edge(x,y).\nReach(x,z) <- Reach(x,y), Edge(y,z).\n",
    "right": "Reach(x,y) <- Edge(x,y).\nReach(x,z) <- Edge(x,y), Reach(y,z).\n",
    "double": "Reach(x,y) <- Edge(x,y).\nReach(x,z) <- Reach(x,y), Reach(y,z).\n",
    "double-swapped": "Reach(x,y) <- Edge(x,y).\nReach(x,z) <- Reach(y,z), Reach(x,y).\n",
    "mixed": "Reach(x,y) <- Edge(x,y).\nReach(x,z) <- Reach(x,y), Reach(y,z).\nReach(x,z) <- Edge(x,y), Reach(y,z).\n",
}
SG = "SG(x,y) <- Edge(p,x), Edge(p,y), x != y.\nSG(x,y) <- Edge(a,x), SG(a,b), Edge(b,y).\n"
PARITY = ("Odd(x,y) <- Edge(x,y).\nOdd(x,z) <- Even(x,y), Edge(y,z).\nEven(x,z) <- Odd(x,y), Edge(y,z).\n")


def work(prog: tl.Program, kind: str = "") -> int:
    """Tuples derived by semi-naive strata (demand-driven or not) so far."""
    return sum(s.derived for s in prog.report.strata if s.kind.startswith("semi-naive" + kind))


def ask(src: str, edges, q: str) -> tuple[object, int, list[str]]:
    """A query on a program that has not run: (answer, derived tuples, stratum kinds)."""
    prog = tl.Program(src)
    prog.analyze(Edge=[tuple(map(int, e)) for e in edges])
    got = prog.query(q)
    return got, work(prog), [s.kind for s in prog.report.strata]


def full_work(src: str, edges, rel: str = "Reach") -> int:
    prog = tl.Program(src)
    prog.analyze(Edge=[tuple(map(int, e)) for e in edges])
    prog.executor.ensure({rel})
    return work(prog)


@pytest.fixture(params=[True, False], ids=["linearized", "magic-only"])
def linearize(request, monkeypatch):
    monkeypatch.setattr(demand, "LINEARIZE", request.param)
    return request.param


# ---------------------------------------------------------------------------------------------- chains


@pytest.mark.parametrize("form", sorted(TC))
def test_chain_queries_are_exact_and_demand_driven(form, linearize):
    n = 100
    edges = [(k, k + 1) for k in range(n - 1)]
    src = TC[form]
    whole = full_work(src, edges)
    assert whole >= n * (n - 1) // 2  # the closure has N(N-1)/2 facts, each derived at least once
    got, w, kinds = ask(src, edges, "Reach(90, y)")
    assert got == [[y] for y in range(91, n)]
    assert any(k.startswith("semi-naive (demand-driven") for k in kinds)
    assert 10 * w <= whole, (w, whole)
    got, w, _ = ask(src, edges, "Reach(x, 7)")
    assert got == [[x] for x in range(7)]
    assert 10 * w <= whole, (w, whole)
    assert ask(src, edges, "Reach(3, 9)")[0] is True
    assert ask(src, edges, "Reach(9, 3)")[0] is False
    assert ask(src, edges, f"Reach({n + 10}, y)")[0] == []


def test_single_source_on_non_linear_tc_is_a_search_when_linearized():
    """Linearized, a single-source question on `Reach(x,y), Reach(y,z)` derives about as many tuples as
    there are answers (here: each node after the source once, plus the helper's facts)."""
    n = 300
    edges = [(k, k + 1) for k in range(n - 1)]
    got, w, _ = ask(TC["double"], edges, "Reach(0, y)")
    assert len(got) == n - 1
    assert w <= 3 * n


# ---------------------------------------------------------------------------------------------- random graphs


def paths_from(g: nx.DiGraph, c: int) -> set[int]:
    """The ends of paths of one or more edges from c (c itself when it lies on a cycle)."""
    down = set(nx.descendants(g, c))
    return down | ({c} if any(p == c or p in down for p in g.predecessors(c)) else set())


def random_graph(n: int, m: int, seed: int) -> list[tuple[int, int]]:
    rnd = random.Random(seed)
    return sorted({(rnd.randrange(n), rnd.randrange(n)) for _ in range(m)})


@pytest.mark.parametrize("form", ["left", "right", "double", "mixed"])
def test_random_graph_queries_match_networkx(form, linearize):
    n = 400
    edges = random_graph(n, 340, 7)  # sparse: most nodes reach few others
    g = nx.DiGraph(edges)
    g.add_nodes_from(range(n))
    src = TC[form]
    whole = full_work(src, edges)
    total = 0
    rnd = random.Random(1)
    for c in rnd.sample(range(n), 6):
        got, w, _ = ask(src, edges, f"Reach({c}, y)")
        reach = paths_from(g, c)
        assert got == [[y] for y in sorted(reach)]
        got, w2, _ = ask(src, edges, f"Reach(x, {c})")
        back = set(nx.ancestors(g, c)) | ({c} if c in reach else set())  # c on a cycle reaches itself
        assert got == [[x] for x in sorted(back)]
        d = rnd.randrange(n)
        assert ask(src, edges, f"Reach({c}, {d})")[0] == (d in reach)
        total += w + w2
    assert 10 * total <= 6 * whole, (total, whole)  # per query, far less than the closure


def test_mutual_recursion_parity_paths_match_a_search():
    """Odd/Even: walks of odd and even length >= 1, a mutual recursion; against a search over (node,
    parity) states, and with far less work than both relations in full."""
    rnd = random.Random(3)
    n = 120
    edges = sorted({(k, k + 1) for k in range(n - 1)} | {(rnd.randrange(n), rnd.randrange(n)) for _ in range(8)})
    adj: dict[int, list[int]] = {}
    for a, b in edges:
        adj.setdefault(a, []).append(b)

    def walks(c: int) -> tuple[set[int], set[int]]:
        seen = {(b, 1) for b in adj.get(c, [])}
        todo = list(seen)
        while todo:
            v, p = todo.pop()
            for w in adj.get(v, []):
                if (w, 1 - p) not in seen:
                    seen.add((w, 1 - p))
                    todo.append((w, 1 - p))
        return {v for v, p in seen if p == 1}, {v for v, p in seen if p == 0}

    prog = tl.Program(PARITY)
    prog.analyze(Edge=edges)
    prog.executor.ensure({"Odd", "Even"})
    whole = work(prog)
    for c in (0, 60, 110):
        odd, even = walks(c)
        got, w, kinds = ask(PARITY, edges, f"Even({c}, y)")
        assert got == [[y] for y in sorted(even)]
        assert kinds[-1].startswith("semi-naive (demand-driven")
        got2, w2, _ = ask(PARITY, edges, f"Odd({c}, y)")
        assert got2 == [[y] for y in sorted(odd)]
        if c == 110:
            assert 10 * (w + w2) <= whole


def test_same_generation_with_a_constant_matches_the_naive_evaluator():
    rnd = random.Random(5)
    edges = {(k // 2, k) for k in range(1, 31)} | {(rnd.randrange(31), rnd.randrange(31)) for _ in range(5)}
    rules = [parse_rule("SG(x, y) <- Edge(p, x), Edge(p, y), x != y"),
             parse_rule("SG(x, y) <- Edge(a, x), SG(a, b), Edge(b, y)")]
    db = naive_eval({"Edge": edges}, rules)
    for q, pick in [("SG(20, y)", lambda t: t[0] == 20), ("SG(x, 9)", lambda t: t[1] == 9)]:
        got, _, kinds = ask(SG, sorted(edges), q)
        k = 1 if q.startswith("SG(20") else 0
        assert got == sorted([t[k]] for t in db["SG"] if pick(t))
        assert kinds[-1].startswith("semi-naive (demand-driven")
    assert ask(SG, sorted(edges), "SG(20, 21)")[0] == ((20, 21) in db["SG"])


def test_constant_in_a_non_recursive_relation_computed_from_a_recursive_one():
    """The constant is asked of relations defined from Reach (one reorders its positions): demand flows
    into Reach, which is never computed in full."""
    n = 100
    edges = [(k, k + 1) for k in range(n - 1)] + [(50, 20)]
    src = TC["double"] + "Back(x, y) <- Reach(y, x).\nNear(x, y) <- Reach(x, y), Even(y).\n"
    g = nx.DiGraph(edges)
    evens = [(k,) for k in range(0, n, 2)]
    for q, want in [("Back(x, 90)", sorted(nx.descendants(g, 90))),
                    ("Back(95, y)", sorted(nx.ancestors(g, 95))),
                    ("Near(80, y)", [y for y in sorted(nx.descendants(g, 80)) if y % 2 == 0])]:
        prog = tl.Program(src)
        prog.analyze(Edge=edges, Even=evens)
        assert prog.query(q) == [[v] for v in want]
        assert "Reach" not in prog.executor.computed
        assert [s.kind for s in prog.report.strata if s.tensors == ["Reach"]] == []


def test_constant_in_a_position_the_recursion_passes_through():
    """Paths of one colour, `Path(x, y, c)?` with the colour bound: the recursion keeps c, so only that
    colour's edges are searched; against networkx per colour, and with less work than every colour."""
    rnd = random.Random(11)
    colored = sorted({(rnd.randrange(60), rnd.randrange(60), rnd.randrange(6)) for _ in range(240)})
    src = "Path(x, y, c) <- Col(x, y, c).\nPath(x, z, c) <- Path(x, y, c), Col(y, z, c).\n"

    def prog() -> tl.Program:
        p = tl.Program(src)
        p.analyze(Col=colored)
        return p

    whole = prog()
    whole.executor.ensure({"Path"})
    for c in (0, 3):
        g = nx.DiGraph([(a, b) for a, b, k in colored if k == c])
        want = sorted([a, b] for a in g for b in paths_from(g, a))
        p = prog()
        assert p.query(f"Path(x, y, {c})") == want
        assert 3 * work(p) <= work(whole)
        a = colored[0][0]
        from_a = [[b] for b in sorted(paths_from(g, a))] if a in g else []
        assert prog().query(f"Path({a}, y, {c})") == from_a


def test_facts_of_the_relation_and_comparisons_in_rules():
    src = ("Reach(7, 0).\n" + TC["double"] + "Far(x, z) <- Reach(x, y), Reach(y, z), x < z.\n")
    edges = [(0, 1), (1, 2), (2, 3), (4, 5)]
    rules = [parse_rule("Reach(x, y) <- Edge(x, y)"), parse_rule("Reach(x, z) <- Reach(x, y), Reach(y, z)"),
             parse_rule("Far(x, z) <- Reach(x, y), Reach(y, z), x < z")]
    db = naive_eval({"Edge": set(edges), "Reach": {(7, 0)}}, rules)
    for q, k, c in [("Reach(7, y)", 0, 7), ("Reach(x, 3)", 1, 3), ("Far(0, y)", 0, 0), ("Far(x, 3)", 1, 3)]:
        rel = q.split("(")[0]
        got, _, _ = ask(src, edges, q)
        assert got == sorted([t[1 - k]] for t in db[rel] if t[k] == c), q


def test_demand_cases_against_the_naive_evaluator_from_a_case():
    """A program written as a test_datalog_random Case (facts in the source, declared domain)."""
    case = Case(6, {"E": 2, "P": 2, "Q": 2}, {"E": {(0, 1), (1, 2), (2, 0), (3, 4), (4, 5)}},
                [parse_rule("P(x, y) <- E(x, y)"), parse_rule("Q(x, z) <- P(x, y), P(y, z)"),
                 parse_rule("P(x, z) <- Q(x, y), E(y, z)")], True)
    db = naive_eval(case.facts, case.rules)
    for rel in ("P", "Q"):
        for c in range(6):
            got = tl.Program(case.source()).query(f"{rel}({c}, y)")
            assert got == sorted([b] for a, b in db[rel] if a == c)


def test_symbols_and_two_domains():
    """Symbolic constants, positions over different domains (people and cities), a constant unknown to the
    program; against a search written here."""
    lives = [("Ann", "Oslo"), ("Bob", "Rome"), ("Cid", "Lima")]
    road = [("Oslo", "Bern"), ("Bern", "Rome"), ("Rome", "Oslo"), ("Lima", "Quito")]
    src = "".join(f"Lives({p}, {c}).\n" for p, c in lives) + "".join(f"Road({a}, {b}).\n" for a, b in road)
    src += "Can(p, c) <- Lives(p, c).\nCan(p, d) <- Can(p, c), Road(c, d).\n"
    src += "Link(c, d) <- Road(c, d).\nLink(c, e) <- Link(c, d), Link(d, e).\nVia(p, d) <- Lives(p, c), Link(c, d).\n"
    g = nx.DiGraph(road)
    for person, home in lives:
        can = {home} | nx.descendants(g, home)
        assert tl.Program(src).query(f"Can({person}, c)") == [[c] for c in sorted(can)]
        assert tl.Program(src).query(f"Via({person}, c)") == [[c] for c in sorted(paths_from(g, home))]
    for city in ("Oslo", "Quito"):
        want = sorted([p] for p, home in lives if city == home or city in nx.descendants(g, home))
        assert tl.Program(src).query(f"Can(p, {city})") == want
    assert tl.Program(src).query("Can(Nobody, c)") == []
    assert tl.Program(src).query("Link(Atlantis, c)") == []


# ---------------------------------------------------------------------------------------------- the rewriting


def test_non_linear_magic_rule_reads_the_rewritten_relation():
    """Without the linearization, `Reach^bf(c, z) <- ... Reach(x,y), Reach(y,z)` asks Reach^bf(y, ...) for
    every y found: the magic predicate depends on the rewritten relation itself."""
    rules = [parse_rule("R(x, y) <- E(x, y)"), parse_rule("R(x, z) <- R(x, y), R(y, z)")]
    as_rules = [Rule(_atom(r.head), tuple(_atom(a) for a in r.body)) for r in rules]
    rew = rewrite("R", "bf", (3,), lambda p: as_rules if p == "R" else None, lambda p: (10, 10), linearize=False)
    texts = {str(r) for r in rew.rules}
    assert "m^R^bf(y) <- m^R^bf(x), R^bf(x, y)" in texts
    assert "R^bf(x, z) <- m^R^bf(x), R^bf(x, y), R^bf(y, z)" in texts
    assert rew.seeds == {"m^R^bf": (3,)} and rew.full == {"E"}
    lin = rewrite("R", "bf", (3,), lambda p: as_rules if p == "R" else None, lambda p: (10, 10))
    assert lin.linearized == ["R"]
    assert not any("R^bf(y" in str(r) for r in lin.rules)  # only R^bf(3, ...) is ever asked


def _atom(a):
    from tensorlogic.runtime.demand_rules import Atom

    return Atom(a.rel, a.args)


def test_cli_stats_show_the_demand_driven_stratum(tmp_path):
    from tensorlogic.cli import main

    f = tmp_path / "q.tl"
    f.write_text("".join(f"Edge({k}, {k + 1}).\n" for k in range(40)) + TC["double"] + "Reach(35, y)?\n")
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["run", "--stats", str(f)])
    text = out.getvalue() + err.getvalue()
    assert rc in (0, None)
    assert "5 answers" in text and "demand-driven" in text


# ---------------------------------------------------------------------------------------------- Gnutella09


@pytest.mark.slow
@pytest.mark.parametrize("form", ["left", "right", "double"])
def test_gnutella09_single_source_does_10x_less_work(form):
    """On p2p-Gnutella09 a single-source question does at least 10x less work than the (left-linear, the
    cheapest) full closure, for left-, right- and non-linear TC; answers against scipy's breadth-first
    search."""
    edges = np.loadtxt(DATA / "p2p-Gnutella09.tsv", dtype=np.int64)
    n = int(edges.max()) + 1
    m = sp.csr_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    whole = full_work(TC["left"], edges)
    assert whole > 20_000_000
    for c in (0, 17, 4000):
        order = set(breadth_first_order(m, c, directed=True, return_predecessors=False).tolist())
        preds = set(m[:, [c]].nonzero()[0].tolist())
        reach = (order - {c}) | ({c} if preds & order else set())  # c itself when it lies on a cycle
        got, w, kinds = ask(TC[form], edges, f"Reach({c}, y)")
        assert [y for [y] in got] == sorted(reach)
        assert kinds[-1].startswith("semi-naive (demand-driven")
        assert 10 * w <= whole, (w, whole)
