"""Training under a memory budget: run a gradient program by a keep/recompute schedule.

The gradient program's whole-program plan (`plan/program.py`: strata, FLOPs, bytes, liveness) becomes a
computation graph (`plan/remat_graph.py`); the rematerialisation optimiser (`plan/remat.py`: an exact dynamic
program on chains, Checkmate's MILP on general graphs, or the sqrt(n) and store-everything baselines) picks
which forward values to keep and which to free and recompute so that the peak stays under the budget; the
executor runs that schedule (`Executor.run_schedule`) and counts the peak of what is live. Recomputing runs
the same equations on the same values, so gradients are identical with and without it.

A node whose join alone would not fit (its inputs, output and workspace over the budget) has its workspace
shrunk by slicing (`plan/slicing.py`): its joins are planned to run in chunks within what the budget leaves,
at the FLOPs slicing costs; at run time the executor slices every join that does not fit in what is left
(`runtime/sliced.py`). When no schedule fits, the graph with every join sliced as far as it goes is tried;
when that fails too, nothing runs and the error gives the smallest budget the optimiser could meet.
"""

from __future__ import annotations

from typing import Any

from ..plan.program import human_bytes
from ..syntax.diagnostics import TLRuntimeError


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
                    ws, f, changed = sj.workspace, sj.flops, True
            need, eflops = max(need, ws), eflops + f
        work = max(work, need)
        flops += eflops if e.joins else e.flops
    return (8 * work, flops) if changed else None


def slice_nodes(graph: Any, plan: Any, budget: int | None) -> list[int]:
    """Shrink, in place, the workspace of each node of `graph` (one per stratum of `plan`, as
    `graph_from_plan` makes it) that cannot be computed within `budget` even with nothing else live, by
    slicing its joins into what the budget leaves beside its inputs and output; `budget` None slices every
    join as far as it goes. The node's cost becomes the sliced FLOPs. Returns the nodes changed."""
    changed = []
    for k, st in enumerate(plan.strata):
        if budget is None:
            room = None
        else:
            room = int(budget - (graph.compute_peak(k) - graph.workspace[k])) // 8
            if graph.workspace[k] <= 8 * room:
                continue
            room = max(room, 0)
        got = _slice_stratum(st, room)
        if got is not None and got[0] < graph.workspace[k]:
            graph.workspace[k], graph.cost[k] = float(got[0]), float(got[1])
            changed.append(k)
    return changed


def scheduled_run(gp: Any, outputs: set[str], budget: int, strategy: str = "milp", cache: dict | None = None
                  ) -> Any:
    """Run the (analysed) gradient program `gp` under `budget` bytes; returns the schedule it ran."""
    from ..plan.remat import solve
    from ..plan.remat_graph import graph_from_plan
    from ..runtime.sliced import use_budget

    key = ("schedule", id(gp.analyzed), budget, strategy)
    if cache is not None and key in cache:
        graph, sched = cache[key]
    else:
        plan = gp.plan()
        graph = graph_from_plan(plan, outputs)
        slice_nodes(graph, plan, budget)
        sched = solve(graph, float(budget), strategy)
        if not sched.feasible:  # every join sliced as far as it goes: the least memory, at more FLOPs
            least = graph_from_plan(plan, outputs)
            if slice_nodes(least, plan, None):
                alt = solve(least, float(budget), strategy)
                if alt.feasible or alt.min_budget:
                    graph, sched = least, alt
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
    gp.executor.run_schedule(graph.tensors, sched.steps)
    return sched
