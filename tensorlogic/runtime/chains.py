"""The semi-naive fast path for chain rules (see `runtime/seminaive.py`, docs/datalog.md).

A stratum that computes one binary relation R whose recursive rules are linear and whose body atoms form a
path from the head's first variable to its second (`R(x,z) <- R(x,y), E(y,z)`, `R(x,z) <- E(x,y), R(y,z)`,
`SG(x,y) <- E(a,x), SG(a,b), E(b,y)`) runs its rounds without `join_project`: each new pair is extended
along the path through CSR indexes of the other atoms (or, for a large round, by scipy sparse products),
and the known facts are a sorted key array or, once dense enough, a packed bitmap of the key space. Keys
are int32 (the key space has at most 2**31 cells; a larger one with few ids in use runs over their ranks).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..backends.relations import Relation
from ..ir.graph import Stratum
from ..ir.nodes import IVar
from . import chain_kernels
from .chain_kernels import kernel_fixpoint, kernels
from .linearize import Linearization

if TYPE_CHECKING:
    from .executor import Executor

# ----------------------------------------------------------------------------------------------------------
# Chain rules: rounds as index expansions over a membership bitmap
# ----------------------------------------------------------------------------------------------------------

# The fast path needs a key space of at most _BIT_BITMAP_MAX cells (int32 keys, a bitmap of 256 MB at most);
# a bitmap has one byte per cell up to _BYTE_BITMAP_MAX cells, else one bit.
_BYTE_BITMAP_MAX = 1 << 20
_BIT_BITMAP_MAX = 1 << 31
# A round with more new facts than this runs as scipy sparse products instead of index expansions.
_PRODUCT_ROUND = 1 << 17
# ... and switches to a byte-per-cell bitmap (unsorted keys, no grouping) when the key space is at most this.
_BYTE_BITMAP_ROUNDS = 1 << 28
# Known facts are a sorted array until there is one per this many cells of the key space, then a bitmap.
_SPARSE_BITS = 8192
# The name under which a linearized stratum's relation B' (given facts plus exit rules) joins the outside
# relations (no tensor name contains %).
BASE = "%base"


@dataclass
class _Chain:
    """A linear rule `R(v0, vk) <- A1(v0, v1), ..., Ak(v(k-1), vk)` whose atoms form a path from the head's
    first variable to its second, one of them reading R, the others relations computed earlier. A round
    extends each new pair (v(i), v(i+1)) of R to the right through A(i+2), ... and to the left through A(i),
    ..., each step an index expansion through a CSR index (indptr, indices) of the atom."""

    right: list[tuple[np.ndarray, np.ndarray]]  # CSR of A(i+2), ... by their left variable
    left: list[tuple[np.ndarray, np.ndarray]]  # CSR of A(i), A(i-1), ... by their right variable
    flip: bool  # the recursive atom reads R(v(i+1), v(i))
    sizes: list[int]  # extent of each path variable v0..vk
    path: list  # (left, right) columns of each atom along the path (None for the recursive one)
    _mats: list | None = None

    @property
    def mats(self) -> list:
        """scipy CSR matrix of each atom along the path (None for the recursive one), for large rounds: built
        on first use (the compiled kernels never need them)."""
        if self._mats is None:
            self._mats = [None if p is None else _csr_matrix(p[0], p[1], self.sizes[i], self.sizes[i + 1])
                          for i, p in enumerate(self.path)]
        return self._mats


def compact_ids(rel: Relation, delta: Relation, outside: dict[str, Relation]
                ) -> tuple[np.ndarray, Relation, Relation, dict[str, Relation]] | None:
    """When a square binary relation's key space is too large for a bitmap but few ids occur (CA-HepTh: ids
    up to 68,745, 9,877 of them used), the same relations over dense ranks of the ids that occur: (ids,
    relation, delta, outside relations), or None. Ranks preserve order, so sorted keys stay sorted."""
    n = rel.shape[0]
    if rel.shape != (n, n) or any(r.shape != (n, n) for r in outside.values()):
        return None
    ids = np.unique(np.concatenate([rel.cols.ravel(), delta.cols.ravel(), *(r.cols.ravel() for r in outside.values())]))
    m = int(ids.shape[0])
    if not 0 < m * m <= _BIT_BITMAP_MAX:
        return None

    def rank(r: Relation) -> Relation:
        return Relation._make((m, m), cols=np.searchsorted(ids, r.cols))

    return ids, rank(rel), rank(delta), {k: rank(r) for k, r in outside.items()}


def expand_ids(res: Relation, ids: np.ndarray, shape: tuple[int, int]) -> Relation:
    """`res` over ranks back over the original ids (each sorted run stays sorted)."""
    m, n1 = res.shape[1], shape[1]

    kern = chain_kernels.loaded()  # compiled when the kernels are loaded (74.6 million keys: 14 s -> 0.3 s)

    def back(keys: np.ndarray) -> np.ndarray:
        if kern is not None:
            return kern.remap_keys(keys.astype(np.int64, copy=False), m, ids.astype(np.int64, copy=False), n1)
        a, b = np.divmod(keys, m)
        out = ids[a]
        out *= n1
        out += ids[b]
        return out

    runs = res._key_runs()
    return Relation._make(shape, runs=tuple(back(r) for r in runs)) if len(runs) > 1 else Relation._make(
        shape, keys=back(runs[0]))


def _csr_index(r: np.ndarray, c: np.ndarray, nrow: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices): the values `c` listed under each row `r` (int32: chain key spaces are < 2**31)."""
    order = np.argsort(r, kind="stable")
    indptr = np.zeros(nrow + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=nrow), out=indptr[1:])
    return indptr.astype(np.int32), c[order].astype(np.int32)


def chain_rules(ex: Executor, st: Stratum, full: dict[str, Relation], outside: dict[str, Relation],
                bind: dict, lin: Linearization | None = None) -> list[_Chain] | None:
    """The stratum's recursive rules as chains (see `_Chain`), or None when the fast path does not apply: one
    binary relation R whose every recursive rule is a chain, no bindings, and a key space small enough for
    a membership bitmap. With `lin`, its transitivity rules are replaced by the linear rule through the
    relation `outside[BASE]` (B', see `runtime/linearize.py`)."""
    if len(st.tensors) != 1 or bind:
        return None
    name = st.tensors[0]
    shape = full[name].shape
    if len(shape) != 2 or not 0 < shape[0] * shape[1] <= _BIT_BITMAP_MAX:
        return None
    chains = []
    skip = {st.equations[i].id for i in lin.skip} if lin is not None else set()
    for e in st.equations:
        if e.id in skip:
            continue
        form = ex.forms[e.id]
        if not any(a.tensor == name for a in form.atoms):
            continue  # a base rule: evaluated once, in round 1
        if form.compares or form.negated or sum(a.tensor == name for a in form.atoms) != 1:
            return None
        head = [p.expr for p in e.lhs_pos]
        if not all(isinstance(h, IVar) for h in head) or head[0] == head[1]:
            return None
        edges = []
        for a in form.atoms:
            vs = [p.expr for p in a.pos]
            if len(vs) != 2 or not all(isinstance(v, IVar) for v in vs) or vs[0] == vs[1]:
                return None
            edges.append((vs[0].name, vs[1].name, a))
        cur, left, path, sizes, rec, flip = head[0].name, list(edges), [], [shape[0]], -1, False
        while left:
            nxt = [t for t in left if cur in t[:2]]
            if len(nxt) != 1:
                return None
            s, d, a = nxt[0]
            left.remove(nxt[0])
            forward = s == cur
            other = d if forward else s
            rel = full[name] if a.tensor == name else outside[a.tensor]
            n_cur, n_other = (rel.shape[0], rel.shape[1]) if forward else (rel.shape[1], rel.shape[0])
            if n_cur != sizes[-1]:
                return None
            sizes.append(n_other)
            if a.tensor == name:
                rec, flip = len(path), not forward
                path.append(None)
            else:
                c = rel.cols
                path.append((c[:, 0], c[:, 1]) if forward else (c[:, 1], c[:, 0]))
            cur = other
        if cur != head[1].name or sizes[-1] != shape[1]:
            return None
        right = [_csr_index(*path[i], sizes[i]) for i in range(rec + 1, len(path))]
        lefts = [_csr_index(path[i][1], path[i][0], sizes[i + 1]) for i in range(rec - 1, -1, -1)]
        chains.append(_Chain(right, lefts, flip, sizes, path))
    if lin is not None and lin.with_base:
        return _with_base(chains, outside[BASE], lin.side, shape)
    return chains


def _with_base(chains: list[_Chain], base: Relation, side: int, shape: tuple[int, int]) -> list[_Chain] | None:
    """`chains` plus the linear rule through B' that replaces the transitivity rule: R(x,z) <- R(x,y), B'(y,z)
    (side 0) or R(x,z) <- B'(x,y), R(y,z) (side 1); None when R is not square. A chain equal to it already
    there (the left rule R(x,z) <- R(x,y), E(y,z) when B' is E) is not added twice."""
    n = shape[0]
    if shape != (n, n) or base.shape != (n, n):
        return None
    c = base.cols
    if side == 0:
        ch = _Chain([_csr_index(c[:, 0], c[:, 1], n)], [], False, [n, n, n], [None, (c[:, 0], c[:, 1])])
    else:
        ch = _Chain([], [_csr_index(c[:, 1], c[:, 0], n)], False, [n, n, n], [(c[:, 0], c[:, 1]), None])

    def same(a: _Chain) -> bool:
        return (a.flip == ch.flip and len(a.right) == len(ch.right) and len(a.left) == len(ch.left)
                and all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
                        for x, y in zip(a.right + a.left, ch.right + ch.left)))

    return chains if any(same(a) for a in chains) else [*chains, ch]


def _csr_matrix(r: np.ndarray, c: np.ndarray, nrow: int, ncol: int, indptr: np.ndarray | None = None):
    """0/1 float32 CSR matrix with entries (r[i], c[i]) (distinct; `indptr` given: r is sorted, and c is
    already in row order)."""
    import scipy.sparse as sp

    if indptr is None:
        if not (r.shape[0] < 2 or bool(np.all(r[1:] >= r[:-1]))):  # a delta's rows usually come in order
            order = np.argsort(r, kind="stable")
            c = c[order]
        indptr = np.zeros(nrow + 1, dtype=np.int64)
        np.cumsum(np.bincount(r, minlength=nrow), out=indptr[1:])
    idx = np.int32 if max(nrow, ncol, c.shape[0]) < 2**31 - 1 else np.int64
    data = np.ones(c.shape[0], dtype=np.float32)
    return sp.csr_matrix((data, c.astype(idx, copy=False), indptr.astype(idx, copy=False)), shape=(nrow, ncol))


def _product_round(chains: list[_Chain], d0: np.ndarray, d1: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Candidate keys of a large round by sparse matrix products A1 @ ... @ delta @ ... @ Ak (scipy: each
    row's entries are distinct, so no sort is needed; keys come out grouped by row, unsorted within)."""
    n0, n1 = shape
    out = []
    for ch in chains:
        rec = ch.mats.index(None)
        a, b = (d1, d0) if ch.flip else (d0, d1)
        m = _csr_matrix(a, b, ch.sizes[rec], ch.sizes[rec + 1])
        for x in ch.mats[rec + 1:]:
            m = m @ x
        for x in ch.mats[:rec][::-1]:
            m = x @ m
        kt = np.int32 if n0 * n1 < 2**31 else np.int64  # chain key spaces are < 2**31: half the bytes
        rows = np.repeat(np.arange(n0, dtype=kt), np.diff(m.indptr))
        rows *= n1
        rows += m.indices
        out.append(rows)
    return out[0] if len(out) == 1 else np.concatenate(out)


def _expand(by: np.ndarray, other: np.ndarray, index: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (other[i], t) for every t that the CSR `index` lists under by[i]."""
    indptr, indices = index
    start = indptr[by]
    cnt = indptr[by + 1] - start
    ends = np.cumsum(cnt, dtype=np.int64)
    total = int(ends[-1]) if ends.shape[0] else 0
    dt = np.int32 if total < 2**31 else np.int64
    pos = np.repeat((start - ends + cnt).astype(dt, copy=False), cnt)
    pos += np.arange(total, dtype=dt)
    return np.repeat(other, cnt), indices[pos]


def _unique(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys)
    if keys.shape[0] > 1:
        keep = np.empty(keys.shape[0], dtype=bool)
        keep[0] = True
        np.not_equal(keys[1:], keys[:-1], out=keep[1:])
        keys = keys[keep]
    return keys


class _Bits:
    """Membership bitmap of keys in [0, ext): a byte per key when ext is small enough, else a bit."""

    def __init__(self, ext: int, keys: np.ndarray) -> None:
        self.packed = ext > _BYTE_BITMAP_MAX
        self.bits = np.zeros((ext + 7) // 8 if self.packed else ext, dtype=np.uint8 if self.packed else bool)
        self.add(keys)

    def test(self, keys: np.ndarray) -> np.ndarray:
        if not self.packed:
            return self.bits[keys]
        return ((self.bits[keys >> 3] >> (keys & 7).astype(np.uint8)) & 1).astype(bool)

    def unpack(self) -> None:
        """Switch to a byte per key."""
        if self.packed:
            self.bits = np.unpackbits(self.bits, bitorder="little").view(bool)
            self.packed = False

    def keys(self) -> np.ndarray:
        """The keys set, in order (a scan)."""
        if not self.packed:
            return np.flatnonzero(self.bits)
        return np.flatnonzero(np.unpackbits(self.bits, bitorder="little")).astype(np.int64, copy=False)

    def add(self, keys: np.ndarray) -> None:
        """Set the given distinct keys (sorted, when the bitmap is packed)."""
        if not self.packed:
            self.bits[keys] = True
            return
        if keys.shape[0] == 0:
            return
        byte = keys >> 3
        val = np.left_shift(1, keys & 7).astype(np.uint8)
        starts = np.flatnonzero(np.concatenate(([True], byte[1:] != byte[:-1])))
        self.bits[byte[starts]] |= np.bitwise_or.reduceat(val, starts)


class _Known:
    """The known facts of a chain fixpoint as keys in [0, ext): a sorted array (binary searches, a merge per
    round) while they are few next to the key space, then a `_Bits` bitmap. Touching a fresh memory page
    costs microseconds (tens of them in some sandboxes), so a bitmap pays only once the facts are dense
    enough to share its pages: from one fact per `_SPARSE_BITS` cells on."""

    def __init__(self, ext: int, keys: np.ndarray) -> None:
        self.ext = ext
        self.sorted: np.ndarray | None = keys
        self.bits: _Bits | None = None
        self._switch()

    def _switch(self) -> None:
        if self.sorted is not None and self.sorted.shape[0] * _SPARSE_BITS >= self.ext:
            self.bits = _Bits(self.ext, self.sorted)
            self.sorted = None

    @property
    def packed(self) -> bool:
        return self.bits is None or self.bits.packed

    def unpack(self) -> None:
        if self.bits is None:
            self.bits = _Bits(self.ext, self.sorted)
            self.sorted = None
        self.bits.unpack()

    def test(self, keys: np.ndarray) -> np.ndarray:
        if self.bits is not None:
            return self.bits.test(keys)
        known = self.sorted
        if known.shape[0] == 0:
            return np.zeros(keys.shape[0], dtype=bool)
        idx = np.searchsorted(known, keys)
        np.minimum(idx, known.shape[0] - 1, out=idx)
        return known[idx] == keys

    def add(self, keys: np.ndarray) -> None:
        """Add distinct keys not known yet (sorted while the bitmap is packed or not built)."""
        if self.bits is not None:
            self.bits.add(keys)
            return
        self.sorted = np.sort(np.concatenate([self.sorted, keys.astype(self.sorted.dtype)]), kind="stable")
        self._switch()

    def keys(self) -> np.ndarray:
        return self.bits.keys() if self.bits is not None else self.sorted.astype(np.int64, copy=False)


def chain_fixpoint(name: str, chains: list[_Chain], full: Relation, delta: Relation, rounds: int,
                   debug: bool) -> tuple[Relation, int, int]:
    """Continue the fixpoint from `delta` (new in the last round) with chain rules: (full relation, rounds,
    derived tuples). Known facts are a bitmap of the key space (a gather per candidate, a scatter per new
    fact); each round's new keys are one sorted run, and the final relation keeps the runs (merged when
    first needed)."""
    n0, n1 = full.shape
    runs = [full._get_keys()]
    bits = _Known(n0 * n1, runs[0])
    k = delta._get_keys().astype(np.int32)  # keys < n0 * n1 <= 2**31: int32 halves the bytes sorted and moved
    derived = 0
    sorted_runs = True
    edges = sum(int(ix[1].shape[0]) for ch in chains for ix in ch.left + ch.right)
    while k.shape[0]:
        facts = sum(int(r.shape[0]) for r in runs)
        kern = kernels(n0 * n1, facts, facts + edges + derived)
        if kern is not None:  # the rest of the fixpoint in one compiled call
            return kernel_fixpoint(kern, name, chains, full.shape, runs, k, rounds, derived, debug)
        d0, d1 = np.divmod(k, n1)
        if k.shape[0] > _PRODUCT_ROUND:
            key = _product_round(chains, d0, d1, (n0, n1)).astype(np.int32, copy=False)
            derived += key.shape[0]
            if n0 * n1 <= _BYTE_BITMAP_ROUNDS:
                bits.unpack()  # unsorted keys: a byte per key, so that setting them needs no grouping
            k = key[~bits.test(key)]
            if len(chains) > 1 or bits.packed:
                k = _unique(k)
            else:
                sorted_runs = False
            if k.shape[0] == 0:
                break
            bits.add(k)
            runs.append(k)
            rounds += 1
            if debug:
                print(f"[fixpoint] round {rounds}: {name}: +{k.shape[0]} (sparse product)", file=sys.stderr)
            continue
        cand = []
        for ch in chains:
            a, b = (d1, d0) if ch.flip else (d0, d1)
            steps = [(False, ix) for ix in ch.right] + [(True, ix) for ix in ch.left]
            for j, (is_left, ix) in enumerate(steps):
                if is_left:
                    b, a = _expand(a, b, ix)
                else:
                    a, b = _expand(b, a, ix)
                if j < len(steps) - 1 and a.shape[0] > 1:  # dedup intermediate pairs
                    nb = int(b.max()) + 1
                    a, b = np.divmod(_unique(a.astype(np.int64) * nb + b), nb)  # may exceed int32
                    a, b = a.astype(np.int32), b.astype(np.int32)
            key = a * n1
            key += b
            cand.append(key)
        key = cand[0] if len(cand) == 1 else np.concatenate(cand)
        derived += key.shape[0]
        k = _unique(key[~bits.test(key)])
        if k.shape[0] == 0:
            break
        bits.add(k)
        runs.append(k)
        rounds += 1
        if debug:
            print(f"[fixpoint] round {rounds}: {name}: +{k.shape[0]}", file=sys.stderr)
    total = sum(int(r.shape[0]) for r in runs)
    if bits.bits is None or n0 * n1 <= 64 * total or not sorted_runs:  # the known keys, in order
        return Relation._make(full.shape, keys=bits.keys()), rounds, derived
    return Relation._make(full.shape, runs=tuple(r.astype(np.int64, copy=False) for r in runs)), rounds, derived


def run_chains(ex: Executor, st: Stratum, full: Relation, delta: Relation, outside: dict[str, Relation],
               rounds: int, lin: Linearization | None = None, base: Relation | None = None
               ) -> tuple[Relation, int, int] | None:
    """Continue the fixpoint of `st` (one relation: `full` after `rounds` rounds, `delta` the last one's new
    facts) on the fast path: (relation, rounds, tuples derived), or None when the fast path does not apply.
    With `lin` (and `base`, the relation B'), the stratum's transitivity rules are linearized."""
    t = st.tensors[0]
    if base is not None:
        outside = {**outside, BASE: base}
    chains = chain_rules(ex, st, {t: full}, outside, {}, lin)
    if chains is not None:
        return chain_fixpoint(t, chains, full, delta, rounds, ex.debug)
    small = compact_ids(full, delta, outside)
    if small is None:
        return None
    ids, cfull, cdelta, coutside = small
    chains = chain_rules(ex, st, {t: cfull}, coutside, {}, lin)
    if chains is None:
        return None
    res, rounds, derived = chain_fixpoint(t, chains, cfull, cdelta, rounds, ex.debug)
    return expand_ids(res, ids, full.shape), rounds, derived
