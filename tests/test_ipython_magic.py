"""`%load_ext tensorlogic` and the `%%tl` cell magic in IPython's InteractiveShell: cells share one session
program, query answers are shown, errors are shown without losing earlier definitions."""

from __future__ import annotations

import networkx as nx
import pytest

pytest.importorskip("IPython", reason="IPython is not installed (pip install -e '.[dev]')")

from IPython.core.interactiveshell import InteractiveShell  # noqa: E402
from IPython.utils.capture import capture_output  # noqa: E402

from tensorlogic.repl.magic import current_session  # noqa: E402

PARENTS = [("Alice", "Bob"), ("Bob", "Carol"), ("Carol", "Dan"), ("Bob", "Erin")]


@pytest.fixture(scope="module")
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "tensorlogic")
    yield ip
    current_session(ip).reset()


def _rows(text: str, query: str) -> list[str]:
    lines = text.splitlines()
    k = next(i for i, line in enumerate(lines) if line.startswith(query + "? "))
    n = int(lines[k].split("? ")[1].split()[0])
    return [line.strip() for line in lines[k + 3:k + 3 + n]]


def test_two_cells_share_definitions(shell):
    facts = " ".join(f"Parent({a}, {b})." for a, b in PARENTS)
    with capture_output() as first:
        shell.run_cell(f"%%tl --reset\n{facts}\nAncestor(x, y) <- Parent(x, y).\n"
                       "Ancestor(x, z) <- Ancestor(x, y), Parent(y, z).\n")
    assert first.stdout == "" and first.stderr == ""
    with capture_output() as second:
        shell.run_cell("%%tl\nAncestor(Alice, x)?\nAncestor(x, Dan)?\n")
    closure = nx.transitive_closure(nx.DiGraph(PARENTS), reflexive=False)
    assert _rows(second.stdout, "Ancestor(Alice, x)") == sorted(closure.successors("Alice"))
    assert _rows(second.stdout, "Ancestor(x, Dan)") == sorted(closure.predecessors("Dan"))
    session = current_session(shell)
    assert [a.query for a in session.answers] == ["Ancestor(Alice, x)", "Ancestor(x, Dan)"]


def test_error_keeps_earlier_cells(shell):
    with capture_output() as bad:
        shell.run_cell("%%tl\nCousin(x, y) <- Parent(p, x),, Parent(q, y)\n")
    assert "<repl>:1:30: error: unexpected ','" in bad.stderr and "Traceback" not in bad.stdout + bad.stderr
    with capture_output() as undefined:
        shell.run_cell("%%tl\nAunt(x, z) <- Sister(x, y), Parent(y, z).\n")
    assert "undefined tensor 'Sister'" in undefined.stderr
    with capture_output() as good:
        shell.run_line_magic("tl", "Ancestor(Bob, x)?")
    closure = nx.transitive_closure(nx.DiGraph(PARENTS), reflexive=False)
    assert _rows(good.stdout, "Ancestor(Bob, x)") == sorted(closure.successors("Bob"))


def test_line_magic_meta_command_and_options(shell):
    with capture_output() as c:
        shell.run_line_magic("tl", ":show Parent")
    assert f"{len(PARENTS)} of" in c.stdout and "relation (Boolean)" in c.stdout
    with capture_output() as c:
        shell.run_cell("%%tl --backend nosuch\nParent(x, y)?\n")
    assert "unknown backend 'nosuch'" in c.stderr
    with capture_output() as c:
        shell.run_cell("%%tl --frob\nParent(x, y)?\n")
    assert "unknown %%tl option" in c.stderr
