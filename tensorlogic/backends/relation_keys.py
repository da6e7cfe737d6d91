"""Key encoding and sorted-key set helpers of the relational engine (see `tensorlogic.backends.relations`).

A row of integers whose positions have extents ``sizes`` is encoded as one mixed-radix int64 key (first
position most significant) when ``prod(sizes) <= 2**62``, so that an array of keys is sorted exactly when the
rows are. This module holds that encoding and its inverse (`_encode`, `_decode`), and the vectorised helpers
built on sorted key arrays: sorted-unique values and rows (`_sorted_unique`, `_unique_rows`, with the
``np.lexsort`` / ``np.unique(axis=0)`` fallbacks `_lex_unique` and `_rank_rows` for shapes too large for an
int64 key), merges of disjoint sorted runs (`_merge_disjoint`) and membership tests (`_member`,
`_member_any`).

Dense regime: when the key range ``prod(shape)`` is small next to the number of keys involved (at most
`_BITMAP_RATIO` times it, e.g. a closure that covers a good part of all node pairs), sorting, merging and
membership go through a Boolean bitmap of ``prod(shape)`` cells instead (a scatter, a gather, a scan: 10x or
more faster than sorting or binary search); `_use_bitmap` and `_bitmap_pays` decide when.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

import numpy as np

_KEY_LIMIT = 1 << 62
# Set operations on keys in a range [0, ext) with ext <= _BITMAP_RATIO * (number of keys involved) + _BITMAP_MIN
# use a Boolean bitmap of length ext (a scatter, a gather or a scan) instead of binary searches and merges.
_BITMAP_RATIO = 16
_BITMAP_MIN = 1 << 12


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


# Sorts of at least this many keys use the compiled radix sort when the kernels are loaded (numpy's sort
# takes about 45 ns a key on the benchmark machine, the radix sort 3-4 ns a key per 11 bits of range).
_RADIX_MIN = 8192


def _radix_sorted(keys: np.ndarray) -> np.ndarray | None:
    """`keys` sorted by `backends.relation_kernels.radix_sort` when that module is loaded already (by the
    chain fast path: this never imports numba) and not disabled (TL_NUMBA=0), the keys are many and
    non-negative int64 and their range needs at most 44 bits; else None."""
    kern = sys.modules.get("tensorlogic.backends.relation_kernels")
    if kern is None or keys.shape[0] < _RADIX_MIN or keys.dtype != np.int64:
        return None
    if os.environ.get("TL_NUMBA", "").strip() == "0":
        return None
    lo, hi = int(keys.min()), int(keys.max())
    if lo < 0 or hi >= 1 << 44:
        return None
    return kern.radix_sort(keys, max(1, hi.bit_length()))


def _sorted_unique(keys: np.ndarray, ext: int | None = None) -> np.ndarray:
    """Sorted distinct values of a 1-d int64 array (sort + adjacent compare; numpy 2's hash-based
    `np.unique` is an order of magnitude slower on large int64 arrays), or, when the keys are known to lie in
    a small range [0, ext), a scatter into a bitmap and a scan of it."""
    if _use_bitmap(ext, keys.shape[0]):
        return np.flatnonzero(_bitmap(ext, keys)).astype(np.int64, copy=False)
    k = _radix_sorted(keys)
    if k is None:
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
