"""IPython support: `%load_ext tensorlogic` gives the `%%tl` cell magic and the `%tl` line magic.

Every cell runs in one session program shared by all cells of the notebook (a `Session`, as in the REPL):
a cell's definitions are added to what earlier cells defined, its queries' answers are printed as tables,
and an error is printed (never a traceback) without losing what was defined before.

    %load_ext tensorlogic

    %%tl
    Parent(Alice, Bob). Parent(Bob, Carol).
    Ancestor(x, y) <- Parent(x, y).
    Ancestor(x, z) <- Ancestor(x, y), Parent(y, z).

    %%tl
    Ancestor(Alice, x)?

`%tl LINE` runs one line (`%tl :show Ancestor`); `%%tl --reset` starts a new session before the cell and
`%%tl --backend NAME` switches the backend. `current_session()` gives the session to Python code (its
`program` is a `tensorlogic.Program`, its `answers` the last cell's answers as Python values).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, line_cell_magic, magics_class

from ..syntax.diagnostics import TLError
from .session import Reply, Session, execute_safely

_SESSIONS: dict[int, Session] = {}


@magics_class
class TensorLogicMagics(Magics):
    """The `%tl` / `%%tl` magics; one session per IPython shell."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.session = Session(base_dir=Path.cwd())
        _SESSIONS[id(shell)] = self.session

    def _show(self, reply: Reply) -> None:
        for text, error in reply.chunks:
            stream = sys.stderr if error else sys.stdout
            stream.write(text)
            stream.flush()

    @line_cell_magic
    def tl(self, line: str, cell: str | None = None) -> None:
        """`%tl STATEMENTS-OR-:COMMAND` or `%%tl [--reset] [--backend NAME]` followed by a cell of tensor logic."""
        if cell is None:
            self._show(execute_safely(self.session, line))
            return
        try:
            args = shlex.split(line)
        except ValueError as e:
            self._show(Reply(f"error: %%tl options: {e}\n", error=True))
            return
        k = 0
        while k < len(args):
            if args[k] == "--reset":
                self.session.reset()
            elif args[k] == "--backend" and k + 1 < len(args):
                k += 1
                try:
                    self.session.set_backend(args[k])
                except TLError as e:
                    self._show(Reply(e.render() + "\n", error=True))
                    return
            else:
                self._show(Reply(f"error: unknown %%tl option '{args[k]}' (use --reset, --backend NAME)\n",
                                 error=True))
                return
            k += 1
        self._show(execute_safely(self.session, cell))


def current_session(shell: Any | None = None) -> Session | None:
    """The session of an IPython shell (the running one by default), or None before `%load_ext tensorlogic`."""
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    return _SESSIONS.get(id(shell))


def load_ipython_extension(ipython: Any) -> None:
    """Called by `%load_ext tensorlogic`: registers the magics."""
    ipython.register_magics(TensorLogicMagics(ipython))
