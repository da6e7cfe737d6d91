"""The executor: runs an analysed program's strata on a backend.

Strata (strongly connected components of the dependency graph) run in dependency order, and only those a
query needs (backward chaining). Non-recursive strata evaluate each equation once; Boolean recursion that
is relational runs semi-naively (each round joins only the last round's new tuples) to the least fixpoint;
other recursion iterates to a tolerance or an iteration limit and reports which stopped it; equations with
a virtual index (`X[i,*t+1]`) run as a loop over t keeping only the current slice.

Dense values are arrays of the backend (numpy arrays, or torch tensors on its device), made with its array
namespace `xp`; data, initial values and relations are numpy and are converted at the boundary
(`array(name)`); `dense(name)` gives numpy back to callers outside the runtime.
"""

from __future__ import annotations

import functools
import os
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..analysis.data import TupleSet
from ..analysis.program import Analyzed
from ..backends.relations import Relation
from ..backends.sparse_numeric import SparseTensor
from ..ir.graph import Stratum, strata
from ..ir.layered import layer_schedule
from ..ir.nodes import Equation, IConst, IExpr, IVar, Read, equation_str, reads
from ..syntax.diagnostics import Diagnostic, TLRuntimeError
from . import relational, seminaive, sparse_eval
from .compiled import Fallback, compiled_for
from .compiled import available as compiled_available
from .compiled_steps import HeadStep, layer_steps, uninitialised
from .dense import DenseEvaluator, finish_head, fold_contribution, to_numpy
from .scatter import scatter, scatter_static
from .values import ValueStore, nbytes_of

Value = np.ndarray | Relation | SparseTensor
DEFAULT_MAX_ITERATIONS = 1000
DEFAULT_TOLERANCE = 1e-9


@dataclass
class StratumReport:
    tensors: list[str]
    kind: str  # "once" | "semi-naive" | "iterate" | "loop"
    rounds: int = 1
    stopped_by: str = ""  # "fixpoint" | "tolerance" | "iteration limit"
    change: float = 0.0
    derived: int = 0  # semi-naive: tuples derived by rule bodies, before removing known ones (the work done)


@dataclass
class RunReport:
    strata: list[StratumReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Executor:
    """Holds tensor values and computes them on demand."""

    def __init__(self, prog: Analyzed, backend, functions: dict[str, Callable] | None = None,
                 seed: int = 0, debug: bool | None = None):
        self.prog = prog
        self.backend = backend
        self.xp = backend.xp  # the backend's array namespace (numpy itself on the numpy backend)
        self.native = getattr(backend, "native", True)  # arrays are numpy's: no conversion at the boundary
        self._converted: dict[str, object] = {}  # initial values of never-written tensors, on the backend
        self.functions = functions or {}
        self.computed: set[str] = set()
        self.report = RunReport()
        self.seed_value = int(prog.settings.get("seed", seed))
        self.max_iterations = int(prog.settings.get("max_iterations", DEFAULT_MAX_ITERATIONS))
        self.tolerance = float(prog.settings.get("tolerance", DEFAULT_TOLERANCE))
        self.debug = debug if debug is not None else "plan" in os.environ.get("TL_DEBUG", "")
        # the compiled fast path (runtime/compiled.py); TL_COMPILE=0 turns it off (the interpreter runs everything)
        self.compile = compiled_available(backend) and not self.debug and os.environ.get("TL_COMPILE") != "0"
        self._initial: dict[str, Value] = {}
        self.values = ValueStore(self.initial_array)  # a tensor's value appears when first needed
        self.plan = None  # the ProgramPlan of the last ensure(), for liveness
        self.free_dead = False  # free computed tensors after their last reader (run() turns it on)
        self.keep: set[str] = set()  # never freed: what the run's queries and file writes read
        self.readers: dict[str, set[frozenset]] = {}  # tensor -> the strata of the run that read it
        self._strata: dict = {}  # strata per set of needed tensors, computed once
        self._csr: dict = {}  # converted forms of sparse relations, per value version
        self.join_cache: dict = {}  # common sub-joins computed once (keyed by signature and value versions)
        self.shared_joins = 0
        self.peak_bytes = 0  # the most bytes of tensor values live at once, counted by the executor
        self.memory_budget: int | None = None  # joins beyond what is left of it run in slices (runtime/sliced.py)
        self.largest_relation: tuple[str, int, int] = ("", 0, 0)  # (name, bytes, tuples) of the largest held

    @property
    def _stratum_specs(self) -> dict:
        """id(stratum) -> (stratum, runs as a loop, its heads as `HeadStep`s): per analysis."""
        return self._strata.setdefault("stratum-specs", {})

    @functools.cached_property
    def rng(self) -> np.random.Generator:
        """A generator seeded by the program's seed (made on first use: creating one costs a run time)."""
        return np.random.default_rng(self.seed_value)

    @property
    def _pos(self) -> dict:
        """id(read) -> (read, its positions); ("lhs", id(eq)) -> (eq, positions, shape, variables): per analysis."""
        return self._strata.setdefault("positions", {})

    @property
    def forms(self) -> dict:
        """Each equation's relational form (or None), per analysis: made once, shared by its executors."""
        if "forms" not in self._strata:
            atom = sparse_eval.atom_predicate(self.prog, self.is_boolean)  # relations, nonnegative weights
            self._strata["forms"] = {eq.id: relational.relational_form(eq, atom) for eq in self.prog.equations}
        return self._strata["forms"]

    def _reads_of(self, st: Stratum) -> set[str]:
        """The tensors a stratum's equations read (per analysis, computed once)."""
        key = ("reads", frozenset(st.tensors))
        if key not in self._strata:
            self._strata[key] = frozenset(r.tensor for e in st.equations for r in reads(e.rhs))
        return self._strata[key]

    def adopt(self, old: Executor) -> None:
        """Take over from an executor of the same analysis (an earlier run) what does not depend on the array
        inputs rebound since: initial values of tensors without array data (relations given as tuples,
        seeded parameters, zeros) and the sparse forms of never-written relations."""
        if old.prog is not self.prog or old.backend is not self.backend or old.seed_value != self.seed_value:
            return
        for name, v in old._initial.items():
            if not isinstance(self.prog.data.get(name), np.ndarray):
                self._initial[name] = v
        for key, v in old._csr.items():
            if key[1] == 0 and key[0] in self._initial and not self.prog.tensors[key[0]].has_equations:
                self._csr[key] = v

    # ------------------------------------------------------------ values
    def is_boolean(self, name: str) -> bool:
        return self.prog.tensors[name].boolean

    def initial(self, name: str) -> Value:
        """The tensor's value before any equation: its data, seeded random values if learnable, or empty."""
        if name not in self._initial:
            self._initial[name] = self._make_initial(name)
        v = self._initial[name]
        if isinstance(v, Relation | SparseTensor) or not self.prog.tensors[name].has_equations:
            return v  # never written in place: no copy needed
        if name not in self.prog.data:  # no data: zeros (fresh zeros cost less than a copy)
            return np.zeros(v.shape)
        return v.copy()

    def _make_initial(self, name: str) -> Value:
        t = self.prog.tensors[name]
        shape = t.storage_shape
        data = self.prog.data.get(name)
        if (sv := sparse_eval.initial_value(t, data)) is not None:  # weighted tuples, arrays declared sparse
            return sv
        if isinstance(data, np.ndarray):
            return data.astype(np.float64, copy=False)  # initial() copies what equations will write
        if isinstance(data, TupleSet):
            if data.weights is None:
                rel = Relation.from_tuples(data.ids, t.arity - (t.virtual_axis is not None), shape)
                dense_bytes = int(np.prod(shape, dtype=np.float64)) * 8
                if t.sparse is False or (t.sparse is None and rel.nbytes() >= dense_bytes):
                    return rel.to_dense()
                return rel
        if t.learnable and not t.has_equations:
            fan_in = shape[-1] if shape else 1
            # one stream per tensor, from the seed and the name: a tensor's initial value does not depend on
            # the order tensors are first used in (so a gradient program sees the same parameters)
            rng = np.random.default_rng([self.seed_value, zlib.crc32(name.encode())])
            return rng.normal(0.0, 1.0 / np.sqrt(max(1, fan_in)), size=shape)
        if t.boolean and t.sparse is not False and len(shape) > 0:
            return Relation.empty(len(shape), shape)
        return np.zeros(shape)

    def initial_array(self, name: str) -> Value:
        """`initial(name)` as the backend's array (relations stay relations)."""
        if self.native:
            return self.initial(name)
        if name in self._converted:
            return self._converted[name]
        v = self.initial(name)
        if isinstance(v, Relation | SparseTensor):
            return v
        arr = self.backend.from_numpy(v)
        if not self.prog.tensors[name].has_equations:  # never written in place: convert once
            self._converted[name] = arr
        return arr

    def to_array(self, v: Value):
        """A value as the backend's dense array (a relation made dense; numpy converted)."""
        if isinstance(v, Relation | SparseTensor):
            v = v.to_dense()
        return v if self.native or not isinstance(v, np.ndarray) else self.backend.from_numpy(v)

    def sparse_matrix(self, r: Read):
        """A binary relation or 2-index sparse tensor stored sparse, as a scipy CSR matrix (cached per value
        version), a sparse tensor of other arity itself, else None."""
        v = self.values[r.tensor]
        if isinstance(v, SparseTensor):  # 2 indices: its CSR matrix; others: itself (matricised by the product)
            return None if self.prog.tensors[r.tensor].virtual_axis is not None else v.csr() if v.arity == 2 else v
        if not isinstance(v, Relation) or v.arity != 2 or self.prog.tensors[r.tensor].virtual_axis is not None:
            return None
        key = (r.tensor, self.values.version(r.tensor))
        if key not in self._csr:
            import scipy.sparse as sp

            cols = v.cols
            self._csr[key] = sp.csr_matrix((np.ones(len(cols)), (cols[:, 0], cols[:, 1])), shape=v.shape)
        return self._csr[key]

    def array(self, name: str):
        """The tensor's value as the backend's dense array (a sparse relation is converted once per version)."""
        v = self.values[name]
        if not isinstance(v, Relation | SparseTensor):
            return v
        key = (name, self.values.version(name), "dense")
        if key not in self._csr:
            sparse_eval.check_dense(self.prog.tensors[name], v)  # a clear error when it cannot fit
            self._csr[key] = self.to_array(v)
        return self._csr[key]

    def dense(self, name: str) -> np.ndarray:
        """The tensor's value as a dense numpy array (converted from the backend's array)."""
        return self.array(name) if self.native else to_numpy(self.array(name))

    def relation(self, name: str) -> Relation:
        v = self.values[name]
        if isinstance(v, SparseTensor):
            return v.support()
        return v if isinstance(v, Relation) else Relation.from_dense(to_numpy(v))

    # ------------------------------------------------------------ driving
    def live_bytes(self) -> int:
        return self.values.bytes

    def ensure(self, names: set[str] | None = None, keep: set[str] | None = None) -> None:
        """Compute the given tensors (all when None) and everything they depend on.

        With `free_dead`, a computed tensor is dropped after the last stratum that reads it, unless it is in
        `keep` or `names` (it is recomputed if asked for later)."""
        todo = None if names is None else {n for n in names if n not in self.computed}
        if todo is not None and not todo:
            return
        key = None if todo is None else frozenset(todo)
        if key not in self._strata:
            self._strata[key] = strata(self.prog.equations, todo)
        sts = self._strata[key]
        if todo is not None:  # only the strata still needed: walk back from the targets
            want, run = set(todo), []
            for st in reversed(sts):
                if any(t in want and t not in self.computed for t in st.tensors):
                    run.append(st)
                    want |= self._reads_of(st)
            sts = run[::-1]
        protect = set(keep or ()) | set(names or ()) | set(self.prog.data) | self.keep
        for st in sts:
            if all(t in self.computed for t in st.tensors):
                continue
            self.run_stratum(st)
            self.computed.update(st.tensors)
            self.peak_bytes = max(self.peak_bytes, self.live_bytes())
            for t in st.tensors:  # the largest relation held, for `tl run --stats`
                v = self.values.get(t)
                if isinstance(v, Relation) and v.nbytes() > self.largest_relation[1]:
                    self.largest_relation = (t, v.nbytes(), len(v))
            if self.free_dead and names is not None:
                self._free_dead(st, protect)

    def run_schedule(self, node_tensors: list[list[str]], steps: list[tuple[str, int]]) -> None:
        """Run an explicit schedule (plan/remat.py): ("compute", k) evaluates the stratum making the tensors
        `node_tensors[k]` (again, for a recomputation: its inputs are live by the schedule's construction),
        ("free", k) drops them. The peak of what is live is counted as in `ensure`."""
        by_tensors = {frozenset(st.tensors): st for st in strata(self.prog.equations)}
        for kind, k in steps:
            names = node_tensors[k]
            if kind == "compute":
                self.run_stratum(by_tensors[frozenset(names)])
                self.computed.update(names)
                self.peak_bytes = max(self.peak_bytes, self.live_bytes())
            else:
                for t in names:
                    self.values.pop(t, None)
                    self.computed.discard(t)

    def plan_liveness(self, needed: set[str]) -> None:
        """Before a run: which strata read each tensor, over everything the run needs (all its queries)."""
        key = ("readers", frozenset(needed))  # per analysis: computed once
        if key not in self._strata:
            readers: dict[str, set[frozenset]] = {}
            for st in strata(self.prog.equations, needed):
                for e in st.equations:
                    for r in reads(e.rhs):
                        if r.tensor not in st.tensors:
                            readers.setdefault(r.tensor, set()).add(frozenset(st.tensors))
            self._strata[key] = readers
        self.readers = self._strata[key]

    def _free_dead(self, st: Stratum, protect: set[str]) -> None:
        """Drop the tensors this stratum read whose every reader in the run has now run."""
        for t in self._reads_of(st):
            if t in protect or t in st.tensors or t not in self.computed or t not in self.readers:
                continue
            if all(all(x in self.computed for x in group) for group in self.readers[t]):
                self.computed.discard(t)
                self.values.pop(t, None)

    def run_stratum(self, st: Stratum) -> None:
        spec = self._stratum_specs.get(id(st))  # per analysis: loop or not, each head's equations
        if spec is None or spec[0] is not st:
            loop = any(e.virtual_var is not None or _virtual_const(e) for e in st.equations)
            spec = self._stratum_specs[id(st)] = (st, loop, [HeadStep(t, [e for e in st.equations if e.lhs == t])
                                                             for t in st.tensors])
        if spec[1]:
            return self.run_loop(st)
        if not st.recursive:
            for head in spec[2]:  # compiled (runtime/compiled.py) from the second run of the analysis on
                fast = head.code(self) if self.compile and getattr(self, "memory_budget", None) is None else None
                try:
                    value = fast(self) if fast else None
                except (Fallback, ValueError, IndexError, TypeError, FloatingPointError):
                    value = None  # a value turned out sparse, or an error: the interpreter (and its report)
                if value is None:
                    value = self.combine(head.tensor, head.equations, self.read_current)
                self.values[head.tensor] = value
            self.report.strata.append(StratumReport(st.tensors, "once"))
            return
        for t in st.negated_inputs & set(st.tensors):
            eq = next(e for e in st.equations if t in {r.tensor for r in reads(e.rhs)})
            raise TLRuntimeError(Diagnostic(
                f"{t} is negated inside its own recursion, so the program is not stratifiable", eq.span,
                "negation must refer to a relation computed in an earlier stratum"))
        if all(self.forms.get(e.id) is not None for e in st.equations) and all(
                self.is_boolean(t) for t in st.tensors):
            return self.semi_naive(st)
        key = ("layers", frozenset(st.tensors))  # per analysis, like the strata (shared by its executors)
        if key not in self._strata:
            self._strata[key] = layer_schedule(st, self.prog.tensors, self.is_boolean)
        sched = self._strata[key]
        if sched is not None:
            return self.run_layers(st, sched)
        return self.iterate(st)

    def run_layers(self, st: Stratum, sched) -> None:
        """A layered recursion: each equation once per layer, layer after layer (see ir/layered.py)."""
        key = ("layer-steps", frozenset(st.tensors))  # the flat list of (tensor, equation, ranges), per analysis
        if key not in self._strata:
            self._strata[key] = [layer_steps(sched, frozenset(st.tensors)), None, {}]
        steps, blank, pool = self._strata[key]
        if blank is None and self.compile:  # tensors whose every cell one compiled step assigns: not zeroed first
            blank = self._strata[key][1] = uninitialised(steps, self)
        for t in st.tensors:
            if blank and t in blank and getattr(self, "memory_budget", None) is None:
                # the array of the analysis's previous run, when nothing refers to it any more (the pool, this
                # name and getrefcount's argument only): no new allocation, no page faults; else a new one
                arr = pool.get(t)
                if arr is None or sys.getrefcount(arr) > 3:
                    arr = pool[t] = np.empty(self.prog.tensors[t].storage_shape)
                self.values[t] = arr
            else:
                self.values[t] = self.to_array(self.initial(t))
        fast = self.compile and getattr(self, "memory_budget", None) is None  # (under a budget joins may be sliced)
        values = self.values
        for step in steps:
            t, e, rng = step.tensor, step.equation, step.ranges
            code = step.code(self) if fast else None  # compiled once, on first use
            cur = values[t]
            if e.op == "+":  # added into the stratum's own copy (see initial), no full-size temporary
                try:
                    if code is None:
                        raise Fallback(t)
                    code(self, cur)
                except (Fallback, ValueError, IndexError, TypeError, FloatingPointError):
                    self.contribution(e, self.read_current, rng, into=cur)  # (and its diagnostics)
                values.touch(t)  # a new version, so cached joins over it are not reused
                continue
            acc, aux = self.contribution(e, self.read_current, rng, compiled=code)
            if e.op == "avg":  # one equation per max/min/avg head (layered.py): finish its projection
                acc = self.xp.where(aux > 0, acc / self.xp.maximum(aux, 1.0), 0.0)
            elif e.op in ("max", "min"):
                acc = self.xp.where(aux, acc, 0.0)
            cur = self.values[t]
            cur += acc  # in place: the stratum's own copy (see initial)
            self.values[t] = cur  # ... and a new version, so cached joins over it are not reused
        self.report.strata.append(StratumReport(st.tensors, "layered", sched.layers, "fixpoint"))

    # ------------------------------------------------------------ one equation
    def read_current(self, r: Read) -> tuple[np.ndarray, tuple[IExpr, ...]]:
        cache = self._pos
        hit = cache.get(id(r))
        if hit is None or hit[0] is not r:  # (the entry holds the read: its id is not reused meanwhile)
            if len(cache) > 50_000:  # ad hoc queries bring new reads: bounded
                cache.clear()
            t = self.prog.tensors[r.tensor]
            hit = cache[id(r)] = (r, tuple(p.expr for k, p in enumerate(r.pos) if k != t.virtual_axis))
        try:
            return self.array(r.tensor), hit[1]
        except sparse_eval.TooLargeToDensify as e:  # point at the read that needs the dense array
            raise e.at(r.span) from None

    def contribution(self, eq: Equation, read: Callable, ranges: dict | None = None, into=None, compiled=None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
        """The equation's right side projected onto its left side: (accumulator, count-or-touched). With
        `into` (an array of the left side's shape; `=` equations only), it is added into that array.
        `compiled`: the equation compiled at `ranges` (runtime/compiled.py), tried first; with `ranges` None it
        is looked up (compiled on first use)."""
        rng = ranges or eq.ranges
        if ranges is None and read == self.read_current and (counted := self._count(eq)) is not None:
            return counted, None
        if compiled is None and ranges is None and read == self.read_current and self.compile:
            compiled = compiled_for(self, eq)  # the fast path (runtime/compiled.py), else None
        if compiled and getattr(self, "memory_budget", None) is None:  # (under a budget joins may be sliced)
            try:
                return compiled(self, into)
            except (Fallback, ValueError, IndexError, TypeError, FloatingPointError):
                pass  # a value turned out sparse, or an error: the interpreter evaluates (and reports)
        key = ("lhs", id(eq))
        if key not in self._pos or self._pos[key][0] is not eq:  # the left side's positions and shape, once
            t = self.prog.tensors[eq.lhs]
            lhs = tuple(p.expr for k, p in enumerate(eq.lhs_pos) if k != t.virtual_axis)
            self._pos[key] = (eq, lhs, t.storage_shape, scatter_static(lhs)[0])
        _, lhs, shape, lhs_vars = self._pos[key]
        ev = DenseEvaluator(self.backend, read, rng, self.functions, eq)
        ev.prefer = lhs_vars
        if self.memory_budget is not None:  # what a join may use: the budget less what is live and the result
            for r in reads(eq.rhs):  # its inputs first (a value appears when first read): the limit counts them
                self.values[r.tensor]  # noqa: B018
            ev.join_limit = self.memory_budget - self.live_bytes() - (0 if into is not None else nbytes_of(shape))
        if read == self.read_current:  # reads see stored values: identical sub-joins can be shared
            ev.cache, ev.versions = self.join_cache, self.values.version
            ev.read_sparse = self.sparse_matrix
        try:
            res = ev.eval(eq.rhs)
        except TLRuntimeError:
            raise
        except (ValueError, IndexError, MemoryError) as e:
            raise TLRuntimeError(Diagnostic(f"evaluating {equation_str(eq)} failed: {e}", eq.span)) from None
        self.shared_joins += ev.shared
        if self.debug:
            for plan in ev.steps:
                print(f"[plan] {equation_str(eq)}\n{plan}", file=sys.stderr)
        out = scatter(res, lhs, rng, shape, eq.op, self.xp, into)
        fresh = out[0].nbytes if out[0] is not into else 0
        self.peak_bytes = max(self.peak_bytes, self.live_bytes() + ev.max_transient + fresh)
        return out

    def _count(self, eq: Equation) -> np.ndarray | None:
        """A numeric sum over a join of relations (`N = Reach(x,y)`) counted relationally, never densified,
        when one of its relations is stored sparse (see `relational.count_form`)."""
        key = ("count", eq.id)  # per analysis, like the strata
        if key not in self._strata:
            self._strata[key] = relational.count_form(eq, self.is_boolean,
                                                      lambda n: sparse_eval.may_be_weighted(self.prog, n))
        form = self._strata[key]
        if form is None or not sparse_eval.count_applies(self.values, self.is_boolean, form.atoms):
            return None
        sizes = {v: r[1] for v, r in eq.ranges.items()}
        return self.to_array(relational.count(form, lambda r: self.relation(r.tensor), sizes,
                                              self.prog.tensors[eq.lhs].storage_shape,
                                              lambda r: sparse_eval.weight_of(self.values[r.tensor])))

    def combine(self, name: str, eqs: list[Equation], read: Callable, include_data: bool = True) -> Value:
        """The head's value from its data and all its equations."""
        t = self.prog.tensors[name]
        if t.sparse and not t.boolean and (sv := sparse_eval.sparse_head(self, t, eqs, read)) is not None:
            return sv  # a numeric head declared sparse made of sparse products: never dense
        forms = [self.forms.get(e.id) for e in eqs]
        if t.boolean and eqs and all(f is not None for f in forms):
            rel = self.initial(name) if include_data else Relation.empty(len(t.storage_shape), t.storage_shape)
            rel = rel if isinstance(rel, Relation) else Relation.from_dense(rel)
            for f in forms:
                rel = rel.union(self.eval_relational(f, lambda r: self.relation(r.tensor)))
            return rel
        ops = {e.op for e in eqs}
        if len(ops) > 1:
            raise TLRuntimeError(Diagnostic(f"{name} is defined with different projections {sorted(ops)}",
                                            eqs[0].span, "use one of =, max=, min=, avg= for all its equations"))
        op = ops.pop() if ops else "+"
        xp = self.xp
        base = self.to_array(self.initial_array(name)) if include_data and name in self.prog.data else None
        acc, aux = None, None
        for e in eqs:
            a, x = self.contribution(e, read)
            acc, aux = fold_contribution(acc, aux, a, x, op, xp)
        if acc is None:
            acc = xp.zeros(t.storage_shape)
        acc = finish_head(acc, aux, base, op, t.boolean, xp)
        return sparse_eval.as_head(t, acc)  # a numeric head declared sparse is stored sparse

    def eval_relational(self, form, get: Callable[[Read], Relation], bind: dict | None = None) -> Relation:
        eq = form.eq
        sizes = {v: r[1] for v, r in eq.ranges.items()}
        return relational.evaluate(form, get, sizes, self.prog.tensors[eq.lhs].storage_shape, bind)

    # ------------------------------------------------------------ recursion
    def semi_naive(self, st: Stratum, bind: dict[int, dict] | None = None) -> None:
        """Least fixpoint of a relational stratum (see runtime/seminaive.py); `bind` fixes or restricts
        variables per equation id (a query's constants or magic sets, runtime/demand.py)."""
        notes: list[str] = []  # "linearized: ..." (runtime/linearize.py)
        full, rounds, derived = seminaive.semi_naive(self, st, bind, notes)
        for t in st.tensors:
            self.values[t] = full[t]
        kind = "semi-naive" + "".join(f" ({n})" for n in notes)
        self.report.strata.append(StratumReport(st.tensors, kind, rounds, "fixpoint", derived=derived))

    def iterate(self, st: Stratum) -> None:
        """Iterate X <- data + F(X) to a fixpoint, a tolerance, or the iteration limit.

        Gauss-Seidel order: within a round each tensor is recomputed from the newest values of the others, so
        a layered recursion (Stream[b+1] from Stream[b] through several tensors) advances one layer per round.
        """
        change = 0.0
        xp = self.xp
        for it in range(1, self.max_iterations + 1):
            change = 0.0
            for t in st.tensors:
                new = self.combine(t, [e for e in st.equations if e.lhs == t], self.read_current)
                a, b = xp.asarray(self.to_array(new), dtype=xp.float64), self.array(t)
                with xp.errstate(invalid="ignore"):
                    d = float(xp.max(xp.abs(a - b))) if 0 not in a.shape else 0.0
                change = max(change, d if np.isfinite(d) else np.inf)
                self.values[t] = new
            if self.debug:
                print(f"[fixpoint] {','.join(st.tensors)} iteration {it}: change {change:.3g}", file=sys.stderr)
            if change <= self.tolerance:
                stop = "fixpoint" if change == 0 else "tolerance"
                self.report.strata.append(StratumReport(st.tensors, "iterate", it, stop, change))
                return
        self.report.strata.append(StratumReport(st.tensors, "iterate", self.max_iterations, "iteration limit",
                                                change))
        self.report.warnings.append(
            f"{', '.join(st.tensors)}: stopped at the iteration limit ({self.max_iterations}) without converging "
            f"(last change {change:.3g} > tolerance {self.tolerance:g}); raise it with `set max_iterations = N`")

    # ------------------------------------------------------------ virtual indices
    def run_loop(self, st: Stratum) -> None:
        init = [e for e in st.equations if _virtual_const(e)]
        step = [e for e in st.equations if e.virtual_var is not None]
        others = [e for e in st.equations if e not in init and e not in step]
        if others:
            raise TLRuntimeError(Diagnostic(
                "an equation in a loop over a virtual index must itself use the virtual index", others[0].span,
                "write its left side with the virtual index too, e.g. H[i,*t+1]"))
        for e in init:
            a, _ = self.contribution(e, self.read_current)
            self.values[e.lhs] = self.array(e.lhs) + a
        vars_ = {e.virtual_var for e in step}
        if len(vars_) > 1:
            raise TLRuntimeError(Diagnostic(f"one loop uses several virtual indices {sorted(vars_)}",
                                            step[0].span))
        v = vars_.pop()
        lo, hi = step[0].ranges[v]
        writes = {e.lhs: _offset(e.lhs_pos[self.prog.tensors[e.lhs].virtual_axis].expr) for e in step}
        for tv in range(lo, hi):
            new: dict[str, np.ndarray] = {}

            def read(r: Read, new=new) -> tuple[np.ndarray, list[IExpr]]:
                t = self.prog.tensors[r.tensor]
                pos = [p.expr for k, p in enumerate(r.pos) if k != t.virtual_axis]
                if t.virtual_axis is None or r.tensor not in writes:
                    return self.array(r.tensor), pos
                off = _offset(r.pos[t.virtual_axis].expr) - writes[r.tensor]
                if off == -1:
                    return self.array(r.tensor), pos
                if off == 0 and r.tensor in new:
                    return new[r.tensor], pos
                raise TLRuntimeError(Diagnostic(
                    f"{r.tensor} is read at a step the loop does not keep (only the previous and the current)",
                    r.span))

            ranges = dict(step[0].ranges)
            ranges[v] = (tv, tv + 1)
            for e in step:
                rng = dict(e.ranges)
                rng[v] = (tv, tv + 1)
                a, _ = self.contribution(e, read, rng)
                new[e.lhs] = new[e.lhs] + a if e.lhs in new else a
            for t, a in new.items():
                self.values[t] = self.xp.asarray(a > 0, dtype=self.xp.float64) if self.is_boolean(t) else a
        self.report.strata.append(StratumReport(st.tensors, "loop", hi - lo, "fixpoint"))


def _offset(e: IExpr) -> int:
    if isinstance(e, IVar):
        return 0
    if isinstance(e, IConst):
        return e.value
    if e.op in "+-" and isinstance(e.right, IConst):
        return e.right.value if e.op == "+" else -e.right.value
    raise TLRuntimeError(f"a virtual index must be t, t+c or t-c, not {e}")


def _virtual_const(e: Equation) -> bool:
    return any(p.virtual and isinstance(p.expr, IConst) for p in e.lhs_pos)
