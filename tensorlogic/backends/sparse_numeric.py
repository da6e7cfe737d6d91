"""Sparse numeric tensors: weighted relations and sparse numeric data as COO coordinates with float values.

A weighted relation (`W = "edges.tsv"` with a weight column) or numeric data declared `sparse` is a
`SparseTensor`: an int64 array of coordinates (n, arity) whose rows are sorted lexicographically and unique
(like `Relation.cols`), one float64 value per row (never 0: duplicates are summed and zero sums dropped),
and, when the product of the extents fits in 62 bits, one mixed-radix int64 key per row (first position
most significant, so the keys are sorted exactly when the rows are). A 2-index tensor gives a scipy CSR
matrix (made once and cached; its transpose is the CSC view) for sparse matrix products, its support (the
nonzero cells) is a `Relation` that shares its arrays, and `lookup` reads values at given coordinates with
binary searches. Values are immutable: share them freely.

`choose_form` is the storage decision shared by the executor (at load time) and the planner (`tl plan`):
sparse when declared `sparse`, dense when declared `dense`, otherwise sparse exactly when the COO bytes are
at most a quarter of the dense array's and the dense array is larger than 64 KiB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .relation_keys import _col_max, _col_min, _encode, _fits, _rank_rows
from .relations import Relation

__all__ = ["SparseTensor", "choose_form", "coo_bytes", "data_form", "dense_bytes", "matricize"]

SPARSE_RATIO = 4  # sparse when the COO bytes are at most 1/SPARSE_RATIO of the dense array's
DENSE_BELOW = 64 * 1024  # dense arrays of at most this many bytes stay dense: calls cost more than cells


def dense_bytes(shape: tuple[int, ...]) -> int:
    """Bytes of the float64 array of `shape` (a Python int: may exceed int64 for absurd shapes)."""
    n = 8
    for s in shape:
        n *= int(s)
    return n


def coo_bytes(entries: int, arity: int) -> int:
    """Bytes of `entries` COO entries: int64 coordinates, a float64 value and an int64 key each."""
    return int(entries) * (8 * arity + 16)


def choose_form(entries: int, shape: tuple[int, ...], declared: bool | None) -> str:
    """'sparse' or 'dense' for numeric data of `entries` (nonzero) cells in a tensor of `shape`; `declared` is
    the tensor's `sparse` (True) / `dense` (False) declaration, or None."""
    if declared is not None:
        return "sparse" if declared else "dense"
    full = dense_bytes(shape)
    if full <= DENSE_BELOW or len(shape) == 0:
        return "dense"
    return "sparse" if coo_bytes(entries, len(shape)) * SPARSE_RATIO <= full else "dense"


def data_form(t: Any, data: Any) -> tuple[str, int, int]:
    """(form, entries, bytes) a tensor's data is stored in: 'dense', 'relation' or 'sparse COO'. `t` is the
    analysis' TensorInfo, `data` its array or tuple set (ids and optional weights). A tensor that equations
    also write, or that has a virtual index, keeps numeric data dense; an array is stored sparse only when
    declared `sparse` (it arrived dense); tuples follow `choose_form`. Boolean tuples: a relation unless
    declared dense or larger than the dense array (as the executor decides)."""
    shape = tuple(t.storage_shape)
    full = dense_bytes(shape)
    keep_dense = t.has_equations or t.virtual_axis is not None
    if isinstance(data, np.ndarray):
        if t.sparse and not keep_dense and not t.boolean:
            n = int(np.count_nonzero(data))
            return "sparse COO", n, coo_bytes(n, len(shape))
        return "dense", int(data.size), full
    n = len(data.ids)
    if data.weights is None:
        rel = n * 8 * (len(shape) + 1)
        if t.sparse is False or (t.sparse is None and rel >= full):
            return "dense", n, full
        return "relation", n, rel
    if not keep_dense and choose_form(n, shape, t.sparse) == "sparse":
        return "sparse COO", n, coo_bytes(n, len(shape))
    return "dense", n, full


def matricize(coords: np.ndarray, values: np.ndarray, shape: tuple[int, ...], rows: tuple[int, ...],
              cols: tuple[int, ...]) -> Any:
    """COO entries as a scipy CSR matrix: row = the flat (row-major) index of the positions `rows`, column =
    that of `cols`; entries that meet in one cell (positions in neither, which are summed) are added."""
    import scipy.sparse as sp

    def flat(pos: tuple[int, ...]) -> tuple[np.ndarray, int]:
        if not pos:
            return np.zeros(len(values), np.int64), 1
        dims = tuple(int(shape[p]) for p in pos)
        return np.ravel_multi_index(tuple(coords[:, p] for p in pos), dims), int(np.prod(dims, dtype=np.int64))

    (r, nr), (c, nc) = flat(rows), flat(cols)
    return sp.csr_matrix((values, (r, c)), shape=(nr, nc))


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


class SparseTensor:
    """A numeric tensor stored as sorted unique COO coordinates and their nonzero float64 values."""

    __slots__ = ("shape", "coords", "values", "_keys", "_csr", "_support", "_mats")

    def __init__(self, coords: np.ndarray, values: np.ndarray, shape: tuple[int, ...],
                 keys: np.ndarray | None = None) -> None:
        """Trusted constructor: `coords` sorted unique rows inside `shape`, `values` nonzero, `keys` their
        encoding (or None). Use `from_coo` or `from_dense` for anything else."""
        self.shape = tuple(int(s) for s in shape)
        self.coords = _readonly(np.ascontiguousarray(coords, dtype=np.int64))
        self.values = _readonly(np.ascontiguousarray(values, dtype=np.float64))
        if keys is None and _fits(self.shape):
            keys = _encode(self.coords, self.shape)
        self._keys = None if keys is None else _readonly(keys)
        self._csr: Any = None
        self._mats: dict[tuple, Any] = {}  # matricised views, per (row positions, column positions)
        self._support: Relation | None = None

    # -- constructors ------------------------------------------------------------------------------------

    @staticmethod
    def from_coo(ids: np.ndarray, weights: np.ndarray, shape: tuple[int, ...]) -> SparseTensor:
        """The tensor with `weights[k]` added at cell `ids[k]` (duplicates summed, as `np.add.at` would)."""
        shape = tuple(int(s) for s in shape)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1, len(shape))
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if ids.shape[0] != w.shape[0]:
            raise ValueError(f"{ids.shape[0]} coordinates but {w.shape[0]} values")
        if ids.shape[0] and len(shape):
            bad = np.flatnonzero((_col_min(ids) < 0) | (_col_max(ids) >= np.asarray(shape, dtype=np.int64)))
            if bad.size:
                raise ValueError(f"position {int(bad[0])} holds values outside [0, {shape[int(bad[0])]})")
        if _fits(shape):
            keys = _encode(ids, shape)
            order = np.argsort(keys)  # (duplicates are summed: no need for a stable sort)
            keys, w = keys[order], w[order]
            starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))) if len(keys) else keys
            if len(starts) < len(keys):
                keys, w = keys[starts], np.add.reduceat(w, starts)
                order = order[starts]
            coords = ids[order]
        else:
            order = np.lexsort(ids.T[::-1]) if len(shape) else np.arange(len(w))
            ids, w = ids[order], w[order]
            new = np.ones(len(w), dtype=bool)
            if len(w) > 1:
                new[1:] = np.any(ids[1:] != ids[:-1], axis=1)
            starts = np.flatnonzero(new)
            coords, w, keys = ids[starts], (np.add.reduceat(w, starts) if len(w) else w), None
        nz = w != 0
        if not nz.all():
            coords, w = coords[nz], w[nz]
            keys = None if keys is None else keys[nz]
        return SparseTensor(coords, w, shape, keys)

    @staticmethod
    def from_dense(arr: np.ndarray) -> SparseTensor:
        """The nonzero cells of a dense array."""
        arr = np.asarray(arr, dtype=np.float64)
        if arr.ndim == 0:
            flat = arr.reshape(1)
            return SparseTensor(np.zeros((int(flat[0] != 0), 0), np.int64), flat[flat != 0], ())
        coords = np.argwhere(arr)  # C order: sorted and unique
        return SparseTensor(coords, arr[tuple(coords.T)], arr.shape)

    # -- views -------------------------------------------------------------------------------------------

    @property
    def arity(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes held: coordinates, values, keys and the cached CSR matrices (an int, like `ndarray.nbytes`)."""
        n = self.coords.nbytes + self.values.nbytes + (0 if self._keys is None else self._keys.nbytes)
        for m in ([self._csr] if self._csr is not None else []) + list(self._mats.values()):
            n += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        return int(n)

    @property
    def dense_nbytes(self) -> int:
        return dense_bytes(self.shape)

    def __repr__(self) -> str:
        return f"SparseTensor(shape={self.shape}, nnz={len(self)})"

    def copy(self) -> SparseTensor:
        """Itself: a sparse tensor is immutable."""
        return self

    def to_dense(self) -> np.ndarray:
        """The float64 array of `shape`."""
        out = np.zeros(self.shape)
        if len(self):
            if self._keys is not None:
                out.reshape(-1)[self._keys] = self.values
            else:
                out[tuple(self.coords.T)] = self.values
        return out

    def csr(self) -> Any:
        """A 2-index tensor as a scipy CSR matrix (built once without sorting: the rows are sorted)."""
        if self.arity != 2:
            raise ValueError(f"a CSR matrix needs 2 indices, this tensor has {self.arity}")
        if self._csr is None:
            import scipy.sparse as sp

            small = max(self.shape + (len(self),)) < 2**31
            idx = np.int32 if small else np.int64
            indptr = np.searchsorted(self.coords[:, 0], np.arange(self.shape[0] + 1)).astype(idx)
            self._csr = sp.csr_matrix((self.values, self.coords[:, 1].astype(idx), indptr), shape=self.shape)
        return self._csr

    def matricize(self, rows: tuple[int, ...], cols: tuple[int, ...]) -> Any:
        """The tensor as a CSR matrix whose rows are the cells of the positions `rows` and whose columns those
        of `cols` (row-major); positions in neither are summed. Made once per (rows, cols)."""
        key = (rows, cols)
        if key not in self._mats:
            self._mats[key] = matricize(self.coords, self.values, self.shape, rows, cols)
        return self._mats[key]

    def support(self) -> Relation:
        """The relation of the nonzero cells (shares the coordinates and keys)."""
        if self._support is None:
            self._support = Relation._make(self.shape, cols=self.coords, keys=self._keys)
        return self._support

    def lookup(self, rows: np.ndarray) -> np.ndarray:
        """The values at the cells `rows` (m, arity), 0 where the tensor has no entry."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1, self.arity)
        out = np.zeros(rows.shape[0])
        if not len(self) or not rows.shape[0]:
            return out
        if self.arity == 0:
            out[:] = self.values[0]
            return out
        inside = np.all((rows >= 0) & (rows < np.asarray(self.shape, dtype=np.int64)), axis=1)
        q = rows if inside.all() else rows[inside]
        if self._keys is not None:
            mine, theirs = self._keys, _encode(q, self.shape)
        else:  # keys do not fit: dense ranks of rows, consistent across both (order preserved)
            mine, theirs = _rank_rows(self.coords, q)
        at = np.minimum(np.searchsorted(mine, theirs), len(mine) - 1)
        got = np.where(mine[at] == theirs, self.values[at], 0.0)
        if inside.all():
            return got
        out[inside] = got
        return out
