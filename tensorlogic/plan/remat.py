"""Keep or recompute: schedules for a computation graph under a memory budget (rematerialisation).

The model (the one of Checkmate, Jain et al. 2020): a computation graph `RematGraph` whose nodes are in
topological order; node v has a compute cost `cost[v]` (FLOPs), an output of `mem[v]` bytes, a transient
`workspace[v]` (bytes live only while v is computed), and the nodes it reads (`deps[v]`, all earlier).
`static` bytes (parameters, data) are live throughout. A schedule is a list of steps, `("compute", v)` or
`("free", v)`; computing v needs every dep live; while v is computed the memory in use is everything live
plus `mem[v] + workspace[v]`. `outputs` (the gradients) stay live once computed. A schedule's cost is the
sum of the costs of its computations (recomputations included); its peak is the largest memory in use.

Strategies (`solve(graph, budget, strategy)`):
- `store_all`: every node once, in order, each value freed after its last reader (what the executor does).
- `sqrt`: Chen et al. 2016: every ~sqrt(n)-th forward node is a checkpoint; the other forward values are
  freed after the forward pass and recomputed, segment by segment, from the checkpoints when the backward
  pass needs them. No budget: it is a fixed policy.
- `greedy`: drop kept forward values one at a time (most peak saved per extra FLOP) until the peak fits;
  the MILP falls back to it when HiGHS finds no schedule within its time limit.
- `dp` (`remat_chain.py`): exact dynamic program for chains (a linear forward chain and its backward).
- `milp` (`remat_milp.py`): Checkmate's MILP over stages, for any graph, solved by HiGHS (scipy).
- `layers` (`remat_layers.py`): a sequential network's gradient graph grouped into a chain, solved by the DP.
- `auto`: store-all when it fits, else dp, layers or the MILP, whichever applies first (`solve_auto`).

`simulate` replays a schedule and checks it (every value live when read, outputs present at the end) and
returns its cost and peak; every strategy's schedule goes through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Step = tuple[str, int]  # ("compute", v) | ("free", v)


@dataclass
class RematGraph:
    """A computation graph in topological order (see the module docstring)."""

    names: list[str]
    cost: list[float]
    mem: list[float]
    deps: list[tuple[int, ...]]
    backward: list[bool]
    outputs: set[int] = field(default_factory=set)  # default: the nodes nobody reads
    static: float = 0.0
    workspace: list[float] = field(default_factory=list)
    tensors: list[list[str]] = field(default_factory=list)  # per node, the tensors it computes (programs)

    def __post_init__(self) -> None:
        n = len(self.names)
        if not (len(self.cost) == len(self.mem) == len(self.deps) == len(self.backward) == n):
            raise ValueError("RematGraph: names, cost, mem, deps and backward must have one entry per node")
        if not self.workspace:
            self.workspace = [0.0] * n
        for v, ds in enumerate(self.deps):
            for d in ds:
                if not 0 <= d < v:
                    raise ValueError(f"RematGraph: node {v} ({self.names[v]}) reads node {d}, which is not "
                                     "earlier: nodes must be in topological order")
        if not self.outputs:
            read = {d for ds in self.deps for d in ds}
            self.outputs = {v for v in range(n) if v not in read}

    @property
    def n(self) -> int:
        return len(self.names)

    def users(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in range(self.n)]
        for v, ds in enumerate(self.deps):
            for d in set(ds):
                out[d].append(v)
        return out

    def compute_peak(self, v: int) -> float:
        """The least memory computing v can take: v, its workspace and its inputs, besides static bytes."""
        return self.static + self.mem[v] + self.workspace[v] + sum(self.mem[d] for d in set(self.deps[v]))


def forward_order(graph: RematGraph) -> list[int]:
    """The forward nodes, then the backward nodes, each in their order: a topological order too, since no
    forward node reads a backward one."""
    return [v for v in range(graph.n) if not graph.backward[v]] + [v for v in range(graph.n) if graph.backward[v]]


def forward_first(graph: RematGraph) -> RematGraph:
    """The same graph with its nodes in `forward_order`. Checkmate's stages follow the node order, so this lets
    a schedule that runs the forward pass and then the backward pass be a MILP solution (`remat_milp.py`)."""
    order = forward_order(graph)
    if order == list(range(graph.n)):
        return graph
    new = {v: k for k, v in enumerate(order)}
    return RematGraph([graph.names[v] for v in order], [graph.cost[v] for v in order],
                      [graph.mem[v] for v in order], [tuple(new[d] for d in graph.deps[v]) for v in order],
                      [graph.backward[v] for v in order], {new[o] for o in graph.outputs}, graph.static,
                      [graph.workspace[v] for v in order], [graph.tensors[v] for v in order] if graph.tensors else [])


@dataclass
class Schedule:
    """A strategy's result: its steps, their cost and peak (from `simulate`), or infeasibility."""

    strategy: str
    budget: float | None
    steps: list[Step]
    cost: float = 0.0
    peak: float = 0.0
    feasible: bool = True
    min_budget: float | None = None  # when infeasible: the smallest budget the strategy could meet
    optimal: bool | None = None  # proven optimal (when infeasible: proven infeasible; `note` says if min_budget is)
    note: str = ""
    lower_bound: float | None = None  # MILP: no schedule within the budget costs less (the solver's bound)

    def overhead(self, base_cost: float) -> float:
        """Extra compute over `base_cost` (store-all), as a fraction."""
        return self.cost / base_cost - 1.0 if base_cost else 0.0

    def named(self, graph: RematGraph) -> list[tuple[str, str]]:
        return [(op, graph.names[v]) for op, v in self.steps]


class ScheduleError(ValueError):
    """An invalid schedule (a value read before it is computed, a free of a dead value, ...)."""


def simulate(graph: RematGraph, steps: list[Step]) -> tuple[float, float]:
    """Replay `steps`; (total cost, peak memory). Raises ScheduleError when the schedule is invalid."""
    live: set[int] = set()
    mem = graph.static
    peak = mem
    cost = 0.0
    for op, v in steps:
        if op == "compute":
            if v in live:
                raise ScheduleError(f"{graph.names[v]} computed while already live")
            missing = [graph.names[d] for d in graph.deps[v] if d not in live]
            if missing:
                raise ScheduleError(f"{graph.names[v]} computed before its inputs {missing}")
            peak = max(peak, mem + graph.mem[v] + graph.workspace[v])
            mem += graph.mem[v]
            live.add(v)
            cost += graph.cost[v]
        elif op == "free":
            if v not in live:
                raise ScheduleError(f"{graph.names[v]} freed while not live")
            live.remove(v)
            mem -= graph.mem[v]
        else:
            raise ScheduleError(f"unknown step {op!r}")
    missing = [graph.names[o] for o in graph.outputs if o not in live]
    if missing:
        raise ScheduleError(f"outputs {missing} not live at the end")
    return cost, peak


def _finish(graph: RematGraph, strategy: str, budget: float | None, steps: list[Step], **kw) -> Schedule:
    cost, peak = simulate(graph, steps)
    if strategy in ("dp", "milp") and budget is not None and peak > budget * (1 + 1e-9) + 1e-9:
        raise ScheduleError(f"{strategy} schedule peaks at {peak:g}, over the budget {budget:g}")  # a bug
    return Schedule(strategy, budget, steps, cost, peak, **kw)


def store_all(graph: RematGraph) -> Schedule:
    """Every node once, in order; a value is freed right after its last reader."""
    users = graph.users()
    last = {v: max(us) if us else v for v, us in enumerate(users)}
    steps: list[Step] = []
    for v in range(graph.n):
        steps.append(("compute", v))
        for d in sorted(set(graph.deps[v]) | {v}):
            if last[d] == v and d not in graph.outputs:
                steps.append(("free", d))
    return _finish(graph, "store_all", None, steps)


def sqrt_checkpoints(graph: RematGraph, every: int | None = None) -> Schedule:
    """Chen et al. 2016: keep every `every`-th forward value (default ~sqrt of the forward nodes); recompute
    the others from the nearest kept values when the backward pass needs them, a segment at a time."""
    fwd = [v for v in range(graph.n) if not graph.backward[v]]
    k = every or max(1, round(math.sqrt(len(fwd))))
    keep = {v for i, v in enumerate(fwd) if (i + 1) % k == 0} | {v for v in fwd if v in graph.outputs}
    return _finish(graph, "sqrt", None, checkpoint_schedule(graph, keep), note=f"checkpoint every {k}")


def checkpoint_schedule(graph: RematGraph, keep: set[int], eager: bool = False, lean: bool = False) -> list[Step]:
    """Forward pass keeping only `keep` (and what later forward nodes still read); then each backward node
    in order, first recomputing (recursively) the forward values it reads that are not live. A value is freed
    as soon as no later step can read it; with `eager`, a recomputed value not in `keep` is freed as soon as
    the next backward node does not read it (less memory, more recomputation); with `lean`, also each
    value recomputed on the way is freed as soon as the recomputation no longer reads it."""
    users = graph.users()
    live: set[int] = set()
    done: set[int] = set()  # backward nodes computed
    steps: list[Step] = []
    fwd = [v for v in range(graph.n) if not graph.backward[v]]
    bwd = [v for v in range(graph.n) if graph.backward[v]]
    pos = {v: i for i, v in enumerate(fwd)}

    def forward_free(v: int, at: int) -> None:  # forward pass: drop what no later forward node reads
        for d in sorted(set(graph.deps[v]) | {v}):
            if d in live and d not in keep and d not in graph.outputs and \
                    all(graph.backward[w] or pos[w] <= at for w in users[d]):
                live.discard(d)
                steps.append(("free", d))

    def backward_free() -> None:  # drop what no pending backward node can read, directly or by recomputation
        memo: dict[int, bool] = {}

        def need(d: int) -> bool:
            if d not in memo:
                memo[d] = False
                memo[d] = any((w not in done) if graph.backward[w] else (w not in live and need(w))
                              for w in users[d])
            return memo[d]

        for d in sorted(live):
            if d not in graph.outputs and not need(d):
                live.discard(d)
                steps.append(("free", d))

    def ensure(v: int) -> None:
        if v in live:
            return
        for d in graph.deps[v]:
            ensure(d)
        live.add(v)
        steps.append(("compute", v))

    def recompute(v: int) -> None:  # lean: v's missing inputs, each ancestor freed after its last use here
        need: set[int] = set()
        stack = [d for d in graph.deps[v] if d not in live]
        while stack:
            u = stack.pop()
            if u not in need and u not in live:
                need.add(u)
                stack += [d for d in graph.deps[u] if d not in live]
        uses: dict[int, int] = {}
        for u in need:
            for d in set(graph.deps[u]):
                uses[d] = uses.get(d, 0) + 1
        for u in sorted(need):
            live.add(u)
            steps.append(("compute", u))
            for d in sorted(set(graph.deps[u])):
                uses[d] -= 1
                if uses[d] == 0 and d in need and d not in graph.deps[v] and d not in keep:
                    live.discard(d)
                    steps.append(("free", d))
        ensure(v)

    for v in fwd:
        ensure(v)
        forward_free(v, pos[v])
    for n, v in enumerate(bwd):
        if lean:
            recompute(v)
        ensure(v)
        done.add(v)
        backward_free()
        if eager and n + 1 < len(bwd):
            nxt = set(graph.deps[bwd[n + 1]])
            for d in sorted(live):
                if not graph.backward[d] and d not in keep and d not in nxt and d not in graph.outputs:
                    live.discard(d)
                    steps.append(("free", d))
    return steps


def lower_bound_budget(graph: RematGraph) -> float:
    """No schedule fits below this: some node's inputs, output and workspace, plus static bytes."""
    return max((graph.compute_peak(v) for v in range(graph.n)), default=graph.static)


def solve(graph: RematGraph, budget: float | None, strategy: str = "milp", **options) -> Schedule:
    """The schedule of `strategy` (store_all, sqrt, dp, milp) for `graph` under `budget` bytes."""
    if strategy == "store_all":
        s = store_all(graph)
    elif strategy == "sqrt":
        s = sqrt_checkpoints(graph, options.get("every"))
    elif strategy == "greedy":
        return greedy_checkpoints(graph, budget if budget is not None else math.inf)
    elif strategy == "dp":
        from .remat_chain import solve_chain

        return solve_chain(graph, budget if budget is not None else math.inf)
    elif strategy == "milp":
        from .remat_milp import solve_milp

        return solve_milp(graph, budget if budget is not None else store_all(graph).peak, **options)
    elif strategy == "layers":
        from .remat_layers import solve_layers

        return solve_layers(graph, budget if budget is not None else store_all(graph).peak)
    elif strategy == "auto":
        return solve_auto(graph, budget if budget is not None else store_all(graph).peak,
                          options.get("time_limit", 10.0))
    else:
        raise ValueError(f"unknown rematerialisation strategy {strategy!r} "
                         "(store_all, sqrt, greedy, dp, layers, milp, auto)")
    s.budget = budget
    if budget is not None and s.peak > budget:
        s.feasible = False
        s.min_budget = s.peak
    return s


def solve_auto(graph: RematGraph, budget: float, time_limit: float = 10.0) -> Schedule:
    """Store-all when it fits; else the exact DP on a chain; else the chain DP over a sequential network's
    layers (`remat_layers.py`) when the graph has that form and it fits; else the MILP with backward values
    computed once (greedy checkpointing when HiGHS finds nothing within `time_limit`)."""
    from .remat_chain import chain_shape
    from .remat_layers import layer_chain, solve_layers

    base = store_all(graph)
    if base.peak <= budget:
        base.budget = budget
        return base
    if chain_shape(graph) is not None:
        return solve(graph, budget, "dp")
    lc = layer_chain(graph)
    if lc is not None:
        s = solve_layers(graph, budget, lc)
        if s.feasible:
            return s
    return solve(graph, budget, "milp", time_limit=time_limit, recompute_backward=False)


def chain_graph(n: int, fwd_cost: float | list[float] = 1, bwd_cost: float | list[float] = 1,
                fwd_mem: float | list[float] = 1, bwd_mem: float | list[float] = 1) -> RematGraph:
    """Checkmate's linear graph (`gen_linear_graph`): forward nodes f_0..f_n (f_n the loss), then backward
    nodes b_{n-1}..b_0; f_i reads f_{i-1}, b_i reads f_i and b_{i+1} (b_{n-1} reads the loss). Costs and
    sizes are per node (lists of n+1 forward and n backward values, b indexed by i) or one number."""
    def seq(x, m):
        return list(x) if isinstance(x, list | tuple) else [x] * m
    cf, mf, cb, mb = seq(fwd_cost, n + 1), seq(fwd_mem, n + 1), seq(bwd_cost, n), seq(bwd_mem, n)
    names = [f"f{i}" for i in range(n)] + ["loss"] + [f"b{i}" for i in range(n - 1, -1, -1)]
    deps: list[tuple[int, ...]] = [()] + [(i - 1,) for i in range(1, n + 1)]
    deps += [(v - 1, 2 * n - v) for v in range(n + 1, 2 * n + 1)]
    cost = cf + [cb[i] for i in range(n - 1, -1, -1)]
    mem = mf + [mb[i] for i in range(n - 1, -1, -1)]
    return RematGraph(names, cost, mem, deps, [False] * (n + 1) + [True] * n, {2 * n})


def greedy_checkpoints(graph: RematGraph, budget: float) -> Schedule:
    """A heuristic for any graph: start from keeping every forward value and drop kept values one at a time,
    each time the one whose loss lowers the peak most per extra FLOP, until the peak fits (`checkpoint_schedule`
    recomputes what was dropped), trying both recomputation policies. Infeasible when nothing is left to drop.
    """
    results = [_greedy(graph, budget, eager) for eager in (False, True)]
    fits = [r for r in results if r.feasible]
    if not fits:  # leaner recomputation: every recomputed ancestor freed after its last use
        results += [_greedy(graph, budget, eager, lean=True) for eager in (False, True)]
        fits = [r for r in results if r.feasible]
    if fits:
        return min(fits, key=lambda r: r.cost)
    return min(results, key=lambda r: r.peak)


def _greedy(graph: RematGraph, budget: float, eager: bool, lean: bool = False) -> Schedule:
    keep = {v for v in range(graph.n) if not graph.backward[v]}
    best = _finish(graph, "greedy", budget, checkpoint_schedule(graph, keep, eager, lean))
    least = best
    while best.peak > budget and keep - graph.outputs:
        pick = None
        for k in sorted(keep - graph.outputs):
            trial = checkpoint_schedule(graph, keep - {k}, eager, lean)
            cost, peak = simulate(graph, trial)
            # a drop that lowers the peak most per extra FLOP; else (a plateau) the cheapest drop
            key = (0, -(best.peak - peak) / max(cost - best.cost, 1e-12)) if peak < best.peak else (1, cost)
            if pick is None or key < pick[0]:
                pick = (key, k, trial, cost, peak)
        keep.discard(pick[1])
        best = Schedule("greedy", budget, pick[2], pick[3], pick[4])
        if best.peak < least.peak:
            least = best
    if best.peak > budget:
        least.feasible, least.min_budget = False, least.peak
        return least
    return best
