"""The REPL through prompt-toolkit's pipe input: the family tree line by line, syntax errors marked at their
column without losing the session, roll-back of entries that fail analysis, every meta-command, completion,
multi-line input, history, and `:save` giving a program whose `tl run` answers match networkx."""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.data_structures import Size
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from prompt_toolkit.output.vt100 import Vt100_Output
from prompt_toolkit.validation import ValidationError

from tensorlogic.cli import main as tl_main
from tensorlogic.repl.completion import TensorLogicCompleter
from tensorlogic.repl.session import Session
from tensorlogic.repl.ui import history_path, make_history, make_prompt, run_plain, run_prompt
from tensorlogic.repl.validation import TensorLogicValidator

PARENTS = [("Alice", "Bob"), ("Bob", "Charlie"), ("Bob", "Dana"), ("Charlie", "Eve"), ("Dana", "Fay")]
FAMILY_LINES = [f"Parent({a}, {b})." for a, b in PARENTS] + [
    "Ancestor(x, y) <- Parent(x, y).",
    "Ancestor(x, z) <- Ancestor(x, y), Parent(y, z).",
]
CLOSURE = nx.transitive_closure(nx.DiGraph(PARENTS), reflexive=False)


def _descendants(x: str) -> list[list[str]]:
    return sorted([y] for y in CLOSURE.successors(x))


def _ancestors(y: str) -> list[list[str]]:
    return sorted([x] for x in CLOSURE.predecessors(y))


def table_rows(output: str, query: str) -> list[list[str]]:
    """The rows of the answer table printed for `query` (a relation query's table, or [] for no answers)."""
    lines = output.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(f"{query}? "))
    if lines[start].endswith("no answers"):
        return []
    n = int(lines[start][len(query) + 2:].split()[0])
    return [line.split() for line in lines[start + 3:start + 3 + n]]


def drive(session: Session, keys: str, history=None) -> str:
    """Type `keys` into the REPL's prompt (a pipe input, no terminal) and return what it printed."""
    out = io.StringIO()
    with create_pipe_input() as inp:
        inp.send_text(keys)
        prompt = make_prompt(session, input=inp, output=DummyOutput(), history=history or InMemoryHistory())
        run_prompt(session, prompt, out, banner=False)
    return out.getvalue()


def typed(*entries: str) -> str:
    return "".join(e + "\r" for e in entries) + "\x04"  # Enter after each entry, then Ctrl-D


@pytest.fixture
def family() -> Session:
    s = Session()
    drive(s, typed(*FAMILY_LINES))
    return s


# ---------------------------------------------------------------- entries
def test_family_tree_line_by_line(tmp_path):
    s = Session(base_dir=tmp_path)
    out = drive(s, typed(*FAMILY_LINES, "Ancestor(Alice, x)?", "Ancestor(x, Fay)?", "Ancestor(Eve, Alice)?"))
    assert table_rows(out, "Ancestor(Alice, x)") == _descendants("Alice")
    assert table_rows(out, "Ancestor(x, Fay)") == _ancestors("Fay")
    assert "Ancestor(Eve, Alice)? false" in out
    assert [a.value for a in s.answers] == [False]


def test_syntax_error_keeps_the_session(family):
    """Without a terminal (`tl repl < file`, :load) a syntax error is printed with a caret at its column."""
    reply = family.execute("Sibling(x, y) <- Parent(p, x),, Parent(p, y)")
    assert reply.error
    first, src, caret = reply.output.splitlines()[:3]
    assert first.startswith("<repl>:1:31: error: unexpected ','")
    assert caret.index("^") - 4 == 30 and src[4 + 30] == ","
    out = drive(family, typed("Ancestor(Bob, x)?"))
    assert table_rows(out, "Ancestor(Bob, x)") == _descendants("Bob")


def test_validator_marks_the_column():
    v = TensorLogicValidator()
    text = "Ancestor(x, z) <- Ancestor(x, y) Parent(y, z)"
    with pytest.raises(ValidationError) as e:
        v.validate(Document(text))
    col = text.index("Parent") + 1
    assert e.value.cursor_position == col - 1
    assert f"line 1, column {col}" in e.value.message
    v.validate(Document("Ancestor(x, z) <- Ancestor(x, y), Parent(y, z)"))  # no error
    v.validate(Document("W = [1,\n 2"))  # open bracket: not finished, not an error
    with pytest.raises(ValidationError):
        v.validate(Document(":shwo Ancestor"))


class Cancelled(Exception):
    pass


def _plain(screen: io.StringIO) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())


async def _until(cond, tries: int = 1000) -> None:
    for _ in range(tries):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the prompt never reached the expected state")


def test_prompt_shows_syntax_error_at_column_then_ctrl_c_keeps_session(family):
    """On a terminal, Enter on a bad entry does not run it: the cursor moves to the error's column and the
    message is shown; Ctrl-C then drops the input and the session still has everything."""
    screen = io.StringIO()
    output = Vt100_Output(screen, lambda: Size(rows=24, columns=120), term="xterm")
    bad = "Ancestor(x, z) <- Ancestor(x, y) Parent(y, z)"

    async def run() -> None:
        with create_pipe_input() as inp:
            prompt = make_prompt(family, input=inp, output=output, history=InMemoryHistory())
            prompt.interrupt_exception = Cancelled  # what Ctrl-C raises (KeyboardInterrupt would stop the loop)
            task = asyncio.ensure_future(prompt.prompt_async())
            inp.send_text(bad + "\r")
            await _until(lambda: prompt.default_buffer.validation_error is not None)
            assert prompt.default_buffer.cursor_position == bad.index("Parent")
            await _until(lambda: "syntax error at line 1, column" in _plain(screen))
            inp.send_text("\x03")
            with pytest.raises(Cancelled):
                await task

    asyncio.run(run())
    assert f"column {bad.index('Parent') + 1}: unexpected 'Parent'" in _plain(screen)
    assert len(family.entries) == len(FAMILY_LINES)
    out = drive(family, typed("Ancestor(Alice, x)?"))
    assert table_rows(out, "Ancestor(Alice, x)") == _descendants("Alice")


def test_failed_analysis_is_rolled_back(family):
    before = family.source
    reply = family.execute("Aunt(x, z) <- Sister(x, y), Parent(y, z).")
    assert reply.error and "<repl>:1:15: error: undefined tensor 'Sister'" in reply.output
    assert family.source == before
    reply = family.execute("Parent(x)?")  # a query with the wrong arity fails, the session stays
    assert reply.error and family.source == before
    assert family.execute("Ancestor(Alice, x)?").output.count("\n") == 3 + len(_descendants("Alice"))


def test_import_needs_its_inputs_in_the_same_entry():
    s = Session()
    reply = s.execute("import logic")
    assert reply.error and "undefined tensor 'Edge'" in reply.output and "define Edge first" in reply.output
    edges = [("A", "B"), ("B", "C"), ("C", "D")]
    assert not s.execute("import logic; " + "; ".join(f"Edge({a}, {b})" for a, b in edges)).error
    s.execute("Closure(B, x)?")
    reach = nx.descendants(nx.DiGraph(edges), "B")
    assert s.answers[0].value == sorted([y] for y in reach)


def test_multiline_entry_while_brackets_are_open():
    s = Session()
    out = drive(s, typed("W = [1.5,", "2,", "-3]", "V[i] = W[i] \\", "  * 2", "V?"))
    values = [float(line.split()[1]) for line in out.splitlines()[3:6]]
    assert values == [3.0, 4.0, -6.0]
    assert "W = [1.5,\n" in s.source


def test_ctrl_c_cancels_the_input(family):
    out = drive(family, "Parent(Zed, Alice).\x03Parent(x, Alice)?\r\x04")
    assert "Parent(x, Alice)? no answers" in out
    assert "Zed" not in family.source


def test_quit_stops_reading(family):
    out = drive(family, typed(":quit", "Ancestor(Alice, x)?"))
    assert "answers" not in out


def test_history_is_persistent(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert history_path() == tmp_path / "data" / "tensorlogic" / "repl_history"
    hist = make_history()
    assert isinstance(hist, FileHistory)
    drive(Session(), typed("X = 2", "X?"), history=hist)
    assert list(FileHistory(str(history_path())).load_history_strings()) == ["X?", "X = 2"]


# ---------------------------------------------------------------- meta-commands
def test_show(family):
    out = family.execute(":show Ancestor").output
    assert "relation (Boolean)" in out and "computed by 2 equations" in out
    people = sorted(set(CLOSURE.nodes))
    assert f"{len(CLOSURE.edges)} of {len(people) ** 2} tuples hold" in out
    listed = {tuple(line.split()) for line in out.splitlines()[5:]}
    assert listed == set(CLOSURE.edges)
    family.execute("W = [[1, -2], [0, 4.5]]")
    out = family.execute(":show W").output
    w = np.array([[1, -2], [0, 4.5]])
    assert "real tensor" in out and "shape:   2 x 2" in out and "role:    data" in out
    assert f"min {w.min():g}, max {w.max():g}, mean {w.mean():g}, {np.count_nonzero(w)} of 4 nonzero" in out
    assert family.execute(":show Ancestr").output == \
        "error: no tensor 'Ancestr' in the session; did you mean Ancestor?\n"


def test_plan(family):
    out = family.execute(":plan Ancestor").output
    assert "Ancestor [semi-naive]" in out and "sparse relational join" in out
    assert len(re.findall(r"^  Ancestor\(", out, re.MULTILINE)) == 2  # one line per rule
    family.execute("A = [[1, 2], [3, 4]]")
    family.execute("C[i, k] = A[i, j] A[j, k]")
    out = family.execute(":plan C").output
    assert "C[i,k] = sum[j](A[i,j] A[j,k])" in out and "dense" in out
    assert "nothing to plan" in family.execute(":plan Parent").output


def test_plan_shows_a_shared_sub_join():
    s = Session()
    rng = np.random.default_rng(0)
    lit = lambda a: repr(np.round(a, 3).tolist())  # noqa: E731
    s.execute(f"X = {lit(rng.random((30, 30)))}\nY = {lit(rng.random((30, 30)))}\n"
              f"Z = {lit(rng.random(30))}\nW = {lit(rng.random(30))}")
    s.execute("A[i,k] = X[i,j] Y[j,k] Z[k]\nB[i,k] = X[i,j] Y[j,k] W[k]")
    out = s.execute(":plan A").output
    assert "shared: _shared1[i,k] = sum[j](X[i,j] Y[j,k])" in out, out


def test_graph(family, tmp_path):
    dot = family.execute(":graph").output
    assert dot.startswith("digraph")
    edges = re.findall(r"(n\d+) -> (n\d+)", dot)
    labels = dict(re.findall(r'(n\d+) \[label="([^"]*)"', dot))
    named = {(labels[a], labels[b]) for a, b in edges}
    rule1, rule2 = "Ancestor(x,y) = Parent(x,y)", "Ancestor(x,z) = sum[y](Ancestor(x,y) Parent(y,z))"
    assert named == {("Parent", rule1), (rule1, "Ancestor"), ("Ancestor", rule2), ("Parent", rule2),
                     (rule2, "Ancestor")}
    assert family.execute(f":graph {tmp_path / 'g.dot'}").output.startswith("wrote")
    assert (tmp_path / "g.dot").read_text() == dot


def test_reset_undo_source_backend_help(family):
    assert family.execute(":source").output == "".join(line + "\n" for line in FAMILY_LINES)
    assert "Ancestor(x, z)" in family.execute(":undo").output
    assert "Ancestor(x, z)" not in family.source
    assert "Ancestor" in family.execute(":source").output
    assert family.execute(":backend").output == "backend: numpy\n"
    reply = family.execute(":backend nosuch")
    assert reply.error and "unknown backend 'nosuch'" in reply.output
    assert family.execute(":backend numpy").output == "backend: numpy\n" and family.backend == "numpy"
    assert len(family.entries) == len(FAMILY_LINES) - 1
    help_text = family.execute(":help").output
    for cmd in ("help", "load", "show", "plan", "graph", "reset", "backend", "save", "quit"):
        assert f":{cmd}" in help_text
    assert family.execute(":frobnicate").error
    assert family.execute(":reset").output.startswith("session cleared")
    assert family.source == "" and family.execute("Parent(x, y)?").error


def test_drop_redefines_a_tensor(tmp_path, capsys):
    s = Session(base_dir=tmp_path)
    s.execute("W = [1, 2]\nV = [5, 6]")
    s.execute("Y[i] = W[i] V[i]\nY?")
    s.execute("W = [10, 20]")  # same left side: added to the first, as in a program file
    assert s.program["W"].tolist() == [11, 22]
    reply = s.execute(":drop V")
    assert reply.error and "cannot drop V" in reply.output and "undefined tensor 'V'" in reply.output
    assert s.execute(":drop Y").output == "dropped 2 statements that define or query Y\n"
    assert s.execute(":drop W").output == "dropped 2 statements that define or query W\n"
    s.execute("W = [3, 4]\nY[i] = W[i] V[i]\nY?")
    assert s.execute(":drop Nope").error
    s.execute(":save p.tl")
    capsys.readouterr()
    assert tl_main(["run", "--json", str(tmp_path / "p.tl")]) == 0
    assert json.loads(capsys.readouterr().out) == {"query": "Y", "value": [15.0, 24.0]}


def test_interrupt_during_an_entry_keeps_the_session(family):
    def boom(x):
        raise KeyboardInterrupt

    family.functions["boom"] = boom
    out = drive(family, typed("W = [1, 2]", "Y[i] = boom(W[i])", "Y?", "Ancestor(x, Eve)?"))
    assert "interrupted" in out
    assert table_rows(out, "Ancestor(x, Eve)") == _ancestors("Eve")
    assert "Y?" not in family.source and "W = [1, 2]" in family.source


def test_save_then_tl_run_gives_the_same_answers(tmp_path, capsys):
    s = Session(base_dir=tmp_path)
    drive(s, typed(*FAMILY_LINES, "Ancestor(Alice, x)?", "Nope(x)?", "Ancestor(x, Fay)?",
                   "Bad(x) <- Parent(x,,y)", "\x03Ancestor(Eve, Alice)?", ":save out/family.tl"))
    saved = tmp_path / "out" / "family.tl"
    assert "Nope" not in saved.read_text() and not list(saved.parent.glob(".*tmp"))
    capsys.readouterr()
    assert tl_main(["run", "--json", str(saved)]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert got == [{"query": "Ancestor(Alice, x)", "value": _descendants("Alice")},
                   {"query": "Ancestor(x, Fay)", "value": _ancestors("Fay")},
                   {"query": "Ancestor(Eve, Alice)", "value": False}]


def test_load_rebases_relative_paths(tmp_path, monkeypatch):
    prog_dir = tmp_path / "prog"
    (prog_dir / "data").mkdir(parents=True)
    (prog_dir / "data" / "edges.csv").write_text("a,b\nb,c\nc,d\n")
    (prog_dir / "p.tl").write_text('E = "data/edges.csv"\nR(x, y) <- E(x, y).\nR(x, z) <- R(x, y), E(y, z).\n'
                                   'R("a", x)?\n"reach.csv" = R\n')
    work = tmp_path / "work"
    work.mkdir()
    s = Session(base_dir=work)
    out = s.execute(":load ../prog/p.tl").output
    assert table_rows(out, 'R("a", x)') == [["b"], ["c"], ["d"]]
    rows = (prog_dir / "reach.csv").read_text().split()
    assert sorted(rows) == sorted(f"{a},{b}" for a, b in nx.transitive_closure(
        nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d")]), reflexive=False).edges)
    assert '"../prog/data/edges.csv"' in s.source
    assert s.execute(":load nowhere.tl").error and len(s.entries) == 1


# ---------------------------------------------------------------- completion
def _complete(session: Session, text: str) -> list[str]:
    comp = TensorLogicCompleter(session)
    return [c.text for c in comp.get_completions(Document(text, len(text)), CompleteEvent(completion_requested=True))]


def test_completion(family):
    family.execute("W = [1, 2]\nY[row] = sig(W[row])")
    assert _complete(family, "Anc") == ["Ancestor"]
    assert _complete(family, "Ancestor(x, y) <- Par") == ["Parent"]
    assert "Alice" in _complete(family, "Ancestor(Al")
    assert _complete(family, "Z[i] = si") == ["sig", "sin"]
    assert "softmax" in _complete(family, "Z[i] = s")
    assert _complete(family, "Z[r") == ["relu", "row"]  # a function and an index of the session
    assert _complete(family, "Z[row") == []  # the whole word already
    assert _complete(family, "import lo") == ["logic"]
    assert "index" in _complete(family, "ind")
    assert _complete(family, ":sh") == ["show"]
    assert _complete(family, ":show Anc") == ["Ancestor"]
    assert _complete(family, ":backend nu") == ["numpy"]
    assert _complete(family, ":plan Y") == []
    assert _complete(family, ":plan ") == sorted(["Ancestor", "Parent", "W", "Y"])


# ---------------------------------------------------------------- without a terminal
def test_plain_reader_and_cli(tmp_path):
    s = Session(base_dir=tmp_path)
    out, err = io.StringIO(), io.StringIO()
    lines = "\n".join(FAMILY_LINES) + "\nX = [1,\n 2]\nBad(x) <- ,\nAncestor(x, Eve)?\n"
    assert run_plain(s, io.StringIO(lines), out, err) == 1
    assert table_rows(out.getvalue(), "Ancestor(x, Eve)") == _ancestors("Eve")
    assert "<repl>:1:11: error" in err.getvalue()
    proc = subprocess.run([sys.executable, "-m", "tensorlogic.cli"], input="\n".join(FAMILY_LINES)
                          + "\nAncestor(Alice, x)?\n", capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert table_rows(proc.stdout, "Ancestor(Alice, x)") == _descendants("Alice")


def test_cli_loads_a_file_first(tmp_path):
    prog = Path(__file__).resolve().parent.parent / "examples" / "family_tree.tl"
    proc = subprocess.run([sys.executable, "-m", "tensorlogic.cli", "repl", str(prog)], input=":show Parent\n",
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "loaded" in proc.stdout and "Parent: relation (Boolean)" in proc.stdout
