"""The REPL's meta-commands: `:help`, `:load`, `:show`, `:plan`, `:graph`, `:reset`, `:backend`, `:save`, ...

Each command takes the session and the rest of the line and returns a `Reply`. A failing command reports
an error and leaves the session as it was.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..ir.graph import build_graph, to_dot
from ..plan.program import plan_program
from ..plan.program import render as render_plan
from ..syntax.diagnostics import TLError
from ..syntax.parser import parse
from .render import describe
from .session import Reply, Session
from .text import rebase_paths


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    run: Callable[[Session, str], Reply]
    arg: str | None = None  # what the argument completes to: "tensor", "file", "backend", "command"


def _error(message: str) -> Reply:
    return Reply(f"error: {message}\n", error=True)


def _unquote(arg: str) -> str:
    arg = arg.strip()
    if len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "\"'":
        return arg[1:-1]
    return arg


def _tensor(session: Session, name: str, command: str) -> tuple[object, Reply | None]:
    """The live program and None, or None and an error reply when `name` is not one of its tensors."""
    name = name.strip()
    if not name:
        return None, _error(f"usage: {COMMANDS[command].usage}")
    prog = session.live()
    tensors = prog.analyzed.tensors
    if name not in tensors:
        close = difflib.get_close_matches(name, list(tensors), n=1)
        hint = f"; did you mean {close[0]}?" if close else (
            f"; the tensors are: {', '.join(sorted(tensors))}" if tensors else "; nothing is defined yet")
        return None, _error(f"no tensor '{name}' in the session{hint}")
    return prog, None


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _target(session: Session, arg: str) -> Path:
    p = Path(_unquote(arg)).expanduser()
    return p if p.is_absolute() else session.base_dir / p


# ---------------------------------------------------------------- the commands
def cmd_help(session: Session, arg: str) -> Reply:
    name = arg.strip().lstrip(":")
    if name:
        cmd = COMMANDS.get(ALIASES.get(name, name))
        if cmd is None:
            return _error(f"no command ':{name}'")
        return Reply(f"{cmd.usage}\n  {cmd.help}\n")
    width = max(len(c.usage) for c in COMMANDS.values())
    lines = ["Enter tensor logic statements; each adds to the session's program. Queries (`Ancestor(Alice, x)?`)",
             "print their answers. An entry continues over new lines while a bracket is open or a line ends with",
             "`\\`. Tab completes names; Ctrl-C cancels the input; Ctrl-D quits.", "", "Commands:"]
    lines += [f"  {c.usage.ljust(width)}  {c.help}" for c in COMMANDS.values()]
    return Reply("\n".join(lines) + "\n")


def cmd_load(session: Session, arg: str) -> Reply:
    if not arg.strip():
        return _error(f"usage: {COMMANDS['load'].usage}")
    return session.load(_unquote(arg))


def cmd_show(session: Session, arg: str) -> Reply:
    prog, err = _tensor(session, arg, "show")
    if err:
        return err
    return Reply(describe(prog, arg.strip()) + "\n")


def cmd_plan(session: Session, arg: str) -> Reply:
    prog, err = _tensor(session, arg, "plan")
    if err:
        return err
    name = arg.strip()
    a = prog.analyzed
    if not any(e.lhs == name for e in a.equations):
        return Reply(f"{name} is data: there is nothing to plan\n")
    relational = {k: f is not None for k, f in prog.executor.forms.items()}
    plan = plan_program(prog._run_analysis(), relational, {name})  # what runs: with shared sub-joins
    return Reply(render_plan(plan) + "\n")


def cmd_graph(session: Session, arg: str) -> Reply:
    a = session.live().analyzed
    dot = to_dot(build_graph(a.equations, list(a.tensors)), "session")
    if not arg.strip():
        return Reply(dot)
    target = _target(session, arg)
    _atomic_write(target, dot)
    return Reply(f"wrote {_unquote(arg)}\n")


def cmd_drop(session: Session, arg: str) -> Reply:
    name = arg.strip()
    if not name:
        return _error(f"usage: {COMMANDS['drop'].usage}")
    try:
        n = session.drop(name)
    except TLError as e:
        return Reply(f"error: cannot drop {name}: the rest of the session still needs it\n{e.render()}\n",
                     error=True)
    if not n:
        return _error(f"no statement of the session defines '{name}'")
    return Reply(f"dropped {n} statement{'s' if n != 1 else ''} that define or query {name}\n")


def cmd_reset(session: Session, arg: str) -> Reply:
    n = len(session.entries)
    session.reset()
    return Reply(f"session cleared ({n} entr{'y' if n == 1 else 'ies'} dropped)\n")


def cmd_undo(session: Session, arg: str) -> Reply:
    last = session.undo()
    if last is None:
        return Reply("nothing to undo\n")
    return Reply("dropped:\n" + "".join("  " + line + "\n" for line in last.text.splitlines()))


def cmd_source(session: Session, arg: str) -> Reply:
    return Reply(session.source or "# the session is empty\n")


def cmd_backend(session: Session, arg: str) -> Reply:
    name = arg.strip()
    if not name:
        return Reply(f"backend: {session.backend}\n")
    session.set_backend(name)
    return Reply(f"backend: {name}\n")


def cmd_save(session: Session, arg: str) -> Reply:
    if not arg.strip():
        return _error(f"usage: {COMMANDS['save'].usage}")
    target = _target(session, arg)
    text = session.source
    if text:
        text = rebase_paths(text, parse(text, "<session>").statements, session.base_dir, target.parent)
    header = "# saved from a tl repl session; run it with: tl run " + target.name + "\n"
    try:
        _atomic_write(target, header + text)
    except OSError as e:
        return _error(f"cannot write '{_unquote(arg)}': {e.strerror or e}")
    n = len(session.entries)
    return Reply(f"wrote {n} entr{'y' if n == 1 else 'ies'} to {_unquote(arg)}\n")


def cmd_quit(session: Session, arg: str) -> Reply:
    return Reply(quit=True)


COMMANDS: dict[str, Command] = {c.name: c for c in [
    Command("help", ":help [COMMAND]", "this help, or one command's", cmd_help, "command"),
    Command("load", ":load FILE", "add a program file's statements to the session (and answer its queries)",
            cmd_load, "file"),
    Command("show", ":show NAME", "a tensor's type, domains, shape, role and a summary of its value", cmd_show,
            "tensor"),
    Command("plan", ":plan NAME", "the planner's choice for computing a tensor: join orders, FLOPs, memory",
            cmd_plan, "tensor"),
    Command("graph", ":graph [FILE]", "the program's dataflow graph as DOT (printed, or written to FILE)",
            cmd_graph, "file"),
    Command("source", ":source", "the session's statements, as :save writes them", cmd_source),
    Command("undo", ":undo", "drop the last entry", cmd_undo),
    Command("drop", ":drop NAME", "remove the statements that define NAME (and queries of it), to define it anew",
            cmd_drop, "tensor"),
    Command("reset", ":reset", "start again with an empty program", cmd_reset),
    Command("backend", ":backend [NAME]", "show or switch the backend (numpy)", cmd_backend, "backend"),
    Command("save", ":save FILE", "write the session as a program that `tl run FILE` runs", cmd_save, "file"),
    Command("quit", ":quit", "leave the REPL (also Ctrl-D)", cmd_quit),
]}
ALIASES = {"q": "quit", "exit": "quit", "h": "help", "?": "help"}


def run_command(session: Session, line: str) -> Reply:
    """Run one `:command args` line."""
    head, _, arg = line.lstrip()[1:].partition(" ")
    name = ALIASES.get(head, head)
    cmd = COMMANDS.get(name)
    if cmd is None:
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f"; did you mean :{close[0]}?" if close else "; :help lists the commands"
        return _error(f"unknown command ':{head}'{hint}")
    try:
        return cmd.run(session, arg)
    except TLError as e:
        return Reply(e.render() + "\n", error=True)
