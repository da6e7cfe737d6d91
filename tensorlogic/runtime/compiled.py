"""The executor's fast path: dense equations compiled once into closures of numpy calls.

The interpreter (`Executor.contribution` with `dense.DenseEvaluator` and `executor.scatter`) walks an
equation's IR on every evaluation: it builds an evaluator, looks up read positions, gathers, plans, aligns
and scatters, about 30-60 us of Python per equation before any arithmetic. Here each equation is compiled
once per analysis and per set of index ranges (a layered recursion's layer fixes one range, so each layer
has its own) into a `CompiledEquation`: the right side as nested closures (`compiled_nodes.py`), and the
projection onto the left side (`compile_scatter`) with its slices, fold axes or scatter indices computed in
advance. Running it makes only the array calls. Results are the interpreter's, operation for operation
(the same contraction plans and pairwise kernels, the same elementwise operations, some done in place).

Used by `Executor.contribution` for every evaluation that reads stored values (non-recursive strata, the
layers of a layered recursion, numeric fixpoint rounds), on the numpy backend, unless `TL_DEBUG=plan` asks
for the interpreter's plan printing. Left to the interpreter: other backends, relational forms and counts,
user functions, sparse relations read as matrices, sliced plans, virtual-index loops, and any evaluation
that raises (so errors carry the interpreter's diagnostics).

Shared sub-joins (`executor.join_cache`) are kept: a join whose text occurs more than once in the program,
or any join of a numeric fixpoint (reused across rounds while its inputs are unchanged), or a join of a
layered recursion that reads none of the recursion's tensors, is looked up and stored under the
interpreter's signature; other joins are not cached, so their results stay fresh and can be overwritten by
the elementwise steps that follow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from ..backends.numpy_backend import NumpyBackend
from ..ir.graph import strata
from ..ir.nodes import Equation, IExpr, Join, Reduce, expr_str, walk
from .compiled_nodes import Code, Context, Fallback, NotCompiled, compile_node
from .dense import index_grid

ndarray = np.ndarray
__all__ = ["CompiledEquation", "Fallback", "available", "compile_equation", "compiled_for"]


def available(backend) -> bool:
    """Whether equations on this backend may be compiled (numpy only)."""
    return type(backend) is NumpyBackend


class CompiledEquation:
    """One equation at one set of ranges: `__call__(ex, into)` gives what `Executor.contribution` gives."""

    __slots__ = ("rhs", "scatter", "max_transient", "dest", "region")

    def __init__(self, rhs: Callable, scatter: Callable, max_transient: int, dest: tuple | None = None):
        self.rhs = rhs
        self.scatter = scatter
        self.max_transient = max_transient
        # the cells of `into` this equation assigns (a zero layer, written whole), else None
        self.region = getattr(scatter, "region", None)
        # (root, the head's slice): the value is computed into the head (see compiled_nodes.Root)
        self.dest = dest if dest is not None and dest[1] == self.region else None

    def __call__(self, ex, into=None) -> tuple[ndarray, ndarray | None]:
        if into is None or self.region is None:
            return self._run(ex, into)
        try:
            return self._run(ex, into)
        except BaseException:  # the interpreter adds into this region instead: it must hold zeros again
            into[self.region] = 0.0
            raise

    def _run(self, ex, into) -> tuple[ndarray, ndarray | None]:
        if into is not None and self.dest is not None:
            root, dst = self.dest
            d = into[dst]
            if d.flags.c_contiguous:
                root.dest = d.reshape(root.out_shape)
                try:
                    arr = self.rhs(ex)
                finally:
                    root.dest = None
                if not np.may_share_memory(arr, d):  # the chain made a new array after all: copy it there
                    d[...] = arr
                peak = ex.values.bytes + self.max_transient
                if peak > ex.peak_bytes:
                    ex.peak_bytes = peak
                return into, None
        out = self.scatter(self.rhs(ex), into)
        # counted as Executor.contribution counts: what is live, the largest pairwise result, the new result
        fresh = out[0].nbytes if out[0] is not into else 0
        peak = ex.values.bytes + self.max_transient + fresh
        if peak > ex.peak_bytes:
            ex.peak_bytes = peak
        return out


def _per_analysis(ex) -> dict:
    """The compiler's per-analysis state, kept in the executor's per-analysis cache."""
    st = ex._strata.get("compiled")
    if st is None:
        eqs = ex.prog.equations
        texts = Counter(expr_str(n) for e in eqs for n in walk(e.rhs)
                        if isinstance(n, Reduce) and isinstance(n.operand, Join))
        recursive = {e.id for s in strata(eqs) if s.recursive for e in s.equations}
        st = ex._strata["compiled"] = {"texts": frozenset(t for t, c in texts.items() if c > 1),
                                       "recursive": recursive, "eqs": {}}
    return st


def compiled_for(ex, eq: Equation) -> CompiledEquation | None:
    """The equation compiled at its own ranges (once per analysis), or None when it is left to the interpreter."""
    cache = _per_analysis(ex)["eqs"]
    hit = cache.get(id(eq))
    if hit is not None and hit[0] is eq:
        return hit[1]
    if len(cache) > 20_000:  # ad hoc query equations come and go: bounded
        cache.clear()
    code = compile_equation(ex, eq, eq.ranges)
    cache[id(eq)] = (eq, code)
    return code


def compile_equation(ex, eq: Equation, ranges: dict, invariant_of: frozenset | None = None,
                     zero_into: bool = False) -> CompiledEquation | None:
    """Compile `eq` at `ranges` (None when the interpreter must run it). `invariant_of`: the tensors of the
    layered recursion it belongs to (its joins that read none of them are shared across layers);
    `zero_into`: the cells it adds into (`into`) are still zero, so they may be assigned, or computed in place."""
    from . import relational

    if not available(ex.backend) or eq.virtual_var is not None:
        return None
    key = ("count", eq.id)
    if key not in ex._strata:
        ex._strata[key] = relational.count_form(eq, ex.is_boolean)
    if ex._strata[key] is not None or ex.forms.get(eq.id) is not None:
        return None
    state = _per_analysis(ex)
    t = ex.prog.tensors[eq.lhs]
    lhs = tuple(p.expr for k, p in enumerate(eq.lhs_pos) if k != t.virtual_axis)
    from .executor import _scatter_static

    lhs_vars = _scatter_static(lhs)[0]
    if invariant_of is not None:
        def share(n: Reduce, text: str) -> bool:
            return text in state["texts"] or not any(r.tensor in invariant_of for r in _reads(n))
    elif eq.id in state["recursive"]:
        def share(n: Reduce, text: str) -> bool:
            return True
    else:
        def share(n: Reduce, text: str) -> bool:
            return text in state["texts"]
    ctx = Context(ex, ranges, lhs_vars, share, ex.backend.functions)
    try:
        code = compile_node(ctx, eq.rhs)
        scatter = compile_scatter(ctx, code, lhs, t.storage_shape, eq.op, zero_into)
        dest = _destination(ctx, code, lhs, t.storage_shape) if zero_into and eq.op == "+" else None
    except NotCompiled:
        return None
    except Exception:  # anything unexpected (bad ranges, shapes): the interpreter reports it properly
        return None
    return CompiledEquation(code.fn, scatter, ctx.max_transient, dest)


def _destination(ctx: Context, code: Code, lhs: tuple[IExpr, ...], shape: tuple[int, ...]) -> tuple | None:
    """(root, slice of the head) when the value can be computed straight into the head: its left side is
    written by slicing, in the value's own axis order, without clipping, and the value is a join's product
    changed only in place since."""
    from .executor import _scatter_static

    lhs_vars, shifts, sliced, _ = _scatter_static(lhs)
    root = code.root
    if not sliced or root is None or root.vars != code.vars or code.vars != lhs_vars:
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


def _reads(n):
    from ..ir.nodes import reads

    return reads(n)


def compile_scatter(ctx: Context, res: Code, lhs: tuple[IExpr, ...], shape: tuple[int, ...], op: str,
                    zero_into: bool = False) -> Callable[[ndarray, ndarray | None], tuple[ndarray, ndarray | None]]:
    """`executor.scatter` with its static part done now: `scatter(arr, into) -> (acc, aux)`; with `zero_into`
    the cells written in `into` are known to be zero (assigned instead of added to)."""
    from .executor import _scatter_static

    lhs_vars, shifts, sliced, whole = _scatter_static(lhs)
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


class LayerStep:
    """One evaluation of a layered recursion (`Executor.run_layers`): the tensor, the equation, its ranges
    with the layer fixed, and the equation compiled at those ranges (on first use, once per analysis)."""

    __slots__ = ("tensor", "equation", "ranges", "stratum", "alone", "_code")
    _UNSET = object()

    def __init__(self, tensor: str, equation: Equation, ranges: dict, stratum: frozenset):
        self.tensor, self.equation, self.ranges, self.stratum = tensor, equation, ranges, stratum
        self.alone = False  # the only evaluation writing this tensor's layer
        self._code = LayerStep._UNSET

    def code(self, ex) -> CompiledEquation | None:
        if self._code is LayerStep._UNSET:
            # a tensor without data starts as zeros (Executor.initial): a layer written by one evaluation only
            # is still zero when that evaluation runs
            zero = self.alone and self.tensor not in ex.prog.data
            self._code = compile_equation(ex, self.equation, self.ranges, self.stratum, zero)
        return self._code


def uninitialised(steps: list[LayerStep], ex) -> frozenset | None:
    """The tensors of a layered stratum that need no zeros to start from: every cell is assigned by exactly one
    compiled evaluation (each the only writer of its layer, all regions together tiling the tensor). Known once
    every evaluation has been compiled (after the first run); until then None."""
    by_tensor: dict[str, list[LayerStep]] = {}
    for s in steps:
        if s._code is LayerStep._UNSET:
            return None
        by_tensor.setdefault(s.tensor, []).append(s)
    out = set()
    for t, ss in by_tensor.items():
        if t in ex.prog.data or not all(s._code is not None and s._code.region is not None for s in ss):
            continue
        covered = np.zeros(ex.prog.tensors[t].storage_shape, dtype=bool)
        ok = True
        for s in ss:
            region = s._code.region
            if covered[region].any():
                ok = False
                break
            covered[region] = True
        if ok and covered.all():
            out.add(t)
    return frozenset(out)


def layer_steps(sched, stratum: frozenset) -> list[LayerStep]:
    """A layer schedule (runtime/layered.py) as the flat list of its evaluations, in order."""
    out, written = [], []
    layers = range(sched.layers) if sched.direction > 0 else range(sched.layers - 1, -1, -1)
    for layer in layers:
        for t in sched.order:
            for step in sched.steps[t]:
                e = step.equation
                if step.var is None:
                    if step.offset != layer:
                        continue
                    rng = e.ranges
                else:
                    v = layer - step.offset
                    lo, hi = e.ranges.get(step.var, (0, 0))
                    if not lo <= v < hi:
                        continue
                    rng = dict(e.ranges)
                    rng[step.var] = (v, v + 1)
                out.append(LayerStep(t, e, rng, stratum))
                written.append((t, layer))  # (each evaluation writes its tensor's layer `layer`)
    writers = Counter(written)
    for s, w in zip(out, written):
        s.alone = writers[w] == 1
    return out


class HeadStep:
    """One head of a non-recursive stratum (`Executor.run_stratum`): `Executor.combine` compiled, i.e. its
    data, each equation's contribution and their projection (`=`, `max=`, `min=`, `avg=`) into one closure."""

    __slots__ = ("tensor", "equations", "_code")
    _UNSET = object()

    def __init__(self, tensor: str, equations: list[Equation]):
        self.tensor, self.equations = tensor, equations
        self._code = HeadStep._UNSET

    def code(self, ex) -> Callable | None:
        """The compiled head, or None (interpreted). Built once the interpreter has run the head once (which
        decides each equation's relational count form)."""
        if self._code is HeadStep._UNSET:
            if not all(("count", e.id) in ex._strata for e in self.equations):
                return None  # not yet: the interpreter runs this head first
            self._code = compile_head(ex, self.tensor, self.equations)
        return self._code


def compile_head(ex, name: str, eqs: list[Equation]) -> Callable | None:
    """`Executor.combine(name, eqs, ex.read_current)` as a closure `f(ex) -> value`, or None."""
    t = ex.prog.tensors[name]
    if not eqs or t.sparse or len({e.op for e in eqs}) > 1:
        return None
    if t.boolean and all(ex.forms.get(e.id) is not None for e in eqs):
        return None  # a relational head
    if any(ex._strata.get(("count", e.id)) is not None for e in eqs):
        return None
    codes = [compiled_for(ex, e) for e in eqs]
    if not all(codes):
        return None
    op = eqs[0].op
    has_data = name in ex.prog.data
    boolean = t.boolean
    if len(codes) == 1 and op == "+" and not has_data:
        code = codes[0]
        if boolean:
            return lambda ex: np.asarray(code(ex)[0] > 0, dtype=np.float64)
        return lambda ex: code(ex)[0]

    def head(ex):
        base = ex.to_array(ex.initial_array(name)) if has_data else None
        acc, aux = None, None
        for code in codes:
            a, x = code(ex)
            if acc is None:
                acc, aux = a, x
            elif op == "+":
                acc = acc + a
            elif op == "max":
                acc, aux = np.maximum(acc, a), aux | x
            elif op == "min":
                acc, aux = np.minimum(acc, a), aux | x
            else:
                acc, aux = acc + a, aux + x
        if op in ("max", "min"):
            if base is not None:
                acc = np.where(aux, (np.maximum if op == "max" else np.minimum)(acc, base), base)
            else:
                acc = np.where(aux, acc, 0.0)
        elif op == "avg":
            acc = np.where(aux > 0, acc / np.maximum(aux, 1.0), 0.0)
            if base is not None:
                acc = acc + base
        elif base is not None:
            acc = acc + base
        if boolean:
            acc = np.asarray(acc > 0, dtype=np.float64)
        return acc

    return head
