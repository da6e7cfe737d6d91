"""Compiled (numba) kernels for the chain-rule fast path of semi-naive evaluation (`runtime/chains.py`).

A fixpoint of chain rules (`R(x,z) <- R(x,y), E(y,z)`, `SG(x,y) <- E(a,x), SG(a,b), E(b,y)`, ...) spends its
time in a few thousand small rounds when it runs as numpy calls: each round costs some forty calls of a few
microseconds each. `chain_fixpoint` runs the whole loop in one compiled call instead: every new pair of a
round is extended along the CSR indexes of the rule's other atoms, each candidate key is tested against a
packed membership bitmap of the key space (one bit per cell) and, when new, set there and appended to the
output, which is also the next round's delta. Testing and setting at once removes the duplicates of a round
without a sort. `row_fixpoint` runs chains that keep the head's first variable (left-linear closures) row
by row, over a bitmap of one row. Helpers: `bitmap_keys` lists the keys of a bitmap in order (a word scan),
`radix_sort` sorts non-negative int64 keys (also used by `relation_keys` once this module is loaded),
`remap_keys` maps keys over ranks back to ids, `take_new` is the general semi-naive loop's difference with
the known facts (`runtime/seminaive.py`).

This module imports numba; `runtime/chain_kernels.py` imports it lazily, only for strata large enough to
need it (numba's import and the cached kernels' load cost about 0.3-0.7 s once per process), and the numpy
path runs when numba is absent or disabled (``TL_NUMBA=0``). The kernels are compiled with ``cache=True`` (the
machine code is stored next to this file, or in numba's user cache) and ``nogil=True``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_ONE = np.uint64(1)
_SIXTY_THREE = np.uint64(63)
# The position of the single set bit of a 64-bit word w: _DEBRUIJN_POS[(w * _DEBRUIJN) >> 58].
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_POS = np.zeros(64, dtype=np.int64)
for _i in range(64):
    _DEBRUIJN_POS[((1 << _i) * 0x03F79D71B4CB0A89 % (1 << 64)) >> 58] = _i


@njit(cache=True, nogil=True)
def set_bits(words: np.ndarray, keys: np.ndarray) -> None:  # pragma: no cover - compiled
    """Set the bits of `keys` in the packed bitmap `words` (uint64, bit k of word w is key 64 w + k)."""
    for i in range(keys.shape[0]):
        k = np.uint64(keys[i])
        words[k >> np.uint64(6)] |= _ONE << (k & _SIXTY_THREE)


@njit(cache=True, nogil=True)
def bitmap_keys(words: np.ndarray, count: int) -> np.ndarray:  # pragma: no cover - compiled
    """The `count` keys set in the bitmap `words`, in increasing order (the lowest set bit of a word found
    by a de Bruijn multiplication)."""
    out = np.empty(count, dtype=np.int64)
    n = 0
    for w in range(words.shape[0]):
        x = words[w]
        base = w * 64
        while x:
            low = x & (~x + _ONE)
            out[n] = base + _DEBRUIJN_POS[(low * _DEBRUIJN) >> np.uint64(58)]
            n += 1
            x ^= low
    return out[:n]


@njit(cache=True, nogil=True)
def _reach(start: int, s0: int, s1: int, steps: np.ndarray, ptr: np.ndarray, idx: np.ndarray,
           stamp: np.ndarray, token: int, buf: np.ndarray, tmp: np.ndarray):  # pragma: no cover - compiled
    """The nodes reached from `start` through the steps s0..s1-1 (each a CSR index: its rows' offsets into
    `ptr` and `idx`), deduplicated at every step after the first with `stamp` (a token per step, from
    `token` on), written to buf[:n]: (n, next token).

    The kernels below repeat its zero- and one-step cases inline (the common chains: TC, SG). Calling this
    function for them instead doubled the evaluation time (TC cal 13 -> 26 ms, Gnutella09 0.62 -> 1.13 s):
    numba does not inline it into the hot loops."""
    if s1 == s0:
        buf[0] = start
        return 1, token
    p0 = steps[s0, 0]
    i0 = steps[s0, 1]
    n = 0
    for j in range(i0 + ptr[p0 + start], i0 + ptr[p0 + start + 1]):
        buf[n] = idx[j]
        n += 1
    for s in range(s0 + 1, s1):
        p = steps[s, 0]
        i = steps[s, 1]
        token += 1
        m = 0
        for t in range(n):
            v = buf[t]
            for j in range(i + ptr[p + v], i + ptr[p + v + 1]):
                u = idx[j]
                if stamp[u] != token:
                    stamp[u] = token
                    tmp[m] = u
                    m += 1
        for t in range(m):
            buf[t] = tmp[t]
        n = m
    return n, token + 1


@njit(cache=True, nogil=True)
def _round(out: np.ndarray, n: int, i: int, hi: int, n1: int, chains: np.ndarray, steps: np.ndarray,
           ptr: np.ndarray, idx: np.ndarray, words: np.ndarray, bufs: np.ndarray, stamp: np.ndarray,
           token: int):  # pragma: no cover - compiled
    """Extend the pairs out[i:hi] and append the new keys to `out` from n on, until done or until a pair
    might overflow `out`: (pair reached, n, candidates, token, that pair's candidates). A pair is processed
    again after such a stop (harmless: testing is setting)."""
    derived = 0
    cap = out.shape[0]
    lbuf = bufs[0]
    ltmp = bufs[1]
    rbuf = bufs[2]
    rtmp = bufs[3]
    inv = 1.0 / n1
    while i < hi:
        key = out[i]
        p = np.int64(key * inv)  # key // n1 without a 64-bit division (exact after the correction: key < 2**31)
        q = key - p * n1
        if q < 0:
            p -= 1
            q += n1
        elif q >= n1:
            p += 1
            q -= n1
        for c in range(chains.shape[0]):
            a = q if chains[c, 0] else p
            b = p if chains[c, 0] else q
            l0 = chains[c, 1]
            l1 = chains[c, 2]
            if l1 == l0:
                nx = 1
                lbuf[0] = a
            elif l1 == l0 + 1:
                po = steps[l0, 0]
                io = steps[l0, 1]
                nx = 0
                for j in range(io + ptr[po + a], io + ptr[po + a + 1]):
                    lbuf[nx] = idx[j]
                    nx += 1
            else:
                nx, token = _reach(a, l0, l1, steps, ptr, idx, stamp, token, lbuf, ltmp)
            r0 = chains[c, 3]
            r1 = chains[c, 4]
            if r1 == r0:
                ny = 1
                rbuf[0] = b
            elif r1 == r0 + 1:
                po = steps[r0, 0]
                io = steps[r0, 1]
                ny = 0
                for j in range(io + ptr[po + b], io + ptr[po + b + 1]):
                    rbuf[ny] = idx[j]
                    ny += 1
            else:
                ny, token = _reach(b, r0, r1, steps, ptr, idx, stamp, token, rbuf, rtmp)
            if n + nx * ny > cap:
                return i, n, derived, token, nx * ny  # the caller makes room and calls again from this pair
            derived += nx * ny
            for s in range(nx):
                base = np.int64(lbuf[s]) * n1
                for t in range(ny):  # branch-free: a new fact is written and kept, a known one overwritten
                    k = base + rbuf[t]
                    w = k >> 6
                    m = _ONE << np.uint64(k & 63)
                    old = words[w]
                    words[w] = old | m
                    out[n] = k
                    n += np.int64((old & m) == 0)
        i += 1
    return i, n, derived, token, 0


@njit(cache=True, nogil=True)
def chain_fixpoint(words: np.ndarray, delta: np.ndarray, n1: int, chains: np.ndarray, steps: np.ndarray,
                   ptr: np.ndarray, idx: np.ndarray, max_ext: int):  # pragma: no cover - compiled
    """Semi-naive rounds of chain rules from `delta` (the last round's new keys x * n1 + y, already set in the
    membership bitmap `words`) until a round finds nothing new: (keys, ends, derived). keys[:len(delta)] is
    `delta`, the first round's new keys are keys[len(delta):ends[0]], round r's keys[ends[r-1]:ends[r]];
    derived counts the candidates tested. A candidate is tested and set in the bitmap at once, so a round's
    duplicates are dropped without a sort.

    Chain c (a row of `chains`: flip, first and end left step, first and end right step) extends a pair
    (a, b) of the recursive atom to the set X of head-first values through its left steps from a and to the
    set Y of head-second values through its right steps from b, and tests X x Y; flip says the recursive
    atom reads R(b, a). A step is a row (offset into `ptr`, offset into `idx`) of `steps`: the neighbours of
    node v are idx[io + ptr[po + v] : io + ptr[po + v + 1]]."""
    n = delta.shape[0]
    out = np.empty(max(1024, 4 * n), dtype=np.int64)
    out[:n] = delta
    ends = np.empty(64, dtype=np.int64)
    nr = 0
    derived = 0
    stamp = np.zeros(max_ext, dtype=np.int64)
    token = 1
    bufs = np.empty((4, max_ext + 1), dtype=idx.dtype)
    lo = 0
    hi = n
    while hi > lo:
        i = lo
        while True:
            i, n, more, token, need = _round(out, n, i, hi, n1, chains, steps, ptr, idx, words, bufs, stamp, token)
            derived += more
            if i == hi:
                break
            grown = np.empty(max(2 * out.shape[0], n + need), dtype=np.int64)  # room for the pair's candidates
            grown[:n] = out[:n]
            out = grown
        if n == hi:
            break
        if nr == ends.shape[0]:
            more_ends = np.empty(2 * nr, dtype=np.int64)
            more_ends[:nr] = ends
            ends = more_ends
        ends[nr] = n
        nr += 1
        lo = hi
        hi = n
    return out[:n], ends[:nr], derived


@njit(cache=True, nogil=True)
def row_fixpoint(known: np.ndarray, delta: np.ndarray, n0: int, n1: int, chains: np.ndarray, steps: np.ndarray,
                 ptr: np.ndarray, idx: np.ndarray, max_ext: int):  # pragma: no cover - compiled
    """`chain_fixpoint` for chains that keep the head's first variable (no left steps, no flip: left-linear
    closures such as `R(x,z) <- R(x,y), E(y,z)`): the facts of row x derive only facts of row x, so the
    fixpoint runs row by row, each as a breadth-first search from the row's delta over a bitmap of that row
    alone (L1-resident, no bitmap of the key space, no page faults). `known` and `delta` are sorted keys
    x * n1 + y (delta among known). Returns (every fact, sorted; new facts per round; candidates tested):
    round r of the global semi-naive loop finds exactly the facts at depth r of the rows' searches."""
    nw = (n1 + 63) // 64
    row = np.zeros(nw, dtype=np.uint64)
    cur = np.empty(n1 + 1, dtype=np.int64)
    nxt = np.empty(n1 + 1, dtype=np.int64)
    stamp = np.zeros(max_ext, dtype=np.int64)
    token = 1
    bufs = np.empty((2, max_ext + 1), dtype=idx.dtype)
    ybuf = bufs[0]
    ytmp = bufs[1]
    counts = np.zeros(64, dtype=np.int64)
    deepest = 0
    derived = 0
    out = np.empty(max(1024, 2 * known.shape[0]), dtype=np.int64)
    n = 0
    ki = 0
    di = 0
    for a in range(n0):
        lo = a * n1
        hi = lo + n1
        k0 = ki
        wlo = nw  # the words of the row bitmap set so far: only they are scanned and cleared
        whi = -1
        while ki < known.shape[0] and known[ki] < hi:
            y = np.uint64(known[ki] - lo)
            w = np.int64(y >> np.uint64(6))
            row[w] |= _ONE << (y & _SIXTY_THREE)
            wlo = min(wlo, w)
            whi = max(whi, w)
            ki += 1
        if ki == k0:
            continue
        nf = 0
        while di < delta.shape[0] and delta[di] < hi:
            cur[nf] = delta[di] - lo
            nf += 1
            di += 1
        total = ki - k0
        level = 0
        while nf:
            nn = 0
            for f in range(nf):
                b = cur[f]
                for c in range(chains.shape[0]):
                    r0 = chains[c, 3]
                    r1 = chains[c, 4]
                    if r1 == r0:
                        ny = 1
                        ybuf[0] = b
                    elif r1 == r0 + 1:
                        po = steps[r0, 0]
                        io = steps[r0, 1]
                        ny = 0
                        for j in range(io + ptr[po + b], io + ptr[po + b + 1]):
                            ybuf[ny] = idx[j]
                            ny += 1
                    else:
                        ny, token = _reach(b, r0, r1, steps, ptr, idx, stamp, token, ybuf, ytmp)
                    derived += ny
                    for t in range(ny):  # branch-free, as in `_round`
                        y = np.uint64(ybuf[t])
                        w = y >> np.uint64(6)
                        m = _ONE << (y & _SIXTY_THREE)
                        old = row[w]
                        row[w] = old | m
                        nxt[nn] = ybuf[t]
                        nn += np.int64((old & m) == 0)
                        wlo = min(wlo, np.int64(w))
                        whi = max(whi, np.int64(w))
            if nn == 0:
                break
            if level == counts.shape[0]:
                more = np.zeros(2 * level, dtype=np.int64)
                more[:level] = counts
                counts = more
            counts[level] += nn
            level += 1
            total += nn
            cur, nxt = nxt, cur
            nf = nn
        deepest = max(deepest, level)
        if n + total > out.shape[0]:
            grown = np.empty(max(2 * out.shape[0], n + total), dtype=np.int64)
            grown[:n] = out[:n]
            out = grown
        for w in range(wlo, whi + 1):  # the row's facts in order; the row bitmap is zero again after
            x = row[w]
            if x == 0:
                continue
            base = lo + w * 64
            while x:
                low = x & (~x + _ONE)
                out[n] = base + _DEBRUIJN_POS[(low * _DEBRUIJN) >> np.uint64(58)]
                n += 1
                x ^= low
            row[w] = 0
    return out[:n], counts[:deepest], derived


@njit(cache=True, nogil=True)
def radix_sort(keys: np.ndarray, bits: int) -> np.ndarray:  # pragma: no cover - compiled
    """`keys` (non-negative int64, below 2**bits) sorted: a least-significant-digit radix sort with 11-bit
    digits (numpy's comparison sort takes several times longer on a few hundred thousand keys)."""
    n = keys.shape[0]
    a = keys.copy()
    b = np.empty(n, dtype=np.int64)
    count = np.empty(2048, dtype=np.int64)
    shift = 0
    while shift < bits:
        count[:] = 0
        for i in range(n):
            count[(a[i] >> shift) & 2047] += 1
        total = 0
        for d in range(2048):
            c = count[d]
            count[d] = total
            total += c
        for i in range(n):
            d = (a[i] >> shift) & 2047
            b[count[d]] = a[i]
            count[d] += 1
        a, b = b, a
        shift += 11
    return a


@njit(cache=True, nogil=True)
def clear_words(words: np.ndarray, keys: np.ndarray) -> None:  # pragma: no cover - compiled
    """Zero the words of the bitmap that hold `keys` (all its set bits are among them): the bitmap is zero
    again at the cost of the facts, not of the key space."""
    for i in range(keys.shape[0]):
        words[keys[i] >> 6] = 0


@njit(cache=True, nogil=True)
def remap_keys(keys: np.ndarray, m: int, ids: np.ndarray, n1: int) -> np.ndarray:  # pragma: no cover - compiled
    """Keys a * m + b over ranks back to ids[a] * n1 + ids[b] (order-preserving when ids increase)."""
    out = np.empty(keys.shape[0], dtype=np.int64)
    inv = 1.0 / m
    for i in range(keys.shape[0]):
        k = keys[i]
        a = np.int64(k * inv)
        b = k - a * m
        if b < 0:
            a -= 1
            b += m
        elif b >= m:
            a += 1
            b -= m
        out[i] = ids[a] * n1 + ids[b]
    return out


@njit(cache=True, nogil=True)
def take_new(words: np.ndarray, keys: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The keys whose bits are not set in `words` (in their order), setting them: a difference with the
    known facts and their update in one pass."""
    out = np.empty(keys.shape[0], dtype=np.int64)
    n = 0
    for i in range(keys.shape[0]):
        k = np.uint64(keys[i])
        w = k >> np.uint64(6)
        m = _ONE << (k & _SIXTY_THREE)
        if words[w] & m:
            continue
        words[w] |= m
        out[n] = keys[i]
        n += 1
    return out[:n]


def warm() -> None:
    """Compile (or load from numba's cache) every kernel for the argument types the fast path uses."""
    words = np.zeros(1, dtype=np.uint64)
    set_bits(words, np.array([1], dtype=np.int64))
    chains = np.array([[0, 0, 0, 0, 1]], dtype=np.int64)
    steps = np.array([[0, 0]], dtype=np.int64)
    ptr = np.array([0, 1, 1], dtype=np.int64)
    idx = np.array([1], dtype=np.int32)
    chain_fixpoint(words, np.array([1], dtype=np.int64), 2, chains, steps, ptr, idx, 2)
    row_fixpoint(np.array([1], dtype=np.int64), np.array([1], dtype=np.int64), 2, 2, chains, steps, ptr, idx, 2)
    bitmap_keys(words, 1)
    radix_sort(np.array([3, 1], dtype=np.int64), 2)
    clear_words(words, np.array([1], dtype=np.int64))
    remap_keys(np.array([1], dtype=np.int64), 2, np.array([0, 5], dtype=np.int64), 9)
    take_new(words, np.array([1, 2], dtype=np.int64))
