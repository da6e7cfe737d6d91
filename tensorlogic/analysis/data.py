"""Data statements and bound inputs as raw contributions to tensors, before symbols get positions.

Facts, literal tensors, files and `prog.run(**inputs)` values each give a `Contribution`: a dense array, or
rows of constants (ints or symbol strings) with optional weights. Analysis later turns constants into
positions through the domains' symbol tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.files import TupleData, read_tensor_file, resolve_path
from ..syntax import ast
from ..syntax.diagnostics import Diagnostic, Span, TLAnalysisError


@dataclass
class Contribution:
    """Data for one tensor: `dense` (an array), or `rows` of constants with optional `weights`, or `cols`
    (one int64 array per position: a large table of integers read from a file) with optional `weights`."""

    tensor: str
    arity: int
    span: Span | None
    dense: np.ndarray | None = None
    rows: list[tuple] | None = None
    weights: np.ndarray | None = None
    boolean: bool = False
    source: str = "data"  # data | input
    quoted: list[tuple[bool, ...]] | None = None  # per row: which constants were quoted symbols in source
    cols: list[np.ndarray] | None = None

    @property
    def tuples(self) -> bool:
        """Whether the data is tuples (rows or columns), not a dense array."""
        return self.rows is not None or self.cols is not None

    def __len__(self) -> int:
        return len(self.cols[0]) if self.cols else len(self.rows or ())


@dataclass
class TupleSet:
    """A relation's resolved data: integer positions (n, arity) and optional weights."""

    ids: np.ndarray
    weights: np.ndarray | None = None


def _err(msg: str, span: Span | None, hint: str | None = None) -> TLAnalysisError:
    return TLAnalysisError(Diagnostic(msg, span, hint))


def fact_contribution(st: ast.Fact) -> Contribution:
    row, quoted = [], []
    for p in st.atom.indices or ():
        if isinstance(p, ast.Slice) or p.virtual or p.normalized:
            raise _err("a fact's arguments must be constants", p.span)
        e = p.expr
        if isinstance(e, ast.IxInt):
            row.append(e.value)
            quoted.append(False)
        elif isinstance(e, ast.IxSymbol):
            row.append(e.name)
            quoted.append(e.quoted)
        elif isinstance(e, ast.IxVar):
            raise _err(f"a fact cannot contain the variable '{e.name}'", e.span,
                       "constants are capitalised or quoted (Alice, \"alice\"); for a rule write Head(x) <- Body(x)")
        else:
            raise _err("a fact's arguments must be constants", p.span)
    if not st.atom.boolean and st.atom.indices is not None:
        raise _err(f"a fact is written with parentheses: {st.atom.name}(...)", st.atom.span,
                   "to set a numeric cell write an equation, e.g. X[1] = 0.5")
    return Contribution(st.atom.name, len(row), st.span, rows=[tuple(row)], boolean=True, quoted=[tuple(quoted)])


def literal_contribution(st: ast.Literal) -> Contribution:
    try:
        arr = np.array(st.value, dtype=np.float64)
    except ValueError:
        raise _err("a literal tensor must be rectangular (every row the same length)", st.span) from None
    if arr.dtype == object:
        raise _err("a literal tensor must be rectangular (every row the same length)", st.span)
    if st.lhs.indices is not None and len(st.lhs.indices) != arr.ndim:
        raise _err(f"{st.lhs.name} has {len(st.lhs.indices)} indices but the literal has {arr.ndim} dimensions",
                   st.span)
    return Contribution(st.lhs.name, arr.ndim, st.span, dense=arr, boolean=st.lhs.boolean)


def file_contribution(st: ast.FileRead, base_dir: str | Path | None) -> Contribution:
    path = resolve_path(st.path, base_dir)
    value = read_tensor_file(path, st.span)
    if isinstance(value, TupleData):
        arity = value.arity
        c = Contribution(st.lhs.name, arity, st.span, rows=value.rows, weights=value.weights,
                         boolean=value.weights is None, cols=value.cols)
    else:
        arr = np.asarray(value)
        c = Contribution(st.lhs.name, arr.ndim, st.span, dense=arr.astype(np.float64),
                         boolean=arr.dtype == bool)
    if st.lhs.indices is not None and len(st.lhs.indices) != c.arity:
        raise _err(f"{st.lhs.name} is written with {len(st.lhs.indices)} indices but '{st.path}' holds "
                   f"{c.arity}-ary data", st.span)
    return c


def input_contribution(name: str, value: Any) -> Contribution:
    """A value bound by `prog.run(name=value)`: an array (dense) or an iterable of tuples (a relation)."""
    if isinstance(value, np.ndarray) or np.isscalar(value) or _is_nested_numbers(value):
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise _err(f"input '{name}' must be numeric (got dtype {arr.dtype})", None,
                       "pass relations as a list of tuples")
        return Contribution(name, arr.ndim, None, dense=arr.astype(np.float64), boolean=arr.dtype == bool,
                            source="input")
    try:
        rows = [tuple(r) if isinstance(r, list | tuple) else (r,) for r in value]
    except TypeError:
        raise _err(f"input '{name}' must be a numpy array or an iterable of tuples", None) from None
    arities = {len(r) for r in rows}
    if len(arities) > 1:
        raise _err(f"input '{name}' has tuples of different lengths {sorted(arities)}", None)
    rows = [tuple(int(x) if isinstance(x, np.integer) else x for x in r) for r in rows]
    arity = arities.pop() if arities else 0
    return Contribution(name, arity, None, rows=rows, boolean=True, source="input")


def _is_nested_numbers(v: Any) -> bool:
    if isinstance(v, list | tuple) and v:
        first = v[0]
        if isinstance(first, int | float) and not isinstance(first, bool):
            return True
        if isinstance(first, list) and first and isinstance(first[0], int | float | list):
            return True
    return False
