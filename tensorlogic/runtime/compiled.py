"""The executor's fast path: dense equations compiled once into closures of numpy calls.

The interpreter (`Executor.contribution` with `dense.DenseEvaluator` and `scatter.scatter`) walks an
equation's IR on every evaluation: it builds an evaluator, looks up read positions, gathers, plans, aligns
and scatters, about 30-60 us of Python per equation before any arithmetic. Here each equation is compiled
once per analysis and per set of index ranges (a layered recursion's layer fixes one range, so each layer
has its own) into a `CompiledEquation`: the right side as nested closures (`compiled_nodes.py`), and the
projection onto the left side (`compiled_scatter.py`) with its slices, fold axes or scatter indices computed in
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
the elementwise steps that follow. The steps of a layered recursion and of a stratum's heads, as the executor
runs them, are in `compiled_steps.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from ..backends.numpy_backend import NumpyBackend
from ..ir.graph import strata
from ..ir.nodes import Equation, Join, Reduce, expr_str, walk
from .compiled_nodes import Context, Fallback, NotCompiled, compile_node
from .compiled_scatter import compile_scatter, destination

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

    if not available(ex.backend) or eq.virtual_var is not None:
        return None
    # a relational count form (decided by Executor._count, which runs before this for ranges None; evaluations at
    # other ranges never count relationally), or a relational form: the interpreter's
    if ex._strata.get(("count", eq.id)) is not None or ex.forms.get(eq.id) is not None:
        return None
    state = _per_analysis(ex)
    t = ex.prog.tensors[eq.lhs]
    lhs = tuple(p.expr for k, p in enumerate(eq.lhs_pos) if k != t.virtual_axis)
    from .scatter import scatter_static

    lhs_vars = scatter_static(lhs)[0]
    if invariant_of is not None:
        def share(n: Reduce, text: str) -> bool:
            return text in state["texts"] or not any(r.tensor in invariant_of for r in _reads(n))
    elif eq.id in state["recursive"]:
        def share(n: Reduce, text: str) -> bool:
            return True
    else:
        def share(n: Reduce, text: str) -> bool:
            return text in state["texts"]
    # a layered step's layer variable is fixed to one value: its reads index it (operands without that axis,
    # as an unrolled program's), the projection puts the axis back
    drop = frozenset(v for v, r in ranges.items() if r[1] - r[0] == 1 and eq.ranges.get(v) != r)
    ctx = Context(ex, ranges, lhs_vars, share, ex.backend.functions, drop=drop)
    try:
        code = compile_node(ctx, eq.rhs)
        scatter = compile_scatter(ctx, code, lhs, t.storage_shape, eq.op, zero_into)
        dest = destination(ctx, code, lhs, t.storage_shape) if zero_into and eq.op == "+" else None
    except NotCompiled:
        return None
    except Exception:  # anything unexpected (bad ranges, shapes): the interpreter reports it properly
        return None
    return CompiledEquation(code.fn, scatter, ctx.max_transient, dest)


def _reads(n):
    from ..ir.nodes import reads

    return reads(n)
