"""The terminal front end of the REPL: a prompt-toolkit prompt around a `Session`, and a plain line reader.

The prompt highlights input with the package's Pygments lexer, completes names (Tab), keeps a persistent
history in the user's data directory, continues an entry over new lines while a bracket is open, and
validates each entry with the real parser before it runs. Ctrl-C cancels the current input (or stops a
running entry), Ctrl-D quits. When standard input is not a terminal, `run_plain` reads entries line by line
(a line continues while a bracket is open), so `tl repl < script.tl` works too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import platformdirs
from prompt_toolkit import PromptSession
from prompt_toolkit.application.current import get_app
from prompt_toolkit.filters import Condition
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings
from prompt_toolkit.lexers import PygmentsLexer
from prompt_toolkit.output import Output

from ..syntax.diagnostics import TLError
from ..syntax.highlight import TensorLogicLexer
from .completion import TensorLogicCompleter
from .session import Reply, Session, execute_safely
from .text import needs_more
from .validation import TensorLogicValidator

PROMPT = "tl> "
CONTINUATION = "... "
BANNER = "tensor logic REPL: enter statements and queries; :help for commands, Ctrl-D to quit"


def history_path() -> Path:
    """Where the REPL's history is kept: `repl_history` in the user's data directory for tensorlogic."""
    return Path(platformdirs.user_data_dir("tensorlogic")) / "repl_history"


def make_history() -> History:
    """The persistent history, or an in-memory one when the data directory cannot be written."""
    path = history_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=True)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()


def _key_bindings() -> KeyBindings:
    kb = KeyBindings()
    unfinished = Condition(lambda: needs_more(get_app().current_buffer.text))

    @kb.add("enter", filter=~unfinished)
    def _accept(event) -> None:
        event.current_buffer.validate_and_handle()

    @kb.add("enter", filter=unfinished)
    def _newline(event) -> None:
        event.current_buffer.insert_text("\n    ")

    return kb


def _continuation(width: int, line_number: int, is_soft_wrap: bool) -> str:
    return CONTINUATION.rjust(width)


def make_prompt(session: Session, input: Input | None = None, output: Output | None = None,
                history: History | None = None) -> PromptSession:
    """The prompt-toolkit prompt of the REPL (inputs and outputs can be replaced for tests)."""
    return PromptSession(
        PROMPT, multiline=True, key_bindings=_key_bindings(), prompt_continuation=_continuation,
        lexer=PygmentsLexer(TensorLogicLexer), completer=TensorLogicCompleter(session),
        complete_while_typing=False, validator=TensorLogicValidator(), validate_while_typing=False,
        history=history if history is not None else make_history(), input=input, output=output,
    )


def _show(reply: Reply, out: TextIO, err: TextIO | None = None, color: bool = False) -> None:
    """Print a reply: answers to `out`, errors to `err` (or `out`), errors in red when `color`."""
    for text, error in reply.chunks:
        stream = err if error and err is not None else out
        if error and color:
            text = "".join(f"\x1b[31m{line}\x1b[0m\n" if "error:" in line else line + "\n"
                           for line in text.splitlines())
        stream.write(text)
        stream.flush()


def run_prompt(session: Session, prompt: PromptSession, out: TextIO | None = None, banner: bool = True) -> int:
    """Read, run and print entries until :quit or Ctrl-D."""
    out = out or sys.stdout
    color = bool(getattr(out, "isatty", lambda: False)())
    if banner:
        out.write(BANNER + "\n")
        out.flush()
    while True:
        try:
            text = prompt.prompt()
        except KeyboardInterrupt:  # Ctrl-C: drop the current input
            continue
        except EOFError:  # Ctrl-D
            break
        reply = execute_safely(session, text)
        _show(reply, out, color=color)
        if reply.quit:
            break
    return 0


def run_plain(session: Session, inp: TextIO, out: TextIO, err: TextIO) -> int:
    """Entries from a non-terminal input, one per line (continued while a bracket is open). Exit status 1
    when any entry failed."""
    status = 0
    buf = ""
    for line in inp:
        buf += line if line.endswith("\n") else line + "\n"
        if needs_more(buf):
            continue
        reply = execute_safely(session, buf)
        buf = ""
        _show(reply, out, err)
        status = status or int(reply.error)
        if reply.quit:
            return status
    if buf.strip():
        reply = execute_safely(session, buf)
        _show(reply, out, err)
        status = status or int(reply.error)
    return status


def run_repl(load: str | None = None, backend: str = "numpy") -> int:
    """`tl repl [FILE] [--backend B]`: the interactive REPL (a line reader when stdin is not a terminal)."""
    try:
        session = Session(backend)
    except TLError as e:
        print(e.render(), file=sys.stderr)
        return 1
    status = 0
    if load:
        reply = execute_safely(session, f":load {load}")
        _show(reply, sys.stdout, sys.stderr)
        status = int(reply.error)
    if not sys.stdin.isatty():
        return run_plain(session, sys.stdin, sys.stdout, sys.stderr) or status
    return run_prompt(session, make_prompt(session))
