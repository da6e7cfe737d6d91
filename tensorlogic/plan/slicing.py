"""Slicing: fit a contraction under a memory limit by looping over some indices.

Fixing a label to one value at a time (a *slice*) removes it from every intermediate, so each slice's
largest intermediate shrinks by that label's extent while the whole join is done ``extent`` times.  When
no contraction order fits ``memory_limit``, ``choose_slices`` greedily picks, one at a time, the label that
most reduces the largest intermediate per extra flop (``log(largest_before / largest_after) /
log(flops_after / flops_before)``; labels that cost no extra flops -- e.g. output labels -- win outright),
re-plans the per-slice network after each pick (keeping the old order if it is better), and stops as soon
as the largest per-slice intermediate fits.  Slices of a summed label are added up; slices of an output
label fill different parts of the output.

For the runtime (a join under a memory budget, `runtime/sliced.py`), `slice_join` turns that choice into
chunks: as many values of each sliced label at a time as keep one chunk's largest pairwise product, plus the
join's result (an accumulator), within a limit; `least_workspace` is the smallest such workspace; and
`fit_program` slices the joins of a whole-program plan that do not fit in what a budget leaves beside the
tensors live in their stratum, and finds the least budget slicing can meet (docs/remat.md, "Sliced joins").
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from .paths_common import Network, Objective, Tree, bits

__all__ = ["MAX_CHUNKS", "SlicedJoin", "choose_slices", "least_workspace", "simulate_path", "slice_join"]


def _largest(tree: Tree) -> int:
    return max(tree.size.values(), default=0)


def _fit_key(tree: Tree, limit: int) -> tuple[int, int]:
    return (max(_largest(tree) - limit, 0), tree.total_flops())


def choose_slices(
    net: Network,
    tree: Tree,
    obj: Objective,
    memory_limit: int,
    replan: Callable[[Network], Tree],
) -> tuple[int, Tree, list[str]]:
    """Returns ``(sliced label mask, per-slice tree, notes)``; raises ``ValueError`` if even slicing every
    label does not fit."""
    sliced = 0
    count = 1
    cur = tree
    notes: list[str] = []
    all_labels = (1 << len(net.size)) - 1
    while _largest(cur) > memory_limit:
        if memory_limit < 1 or (all_labels & ~sliced) == 0:
            raise ValueError(
                f"memory_limit={memory_limit:,} elements cannot be met even by slicing over every index "
                "(each slice still needs one element)"
            )
        largest = _largest(cur)
        flops = cur.total_flops() * count
        cand = 0
        for v, s in cur.size.items():
            if s > memory_limit:
                cand |= cur.eff[v]
        cand &= ~sliced
        best = None
        for b in bits(cand):
            d = net.size[b]
            if d <= 1:
                continue
            new_largest = 0
            new_flops = 0
            for v, (x, y) in cur.children.items():
                s = cur.size[v]
                if (cur.eff[v] >> b) & 1:
                    s //= d
                new_largest = max(new_largest, s)
                f = cur.flops[v]
                if ((cur.eff[x] | cur.eff[y]) >> b) & 1:
                    f //= d
                new_flops += f
            new_flops *= count * d
            gain = math.log(largest / max(new_largest, 1))
            extra = math.log(max(new_flops, 1) / max(flops, 1))
            score = gain / extra if extra > 1e-12 else math.inf
            key = (-score, new_flops, new_largest, b)
            if best is None or key < best[0]:
                best = (key, b, new_largest, new_flops)
        if best is None:
            # Every label of the oversized intermediates has extent <= 1: slice the largest remaining label.
            rest = [b for b in bits(all_labels & ~sliced) if net.size[b] > 1]
            if not rest:
                raise ValueError(
                    f"memory_limit={memory_limit:,} elements cannot be met: the intermediates that exceed it "
                    "have no index left to slice"
                )
            b = max(rest, key=lambda x: (net.size[x], -x))
            best = (None, b, None, None)
        b = best[1]
        sliced |= 1 << b
        count *= net.size[b]
        sub = net.with_unit_labels(sliced)
        kept_order = Tree.from_ssa(sub, cur.to_ssa())
        fresh = replan(sub)
        cur = fresh if _fit_key(fresh, memory_limit) < _fit_key(kept_order, memory_limit) else kept_order
        notes.append(
            f"slice {net.names[b]!r} (extent {net.size[b]}): largest intermediate {largest:,} -> "
            f"{_largest(cur):,} elements, flops {flops:,} -> {cur.total_flops() * count:,}"
        )
    del obj
    return sliced, cur, notes


# --------------------------------------------------------------------------- slicing a join for the runtime

MAX_CHUNKS = 1 << 16
"""A sliced join runs at most this many chunks (each one pass of Python over the steps); a budget that would
need more is treated as out of slicing's reach."""


def _prod(sizes: dict[str, int], labels) -> int:
    p = 1
    for lab in labels:
        p *= sizes[lab]
    return p


def simulate_path(inputs: tuple[tuple[str, ...], ...], output: tuple[str, ...], path: list[tuple[int, int]],
                  sizes: dict[str, int]) -> tuple[int, int]:
    """Run a linear contraction path symbolically with label extents `sizes` (a chunk's extents for sliced
    labels); returns `(workspace, flops)`: the largest pairwise product in elements (the executor's and the
    planner's measure of a join's workspace) and the flops (opt_einsum's convention). A step keeps the labels
    still needed by another operand or the output; the last step produces `output`."""
    ops = [tuple(t) for t in inputs]
    out = set(output)
    work = flops = 0
    for n, (i, j) in enumerate(path):
        a, b = ops[i], ops[j]
        rest = [t for k, t in enumerate(ops) if k not in (i, j)]
        involved = tuple(dict.fromkeys(a + b))
        if n == len(path) - 1:
            kept = tuple(output)
        else:
            need = out.union(*map(set, rest)) if rest else out
            kept = tuple(lab for lab in involved if lab in need)
        size = _prod(sizes, kept)
        flops += _prod(sizes, involved) * (2 if len(kept) < len(involved) else 1)
        work = max(work, size)
        for k in sorted((i, j), reverse=True):
            ops.pop(k)
        ops.append(kept)
    return work, flops


@dataclass(frozen=True)
class SlicedJoin:
    """How a join runs within a workspace limit: its contraction plan and, when sliced, the chunk of values
    of each sliced label taken at a time. Sizes are in elements."""

    plan: Any  # ContractionPlan (its `sliced` labels and the chunk note in `extra`)
    chunks: tuple[tuple[str, int], ...]  # (label, values per chunk); empty: not sliced
    n_chunks: int
    flops: int  # over all chunks
    chunk_workspace: int  # the largest pairwise product of one chunk
    accumulator: int  # the join's result, filled chunk by chunk (0 when not sliced)

    @property
    def workspace(self) -> int:
        return self.accumulator + self.chunk_workspace

    def describe(self) -> str:
        if not self.chunks:
            return "not sliced"
        parts = ", ".join(f"{lab} by {c}" for lab, c in self.chunks)
        return f"sliced over {', '.join(lab for lab, _ in self.chunks)} in {self.n_chunks:,} chunks ({parts})"


def _chunked(inputs, output, path, sizes, order, per) -> tuple[dict[str, int], int, int] | None:
    """Chunk extents for the sliced labels, largest first in `order`, so that one chunk's workspace fits
    `per` elements; (chunks, workspace, flops) or None when one value of each does not fit."""
    chunk = {lab: 1 for lab in order}
    ext = dict(sizes)
    ext.update(chunk)
    if simulate_path(inputs, output, path, ext)[0] > per:
        return None
    for lab in order:
        lo, hi = 1, sizes[lab]
        while lo < hi:  # the largest chunk of `lab` that still fits (workspace grows with it)
            mid = (lo + hi + 1) // 2
            ext[lab] = mid
            if simulate_path(inputs, output, path, ext)[0] <= per:
                lo = mid
            else:
                hi = mid - 1
        ext[lab] = chunk[lab] = lo
    work, flops = simulate_path(inputs, output, path, ext)
    return chunk, work, flops


@lru_cache(maxsize=4096)
def _slice_join(inputs: tuple[tuple[str, ...], ...], output: tuple[str, ...], sizes_t: tuple[tuple[str, int], ...],
                limit: int) -> SlicedJoin:
    from .program import cached_plan_join  # (contract imports this module)

    sizes = dict(sizes_t)
    base = cached_plan_join(list(inputs), output, sizes)
    work, flops = simulate_path(inputs, output, base.path, sizes)
    if work <= limit:
        return SlicedJoin(base, (), 1, flops, work, 0)
    from .contract import plan_join

    acc = _prod(sizes, output)
    per = limit - acc
    if per < 1:  # no room for an accumulator: only another order can fit
        with contextlib.suppress(ValueError):
            plan = plan_join(list(inputs), output, sizes, memory_limit=limit)
            work, flops = simulate_path(inputs, output, plan.path, sizes)
            if not plan.sliced and work <= limit:
                return SlicedJoin(plan, (), 1, flops, work, 0)
        raise ValueError(f"its result alone has {acc:,} elements, and slicing needs room for the result and "
                         "one slice's products")

    q = 1 << (per.bit_length() - 1)  # planned for a power of two (cached), chunked for the exact limit
    while True:
        plan = plan_join(list(inputs), output, sizes, memory_limit=q)
        if not plan.sliced:
            work, flops = simulate_path(inputs, output, plan.path, sizes)
            if work <= limit:
                return SlicedJoin(plan, (), 1, flops, work, 0)
        else:
            orders = list(itertools.permutations(plan.sliced)) if len(plan.sliced) <= 3 else [
                tuple(sorted(plan.sliced, key=lambda lab: -sizes[lab]))]
            best = None
            for order in orders:
                got = _chunked(inputs, output, plan.path, sizes, order, per)
                if got is None:
                    continue
                chunk, work, flops = got
                n = 1
                for lab in order:
                    n *= -(-sizes[lab] // chunk[lab])
                key = (n, flops)
                if best is None or key < best[0]:
                    best = (key, order, chunk, work, flops)
            if best is not None:
                (n, flops), order, chunk, work, _ = best
                if n > MAX_CHUNKS:
                    raise ValueError(f"slicing it within {limit:,} elements takes {n:,} chunks (at most "
                                     f"{MAX_CHUNKS:,} are run)")
                chunks = tuple((lab, chunk[lab]) for lab in order if chunk[lab] < sizes[lab])
                if not chunks:  # every chunk covers its label: the planned order alone fits
                    return SlicedJoin(plan, (), 1, flops, work, 0)
                note = (f"run in {n:,} chunks of {', '.join(f'{lab}: {c}' for lab, c in chunks)} values; "
                        f"workspace {acc + work:,} elements (result {acc:,} + one chunk's largest product {work:,}) "
                        f"within {limit:,}")
                extra = dict(plan.extra)
                extra["slicing_reason"] = note
                total = flops * n
                shown = replace(plan, extra=extra, sliced=tuple(lab for lab, _ in chunks), slice_count=n,
                                flops=total, largest_intermediate=work)
                return SlicedJoin(shown, chunks, n, total, work, acc)
        if q <= 1:
            raise ValueError("even one value of every index at a time does not fit")
        q //= 2


def slice_join(inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int], limit: int
               ) -> SlicedJoin:
    """The join `inputs -> output` run within `limit` elements of workspace: unsliced when its plan fits,
    else sliced over the labels the planner chooses (`choose_slices`), in chunks of as many values as fit
    (one BLAS call per step and chunk, not per value). The workspace of a sliced join is its result (an
    accumulator) plus one chunk's largest pairwise product. Raises `ValueError` when slicing cannot fit."""
    used = {v for t in inputs for v in t} | set(output)
    key = tuple(sorted((v, int(n)) for v, n in sizes.items() if v in used))
    inputs_t, output_t = tuple(tuple(t) for t in inputs), tuple(output)
    try:
        return _slice_join(inputs_t, output_t, key, int(limit))
    except ValueError:  # the search is not monotone in the limit: a limit at or above the least one always fits
        least = _least(inputs_t, output_t, key)
        if least.workspace <= limit:
            return least
        raise


@lru_cache(maxsize=1024)
def _least(inputs, output, sizes_t) -> SlicedJoin:
    best = _slice_join(inputs, output, sizes_t, 1 << 62)
    lo = 1  # infeasible below (or at) lo ... searched on a log scale, then bisected
    hi = best.workspace
    while hi - lo > max(1, hi // 64):
        mid = (lo + hi) // 2
        try:
            got = _slice_join(inputs, output, sizes_t, mid)
        except ValueError:
            lo = mid
            continue
        if got.workspace < best.workspace:
            best = got
        hi = min(mid, got.workspace)
    return best


def least_workspace(inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int]) -> SlicedJoin:
    """The smallest workspace (within 1/64) slicing reaches for this join, with at most `MAX_CHUNKS` chunks."""
    used = {v for t in inputs for v in t} | set(output)
    key = tuple(sorted((v, int(n)) for v, n in sizes.items() if v in used))
    return _least(tuple(tuple(t) for t in inputs), tuple(output), key)


# ------------------------------------------------------------------------------- a whole program's budget


@dataclass
class BudgetFit:
    """What `fit_program` did: the joins it sliced (stratum, equation text, how), whether the plan's peak now
    fits, and, when it does not, the least budget slicing could meet (bytes)."""

    budget: int
    sliced: list[tuple[int, str, SlicedJoin]]
    fits: bool
    least_budget: int | None = None

    def describe(self) -> str:
        from .program import human_bytes

        lines = [f"sliced join (stratum {k}): {text}\n    {sj.describe()}; workspace "
                 f"{human_bytes(sj.workspace * 8)}; flops {sj.flops:,}" for k, text, sj in self.sliced]
        if not self.fits and self.least_budget is not None:
            lines.append(f"smallest memory budget slicing can meet: {human_bytes(self.least_budget)} "
                         f"({self.least_budget:,} bytes)")
        return "\n".join(lines)


def _out_elements(e: Any) -> int:
    return e.output_bytes // 8


def fit_program(plan: Any, budget: int) -> BudgetFit:
    """Slice the joins of a `ProgramPlan` (plan/program.py) whose intermediates do not fit in what the
    budget leaves beside the tensors live in their stratum and the equation's fresh result (what the
    executor's `join_limit` leaves, runtime/executor.py); updates the plan in place (each sliced join's
    contraction, flops and workspace; each stratum's peak) and says what it did. A join that cannot fit is
    sliced as far as slicing goes; when the peak still exceeds the budget, `least_budget` is the smallest
    budget slicing could meet (every join at its least workspace)."""
    from .program import stratum_transient

    done: list[tuple[int, str, SlicedJoin]] = []
    for k, st in enumerate(plan.strata):
        for e in st.equations:
            if e.kind != "dense":
                continue
            room = (budget - st.live_bytes - e.output_bytes) // 8
            sizes = e.sizes or {v: hi - lo for v, (lo, hi) in e.equation.ranges.items()}
            for j in e.joins:
                if j.contraction is None or len(j.inputs) < 2 or j.largest_intermediate <= room:
                    continue
                try:
                    sj = slice_join(j.inputs, j.output, sizes, max(room, 0))
                except ValueError:  # does not fit: sliced as far as it goes (the plan shows the least it needs)
                    sj = least_workspace(j.inputs, j.output, sizes)
                    if sj.workspace >= j.largest_intermediate:
                        continue
                j.contraction, j.largest_intermediate, j.flops = sj.plan, sj.workspace, sj.flops
                done.append((k, e.text, sj))
            e.flops = sum(j.flops for j in e.joins) or e.flops
            e.largest_intermediate = max([j.largest_intermediate for j in e.joins] + [_out_elements(e)])
        st.peak_bytes = st.live_bytes + stratum_transient(st)
    fit = BudgetFit(budget, done, plan.peak_bytes <= budget)
    if not fit.fits:
        fit.least_budget = least_program_budget(plan)
    return fit


def least_stratum_workspace(st: Any) -> tuple[int, list[SlicedJoin]]:
    """The least transient elements of a stratum (plan/program.py's `StratumPlan`): each dense join at the
    least workspace slicing reaches, or its output; with the joins' slicings."""
    most = 0
    used: list[SlicedJoin] = []
    for e in st.equations:
        if e.kind != "dense":
            continue
        sizes = e.sizes or {v: hi - lo for v, (lo, hi) in e.equation.ranges.items()}
        need = _out_elements(e)
        for j in e.joins:
            if j.contraction is None:
                need = max(need, j.largest_intermediate)
                continue
            sj = least_workspace(j.inputs, j.output, sizes)
            used.append(sj)
            need = max(need, sj.workspace)
        most = max(most, need)
    return most, used


def least_program_budget(plan: Any) -> int:
    """The smallest budget (bytes) a program's plan fits in when every join is sliced as far as it goes: per
    stratum, what is live plus the largest equation's least workspace and fresh result."""
    from .program import equation_transient, stratum_transient

    most = 0
    for st in plan.strata:
        need = stratum_transient(st)
        if need:
            need = 0
            for e in st.equations:
                sizes = e.sizes or {v: hi - lo for v, (lo, hi) in e.equation.ranges.items()}
                work = max([least_workspace(j.inputs, j.output, sizes).workspace for j in e.joins
                            if j.contraction is not None and len(j.inputs) >= 2 and e.kind == "dense"] + [0])
                fresh = e.output_bytes if e.fresh_bytes is None else e.fresh_bytes
                need = max(need, min(equation_transient(e), 8 * work + fresh))
        most = max(most, st.live_bytes + need)
    return most
