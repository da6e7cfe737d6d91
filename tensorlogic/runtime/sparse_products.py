"""Joins with a sparse operand as scipy sparse products (called by `DenseEvaluator.sparse_matmul`).

A join whose factors are constants and reads, one of them a tensor stored sparse (a relation, or a
`SparseTensor` of weighted or sparse numeric data), and that sums some of that tensor's indices against the
rest of the join, runs as one sparse product without making the sparse tensor dense:

* two-index contractions: `W(x,y) V[y]` and `W(x,y) M[y,z]` as CSR times the dense operand, `A(x,y) B(y,z)`
  with both stored sparse as CSR times CSR (and summed over z as A times B's row sums);
* more factors: the others are joined first, with every summed variable the sparse tensor does not read summed
  inside (`W(x,y) E(y,z) V[z]` is W times sum[z](E(y,z) V[z]));
* sparse tensors of any number of indices (`Score[s,o] = T(s,r,o) Rel[r]`, `S = W(x,y) V[y]`): the tensor is
  matricised, its kept indices as rows and its indices summed against the rest as columns (its other summed
  indices are summed while building the matrix, by scipy's duplicate summing), and multiplied with the rest;
* constant factors (`0.85 W(x,y) R[y] / 2`) are applied to the product.

The product's result is dense: it has the cells of the head, which is dense (runtime/sparse_eval.py decides
what is stored sparse).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backends.sparse_numeric import SparseTensor, matricize
from ..ir.nodes import Const, IVar, Join, Read, Reduce, free_vars
from .dense import Labeled, align

_STATIC: dict[tuple, tuple] = {}  # (id(join), summed) -> (join, its static product plan)
_KEY_LIMIT = 1 << 62  # a matricised side must have fewer cells than this (int64 flat indices)


def _static(n: Join, over: tuple[str, ...]) -> tuple[float, list[tuple], tuple[str, ...]]:
    """Per join node and summed variables: the product of its constant factors; the sparse-product options;
    and the summed variables no factor reads (each multiplies the sum by its range). An option is
    (read, summed variable, rest) for a two-index read `R(a,b)` of which exactly b is summed, or
    (read, None, rest, kept, summed against the rest) for a read of distinct variables (any number) with
    some of them summed against the rest; the read may be a factor or a factor's single summed read
    (`sum[x](W(x,y))`, whose x is summed in the matricisation). The rest is the other factor, or the other
    factors joined with every summed variable the sparse read does not read summed inside."""
    hit = _STATIC.get((id(n), over))
    if hit is not None and hit[0] is n:
        return hit[1]
    scale, rest = 1.0, []
    for k, (f, d) in enumerate(zip(n.factors, n.divides)):
        if isinstance(f, Const):
            scale = scale / float(f.value) if d else scale * float(f.value)
        else:
            rest.append((k, d))
    allv = {v for f in n.factors for v in free_vars(f)}
    options: list[tuple] = []
    if len(rest) >= 2 and np.isfinite(scale):
        for k, d in rest:
            f, folded = n.factors[k], ()
            if isinstance(f, Reduce) and isinstance(f.operand, Read):  # `sum[x](W(x,y))`: x summed in the read
                f, folded = f.operand, f.over
            if d or not _distinct_vars(f):
                continue
            names = [p.expr.name for p in f.pos]
            others = [(j, dj) for j, dj in rest if j != k]
            ovars = {v for j, _ in others for v in free_vars(n.factors[j])}
            kept = tuple(v for v in names if v not in over and v not in folded)
            against = tuple(v for v in names if v in over and v in ovars)
            if any(v in ovars for v in kept) or not against:
                continue  # not a product (a diagonal or an outer product): the dense path
            if len(others) == 1 and not others[0][1]:
                g = n.factors[others[0][0]]
            else:
                g = Join([n.factors[j] for j, _ in others], [dj for _, dj in others])
                inside = tuple(v for v in over if v not in names and v in ovars)
                g = Reduce(inside, g) if inside else g
            if len(names) == 2 and len(kept) == 1 and not folded:
                options.append((f, against[0], g))
            options.append((f, None, g, kept, against))
    val = (scale, options, tuple(v for v in over if v not in allv))
    if len(_STATIC) > 20_000:
        _STATIC.clear()
    _STATIC[(id(n), over)] = (n, val)
    return val


def _distinct_vars(f: Any) -> bool:
    names = [p.expr.name for p in f.pos if isinstance(p.expr, IVar)] if isinstance(f, Read) else []
    return bool(names) and len(names) == len(f.pos) == len(set(names))


def _two_vars(f: Any) -> bool:
    return _distinct_vars(f) and len(f.pos) == 2


def _oriented(ev: Any, g: Any, b: str) -> tuple[Any, str] | None:
    """The other operand as a sparse matrix with `b` first (and its other variable), if it is stored sparse."""
    if not _two_vars(g):
        return None
    p, q = g.pos[0].expr.name, g.pos[1].expr.name
    if b not in (p, q):
        return None
    mat = ev.read_sparse(g)
    if mat is None or isinstance(mat, SparseTensor) or ev.ranges[p] != (0, mat.shape[0]) or \
            ev.ranges[q] != (0, mat.shape[1]):
        return None
    return (mat, q) if p == b else (mat.T, p)


def sparse_join(ev: Any, n: Join, over: tuple[str, ...]) -> Labeled | None:
    """The join summed over `over` as a sparse product (see the module doc), or None when it is not of that
    shape or no operand is stored sparse (the dense evaluator contracts it then)."""
    if ev.read_sparse is None:
        return None
    scale, options, missing = _static(n, over)
    for option in options:
        f = option[0]
        src = ev.read_sparse(f)
        if src is None or any(ev.ranges[p.expr.name] != (0, s) for p, s in zip(f.pos, src.shape)):
            continue
        if option[1] is not None:
            if isinstance(src, SparseTensor):
                continue  # a 2-index sparse tensor comes as its CSR matrix; this one is read otherwise
            res = _matrix_product(ev, f, src, option[1], option[2], over)
        else:
            res = _matricised_product(ev, f, src, option[2], option[3], option[4])
        if res is None:
            return None
        extra = tuple(v for v in over if v in res.vars)
        if extra:
            res = Labeled(ev.xp.sum(res.arr, axis=tuple(res.vars.index(v) for v in extra)),
                          tuple(v for v in res.vars if v not in extra))
        factor = scale
        for v in missing:  # a summed variable no factor reads multiplies the sum by its range
            factor *= ev.ranges[v][1] - ev.ranges[v][0]
        if factor != 1.0:
            res = Labeled(res.arr * factor, res.vars)
        return res
    return None


def _matrix_product(ev: Any, f: Read, mat: Any, b: str, g: Any, over: tuple[str, ...]) -> Labeled | None:
    """`R(a,b) X[b,...]` summed over b, R a scipy matrix (CSR times dense, or CSR times CSR)."""
    xp = ev.xp
    a = f.pos[0].expr.name if f.pos[1].expr.name == b else f.pos[1].expr.name
    if f.pos[0].expr.name == b:  # summed over the first index: use the transpose
        mat = mat.T
    other = _oriented(ev, g, b)
    if other is not None and other[1] != a:  # both sparse: CSR x CSR, nothing made dense but the result
        m2, c = other
        if c in over:  # summed over c too: the row sums of the other first, then a matrix-vector product
            res = Labeled(np.asarray(mat @ np.asarray(m2.sum(axis=1)).reshape(-1)).reshape(-1), (a,))
        else:
            res = Labeled(np.asarray((mat @ m2).toarray()), (a, c))
        return res if ev.backend.native else Labeled(ev.backend.from_numpy(res.arr), res.vars)
    x = ev.eval(g)
    if b not in x.vars or a in x.vars:
        return None
    rest = tuple(v for v in x.vars if v != b)
    arr = xp.asarray(align(x, (b,) + rest, xp), dtype=xp.float64)
    prod = ev.backend.sparse_matmul(mat, arr.reshape(arr.shape[0], -1))
    return Labeled(prod.reshape((mat.shape[0],) + tuple(arr.shape[1:])), (a,) + rest)


def _matricised_product(ev: Any, f: Read, src: Any, g: Any, kept: tuple[str, ...],
                        against: tuple[str, ...]) -> Labeled | None:
    """A sparse read times the rest of the join, summed over `against` (and over the read's other summed
    indices): the read as a (kept cells) x (against cells) CSR matrix times the rest as (against cells) x
    (its other cells)."""
    xp = ev.xp
    names = [p.expr.name for p in f.pos]
    rows, cols = tuple(names.index(v) for v in kept), tuple(names.index(v) for v in against)
    sizes = src.shape
    if int(np.prod([sizes[p] for p in rows], dtype=object)) >= _KEY_LIMIT or \
            int(np.prod([sizes[p] for p in cols], dtype=object)) >= _KEY_LIMIT:
        return None
    if isinstance(g, Join) and _outer_blowup(ev, f, g, kept, against):
        return None  # the rest would be multiplied out beyond its factors and the result: the dense join plans it
    x = ev.eval(g)
    if any(v not in x.vars for v in against) or any(v in x.vars for v in kept):
        return None
    mat = src.matricize(rows, cols) if isinstance(src, SparseTensor) else _matricize_scipy(src, rows, cols)
    rest = tuple(v for v in x.vars if v not in against)
    arr = xp.asarray(align(x, against + rest, xp), dtype=xp.float64)
    prod = ev.backend.sparse_matmul(mat, arr.reshape(mat.shape[1], -1))
    shape = tuple(sizes[p] for p in rows) + tuple(arr.shape[len(against):])
    return Labeled(prod.reshape(shape), kept + rest)


def _outer_blowup(ev: Any, f: Read, g: Join, kept: tuple[str, ...], against: tuple[str, ...]) -> bool:
    """The rest `g` of a matricised product has more cells than each of its factors and than the product's
    result (`Emb[x,i] Emb[y,j]` for `Parent(x,y) Emb[x,i] Emb[y,j]`): an outer product the planner's order avoids
    (plan/program.py predicts the dense join's intermediates, docs/planner.md), while the sparse read made dense
    would be smaller than that outer product."""
    def cells(vs) -> int:
        out = 1
        for v in vs:
            lo, hi = ev.ranges.get(v, (0, 1))
            out *= hi - lo
        return out
    gv = free_vars(g)
    result = tuple(kept) + tuple(v for v in gv if v not in against)
    big = cells(gv)
    return big > max([cells(result)] + [cells(free_vars(x)) for x in g.factors]) and cells(free_vars(f)) < big


_MATS: dict[tuple, tuple] = {}  # (id(matrix), rows, cols) -> (matrix, its matricised view)


def _matricize_scipy(mat: Any, rows: tuple[int, ...], cols: tuple[int, ...]) -> Any:
    """A 2-index scipy matrix's entries as a (rows) x (cols) CSR matrix (a position in neither is summed), made
    once per matrix (the executor caches a relation's CSR matrix per value version; the entry holds it, so its
    id is not reused meanwhile)."""
    hit = _MATS.get((id(mat), rows, cols))
    if hit is not None and hit[0] is mat:
        return hit[1]
    m = mat.tocoo()
    out = matricize(np.stack([m.row, m.col], axis=1).astype(np.int64), m.data, m.shape, rows, cols)
    if len(_MATS) > 64:
        _MATS.clear()
    _MATS[(id(mat), rows, cols)] = (mat, out)
    return out
