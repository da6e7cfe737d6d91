"""Vectorised relational engine over integer tuples: the `Relation` set type.

A Datalog relation is a sparse Boolean tensor; this package stores it as a set of integer tuples and evaluates
conjunctive queries over such sets with numpy (and scipy.sparse where it pays), never looping in Python over
tuples. The engine is split in three modules:

* this one, `Relation` (and the re-exported `join_project`);
* `tensorlogic.backends.relation_keys`: mixed-radix key encoding and decoding, sorted-unique / merge /
  membership helpers on sorted key arrays, and the Boolean bitmaps of the dense regime;
* `tensorlogic.backends.relation_joins`: `join_project`, conjunctive queries by pairwise sort-merge, sparse
  or dense joins.

`Relation`
    An immutable set of integer tuples. ``cols`` is an int64 array of shape (n, arity) whose rows are unique
    and sorted lexicographically; ``shape`` gives the extent of each position (every value lies in
    ``[0, shape[p])``) and is what ``to_dense`` uses. When ``prod(shape) <= 2**62`` a relation can also hold
    its rows as one mixed-radix int64 key per row (first position most significant), so that the key array is
    sorted exactly when the rows are. Set operations (``union``, ``difference``, ``contains``) work on these
    keys with merges and ``np.searchsorted``; either representation is derived lazily from the other and
    cached, so a relation that is only ever unioned and subtracted (the accumulator of a semi-naive fixpoint)
    never pays for decoding its rows (a relation built from more than `_KEYS_ONLY_ROWS` rows keeps only its
    keys). A union keeps up to log2(n) disjoint sorted key runs pending (a log-structured merge, merged on
    first need), so that a fixpoint's long chain of small unions copies each key O(log n) times rather than
    once per round, and ``delta.difference(R)`` remembers that the result is disjoint from ``R``, so
    ``R.union(delta)`` skips re-testing it. Relations whose shape is too large for an int64 key fall back to
    lexicographic sorting of the rows (``np.lexsort``) and dense ranking (``np.unique(axis=0)``).

    Dense regime: when the key range ``prod(shape)`` is small next to the number of keys involved (at most
    `_BITMAP_RATIO` times it, e.g. a closure that covers a good part of all node pairs), sorting, merging and
    membership go through a Boolean bitmap of ``prod(shape)`` cells instead (a scatter, a gather, a scan:
    10x or more faster than sorting or binary search), and a relation that was tested against many keys
    caches its bitmap; a union passes an updated copy of it on, so a fixpoint's accumulator builds its
    bitmap once. The tuples themselves stay sorted keys and rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from .relation_keys import (
    _bitmap,
    _bitmap_pays,
    _col_max,
    _col_min,
    _decode,
    _encode,
    _fits,
    _is_strictly_increasing,
    _lex_unique,
    _member,
    _member_any,
    _merge_disjoint,
    _radix_product,
    _rank_rows,
    _sorted_unique,
    _use_bitmap,
)

if TYPE_CHECKING:
    from .relation_joins import join_project

__all__ = ["Relation", "join_project"]

# `Relation(rows, shape)` with more rows than this keeps only their keys (rows are decoded on first use).
_KEYS_ONLY_ROWS = 1 << 14


# ----------------------------------------------------------------------------------------------------------
# Helpers of Relation (row validation, read-only arrays, keys of two relations under one radix)
# ----------------------------------------------------------------------------------------------------------


def _common_keys(a: Relation, b: Relation) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted keys of `a` and `b` under one radix (the elementwise max shape), or None if it does not fit."""
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape))
    if not _fits(shape):
        return None
    return _encode(a.cols, shape), _encode(b.cols, shape)


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _check_shape(shape: Iterable[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    if any(s < 0 for s in out):
        raise ValueError(f"negative extent in shape {out}")
    return out


def _as_rows(rows: np.ndarray | Iterable[tuple[int, ...]], arity: int) -> np.ndarray:
    """Rows as an int64 (n, arity) array (not yet validated against a shape, sorted or deduplicated)."""
    if not isinstance(rows, np.ndarray):
        rows = list(rows)
        if not rows:
            return np.zeros((0, arity), dtype=np.int64)
    a = np.asarray(rows)
    if a.size == 0 and not (a.ndim == 2 and a.shape[1] == arity):
        return np.zeros((0, arity), dtype=np.int64)
    if a.ndim == 1 and arity == 1:
        a = a.reshape(-1, 1)
    if a.ndim != 2 or a.shape[1] != arity:
        raise ValueError(f"expected rows of arity {arity}, got an array of shape {a.shape}")
    integral = a.dtype.kind in "iub" or (
        a.dtype.kind == "f" and bool(np.all(np.isfinite(a))) and bool(np.all(a == np.floor(a)))
    )
    if not integral:
        raise ValueError(f"tuple components must be integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


# ----------------------------------------------------------------------------------------------------------
# Relation
# ----------------------------------------------------------------------------------------------------------


class Relation:
    """A set of integer tuples: `cols` is an int64 array (n, arity), rows sorted lexicographically and unique.

    `shape` is the extent of each position (max id + 1 or larger); `to_dense` uses it. Relations are
    immutable (their arrays are read-only) and cache derived data, so share them freely.
    """

    # Internal state: sorted unique rows `_cols` and/or their sorted keys `_keys`, or (after a cheap union)
    # `_runs`, sorted key arrays with no element in common that are merged into `_keys` on first need.
    # `_excluded` is a relation known to share no tuple with this one (set by `difference`), which lets the
    # semi-naive step `R.union(delta.difference(R))` skip re-testing delta against R.
    __slots__ = ("arity", "shape", "_cols", "_keys", "_runs", "_n", "_fits", "_excluded", "_bits")

    arity: int
    shape: tuple[int, ...]

    def __init__(self, cols: np.ndarray | Iterable[tuple[int, ...]], shape: Iterable[int]) -> None:
        """Build from any rows (validated, sorted, deduplicated); same as `Relation.from_tuples`."""
        shape = _check_shape(shape)
        arity = len(shape)
        cols = _as_rows(cols, arity)
        n = cols.shape[0]
        if n and arity:
            lo, hi = _col_min(cols), _col_max(cols)
            bad = np.flatnonzero((lo < 0) | (hi >= np.asarray(shape, dtype=np.int64)))
            if bad.size:
                p = int(bad[0])
                raise ValueError(
                    f"position {p} holds values in [{int(lo[p])}, {int(hi[p])}], outside [0, {shape[p]})"
                )
        keys = None
        if _fits(shape):
            # many rows: keep the keys only and decode the rows on first use (a semi-naive step's new tuples
            # are only ever subtracted and merged, so their rows are never needed); few: keep both
            keys = _encode(cols, shape)
            if not _is_strictly_increasing(keys):
                keys = _sorted_unique(keys, _radix_product(shape))
                cols = _decode(keys, shape) if keys.shape[0] <= _KEYS_ONLY_ROWS else None
            else:
                cols = np.array(cols, dtype=np.int64, copy=True) if n <= _KEYS_ONLY_ROWS else None
        else:
            cols = np.array(_lex_unique(cols), dtype=np.int64, copy=True)
        self._init(cols, keys, shape)

    def _init(
        self,
        cols: np.ndarray | None,
        keys: np.ndarray | None,
        shape: tuple[int, ...],
        runs: tuple[np.ndarray, ...] | None = None,
    ) -> None:
        self.arity = len(shape)
        self.shape = shape
        self._fits = _fits(shape)
        self._cols = None if cols is None else _readonly(cols)
        self._keys = None if keys is None else _readonly(keys)
        self._runs = None
        self._excluded: Relation | None = None
        self._bits: np.ndarray | None = None
        if runs is not None:
            self._runs = tuple(_readonly(r) for r in runs)
            self._n = sum(int(r.shape[0]) for r in runs)
        else:
            self._n = int((cols if cols is not None else keys).shape[0])

    @classmethod
    def _make(
        cls,
        shape: tuple[int, ...],
        cols: np.ndarray | None = None,
        keys: np.ndarray | None = None,
        runs: tuple[np.ndarray, ...] | None = None,
    ) -> Relation:
        """Trusted constructor: `cols` sorted unique rows and/or `keys` their encoding under `shape`, or
        `runs`, disjoint sorted key arrays whose union is the relation."""
        r = cls.__new__(cls)
        r._init(cols, keys, shape, runs)
        return r

    # -- constructors ------------------------------------------------------------------------------------

    @staticmethod
    def from_tuples(
        rows: np.ndarray | Iterable[tuple[int, ...]], arity: int, shape: tuple[int, ...] | None = None
    ) -> Relation:
        """Relation of `rows` (sorted and deduplicated); `shape=None` means max id + 1 per position."""
        if shape is None:
            cols = _as_rows(rows, arity)
            shape = tuple(int(m) + 1 for m in _col_max(cols)) if cols.shape[0] else (0,) * arity
            return Relation(cols, shape)
        if len(shape) != arity:
            raise ValueError(f"shape {tuple(shape)} does not have {arity} positions")
        return Relation(rows, shape)

    @staticmethod
    def from_dense(a: np.ndarray) -> Relation:
        """Relation of the nonzero cells of `a` (shape = a.shape)."""
        a = np.asarray(a)
        cols = np.argwhere(a).astype(np.int64, copy=False)  # C order: already sorted and unique
        return Relation._make(tuple(int(s) for s in a.shape), cols=cols)

    @staticmethod
    def empty(arity: int, shape: tuple[int, ...] | None = None) -> Relation:
        """The empty relation of the given arity (shape defaults to all zeros)."""
        shape = (0,) * arity if shape is None else _check_shape(shape)
        if len(shape) != arity:
            raise ValueError(f"shape {shape} does not have {arity} positions")
        return Relation._make(shape, cols=np.zeros((0, arity), dtype=np.int64))

    # -- representations ---------------------------------------------------------------------------------

    @property
    def cols(self) -> np.ndarray:
        """Rows as an int64 array (n, arity), sorted lexicographically, unique, read-only."""
        if self._cols is None:
            self._cols = _readonly(_decode(self._get_keys(), self.shape))
        return self._cols

    def _get_keys(self) -> np.ndarray | None:
        """Sorted mixed-radix keys of the rows under `shape`, or None when prod(shape) exceeds 2**62."""
        if self._keys is None and self._fits:
            if self._runs is not None:
                ext = self._ext()
                if _use_bitmap(ext, self._n):
                    keys = np.flatnonzero(_bitmap(ext, *self._runs)).astype(np.int64, copy=False)
                elif len(self._runs) > 2:  # many sorted runs: one merge sort (numpy's timsort finds the runs)
                    keys = np.sort(np.concatenate(self._runs), kind="stable")
                else:
                    keys = self._runs[0]
                    for run in self._runs[1:]:
                        keys = _merge_disjoint(keys, run)
                self._keys = _readonly(keys)
                self._runs = None
            else:
                self._keys = _readonly(_encode(self._cols, self.shape))
        return self._keys

    def _ext(self) -> int | None:
        """Size of the key range, prod(shape), or None when keys do not fit in int64."""
        return _radix_product(self.shape) if self._fits else None

    def _key_runs(self) -> tuple[np.ndarray, ...] | None:
        """Disjoint sorted key arrays whose union is the relation (without merging pending runs)."""
        if self._runs is not None:
            return self._runs
        keys = self._get_keys()
        return None if keys is None else (keys,)

    def to_dense(self, dtype: np.dtype | type = np.float64) -> np.ndarray:
        """Dense array of `shape` with 1 at member cells and 0 elsewhere."""
        out = np.zeros(self.shape, dtype=dtype)
        if len(self):
            keys = self._get_keys()
            if keys is None:  # a dense array this large cannot have been allocated
                out[tuple(self.cols.T)] = 1
            else:
                out.reshape(-1)[keys] = 1
        return out

    def tuples(self) -> list[tuple[int, ...]]:
        """Members as Python tuples, in sorted order (for tests and printing)."""
        return [tuple(r) for r in self.cols.tolist()]

    def __len__(self) -> int:
        return self._n

    def nbytes(self) -> int:
        """Bytes of the rows (counted even while they are not decoded yet: most uses need them) and of the
        keys, pending runs and membership bitmap currently held."""
        arrays = [self._keys, *(self._runs or ()), self._bits]
        rows = self._cols.nbytes if self._cols is not None else 8 * self._n * self.arity
        return int(rows) + sum(int(a.nbytes) for a in arrays if a is not None)

    def __repr__(self) -> str:
        return f"Relation(arity={self.arity}, shape={self.shape}, n={len(self)})"

    # -- set operations ----------------------------------------------------------------------------------

    def _check_arity(self, other: Relation) -> None:
        if not isinstance(other, Relation):
            raise TypeError(f"expected a Relation, got {type(other).__name__}")
        if other.arity != self.arity:
            raise ValueError(f"arity mismatch: {self.arity} vs {other.arity}")

    def union(self, other: Relation) -> Relation:
        """Set union; the shape is the elementwise max of both shapes."""
        self._check_arity(other)
        shape = tuple(max(x, y) for x, y in zip(self.shape, other.shape))
        if len(other) == 0 and shape == self.shape:
            return self
        if len(self) == 0 and shape == other.shape:
            return other
        if not _fits(shape):
            cols = _lex_unique(np.concatenate([self.cols, other.cols]))
            return Relation._make(shape, cols=cols)
        big, small = (self, other) if len(self) >= len(other) else (other, self)
        if big.shape == shape:
            runs = list(big._key_runs())
        else:
            runs = [_encode(big.cols, shape)]
        add = small._get_keys() if small.shape == shape else _encode(small.cols, shape)
        bits = big._bits if big.shape == shape else None
        if small._excluded is not big:
            seen = bits[add] if bits is not None else _member_any(runs, add, _radix_product(shape))
            add = np.compress(~seen, add)
        if add.shape[0] == 0:
            return big if big.shape == shape else Relation._make(shape, keys=runs[0])
        if bits is not None:
            # keep the membership bitmap up to date: a copy (ext bytes) is cheaper than a rebuild (all keys)
            bits = bits.copy()
            bits[add] = True
        # Log-structured merge: keep pending runs whose lengths at least double from the last to the first,
        # so a long chain of small unions copies each key O(log n) times instead of once per union.
        runs.append(add)
        while len(runs) > 1 and runs[-2].shape[0] <= 2 * runs[-1].shape[0]:
            y = runs.pop()
            runs[-1] = _merge_disjoint(runs[-1], y, _radix_product(shape))
        out = Relation._make(shape, keys=runs[0]) if len(runs) == 1 else Relation._make(shape, runs=tuple(runs))
        out._bits = None if bits is None else _readonly(bits)
        return out

    def difference(self, other: Relation) -> Relation:
        """Tuples of `self` that are not in `other` (shape of `self`)."""
        self._check_arity(other)
        if len(self) == 0 or len(other) == 0:
            return self
        if self.shape == other.shape and self._fits:
            keep = ~other._member_keys(self._get_keys())
        else:
            ck = _common_keys(self, other)
            if ck is None:
                ra, rb = _rank_rows(self.cols, other.cols)
                keep = ~np.isin(ra, rb)
            else:
                keep = ~_member(ck[1], ck[0])
        if keep.all():
            out = Relation._make(self.shape, cols=self._cols, keys=self._keys, runs=self._runs)
        else:
            cols = None if self._cols is None else np.compress(keep, self._cols, axis=0)
            keys = None if self._keys is None else np.compress(keep, self._keys)
            out = Relation._make(self.shape, cols=cols, keys=keys)
        out._excluded = other
        return out

    def _member_keys(self, queries: np.ndarray) -> np.ndarray:
        """Boolean mask: which of the keys `queries` (under `shape`, which fits) are members. Uses the cached
        membership bitmap, or builds and caches one when that is cheaper than binary searches."""
        bits = self._bits
        if bits is None:
            runs = self._key_runs()
            ext = self._ext()
            if not _bitmap_pays(ext, queries.shape[0], runs):
                return _member_any(runs, queries)
            bits = self._bits = _readonly(_bitmap(ext, *runs))
        return bits[queries]

    def contains(self, rows: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `rows` (shape (m, arity)) are members."""
        rows = _as_rows(rows, self.arity)
        m = rows.shape[0]
        if m == 0 or len(self) == 0:
            return np.zeros(m, dtype=bool)
        if self.arity == 0:
            return np.ones(m, dtype=bool)
        inside = np.all((rows >= 0) & (rows < np.asarray(self.shape, dtype=np.int64)), axis=1)
        out = np.zeros(m, dtype=bool)
        q = rows[inside]
        runs = self._key_runs()
        if runs is None:
            rq, rs = _rank_rows(q, self.cols)
            out[inside] = np.isin(rq, rs)
        else:
            out[inside] = self._member_keys(_encode(q, self.shape))
        return out

    def select(self, position: int, value: int) -> Relation:
        """Rows whose component at `position` equals `value` (arity and shape unchanged)."""
        if not 0 <= position < self.arity:
            raise ValueError(f"position {position} out of range for arity {self.arity}")
        value = int(value)
        if not 0 <= value < self.shape[position]:
            return Relation.empty(self.arity, self.shape)
        keys = self._get_keys()
        if position == 0 and keys is not None:
            stride = _radix_product(self.shape[1:])
            lo, hi = np.searchsorted(keys, [value * stride, (value + 1) * stride])
            cols = None if self._cols is None else self._cols[lo:hi]
            return Relation._make(self.shape, cols=cols, keys=keys[lo:hi])
        mask = self.cols[:, position] == value
        return Relation._make(
            self.shape,
            cols=np.compress(mask, self.cols, axis=0),
            keys=None if self._keys is None else np.compress(mask, self._keys),
        )

    def with_shape(self, shape: Iterable[int]) -> Relation:
        """The same tuples with another shape (each extent must exceed the largest value at its position)."""
        shape = _check_shape(shape)
        if shape == self.shape:
            return self
        if len(shape) != self.arity:
            raise ValueError(f"shape {shape} does not have {self.arity} positions")
        cols = self.cols
        if len(self):
            hi = _col_max(cols)
            bad = np.flatnonzero(hi >= np.asarray(shape, dtype=np.int64))
            if bad.size:
                p = int(bad[0])
                raise ValueError(f"position {p} holds value {int(hi[p])}, outside [0, {shape[p]})")
        return Relation._make(shape, cols=cols)


def __getattr__(name: str) -> Any:
    """Re-export `join_project` lazily: `relation_joins` imports `Relation` from this module, so importing it
    here at load time would be an import cycle."""
    if name == "join_project":
        from .relation_joins import join_project

        globals()["join_project"] = join_project
        return join_project
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
