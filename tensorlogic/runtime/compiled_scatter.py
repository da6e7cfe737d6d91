"""Compiling an equation's projection onto its left side (`scatter.scatter`) with its static part done.

`compile_scatter` returns `scatter(arr, into) -> (acc, aux)`, the interpreter's result for the right side's
array `arr`: a left side of distinct variables plus constants is one (clipped) slice assignment, prepared
once; a left side with index arithmetic scatters through precomputed destination indices (a plain fancy
assignment when no two grid cells land on one head cell, `np.add.at` otherwise); indices the left side does
not keep are folded first (`max=`, `min=`, a sum). `destination` says when the value can instead be computed
straight into the head (see `compiled_nodes.Root`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..ir.nodes import IExpr
from .compiled_nodes import Code, Context
from .dense import index_grid

ndarray = np.ndarray


def destination(ctx: Context, code: Code, lhs: tuple[IExpr, ...], shape: tuple[int, ...]) -> tuple | None:
    """(root, slice of the head) when the value can be computed straight into the head: its left side is
    written by slicing, in the value's own axis order, without clipping, and the value is a join's product
    changed only in place since."""
    from .scatter import scatter_static

    lhs_vars, shifts, sliced, _ = scatter_static(lhs)
    root = code.root

    def axes(vs: tuple[str, ...]) -> tuple[str, ...]:  # (axes of size 1 do not change a layout)
        return tuple(v for v in vs if ctx.size(v) != 1)

    if not sliced or root is None or not axes(root.vars) == axes(code.vars) == axes(lhs_vars):
        return None
    dst = []
    for sh, n in zip(shifts, shape):
        if isinstance(sh, int):
            if not 0 <= sh < n:
                return None
            dst.append(sh)
            continue
        v, c = sh
        lo, hi = ctx.ranges[v][0] + c, ctx.ranges[v][1] + c
        if lo < 0 or hi > n or lo >= hi:
            return None
        dst.append(slice(lo, hi))
    if int(np.prod(root.out_shape, dtype=np.int64)) != int(np.prod(ctx.shape(lhs_vars), dtype=np.int64)):
        return None
    return root, tuple(dst)


def compile_scatter(ctx: Context, res: Code, lhs: tuple[IExpr, ...], shape: tuple[int, ...], op: str,
                    zero_into: bool = False) -> Callable[[ndarray, ndarray | None], tuple[ndarray, ndarray | None]]:
    """`scatter.scatter` with its static part done now: `scatter(arr, into) -> (acc, aux)`; with `zero_into`
    the cells written in `into` are known to be zero (assigned instead of added to)."""
    from .scatter import scatter_static

    lhs_vars, shifts, sliced, whole = scatter_static(lhs)
    vars_ = res.vars
    fresh = res.fresh
    pre: list[Callable[[ndarray], ndarray]] = []  # array steps before the projection
    extra = () if vars_ == lhs_vars else tuple(v for v in vars_ if v not in lhs_vars)
    per_cell = 1
    if extra:  # fold the indices the left side does not keep (max=, min=, a summed-out virtual step)
        axes = tuple(vars_.index(v) for v in extra)
        fold = {"max": np.max, "min": np.min}.get(op, np.sum)
        rshape = ctx.shape(vars_)
        kept = tuple(v for v in vars_ if v not in extra)
        per_cell = int(np.prod([rshape[a] for a in axes]))
        if 0 in rshape:
            zshape = ctx.shape(kept)
            pre.append(lambda a: np.zeros(zshape))
        else:
            pre.append(lambda a: fold(a, axis=axes))
        vars_, fresh = kept, True
    order = tuple(lhs_vars)
    grid_shape = ctx.shape(order)
    if vars_ != order:
        perm = tuple(vars_.index(v) for v in order if v in vars_)
        ashape = tuple(ctx.size(v) if v in vars_ else 1 for v in order)
        pre.append(lambda a: a.transpose(perm).reshape(ashape))
        if ashape != grid_shape:
            pre.append(lambda a: np.broadcast_to(a, grid_shape))
        fresh = False
    prepare = _chain(pre)
    as_is = (op == "+" and whole and fresh and grid_shape == tuple(shape)
             and all(ctx.ranges[v][0] == 0 for v in order))
    if sliced:
        return _sliced_scatter(ctx, prepare, shifts, shape, op, per_cell, as_is, zero_into)
    if not lhs:
        return _scalar_scatter(prepare, op, per_cell)
    return _general_scatter(ctx, prepare, lhs, order, grid_shape, shape, op, per_cell)


def _chain(fs: list[Callable]) -> Callable[[ndarray], ndarray] | None:
    if not fs:
        return None
    if len(fs) == 1:
        return fs[0]

    def run(a: ndarray) -> ndarray:
        for f in fs:
            a = f(a)
        return a

    return run


def _readonly(a: ndarray) -> ndarray:
    a.flags.writeable = False
    return a


def _sliced_scatter(ctx: Context, prepare, shifts: list, shape: tuple[int, ...], op: str, per_cell: int,
                    as_is: bool, zero_into: bool) -> Callable:
    dst, src, empty = [], [], False
    for sh, n in zip(shifts, shape):
        if isinstance(sh, int):
            if not 0 <= sh < n:
                empty = True
                break
            dst.append(sh)
            continue
        v, c = sh
        lo, hi = ctx.ranges[v][0] + c, ctx.ranges[v][1] + c
        a, b = max(lo, 0), min(hi, n)
        if a >= b:
            empty = True
            break
        dst.append(slice(a, b))
        src.append(slice(a - lo, b - lo))
    dst_t, src_t = tuple(dst), tuple(src)
    if op == "+":
        if empty:
            return lambda arr, into: ((np.zeros(shape) if into is None else into), None)

        def scatter_add(arr, into):
            vals = arr if prepare is None else prepare(arr)
            if into is None:
                if as_is:
                    return vals, None
                acc = np.zeros(shape)
                acc[dst_t] = vals[src_t]
                return acc, None
            if zero_into:
                into[dst_t] = vals[src_t]
            else:
                into[dst_t] += vals[src_t]
            return into, None

        if zero_into:
            scatter_add.region = dst_t  # (all of it assigned: vals[src_t] has the region's shape)
        return scatter_add
    if op == "avg":
        aux = np.zeros(shape)
        if not empty:
            aux[dst_t] = float(per_cell)
        aux = _readonly(aux)
        fill = 0.0
    else:
        aux = np.zeros(shape, dtype=bool)
        if not empty:
            aux[dst_t] = True
        aux = _readonly(aux)
        fill = -np.inf if op == "max" else np.inf
    if empty:
        return lambda arr, into: (np.full(shape, fill), aux)

    def scatter_proj(arr, into):
        vals = arr if prepare is None else prepare(arr)
        acc = np.full(shape, fill)
        acc[dst_t] = vals[src_t]
        return acc, aux

    return scatter_proj


def _scalar_scatter(prepare, op: str, per_cell: int) -> Callable:
    aux = {"max": np.asarray(True), "min": np.asarray(True), "avg": np.asarray(float(per_cell))}.get(op)

    def scatter_scalar(arr, into):
        vals = arr if prepare is None else prepare(arr)
        total = np.asarray(vals, dtype=np.float64).reshape(())
        if into is not None:
            into += total
            return into, None
        return np.copy(total), (None if aux is None else aux.copy())

    return scatter_scalar


def _general_scatter(ctx: Context, prepare, lhs, order, grid_shape, shape, op: str, per_cell: int) -> Callable:
    """Index arithmetic on the left side: precomputed destination indices (cells outside are dropped)."""
    grids = [np.broadcast_to(np.asarray(index_grid(e, order, ctx.ranges)), grid_shape) for e in lhs]
    valid = np.ones(grid_shape, dtype=bool)
    for k, g in enumerate(grids):
        valid &= (g >= 0) & (g < shape[k])
    idx = tuple(np.ascontiguousarray(g[valid]) for g in grids)
    all_valid = bool(valid.all())
    flat = np.ravel_multi_index(idx, shape) if idx else np.zeros(0, dtype=np.int64)
    unique = len(np.unique(flat)) == len(flat)

    def select(arr):
        vals = arr if prepare is None else prepare(arr)
        return vals.reshape(-1) if all_valid else vals[valid]

    if op == "+":
        def scatter_add(arr, into):
            v = select(arr)
            acc = np.zeros(shape) if into is None else into
            if unique:  # each cell gets at most one value: a plain (fancy) assignment
                if into is None:
                    acc[idx] = v
                else:
                    acc[idx] += v
            else:
                np.add.at(acc, idx, v)
            return acc, None

        return scatter_add
    if op in ("max", "min"):
        touched = np.zeros(shape, dtype=bool)
        touched[idx] = True
        touched = _readonly(touched)
        fill = -np.inf if op == "max" else np.inf
        ufunc = np.maximum if op == "max" else np.minimum

        def scatter_ext(arr, into):
            acc = np.full(shape, fill)
            ufunc.at(acc, idx, select(arr))
            return acc, touched

        return scatter_ext
    count = np.zeros(shape)
    np.add.at(count, idx, float(per_cell))
    count = _readonly(count)

    def scatter_avg(arr, into):
        acc = np.zeros(shape)
        np.add.at(acc, idx, select(arr))
        return acc, count

    return scatter_avg
