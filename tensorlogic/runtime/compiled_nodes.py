"""Compiling one IR expression into closures of numpy calls, with everything static worked out once.

`compile_node(ctx, node)` turns an expression (for one equation and one set of index ranges) into a `Code`:
a closure `fn(ex) -> ndarray` that only makes array calls, the index variables of its axes, and whether the
array it returns is `fresh` (new, referenced by nothing else, so later elementwise steps may overwrite it).
Everything `dense.DenseEvaluator` decides per run is decided here once: a read's slice or its gather
indices (flat, with the cells outside the tensor), every pairwise contraction's plan (`_pair_plan`, the
same plan the backend would make, so the numbers are the interpreter's), transpositions and reshapes that
align terms, softmax/lnorm axes, constant arrays (`Compare`, index values).

Elementwise chains run in place: an operation whose input is fresh writes its result into that input
(`np.add(x, y, out=x)`, `np.maximum(x, 0, out=x)`, softmax and lnorm in place), so `relu(W[h,i] X[i] + B[h])`
allocates one array (the matmul's result) instead of three. That is what "fused" means on numpy: one pass
per operation, no intermediate allocation; the arithmetic is the interpreter's, operation for operation.

Products and sums (`Reduce`, `Join`) are compiled in `compiled_joins.py`.

`NotCompiled` is raised for what the compiler leaves to the interpreter (user functions, sparse relations
read as matrices, sliced plans, a non-scalar temperature); `Fallback` at run time when a value turns out
not to be a dense numpy array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..backends.numpy_backend import (
    INPLACE_FUNCTIONS,
    lnorm_inplace,
    softmax_inplace,
)
from ..ir.nodes import (
    Add,
    Apply,
    Compare,
    Concat,
    Const,
    IndexValue,
    Join,
    Neg,
    Node,
    Not,
    Pow,
    Read,
    Reduce,
    ix_vars,
)
from .dense import _COMPARE, _gather_static, index_grid, union_vars

ndarray = np.ndarray


class NotCompiled(Exception):
    """The expression is left to the interpreter."""


class Fallback(Exception):
    """At run time: a value is not a dense numpy array (a relation); the interpreter evaluates instead."""


@dataclass
class Code:
    fn: Callable[[object], ndarray]
    vars: tuple[str, ...]
    fresh: bool = False
    root: Root | None = None  # the contraction this array comes from, changed in place since (see Root)

    def __post_init__(self) -> None:
        if not self.vars:  # a 0-d result may be a numpy scalar (immutable): never written in place
            self.fresh = False
            self.root = None


class Root:
    """A join's last pairwise product that can be written into a given array (destination passing).

    When an equation's value is that product, possibly changed in place since (`relu(W[i,j] X[j] + B[i])`),
    and goes to a zero slice of its head (a layer of a layered recursion), the compiled equation arms the root
    with that slice (`dest`, shaped as the product's `out_shape`): the product is computed straight into the
    head and the elementwise steps run there, so nothing is copied. Used once per arming."""

    __slots__ = ("vars", "out_shape", "dest")

    def __init__(self, vars_: tuple[str, ...], out_shape: tuple[int, ...]):
        self.vars, self.out_shape, self.dest = vars_, out_shape, None


@dataclass
class Context:
    """What compiling one equation at one set of ranges needs."""

    ex: object  # the Executor (values at compile time: shapes, and whether a value is dense)
    ranges: dict[str, tuple[int, int]]
    prefer: tuple[str, ...]  # the left side's variables: each join's last step lays its result out so
    share: Callable[[Reduce, str], bool]  # whether a join (node, text) goes through the executor's join cache
    functions: dict  # the backend's elementwise functions
    max_transient: int = 0  # bytes of the largest pairwise result (the executor's peak accounting)
    drop: frozenset = frozenset()  # variables fixed to one value (a layer): plain reads index them, no axis

    def size(self, v: str) -> int:
        lo, hi = self.ranges[v]
        return hi - lo

    def shape(self, vs: tuple[str, ...]) -> tuple[int, ...]:
        return tuple(self.size(v) for v in vs)

    def nbytes(self, vs: tuple[str, ...]) -> int:
        return 8 * int(np.prod(self.shape(vs), dtype=np.int64))


def _const(arr: ndarray, vars_: tuple[str, ...]) -> Code:
    arr = np.asarray(arr, dtype=np.float64)
    arr.flags.writeable = False
    return Code(lambda ex: arr, vars_)


def _aligner(vs: tuple[str, ...], order: tuple[str, ...], ctx: Context) -> Callable[[ndarray], ndarray] | None:
    """`dense.align` as a precomputed transpose and reshape (None: the array already is in `order`)."""
    if vs == order:
        return None
    perm = tuple(vs.index(v) for v in order if v in vs)
    shape = tuple(ctx.size(v) if v in vs else 1 for v in order)
    if perm == tuple(range(len(perm))):
        return lambda a: a.reshape(shape)
    return lambda a: a.transpose(perm).reshape(shape)


def compile_node(ctx: Context, n: Node) -> Code:
    if isinstance(n, Read):
        return compile_read(ctx, n)
    if isinstance(n, Const):
        return _const(np.asarray(float(n.value)), ())
    if isinstance(n, IndexValue):
        lo, hi = ctx.ranges[n.var]
        return _const(np.arange(lo, hi, dtype=np.float64), (n.var,))
    if isinstance(n, Reduce):
        from .compiled_joins import compile_reduce

        return compile_reduce(ctx, n)
    if isinstance(n, Join):
        from .compiled_joins import compile_join

        return compile_join(ctx, n, ())
    if isinstance(n, Add):
        return compile_add(ctx, n)
    if isinstance(n, Neg):
        x = compile_node(ctx, n.operand)
        f = x.fn
        if x.fresh:
            return Code(lambda ex: _neg_inplace(f(ex)), x.vars, True, x.root)
        return Code(lambda ex: -f(ex), x.vars, True)
    if isinstance(n, Pow):
        return compile_pow(ctx, n)
    if isinstance(n, Apply):
        return compile_apply(ctx, n)
    if isinstance(n, Concat):
        return compile_concat(ctx, n)
    if isinstance(n, Compare):
        order = tuple(dict.fromkeys(ix_vars(n.left) + ix_vars(n.right)))
        a, b = index_grid(n.left, order, ctx.ranges), index_grid(n.right, order, ctx.ranges)
        return _const(np.asarray(_COMPARE[n.op](a, b), dtype=np.float64), order)
    if isinstance(n, Not):
        x = compile_read(ctx, n.operand)
        f = x.fn
        return Code(lambda ex: np.asarray(f(ex) <= 0, dtype=np.float64), x.vars, True)
    raise NotCompiled(f"{type(n).__name__}")


def _neg_inplace(a: ndarray) -> ndarray:
    return np.negative(a, out=a)


def _value_getter(ctx: Context, name: str) -> tuple[Callable[[object], ndarray], ndarray]:
    """A closure fetching the tensor's current value (a dense numpy array, else Fallback), and its value now."""
    v = ctx.ex.values[name]
    if type(v) is not ndarray:
        raise NotCompiled(f"{name} is not a dense array")

    def get(ex) -> ndarray:
        a = ex.values[name]
        if type(a) is not ndarray:
            raise Fallback(name)
        return a

    return get, v


def compile_read(ctx: Context, r: Read) -> Code:
    """`dense.gather`: the whole value, a slice, or a gather through precomputed flat indices (0 outside)."""
    t = ctx.ex.prog.tensors[r.tensor]
    pos = tuple(p.expr for k, p in enumerate(r.pos) if k != t.virtual_axis)
    order, plain = _gather_static(pos)
    get, value = _value_getter(ctx, r.tensor)
    vshape = value.shape
    shape = ctx.shape(order)
    if plain is not None:
        index: list = []
        whole = True
        kept = order
        for k, e in enumerate(plain):
            n = vshape[k]
            if isinstance(e, int):
                if not 0 <= e < n:
                    return _const(np.zeros(shape), order)
                index.append(e)
                whole = False
            else:
                lo, hi = ctx.ranges[e]
                if lo < 0 or hi > n:
                    break
                if e in ctx.drop and hi - lo == 1:  # a fixed layer: an integer index, the axis dropped
                    index.append(lo)
                    kept = tuple(v for v in kept if v != e)
                    whole = False
                    continue
                index.append(slice(lo, hi))
                whole = whole and lo == 0 and hi == n
        else:
            if whole:
                return Code(get, order)
            idx = tuple(index)
            return Code(lambda ex, idx=idx: get(ex)[idx], kept)
    if 0 in vshape:
        return _const(np.zeros(shape), order)
    grids = [np.broadcast_to(np.asarray(index_grid(e, order, ctx.ranges)), shape) for e in pos]
    valid = np.ones(shape, dtype=bool)
    for k, g in enumerate(grids):
        valid &= (g >= 0) & (g < vshape[k])
    clipped = tuple(np.clip(g, 0, max(0, vshape[k] - 1)) for k, g in enumerate(grids))
    flat = np.ravel_multi_index(clipped, vshape) if pos else np.zeros(shape, dtype=np.int64)
    invalid = ~valid
    if not invalid.any():
        return Code(lambda ex: get(ex).take(flat), order, True)

    def gather(ex) -> ndarray:
        out = get(ex).take(flat)
        out[invalid] = 0.0
        return out

    return Code(gather, order, True)


def compile_add(ctx: Context, n: Add) -> Code:
    xs = [compile_node(ctx, t) for t in n.terms]
    order = union_vars(*[_Lab(x.vars) for x in xs])
    fns = [x.fn for x in xs]
    aligners = [_aligner(x.vars, order, ctx) for x in xs]
    terms = [(f if al is None else _compose(al, f)) for f, al in zip(fns, aligners)]
    signs = list(n.signs)
    full = [x.vars == order or set(x.vars) == set(order) for x in xs]
    # in place into the first term when it is fresh and has every axis (its aligned view is the full shape)
    if xs[0].fresh and full[0]:
        first, rest = terms[0], list(zip(terms[1:], signs[1:]))
        s0 = signs[0]

        def add_inplace(ex) -> ndarray:
            acc = first(ex)
            if s0 < 0:
                np.negative(acc, out=acc)
            for f, s in rest:
                (np.add if s > 0 else np.subtract)(acc, f(ex), out=acc)
            return acc

        return Code(add_inplace, order, True, xs[0].root if aligners[0] is None else None)
    pairs = list(zip(terms, signs))
    size_of = [int(np.prod(ctx.shape(tuple(v for v in order if v in x.vars)))) for x in xs]
    total = int(np.prod(ctx.shape(order))) if order else -1  # (a 0-d sum may be a numpy scalar: never owned)

    def add(ex) -> ndarray:
        acc = None
        owned = False
        for k, (f, s) in enumerate(pairs):
            a = f(ex)
            if acc is None:
                acc = a if s > 0 else -a
                owned = s < 0 and size_of[k] == total
            elif owned:
                (np.add if s > 0 else np.subtract)(acc, a, out=acc)
            else:
                acc = acc + a if s > 0 else acc - a
                owned = acc.size == total
        return acc

    return Code(add, order, True)


@dataclass
class _Lab:
    vars: tuple[str, ...]


def _compose(outer: Callable, inner: Callable) -> Callable:
    return lambda ex: outer(inner(ex))


def compile_pow(ctx: Context, n: Pow) -> Code:
    b, e = compile_node(ctx, n.base), compile_node(ctx, n.exponent)
    order = union_vars(_Lab(b.vars), _Lab(e.vars))
    fb, fe = b.fn, e.fn
    ab, ae = _aligner(b.vars, order, ctx), _aligner(e.vars, order, ctx)
    if ab is not None:
        fb = _compose(ab, fb)
    if ae is not None:
        fe = _compose(ae, fe)
    inplace = b.fresh and b.vars == order

    def power(ex) -> ndarray:
        x, y = fb(ex), fe(ex)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.power(x, y, out=x) if inplace else np.power(x, y)

    return Code(power, order, True, b.root if inplace and ab is None else None)


def compile_apply(ctx: Context, n: Apply) -> Code:
    if n.func in ("softmax", "lnorm"):
        x = compile_node(ctx, n.args[0])
        v = n.norm_var
        f = x.fn
        vars_ = x.vars
        fresh = x.fresh
        if v not in vars_:
            shape = ctx.shape(vars_ + (v,))
            inner = f
            f = lambda ex: np.broadcast_to(inner(ex)[..., None], shape)  # noqa: E731
            vars_, fresh = vars_ + (v,), False
        axis = vars_.index(v)
        if fresh:
            fn = softmax_inplace if n.func == "softmax" else lnorm_inplace
            return Code(lambda ex: fn(f(ex), axis), vars_, True, x.root)
        be = ctx.ex.backend
        fn = be.softmax if n.func == "softmax" else be.lnorm
        return Code(lambda ex: fn(f(ex), axis), vars_, True)
    if n.func == "sig" and len(n.args) == 2:
        x, t = compile_node(ctx, n.args[0]), compile_node(ctx, n.args[1])
        if t.vars:
            raise NotCompiled("a non-scalar temperature")  # the interpreter reports it
        fx, ft, sig_t = x.fn, t.fn, ctx.ex.backend.sig_temperature
        return Code(lambda ex: sig_t(fx(ex), float(ft(ex))), x.vars, True)
    if n.func not in ctx.functions:
        raise NotCompiled(f"the user function {n.func}")
    x = compile_node(ctx, n.args[0])
    f = x.fn
    if x.fresh and n.func in INPLACE_FUNCTIONS:
        g = INPLACE_FUNCTIONS[n.func]
        return Code(lambda ex: g(f(ex)), x.vars, True, x.root)
    g = ctx.functions[n.func]
    return Code(lambda ex: g(f(ex)), x.vars, True)


def compile_concat(ctx: Context, n: Concat) -> Code:
    x = compile_node(ctx, n.operand)
    rest = tuple(v for v in x.vars if v not in n.merged)
    order = rest + n.merged
    al = _aligner(x.vars, order, ctx)
    shape = ctx.shape(order)
    k = len(rest)
    new_shape = shape[:k] + (int(np.prod(shape[k:], dtype=np.int64)),)
    f = x.fn
    vars_ = rest + (n.into,)
    if set(x.vars) == set(order) and vars_:  # no broadcasting: copied straight into the head when armed
        root = Root(vars_, shape)

        def concat_into(ex) -> ndarray:
            a = f(ex) if al is None else al(f(ex))
            dest = root.dest
            if dest is not None:
                root.dest = None
                np.copyto(dest, a)
                return dest.reshape(new_shape)
            return a.reshape(new_shape)

        return Code(concat_into, vars_, False, root)
    if al is None:
        return Code(lambda ex: np.broadcast_to(f(ex), shape).reshape(new_shape), vars_)
    return Code(lambda ex: np.broadcast_to(al(f(ex)), shape).reshape(new_shape), vars_)
