"""The computation graph of a tensorlogic program (usually a gradient program) for rematerialisation.

`graph_from_plan(plan)` turns the whole-program plan (`plan/program.py`, what the executor runs) into a
`RematGraph`: one node per stratum, in the plan's order (a topological order of the dataflow graph of
`ir/graph.py`); its cost is the FLOPs of its equations, its output the bytes of its tensors, its workspace
the largest intermediate of its joins, its inputs the strata computing the tensors it reads. Tensors no
stratum computes (data, parameters, given gradients) are static: live throughout, as in the executor.
Gradient tensors (`Grad_*`, `Adj_*`, from `tl grad`) and whatever reads them are the backward part (the
statistics a layer norm's derivative keeps, `Mean_*`, `Var_*`, are forward); the queried tensors are the
outputs, kept once computed.
"""

from __future__ import annotations

from ..ir.nodes import reads
from .program import BYTES_PER_ELEMENT, ProgramPlan
from .remat import RematGraph, Schedule, solve, store_all

BACKWARD_PREFIXES = ("Grad_", "Adj_")


def graph_from_plan(plan: ProgramPlan, outputs: set[str] | None = None,
                    backward_prefixes: tuple[str, ...] = BACKWARD_PREFIXES) -> RematGraph:
    """A `RematGraph` of `plan`'s strata. `outputs` (tensor names; default the plan's kept tensors)."""
    keep = plan.keep if outputs is None else outputs
    made_by: dict[str, int] = {}
    for k, st in enumerate(plan.strata):
        for t in st.tensors:
            made_by[t] = k
    names, cost, mem, deps, backward, ws = [], [], [], [], [], []
    outs: set[int] = set()
    static_tensors: set[str] = set()
    for k, st in enumerate(plan.strata):
        names.append("+".join(st.tensors))
        cost.append(float(sum(e.flops for e in st.equations)))
        out_bytes = sum(plan.tensor_bytes[t] for t in st.tensors)
        mem.append(float(out_bytes))
        largest = max([e.largest_intermediate * BYTES_PER_ELEMENT for e in st.equations if e.kind == "dense"] + [0])
        ws.append(float(largest))  # the executor's model: the largest intermediate on top of what is live
        ins: set[int] = set()
        for e in st.equations:
            for r in reads(e.equation.rhs):
                j = made_by.get(r.tensor)
                if j is None:
                    static_tensors.add(r.tensor)
                elif j != k:
                    ins.add(j)
        deps.append(tuple(sorted(ins)))
        backward.append(any(t.startswith(backward_prefixes) for t in st.tensors) or any(backward[j] for j in ins))
        if any(t in keep for t in st.tensors):
            outs.add(k)
    static = float(sum(plan.tensor_bytes.get(t, 0) for t in static_tensors))
    return RematGraph(names, cost, mem, deps, backward, outs, static, ws, [list(st.tensors) for st in plan.strata])


def plan_remat(plan: ProgramPlan, budget: float, time_limit: float = 10.0) -> tuple[RematGraph, Schedule]:
    """The schedule for running `plan` within `budget` bytes: store-all when it fits, else the chain DP when
    the graph is a chain, else the MILP (backward values computed once; greedy checkpointing when HiGHS finds
    nothing within `time_limit`). Check `schedule.feasible`; when False, `schedule.min_budget` is the least
    budget found. Run it with `Executor.run_schedule(graph.tensors, schedule.steps)`."""
    from .remat_chain import chain_shape

    graph = graph_from_plan(plan)
    base = store_all(graph)
    if base.peak <= budget:
        base.budget = budget
        return graph, base
    if chain_shape(graph) is not None:
        return graph, solve(graph, budget, "dp")
    return graph, solve(graph, budget, "milp", time_limit=time_limit, recompute_backward=False)
