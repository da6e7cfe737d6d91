"""Training under a memory budget: run a gradient program by a keep/recompute schedule.

The gradient program's whole-program plan (`plan/program.py`: strata, FLOPs, bytes, liveness) becomes a
computation graph (`plan/remat_graph.py`); the rematerialisation optimiser (`plan/remat.py`: an exact dynamic
program on chains, Checkmate's MILP on general graphs, or the sqrt(n) and store-everything baselines) picks
which forward values to keep and which to free and recompute so that the peak stays under the budget; the
executor runs that schedule (`Executor.run_schedule`) and counts the peak of what is live. Recomputing runs
the same equations on the same values, so gradients are identical with and without it. When no schedule
fits, nothing runs and the error gives the smallest budget the optimiser could meet.
"""

from __future__ import annotations

from typing import Any

from ..plan.program import human_bytes
from ..syntax.diagnostics import TLRuntimeError


def scheduled_run(gp: Any, outputs: set[str], budget: int, strategy: str = "milp", cache: dict | None = None
                  ) -> Any:
    """Run the (analysed) gradient program `gp` under `budget` bytes; returns the schedule it ran."""
    from ..plan.remat import solve
    from ..plan.remat_graph import graph_from_plan

    key = ("schedule", id(gp.analyzed), budget, strategy)
    if cache is not None and key in cache:
        graph, sched = cache[key]
    else:
        graph = graph_from_plan(gp.plan(), outputs)
        sched = solve(graph, float(budget), strategy)
        if cache is not None:
            cache[key] = (graph, sched)
    if not sched.feasible:
        need = sched.min_budget
        raise TLRuntimeError(
            f"no {strategy} schedule of this training step fits in {human_bytes(budget)}; nothing was run",
            hint=f"raise the memory budget to at least {human_bytes(int(need))}" if need else
            "raise the memory budget")
    gp.executor.run_schedule(graph.tensors, sched.steps)
    return sched
