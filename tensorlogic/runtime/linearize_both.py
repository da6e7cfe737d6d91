"""The transitivity rule next to left- and right-linear rules, evaluated as one left-linear closure over a
product automaton (see `runtime/linearize.py` and docs/datalog.md, "Semi-naive evaluation").

The rules give p = (L* B' R*)+: words over the steps L (right-linear rules), B' (given facts and exit rules)
and R (left-linear rules) in which every L is followed, later, by a B', and which end with a B' followed by
R steps only. A walk that reads such a word needs one bit of state: whether a B' is still owed (after an L,
or at the start) or not. So p(x, z) holds exactly when the node (z, done) is reached from (x, owed) in the
graph G2 over 2n nodes (v, owed) = v and (v, done) = n + v with edges

    (y, owed) -L-> (z, owed)     (y, owed) -B'-> (z, done)
    (y, done) -L-> (z, owed)     (y, done) -B'-> (z, done)     (y, done) -R-> (z, done)

and that reachability is the left-linear closure P2(x, w) <- P2(x, v), G2(v, w) from the one-step facts of
the rows (x, owed): rows stay fixed, so it runs on the chain fast path row by row, with rows of 2n cells.
Its cost is about that of a plain closure over twice the nodes, where stepping through Q = L* B' (the
closure-sized helper relation of the two-fixpoint form) costs a row of Q per fact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..backends.relations import Relation
from ..ir.graph import Stratum
from .chains import _BIT_BITMAP_MAX, _Chain, _csr_index, chain_fixpoint, chain_rules
from .linearize import Linearization

if TYPE_CHECKING:
    from .executor import Executor


def _pairs(mats: list) -> tuple[np.ndarray, np.ndarray]:
    """The (from, to) pairs of the product of the CSR matrices `mats` (a path of atoms)."""
    m = mats[0]
    for x in mats[1:]:
        m = m @ x
    m = m.tocoo()
    return m.row.astype(np.int64), m.col.astype(np.int64)


def automaton_closure(ex: Executor, st: Stratum, base: Relation, outside: dict[str, Relation],
                      lin: Linearization) -> tuple[Relation, int, int] | None:
    """The relation of `st` (exit rules giving `base` = B', left- and right-linear rules, the transitivity
    rule) as the closure over the product automaton of the module docstring: (relation, rounds, tuples
    derived), or None when the rules are not chains or the key space n x 2n is too large."""
    n = base.shape[0]
    if base.shape != (n, n) or not 0 < 2 * n * n <= _BIT_BITMAP_MAX:
        return None
    chains = chain_rules(ex, st, {st.tensors[0]: base}, outside, {},
                         Linearization(0, lin.trans, lin.exits, (), (), False))
    if chains is None:
        return None
    steps_l, steps_r = [], []
    for ch in chains:
        mats = ch.mats
        if mats[0] is None and not ch.flip:  # left-linear: R is the rest of the path
            steps_r.append(_pairs(mats[1:]))
        elif mats[-1] is None and not ch.flip:  # right-linear: L is the path before the recursive atom
            steps_l.append(_pairs(mats[:-1]))
        else:
            return None
    c = base.cols.astype(np.int64)
    b0, b1 = c[:, 0], c[:, 1]
    src, dst = [], []
    for y, z in steps_l:  # an L step: owed afterwards, from either state
        src += [y, y + n]
        dst += [z, z]
    src += [b0, b0 + n]  # a B' step: done afterwards, from either state
    dst += [b1 + n, b1 + n]
    for y, z in steps_r:  # an R step: only once done
        src.append(y + n)
        dst.append(z + n)
    s, d = np.concatenate(src), np.concatenate(dst)
    key = np.unique(s * (2 * n) + d)
    s, d = np.divmod(key, 2 * n)
    graph = _csr_index(s, d, 2 * n)
    chain = _Chain([graph], [], False, [n, 2 * n, 2 * n], [None, (s, d)])
    first = s < n  # the one-step facts from (x, owed), x < n: rows of P2 (shape n x 2n)
    start = Relation._make((n, 2 * n), keys=key[first])
    res, rounds, derived = chain_fixpoint(st.tensors[0], [chain], start, start, 1, ex.debug)
    keys = res._get_keys()
    x, w = np.divmod(keys, 2 * n)
    done = w >= n
    return Relation._make((n, n), keys=x[done] * n + (w[done] - n)), rounds, derived
