"""The REPL used as a person would: `tl repl` in a real terminal (tmux), keys sent with send-keys and the
screen read with capture-pane. Defines the family tree line by line, queries it, sees a syntax error marked
at its column, cancels it with Ctrl-C, completes a name with Tab, enters a multi-line literal, saves the
session and checks that `tl run` on the saved file answers as networkx does. Skipped without tmux."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import networkx as nx
import pytest

TL = Path(sys.executable).parent / "tl"
PARENTS = [("Alice", "Bob"), ("Bob", "Charlie"), ("Bob", "Dana"), ("Charlie", "Eve")]

pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.skipif(not TL.exists(), reason=f"the tl script is not installed next to {sys.executable}"),
]


class Terminal:
    """A tmux pane running one command, on a private tmux server."""

    def __init__(self, command: str, cwd: Path) -> None:
        self.socket = f"tl-test-{uuid.uuid4().hex[:8]}"
        self.target = "repl"
        self._tmux("new-session", "-d", "-s", self.target, "-x", "120", "-y", "50", "-c", str(cwd), command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              check=True, timeout=30).stdout

    def type(self, text: str, enter: bool = True) -> None:
        self._tmux("send-keys", "-t", self.target, "-l", "--", text)
        if enter:
            self._tmux("send-keys", "-t", self.target, "Enter")

    def key(self, name: str) -> None:
        self._tmux("send-keys", "-t", self.target, name)

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.target, "-S", "-200")

    def cursor(self) -> tuple[int, int]:
        x, y = self._tmux("display-message", "-p", "-t", self.target, "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def wait_for(self, text: str, count: int = 1, tries: int = 600) -> str:
        """Poll the screen until `text` appears `count` times (a bounded wait, not a timing assertion)."""
        for _ in range(tries):
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session", "-t", self.target],
                              capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def _rows(screen: str, query: str) -> list[str]:
    lines = screen.splitlines()
    k = max(i for i, line in enumerate(lines) if line.startswith(query + "? "))
    n = int(lines[k].split("? ")[1].split()[0])
    return [line.strip() for line in lines[k + 3:k + 3 + n]]


def test_repl_in_a_terminal(tmp_path):
    data = tmp_path / "data"
    term = Terminal(f"env XDG_DATA_HOME={data} TERM=xterm-256color {TL} repl", tmp_path)
    closure = nx.transitive_closure(nx.DiGraph(PARENTS), reflexive=False)
    try:
        term.wait_for("tl>")
        for a, b in PARENTS:
            term.type(f"Parent({a}, {b}).")
        term.type("Ancestor(x, y) <- Parent(x, y).")
        term.type("Ancestor(x, z) <- Ancestor(x, y), Parent(y, z).")
        term.type("Ancestor(Alice, x)?")
        screen = term.wait_for("Ancestor(Alice, x)? ")
        assert _rows(term.wait_for("Eve"), "Ancestor(Alice, x)") == sorted(closure.successors("Alice"))

        # a syntax error is marked at its column and nothing runs; Ctrl-C drops the input
        bad = "Sibling(x, y) <- Parent(p, x),, Parent(p, y)"
        term.type(bad)
        col = bad.index(",,") + 2
        screen = term.wait_for(f"syntax error at line 1, column {col}")
        x, _ = term.cursor()
        assert x == len("tl> ") + col - 1
        term.key("C-c")
        term.type("Ancestor(x, Eve)?")
        screen = term.wait_for("Ancestor(x, Eve)? ")
        assert _rows(term.wait_for("Charlie", count=2), "Ancestor(x, Eve)") == sorted(closure.predecessors("Eve"))
        assert "Sibling" not in screen.split("Ancestor(x, Eve)?")[-1]

        # Tab completes a tensor name; a literal continues over lines while its bracket is open
        term.type("Ances", enter=False)
        term.key("Tab")
        term.wait_for("tl> Ancestor")
        term.key("C-c")
        term.type("W = [1.5,")
        term.wait_for("...")
        term.type("-2]")
        term.type(":show W")
        screen = term.wait_for("min -2, max 1.5")

        term.type(":save family.tl")
        term.wait_for("wrote")
        term.key("C-d")
        for _ in range(100):
            if not term.alive():
                break
            time.sleep(0.1)
        assert not term.alive(), "Ctrl-D did not end the REPL"
    finally:
        term.close()
    saved = tmp_path / "family.tl"
    run = subprocess.run([str(TL), "run", "--json", str(saved)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    got = [json.loads(line) for line in run.stdout.splitlines()]
    assert got == [{"query": "Ancestor(Alice, x)", "value": sorted([y] for y in closure.successors("Alice"))},
                   {"query": "Ancestor(x, Eve)", "value": sorted([x] for x in closure.predecessors("Eve"))}]
    history = (data / "tensorlogic" / "repl_history").read_text()
    assert "+Ancestor(Alice, x)?" in history and "+:save family.tl" in history and "Sibling" not in history
