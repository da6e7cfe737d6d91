"""Training under a memory budget: run a gradient program by a keep/recompute schedule.

The gradient program's whole-program plan (`plan/program.py`: strata, FLOPs, bytes, liveness) becomes a
computation graph (`plan/remat_graph.py`); the rematerialisation optimiser (`plan/remat.py`: an exact dynamic
program on chains, Checkmate's MILP on general graphs, or the sqrt(n) and store-everything baselines) picks
which forward values to keep and which to free and recompute so that the peak stays under the budget; the
executor runs that schedule (`Executor.run_schedule`) and counts the peak of what is live. Recomputing runs
the same equations on the same values, so gradients are identical with and without it.

A node whose join alone would not fit (its inputs, output and workspace over the budget) has its workspace
shrunk by slicing (`plan/slicing.py`): its joins are planned to run in chunks within what the budget leaves,
at the FLOPs slicing costs. Slicing more nodes (capping workspaces at a fraction of the budget) leaves room to
keep more values, so slicing is traded against recomputation: graphs sliced more and more are solved until
two have a schedule, and the cheaper wins. At run time the executor slices every join that does not fit in
what is left (`runtime/sliced.py`). When no graph has a schedule, nothing runs and the error gives the
smallest budget the optimiser could meet with every join sliced as far as it goes.
"""

from __future__ import annotations

from typing import Any

from ..plan.program import human_bytes
from ..syntax.diagnostics import TLRuntimeError

CHUNK_OVERHEAD_FLOPS = 100_000
"""What one chunk of a sliced join costs beyond its FLOPs (a pass of Python over the steps, about 10 us),
in FLOPs, so that the schedule's cost charges many small chunks."""


def _slice_stratum(st: Any, room: int | None) -> tuple[int, float] | None:
    """(workspace bytes, FLOPs) of a stratum (plan/program.py's `StratumPlan`) whose joins are sliced to fit
    `room` elements each (None: as far as slicing goes); None when nothing needs slicing."""
    from ..plan.slicing import least_workspace, slice_join

    work, flops, changed = 0, 0.0, False
    for e in st.equations:
        if e.kind != "dense":
            flops += e.flops
            continue
        sizes = {v: hi - lo for v, (lo, hi) in e.equation.ranges.items()}
        need, eflops = e.output_bytes // 8, 0
        for j in e.joins:
            ws, f = j.largest_intermediate, j.flops
            if j.contraction is not None and (room is None or ws > room):
                try:
                    sj = slice_join(j.inputs, j.output, sizes, room) if room is not None else None
                except ValueError:
                    sj = None
                sj = sj or least_workspace(j.inputs, j.output, sizes)
                if sj.workspace < ws:
                    ws, f, changed = sj.workspace, sj.flops + CHUNK_OVERHEAD_FLOPS * sj.n_chunks, True
            need, eflops = max(need, ws), eflops + f
        work = max(work, need)
        flops += eflops if e.joins else e.flops
    return (8 * work, flops) if changed else None


def slice_nodes(graph: Any, plan: Any, budget: int | None, cap: int | None = None) -> list[int]:
    """Shrink, in place, the workspace of each node of `graph` (one per stratum of `plan`, as
    `graph_from_plan` makes it) that cannot be computed within `budget` even with nothing else live, by
    slicing its joins into what the budget leaves beside its inputs and output; with `cap` (bytes), also
    every node whose workspace exceeds it, down to it; `budget` None slices every join as far as it goes.
    The node's cost becomes the sliced FLOPs. Returns the nodes changed."""
    changed = []
    for k, st in enumerate(plan.strata):
        if budget is None:
            room = None
        else:
            room = int(budget - (graph.compute_peak(k) - graph.workspace[k])) // 8
            if cap is not None:
                room = min(room, cap // 8)
            if graph.workspace[k] <= 8 * room:
                continue
            room = max(room, 0)
        got = _slice_stratum(st, room)
        if got is not None and got[0] < graph.workspace[k]:
            graph.workspace[k], graph.cost[k] = float(got[0]), float(got[1])
            changed.append(k)
    return changed


CAPS = (None, 2, 4, 8, 0)
"""The workspace caps tried, as fractions of the budget: None slices only the nodes that cannot fit at all,
2, 4 and 8 also cap every node's workspace at budget/2, /4, /8, and 0 slices every join as far as it goes."""


def _best_schedule(plan: Any, outputs: set[str], budget: int, strategy: str) -> tuple[Any, Any]:
    """Slicing against recomputation: the graph is sliced more and more (`CAPS`; graphs that come out the same
    are solved once) until two of them have a schedule; the cheaper one wins (a sliced node costs its extra
    FLOPs, a dropped value its recomputation). When none fits, the last (every join sliced as far as it
    goes) says the least budget."""
    from ..plan.remat import solve
    from ..plan.remat_graph import graph_from_plan

    seen: set[tuple[float, ...]] = set()
    best = last = None
    found = 0
    for cap in CAPS:
        graph = graph_from_plan(plan, outputs)
        if cap == 0:
            slice_nodes(graph, plan, None)
        else:
            slice_nodes(graph, plan, budget, None if cap is None else budget // cap)
        key = tuple(graph.workspace)
        if key in seen:
            continue
        seen.add(key)
        sched = solve(graph, float(budget), strategy)
        last = (graph, sched)
        if sched.feasible:
            found += 1
            if best is None or sched.cost < best[1].cost:
                best = last
            if found == 2:
                break
    return best or last


def scheduled_run(gp: Any, outputs: set[str], budget: int, strategy: str = "auto", cache: dict | None = None
                  ) -> Any:
    """Run the (analysed) gradient program `gp` under `budget` bytes; returns the schedule it ran."""
    from ..runtime.sliced import use_budget

    key = ("schedule", id(gp.analyzed), budget, strategy)
    if cache is not None and key in cache:
        graph, sched = cache[key]
    else:
        graph, sched = _best_schedule(gp.plan(), outputs, budget, strategy)
        if cache is not None:
            cache[key] = (graph, sched)
    if not sched.feasible:
        need = sched.min_budget
        raise TLRuntimeError(
            f"no {strategy} schedule of this training step fits in {human_bytes(budget)}, even with its joins "
            "sliced; nothing was run",
            hint=f"raise the memory budget to at least {human_bytes(int(need))} ({int(need):,} bytes)" if need
            else "raise the memory budget")
    use_budget(gp.executor, budget)  # joins that do not fit in what is left run in slices
    backend = gp.executor.backend
    if hasattr(backend, "reset_device_peak"):  # on CUDA, also what the allocator saw (torch backend)
        backend.reset_device_peak()
    gp.executor.run_schedule(graph.tensors, sched.steps)
    sched.device_peak = backend.device_peak_bytes() if hasattr(backend, "device_peak_bytes") else None
    return sched
