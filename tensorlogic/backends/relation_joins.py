"""Conjunctive queries over `Relation` values (see `tensorlogic.backends.relations`).

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

from .relation_keys import (
    _KEY_LIMIT,
    _bitmap,
    _col_max,
    _decode,
    _encode,
    _fits,
    _is_nondecreasing,
    _lex_unique,
    _radix_product,
    _rank_rows,
    _sorted_unique,
    _unique_inverse,
    _unique_rows,
    _use_bitmap,
)
from .relations import Relation

__all__ = ["join_project"]

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
    record: list[tuple[int, ...]] | None = None,
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
    `record`, a list, receives the steps taken (in `order`'s format) when the join runs to its end, so that
    a caller can plan once and pass them as `order` to later calls over operands of the same form (a
    semi-naive fixpoint plans each rule variant in its first delta round).
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
    taken: list[tuple[int, ...]] = []
    while len(tables) > 1 or steps:
        if steps:
            step = steps.pop()
            if len(step) not in (1, 2) or len(set(step)) != len(step):
                raise ValueError(f"bad contraction step {step}")
            if any(not 0 <= p < len(tables) for p in step):
                raise ValueError(f"contraction step {step} out of range for {len(tables)} operands")
        else:
            step = (0, 1) if len(tables) == 2 else _greedy_pair(q, tables)
        taken.append(step)
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
    if record is not None:
        record[:] = taken
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
