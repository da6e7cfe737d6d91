"""Dense evaluation of IR expressions: labelled arrays, gathers with zero padding, pairwise contractions.

A `Labeled` value is an array whose axes are named by index variables; axis `v` covers the values
`ranges[v][0] .. ranges[v][1]-1`. Reads gather from a tensor (slicing when they can, advanced indexing with
zero padding when they must); products under a `Reduce` are contracted pairwise in the order the planner
gives (`plan.contract.plan_join`), never as one einsum over all operands.

Array-library neutral: every array operation goes through `xp`, the backend's array namespace (numpy's names;
the `numpy` module itself on the numpy backend, `backends.torch_backend.TorchNamespace` on torch), so the same
code runs on numpy arrays and torch tensors. Python operators (`+`, `*`, `//`, `<`, indexing) work on both.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir.nodes import (
    Add,
    Apply,
    Compare,
    Concat,
    Const,
    Equation,
    IBin,
    IConst,
    IExpr,
    IndexValue,
    IVar,
    Join,
    Neg,
    Node,
    Not,
    Pow,
    Read,
    Reduce,
    equation_str,
    expr_str,
    ix_vars,
)
from ..plan.program import cached_plan_join
from ..syntax.diagnostics import TLRuntimeError

Range = tuple[int, int]


@dataclass
class Labeled:
    """An array with one named index variable per axis."""

    arr: np.ndarray
    vars: tuple[str, ...]
    fresh: bool = False  # arr is a new array nothing else refers to (it may be stored as it is)


def to_numpy(a: Any) -> np.ndarray:
    """Any backend's array as a numpy array (what answers and users see)."""
    if isinstance(a, np.ndarray):
        return a
    from ..backends.numpy_backend import to_numpy as convert

    return convert(a)


def align(x: Labeled, order: tuple[str, ...], xp: Any = None) -> Any:
    """x's array with axes permuted to `order` and size-1 axes for variables it lacks, in the array namespace
    `xp`; without `xp`, as a numpy array (for answers)."""
    if xp is None:
        xp, arr = np, to_numpy(x.arr)
    else:
        arr = xp.asarray(x.arr)
    if x.vars == order:
        return arr
    perm = [x.vars.index(v) for v in order if v in x.vars]
    arr = xp.transpose(arr, perm) if perm != list(range(len(perm))) else arr
    shape = [arr.shape[perm.index(x.vars.index(v))] if v in x.vars else 1 for v in order]
    return arr.reshape(shape)


def fold_contribution(acc: Any, aux: Any, a: Any, x: Any, op: str, xp: Any = np) -> tuple[Any, Any]:
    """Fold one equation's contribution `a` into a head's accumulator by the head's projection `op` (`=`
    sums; `max=`/`min=` keep the extreme and `aux` marks the cells written; `avg=` sums and `aux` counts)."""
    if acc is None:
        return a, x
    if op == "+":
        return acc + a, aux
    if op == "max":
        return xp.maximum(acc, a), aux | x
    if op == "min":
        return xp.minimum(acc, a), aux | x
    return acc + a, aux + x


def finish_head(acc: Any, aux: Any, base: Any, op: str, boolean: bool, xp: Any = np) -> Any:
    """The head's value from its folded equations and its data `base` (None without data): cells no
    `max=`/`min=`/`avg=` equation wrote keep the data (or 0); a Boolean head is thresholded at 0."""
    if op in ("max", "min"):
        if base is not None:
            acc = xp.where(aux, (xp.maximum if op == "max" else xp.minimum)(acc, base), base)
        else:
            acc = xp.where(aux, acc, 0.0)
    elif op == "avg":
        acc = xp.where(aux > 0, acc / xp.maximum(aux, 1.0), 0.0)
        if base is not None:
            acc = acc + base
    elif base is not None:
        acc = acc + base
    if boolean:
        acc = xp.asarray(acc > 0, dtype=xp.float64)
    return acc


def union_vars(*xs: Labeled) -> tuple[str, ...]:
    out: list[str] = []
    for x in xs:
        for v in x.vars:
            if v not in out:
                out.append(v)
    return tuple(out)


def index_grid(e: IExpr, order: tuple[str, ...], ranges: dict[str, Range], xp: Any = np) -> Any:
    """Values of an index expression over the grid of `order` (broadcastable), or an int for a constant."""
    if isinstance(e, IConst):
        return e.value
    if isinstance(e, IVar):
        lo, hi = ranges[e.name]
        shape = [1] * len(order)
        shape[order.index(e.name)] = hi - lo
        return xp.arange(lo, hi, dtype=xp.int64).reshape(shape)
    assert isinstance(e, IBin)
    a, b = index_grid(e.left, order, ranges, xp), index_grid(e.right, order, ranges, xp)
    if e.op == "+":
        return a + b
    if e.op == "-":
        return a - b
    if e.op == "/":
        return a // b  # floor division and a modulus with the divisor's sign, as numpy's and torch's
    return a % b


def gather(value: Any, pos: list[IExpr] | tuple[IExpr, ...], ranges: dict[str, Range], xp: Any = np) -> Labeled:
    """`value[pos...]` as a labelled array over the variables of `pos`; reads outside are 0."""
    hit = _GATHER.get(id(pos))
    if hit is not None and hit[0] is pos:
        order_t, plain = hit[1]
    else:
        order_t, plain = static = _gather_static(tuple(pos))
        if isinstance(pos, tuple):  # immutable: remembered by identity (the entry holds it, so its id stays)
            if len(_GATHER) > 20_000:
                _GATHER.clear()
            _GATHER[id(pos)] = (pos, static)
    if plain is not None:  # distinct variables and constants: a slice (the whole array when it covers it)
        index: list[slice | int] = []
        whole = True
        for k, e in enumerate(plain):
            n = value.shape[k]
            if isinstance(e, int):
                if not 0 <= e < n:
                    return Labeled(xp.zeros([ranges[v][1] - ranges[v][0] for v in order_t]), order_t)
                index.append(e)
                whole = False
            else:
                lo, hi = ranges[e]
                if lo < 0 or hi > n:
                    break
                index.append(slice(lo, hi))
                whole = whole and lo == 0 and hi == n
        else:
            return Labeled(value if whole else value[tuple(index)], order_t)
    grids = [index_grid(e, order_t, ranges, xp) for e in pos]
    shape = tuple(ranges[v][1] - ranges[v][0] for v in order_t)
    full = [xp.broadcast_to(xp.asarray(g), shape) for g in grids]
    valid = xp.ones(shape, dtype=xp.bool_)
    for k, g in enumerate(full):
        valid &= (g >= 0) & (g < value.shape[k])
    idx = tuple(xp.clip(g, 0, max(0, value.shape[k] - 1)) for k, g in enumerate(full))
    if 0 in value.shape:
        return Labeled(xp.zeros(shape), order_t)
    out = xp.where(valid, value[idx], 0.0)
    return Labeled(out, order_t)


_GATHER: dict[int, tuple] = {}  # id(positions) -> (positions, _gather_static(positions))


@functools.lru_cache(maxsize=8192)
def _gather_static(pos: tuple[IExpr, ...]) -> tuple[tuple[str, ...], tuple[str | int, ...] | None]:
    """A read's variables in order, and its positions as names and integers when each is a distinct variable
    or a constant (else None): computed once per list of index expressions."""
    order: list[str] = []
    for e in pos:
        for v in ix_vars(e):
            if v not in order:
                order.append(v)
    names = [e.name for e in pos if isinstance(e, IVar)]
    plain = None
    if all(isinstance(e, IVar | IConst) for e in pos) and len(names) == len(set(names)):
        plain = tuple(e.name if isinstance(e, IVar) else e.value for e in pos)
    return tuple(order), plain


class DenseEvaluator:
    """Evaluates an IR expression densely, given tensor values and variable ranges."""

    def __init__(self, backend, read_value: Callable[[Read], tuple[Any, list[IExpr]]],
                 ranges: dict[str, Range],
                 user_functions: dict[str, Callable] | None = None, where: str | Equation = ""):
        self.backend = backend
        self.xp = backend.xp  # the array namespace: numpy itself, or the backend's equivalent
        self.read_value = read_value
        self.ranges = ranges
        self.user_functions = user_functions or {}
        self._where = where  # the equation (its text is made only for an error message) or a text
        self.read_sparse: Callable[[Read], object] | None = None  # a relation as a CSR matrix, or None
        self.cache: dict | None = None  # shared sub-joins: signature -> result (set by the executor)
        self.versions: Callable[[str], int] | None = None  # a tensor's value version, part of the signature
        self.shared = 0  # joins answered from the cache
        self.steps: list = []  # contraction plans used, for TL_DEBUG=plan
        self.max_transient = 0  # bytes of the largest intermediate of a pairwise step
        self.prefer: tuple[str, ...] = ()  # the left side's variables: a join's result is laid out in this order
        self.join_limit: int | None = None  # bytes a join may use (memory budget); beyond, sliced (runtime/sliced.py)

    @property
    def where(self) -> str:
        return self._where if isinstance(self._where, str) else equation_str(self._where)

    def full(self, x: Labeled, order: tuple[str, ...]) -> Any:
        arr = align(x, order, self.xp)
        shape = tuple(self.ranges[v][1] - self.ranges[v][0] for v in order)
        return self.xp.broadcast_to(arr, shape)

    def eval(self, n: Node) -> Labeled:
        xp = self.xp
        if isinstance(n, Read):
            return self.read(n)
        if isinstance(n, Const):
            return Labeled(xp.asarray(float(n.value), dtype=xp.float64), ())
        if isinstance(n, IndexValue):
            lo, hi = self.ranges[n.var]
            return Labeled(xp.arange(lo, hi, dtype=xp.float64), (n.var,))
        if isinstance(n, Reduce):
            return self.reduce(n)
        if isinstance(n, Join):
            return self.join(n, None)
        if isinstance(n, Add):
            xs = [self.eval(t) for t in n.terms]
            order = union_vars(*xs)
            total = None
            for x, s in zip(xs, n.signs):
                a = align(x, order, xp)
                total = (a if s > 0 else -a) if total is None else (total + a if s > 0 else total - a)
            return Labeled(total, order)
        if isinstance(n, Neg):
            x = self.eval(n.operand)
            return Labeled(-x.arr, x.vars)
        if isinstance(n, Pow):
            b, e = self.eval(n.base), self.eval(n.exponent)
            order = union_vars(b, e)
            with xp.errstate(invalid="ignore", divide="ignore"):
                return Labeled(xp.power(align(b, order, xp), align(e, order, xp)), order)
        if isinstance(n, Apply):
            return self.apply(n)
        if isinstance(n, Concat):
            return self.concat(n)
        if isinstance(n, Compare):
            order = tuple(dict.fromkeys(ix_vars(n.left) + ix_vars(n.right)))
            a, b = index_grid(n.left, order, self.ranges, xp), index_grid(n.right, order, self.ranges, xp)
            return Labeled(xp.asarray(_COMPARE[n.op](a, b), dtype=xp.float64), order)
        if isinstance(n, Not):
            x = self.read(n.operand)
            return Labeled(xp.asarray(xp.asarray(x.arr) <= 0, dtype=xp.float64), x.vars)
        raise TypeError(f"cannot evaluate {n!r}")

    def cache_key(self, n: Reduce) -> tuple | None:
        """A join's signature: its text (tensors, index expressions, summed indices), the ranges of its
        indices and the versions of the tensors it reads. Equal signatures compute equal values."""
        if self.versions is None:
            return None
        text, vars_, tensors = _static(n)
        ranges = self.ranges
        return (text, tuple((v, ranges[v]) for v in vars_ if v in ranges),
                tuple((t, self.versions(t)) for t in tensors))

    def read(self, r: Read) -> Labeled:
        value, pos = self.read_value(r)
        return gather(value, pos, self.ranges, self.xp)

    def reduce(self, n: Reduce) -> Labeled:
        if isinstance(n.operand, Join):
            if self.cache is None:
                return self.join(n.operand, n.over)
            key = self.cache_key(n)
            if key is not None and key in self.cache:
                self.shared += 1
                return self.cache[key]
            res = self.join(n.operand, n.over)
            if key is not None:  # shared from now on: not fresh
                res = self.cache[key] = Labeled(res.arr, res.vars)
            return res
        x = self.eval(n.operand)
        axes = tuple(x.vars.index(v) for v in n.over if v in x.vars)
        missing = [v for v in n.over if v not in x.vars]
        arr = self.xp.sum(x.arr, axis=axes) if axes else self.xp.asarray(x.arr)
        for v in missing:  # a summed variable the operand does not depend on multiplies by its range
            arr = arr * (self.ranges[v][1] - self.ranges[v][0])
        return Labeled(arr, tuple(v for v in x.vars if v not in n.over))

    def sparse_matmul(self, n: Join, over: tuple[str, ...]) -> Labeled | None:
        """`R(a,b) X[b,...]` summed over b, with R stored sparse (a relation or a sparse numeric tensor): a scipy
        product, X dense or sparse, nothing sparse made dense (runtime/sparse_eval.py)."""
        from .sparse_eval import sparse_join

        return sparse_join(self, n, over)

    def join(self, n: Join, over: tuple[str, ...] | None) -> Labeled:
        if over:
            res = self.sparse_matmul(n, tuple(over))
            if res is not None:
                return res
        xp = self.xp
        xs: list[Labeled] = []
        for f, d in zip(n.factors, n.divides):
            x = self.eval(f)
            if d:
                with xp.errstate(divide="ignore", invalid="ignore"):
                    x = Labeled(1.0 / xp.asarray(x.arr, dtype=xp.float64), x.vars)
            xs.append(x)
        over = tuple(over or ())
        allv = union_vars(*xs)
        out = tuple(v for v in allv if v not in over)
        scale = 1
        for v in over:
            if v not in allv:
                scale *= self.ranges[v][1] - self.ranges[v][0]
        if len(xs) == 1:
            x = xs[0]
            axes = tuple(x.vars.index(v) for v in over if v in x.vars)
            arr = xp.sum(x.arr, axis=axes) if axes else x.arr
            return Labeled(arr * scale if scale != 1 else arr, tuple(v for v in x.vars if v not in over))
        sizes = {v: self.ranges[v][1] - self.ranges[v][0] for v in allv}
        plan = cached_plan_join([x.vars for x in xs], out, sizes)
        if self.join_limit is not None:  # under a memory budget: sliced when it does not fit (runtime/sliced.py)
            from .sliced import sliced_join

            if (res := sliced_join(self, n, xs, out, sizes, scale, plan)) is not None:
                return res
        self.steps.append(plan)
        ops = list(xs)
        last = len(plan.steps) - 1
        for n_step, step in enumerate(plan.steps):
            i, j = step.operands
            a, b = ops[i], ops[j]
            output = tuple(step.output)
            if n_step == last and self.prefer:  # the result's axes in the left side's order: its layout as stored
                output = _in_order(output, self.prefer)
            sub = _subscripts(a.vars, b.vars, output)
            res = self.backend.contract(sub, xp.asarray(a.arr, dtype=xp.float64), xp.asarray(b.arr, dtype=xp.float64))
            for k in sorted((i, j), reverse=True):
                ops.pop(k)
            ops.append(Labeled(res, output))
            self.max_transient = max(self.max_transient, int(res.nbytes))
        result = ops[-1]
        if scale != 1:
            result = Labeled(result.arr * scale, result.vars)
        result.fresh = len(xs) > 1  # the last pairwise product's own array
        return result

    def apply(self, n: Apply) -> Labeled:
        xp = self.xp
        if n.func in ("softmax", "lnorm"):
            x = self.eval(n.args[0])
            v = n.norm_var
            if v not in x.vars:
                x = Labeled(self.full(x, x.vars + (v,)), x.vars + (v,))
            axis = x.vars.index(v)
            fn = self.backend.softmax if n.func == "softmax" else self.backend.lnorm
            return Labeled(fn(xp.asarray(x.arr, dtype=xp.float64), axis), x.vars, True)
        if n.func == "sig" and len(n.args) == 2:
            x, t = self.eval(n.args[0]), self.eval(n.args[1])
            if t.vars:
                raise TLRuntimeError(f"the temperature of sig must be a scalar in {self.where}", n.span)
            return Labeled(self.backend.sig_temperature(xp.asarray(x.arr, dtype=xp.float64), float(t.arr)),
                           x.vars)
        xs = [self.eval(a) for a in n.args]
        if n.func in self.backend.functions:
            x = xs[0]
            return Labeled(self.backend.functions[n.func](xp.asarray(x.arr, dtype=xp.float64)), x.vars, True)
        fn = self.user_functions[n.func]
        order = union_vars(*xs)
        try:  # a Python function gets and returns numpy arrays, whatever the backend
            res = np.asarray(fn(*[align(x, order) for x in xs]), dtype=np.float64)
        except Exception as e:  # a user's function failed: say which, where
            raise TLRuntimeError(f"the function '{n.func}' raised {type(e).__name__}: {e}", n.span) from None
        return Labeled(res if self.backend.native else self.backend.from_numpy(res), order)

    def concat(self, n: Concat) -> Labeled:
        x = self.eval(n.operand)
        rest = tuple(v for v in x.vars if v not in n.merged)
        order = rest + n.merged
        arr = self.full(x, order)
        k = len(rest)
        merged = arr.reshape(arr.shape[:k] + (-1,))
        return Labeled(merged, rest + (n.into,))


_STATIC: dict[int, tuple] = {}  # id(node) -> (node, its text, its variables, the tensors it reads)


def _static(n: Node) -> tuple[str, list[str], list[str]]:
    """What a join's signature takes from the node itself, computed once per node (nodes are not changed after
    analysis; the entry holds the node, so its id is not reused while cached)."""
    hit = _STATIC.get(id(n))
    if hit is not None and hit[0] is n:
        return hit[1]
    from ..ir.nodes import node_vars, reads

    if len(_STATIC) > 20_000:
        _STATIC.clear()
    val = (expr_str(n), node_vars(n), sorted({r.tensor for r in reads(n)}))
    _STATIC[id(n)] = (n, val)
    return val


_COMPARE = {"!=": operator.ne, "==": operator.eq, "<": operator.lt, "<=": operator.le, ">": operator.gt,
            ">=": operator.ge}


@functools.lru_cache(maxsize=8192)
def _in_order(vs: tuple[str, ...], prefer: tuple[str, ...]) -> tuple[str, ...]:
    """`vs` with the variables of `prefer` first, in its order, then the others as they were."""
    return tuple(sorted(vs, key=lambda v: prefer.index(v) if v in prefer else len(prefer)))


@functools.lru_cache(maxsize=8192)
def _subscripts(a: tuple[str, ...], b: tuple[str, ...], out: tuple[str, ...]) -> str:
    """One pairwise step in einsum notation (made once per variables)."""
    letters = _letters(tuple(dict.fromkeys(a + b)))
    return f"{''.join(letters[v] for v in a)},{''.join(letters[v] for v in b)}->{''.join(letters[v] for v in out)}"


def _letters(vs: tuple[str, ...]) -> dict[str, str]:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if len(vs) > len(alphabet):
        raise TLRuntimeError(f"one pairwise step over {len(vs)} indices exceeds numpy.einsum's 52 labels")
    return {v: alphabet[k] for k, v in enumerate(vs)}


__all__ = ["DenseEvaluator", "Labeled", "align", "gather", "index_grid", "expr_str", "to_numpy"]
