"""Vectorised relational engine over integer tuples.

A Datalog relation is a sparse Boolean tensor; this module stores it as a set of integer tuples and evaluates
conjunctive queries over such sets with numpy (and scipy.sparse where it pays), never looping in Python over
tuples.

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

`join_project`
    Evaluates ``head(out_vars) :- R1(vars1), R2(vars2), ...``: the natural join of the operands on shared
    variable names, projected onto ``out_vars`` with duplicates removed (Boolean semantics: exists). Operands
    are contracted pairwise, in a given opt_einsum-style linear order or greedily (smallest estimated output
    first), and after every step each variable that neither the head nor a remaining operand uses is
    projected away, which keeps transitive-closure style joins small. A pairwise join is either

    * a matrix product, when every shared variable is projected away right after the join
      (``A(x,y) B(y,z) -> (x,z)``, with groups of variables encoded into one row / inner / column index) and
      the join has enough matching pairs for the product to beat materialising them: a scipy.sparse CSR x
      CSR product or, when the result is dense enough (estimated cost below `_DENSE_RATIO` times the number
      of matching pairs), a Boolean product with one dense factor, computed in cache-sized blocks of rows,
      whose result is scanned in key order without sorting; or
    * a sort-merge join: the shared variables are encoded into one int64 key per row (dense ranks when the
      radix product exceeds 2**62), one side is argsorted, ``np.searchsorted`` (or, for a small key range,
      ``np.bincount`` offsets) finds the run of matches of every row of the other side, and the matching
      pairs are expanded with ``np.repeat`` and cumulative offsets, followed by a sort-based dedup when a
      variable was projected away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import scipy.sparse as sp

__all__ = ["Relation", "join_project"]

_KEY_LIMIT = 1 << 62
# A pairwise join whose shared variables are all projected away goes through a sparse matrix product once it
# has at least this many matching pairs and at least _SPARSE_RATIO times as many pairs as input rows. Below
# that, scipy's fixed per-call cost (~0.2 ms) and the index compression outweigh materialising and sorting
# the pairs; above it the product wins, by 10x when many paths lead to the same output pair (measured with
# random graphs, numpy 2.4 / scipy 1.17).
_SPARSE_MIN_PAIRS = 4096
_SPARSE_RATIO = 1.0
# Such a product goes through one dense Boolean factor (see `_Query._sparse`) when its estimated cost, in
# cells touched, is at most _DENSE_RATIO times the number of matching pairs: a matching pair costs the sparse
# product 35-65 ns with the sort of its output, a dense cell 0.6-0.8 ns (random graphs with 2,000-10,000
# nodes). A dense result (only with a dense right factor) may have at most _DENSE_MAX_CELLS cells.
_DENSE_RATIO = 48.0
_DENSE_MAX_CELLS = 1 << 27
_DENSE_BLOCK_BYTES = 1 << 18
# Set operations on keys in a range [0, ext) with ext <= _BITMAP_RATIO * (number of keys involved) + _BITMAP_MIN
# use a Boolean bitmap of length ext (a scatter, a gather or a scan) instead of binary searches and merges.
_BITMAP_RATIO = 16
_BITMAP_MIN = 1 << 12
# `Relation(rows, shape)` with more rows than this keeps only their keys (rows are decoded on first use).
_KEYS_ONLY_ROWS = 1 << 14


# ----------------------------------------------------------------------------------------------------------
# Key encoding helpers
# ----------------------------------------------------------------------------------------------------------


def _radix_product(sizes: Iterable[int]) -> int:
    """Product of the (at least 1) radices; may exceed int64 (Python int)."""
    p = 1
    for s in sizes:
        p *= max(int(s), 1)
    return p


def _fits(sizes: Iterable[int]) -> bool:
    return _radix_product(sizes) <= _KEY_LIMIT


def _encode(cols: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Mixed-radix key of each row (first column most significant). The caller checks `_fits(sizes)`."""
    n, k = cols.shape
    if k == 0:
        return np.zeros(n, dtype=np.int64)
    key = cols[:, 0].astype(np.int64, copy=True)
    for j in range(1, k):
        key *= max(int(sizes[j]), 1)
        key += cols[:, j]
    return key


def _decode(keys: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Inverse of `_encode`."""
    k = len(sizes)
    out = np.empty((keys.shape[0], k), dtype=np.int64)
    if k == 0:
        return out
    if k == 1:
        out[:, 0] = keys
        return out
    # quotient and remainder straight into the columns (3x faster than assigning divmod's results)
    rem = keys
    for j in range(k - 1, 0, -1):
        np.divmod(rem, max(int(sizes[j]), 1), out=(out[:, j - 1], out[:, j]))
        rem = out[:, j - 1]
    return out


def _sorted_unique(keys: np.ndarray, ext: int | None = None) -> np.ndarray:
    """Sorted distinct values of a 1-d int64 array (sort + adjacent compare; numpy 2's hash-based
    `np.unique` is an order of magnitude slower on large int64 arrays), or, when the keys are known to lie in
    a small range [0, ext), a scatter into a bitmap and a scan of it."""
    if _use_bitmap(ext, keys.shape[0]):
        return np.flatnonzero(_bitmap(ext, keys)).astype(np.int64, copy=False)
    k = np.sort(keys)
    if k.shape[0] < 2:
        return k
    keep = np.empty(k.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(k[1:], k[:-1], out=keep[1:])
    return np.compress(keep, k)


def _unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, index of each key in them)."""
    n = keys.shape[0]
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    new = np.empty(n, dtype=bool)
    new[:1] = True
    np.not_equal(k[1:], k[:-1], out=new[1:])
    inv = np.empty(n, dtype=np.int64)
    inv[order] = np.cumsum(new) - 1
    return np.compress(new, k), inv


def _col_min(cols: np.ndarray) -> np.ndarray:
    """Minimum of each column of a non-empty (n, k) array (column by column: numpy's ``min(axis=0)`` over
    few columns is an order of magnitude slower)."""
    return np.array([cols[:, j].min() for j in range(cols.shape[1])], dtype=np.int64)


def _col_max(cols: np.ndarray) -> np.ndarray:
    """Maximum of each column of a non-empty (n, k) array (see `_col_min`)."""
    return np.array([cols[:, j].max() for j in range(cols.shape[1])], dtype=np.int64)


def _is_strictly_increasing(a: np.ndarray) -> bool:
    return a.shape[0] < 2 or bool(np.all(a[1:] > a[:-1]))


def _is_nondecreasing(a: np.ndarray) -> bool:
    return a.shape[0] < 2 or bool(np.all(a[1:] >= a[:-1]))


def _lex_unique(cols: np.ndarray) -> np.ndarray:
    """Sorted unique rows without int64 keys (fallback for huge shapes)."""
    n, k = cols.shape
    if n < 2:
        return cols
    if k == 0:
        return cols[:1]
    order = np.lexsort(cols.T[::-1])
    c = np.take(cols, order, axis=0)
    keep = np.empty(n, dtype=bool)
    keep[0] = True
    np.any(c[1:] != c[:-1], axis=1, out=keep[1:])
    return np.compress(keep, c, axis=0)


def _unique_rows(cols: np.ndarray, sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """Lexicographically sorted unique rows of `cols` (values in [0, sizes[j])), and their keys under `sizes`
    when these fit in int64 (else None)."""
    if not _fits(sizes):
        return _lex_unique(cols), None
    keys = _sorted_unique(_encode(cols, sizes), _radix_product(sizes))
    return _decode(keys, sizes), keys


def _rank_rows(*parts: np.ndarray) -> list[np.ndarray]:
    """Dense ranks of rows, consistent across all parts (equal rows, equal rank; order preserved)."""
    allc = np.concatenate(parts, axis=0)
    if allc.shape[0] == 0:
        return [np.zeros(0, dtype=np.int64) for _ in parts]
    _, inv = np.unique(allc, axis=0, return_inverse=True)
    inv = np.asarray(inv, dtype=np.int64).reshape(-1)
    out, start = [], 0
    for p in parts:
        out.append(inv[start : start + p.shape[0]])
        start += p.shape[0]
    return out


def _common_keys(a: Relation, b: Relation) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted keys of `a` and `b` under one radix (the elementwise max shape), or None if it does not fit."""
    shape = tuple(max(x, y) for x, y in zip(a.shape, b.shape))
    if not _fits(shape):
        return None
    return _encode(a.cols, shape), _encode(b.cols, shape)


def _bitmap(ext: int, *key_arrays: np.ndarray) -> np.ndarray:
    """Boolean array of length `ext`, True at every key of the given arrays (keys in [0, ext))."""
    bm = np.zeros(ext, dtype=bool)
    for keys in key_arrays:
        bm[keys] = True
    return bm


def _use_bitmap(ext: int | None, n: int) -> bool:
    """Whether set operations on `n` keys in [0, ext) should go through a Boolean bitmap of length `ext`."""
    return ext is not None and ext <= _BITMAP_RATIO * n + _BITMAP_MIN


def _merge_disjoint(x: np.ndarray, y: np.ndarray, ext: int | None = None) -> np.ndarray:
    """Merge two sorted key arrays with no common element (keys in [0, ext) when `ext` is given): linear,
    by one binary search per element of the shorter array, or by a bitmap scan when the key range is small."""
    if _use_bitmap(ext, x.shape[0] + y.shape[0]):
        return np.flatnonzero(_bitmap(ext, x, y)).astype(np.int64, copy=False)
    if x.shape[0] < y.shape[0]:
        x, y = y, x
    pos = np.searchsorted(x, y)
    pos += np.arange(y.shape[0], dtype=pos.dtype)
    out = np.empty(x.shape[0] + y.shape[0], dtype=np.int64)
    rest = np.ones(out.shape[0], dtype=bool)
    rest[pos] = False
    out[pos] = y
    out[rest] = x
    return out


def _bitmap_pays(ext: int | None, nq: int, runs: Sequence[np.ndarray]) -> bool:
    """Whether testing `nq` queries against the sorted key arrays `runs` (keys in [0, ext)) is cheaper with a
    bitmap (a scatter of every run key, zeroing ext bytes, a gather per query) than with binary searches
    (about log2(len(run)) steps per query and run)."""
    nr = sum(int(r.shape[0]) for r in runs)
    return _use_bitmap(ext, nq + nr) and nr + ext // 16 <= 2 * nq * len(runs) * max(nr, 2).bit_length()


def _member_any(runs: Sequence[np.ndarray], queries: np.ndarray, ext: int | None = None) -> np.ndarray:
    """Boolean mask: queries[i] in any of the sorted key arrays `runs` (all keys in [0, ext) when `ext` is
    given: then many queries against a small key range are tested with a bitmap, which beats binary search by
    10x or more when it is built for enough queries)."""
    if queries.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    if _bitmap_pays(ext, queries.shape[0], runs):
        return _bitmap(ext, *runs)[queries]
    mask = np.zeros(queries.shape[0], dtype=bool)
    for run in runs:
        mask |= _member(run, queries)
    return mask


def _member(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Boolean mask: queries[i] in sorted_keys (vectorised binary search)."""
    if sorted_keys.shape[0] == 0 or queries.shape[0] == 0:
        return np.zeros(queries.shape[0], dtype=bool)
    idx = np.searchsorted(sorted_keys, queries)
    np.minimum(idx, sorted_keys.shape[0] - 1, out=idx)
    return sorted_keys[idx] == queries


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


# ----------------------------------------------------------------------------------------------------------
# Conjunctive queries
# ----------------------------------------------------------------------------------------------------------


class _Table:
    """Intermediate result: unique rows over distinct variables; `sorted` if in lexicographic order; `keys`,
    when known, the rows' (sorted) int64 keys under the radices `sizes` of `vars`. Given keys and sizes, the
    rows are decoded on first use (a join's result that only becomes a Relation may never need them)."""

    __slots__ = ("_cols", "keys", "vars", "sorted", "distinct", "_sizes")

    def __init__(
        self,
        cols: np.ndarray | None,
        keys: np.ndarray | None,
        vars: tuple[str, ...],
        sorted: bool,
        sizes: Sequence[int] | None = None,
    ) -> None:
        self._cols = cols
        self.keys = keys
        self.vars = vars
        self.sorted = sorted
        self.distinct: dict[str, int] = {}
        self._sizes = sizes

    @property
    def cols(self) -> np.ndarray:
        if self._cols is None:
            self._cols = _decode(self.keys, self._sizes)
        return self._cols

    def __len__(self) -> int:
        return int((self._cols if self._cols is not None else self.keys).shape[0])


class _Query:
    """State shared by the steps of one `join_project` call: radices and variable priorities."""

    def __init__(self, radix: dict[str, int], prio: dict[str, int]) -> None:
        self.radix = radix
        self.prio = prio

    def sizes(self, vs: Iterable[str]) -> list[int]:
        return [self.radix[v] for v in vs]

    def key(self, t: _Table, vs: Sequence[str]) -> np.ndarray | None:
        """int64 key of the columns `vs` of `t`, or None if their radix product overflows."""
        if not _fits(self.sizes(vs)):
            return None
        idx = [t.vars.index(v) for v in vs]
        return _encode(t.cols[:, idx], self.sizes(vs))

    def distinct(self, t: _Table, v: str) -> int:
        """Number of distinct values of variable `v` in `t` (cached)."""
        d = t.distinct.get(v)
        if d is None:
            p = t.vars.index(v)
            col = t.cols[:, p]
            n = len(t)
            if n == 0:
                d = 0
            elif p == 0 and t.sorted:
                d = 1 + int(np.count_nonzero(col[1:] != col[:-1]))
            elif self.radix[v] <= 4 * n + 1024:
                d = int(np.count_nonzero(np.bincount(col, minlength=self.radix[v])))
            else:
                d = int(_sorted_unique(col).shape[0])
            t.distinct[v] = d
        return d

    def project(self, t: _Table, keep: set[str]) -> _Table:
        """Project `t` onto its variables in `keep` (exists), deduplicating."""
        if all(v in keep for v in t.vars):
            return t
        kept = [v for v in t.vars if v in keep]
        k = len(kept)
        if t.sorted and all(t.vars[j] == kept[j] for j in range(k)):
            # a prefix of sorted rows: duplicates are adjacent
            c = t.cols[:, :k]
            n = c.shape[0]
            if n > 1:
                mask = np.empty(n, dtype=bool)
                mask[0] = True
                np.any(c[1:] != c[:-1], axis=1, out=mask[1:])
                c = np.compress(mask, c, axis=0)
            return _Table(np.ascontiguousarray(c), None, tuple(kept), True)
        kept.sort(key=self.prio.__getitem__)
        idx = [t.vars.index(v) for v in kept]
        return _Table(*_unique_rows(t.cols[:, idx], self.sizes(kept)), tuple(kept), True)

    def estimate(self, a: _Table, b: _Table) -> tuple[int, float]:
        """(0 if the tables share a variable else 1, estimated join size)."""
        shared = [v for v in a.vars if v in b.vars]
        na, nb = len(a), len(b)
        if not shared:
            return 1, float(na) * nb
        da = min(na, int(np.prod([float(self.distinct(a, v)) for v in shared])))
        db = min(nb, int(np.prod([float(self.distinct(b, v)) for v in shared])))
        return 0, float(na) * nb / max(da, db, 1)

    def join(self, a: _Table, b: _Table, needed: set[str]) -> _Table:
        """Natural join of `a` and `b`, projected onto the variables in `needed` plus nothing else."""
        a = self.project(a, needed | set(b.vars))
        b = self.project(b, needed | set(a.vars))
        shared = [v for v in a.vars if v in b.vars]
        if not shared:
            return self._cross(a, b)
        # shared variables in priority order (keys of the sparse path's inner index, too)
        shared.sort(key=self.prio.__getitem__)
        ka, kb = self.key(a, shared), self.key(b, shared)
        if ka is None or kb is None:
            ia = [a.vars.index(v) for v in shared]
            ib = [b.vars.index(v) for v in shared]
            ka, kb = _rank_rows(a.cols[:, ia], b.cols[:, ib])
            kext = len(a) + len(b)
        else:
            kext = _radix_product(self.sizes(shared))
        sorted_a, sorted_b = _is_nondecreasing(ka), _is_nondecreasing(kb)
        # build side (sorted / searched into): one already sorted by the key, else the smaller one
        if sorted_b and not sorted_a:
            swap = False
        elif sorted_a and not sorted_b:
            swap = True
        else:
            swap = len(a) < len(b)
        if swap:
            a, b, ka, kb, sorted_b = b, a, kb, ka, sorted_a
        order = None if sorted_b else np.argsort(kb, kind="stable")
        if kext <= 2 * (len(a) + len(b)) + 65536:
            # small key range: run start and length of every key value by counting (no binary search)
            counts = np.bincount(kb, minlength=kext)
            starts = np.cumsum(counts)
            starts -= counts
            lo, cnt = starts[ka], counts[ka]
        else:
            kbs = kb if order is None else kb[order]
            lo = np.searchsorted(kbs, ka, side="left")
            cnt = np.searchsorted(kbs, ka, side="right") - lo
        total = int(cnt.sum())
        drop = [v for v in shared if v not in needed]
        if (
            total >= _SPARSE_MIN_PAIRS
            and total >= _SPARSE_RATIO * (len(a) + len(b))
            and len(drop) == len(shared)
        ):
            res = self._sparse(a, b, shared, ka, kb, kext, total)
            if res is not None:
                return res
        # expand the matching pairs: probe row i meets build rows order[lo[i] : lo[i] + cnt[i]]
        ip = np.repeat(np.arange(len(a), dtype=np.int64), cnt)
        jb = np.arange(total, dtype=np.int64)
        jb += np.repeat(lo - (np.cumsum(cnt) - cnt), cnt)
        if order is not None:
            jb = order[jb]
        out_vars = [v for v in a.vars if v in needed] + [v for v in b.vars if v not in shared]
        cols = np.empty((total, len(out_vars)), dtype=np.int64)
        for j, v in enumerate(out_vars):
            if v in a.vars:
                cols[:, j] = a.cols[ip, a.vars.index(v)]
            else:
                cols[:, j] = b.cols[jb, b.vars.index(v)]
        if drop:
            perm = sorted(range(len(out_vars)), key=lambda j: self.prio[out_vars[j]])
            out_vars = [out_vars[j] for j in perm]
            return _Table(*_unique_rows(cols[:, perm], self.sizes(out_vars)), tuple(out_vars), True)
        # no projection: pairs of unique rows give unique rows, in order when both inputs were in order
        return _Table(cols, None, tuple(out_vars), a.sorted and b.sorted)

    def _cross(self, a: _Table, b: _Table) -> _Table:
        if b.vars and (not a.vars or self.prio[b.vars[0]] < self.prio[a.vars[0]]):
            a, b = b, a
        na, nb = len(a), len(b)
        cols = np.concatenate([np.repeat(a.cols, nb, axis=0), np.tile(b.cols, (na, 1))], axis=1)
        return _Table(cols, None, a.vars + b.vars, a.sorted and b.sorted)

    def _group(
        self, t: _Table, vs: Sequence[str], limit: int
    ) -> tuple[np.ndarray, int, np.ndarray | None] | None:
        """Encode the columns `vs` of `t` as one index: (index, extent, decoded values per index or None)."""
        sizes = self.sizes(vs)
        if not _fits(sizes):
            return None
        key = self.key(t, vs)
        ext = _radix_product(sizes)
        if ext <= limit:
            return key, ext, None
        uniq, inv = _unique_inverse(key)
        return inv, int(uniq.shape[0]), _decode(uniq, sizes)

    def _sparse(
        self, a: _Table, b: _Table, shared: list[str], sa: np.ndarray, sb: np.ndarray, inner: int, total: int
    ) -> _Table | None:
        """A(ra, s) B(s, rb) -> (ra, rb) by a matrix product, given the shared keys `sa`, `sb` (values in
        [0, inner)) and the number of matching pairs `total`; None if the row or column indices do not fit
        in int64.

        The product is CSR x CSR (its entries put in order by a bitmap scan when the result's cells are few,
        else by scipy's per-row sort), or, when the estimated cost of a product with one dense Boolean factor
        is below `_DENSE_RATIO` times `total`, dense x CSR or CSR x dense (see `_dense_left_product`). When
        the row and column indices are plain encodings of (ra) and (rb), the result's keys are kept and its
        rows are decoded only if needed."""
        ra = [v for v in a.vars if v not in shared]
        rb = [v for v in b.vars if v not in shared]
        ra.sort(key=self.prio.__getitem__)
        rb.sort(key=self.prio.__getitem__)
        if rb and (not ra or self.prio[rb[0]] < self.prio[ra[0]]):
            a, b, ra, rb, sa, sb = b, a, rb, ra, sb, sa
        na, nb = len(a), len(b)
        rows = self._group(a, ra, 16 * na + 4096)
        cols = self._group(b, rb, 16 * nb + 4096)
        if rows is None or cols is None:
            return None
        if inner > 16 * (na + nb) + 4096:
            uniq, inv = _unique_inverse(np.concatenate([sa, sb]))
            sa, sb, inner = inv[:na], inv[na:], int(uniq.shape[0])
        (r, nrow, rvals), (c, ncol, cvals) = rows, cols
        # Cost, in cells touched, of a product with one dense factor: zero the dense factor and scatter its
        # entries, one (Boolean) axpy of a dense row per entry of the sparse factor, one scan of the result.
        cost_a = nrow * inner + nb * nrow + nrow * ncol  # A dense, B sparse
        cost_b = inner * ncol + na * ncol + nrow * ncol  # A sparse, B dense
        use_a = cost_a <= cost_b or nrow * ncol > _DENSE_MAX_CELLS
        if (cost_a if use_a else cost_b) <= _DENSE_RATIO * total:
            if use_a:
                keys = _dense_left_product(r, sa, sb, c, nrow, inner, ncol)
            else:
                keys = _dense_right_product(r, sa, sb, c, nrow, inner, ncol)
        else:
            prod = _csr(r, sa, nrow, inner) @ _csr(sb, c, inner, ncol)
            out_r = np.repeat(np.arange(nrow, dtype=np.int64), np.diff(prod.indptr))
            if _use_bitmap(nrow * ncol, prod.nnz):
                # the entries' keys (row-major cells) are distinct: sorting them is a scatter and a scan
                keys = out_r * ncol
                keys += prod.indices
                keys = np.flatnonzero(_bitmap(nrow * ncol, keys))
            else:
                prod.sort_indices()
                out_c = prod.indices.astype(np.int64, copy=False)
                keys = None
                if rvals is None and cvals is None and nrow * ncol <= _KEY_LIMIT:
                    keys = out_r * ncol + out_c
        if keys is not None:
            if rvals is None and cvals is None:
                # the keys are the output rows' keys under the radices of (ra, rb)
                return _Table(None, keys, tuple(ra + rb), True, self.sizes(ra + rb))
            out_r, out_c = np.divmod(keys, ncol)
        parts = [
            _decode(out_r, self.sizes(ra)) if rvals is None else rvals[out_r],
            _decode(out_c, self.sizes(rb)) if cvals is None else cvals[out_c],
        ]
        return _Table(np.concatenate(parts, axis=1), None, tuple(ra + rb), True)


def _dense_left_product(
    r: np.ndarray, sa: np.ndarray, sb: np.ndarray, c: np.ndarray, nrow: int, inner: int, ncol: int
) -> np.ndarray:
    """Sorted keys ``i * ncol + k`` of the nonzero cells of the Boolean product A @ B, where A (nrow, inner)
    has entries (r, sa) and B (inner, ncol) entries (sb, c), computed with A dense and B sparse.

    The rows of A are taken in blocks of `block` rows: a block's transpose A^T (inner, block) is filled
    densely, the block of the product's transpose is ``B^T @ A^T`` (scipy ORs a dense row of A^T into the
    result per entry of B, vectorised along the block), and its transpose (block, ncol) is scanned for
    nonzero cells, which come out in key order. Blocks of ~256 KiB keep the working set in cache; a single
    product over all rows is 3-4x slower once nrow * inner exceeds the cache (2,000-10,000 nodes).
    """
    if not _is_nondecreasing(r):
        order = np.argsort(r, kind="stable")
        r, sa = r[order], sa[order]
    bt = _csr(c, sb, ncol, inner, dtype=bool)
    block = max(8, min(1024, _DENSE_BLOCK_BYTES // max(inner + ncol, 1)))
    bounds = np.searchsorted(r, np.arange(0, nrow + block, block, dtype=np.int64))
    out = []
    for k in range(bounds.shape[0] - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        if lo == hi:
            continue
        r0 = k * block
        at = np.zeros(inner * block, dtype=bool)
        at[sa[lo:hi] * block + (r[lo:hi] - r0)] = True
        prod_t = bt @ at.reshape(inner, block)  # (ncol, block)
        keys = np.flatnonzero(np.asarray(prod_t).T)
        keys += r0 * ncol
        out.append(keys)
    return np.concatenate(out).astype(np.int64, copy=False) if out else np.zeros(0, dtype=np.int64)


def _dense_right_product(
    r: np.ndarray, sa: np.ndarray, sb: np.ndarray, c: np.ndarray, nrow: int, inner: int, ncol: int
) -> np.ndarray:
    """As `_dense_left_product`, with A sparse and B dense: ``A @ B`` ORs a dense row of B into a row of the
    (nrow, ncol) result per entry of A, and the result is scanned in key order."""
    b = np.zeros(inner * ncol, dtype=bool)
    b[sb * ncol + c] = True
    prod = _csr(r, sa, nrow, inner, dtype=bool) @ b.reshape(inner, ncol)
    return np.flatnonzero(np.asarray(prod)).astype(np.int64, copy=False)


def _csr(row: np.ndarray, col: np.ndarray, nrow: int, ncol: int, dtype: type = np.float32) -> sp.csr_matrix:
    """0/1 CSR matrix with entries at the (unique) pairs (row[i], col[i]); with dtype bool, products of such
    matrices (also with dense Boolean arrays) are Boolean: scipy adds bools with logical or."""
    if not _is_nondecreasing(row):
        order = np.argsort(row, kind="stable")
        row, col = row[order], col[order]
    indptr = np.zeros(nrow + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=nrow), out=indptr[1:])
    idx_dtype = np.int32 if max(nrow, ncol, row.shape[0]) < 2**31 - 1 else np.int64
    data = np.ones(row.shape[0], dtype=dtype)
    return sp.csr_matrix(
        (data, col.astype(idx_dtype, copy=False), indptr.astype(idx_dtype, copy=False)), shape=(nrow, ncol)
    )


def join_project(
    operands: Sequence[tuple[Relation, tuple[str, ...]]],
    out_vars: tuple[str, ...],
    var_sizes: dict[str, int],
    order: Sequence[tuple[int, ...]] | None = None,
) -> Relation:
    """Evaluate the conjunctive query ``out_vars :- R1(vars1), R2(vars2), ...`` (Boolean semantics).

    The result is the natural join of the operands on shared variable names projected onto `out_vars`
    (duplicates removed); its shape is ``var_sizes[v]`` for each head variable (the smallest extent of the
    positions the variable occupies when `var_sizes` lacks it). A variable repeated within one operand
    (``R(x, x)``) selects rows whose components agree; a variable repeated in `out_vars` repeats the column.
    `order` is an optional contraction path in opt_einsum's linear format: each pair of positions in the
    current operand list is removed and their join appended at the end (a single position just moves the
    operand); when it is None (or runs out) pairs are picked greedily: among pairs sharing a variable the
    smallest estimated output ``|A||B| / max distinct shared key``, a cross product only when none share.
    """
    operands = list(operands)
    out_vars = tuple(out_vars)
    for rel, vs in operands:
        if not isinstance(rel, Relation):
            raise TypeError(f"operand is not a Relation: {type(rel).__name__}")
        if len(vs) != rel.arity:
            raise ValueError(f"operand of arity {rel.arity} given {len(vs)} variables {tuple(vs)}")
    radix: dict[str, int] = {}
    prio: dict[str, int] = {}
    for v in out_vars:
        prio.setdefault(v, len(prio))
    for rel, vs in operands:
        for p, v in enumerate(vs):
            radix[v] = min(radix.get(v, rel.shape[p]), rel.shape[p])
            prio.setdefault(v, len(prio))
    missing = [v for v in out_vars if v not in radix]
    if missing:
        raise ValueError(f"head variables {missing} occur in no operand")
    out_shape = tuple(int(var_sizes[v]) if v in var_sizes else radix[v] for v in out_vars)
    if any(len(rel) == 0 for rel, _ in operands):
        return Relation.empty(len(out_vars), out_shape)
    if not operands:  # the empty conjunction is true: the one empty tuple
        return Relation._make((), cols=np.zeros((1, 0), dtype=np.int64))
    q = _Query(radix, prio)

    tables = [_operand_table(rel, tuple(vs), radix) for rel, vs in operands]
    for i in range(len(tables)):
        needed = set(out_vars).union(*(t.vars for j, t in enumerate(tables) if j != i))
        tables[i] = q.project(tables[i], needed)
        if len(tables[i]) == 0:
            return Relation.empty(len(out_vars), out_shape)

    steps = [tuple(int(p) for p in s) for s in order] if order is not None else []
    steps.reverse()
    while len(tables) > 1 or steps:
        if steps:
            step = steps.pop()
            if len(step) not in (1, 2) or len(set(step)) != len(step):
                raise ValueError(f"bad contraction step {step}")
            if any(not 0 <= p < len(tables) for p in step):
                raise ValueError(f"contraction step {step} out of range for {len(tables)} operands")
        else:
            step = (0, 1) if len(tables) == 2 else _greedy_pair(q, tables)
        picked = [tables[p] for p in step]
        tables = [t for k, t in enumerate(tables) if k not in step]
        needed = set(out_vars).union(*(t.vars for t in tables))
        if len(picked) == 1:
            res = q.project(picked[0], needed)
        else:
            res = q.join(picked[0], picked[1], needed)
        if len(res) == 0:
            return Relation.empty(len(out_vars), out_shape)
        tables.append(res)
    return _finish(q.project(tables[0], set(out_vars)), out_vars, out_shape, q)


def _operand_table(rel: Relation, vs: tuple[str, ...], radix: dict[str, int]) -> _Table:
    """Table of one operand: rows with agreeing components for repeated variables, one column per variable,
    and values below the variable's radix (the smallest extent of its positions: a larger value cannot match
    the operand with that extent, and the keys of joins and projections assume it does not occur)."""
    cols = rel.cols
    first: dict[str, int] = {}
    mask = None
    for p, v in enumerate(vs):
        if rel.shape[p] > radix[v]:
            inside = cols[:, p] < radix[v]
            mask = inside if mask is None else mask & inside
        if v in first:
            eq = cols[:, first[v]] == cols[:, p]
            mask = eq if mask is None else mask & eq
        else:
            first[v] = p
    if mask is None:
        return _Table(cols, None, vs, True)
    # dropping rows, or a column equal to an earlier one, keeps rows sorted and unique
    cols = np.ascontiguousarray(np.compress(mask, cols, axis=0)[:, list(first.values())])
    return _Table(cols, None, tuple(first), True)


def _greedy_pair(q: _Query, tables: list[_Table]) -> tuple[int, int]:
    best, best_cost = (0, 1), None
    for i in range(len(tables)):
        for j in range(i + 1, len(tables)):
            cost = q.estimate(tables[i], tables[j])
            if best_cost is None or cost < best_cost:
                best, best_cost = (i, j), cost
    return best


def _finish(t: _Table, out_vars: tuple[str, ...], out_shape: tuple[int, ...], q: _Query) -> Relation:
    """Relation of the head: columns in `out_vars` order (repeats allowed), sorted."""
    idx = [t.vars.index(v) for v in out_vars]
    if t.keys is not None and idx == list(range(len(t.vars))) and tuple(q.sizes(t.vars)) == out_shape:
        # the table's keys are the head's keys (and its values lie within the radices, hence the shape)
        return Relation._make(out_shape, cols=t._cols, keys=t.keys)
    firsts = list(dict.fromkeys(idx))
    in_order = t.sorted and firsts == list(range(len(t.vars)))
    cols = t.cols if idx == list(range(len(t.vars))) else t.cols[:, idx]
    if len(cols) and out_shape:
        hi = _col_max(cols)
        bad = np.flatnonzero(hi >= np.asarray(out_shape, dtype=np.int64))
        if bad.size:
            p = int(bad[0])
            raise ValueError(
                f"variable {out_vars[p]!r} takes value {int(hi[p])}, outside var_sizes extent {out_shape[p]}"
            )
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    if not _fits(out_shape):
        return Relation._make(out_shape, cols=cols if in_order else _lex_unique(cols))
    keys = _encode(cols, out_shape)
    if not in_order:
        perm = np.argsort(keys)
        keys, cols = keys[perm], np.take(cols, perm, axis=0)
    return Relation._make(out_shape, cols=cols, keys=keys)
