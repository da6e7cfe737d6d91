"""Whole-program planning: every join's order and cost, the schedule of strata, liveness and peak memory.

`plan_program(analyzed)` reads an analysed program (shapes, ranges, which equations are relational) and
returns a `ProgramPlan`: per equation, each product's contraction plan (dense) or join estimate (sparse
relational), its FLOPs and largest intermediate; the strata in evaluation order; for every tensor the last
stratum that reads it (so the runtime can free it then); and the predicted peak memory, the peak the executor
counts (plan/memory.py replays the run's order and freeing; docs/planner.md, "Predicted vs measured peak").
It never touches array data. `cached_plan_join` memoises contraction plans per shape signature, so a second
run, a fixpoint round or a training step does not plan again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ..ir.graph import Stratum, strata
from ..ir.layered import layer_schedule
from ..ir.nodes import (
    Equation,
    Join,
    Node,
    Read,
    Reduce,
    equation_str,
    expr_str,
    free_vars,
    node_vars,
    reads,
    walk,
)
from .contract import ContractionPlan, plan_join
from .memory import mark_shared, relation_bound, run_targets, simulate

BYTES_PER_ELEMENT = 8  # float64 dense values
BYTES_PER_TUPLE_COLUMN = 8  # int64 relation columns


@lru_cache(maxsize=4096)
def _cached(inputs: tuple[tuple[str, ...], ...], output: tuple[str, ...], sizes: tuple[tuple[str, int], ...],
            minimize: str, effort: str) -> ContractionPlan:
    return plan_join(list(inputs), output, dict(sizes), minimize=minimize, effort=effort)


def cached_plan_join(inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int],
                     minimize: str = "flops", effort: str = "fast") -> ContractionPlan:
    """`plan_join`, planned once per (labels, output, sizes) signature."""
    used = {v for t in inputs for v in t} | set(output)
    key_sizes = tuple(sorted((v, n) for v, n in sizes.items() if v in used))
    return _cached(tuple(tuple(t) for t in inputs), tuple(output), key_sizes, minimize, effort)


def node_labels(n: Node) -> tuple[str, ...]:
    """The index variables of a node's value, in the order the dense evaluator produces them."""
    return tuple(free_vars(n))


def _union(groups) -> tuple[str, ...]:
    out: list[str] = []
    for g in groups:
        for v in g:
            if v not in out:
                out.append(v)
    return tuple(out)


@dataclass
class JoinPlan:
    """One product of an equation: dense (a contraction plan) or sparse (a relational join estimate)."""

    kind: str  # "dense" | "sparse"
    inputs: list[tuple[str, ...]]
    output: tuple[str, ...]
    flops: int
    largest_intermediate: int
    contraction: ContractionPlan | None = None
    estimated_tuples: int | None = None
    key: tuple | None = None  # a summed join's signature: the executor computes equal ones once (join_cache)
    shared: bool = False  # an equal join ran before in the run: answered from the cache, no products


@dataclass
class EquationPlan:
    equation: Equation
    kind: str  # "dense" | "relational"
    joins: list[JoinPlan]
    flops: int
    largest_intermediate: int  # elements (dense) or estimated tuples (relational)
    output_bytes: int
    fresh_bytes: int | None = None  # its result's fresh array (None: output_bytes; 0: added in place)
    sizes: dict[str, int] = field(default_factory=dict)  # index sizes as evaluated (a layer or a step: one value)

    @property
    def text(self) -> str:
        return equation_str(self.equation)


@dataclass
class StratumPlan:
    tensors: list[str]
    kind: str  # "once" | "semi-naive" | "layered" | "iterate" | "loop"
    equations: list[EquationPlan]
    relations_held: bool = False  # its heads are held as relations (Boolean rules), not dense arrays
    live_bytes: int = 0  # tensors live while it runs (inputs, its outputs and everything still needed)
    peak_bytes: int = 0  # live_bytes plus its largest transient (`stratum_transient`)


def equation_transient(e: EquationPlan) -> int:
    """Bytes the executor counts beyond what is live while it evaluates `e`: its joins' largest pairwise product
    (a sliced join's workspace) plus the fresh array its result is scattered into (plan/memory.py)."""
    pair = max([j.largest_intermediate for j in e.joins
                if j.contraction is not None and len(j.inputs) >= 2 and not j.shared] + [0])
    return BYTES_PER_ELEMENT * pair + (e.output_bytes if e.fresh_bytes is None else e.fresh_bytes)


def stratum_transient(st: StratumPlan) -> int:
    """The largest `equation_transient` of a stratum; none for Boolean rules held as relations (their result
    is what is live: its bound, plan/memory.py)."""
    if st.kind == "semi-naive" or (st.kind == "once" and st.equations and all(
            e.kind == "relational" for e in st.equations) and st.relations_held):
        return 0
    return max((equation_transient(e) for e in st.equations), default=0)


@dataclass
class ProgramPlan:
    strata: list[StratumPlan]
    tensor_bytes: dict[str, int]
    last_use: dict[str, int] = field(default_factory=dict)  # tensor -> index of the last stratum reading it
    keep: set[str] = field(default_factory=set)  # queried or written: never freed
    memory_budget: int | None = None
    # relations held as int64 tuple columns: name -> (tuples, exact?, arity) (data: exact; rules: a bound)
    relations: dict[str, tuple[int, bool, int]] = field(default_factory=dict)
    # data tensors: name -> (form: dense | relation | sparse COO, entries, bytes), as the executor stores them
    data_forms: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    # pairs of factors computed once for several joins (plan/sharing.py): one line each
    shared: list[str] = field(default_factory=list)

    @property
    def peak_bytes(self) -> int:
        return max((s.peak_bytes for s in self.strata), default=sum(self.tensor_bytes.values()))

    @property
    def flops(self) -> int:
        return sum(e.flops for s in self.strata for e in s.equations)

    @property
    def largest_tensor(self) -> tuple[str, int]:
        if not self.tensor_bytes:
            return ("", 0)
        name = max(self.tensor_bytes, key=self.tensor_bytes.get)
        return name, self.tensor_bytes[name]


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= max(0, int(x))
    return out


def tensor_bytes(prog, name: str) -> int:
    """Bytes of a tensor's value: dense float64, int64 tuple columns for a sparse relation, or COO coordinates
    and values for sparse numeric data (backends/sparse_numeric.py, `data_form`)."""
    from ..analysis.data import TupleSet
    from ..backends.sparse_numeric import data_form

    t = prog.tensors[name]
    data = prog.data.get(name)
    dense = _prod(t.storage_shape) * BYTES_PER_ELEMENT
    if isinstance(data, TupleSet) and data.weights is None and t.sparse is not False and not t.has_equations:
        # as Executor._make_initial stores it: int64 rows and an int64 key per tuple, or dense when not smaller
        rel = len(data.ids) * (len(t.storage_shape) + 1) * BYTES_PER_TUPLE_COLUMN
        return rel if t.sparse or rel < dense else dense
    if data is not None and not t.boolean and (t.sparse or isinstance(data, TupleSet)):
        form, _, nbytes = data_form(t, data)
        return nbytes if form == "sparse COO" else dense
    return dense


def plan_equation(prog, eq: Equation, relational: bool, effort: str = "fast", layer_var: str | None = None
                  ) -> EquationPlan:
    """One equation's joins; with `layer_var` (a layered recursion, ir/layered.py) as one layer of it is
    evaluated: that variable fixed to one value."""
    sizes = {v: hi - lo for v, (lo, hi) in eq.ranges.items()}
    if layer_var is not None and layer_var in sizes:
        sizes[layer_var] = min(1, sizes[layer_var])
    t = prog.tensors[eq.lhs]
    out_bytes = _prod(t.storage_shape) * BYTES_PER_ELEMENT
    joins: list[JoinPlan] = []
    if relational:
        atoms = [r for r in reads(eq.rhs) if isinstance(r, Read)]
        inputs = [node_labels(a) for a in atoms]
        est = 1
        for a in atoms:
            data = prog.data.get(a.tensor)
            n = len(data.ids) if data is not None and hasattr(data, "ids") else _prod(prog.tensors[a.tensor].shape)
            est = max(est, n)
        head = tuple(v for v in eq.lhs_vars())
        cp = cached_plan_join([i for i in inputs if i] or [()], head if inputs else (), sizes) if inputs else None
        joins.append(JoinPlan("sparse", inputs, head, cp.flops if cp else 0, est, cp, est))
        return EquationPlan(eq, "relational", joins, joins[0].flops, est, out_bytes, sizes=sizes)
    for m in walk(eq.rhs):
        if isinstance(m, Reduce) and isinstance(m.operand, Join) or (isinstance(m, Join) and not _under_reduce(eq, m)):
            join = m.operand if isinstance(m, Reduce) else m
            over = m.over if isinstance(m, Reduce) else ()
            inputs = [node_labels(f) for f in join.factors]
            out = tuple(v for v in _union(inputs) if v not in over)
            if len(inputs) < 2:
                flops = _prod(sizes.get(v, 1) for v in _union(inputs))
                joins.append(JoinPlan("dense", inputs, out, flops, _prod(sizes.get(v, 1) for v in out)))
                continue
            cp = cached_plan_join(inputs, out, sizes, effort=effort)
            key = (expr_str(m), tuple((v, sizes.get(v)) for v in node_vars(m))) if isinstance(m, Reduce) else None
            joins.append(JoinPlan("dense", inputs, out, cp.flops, cp.largest_intermediate, cp, key=key))
    flops = sum(j.flops for j in joins) or _prod(sizes.values())
    largest = max([j.largest_intermediate for j in joins] + [_prod(t.storage_shape)])
    return EquationPlan(eq, "dense", joins, flops, largest, out_bytes, sizes=sizes)


def _under_reduce(eq: Equation, target: Join) -> bool:
    return any(isinstance(m, Reduce) and m.operand is target for m in walk(eq.rhs))


def _head_bytes(sizes: dict[str, int], heads: list[str]) -> list[int]:
    return [sizes[t] for t in heads] or [0]


def _layer_vars(st: Stratum, prog) -> dict[int, str | None] | None:
    """A layered recursion's layer variable per equation id (ir/layered.py), or None when the executor
    iterates the stratum instead."""
    sched = layer_schedule(st, prog.tensors, lambda n: prog.tensors[n].boolean)
    if sched is None:
        return None
    return {step.equation.id: step.var for steps in sched.steps.values() for step in steps}


def _kind(st: Stratum, relational: dict[int, bool], prog) -> str:
    if any(e.virtual_var is not None for e in st.equations):
        return "loop"
    if not st.recursive:
        return "once"
    if all(relational.get(e.id) for e in st.equations) and all(prog.tensors[t].boolean for t in st.tensors):
        return "semi-naive"
    return "iterate"


def plan_program(prog, relational: dict[int, bool], needed: set[str] | None = None,
                 memory_budget: int | None = None, effort: str = "fast") -> ProgramPlan:
    """Plan the strata that `needed` depends on (all when None), with liveness and peak memory: each stratum's
    `live_bytes` as the run (query by query, plan/memory.py) holds them when it evaluates it, and its
    `peak_bytes`, that plus its largest transient (`stratum_transient`).

    `relational[eq.id]` says whether the runtime runs that equation as a sparse relational join (the
    runtime's `relational_form` decides; the planner only records it).
    """
    sizes = {name: tensor_bytes(prog, name) for name in prog.tensors}
    keep = {r.tensor for q in prog.queries for r in reads(q.expr)} | {w.tensor for w in prog.writes}
    if needed is not None:
        keep |= set(needed)
    targets = run_targets(prog)
    if needed is not None and set(needed) != {t for tg in targets if tg for t in tg}:
        targets = [set(needed)]  # a run of these tensors only (the REPL's plan of one tensor)
    kinds = {}
    for st in strata(prog.equations, None if targets == [None] else {t for tg in targets for t in tg}):
        kinds[frozenset(st.tensors)] = _kind(st, relational, prog)
        if kinds[frozenset(st.tensors)] == "semi-naive" or (kinds[frozenset(st.tensors)] == "once" and all(
                relational.get(e.id) for e in st.equations)):
            for name in st.tensors:  # held as a relation: at most every cell a tuple (plan/memory.py)
                t = prog.tensors[name]
                if t.boolean and t.sparse is not False:
                    sizes[name] = relation_bound(t.storage_shape)
    run, run_lives, run_outs, rerun = simulate(prog, sizes.__getitem__, targets)
    measured = {frozenset(st.tensors): (lv, o) for st, lv, o in zip(run, run_lives, run_outs)}
    # the strata in dependency order (plan/remat_graph.py reads them so); each with what is live when the
    # run (query by query) evaluates it
    sts = strata(prog.equations, needed)
    fallback = sum(sizes.values())  # (a stratum the replay does not reach: everything, a bound)
    lives = [measured.get(frozenset(st.tensors), (fallback, 0))[0] for st in sts]
    outs = [measured.get(frozenset(st.tensors), (fallback, 0))[1] for st in sts]
    last_use: dict[str, int] = {}
    for k, st in enumerate(sts):
        for e in st.equations:
            for r in reads(e.rhs):
                last_use[r.tensor] = k
    plans: list[StratumPlan] = []
    for st, live, out in zip(sts, lives, outs):
        kind = kinds.get(frozenset(st.tensors)) or _kind(st, relational, prog)
        layers = _layer_vars(st, prog) if kind == "iterate" else None
        if layers is not None:  # layer by layer: one layer's joins; a `+` step adds into its head in place
            kind = "layered"
            eqs = [plan_equation(prog, e, bool(relational.get(e.id)), effort, layers.get(e.id)) for e in st.equations]
            for ep in eqs:
                if ep.equation.op == "+":
                    ep.fresh_bytes = 0
        elif kind == "loop":  # one step of the virtual index at a time (Executor.run_loop)
            eqs = [plan_equation(prog, e, bool(relational.get(e.id)), effort, e.virtual_var) for e in st.equations]
        else:
            eqs = [plan_equation(prog, e, bool(relational.get(e.id)), effort) for e in st.equations]
        sp = StratumPlan(st.tensors, kind, eqs)
        sp.relations_held = all(prog.tensors[t].boolean and prog.tensors[t].sparse is not False for t in st.tensors)
        sp.live_bytes = live + out  # (recursion and loops hold their outputs while they run)
        if kind == "once" and stratum_transient(sp):  # its heads are made fresh, one after another
            sp.live_bytes = live + out - max(_head_bytes(sizes, st.tensors))
        sp.peak_bytes = sp.live_bytes + stratum_transient(sp)
        plans.append(sp)
    mark_shared(plans, [frozenset(st.tensors) for st in run], rerun)
    for sp in plans:
        sp.peak_bytes = sp.live_bytes + stratum_transient(sp)
    relations = _relations(prog, plans)
    from ..backends.sparse_numeric import data_form

    forms = {name: data_form(prog.tensors[name], prog.data[name]) for name in sorted(prog.data)
             if name in prog.tensors and (needed is None or any(name in st.tensors or name in _reads(st)
                                                                 for st in sts))}
    shared = [s.describe() for s in getattr(prog, "shared", None) or ()]
    return ProgramPlan(plans, sizes, last_use, keep, memory_budget, relations, forms, shared)


def _reads(st: Stratum) -> set[str]:
    return {r.tensor for e in st.equations for r in reads(e.rhs)}


def _relations(prog, plans: list[StratumPlan]) -> dict[str, tuple[int, bool, int]]:
    """Relations the run holds as tuple columns: data relations (exact) and relations computed by relational
    strata (bounded by the product of their extents; `tl run --stats` reports the measured size)."""
    from ..analysis.data import TupleSet

    out: dict[str, tuple[int, bool, int]] = {}
    for name, t in prog.tensors.items():
        data = prog.data.get(name)
        if isinstance(data, TupleSet) and data.weights is None and t.sparse is not False and not t.has_equations:
            out[name] = (len(data.ids), True, len(t.storage_shape))
    for st in plans:
        if st.kind == "semi-naive" or (st.kind == "once" and all(e.kind == "relational" for e in st.equations)):
            for name in st.tensors:
                if prog.tensors[name].boolean and prog.tensors[name].sparse is not False:
                    shape = prog.tensors[name].storage_shape
                    out[name] = (_prod(shape), False, len(shape))
    return out


def parse_bytes(text: str) -> int:
    """'200MB', '1.5GB', '4096' -> bytes (powers of 1024)."""
    s = text.strip().upper().replace(" ", "")
    units = {"KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4, "K": 1024, "M": 1024 ** 2,
             "G": 1024 ** 3, "B": 1}
    for u in sorted(units, key=len, reverse=True):
        if s.endswith(u):
            return int(float(s[: -len(u)]) * units[u])
    return int(float(s))


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def render(plan: ProgramPlan) -> str:
    """The plan as text: per equation its order, FLOPs, largest intermediate, sparse or dense; the peak."""
    lines = list(plan.shared)
    for k, st in enumerate(plan.strata):
        lines.append(f"stratum {k}: {', '.join(st.tensors)} [{st.kind}]  live {human_bytes(st.live_bytes)}, "
                     f"peak {human_bytes(st.peak_bytes)}")
        for e in st.equations:
            what = "sparse relational join" if e.kind == "relational" else "dense"
            lines.append(f"  {e.text}")
            lines.append(f"    {what}; flops {e.flops:,}; largest intermediate {e.largest_intermediate:,}"
                         f"{' tuples (estimate)' if e.kind == 'relational' else ' elements'}")
            stored = [f"{r} ({plan.data_forms[r][0]})" for r in sorted({r.tensor for r in reads(e.equation.rhs)})
                      if e.kind == "dense" and plan.data_forms.get(r, ("dense",))[0] != "dense"]
            if stored:  # runtime/sparse_eval.py: sparse products and segment sums where the equation allows
                lines.append(f"    reads {', '.join(stored)}: sparse products and sums, else made dense once")
            for j in e.joins:
                if j.contraction is not None and j.contraction.steps:
                    for line in str(j.contraction).splitlines()[1:-1]:
                        lines.append(f"      {line.strip()}")
    name, nbytes = plan.largest_tensor
    lines.append(f"predicted peak memory: {human_bytes(plan.peak_bytes)}; total flops {plan.flops:,}; "
                 f"largest tensor {name} ({human_bytes(nbytes)})")
    if plan.relations:  # tuple columns: int64 rows plus one int64 key per tuple (docs/datalog.md)
        big = max(plan.relations, key=lambda r: plan.relations[r][0])
        n, exact, arity = plan.relations[big]
        lines.append(f"largest relation: {big}, {'' if exact else 'at most '}{n:,} tuples "
                     f"({'' if exact else 'at most '}{human_bytes(n * 8 * (arity + 1))} as int64 columns"
                     f"{'' if exact else '; tl run --stats measures it'})")
    for name, (form, n, nbytes) in plan.data_forms.items():  # the form each data tensor is stored in
        what = {"relation": "tuples", "sparse COO": "entries"}.get(form, "elements")
        lines.append(f"data {name}: {form}, {n:,} {what}, {human_bytes(nbytes)}")
    if plan.memory_budget is not None:
        ok = plan.peak_bytes <= plan.memory_budget
        lines.append(f"memory budget {human_bytes(plan.memory_budget)}: "
                     + ("fits" if ok else f"EXCEEDED by {human_bytes(plan.peak_bytes - plan.memory_budget)}"))
    return "\n".join(lines)


def to_dot(plan: ProgramPlan) -> str:
    """The plan as DOT: strata as clusters, each equation a box with its cost, edges from tensors read."""
    out = ["digraph plan {", "  rankdir=LR;", '  node [fontname="Helvetica", fontsize=10];']
    for k, st in enumerate(plan.strata):
        out.append(f'  subgraph cluster_{k} {{ label="stratum {k} ({st.kind})";')
        for e in st.equations:
            label = f"{e.text}\\n{e.kind}, {e.flops:,} flops".replace('"', '\\"')
            out.append(f'    e{e.equation.id} [shape=box, label="{label}"];')
        out.append("  }")
        for e in st.equations:
            out.append(f'  e{e.equation.id} -> "{e.equation.lhs}";')
            for r in sorted({r.tensor for r in reads(e.equation.rhs)}):
                out.append(f'  "{r}" -> e{e.equation.id};')
    out.append("}")
    return "\n".join(out) + "\n"
