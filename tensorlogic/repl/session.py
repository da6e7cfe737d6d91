"""A REPL session: the live program that entries extend, with roll-back on error.

The session keeps the source text of every entry that was accepted. An entry's definitions (facts, rules,
equations, literals, file reads, declarations, imports) are appended to the session's definitions and the
whole program is parsed and analysed again (`tensorlogic.Program`); when that fails, nothing is kept and the
error is shown with its line and column in the entry. Queries and file writes of an entry are run once, on
the program as it is after the entry, and kept in the session text (so `:save` writes a program whose
`tl run` answers the same queries) but not in the definitions the next entries are analysed with.

The session is independent of prompt-toolkit: the terminal UI (`ui.py`), the plain line reader for
non-terminal input and the IPython magic (`magic.py`) all call `Session.execute`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..analysis.program import analyze_query
from ..api import Program
from ..backends.numpy_backend import get_backend
from ..runtime.queries import answer, format_answer
from ..syntax import ast
from ..syntax.diagnostics import Diagnostic, Span, TLError, source_lines
from ..syntax.parser import parse
from .text import blank, rebase_paths, tidy, walk

SESSION_FILE = "<session>"
ENTRY_FILE = "<repl>"


@dataclass
class Entry:
    """One accepted entry: `text` is what `:save` writes, `defs` the definitions only (same line layout)."""

    text: str
    defs: str


class Reply:
    """What an entry or a meta-command produced: text to show (in chunks, each an answer or an error, in order),
    whether anything failed, and whether to quit."""

    def __init__(self, output: str = "", error: bool = False, quit: bool = False) -> None:
        self.chunks: list[tuple[str, bool]] = []
        self.error = False
        self.quit = quit
        self.add(output, error)

    @property
    def output(self) -> str:
        return "".join(text for text, _ in self.chunks)

    def add(self, text: str, error: bool = False) -> None:
        if text:
            self.chunks.append((text if text.endswith("\n") else text + "\n", error))
        self.error = self.error or error


@dataclass
class Answered:
    """A query answered in the session: its text and Python value (as in `tl run --json`)."""

    query: str
    value: object


class Session:
    """The state of one REPL (or notebook) session."""

    def __init__(self, backend: str = "numpy", base_dir: str | Path | None = None,
                 functions: dict[str, Callable] | None = None) -> None:
        get_backend(backend)  # an unknown backend is an error now, not at the first entry
        self.backend = backend
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.functions: dict[str, Callable] = dict(functions or {})
        self.entries: list[Entry] = []
        self.program: Program | None = None  # the live program: all accepted definitions, analysed
        self.answers: list[Answered] = []  # answers of the last entry
        self._warned: set[str] = set()

    # ------------------------------------------------------------ state
    @property
    def source(self) -> str:
        """The session as a program: every accepted entry, queries and file writes included."""
        return "".join(e.text for e in self.entries)

    @property
    def definitions(self) -> str:
        return "".join(e.defs for e in self.entries)

    def build(self, defs: str, backend: str | None = None) -> Program:
        """A program of these definitions, parsed and analysed (raises TLError)."""
        prog = Program(defs, SESSION_FILE, base_dir=self.base_dir, backend=backend or self.backend,
                       functions=self.functions)
        prog.analyze()
        return prog

    def live(self) -> Program:
        """The live program (an empty one before the first definition)."""
        if self.program is None:
            self.program = self.build(self.definitions)
        return self.program

    def reset(self) -> None:
        self.entries.clear()
        self.program = None
        self.answers = []

    def undo(self) -> Entry | None:
        """Drop the last accepted entry; the program is rebuilt from the rest."""
        if not self.entries:
            return None
        last = self.entries.pop()
        try:
            self.program = self.build(self.definitions)
        except TLError:  # cannot happen for a prefix of accepted entries, but never lose the session
            self.entries.append(last)
            raise
        return last

    def drop(self, name: str) -> int:
        """Remove every statement that defines `name` (equations, rules, facts, data, its declaration), and the
        queries and file writes that read it, from the session; returns how many. Raises TLError, changing
        nothing, when the rest no longer analyses (another tensor still needs it)."""
        entries: list[Entry] = []
        count = 0
        for e in self.entries:
            text_spans = [st.span for st in parse(e.text, SESSION_FILE).statements if defined_name(st) == name
                          or isinstance(st, ast.Query | ast.FileWrite) and name in _tensors_read(st)]
            def_spans = [st.span for st in parse(e.defs, SESSION_FILE).statements if defined_name(st) == name]
            count += len(text_spans)
            text = tidy(blank(e.text, text_spans)) if text_spans else e.text
            if text.strip():
                entries.append(Entry(text, tidy(blank(e.defs, def_spans)) if def_spans else e.defs))
        if count:
            prog = self.build("".join(e.defs for e in entries))
            self.entries, self.program = entries, prog
        return count

    def set_backend(self, name: str) -> None:
        """Switch the backend; the program is rebuilt on it (raises TLError for an unknown backend)."""
        get_backend(name)
        prog = self.build(self.definitions, backend=name) if self.entries else None
        self.backend = name
        self.program = prog

    # ------------------------------------------------------------ entries
    def execute(self, text: str, file: str = ENTRY_FILE) -> Reply:
        """Run one entry: a meta-command (`:help`, ...) or tensor logic statements."""
        if text.strip().startswith(":"):
            from .commands import run_command

            return run_command(self, text.strip())
        return self.add(text, file)

    def add(self, text: str, file: str = ENTRY_FILE, from_dir: Path | None = None) -> Reply:
        """Add statements to the program, answer their queries and write their files. An entry whose
        definitions fail to parse or analyse is not kept; the session stays as it was."""
        reply = Reply()
        self.answers = []
        src = text if text.endswith("\n") else text + "\n"
        if not src.strip():
            return reply
        try:
            parsed = parse(src, file)
            if from_dir is not None:
                src = rebase_paths(src, parsed.statements, from_dir, self.base_dir)
                parsed = parse(src, file)
        except TLError as e:
            reply.add(e.render(), error=True)
            return reply
        queries = [st for st in parsed.statements if isinstance(st, ast.Query)]
        writes = [st for st in parsed.statements if isinstance(st, ast.FileWrite)]
        defines = len(parsed.statements) > len(queries) + len(writes)
        with_writes = blank(src, [q.span for q in queries])
        defs = blank(with_writes, [w.span for w in writes])
        offset = len(source_lines(self.definitions))
        prog = self.program
        if defines or writes or prog is None:
            try:
                prog = self.build(self.definitions + with_writes)
            except TLError as e:
                reply.add(relocate(e, offset, file, src).render(), error=True)
                reply.add(_undefined_note(e), error=True)
                return reply
        failed: list[Span] = []
        if writes:
            try:
                prog.run()
            except TLError as e:
                reply.add(relocate(e, offset, file, src).render(), error=True)
                failed += [w.span for w in writes]
        for q in queries:
            try:
                reply.add(self._answer(prog, q))
            except TLError as e:
                reply.add(relocate(e, offset, file, src).render(), error=True)
                failed.append(q.span)
            except BaseException:  # Ctrl-C or a bug while computing: never keep half-computed values
                prog._executor = None
                raise
        for w in (prog.report.warnings if prog._executor is not None else []):
            if w not in self._warned:
                self._warned.add(w)
                reply.add(f"warning: {w}")
        kept = tidy(blank(src, failed))
        if kept.strip():
            self.entries.append(Entry(kept, tidy(defs)))
        self.program = prog
        return reply

    def _answer(self, prog: Program, q: ast.Query) -> str:
        ir = analyze_query(prog.analyzed, q.expr, q.text, set(prog.functions))
        value = answer(prog.executor, ir)
        self.answers.append(Answered(q.text, value))
        return format_answer(ir, value, prog.executor)

    def load(self, path: str | Path) -> Reply:
        """Add a program file's statements (relative paths in it are rebased onto the session's folder)."""
        p = Path(path).expanduser()
        if not p.is_absolute():
            p = self.base_dir / p
        try:
            text = p.read_text()
        except OSError as e:
            return Reply(f"error: cannot read '{path}': {e.strerror or e}\n", error=True)
        reply = self.add(text, str(path), from_dir=p.resolve().parent)
        if not reply.error:
            reply.add(f"loaded {path}")
        return reply


def _undefined_note(err: TLError) -> str:
    """A note for an entry rejected only because it uses tensors that are not defined yet."""
    names = [re.match(r"undefined tensor '([^']+)'", d.message) for d in err.diagnostics]
    if not names or not all(names):
        return ""
    missing = ", ".join(dict.fromkeys(m.group(1) for m in names))
    return (f"  note: the entry was not kept: each entry must analyse with what the session defines so far; "
            f"define {missing} first, or in the same entry (statements separated by ';')")


def defined_name(st: ast.Statement) -> str | None:
    """The tensor a statement defines (gives data, an equation, a rule or a declaration for), if any."""
    if isinstance(st, ast.Equation | ast.Literal | ast.FileRead):
        return st.lhs.name
    if isinstance(st, ast.Rule):
        return st.head.name
    if isinstance(st, ast.Fact):
        return st.atom.name
    if isinstance(st, ast.TensorDecl):
        return st.name
    return None


def _tensors_read(node: object) -> set[str]:
    """Names of the tensors an AST node refers to."""
    return {n.name for n in walk(node) if isinstance(n, ast.Ref)}


def execute_safely(session: Session, text: str) -> Reply:
    """Run an entry; nothing that goes wrong (Ctrl-C included) ends the session or loses what it defined."""
    try:
        return session.execute(text)
    except KeyboardInterrupt:
        return Reply("interrupted\n", error=True)
    except TLError as e:
        return Reply(e.render() + "\n", error=True)
    except Exception as e:  # a bug in tensorlogic: say so, keep the session
        return Reply(f"internal error: {type(e).__name__}: {e}\n  hint: this is a bug in tensorlogic; the session "
                     "is unchanged\n", error=True)


def relocate(err: TLError, offset: int, file: str, entry_source: str) -> TLError:
    """The error with spans in the session program's new lines moved to the entry's own lines and file."""

    def move(span: Span | None) -> Span | None:
        if span is not None and span.via is not None:  # inside a used module: move the use's span
            span = dataclasses.replace(span, via=move(span.via))
        if span is None or span.file != SESSION_FILE or span.line <= offset:
            return span
        return dataclasses.replace(span, file=file, line=span.line - offset, end_line=span.end_line - offset,
                                   source=entry_source)

    diags = [Diagnostic(d.message, move(d.span), d.hint, d.severity, [(n, move(s)) for n, s in d.notes])
             for d in err.diagnostics]
    return type(err)(diags)
