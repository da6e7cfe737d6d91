"""Compiling products and sums (`Reduce`, `Join`): the planned pairwise contractions as closures.

`compile_join` is `dense.DenseEvaluator.join` with its static part done once: the factors (divisors
inverted, in place when fresh), the plan of `plan.program.cached_plan_join`, each pairwise step's numpy
kernel (`numpy_backend.pair_function`, the backend's own plan specialised), the last step laid out in the
left side's order, and a `Root` so the last product can be written into the head. `compile_reduce` adds the
executor's shared-join cache for the joins worth sharing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from ..backends.numpy_backend import _pair_plan, _run_pair_out, pair_function, pair_out_shape
from ..ir.nodes import Join, Reduce, expr_str
from ..plan.program import cached_plan_join
from .compiled_nodes import Code, Context, NotCompiled, Root, _Lab, compile_node
from .dense import Labeled, _in_order, _subscripts, union_vars

ndarray = np.ndarray


def compile_reduce(ctx: Context, n: Reduce) -> Code:
    if isinstance(n.operand, Join):
        code = compile_join(ctx, n.operand, tuple(n.over))
        text = expr_str(n)
        if not ctx.share(n, text):
            return code
        return _shared(ctx, n, text, code)
    x = compile_node(ctx, n.operand)
    axes = tuple(x.vars.index(v) for v in n.over if v in x.vars)
    scale = 1
    for v in n.over:
        if v not in x.vars:
            scale *= ctx.size(v)
    out = tuple(v for v in x.vars if v not in n.over)
    f = x.fn
    if not axes and scale == 1:
        return Code(f, out, x.fresh)
    if not axes:
        return Code(lambda ex: f(ex) * scale, out, True)
    if scale == 1:
        return Code(lambda ex: np.sum(f(ex), axis=axes), out, True)
    return Code(lambda ex: np.sum(f(ex), axis=axes) * scale, out, True)


def _shared(ctx: Context, n: Reduce, text: str, code: Code) -> Code:
    """A join that occurs more than once in the program: computed once per input versions
    (`DenseEvaluator.cache_key`'s signature), its result not fresh (it is shared)."""
    from ..ir.nodes import node_vars, reads

    rng = tuple((v, ctx.ranges[v]) for v in node_vars(n) if v in ctx.ranges)
    tensors = tuple(sorted({r.tensor for r in reads(n)}))
    f = code.fn
    vars_ = code.vars

    def shared(ex) -> ndarray:
        version = ex.values.version
        key = (text, rng, tuple((t, version(t)) for t in tensors))
        cache = ex.join_cache
        hit = cache.get(key)
        if hit is not None:
            ex.shared_joins += 1
            if hit.vars == vars_:
                return hit.arr
            return hit.arr.transpose([hit.vars.index(v) for v in vars_])  # stored by another equation's layout
        res = f(ex)
        cache[key] = Labeled(res, vars_)
        return res

    return Code(shared, vars_, False)


def compile_join(ctx: Context, n: Join, over: tuple[str, ...]) -> Code:
    """`DenseEvaluator.join`: factors, divisors inverted, then the planned pairwise contractions."""
    xs: list[Code] = []
    for fnode, d in zip(n.factors, n.divides):
        x = compile_node(ctx, fnode)
        if d:
            f = x.fn
            x = Code(functools.partial(_inverse, f, x.fresh), x.vars, True)
        xs.append(x)
    allv = union_vars(*[_Lab(x.vars) for x in xs])
    out = tuple(v for v in allv if v not in over)
    scale = 1
    for v in over:
        if v not in allv:
            scale *= ctx.size(v)
    if len(xs) == 1:
        x = xs[0]
        axes = tuple(x.vars.index(v) for v in over if v in x.vars)
        f = x.fn
        res_vars = tuple(v for v in x.vars if v not in over)
        if axes:
            g = (lambda ex: np.sum(f(ex), axis=axes) * scale) if scale != 1 else (
                lambda ex: np.sum(f(ex), axis=axes))
            return Code(g, res_vars, True)
        if scale != 1:
            return Code(lambda ex: f(ex) * scale, res_vars, True)
        return Code(f, res_vars, x.fresh)
    sizes = {v: ctx.size(v) for v in allv}
    plan = cached_plan_join([x.vars for x in xs], out, sizes)
    if plan.sliced:
        raise NotCompiled("a sliced contraction")
    ops: list[tuple[int, tuple[str, ...]]] = [(k, x.vars) for k, x in enumerate(xs)]  # (slot, vars)
    steps = []
    slot = len(xs)
    last = len(plan.steps) - 1
    for n_step, step in enumerate(plan.steps):
        i, j = step.operands
        (sa, va), (sb, vb) = ops[i], ops[j]
        output = tuple(step.output)
        if n_step == last and ctx.prefer:
            output = _in_order(output, ctx.prefer)
        sub = _subscripts(va, vb, output)
        pp = _pair_plan(sub, ctx.shape(va), ctx.shape(vb))
        steps.append((sa, sb, slot, pp, sub))
        # the interpreter's memory count (DenseEvaluator.join): the largest pairwise result
        ctx.max_transient = max(ctx.max_transient, ctx.nbytes(output))
        for k in sorted((i, j), reverse=True):
            ops.pop(k)
        ops.append((slot, output))
        slot += 1
    res_slot, res_vars = ops[-1]
    fns = [x.fn for x in xs]
    nslots = slot
    last_pp = steps[-1][3]
    out_shape = pair_out_shape(last_pp) if last_pp is not None and scale == 1 else None
    root = Root(res_vars, out_shape) if out_shape is not None else None
    run = _contractions(fns, steps, nslots, res_slot, root)
    if scale != 1:
        return Code(lambda ex: run(ex) * scale, res_vars, True)
    return Code(run, res_vars, True, root)


def _inverse(f: Callable, inplace: bool, ex) -> ndarray:
    a = f(ex)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.divide(1.0, a, out=a) if inplace else 1.0 / a


def _einsum_pair(sub: str, a: ndarray, b: ndarray) -> ndarray:
    """A pairwise step the numpy backend leaves to einsum (a repeated index), as `backend.contract` runs it."""
    return np.einsum(sub, a, b, optimize=["einsum_path", (0, 1)])


def _contractions(fns: list[Callable], steps: list[tuple], nslots: int, res_slot: int, root: Root | None
                  ) -> Callable:
    """The join's pairwise steps as one closure over a list of slots (the operands, then each result); the
    last step writes into `root.dest` when the root is armed."""
    if len(fns) == 2 and len(steps) == 1:  # the common case: one pairwise product
        fa, fb = fns
        _, _, _, pp, sub = steps[0]
        if root is not None:
            g = pair_function(pp)

            def pair(ex) -> ndarray:
                dest = root.dest
                if dest is not None:
                    root.dest = None
                    return _run_pair_out(pp, fa(ex), fb(ex), dest)
                return g(fa(ex), fb(ex))

            return pair
        if pp is not None:
            g = pair_function(pp)
            return lambda ex: g(fa(ex), fb(ex))
        return lambda ex: np.einsum(sub, fa(ex), fb(ex), optimize=["einsum_path", (0, 1)])
    last = len(steps) - 1
    funcs = [pair_function(pp) if pp is not None else functools.partial(_einsum_pair, sub)
             for _, _, _, pp, sub in steps]

    def run(ex) -> ndarray:
        vals: list = [f(ex) for f in fns] + [None] * (nslots - len(fns))
        for k, (sa, sb, so, pp, _) in enumerate(steps):
            a, b = vals[sa], vals[sb]
            vals[sa] = vals[sb] = None  # (freed as soon as used, like the interpreter's operand list)
            if k == last and root is not None and root.dest is not None:
                dest, root.dest = root.dest, None
                vals[so] = _run_pair_out(pp, a, b, dest)
            else:
                vals[so] = funcs[k](a, b)
        return vals[res_slot]

    return run
