"""Projecting a join's result onto an equation's left side: `scatter` writes (or folds, for `max=`, `min=`,
`avg=`) each cell of the result into the head's cell its left-side index expressions name, by slicing where
every position is a constant or a shifted variable and by indexed accumulation otherwise."""

from __future__ import annotations

import functools

import numpy as np

from ..ir.nodes import IBin, IConst, IExpr, IVar, ix_vars
from .dense import Labeled, align, index_grid


@functools.lru_cache(maxsize=8192)
def scatter_static(lhs: tuple[IExpr, ...]) -> tuple[tuple[str, ...], list, bool, bool]:
    """A left side's variables in order, each position as an int (a constant) or (variable, shift), whether
    it is written by slicing (every position a constant or a distinct variable plus a constant), and whether
    every position is a distinct plain variable."""
    lhs_vars: list[str] = []
    for e in lhs:
        for v in ix_vars(e):
            if v not in lhs_vars:
                lhs_vars.append(v)
    shifts = [e.value if isinstance(e, IConst) else shift_of(e) for e in lhs]
    moving = [sh for sh in shifts if not isinstance(sh, int)]
    sliced = bool(lhs) and all(sh is not None for sh in shifts) and len({sh[0] for sh in moving}) == len(
        moving) == len(lhs_vars)
    whole = sliced and all(not isinstance(sh, int) and sh[1] == 0 for sh in shifts)
    return tuple(lhs_vars), shifts, sliced, whole


def shift_of(e: IExpr) -> tuple[str, int] | None:
    """`v`, `v+c` or `v-c` as (v, c)."""
    if isinstance(e, IVar):
        return e.name, 0
    if isinstance(e, IBin) and e.op in "+-" and isinstance(e.left, IVar) and isinstance(e.right, IConst):
        return e.left.name, (e.right.value if e.op == "+" else -e.right.value)
    return None


def scatter(res: Labeled, lhs: list[IExpr], ranges: dict, shape: tuple[int, ...], op: str, xp=np, into=None
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Accumulate `res` into an array of `shape` at the left side's index expressions, with `op`, in the array
    namespace `xp`; with `into` (op `+` only) added into that array instead of a new one of zeros."""
    lhs_vars, shifts, sliced, whole = scatter_static(lhs if isinstance(lhs, tuple) else tuple(lhs))
    extra = () if res.vars == lhs_vars else tuple(v for v in res.vars if v not in lhs_vars)
    per_cell = 1  # contributions folded into each grid cell (for avg=)
    if extra:  # indices projected by the operator (max=, ...), or a virtual index bound to one step
        axes = tuple(res.vars.index(v) for v in extra)
        fold = {"max": xp.max, "min": xp.min}.get(op, xp.sum)
        rshape = tuple(res.arr.shape)
        arr = fold(res.arr, axis=axes) if 0 not in rshape else xp.zeros(
            [n for k, n in enumerate(rshape) if k not in axes])
        per_cell = int(np.prod([rshape[a] for a in axes]))
        res = Labeled(arr, tuple(v for v in res.vars if v not in extra))
    order = tuple(lhs_vars)
    grid_shape = tuple(ranges[v][1] - ranges[v][0] for v in order)
    vals = align(res, order, xp)
    if tuple(vals.shape) != grid_shape:
        vals = xp.broadcast_to(vals, grid_shape)
    vals = xp.asarray(vals, dtype=xp.float64)
    if op == "+" and whole and into is None and res.fresh and vals is res.arr and grid_shape == shape and all(
            ranges[v][0] == 0 for v in order):
        return vals, None  # a new array covering the whole head, in its order: stored as it is
    if sliced:
        # each position is a constant or a distinct variable plus a constant: one (clipped) slice assignment
        # (each cell gets at most one value, so max=/min=/avg= need no reduction either)
        if op == "+":
            acc, aux = (xp.zeros(shape) if into is None else into), None
        elif op == "avg":
            acc, aux = xp.zeros(shape), xp.zeros(shape)
        else:
            acc, aux = xp.full(shape, -np.inf if op == "max" else np.inf), xp.zeros(shape, dtype=xp.bool_)
        dst, src = [], []
        for sh, n in zip(shifts, shape):
            if isinstance(sh, int):
                if not 0 <= sh < n:
                    return acc, aux
                dst.append(sh)
                continue
            v, c = sh
            lo, hi = ranges[v][0] + c, ranges[v][1] + c
            a, b = max(lo, 0), min(hi, n)
            if a >= b:
                return acc, aux
            dst.append(slice(a, b))
            src.append(slice(a - lo, b - lo))
        dst_t = tuple(dst)
        if into is None:  # (the variables are in the order of the positions: no transposition)
            acc[dst_t] = vals[tuple(src)]
        else:
            acc[dst_t] += vals[tuple(src)]
        if op == "avg":
            aux[dst_t] = float(per_cell)
        elif op in ("max", "min"):
            aux[dst_t] = True
        return acc, aux
    if not lhs:  # a scalar left side
        total = xp.asarray(vals, dtype=xp.float64).reshape(())
        if into is not None:
            into += total
            return into, None
        if op in ("max", "min"):
            return xp.copy(total), xp.asarray(True)
        return xp.copy(total), (xp.asarray(float(per_cell)) if op == "avg" else None)
    grids = [xp.broadcast_to(xp.asarray(index_grid(e, order, ranges, xp)), grid_shape) for e in lhs]
    valid = xp.ones(grid_shape, dtype=xp.bool_)
    for k, g in enumerate(grids):
        valid &= (g >= 0) & (g < shape[k])
    idx = tuple(g[valid] for g in grids)
    v = vals[valid]
    if op == "+":
        acc = xp.zeros(shape) if into is None else into
        xp.add.at(acc, idx, v)
        return acc, None
    if op in ("max", "min"):
        acc = xp.full(shape, -np.inf if op == "max" else np.inf)
        (xp.maximum if op == "max" else xp.minimum).at(acc, idx, v)
        touched = xp.zeros(shape, dtype=xp.bool_)
        touched[idx] = True
        return acc, touched
    acc, count = xp.zeros(shape), xp.zeros(shape)
    xp.add.at(acc, idx, v)
    xp.add.at(count, idx, float(per_cell))
    return acc, count


