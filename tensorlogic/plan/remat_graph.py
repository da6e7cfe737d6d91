"""The computation graph of a tensorlogic program (usually a gradient program) for rematerialisation.

`graph_from_plan(plan)` turns the whole-program plan (`plan/program.py`, what the executor runs) into a
`RematGraph`: one node per stratum, in the plan's order (a topological order of the dataflow graph of
`ir/graph.py`); its cost is the FLOPs of its equations, its
output the bytes of its tensors, its workspace the largest product of its joins (`node_workspace`), its
inputs the strata computing the tensors it reads. Tensors no
stratum computes (data, parameters, given gradients) are static: live throughout, as in the executor.
Gradient tensors (`Grad_*`, `Adj_*`, from `tl grad`) and whatever reads them are the backward part (the
statistics a layer norm's derivative keeps, `Mean_*`, `Var_*`, are forward); the queried tensors are the
outputs, kept once computed.
"""

from __future__ import annotations

from ..ir.nodes import reads
from .program import BYTES_PER_ELEMENT, ProgramPlan
from .remat import RematGraph, Schedule, solve

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
        ws.append(float(node_workspace(st)))
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


def node_workspace(st) -> int:
    """Bytes a stratum holds while it runs on top of what is live and its own output, as the executor counts
    them: the largest product of its dense joins of two or more factors. An equation without such a join
    (a copy, a sum over one tensor, elementwise arithmetic) counts only its output."""
    return max([j.largest_intermediate * BYTES_PER_ELEMENT for e in st.equations if e.kind == "dense"
                for j in e.joins if len(j.inputs) >= 2] + [0])


def plan_remat(plan: ProgramPlan, budget: float, time_limit: float = 10.0) -> tuple[RematGraph, Schedule]:
    """The schedule for running `plan` within `budget` bytes (`remat.solve_auto`: store-all when it fits,
    else the chain DP, the layered chain DP or the MILP). Check `schedule.feasible`; when False,
    `schedule.min_budget` is the least budget found. Run it with `Executor.run_schedule(graph.tensors,
    schedule.steps)`."""
    graph = graph_from_plan(plan)
    return graph, solve(graph, budget, "auto", time_limit=time_limit)
