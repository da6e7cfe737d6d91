"""Sliced joins: contract a join whose intermediates exceed what is left of the memory budget, chunk by chunk.

Under a memory budget the executor gives each dense evaluator `join_limit`, the bytes a join may still use;
`DenseEvaluator.join` calls `sliced_join` when the join's plan needs more. The planner (`plan/slicing.py`,
`slice_join`) picks the labels to slice and how many of their values to take per chunk, so that the result
(an accumulator) plus one chunk's largest pairwise product fit. Each chunk takes basic slices (views, no copies) of
the operands along the sliced labels, runs the planned pairwise steps on them (one BLAS call per step and
chunk), and adds its result into the accumulator: into the chunk's part of it for a sliced output label, onto
all of it for a summed one. The evaluator's `max_transient` counts the accumulator and a chunk's largest
pairwise product (the executor's measure of a join's workspace: its largest intermediate), so the peak the
executor counts stays under the budget.
"""

from __future__ import annotations

import itertools
from typing import Any

from ..ir.nodes import Join
from ..plan.program import human_bytes
from ..plan.slicing import least_workspace, slice_join
from ..syntax.diagnostics import TLRuntimeError

__all__ = ["sliced_join", "use_budget"]

BYTES = 8  # float64


def use_budget(executor: Any, budget: int | None) -> None:
    """Run `executor`'s joins under `budget` bytes (None: no budget): a join that would not fit in what is
    left is sliced. The compiled fast path (runtime/compiled.py) does not slice, so it is off under a budget."""
    before = getattr(executor, "memory_budget", None)
    if budget is not None and before is None:
        executor.unbudgeted_compile = getattr(executor, "compile", False)
        executor.compile = False
    elif budget is None and before is not None:
        executor.compile = getattr(executor, "unbudgeted_compile", False)
    executor.memory_budget = budget


def sliced_join(ev: Any, n: Join, xs: list, out: tuple[str, ...], sizes: dict[str, int], scale: int,
                base: Any = None) -> Any:
    """The join of the labelled arrays `xs` summed onto `out`, within `ev.join_limit` bytes (see the module
    docstring); a `Labeled` result laid out in the left side's order (`ev.prefer`). None when the join's own
    plan `base` fits as it is (the evaluator then runs it)."""
    from .dense import Labeled, _in_order, _subscripts

    xp = ev.xp
    limit = ev.join_limit // BYTES
    inputs = [x.vars for x in xs]
    try:
        if limit < 1:
            raise ValueError("nothing is left of the budget for this join")
        sj = slice_join(inputs, out, sizes, limit)
    except ValueError as e:
        need = least_workspace(inputs, out, sizes).workspace * BYTES
        short = need - ev.join_limit
        raise TLRuntimeError(
            f"the join in {ev.where} needs {human_bytes(need)} of workspace even sliced as far as it goes, but "
            f"only {human_bytes(max(ev.join_limit, 0))} of the memory budget is left at this point ({e}); "
            "the tensors live here and its result take the rest",
            getattr(ev._where, "span", None) or getattr(n, "span", None),
            hint=f"raise the memory budget by at least {human_bytes(short)} ({short:,} bytes); the plan "
                 "(tl plan --memory-budget) counts fewer live tensors here than the executor holds") from None
    plan = sj.plan
    if not sj.chunks and base is not None and plan.path == base.path:
        return None
    ev.steps.append(plan)
    order = _in_order(out, ev.prefer) if ev.prefer else out
    chunk = dict(sj.chunks)
    sliced = [lab for lab, _ in sj.chunks]
    summed = any(lab not in out for lab in sliced)
    shape = tuple(sizes[v] for v in order)
    acc = xp.zeros(shape, dtype=xp.float64) if sliced else None
    ranges = [[(lo, min(lo + chunk[lab], sizes[lab])) for lo in range(0, sizes[lab], chunk[lab])]
              for lab in sliced]
    need = set(order)
    res = None
    for pick in itertools.product(*ranges) if sliced else [()]:
        at = dict(zip(sliced, pick))
        ops = []
        for x in xs:
            arr = xp.asarray(x.arr, dtype=xp.float64)
            if any(v in at for v in x.vars):  # basic slicing: a view
                arr = arr[tuple(slice(*at[v]) if v in at else slice(None) for v in x.vars)]
            ops.append(Labeled(arr, x.vars))
        for k, (i, j) in enumerate(plan.path):
            a, b = ops[i], ops[j]
            rest = [o.vars for m, o in enumerate(ops) if m not in (i, j)]
            if k == len(plan.path) - 1:
                kept = order
            else:
                keep = need.union(*map(set, rest))
                kept = tuple(v for v in dict.fromkeys(a.vars + b.vars) if v in keep)
            res = ev.backend.contract(_subscripts(a.vars, b.vars, kept), a.arr, b.arr)
            ev.max_transient = max(ev.max_transient, int(res.nbytes) + (int(acc.nbytes) if acc is not None else 0))
            for m in sorted((i, j), reverse=True):
                ops.pop(m)
            ops.append(Labeled(res, kept))
        if acc is None:
            break
        index = tuple(slice(*at[v]) if v in at else slice(None) for v in order)
        if summed:
            acc[index] += res
        else:
            acc[index] = res
        res = None
    result = acc if acc is not None else res
    if scale != 1:
        result = result * scale
    return Labeled(result, order, True)
