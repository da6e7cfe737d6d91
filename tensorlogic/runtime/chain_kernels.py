"""When and how the chain fast path (`runtime/chains.py`) hands its fixpoint to the compiled kernels of
`backends/relation_kernels.py` (numba), and the numpy-free remainder of the loop.

Numba is imported lazily: its import and the load of the cached kernels cost about 0.3-0.5 s once per
process, more than a small fixpoint takes in numpy. So the kernels run a chain fixpoint

* never when ``TL_NUMBA=0`` (or `ENABLED` is False) or numba cannot be imported: the numpy rounds do all;
* always when ``TL_NUMBA=1`` (tests use it to exercise the kernels on small inputs);
* otherwise once the work is large enough to pay for loading them (`_MIN_WORK`: facts known, edges of the
  rules' other atoms and tuples derived so far, checked before every round), or at once when they are
  loaded already in this process;

and in every case only while a membership bitmap (one bit per cell of the key space) pays: for key spaces
up to `_BIG_BITMAP` cells, or once there is a fact per `_SPARSE_BITS` cells (before that the numpy rounds
keep sorted key arrays). The facts come back sorted (a scan of the bitmap, or a radix sort). A hash set was
tried for sparse key spaces and lost to the bitmap everywhere (a cache miss per candidate, where the bitmap
keeps a row's candidates together).
"""

from __future__ import annotations

import os
import sys
import time
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ..backends.relations import Relation

if TYPE_CHECKING:
    from .chains import _Chain

# None: not tried yet; False: numba is not importable; else the kernels module.
_LOADED: ModuleType | bool | None = None
# Set False to disable the kernels in this process (like TL_NUMBA=0).
ENABLED = True
# Work (facts + edges + derived tuples) from which loading numba pays: the numpy rounds test some 10-30
# million candidates a second, so 4 million cost about what loading the cached kernels does (0.3-0.5 s).
_MIN_WORK = 1 << 22
# Key spaces up to this many cells get a bitmap at once (64 MB); larger ones once there is a fact per
# _SPARSE_BITS cells (the numpy rounds keep sorted key arrays until then).
_BIG_BITMAP = 1 << 29
_SPARSE_BITS = 8192
# The bitmap of the last fixpoint, zeroed, kept for the next one when it has at most _SPARE_WORDS words: a
# fresh one costs a page fault per 4 KB page touched (microseconds each on the benchmark machine).
_SPARE: np.ndarray | None = None
_SPARE_WORDS = _BIG_BITMAP // 64
# The result is a scan of the bitmap when it has at most SCAN words per fact, else a radix sort of the keys: a
# word costs about a nanosecond to scan, a key 20-40 to radix-sort into fresh memory (SG on TG: 5.2 million
# words for 608,090 facts, the scan 15% faster in all).
SCAN = 16
# Seconds the import of the kernels module took (each kernel is loaded from numba's cache, or compiled, on its
# first call; `relation_kernels.warm()` does all of them at once), for reports.
load_seconds: float | None = None


def _load() -> ModuleType | None:
    global _LOADED, load_seconds
    if _LOADED is None:
        t = time.perf_counter()
        try:
            from ..backends import relation_kernels
        except ImportError:  # numba absent or incompatible with this numpy
            _LOADED = False
        else:  # each kernel loads (or compiles) on its first call: a closure needs two of the nine
            _LOADED = relation_kernels
            load_seconds = time.perf_counter() - t
    return _LOADED or None


def loaded() -> ModuleType | None:
    """The kernels module when it is loaded already and not disabled, else None (never loads it)."""
    if os.environ.get("TL_NUMBA", "").strip() == "0" or not ENABLED:
        return None
    return _LOADED or None


def kernels(ext: int, facts: int, work: int) -> ModuleType | None:
    """The kernels module when a chain fixpoint over `ext` key cells, with `facts` known and `work` done or
    foreseen, should run compiled (see the module docstring), else None."""
    mode = os.environ.get("TL_NUMBA", "").strip()
    if mode == "0" or not ENABLED or _LOADED is False:
        return None
    if ext > _BIG_BITMAP and facts * _SPARSE_BITS < ext:
        return None
    if mode != "1" and _LOADED is None and work < _MIN_WORK:
        return None
    return _load()


def _steps(chains: list[_Chain]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The chains as the kernel's tables: (chains, steps, ptr, idx, largest extent)."""
    table, steps, ptrs, idxs = [], [], [], []
    po = io = 0
    for ch in chains:
        row = [int(ch.flip)]
        for side in (ch.left, ch.right):
            row.append(len(steps))
            for indptr, indices in side:
                steps.append((po, io))
                ptrs.append(indptr.astype(np.int64))
                idxs.append(indices.astype(np.int32, copy=False))
                po += indptr.shape[0]
                io += indices.shape[0]
            row.append(len(steps))
        table.append(row)
    ptr = np.concatenate(ptrs) if ptrs else np.zeros(1, dtype=np.int64)
    idx = np.concatenate(idxs) if idxs else np.zeros(1, dtype=np.int32)
    step_tab = np.array(steps, dtype=np.int64).reshape(-1, 2)
    return np.array(table, dtype=np.int64), step_tab, ptr, idx, max(max(ch.sizes) for ch in chains)


def _bitmap(words: int) -> np.ndarray:
    """A zeroed bitmap of `words` uint64 words: the one kept from the last fixpoint when it is large enough."""
    global _SPARE
    spare, _SPARE = _SPARE, None
    if spare is not None and spare.shape[0] >= words:
        return spare[:words]
    return np.zeros(words, dtype=np.uint64)


def _keep(kern: ModuleType, words: np.ndarray, keys: np.ndarray) -> None:
    """Zero `words` (whose set bits are all among `keys`) and keep it for the next fixpoint."""
    global _SPARE
    if words.base is not None and words.base.shape[0] <= _SPARE_WORDS:
        words = words.base
    if words.shape[0] > _SPARE_WORDS:
        return
    if 8 * keys.shape[0] < words.shape[0]:
        kern.clear_words(words, keys)
    else:
        words[:] = 0
    _SPARE = words


def kernel_fixpoint(kern: ModuleType, name: str, chains: list[_Chain], shape: tuple[int, int],
                    runs: list[np.ndarray], delta: np.ndarray, rounds: int, derived: int, debug: bool
                    ) -> tuple[Relation, int, int]:
    """Continue a chain fixpoint in one compiled call: `runs` are the sorted key runs known so far (all facts;
    `delta`, the last round's new keys, among them): (relation, rounds, derived tuples)."""
    n0, n1 = shape
    ext = n0 * n1
    table, steps, ptr, idx, most = _steps(chains)
    rows = all(not ch.flip and not ch.left for ch in chains)  # each fact derives facts of its own row only
    cols = all(not ch.flip and not ch.right for ch in chains)  # ... of its own column only (right-linear)
    if rows or cols:  # row by row (columns: on the transposed keys): see relation_kernels.row_fixpoint
        bits = max(1, (ext - 1).bit_length())
        known = np.concatenate([r.astype(np.int64, copy=False) for r in runs]) if len(runs) > 1 else runs[0]
        d = delta.astype(np.int64)
        if not rows:  # transpose: key y * n0 + x; the left steps become right steps
            known, d = (np.divmod(k, n1) for k in (known, d))
            known, d = known[1] * n0 + known[0], d[1] * n0 + d[0]
            table = table[:, [0, 3, 4, 1, 2]].copy()
        if len(runs) > 1 or not rows:
            known, d = kern.radix_sort(known, bits), kern.radix_sort(d, bits)
        elif d.shape[0] > 1 and not bool(np.all(d[1:] > d[:-1])):
            d = np.sort(d)
        m0, m1 = (n0, n1) if rows else (n1, n0)
        out, counts, more = kern.row_fixpoint(known.astype(np.int64, copy=False), d, m0, m1, table, steps, ptr,
                                              idx, most)
        if not rows:
            y, x = np.divmod(out, n0)
            out = kern.radix_sort(x * n1 + y, bits)
        if debug:
            for j, c in enumerate(counts.tolist()):
                print(f"[fixpoint] round {rounds + j + 1}: {name}: +{c} (compiled, by rows)", file=sys.stderr)
        return Relation._make(shape, keys=out), rounds + int(counts.shape[0]), derived + int(more)
    words = _bitmap((ext + 63) // 64)
    for r in runs:
        kern.set_bits(words, r.astype(np.int64, copy=False))
    keys, ends, more = kern.chain_fixpoint(words, delta.astype(np.int64), n1, table, steps, ptr, idx, most)
    nd = delta.shape[0]
    if debug:
        start = nd
        for j, e in enumerate(ends.tolist()):
            print(f"[fixpoint] round {rounds + j + 1}: {name}: +{e - start} (compiled)", file=sys.stderr)
            start = e
    new = keys[nd:]
    total = sum(int(r.shape[0]) for r in runs) + int(new.shape[0])
    if words.shape[0] <= SCAN * total:  # a scan of the bitmap lists every key in order
        out = kern.bitmap_keys(words, total)
    else:
        known = np.concatenate([*(r.astype(np.int64, copy=False) for r in runs), new])
        out = kern.radix_sort(known, max(1, (ext - 1).bit_length()))
    _keep(kern, words, out)
    return Relation._make(shape, keys=out), rounds + int(ends.shape[0]), derived + int(more)
