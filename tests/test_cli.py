"""The `tl` command: run (tables and JSON), check, show, graph, and file writes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

from tensorlogic.cli import main

ROOT = Path(__file__).resolve().parent.parent
FAMILY = ROOT / "examples" / "family_tree.tl"


def _parents() -> list[tuple[str, str]]:
    rows = []
    for line in FAMILY.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("Parent("):
            a, b = line[len("Parent("):line.index(")")].split(",")
            rows.append((a.strip(), b.strip()))
    return rows


def test_run_json_matches_networkx(capsys):
    assert main(["run", "--json", str(FAMILY)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    g = nx.DiGraph(_parents())
    closure = nx.transitive_closure(g, reflexive=False)
    assert lines[0] == {"query": "Ancestor(Alice, x)", "value": sorted([[y] for y in closure.successors("Alice")])}
    assert lines[1]["value"] == sorted([[x] for x in closure.predecessors("Eve")])
    assert lines[3] == {"query": "Ancestor(Eve, Alice)", "value": False}


def test_json_value_kinds(tmp_path, capsys):
    prog = tmp_path / "p.tl"
    prog.write_text("A = [[1, 2], [3, 4]]\nS = A[i, j]\nS?\nT[i] = A[i, j]\nT?\nR(1, 2)\nR(1, 2)?\nR(x, y)?\n")
    assert main(["run", "--json", str(prog)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert out == [
        {"query": "S", "value": 10.0},
        {"query": "T", "value": [3.0, 7.0]},
        {"query": "R(1, 2)", "value": True},
        {"query": "R(x, y)", "value": [[1, 2]]},
    ]


def test_run_tables(capsys):
    assert main(["run", str(FAMILY)]) == 0
    out = capsys.readouterr().out
    assert "Ancestor(Alice, x)? 4 answers" in out
    assert "Ancestor(Eve, Alice)? false" in out


def test_syntax_error_exit_status_and_caret(tmp_path):
    bad = tmp_path / "bad.tl"
    bad.write_text("Y[i] = W[i,j X[j]\n")
    r = subprocess.run([sys.executable, "-m", "tensorlogic.cli", "check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1
    assert f"{bad}:1:" in r.stderr
    assert "^" in r.stderr and "Traceback" not in r.stderr


def test_check_ok(capsys):
    assert main(["check", str(FAMILY)]) == 0
    assert "ok" in capsys.readouterr().out


def test_show_prints_explicit_summation(tmp_path, capsys):
    prog = tmp_path / "p.tl"
    prog.write_text("W = [1, 2]\nX = [3, 4]\nY = step(W[i] X[i])\n")
    assert main(["show", str(prog)]) == 0
    out = capsys.readouterr().out
    assert "Y = step(sum[i](W[i] X[i]))" in out


def test_graph_dot_file(tmp_path):
    out = tmp_path / "g.dot"
    assert main(["graph", str(FAMILY), "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("digraph") and "Ancestor" in text and "->" in text


def test_file_write_csv(tmp_path):
    prog = tmp_path / "p.tl"
    prog.write_text('Parent(Alice, Bob). Parent(Bob, Carol).\nA(x,z) <- Parent(x,y), Parent(y,z).\n"out.csv" = A\n')
    assert main(["run", str(prog)]) == 0
    with open(tmp_path / "out.csv") as f:
        assert [tuple(r) for r in csv.reader(f)] == [("Alice", "Carol")]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_run_keeps_earlier_output(tmp_path):
    (tmp_path / "out.csv").write_text("old\n")
    prog = tmp_path / "p.tl"
    prog.write_text('"out.csv" = A\nA(x) <- B(x)\n')  # B is undefined: the run fails before writing
    assert main(["run", str(prog)]) == 1
    assert (tmp_path / "out.csv").read_text() == "old\n"


@pytest.mark.parametrize("args", [["run"], ["check", "/nonexistent.tl"]])
def test_bad_invocations_do_not_trace(args, capsys):
    if args == ["run"]:
        with pytest.raises(SystemExit):
            main(args)
    else:
        assert main(args) == 1
        assert "Traceback" not in capsys.readouterr().err


def test_conjunctive_query_answers_tuples():
    import tensorlogic as tl

    prog = tl.load(FAMILY)
    parents = _parents()
    expected = sorted([a, b, c] for a, b in parents for b2, c in parents if b == b2)
    assert prog.query("Parent(x, y) Parent(y, z)") == expected
    assert prog.query("Parent(Alice, y) Parent(y, Charlie)") == [["Bob"]]
    assert prog.query("Parent(Alice, Bob) Parent(Bob, Charlie)") is True
