"""Reading and writing tensors from and to files (``M = "text.txt"`` and ``"out.csv" = M``).

Formats, chosen by the file's extension (case-insensitive):

* ``.txt`` -- a text document, split into words on whitespace only (punctuation stays attached). It reads
  as the relation M(position, word): "Alice loves Bob" gives rows (0, "Alice"), (1, "loves"), (2, "Bob").
  Every word stays a string, even one that looks like an integer such as "17": in a document it is a word.
* ``.csv`` (comma) and ``.tsv`` (tab) -- one tuple per non-empty line; lines starting with ``#`` are
  comments. A field that is a plain integer (``-?\\d+``) becomes an ``int`` constant, any other field
  (stripped of surrounding whitespace) a string. Two rules make the format predictable:

  - Header: none is assumed, except that the first row is taken as a header (and skipped) when it has a
    field that is not a number in a column whose every later field is a number.
  - Weights: when the file has at least two columns and every field of the last column is a number, with
    at least one of them not a plain integer (it has a '.', an exponent, or is inf/nan), that column holds
    the weights of the tuples. Otherwise every column is a constant (so integer weights read as constants).

  All rows must have the same number of fields.

  A table of at least `_FAST_ROWS` rows whose fields are all plain integers (and possibly a last column of
  weights) is read column by column into int64 arrays (`TupleData.cols`), with the same result and
  without the general reader's per-field tests and tuples (300,000 weighted edges: 0.65 s instead of
  4.6 s, measured side by side). Anything else uses the general reader. Writing a relation from its
  columns formats a block of rows at a time (`_column_chunks`), without a csv writer call per row.
* ``.npy`` / ``.npz`` -- dense tensors; an ``.npz`` read must hold exactly one array.

Writing is atomic: the data goes to a temporary file in the target's folder, which is flushed, synced
and renamed onto the target, so a failure never leaves a half-written file and never harms an old one.
"""

from __future__ import annotations

import csv
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from tensorlogic.syntax.diagnostics import Span, TLError, TLRuntimeError

_INT = re.compile(r"-?\d+")
_NUMBER = re.compile(r"[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|inf|infinity|nan)", re.IGNORECASE)
_DELIMITERS = {".csv": ",", ".tsv": "\t"}
_FAST_ROWS = 1000  # tables with at least this many rows try the vectorised reader first
_SUPPORTED = ".txt, .csv, .tsv, .npy, .npz"


@dataclass
class TupleData:
    """A relation read from a file: rows of constants and, optionally, one float64 weight per row.

    A table of integers arrives as `cols` instead (one int64 array per position, `rows` None): large numeric
    files are read without a Python object per field.
    """

    rows: list[tuple[int | str, ...]] | None
    weights: np.ndarray | None
    arity: int
    cols: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.cols[0]) if self.cols else len(self.rows or ())

    def row_list(self) -> list[tuple[int | str, ...]]:
        """The rows as tuples of constants (built from `cols` when the table was read as columns)."""
        if self.rows is None:
            self.rows = list(zip(*(c.tolist() for c in self.cols))) if self.cols else []
        return self.rows


def resolve_path(path: str, base_dir: str | Path | None) -> Path:
    """Resolve a file name from a program: relative paths are relative to ``base_dir``, else to the cwd."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    return (Path(base_dir) if base_dir is not None else Path.cwd()) / p


def _constant(token: str) -> int | str:
    return int(token) if _INT.fullmatch(token) else token


def _is_number(token: str) -> bool:
    return _NUMBER.fullmatch(token) is not None


def read_tensor_file(path: str | Path, span: Span | None = None) -> TupleData | np.ndarray:
    """Read a file as a relation (``TupleData``) or a dense tensor (``np.ndarray``); see the module doc."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in (".txt", ".csv", ".tsv", ".npy", ".npz"):
        raise TLRuntimeError(f"cannot read '{path.name}': unknown file type '{path.suffix}'", span,
                             f"supported extensions are {_SUPPORTED}")
    try:
        if ext == ".npy":
            return np.load(path, allow_pickle=False)
        if ext == ".npz":
            return _read_npz(path, span)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TLRuntimeError(f"cannot read '{path.name}': no such file", span,
                             f"looked for {path.resolve()}") from None
    except OSError as e:
        raise TLRuntimeError(f"cannot read '{path.name}': {e.strerror or e}", span,
                             f"looked for {path.resolve()}") from None
    except (ValueError, EOFError) as e:  # bad .npy/.npz contents, bad UTF-8 text
        raise TLRuntimeError(f"cannot read '{path.name}': {e}", span) from None
    if ext == ".txt":
        return TupleData([(i, w) for i, w in enumerate(text.split())], None, 2)
    return _read_table(text, path.name, _DELIMITERS[ext], span)


def _read_npz(path: Path, span: Span | None) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        names = list(archive.files)
        if len(names) != 1:
            raise TLRuntimeError(f"'{path.name}' holds {len(names)} arrays ({', '.join(names) or 'none'}), "
                                 "expected exactly one", span, "use one array per .npz file")
        return archive[names[0]]


def _read_numeric_table(text: str, delimiter: str) -> TupleData | None:
    """The fast path of `_read_table` for a table of integers (and a last column of weights): one pass of
    `int`/`float` per column, the same result as the general reader. None when the text needs the general
    reader (comments, quotes, spaces, symbols, ragged rows, small tables)."""
    if "#" in text or " " in text or '"' in text:
        return None
    lines = [ln for ln in text.splitlines() if ln]
    if len(lines) < _FAST_ROWS:
        return None  # small tables: the general reader is fast enough
    width = lines[0].count(delimiter) + 1
    if any(ln.count(delimiter) != width - 1 for ln in lines):
        return None
    first = lines[0].split(delimiter)
    # the general rule: the first row is a header when one of its fields is not a number in a column whose
    # every later field is a number -- and every later field is a number whenever this reader succeeds
    header = not all(map(_is_number, first))
    tokens = delimiter.join(lines[1:]).split(delimiter)
    if not header:
        tokens = first + tokens
    cols: list[np.ndarray] = []
    weights = None
    try:
        for k in range(width):
            col = tokens[k::width]
            joined = "".join(col)
            if not joined.isascii() or "_" in joined or "+" in joined:
                return None  # int() and float() accept more than the table format's numbers
            if "." not in joined and "e" not in joined and "E" not in joined and "n" not in joined:
                try:  # -?\d+ exactly: int() of an ASCII field without '+', '_' or spaces
                    cols.append(np.array(list(map(int, col)), dtype=np.int64))
                    continue
                except ValueError:
                    return None
            if k == width - 1 and width >= 2:
                weights = np.array(list(map(float, col)), dtype=np.float64)  # ValueError: not all numbers
            else:
                return None  # a non-integer constant: a symbol, for the general reader
    except (ValueError, OverflowError):
        return None
    return TupleData(None, weights, len(cols), cols=cols)


def _read_table(text: str, name: str, delimiter: str, span: Span | None) -> TupleData:
    fast = _read_numeric_table(text, delimiter)
    if fast is not None:
        return fast
    numbered: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = next(csv.reader([line], delimiter=delimiter))
        except csv.Error as e:
            raise TLRuntimeError(f"{name} line {lineno}: {e}", span) from None
        numbered.append((lineno, [f.strip() for f in fields]))
    if not numbered:
        return TupleData([], None, 0)
    width = len(numbered[0][1])
    for lineno, fields in numbered:
        if len(fields) != width:
            raise TLRuntimeError(f"{name} line {lineno} has {len(fields)} fields, expected {width}", span,
                                 "every row of a table file must have the same number of fields")
    table = [fields for _, fields in numbered]
    if len(table) > 1 and any(not _is_number(table[0][c]) and all(_is_number(r[c]) for r in table[1:])
                              for c in range(width)):
        table = table[1:]
    last = [r[-1] for r in table]
    weights = None
    if width >= 2 and all(map(_is_number, last)) and not all(_INT.fullmatch(t) for t in last):
        weights = np.array([float(t) for t in last], dtype=np.float64)
        table = [r[:-1] for r in table]
        width -= 1
    return TupleData([tuple(_constant(t) for t in r) for r in table], weights, width)


def _format(x: object) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    if isinstance(x, np.integer):
        return str(int(x))
    return str(x)


def write_tensor_file(path: str | Path, value: np.ndarray | TupleData, span: Span | None = None,
                      header: list[str] | None = None) -> None:
    """Write a dense tensor or a relation to ``path``, atomically; the extension picks the format.

    ``.npy``/``.npz`` take a dense array (an ``.npz`` stores it under ``header[0]``, else ``"value"``).
    ``.csv``/``.tsv`` write one row per nonzero element of a dense array (its indices, then its value; only
    the indices for a Boolean array; just the value for a 0-d array), or the rows of a ``TupleData`` with
    the weight as a last column. ``header``, if given, is the first row. ``.txt`` takes (position, word)
    tuples and writes the words in position order (weights, if any, are ignored).
    """
    path = Path(path)
    ext = path.suffix.lower()
    writer: Callable[[IO[bytes]], None]
    if ext in (".npy", ".npz"):
        if not isinstance(value, np.ndarray):
            raise TLRuntimeError(f"cannot write a relation of tuples to '{path.name}'", span,
                                 f"{ext} files hold dense tensors; write tuples to a .csv or .tsv file")
        if value.dtype.hasobject:
            raise TLRuntimeError(f"cannot write an array of Python objects to '{path.name}'", span)
        key = header[0] if header else "value"
        arr = value
        writer = (lambda f: np.save(f, arr, allow_pickle=False)) if ext == ".npy" else (
            lambda f: np.savez(f, **{key: arr}))
    elif ext in _DELIMITERS:
        if isinstance(value, TupleData) and value.cols is not None:  # columns: formatted a block at a time
            chunks = _column_chunks(value, path.name, _DELIMITERS[ext], header, span)
            writer = lambda f: [f.write(c) for c in chunks]  # noqa: E731
        else:
            data = _table_text(value, path.name, _DELIMITERS[ext], header, span).encode("utf-8")
            writer = lambda f: f.write(data)  # noqa: E731
    elif ext == ".txt":
        data = _words_text(value, path.name, span).encode("utf-8")
        writer = lambda f: f.write(data)  # noqa: E731
    else:
        raise TLRuntimeError(f"cannot write '{path.name}': unknown file type '{path.suffix}'", span,
                             f"supported extensions are {_SUPPORTED}")
    _atomic_write(path, writer, span)


_WRITE_BLOCK = 1 << 18  # rows formatted at once when a relation is written from columns


def _column_chunks(value: TupleData, name: str, delimiter: str, header: list[str] | None, span: Span | None
                   ) -> Iterator[bytes]:
    """The table text of a relation given as columns (ints or label strings), as UTF-8 blocks: the same text
    as `_table_text` gives for its rows, without a csv writer call per row. Blocks whose labels need quoting
    go through the csv writer."""
    n = len(value)
    if value.weights is not None and len(value.weights) != n:
        raise TLRuntimeError(f"cannot write '{name}': {n} rows but {len(value.weights)} weights", span)
    if header is not None:
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(header)
        yield out.getvalue().encode("utf-8")
    special = (delimiter, '"', "\n", "\r")
    for lo in range(0, n, _WRITE_BLOCK):
        parts = [list(map(str, c[lo:lo + _WRITE_BLOCK].tolist())) for c in value.cols]
        labels = "".join("".join(p) for p, c in zip(parts, value.cols) if c.dtype.kind not in "iu")
        if value.weights is not None:
            parts.append([_format(x) for x in value.weights[lo:lo + _WRITE_BLOCK].tolist()])
        rows = zip(*parts)
        if any(ch in labels for ch in special):
            out = io.StringIO()
            csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
            yield out.getvalue().encode("utf-8")
        else:
            yield ("\n".join(map(delimiter.join, rows)) + "\n").encode("utf-8")


def _table_text(value: np.ndarray | TupleData, name: str, delimiter: str, header: list[str] | None,
                span: Span | None) -> str:
    out = io.StringIO()
    w = csv.writer(out, delimiter=delimiter, lineterminator="\n")
    if header is not None:
        w.writerow(header)
    if isinstance(value, TupleData):
        rows = value.row_list()
        if value.weights is not None and len(value.weights) != len(rows):
            raise TLRuntimeError(f"cannot write '{name}': {len(rows)} rows but "
                                 f"{len(value.weights)} weights", span)
        for i, row in enumerate(rows):
            extra = [] if value.weights is None else [_format(float(value.weights[i]))]
            w.writerow([_format(c) for c in row] + extra)
        return out.getvalue()
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TLRuntimeError(f"cannot write an array of type {arr.dtype} to '{name}'", span,
                             "only Boolean, integer and float tensors can be written as tables")
    if arr.ndim == 0:
        w.writerow([_format(arr.item())])
    elif arr.dtype.kind == "b":
        w.writerows([[str(int(i)) for i in idx] for idx in np.argwhere(arr)])
    else:
        for idx in np.argwhere(arr != 0):
            w.writerow([str(int(i)) for i in idx] + [_format(arr[tuple(idx)])])
    return out.getvalue()


def _words_text(value: np.ndarray | TupleData, name: str, span: Span | None) -> str:
    hint = "a .txt file is written from a (position, word) relation such as one read from a .txt file"
    if not isinstance(value, TupleData) or value.arity != 2:
        raise TLRuntimeError(f"cannot write '{name}': expected (position, word) tuples", span, hint)
    rows = value.row_list()
    if not all(len(r) == 2 and isinstance(r[0], int) for r in rows):
        raise TLRuntimeError(f"cannot write '{name}': word positions must be integers", span, hint)
    words = [str(word) for _, word in sorted(rows, key=lambda r: r[0])]
    return " ".join(words) + "\n"


def _atomic_write(path: Path, writer: Callable[[IO[bytes]], None], span: Span | None) -> None:
    tmp_name: str | None = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False) as tmp:
            tmp_name = tmp.name
            writer(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except TLError:
        raise
    except FileNotFoundError:
        raise TLRuntimeError(f"cannot write '{path.name}': no such folder", span,
                             f"looked for {path.parent.resolve()}") from None
    except (OSError, ValueError, TypeError) as e:
        raise TLRuntimeError(f"cannot write '{path.name}': {e}", span) from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
