"""Analysis of a lowered program: names, arities, types, domains, constants, data, shapes and ranges.

`analyze(lowered, inputs, base_dir)` returns an `Analyzed` program: a table of tensors (Boolean or real,
shape, domains, role), domains with symbol tables, the data of each data tensor with symbols turned into
positions, and the equations and queries with every constant resolved to an integer and every index
variable given a range. All errors found are reported together, each naming the tensors and indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..ir.lower import Lowered
from ..ir.nodes import (
    Compare,
    Equation,
    FileWriteIR,
    IBin,
    IConst,
    IExpr,
    ISym,
    IVar,
    Pos,
    QueryIR,
    Read,
    ix_str,
    reads,
    walk,
)
from ..syntax import ast
from ..syntax.diagnostics import Diagnostic, Span, TLAnalysisError, TLError
from .data import (
    Contribution,
    TupleSet,
    fact_contribution,
    file_contribution,
    input_contribution,
    literal_contribution,
)
from .domains import Domain, Slot, UnionFind
from .shapes import infer_ranges

MODIFIERS_ROLE = {"const", "learnable"}


@dataclass
class TensorInfo:
    """What analysis knows of one tensor."""

    name: str
    arity: int
    boolean: bool = False
    shape: tuple[int, ...] = ()
    domains: tuple[str, ...] = ()
    virtual_axis: int | None = None  # a state tensor's virtual position (not stored)
    has_data: bool = False
    has_equations: bool = False
    learnable: bool = False
    const: bool = False
    sparse: bool | None = None
    span: Span | None = None

    @property
    def storage_shape(self) -> tuple[int, ...]:
        return tuple(n for k, n in enumerate(self.shape) if k != self.virtual_axis)


@dataclass
class Analyzed:
    tensors: dict[str, TensorInfo]
    domains: dict[str, Domain]
    slot_domain: dict[Slot, str]
    equations: list[Equation]
    queries: list[QueryIR]
    writes: list[FileWriteIR]
    data: dict[str, np.ndarray | TupleSet]
    settings: dict[str, float] = field(default_factory=dict)
    scalars: dict[str, int] = field(default_factory=dict)
    base_dir: str | None = None

    def domain_of(self, tensor: str, k: int) -> Domain:
        return self.domains[self.slot_domain[(tensor, k)]]


def _opname(op: str) -> str:
    return "=" if op == "+" else f"{op}="


def _err(msg: str, span: Span | None, hint: str | None = None) -> Diagnostic:
    return Diagnostic(msg, span, hint)


class _Analyzer:
    def __init__(self, low: Lowered, inputs: dict[str, Any], base_dir: str | Path | None):
        self.low = low
        self.inputs = inputs
        self.base_dir = str(base_dir) if base_dir is not None else None
        self.errors: list[Diagnostic] = list(low.errors)  # statements lowering could not take
        self.tensors: dict[str, TensorInfo] = {}
        self.contribs: list[Contribution] = []
        self.uf = UnionFind()
        self.scalars: dict[str, int] = {}
        self.undefined: set[str] = set()

    # ------------------------------------------------------------ helpers
    def fail(self, msg: str, span: Span | None, hint: str | None = None) -> None:
        self.errors.append(_err(msg, span, hint))

    def see(self, name: str, arity: int, span: Span | None, what: str) -> TensorInfo | None:
        t = self.tensors.get(name)
        if t is None:
            t = self.tensors[name] = TensorInfo(name, arity, span=span)
            return t
        if t.arity != arity:
            d = _err(f"{name} is used with {arity} ind{'ex' if arity == 1 else 'ices'} here ({what}) but with "
                     f"{t.arity} elsewhere", span, "every use of a tensor must have the same number of indices")
            if t.span is not None:
                d.notes.append((f"{name} first appears with {t.arity}", t.span))
            self.errors.append(d)
            return None
        return t

    # ------------------------------------------------------------ phases
    def run(self) -> Analyzed:
        base = len(self.errors)
        self.collect_data()
        self.collect_names()
        before = len(self.errors)
        self.check_defined()
        base += len(self.errors) - before  # undefined tensors do not stop the other checks
        if len(self.errors) > base:  # arity and type errors: the tables below would be inconsistent
            raise TLAnalysisError(self.errors)
        self.find_scalars()
        self.build_domains()
        if len(self.errors) > base:
            raise TLAnalysisError(self.errors)
        self.resolve_constants()
        data = self.data = self.build_data()
        if len(self.errors) > base:
            raise TLAnalysisError(self.errors)
        infer_ranges(self)
        if self.errors:
            raise TLAnalysisError(self.errors)
        doms = {name: d for name, d in self.domains.items()}
        return Analyzed(self.tensors, doms, self.slot_domain, self.low.equations, self.low.queries,
                        self.low.writes, data, dict(self.low.settings), self.scalars, self.base_dir)

    def collect_data(self) -> None:
        for st in self.low.data:
            try:
                if isinstance(st, ast.Fact):
                    self.contribs.append(fact_contribution(st))
                elif isinstance(st, ast.Literal):
                    self.contribs.append(literal_contribution(st))
                else:
                    self.contribs.append(file_contribution(st, self.base_dir))
            except TLError as e:
                self.errors.extend(e.diagnostics)
        for name, value in self.inputs.items():
            try:
                self.contribs.append(input_contribution(name, value))
            except TLError as e:
                self.errors.extend(e.diagnostics)

    def expand_bare_queries(self) -> None:
        """`C?` for a tensor with indices asks for the whole tensor: give it fresh index variables."""
        arity: dict[str, int] = {}
        virtual: dict[str, int] = {}
        for eq in self.low.equations:
            arity.setdefault(eq.lhs, len(eq.lhs_pos))
            for k, p in enumerate(eq.lhs_pos):
                if p.virtual:
                    virtual[eq.lhs] = k
        for c in self.contribs:
            arity.setdefault(c.tensor, c.arity)
        for d in self.low.decls:
            if isinstance(d, ast.TensorDecl) and d.dims is not None:
                arity.setdefault(d.name, len(d.dims))
        for q in self.low.queries:
            if isinstance(q.expr, Read) and not q.expr.pos and arity.get(q.expr.tensor, 0) > 0:
                n = arity[q.expr.tensor]
                names = iter(axis_names(self.low.equations, q.expr.tensor, n, virtual.get(q.expr.tensor)))
                q.expr.pos = tuple(Pos(IConst(0), virtual=True) if k == virtual.get(q.expr.tensor) else
                                   Pos(IVar(next(names))) for k in range(n))
                q.free = tuple(p.expr.name for p in q.expr.pos if isinstance(p.expr, IVar))

    def collect_names(self) -> None:
        self.expand_bare_queries()
        for eq in self.low.equations:
            t = self.see(eq.lhs, len(eq.lhs_pos), eq.span, "left side")
            if t is not None:
                t.has_equations = True
                for k, p in enumerate(eq.lhs_pos):
                    if p.virtual:
                        if t.virtual_axis not in (None, k):
                            self.fail(f"{eq.lhs} has virtual indices at two positions", p.span)
                        t.virtual_axis = k
            for r in reads(eq.rhs):
                self.see(r.tensor, len(r.pos), r.span, "read")
        for q in self.low.queries:
            for r in reads(q.expr):
                self.see(r.tensor, len(r.pos), r.span, "query")
        for c in self.contribs:
            t = self.tensors.get(c.tensor)
            if t is not None and t.virtual_axis is not None and c.arity == t.arity - 1:
                t.has_data = True  # the initial state of a tensor with a virtual index
                continue
            t = self.see(c.tensor, c.arity, c.span, "data")
            if t is not None:
                t.has_data = True
        for d in self.low.decls:
            if isinstance(d, ast.TensorDecl):
                arity = len(d.dims) if d.dims is not None else None
                t = self.tensors.get(d.name)
                if arity is None:
                    if t is None:
                        t = self.tensors[d.name] = TensorInfo(d.name, 0, span=d.span)
                else:
                    t = self.see(d.name, arity, d.span, "declaration")
                if t is None:
                    continue
                t.learnable = t.learnable or "learnable" in d.modifiers
                t.const = t.const or "const" in d.modifiers
                if "sparse" in d.modifiers:
                    t.sparse = True
                if "dense" in d.modifiers:
                    t.sparse = False
                if "learnable" in d.modifiers and "const" in d.modifiers:
                    self.fail(f"{d.name} cannot be both const and learnable", d.span)
        for w in self.low.writes:
            if w.tensor not in self.tensors:
                self.fail(f"cannot write undefined tensor '{w.tensor}'", w.span)
        ops: dict[str, tuple[str, Span | None]] = {}
        for eq in self.low.equations:
            first = ops.setdefault(eq.lhs, (eq.op, eq.span))
            if first[0] != eq.op:
                d = _err(f"{eq.lhs} is defined with two projections, {_opname(first[0])} and {_opname(eq.op)}",
                         eq.span, "all equations for one tensor must use the same one of =, max=, min=, avg=")
                d.notes.append((f"{eq.lhs} is first defined with {_opname(first[0])}", first[1]))
                self.errors.append(d)
        # types: Boolean when defined as a relation
        for eq in self.low.equations:
            self.tensors[eq.lhs].boolean |= eq.boolean
        for c in self.contribs:
            if c.boolean and c.tensor in self.tensors:
                self.tensors[c.tensor].boolean = True
        for d in self.low.decls:
            if isinstance(d, ast.TensorDecl) and d.boolean is not None and d.name in self.tensors:
                self.tensors[d.name].boolean = d.boolean
        for eq in self.low.equations:
            t = self.tensors[eq.lhs]
            if t.boolean and not eq.boolean and eq.lhs_pos:
                self.fail(f"{eq.lhs} is a relation (Boolean) but is defined here with square brackets", eq.span,
                          f"write {eq.lhs}(...) on the left, or make every definition numeric")

    def find_scalars(self) -> None:
        from ..ir.nodes import Const

        for eq in self.low.equations:
            if not eq.lhs_pos and isinstance(eq.rhs, Const) and float(eq.rhs.value).is_integer():
                self.scalars[eq.lhs] = int(eq.rhs.value)
        for name, v in self.inputs.items():
            if isinstance(v, bool | np.bool_):
                continue
            if isinstance(v, int | np.integer):
                self.scalars[name] = int(v)
            elif isinstance(v, float | np.floating | np.ndarray) and np.ndim(v) == 0 and float(v).is_integer():
                self.scalars[name] = int(v)

    # ------------------------------------------------------------ domains
    def _occurrences(self):
        """(slot, IExpr, span, equation-or-None, is_lhs) for every index position in equations and queries."""
        for eq in self.low.equations:
            for k, p in enumerate(eq.lhs_pos):
                yield (eq.lhs, k), p, eq, True
            for r in reads(eq.rhs):
                for k, p in enumerate(r.pos):
                    yield (r.tensor, k), p, eq, False
        for q in self.low.queries:
            for r in reads(q.expr):
                for k, p in enumerate(r.pos):
                    yield (r.tensor, k), p, q, False

    def _is_stored(self, slot: Slot) -> bool:
        t = self.tensors.get(slot[0])
        return t is not None and t.virtual_axis != slot[1]

    def _unify(self, a, b, var: str, stmt) -> None:
        """Put two slots (or a slot and a declared domain) in one domain; two declared domains clash."""
        ra, rb = self.uf.find(a), self.uf.find(b)
        if ra != rb and ra[0] == "@" and rb[0] == "@":
            where = a if a[0] != "@" else b
            self.fail(f"inconsistent domains: index {var} joins domain {ra[1]} and domain {rb[1]}"
                      + (f" ({where[0]} position {where[1] + 1})" if where[0] != "@" else ""),
                      getattr(stmt, "span", None), "an index ranges over one domain; use two indices")
            return
        self.uf.union(a, b)

    def build_domains(self) -> None:
        uf = self.uf
        for name, t in self.tensors.items():
            for k in range(t.arity):
                uf.find((name, k))
        # declared domains first, so that a variable joining two of them can be reported
        for d in self.low.decls:
            if isinstance(d, ast.DomainDecl):
                uf.find(("@", d.name))
            if isinstance(d, ast.TensorDecl) and d.dims:
                for k, ds in enumerate(d.dims):
                    if ds.domain:
                        uf.union(("@", ds.domain), (d.name, k))
        # plain variables unify slots within a statement
        per_stmt: dict[int, dict[str, list[Slot]]] = {}
        stmts: dict[int, Any] = {}
        for slot, p, stmt, _ in self._occurrences():
            if isinstance(p.expr, IVar) and self._is_stored(slot):
                per_stmt.setdefault(id(stmt), {}).setdefault(p.expr.name, []).append(slot)
                stmts[id(stmt)] = stmt
        for d in self.low.decls:
            if isinstance(d, ast.IndexDecl) and d.domain:
                for eq_vars in per_stmt.values():
                    for v in d.names:
                        for s in eq_vars.get(v, []):
                            self._unify(("@", d.domain), s, v, d)

        def cmp_pairs(eq):
            for m in walk(eq.rhs):
                if isinstance(m, Compare) and isinstance(m.left, IVar) and isinstance(m.right, IVar):
                    yield m.left.name, m.right.name

        for key, vs in per_stmt.items():
            for v, slots in vs.items():
                for s in slots[1:]:
                    self._unify(slots[0], s, v, stmts[key])
            if isinstance(stmts[key], Equation):
                for a, b in cmp_pairs(stmts[key]):
                    if vs.get(a) and vs.get(b):
                        self._unify(vs[a][0], vs[b][0], f"{a} and {b}", stmts[key])
        # domains: one per class
        self.domains: dict[str, Domain] = {}
        self.slot_domain: dict[Slot, str] = {}
        root_name: dict = {}
        for key in list(uf.parent):
            root = uf.find(key)
            if root not in root_name:
                root_name[root] = root[1] if root[0] == "@" else f"{key[0]}.{key[1]}"
                self.domains[root_name[root]] = Domain(root_name[root])
            if key[0] != "@":
                self.slot_domain[key] = root_name[root]
        declared_syms = {d.name: d for d in self.low.decls if isinstance(d, ast.DomainDecl)}
        for name, d in declared_syms.items():
            dom = self.domains[name]
            if d.symbols is not None:
                dom.symbols = []
                for s in d.symbols:
                    dom.add(s)
            if d.size is not None:
                dom.declared_size = d.size
        # which domains are symbolic: any symbol constant (not an integer scalar name) lands there
        for c in self.contribs:
            for row in c.rows or ():
                for k, v in enumerate(row):
                    if isinstance(v, str) and (c.tensor, k) in self.slot_domain:
                        dom = self.domains[self.slot_domain[(c.tensor, k)]]
                        if dom.symbols is None:
                            dom.symbols = []
        for slot, p, _, _ in self._occurrences():
            if isinstance(p.expr, ISym) and not (p.expr.name in self.scalars and not p.expr.quoted):
                dom = self.domains[self.slot_domain[slot]]
                if dom.symbols is None:
                    dom.symbols = []
        # symbol tables, in order: declarations (done), data, then program constants
        for c in self.contribs:
            for row in c.rows or ():
                for k, v in enumerate(row):
                    dom = self.domains[self.slot_domain[(c.tensor, k)]]
                    if dom.symbols is not None:
                        dom.add(str(v))
            for k, col in enumerate(c.cols or ()):  # integer columns read as symbols: first occurrences in order
                dom = self.domains[self.slot_domain[(c.tensor, k)]]
                if dom.symbols is not None:
                    uniq, first = np.unique(col, return_index=True)
                    for v in uniq[np.argsort(first, kind="stable")].tolist():
                        dom.add(str(v))

    def resolve_constants(self) -> None:
        def res(e: IExpr, slot: Slot, top: bool, span: Span | None = None) -> IExpr:
            if isinstance(e, ISym):
                if e.name in self.scalars and not e.quoted:
                    return IConst(self.scalars[e.name])
                if not top:
                    self.fail(f"'{e.name}' inside index arithmetic must be an integer scalar", e.span,
                              f"define it, e.g. {e.name} = 2")
                    return IConst(0)
                dom = self.domains[self.slot_domain[slot]]
                return IConst(dom.add(e.name))
            if isinstance(e, IConst) and top:
                dom = self.domains[self.slot_domain[slot]]
                if dom.symbolic:
                    self.fail(f"the integer {e.value} is used where {slot[0]} position {slot[1] + 1} takes symbols "
                              f"of domain {dom.name}", span, "quote it if it is a symbol: \"" + str(e.value) + "\"")
            if isinstance(e, IBin):
                return IBin(e.op, res(e.left, slot, False), res(e.right, slot, False))
            return e

        def fix(pos: tuple[Pos, ...], tensor: str) -> tuple[Pos, ...]:
            return tuple(Pos(res(p.expr, (tensor, k), True, p.span), p.virtual, p.normalized, p.span)
                         for k, p in enumerate(pos))

        for eq in self.low.equations:
            eq.lhs_pos = fix(eq.lhs_pos, eq.lhs)
            for r in reads(eq.rhs):
                r.pos = fix(r.pos, r.tensor)
            for m in walk(eq.rhs):
                if isinstance(m, Compare):
                    m.left = res(m.left, ("", 0), False) if not isinstance(m.left, ISym) else m.left
                    m.right = res(m.right, ("", 0), False) if not isinstance(m.right, ISym) else m.right
        for q in self.low.queries:
            for r in reads(q.expr):
                r.pos = fix(r.pos, r.tensor)

    # ------------------------------------------------------------ data
    def build_data(self) -> dict[str, np.ndarray | TupleSet]:
        by_tensor: dict[str, list[Contribution]] = {}
        for c in self.contribs:
            by_tensor.setdefault(c.tensor, []).append(c)
        out: dict[str, np.ndarray | TupleSet] = {}
        for name, cs in by_tensor.items():
            dense = [c for c in cs if c.dense is not None]
            rows = [c for c in cs if c.tuples]
            ids_parts, w_parts = [], []
            for c in rows:
                ids = np.zeros((len(c), c.arity), dtype=np.int64)
                for k in range(c.arity):
                    dom = self.domains[self.slot_domain[(name, k)]]
                    if c.cols is not None:
                        self._column_ids(ids, k, c.cols[k], dom, name, c.span)
                        continue
                    col = [r[k] for r in c.rows]
                    if dom.symbolic:
                        ids[:, k] = [dom.add(str(v)) for v in col]
                    else:
                        bad = [v for v in col if isinstance(v, str)]
                        if bad:
                            self.fail(f"{name} position {k + 1} holds integers but got the symbol {bad[0]!r}",
                                      c.span)
                            continue
                        if col and min(col) < 0:
                            self.fail(f"{name} position {k + 1} has the negative index {min(col)}", c.span)
                            continue
                        ids[:, k] = col
                ids_parts.append(ids)
                w_parts.append(c.weights if c.weights is not None else
                               (None if c.boolean else np.ones(len(c))))
            weighted = any(w is not None for w in w_parts)
            if dense:
                arr = dense[0].dense
                for d in dense[1:]:
                    if d.dense.shape != arr.shape:
                        self.fail(f"{name} is given twice with different shapes {arr.shape} and {d.dense.shape}",
                                  d.span)
                        continue
                    arr = arr + d.dense
                if ids_parts:
                    arr = arr.copy()
                    for ids, w in zip(ids_parts, w_parts):
                        need = ids.max(axis=0) + 1 if len(ids) else np.zeros(arr.ndim, int)
                        if np.any(need > np.array(arr.shape)):
                            self.fail(f"facts of {name} fall outside its shape {arr.shape}", cs[0].span)
                            continue
                        np.add.at(arr, tuple(ids.T), 1.0 if w is None else w)
                out[name] = arr
            elif ids_parts:
                ids = np.concatenate(ids_parts) if ids_parts else np.zeros((0, 0), np.int64)
                if weighted:
                    ws = np.concatenate([w if w is not None else np.ones(len(i)) for i, w in zip(ids_parts, w_parts)])
                    out[name] = TupleSet(ids, ws)
                    self.tensors[name].boolean = False
                else:
                    out[name] = TupleSet(ids)
        return out

    def _column_ids(self, ids: np.ndarray, k: int, col: np.ndarray, dom: Any, name: str, span: Span | None
                    ) -> None:
        """Positions of an int64 column of constants (vectorised `build_data` for a large numeric table)."""
        if dom.symbolic:  # the integers are symbols of this domain: one table lookup per distinct value
            uniq, inverse = np.unique(col, return_inverse=True)
            ids[:, k] = np.array([dom.add(str(v)) for v in uniq.tolist()], dtype=np.int64)[inverse]
        elif len(col) and col.min() < 0:
            self.fail(f"{name} position {k + 1} has the negative index {int(col.min())}", span)
        else:
            ids[:, k] = col

    # ------------------------------------------------------------ definedness
    def check_defined(self) -> None:
        for eq in self.low.equations:
            for r in reads(eq.rhs):
                self._check_read(r)
        for q in self.low.queries:
            for r in reads(q.expr):
                self._check_read(r)

    def _check_read(self, r: Read) -> None:
        t = self.tensors.get(r.tensor)
        if t is None or t.has_data or t.has_equations or t.learnable or r.tensor in self.low.failed_defs:
            return
        if r.tensor in self.inputs:
            return
        if getattr(self, "_reported", None) is None:
            self._reported = set()
        if r.tensor in self._reported:
            return
        self._reported.add(r.tensor)
        self.undefined.add(r.tensor)
        self.fail(f"undefined tensor '{r.tensor}'", r.span,
                  f"give it data ({r.tensor} = [...], a fact, a file, or prog.run({r.tensor}=...)), define it "
                  f"with an equation, or declare it: tensor {r.tensor}[...] learnable")


def analyze(low: Lowered, inputs: dict[str, Any] | None = None, base_dir: str | Path | None = None) -> Analyzed:
    """Analyse a lowered program with its bound inputs. Raises TLAnalysisError listing every error found."""
    return _Analyzer(low, dict(inputs or {}), base_dir).run()


__all__ = ["analyze", "Analyzed", "TensorInfo", "axis_names", "ix_str"]


def axis_names(equations: list, tensor: str, arity: int, virtual_axis: int | None) -> list[str]:
    """Names for the stored axes of `tensor` when a query asks for all of it (`C?`): the index variables its
    equations' left sides use at each position (`Count[x] = ...` shows a column `x`), else `i` (one axis) or
    `i1`, `i2`, ... (the k-th axis), never the same name twice."""
    stored = [k for k in range(arity) if k != virtual_axis]
    found: dict[int, str] = {}
    for eq in equations:
        if eq.lhs != tensor or len(eq.lhs_pos) != arity:
            continue
        for k in stored:
            e = eq.lhs_pos[k].expr
            if k not in found and isinstance(e, IVar) and not eq.lhs_pos[k].virtual:
                found[k] = e.name
    names: list[str] = []
    for j, k in enumerate(stored):
        name = found.get(k)
        if name is None or name in names or list(found.values()).count(name) > 1:
            name = "i" if len(stored) == 1 else f"i{j + 1}"
            while name in names or name in found.values():
                name += "'"
        names.append(name)
    return names


def analyze_query(prog: Analyzed, expr: ast.Expr, text: str, functions: set[str] | None = None) -> QueryIR:
    """Resolve a query against an analysed program: names, constants (an unknown symbol matches nothing)
    and the ranges of its free variables."""
    from ..ir.lower import lower_query

    q = lower_query(expr, text, getattr(expr, "span", None), set(functions or ()))
    if isinstance(q.expr, Read) and not q.expr.pos and q.expr.tensor in prog.tensors:
        t = prog.tensors[q.expr.tensor]  # a bare name asks for the whole tensor
        names = iter(axis_names(prog.equations, q.expr.tensor, t.arity, t.virtual_axis))
        q.expr.pos = tuple(Pos(IConst(0), virtual=True) if k == t.virtual_axis else Pos(IVar(next(names)))
                           for k in range(t.arity))
        q.free = tuple(p.expr.name for p in q.expr.pos if isinstance(p.expr, IVar))
    errors: list[Diagnostic] = []
    for r in reads(q.expr):
        t = prog.tensors.get(r.tensor)
        if t is None:
            errors.append(_err(f"undefined tensor '{r.tensor}'", r.span,
                               f"the program's tensors are: {', '.join(sorted(prog.tensors))}"))
            continue
        if len(r.pos) != t.arity:
            errors.append(_err(f"{r.tensor} has {t.arity} indices, not {len(r.pos)}", r.span))
            continue
        new = []
        for k, p in enumerate(r.pos):
            e = p.expr
            if isinstance(e, ISym):
                if e.name in prog.scalars and not e.quoted:
                    e = IConst(prog.scalars[e.name])
                else:
                    dom = prog.domain_of(r.tensor, k)
                    i = dom.lookup(e.name) if dom.symbolic else None
                    e = IConst(-1 if i is None else i)
            elif isinstance(e, IVar):
                n = t.shape[k]
                lo, hi = q.ranges.get(e.name, (0, n))
                q.ranges[e.name] = (lo, min(hi, n))
            elif not isinstance(e, IConst):
                errors.append(_err(f"query indices must be variables or constants, not {ix_str(e)}", r.span))
            new.append(Pos(e, p.virtual, p.normalized, p.span))
        r.pos = tuple(new)
    for v in q.free:
        if v not in q.ranges:
            errors.append(_err(f"index '{v}' has no known range in the query {text}", q.span))
    if errors:
        raise TLAnalysisError(errors)
    return q
