"""The Python API: `Program`, `load`.

    import tensorlogic as tl
    prog = tl.Program('''
        Parent(Alice, Bob). Parent(Bob, Carol).
        Ancestor(x,y) <- Parent(x,y).
        Ancestor(x,z) <- Ancestor(x,y), Parent(y,z).
    ''')
    prog.query("Ancestor(Alice, x)")      # [['Bob'], ['Carol']]
    prog["Ancestor"]                      # a dense numpy array

A Program parses at once (syntax errors raise TLSyntaxError) and analyses when it first runs, with the
inputs given to `run` (arrays for tensors, iterables of tuples for relations).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .analysis.program import Analyzed, analyze, analyze_query
from .backends.numpy_backend import get_backend
from .ir.lower import Lowered, lower
from .ir.nodes import Const, QueryIR, reads
from .plan.program import ProgramPlan, human_bytes, parse_bytes, plan_program
from .plan.program import render as render_plan
from .runtime.executor import Executor, RunReport
from .runtime.files import TupleData, resolve_path, write_tensor_file
from .runtime.queries import answer, format_answer
from .syntax import ast
from .syntax.diagnostics import TLRuntimeError
from .syntax.imports import expand_imports
from .syntax.parser import parse, parse_expression


@dataclass
class Answer:
    """One query's answer: its text and its value (see `tl run --json`)."""

    query: str
    value: Any
    ir: QueryIR

    def to_json(self) -> dict:
        return {"query": self.query, "value": self.value}


class Program:
    """A tensor logic program: parse once, run with inputs, read tensors and answer queries."""

    def __init__(self, source: str, file: str = "<input>", base_dir: str | Path | None = None,
                 backend: str = "numpy", functions: dict[str, Callable] | None = None, seed: int = 0,
                 memory_budget: int | str | None = None, device: str | None = None):
        self.source = source
        self.file = file
        self.base_dir = Path(base_dir) if base_dir is not None else (
            Path(file).resolve().parent if file not in ("<input>", "<repl>") else Path.cwd())
        self.backend = get_backend(backend, device)  # device: "cpu", "cuda", "cuda:1" (torch backend)
        self.functions: dict[str, Callable] = dict(functions or {})
        self.seed = seed
        self.memory_budget = parse_bytes(memory_budget) if isinstance(memory_budget, str) else memory_budget
        self.ast: ast.Program = expand_imports(parse(source, file), self.base_dir)
        self._inputs: dict[str, Any] = {}
        self._analyzed: Analyzed | None = None
        self._signature: tuple | None = None  # the inputs' shapes and kinds the analysis was made for
        self._tuples: dict[str, list] = {}  # ... and the relations given as tuples
        self._executor: Executor | None = None
        self._previous: Executor | None = None  # the last run's executor, while the analysis is reused
        self.answers: list[Answer] = []
        self.params: dict[str, np.ndarray] = {}  # learned values, used by run() for tensors not given
        self.learning = False  # tensors read but never defined become parameters (set by grad and train)
        self.last_loss: float | None = None
        self._grad_programs: dict = {}
        self._strata_cache: tuple = (None, {})
        self._shared_cache: tuple = (None, None, None)  # (analysis, budgeted, what the executor runs)
        # under a memory budget no sub-join is shared: a shared temporary is kept until its last consumer,
        # the memory that slicing and recomputation are there to save (docs/planner.md)
        self._no_share = False
        self._renames: dict[str, str] = {}  # with `set history = 1`: a state's initial data is <state>_Init

    # ------------------------------------------------------------ stages
    def register_function(self, name: str, fn: Callable[..., np.ndarray]) -> None:
        """Make `name(...)` callable in equations (procedural attachment); fn works elementwise on arrays."""
        self.functions[name] = fn
        self._analyzed = None

    def lowered(self) -> Lowered:
        low = lower(self.ast, set(self.functions), collect=True)
        # a value given for a tensor replaces the program's own data for it (literal, facts or file)
        low.data = [st for st in low.data
                    if getattr(st, "lhs", getattr(st, "atom", None)).name not in self._inputs]
        low.equations = [eq for eq in low.equations  # `W = 0.5` is data too
                         if not (eq.lhs in self._inputs and not eq.lhs_pos and isinstance(eq.rhs, Const))]
        self._renames = {}
        if low.settings.get("history"):  # virtual indices keep every step (gradient programs; BPTT)
            from .autodiff.history import keep_history

            self._renames = keep_history(low)
        if self.learning:
            from .learn.trainer import parameter_candidates

            _, implicit = parameter_candidates(low, set(self._inputs) | set(self.params))
            low.decls += [ast.TensorDecl(n, None, None, ("learnable",)) for n in sorted(implicit)]
        return low

    def analyze(self, **inputs: Any) -> Analyzed:
        """Analyse with the given inputs (raises TLAnalysisError listing every error).

        When every input is a dense array with the same shape and kind as last time (and integer scalars are
        equal), the previous analysis is reused with the new arrays bound: a second run does not analyse
        or plan again."""
        inputs = {k: _numpy_input(v) for k, v in inputs.items()}  # torch tensors (any device) as numpy
        sig = _signature(inputs)
        if (sig is not None and sig == self._signature and self._analyzed is not None
                and _same_tuples(self._tuples, inputs)):
            for name, value in inputs.items():
                if isinstance(value, np.ndarray):
                    self._analyzed.data[self._renames.get(name, name)] = np.asarray(value, dtype=np.float64)
            self._inputs = dict(inputs)
            self._previous, self._executor = self._executor or self._previous, None  # see Executor.adopt
            return self._analyzed
        self._inputs = dict(inputs)
        lowered = self.lowered()
        given = {self._renames.get(k, k): v for k, v in self._inputs.items()}
        self._analyzed = analyze(lowered, given, self.base_dir)
        self._signature, self._tuples = sig, (_tuple_inputs(inputs) if sig is not None else {})
        self._executor = self._previous = None
        return self._analyzed

    @property
    def analyzed(self) -> Analyzed:
        if self._analyzed is None:
            self.analyze(**self._inputs)
        return self._analyzed

    def _run_analysis(self) -> Analyzed:
        """The analysis the executor runs: shared sub-joins computed once (plan/sharing.py), per analysis."""
        budgeted = self._no_share or self.memory_budget is not None
        if self._shared_cache[0] is not self.analyzed or self._shared_cache[1] != budgeted:
            from .plan.sharing import share_subjoins

            a = self.analyzed
            self._shared_cache = (a, budgeted, a if budgeted else share_subjoins(a))
        return self._shared_cache[2]

    @property
    def executor(self) -> Executor:
        if self._executor is not None and self._executor.prog is not self._run_analysis():
            self._executor = None  # sharing switched on or off (a memory budget came or went): run the other
        if self._executor is None:
            a = self._run_analysis()
            self._executor = Executor(a, self.backend, self.functions, self.seed)
            if self._previous is not None:  # the same analysis, run again: reuse what inputs do not change
                self._executor.adopt(self._previous)
                self._previous = None
            if self._strata_cache[0] is a:  # the same analysis: its strata are the same (computed once)
                self._executor._strata = self._strata_cache[1]
            else:
                self._strata_cache = (a, self._executor._strata)
        return self._executor

    # ------------------------------------------------------------ running
    def run(self, memory_budget: int | str | None = None, **inputs: Any) -> list[Answer]:
        """Run with these inputs: answer the queries and write the files, computing only what they need
        (backward chaining); a program with neither is forward-chained to the end. Other tensors are computed
        when first read (`prog["Name"]`). `memory_budget` (bytes or "20MB"; default the program's): joins
        that would not fit run in slices (runtime/sliced.py); a budget slicing cannot meet is refused before
        running, with the least budget that fits."""
        budget = self._budget(memory_budget)
        self._no_share = budget is not None
        self.analyze(**{**self.params, **inputs})
        ex = self.executor
        if budget is not None or "plan" in os.environ.get("TL_DEBUG", ""):
            plan = self.plan(budget)
            fit = getattr(plan, "slicing", None)
            if "plan" in os.environ.get("TL_DEBUG", ""):
                print(render_plan(plan), file=sys.stderr)
                if fit is not None and fit.describe():
                    print(fit.describe(), file=sys.stderr)
            if budget is not None and plan.peak_bytes > budget:
                least = fit.least_budget if fit is not None and fit.least_budget else plan.peak_bytes
                raise TLRuntimeError(
                    f"this run needs about {human_bytes(plan.peak_bytes)} at its peak, more than the memory budget "
                    f"of {human_bytes(budget)}, even with its joins sliced as far as they go; nothing was run",
                    hint=f"raise the budget to at least {human_bytes(least)} ({least:,} bytes; tl plan shows where "
                         "the memory goes)")
        from .runtime.sliced import use_budget

        use_budget(ex, budget)
        ex.free_dead = True
        ex.keep = {r.tensor for q in self.analyzed.queries for r in reads(q.expr)}
        ex.keep |= {w.tensor for w in self.analyzed.writes}
        ex.plan_liveness(set(ex.keep))
        if not self.analyzed.queries and not self.analyzed.writes:
            ex.ensure(None)
        self.answers = [Answer(q.text, answer(ex, q), q) for q in self.analyzed.queries]
        for w in self.analyzed.writes:
            ex.ensure({w.tensor})
            self._write(w.path, w.tensor, w.span)
        return self.answers

    def __getitem__(self, name: str) -> np.ndarray:
        prog = self.analyzed
        if name not in prog.tensors:
            raise KeyError(f"no tensor '{name}' in the program")
        self.executor.ensure({name})
        return np.array(self.executor.dense(name))

    # ------------------------------------------------------------ learning
    def grad(self, loss: str, wrt: list[str] | None = None, memory_budget: int | str | None = None,
             remat: str = "auto", **values: Any) -> dict[str, np.ndarray]:
        """The gradient of the scalar `loss` with respect to each tensor in `wrt` (default: the parameters
        not given in `values`) at `values`, as numpy arrays of the tensors' shapes. The gradient is computed
        by the gradient program (`grad_source`), run like any other program. Under `memory_budget` (bytes or
        "200MB"; default the program's) it runs by a keep/recompute schedule of strategy `remat` (auto,
        milp, layers, dp, greedy, sqrt, store_all; see docs/remat.md), or raises before running when none
        fits."""
        from .learn.trainer import parameters, program_grad

        names = list(wrt) if wrt is not None else parameters(self, set(values))
        budget = self._budget(memory_budget)
        return program_grad(self, loss, names, {**self.params, **values}, budget, remat)

    def _budget(self, memory_budget: int | str | None) -> int | None:
        if memory_budget is None:
            return self.memory_budget
        return parse_bytes(memory_budget) if isinstance(memory_budget, str) else int(memory_budget)

    def grad_source(self, loss: str, wrt: list[str] | None = None, **values: Any) -> str:
        """The gradient program as `.tl` source: the forward statements, `Grad_<loss> = 1`, the gradient
        equations and a query per gradient (what `tl grad` prints)."""
        from .autodiff.program import gradient_source
        from .learn.trainer import check_loss, differentiable, parameters

        names = list(wrt) if wrt is not None else parameters(self, set(values))
        self.learning = True
        values = {**self.params, **values}
        self.analyze(**values)
        check_loss(self.analyzed, loss)
        src = differentiable(self, values)
        names = [src._renames.get(n, n) for n in names]
        return gradient_source(src.source, src.ast, src.file, src.analyzed, [loss], names).text

    def train(self, loss: str = "Loss", epochs: int = 100, lr: float = 0.01, optimizer: str = "adam",
              wrt: list[str] | None = None, progress: bool = False, save: str | Path | None = None,
              plot: str | Path | None = None, callback: Callable[[int, float], None] | None = None,
              options: dict[str, float] | None = None, batch_size: int | None = None,
              memory_budget: int | str | None = None, remat: str = "auto", **data: Any) -> list[float]:
        """Learn the parameters (tensors declared learnable or never defined; or `wrt`) by minimising the
        scalar `loss` with `optimizer` (sgd, momentum, adam, adamw); returns the loss of each epoch. The
        learned values stay in `prog.params` and are used by later runs; `save` writes them after every
        epoch (atomically) and `plot` draws the loss curve. With `batch_size`, each epoch takes one step per
        minibatch of the examples indexed by a virtual index (`X[*e, i]`; see tensorlogic/learn/batches.py)."""
        from .learn.trainer import train

        return train(self, loss, epochs, lr, optimizer, wrt, progress, save, plot, callback, options, data,
                     batch_size, self._budget(memory_budget), remat)

    def save_params(self, path: str | Path) -> None:
        from .learn.trainer import save_params

        save_params(path, self.params)

    def load_params(self, path: str | Path) -> dict[str, np.ndarray]:
        """Use the parameters in an .npz file (from `tl train --save`) in later runs."""
        from .learn.trainer import load_params

        self.params.update(load_params(path))
        return self.params

    def tensors(self) -> list[str]:
        return sorted(self.analyzed.tensors)

    def plan(self, memory_budget: int | str | None = None, effort: str = "fast") -> ProgramPlan:
        """The whole-program plan of what a run computes: orders, FLOPs, sparse/dense, liveness, peak memory."""
        budget = parse_bytes(memory_budget) if isinstance(memory_budget, str) else memory_budget
        if budget is not None:
            self._no_share = True
        a = self._run_analysis()
        needed = {r.tensor for q in a.queries for r in reads(q.expr)} | {w.tensor for w in a.writes}
        relational = {k: f is not None for k, f in self.executor.forms.items()}
        plan = plan_program(a, relational, needed or None, budget, effort)
        if budget is not None:  # joins that do not fit are sliced (plan/slicing.py); `plan.slicing` says how
            from .plan.slicing import fit_program

            plan.slicing = fit_program(plan, budget)
        return plan

    def query(self, text: str) -> Any:
        """Answer one query, e.g. `prog.query("Ancestor(Alice, x)")`, as Python values."""
        expr = parse_expression(text, "<query>")
        q = analyze_query(self.analyzed, expr, text.strip().rstrip("?").strip(), set(self.functions))
        return answer(self.executor, q)

    def format(self, a: Answer) -> str:
        return format_answer(a.ir, a.value, self.executor)

    @property
    def report(self) -> RunReport:
        return self.executor.report

    def _write(self, path: str, name: str, span) -> None:
        ex = self.executor
        prog = self.analyzed
        t = prog.tensors[name]
        target = resolve_path(path, self.base_dir)
        from .runtime.sparse_eval import sparse_table  # a sparse tensor's entries, never its dense array

        if target.suffix.lower() in (".csv", ".tsv") and (table := sparse_table(ex, name)) is not None:
            return write_tensor_file(target, table, span)
        symbolic = any(prog.domains[d].symbolic for k, d in enumerate(t.domains) if k != t.virtual_axis)
        if target.suffix in (".npy", ".npz") or not (t.boolean or symbolic):
            write_tensor_file(target, ex.dense(name), span)
            return
        doms = [prog.domains[d] for k, d in enumerate(t.domains) if k != t.virtual_axis]

        def labels(ids: np.ndarray) -> list[np.ndarray]:  # per position: the ints, or the symbols they stand for
            return [np.asarray(d.symbols + [str(i) for i in range(len(d.symbols), int(c.max(initial=-1)) + 1)],
                               dtype=object)[c] if d.symbolic else c for d, c in zip(doms, ids.T)]

        if t.boolean and not doms:  # a Boolean scalar: one empty row when true
            write_tensor_file(target, TupleData([()] * len(ex.relation(name)), None, 0), span)
        elif t.boolean:
            write_tensor_file(target, TupleData(None, None, len(doms), cols=labels(ex.relation(name).cols)), span)
        else:
            arr = ex.dense(name)
            idx = np.argwhere(arr != 0)
            write_tensor_file(target, TupleData(None, arr[tuple(idx.T)].astype(float), len(doms),
                                                cols=labels(idx)), span)


def _numpy_input(v: Any) -> Any:
    """An input given as a torch tensor, as a numpy array (without importing torch)."""
    if type(v).__module__.startswith("torch"):
        from .backends.numpy_backend import to_numpy

        return to_numpy(v)
    return v


def _signature(inputs: dict[str, Any]) -> tuple | None:
    """What analysis depends on in the inputs: array shapes and kinds, scalars' values, the number of tuples of
    a relation given as a sequence of tuples (whose content `_same_tuples` compares); None for other inputs."""
    out = []
    for name in sorted(inputs):
        v = inputs[name]
        if isinstance(v, np.ndarray) and v.ndim > 0 and v.dtype.kind in "biuf":
            out.append((name, v.shape, v.dtype.kind == "b"))
        elif isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool):
            out.append((name, "scalar", float(v)))
        elif isinstance(v, list | tuple) and all(type(t) is tuple for t in v):  # compared by _same_tuples
            out.append((name, "tuples", len(v)))
        else:
            return None
    return tuple(out)


def _tuple_inputs(inputs: dict[str, Any]) -> dict[str, list]:
    """The relations given as sequences of tuples, copied (tuples are immutable: a shallow copy is enough)."""
    return {k: list(v) for k, v in inputs.items() if isinstance(v, list | tuple)}


def _same_tuples(old: dict[str, list], inputs: dict[str, Any]) -> bool:
    """Whether every relation given as tuples has the same tuples, in the same order, as last time."""
    return all(old.get(k) == (v if isinstance(v, list) else list(v))
               for k, v in inputs.items() if isinstance(v, list | tuple))


def load(path: str | Path, **kwargs: Any) -> Program:
    """A Program from a .tl file; relative file paths inside it are relative to its folder."""
    p = Path(path)
    try:
        source = p.read_text()
    except OSError as e:
        raise TLRuntimeError(f"cannot read program '{path}': {e.strerror or e}") from None
    return Program(source, str(p), base_dir=p.resolve().parent, **kwargs)
