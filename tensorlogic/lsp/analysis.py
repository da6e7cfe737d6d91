"""What the language server knows about one document, without any LSP machinery.

`check(source, path)` runs the real pipeline (parser, imports, analysis) on a document's text and returns
its diagnostics (for this file: 0-based line/column ranges in code points) and, when analysis succeeded, the
`Analyzed` program. `hover(result, source, line, col)` describes the word under the cursor: a tensor's type,
role, shape and domains, a symbol's domain, an index variable's range in its equation, a built-in function.
The server (`server.py`) converts columns to the client's units and wraps these in LSP types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..syntax.diagnostics import Diagnostic, Span, TLError, source_lines

if TYPE_CHECKING:
    from ..analysis.program import Analyzed

# A word as the language spells it: a name with optional primes (p', M'').
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*'*")

BUILTIN_DOCS = {
    "step": "step(x): 1 if x > 0 else 0 (the Heaviside step)",
    "sig": "sig(x): the logistic sigmoid 1/(1+exp(-x)); sig(x, T) with temperature T (T = 0 is step)",
    "relu": "relu(x): max(x, 0)",
    "tanh": "tanh(x): the hyperbolic tangent",
    "exp": "exp(x): e to the power x",
    "log": "log(x): the natural logarithm",
    "sqrt": "sqrt(x): the square root",
    "abs": "abs(x): the absolute value",
    "sin": "sin(x): the sine",
    "cos": "cos(x): the cosine",
    "softmax": "softmax(...): normalises over the left side's dotted index (Comp[p, p'.] = softmax(...))",
    "lnorm": "lnorm(...): layer norm (x - mean) / sqrt(var + 1e-5) over the left side's dotted index",
    "concat": "concat(...): lays the argument's extra indices out row-major into the left side's new index",
}


@dataclass
class Problem:
    """One diagnostic placed in this document: 0-based start and end (line, column in code points)."""

    message: str
    start: tuple[int, int]
    end: tuple[int, int]
    severity: str = "error"  # error, warning, information
    related: list[tuple[str, tuple[int, int], tuple[int, int]]] = field(default_factory=list)


@dataclass
class CheckResult:
    """A document's problems, and its analysed program when there were none."""

    problems: list[Problem]
    analyzed: Analyzed | None = None
    file: str = "<untitled>"


def _same_file(span: Span, file: str) -> bool:
    if span.file == file:
        return True
    try:
        return Path(span.file).resolve() == Path(file).resolve()
    except (OSError, ValueError):
        return False


def _place(span: Span | None, file: str, lines: list[str]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """A span of this file as 0-based (line, col) start and end, clamped to the text; None for other files."""
    if span is None or not _same_file(span, file):
        return None
    n = max(len(lines), 1)
    line = min(max(span.line - 1, 0), n - 1)
    text = lines[line] if line < len(lines) else ""
    col = min(max(span.col - 1, 0), len(text))
    end_line = min(max(span.end_line - 1, line), n - 1)
    end_text = lines[end_line] if end_line < len(lines) else ""
    end_col = min(max(span.end_col - 1, 0), len(end_text))
    if (end_line, end_col) <= (line, col):  # an empty span (end of input, say): mark one character or the line end
        end_line, end_col = line, min(col + 1, len(text))
        if end_col == col and col > 0:
            col -= 1
    return (line, col), (end_line, end_col)


def _problem(d: Diagnostic, file: str, lines: list[str]) -> Problem:
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    where = _place(d.span, file, lines)
    via = d.span.via if d.span is not None else None
    while where is None and via is not None:  # inside a used module: at the `use` of this file
        where, via = _place(via, file, lines), via.via
        message = f"{d.span}: {message}" if where is not None else message
    if where is None:  # no span, or a span in an imported file: show it on the first line, saying where
        if d.span is not None:
            message = f"{d.span}: {message}"
        first = lines[0] if lines else ""
        where = (0, 0), (0, len(first))
    severity = d.severity if d.severity in ("error", "warning", "information") else "error"
    p = Problem(message, where[0], where[1], severity)
    for note, span in d.notes:
        placed = _place(span, file, lines)
        if placed is not None:
            p.related.append((note, placed[0], placed[1]))
        else:
            p.message += f"\nnote: {f'{span}: ' if span else ''}{note}"
    return p


def check(source: str, path: str | None = None, base_dir: str | Path | None = None) -> CheckResult:
    """Parse and analyse a document; every failure becomes a problem (never an exception).

    `path` is the document's file on disk: data files and imports are read relative to its folder, as
    `tl run` would. An unsaved buffer (no path) reads them relative to `base_dir` (the workspace), else
    the working directory."""
    from ..api import Program  # the full pipeline is imported on first use

    file = path or "<untitled>"
    base_dir = Path(path).resolve().parent if path else Path(base_dir or Path.cwd())
    lines = source_lines(source)
    try:
        prog = Program(source, file=file, base_dir=base_dir)
        analyzed = prog.analyze()
    except TLError as e:
        return CheckResult([_problem(d, file, lines) for d in e.diagnostics], None, file)
    except RecursionError:
        return CheckResult([_problem(Diagnostic("the program is nested too deeply to analyse"), file, lines)],
                           None, file)
    except Exception as e:  # a bug in tensorlogic: say so in the editor, never take the server down
        d = Diagnostic(f"internal error in tensorlogic: {type(e).__name__}: {e}", severity="warning",
                       hint="this is a bug in tensorlogic; `TL_DEBUG=1 tl check FILE` prints the traceback")
        return CheckResult([_problem(d, file, lines)], None, file)
    return CheckResult([], analyzed, file)


def word_at(source: str, line: int, col: int) -> tuple[str, int, int] | None:
    """The name at 0-based (line, col in code points) and its start and end columns, or None."""
    lines = source_lines(source)
    if not 0 <= line < len(lines):
        return None
    text = lines[line]
    hash_at = _comment_start(text)
    for m in WORD.finditer(text):
        if m.start() <= col <= m.end() and m.start() < hash_at:
            if m.start() > 0 and (text[m.start() - 1].isdigit() or text[m.start() - 1] == "."):
                return None  # the exponent of a number such as 1e-5
            return m.group(), m.start(), m.end()
    return None


def _comment_start(text: str) -> int:
    """Where a line's comment starts (len(text) if none), skipping '#' inside strings."""
    in_str = False
    k = 0
    while k < len(text):
        c = text[k]
        if in_str and c == "\\":
            k += 2
            continue
        if c == '"':
            in_str = not in_str
        elif c == "#" and not in_str:
            return k
        k += 1
    return len(text)


def _in_string(text: str, col: int) -> bool:
    in_str = False
    k = 0
    while k < min(col, len(text)):
        c = text[k]
        if in_str and c == "\\":
            k += 2
            continue
        if c == '"':
            in_str = not in_str
        k += 1
    return in_str


def describe_tensor(analyzed: Analyzed, name: str) -> str | None:
    """Markdown for a tensor: type (bool/real), role, shape and domains, as `tl show` reports them."""
    t = analyzed.tensors.get(name)
    if t is None:
        return None
    kind = "bool" if t.boolean else "real"
    role = "data" if t.has_data else ("learnable" if t.learnable else "computed")
    if t.has_data and t.has_equations:
        role = "data+computed"
    if t.const:
        role += ", const"
    what = "relation" if t.boolean else ("scalar" if not t.shape else "tensor")
    out = [f"**{name}**: {what}, {kind}, {role}"]
    if t.shape:
        out.append("shape: " + " × ".join(str(n) for n in t.shape))
        out.append("domains: " + " × ".join(t.domains))
    else:
        out.append("shape: scalar")
    if name in getattr(analyzed, "scalars", {}):
        out.append(f"value: {analyzed.scalars[name]}")
    if t.virtual_axis is not None:
        out.append(f"axis {t.virtual_axis} is virtual (only the current step is stored)")
    if t.sparse:
        out.append("stored sparse (as tuples)")
    shown = []
    for d in t.domains:
        dom = analyzed.domains.get(d)
        if dom is not None and dom.symbolic and d not in shown:
            shown.append(d)
            syms = [str(s) for s in dom.symbols]
            more = f", … ({len(syms)} in all)" if len(syms) > 10 else ""
            out.append(f"{d}: {', '.join(syms[:10])}{more}")
    return "\n\n".join(out)


def hover(result: CheckResult, source: str, line: int, col: int, stale: bool = False) -> tuple[str, int, int] | None:
    """Markdown about the word at 0-based (line, col) and the word's start and end columns, or None.

    `stale`: the analysis is of an earlier text (the current one has errors), so only names are looked up,
    not the equation on this line."""
    found = word_at(source, line, col)
    if found is None:
        return None
    word, start, end = found
    text = source_lines(source)[line]
    if _in_string(text, start):
        return None
    rest = text[end:].lstrip()
    a = result.analyzed
    if word[0].islower() or word[0] == "_":
        if rest.startswith("(") and word in BUILTIN_DOCS:
            return f"`{BUILTIN_DOCS[word]}`", start, end
        if a is not None and not stale and not rest.startswith("("):
            doc = _describe_index(a, result.file, word, line)
            if doc:
                return doc, start, end
        return None
    if a is None:
        return None
    doc = describe_tensor(a, word)
    if doc is None:
        doc = _describe_symbol(a, word)
    return (doc, start, end) if doc else None


def _describe_symbol(analyzed: Analyzed, word: str) -> str | None:
    doms = [(name, d.lookup(word)) for name, d in sorted(analyzed.domains.items())
            if d.symbolic and d.lookup(word) is not None]
    if not doms:
        return None
    return f"**{word}**: symbol of " + ", ".join(f"domain {name} (position {i})" for name, i in doms)


def _describe_index(analyzed: Analyzed, file: str, var: str, line: int) -> str | None:
    """An index variable's range in the equation or query on this line (0-based)."""
    for eq in analyzed.equations:
        span = eq.span
        if span is None or not _same_file(span, file) or not span.line - 1 <= line <= span.end_line - 1:
            continue
        if var in eq.ranges:
            lo, hi = eq.ranges[var]
            role = "kept (on the left side)" if var in eq.lhs_vars() else "projected out (not on the left side)"
            return f"**{var}**: index over [{lo}, {hi}) ({_values(hi - lo)}), {role}"
    for q in analyzed.queries:
        span = q.span
        if span is None or not _same_file(span, file) or not span.line - 1 <= line <= span.end_line - 1:
            continue
        if var in q.ranges:
            lo, hi = q.ranges[var]
            return f"**{var}**: query variable over [{lo}, {hi}) ({_values(hi - lo)})"
    return None


def _values(n: int) -> str:
    return f"{n} value" if n == 1 else f"{n} values"
