"""Diagnostics: the one error type of tensorlogic and its rendering.

Every error a user can cause (syntax, analysis, runtime limits, files) is a `TLError` carrying one or
more `Diagnostic`s. A diagnostic renders as ``file:line:col: error: message``, the source line, a caret
under the spot, and an optional hint, so the CLI and REPL can print it without a Python traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def source_lines(source: str) -> list[str]:
    """The lines of a source as the lexer counts them: split at "\\n" only (a trailing "\\r" dropped)."""
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in source.split("\n")]
    if lines and lines[-1] == "" and source.endswith("\n"):
        lines.pop()
    return lines


@dataclass(frozen=True)
class Span:
    """A region of source text: 1-based line and column of its start and end (end exclusive)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    source: str = field(default="", repr=False, compare=False)
    # Where a module's statement came from: the `use` that instantiated it (see syntax/modules.py).
    via: Span | None = field(default=None, repr=False, compare=False)
    via_what: str = field(default="", repr=False, compare=False)

    def line_text(self) -> str | None:
        """The source line the span starts on, or None when the source is not known."""
        lines = source_lines(self.source)
        if 1 <= self.line <= len(lines):
            return lines[self.line - 1]
        return None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Diagnostic:
    """One problem found in a program: where, what, and what to do about it."""

    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    notes: list[tuple[str, Span | None]] = field(default_factory=list)

    def render(self) -> str:
        out = []
        where = f"{self.span}: " if self.span is not None else ""
        out.append(f"{where}{self.severity}: {self.message}")
        if self.span is not None:
            out.extend(_excerpt(self.span))
            out.extend(_via_notes(self.span))
        for note, span in self.notes:
            where = f"{span}: " if span is not None else ""
            out.append(f"{where}note: {note}")
            if span is not None:
                out.extend(_excerpt(span))
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)


def _via_notes(span: Span) -> list[str]:
    """Notes for a span inside a module: each `use` that instantiated it, innermost first."""
    out: list[str] = []
    via, what = span.via, span.via_what
    while via is not None:
        out.append(f"{via}: note: {what or 'in this use of a module'}")
        out.extend(_excerpt(via))
        via, what = via.via, via.via_what
    return out


def _excerpt(span: Span) -> list[str]:
    text = span.line_text()
    if text is None:
        return []
    width = max(1, (span.end_col - span.col) if span.end_line == span.line else len(text) - span.col + 1)
    lead = " " * 4
    caret = lead + " " * (span.col - 1) + "^" + "~" * (width - 1)
    return [lead + text, caret.rstrip()]


class TLError(Exception):
    """An error in a tensorlogic program or its use, with one or more rendered diagnostics."""

    def __init__(self, diagnostics: Diagnostic | list[Diagnostic] | str, span: Span | None = None,
                 hint: str | None = None) -> None:
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics, span, hint)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.render())

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)


class TLSyntaxError(TLError):
    """The source text does not parse."""


class TLAnalysisError(TLError):
    """The program parses but is ill-formed: undefined names, shapes, domains, ranges."""


class TLRuntimeError(TLError):
    """Evaluation failed or was stopped by a resource limit."""
