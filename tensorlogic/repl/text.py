"""Source-text helpers of the REPL: open brackets, blanking statements out, moving relative paths.

All of them work on the real parser's spans (`tensorlogic.syntax.parser.parse`); none of them parses
tensor logic itself beyond counting brackets outside strings and comments.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..syntax import ast
from ..syntax.diagnostics import Span, source_lines


def walk(node: object) -> Iterator[object]:
    """Every AST node under `node` (the `ast` dataclasses, through tuples and lists), `node` included."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, list | tuple):
            stack.extend(n)
        elif dataclasses.is_dataclass(n) and not isinstance(n, type):
            yield n
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n) if f.name != "span")


def open_brackets(text: str) -> int:
    """How many ( and [ are still open at the end of `text`, ignoring strings and comments."""
    depth = 0
    for line in text.split("\n"):
        in_str = False
        esc = False
        for ch in line:
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
                continue
            if ch == '"':
                in_str = True
            elif ch == "#":
                break
            elif ch in "([":
                depth += 1
            elif ch in ")]":
                depth = max(0, depth - 1)
    return depth


def needs_more(text: str) -> bool:
    """Whether an entry is unfinished: a bracket is open or the last line ends with a `\\` continuation."""
    return open_brackets(text) > 0 or text.rstrip(" \t").endswith("\\")


def _line_starts(source: str) -> list[int]:
    starts = [0]
    for k, ch in enumerate(source):
        if ch == "\n":
            starts.append(k + 1)
    return starts


def offset_of(source: str, line: int, col: int) -> int:
    """The character offset of a 1-based (line, col) in `source`, clamped to the text."""
    starts = _line_starts(source)
    if line < 1:
        return 0
    if line > len(starts):
        return len(source)
    return max(0, min(len(source), starts[line - 1] + col - 1))


def span_range(source: str, span: Span) -> tuple[int, int]:
    """The [start, end) character offsets of a span in `source`."""
    return offset_of(source, span.line, span.col), offset_of(source, span.end_line, span.end_col)


def blank(source: str, spans: list[Span]) -> str:
    """`source` with the text of each span replaced by spaces (newlines kept), so positions do not move."""
    chars = list(source)
    for sp in spans:
        a, b = span_range(source, sp)
        for k in range(a, b):
            if chars[k] != "\n":
                chars[k] = " "
    return "".join(chars)


def tidy(source: str) -> str:
    """Trailing spaces removed and lines left empty by blanking dropped (a statement separator alone on a line
    is dropped too)."""
    out = []
    for line in source_lines(source):
        s = line.rstrip()
        if s.strip(" .;") == "" and line.strip() != "":
            continue
        out.append(s)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n" if out else ""


def statement_text(source: str, st: ast.Statement) -> str:
    """The source text of one parsed statement."""
    a, b = span_range(source, st.span)
    return source[a:b]


def _quoted(path: str) -> str:
    return json.dumps(path)


def rebase_paths(source: str, statements: list[ast.Statement], from_dir: Path, to_dir: Path) -> str:
    """Rewrite relative file paths (file reads and writes, `import "file.tl"`) so that a program written
    relative to `from_dir` means the same files relative to `to_dir`."""
    from_dir, to_dir = from_dir.resolve(), to_dir.resolve()
    if from_dir == to_dir:
        return source
    edits: list[tuple[int, int, str]] = []
    for st in statements:
        if isinstance(st, ast.FileRead | ast.FileWrite):
            path = st.path
        elif isinstance(st, ast.Import) and st.is_path:
            path = st.module
        else:
            continue
        if Path(path).is_absolute() or st.span is None:
            continue
        new = os.path.relpath(from_dir / path, to_dir)
        a, b = span_range(source, st.span)
        text = source[a:b]
        # the path literal: the last string of a file read, the first of a file write or import
        quote_at = text.rfind('"') if isinstance(st, ast.FileRead) else text.find('"')
        if quote_at < 0:
            continue
        if isinstance(st, ast.FileRead):
            start = text.rfind('"', 0, quote_at)
            end = quote_at + 1
        else:
            start = quote_at
            end = _string_end(text, start)
        edits.append((a + start, a + end, _quoted(new)))
    for a, b, rep in sorted(edits, reverse=True):
        source = source[:a] + rep + source[b:]
    return source


def _string_end(text: str, start: int) -> int:
    k = start + 1
    while k < len(text):
        if text[k] == "\\":
            k += 2
            continue
        if text[k] == '"':
            return k + 1
        k += 1
    return len(text)
