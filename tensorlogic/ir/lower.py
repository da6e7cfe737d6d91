"""Lowering: AST statements to IR equations, queries and data statements.

Rules become Boolean equations; `=` and `+=` become the `+` projection; slices become fresh index
variables with an offset; summations are made explicit (`analysis.summation`); softmax/lnorm learn their
normalised index and concat its merged indices. Data statements (facts, literals, file reads),
declarations and settings are passed through for analysis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis.summation import place_summations
from ..syntax import ast
from ..syntax.diagnostics import Diagnostic, Span, TLAnalysisError, source_lines
from .nodes import (
    Add,
    Apply,
    Compare,
    Concat,
    Const,
    Equation,
    FileWriteIR,
    IBin,
    IConst,
    IExpr,
    IndexValue,
    ISym,
    IVar,
    Join,
    Neg,
    Node,
    Not,
    Pos,
    Pow,
    QueryIR,
    Read,
    Reduce,
    node_vars,
    rename_ix,
)

NORMALIZING = {"softmax", "lnorm"}
ELEMENTWISE = {"step", "sig", "relu", "tanh", "exp", "log", "sqrt", "abs", "sin", "cos"}
BUILTINS = NORMALIZING | ELEMENTWISE | {"concat"}


@dataclass
class SliceInfo:
    """A slice turned into variable `var`: it reads `tensor` at `axis` from start to stop."""

    var: str
    tensor: str
    axis: int
    start: IExpr | None
    stop: IExpr | None
    span: Span | None


@dataclass
class Lowered:
    """The lowered program: equations and queries in IR, data statements and declarations as AST."""

    equations: list[Equation] = field(default_factory=list)
    queries: list[QueryIR] = field(default_factory=list)
    writes: list[FileWriteIR] = field(default_factory=list)
    data: list[ast.Fact | ast.Literal | ast.FileRead] = field(default_factory=list)
    decls: list[ast.TensorDecl | ast.IndexDecl | ast.DomainDecl] = field(default_factory=list)
    settings: dict[str, float] = field(default_factory=dict)
    slices: dict[int, list[SliceInfo]] = field(default_factory=dict)  # equation id -> its slices
    functions: set[str] = field(default_factory=set)
    errors: list[Diagnostic] = field(default_factory=list)  # with collect=True: statements that failed
    failed_defs: set[str] = field(default_factory=set)  # tensors those statements would have defined


def _err(msg: str, span: Span | None, hint: str | None = None) -> TLAnalysisError:
    return TLAnalysisError(Diagnostic(msg, span, hint))


class _Lowerer:
    def __init__(self, user_functions: set[str]):
        self.user_functions = user_functions
        self.out = Lowered()
        self.slices: list[SliceInfo] = []

    # ------------------------------------------------------------ index expressions
    def ix(self, e: ast.IxExpr) -> IExpr:
        if isinstance(e, ast.IxVar):
            return IVar(e.name)
        if isinstance(e, ast.IxInt):
            return IConst(e.value)
        if isinstance(e, ast.IxSymbol):
            return ISym(e.name, e.quoted, e.span)
        return IBin(e.op, self.ix(e.left), self.ix(e.right))

    def positions(self, ref: ast.Ref) -> tuple[Pos, ...]:
        out = []
        for k, p in enumerate(ref.indices or ()):
            if isinstance(p, ast.Slice):
                var = f"_s{len(self.slices)}"
                start = self.ix(p.start) if p.start is not None else None
                stop = self.ix(p.stop) if p.stop is not None else None
                self.slices.append(SliceInfo(var, ref.name, k, start, stop, p.span))
                expr: IExpr = IVar(var) if start is None else IBin("+", IVar(var), start)
                out.append(Pos(expr, False, False, p.span))
            else:
                out.append(Pos(self.ix(p.expr), p.virtual, p.normalized, p.span))
        return tuple(out)

    def read(self, ref: ast.Ref) -> Read:
        return Read(ref.name, self.positions(ref), ref.boolean, ref.span)

    # ------------------------------------------------------------ expressions
    def expr(self, e: ast.Expr) -> Node:
        if isinstance(e, ast.Ref):
            return self.read(e)
        if isinstance(e, ast.Number):
            return Const(e.value)
        if isinstance(e, ast.VarValue):
            return IndexValue(e.name, e.span)
        if isinstance(e, ast.Product):
            return Join([self.expr(f) for f in e.factors], list(e.divides))
        if isinstance(e, ast.Sum):
            return Add([self.expr(t) for t in e.terms], list(e.signs))
        if isinstance(e, ast.Neg):
            return Neg(self.expr(e.operand))
        if isinstance(e, ast.Power):
            return Pow(self.expr(e.base), self.expr(e.exponent))
        assert isinstance(e, ast.Call)
        if e.func not in BUILTINS and e.func not in self.user_functions:
            known = ", ".join(sorted(BUILTINS))
            raise _err(f"unknown function '{e.func}'", e.span,
                       f"the functions are {known}; register others with Program.register_function")
        nargs = {"sig": (1, 2)}.get(e.func, (1, 1))
        if e.func in BUILTINS and not nargs[0] <= len(e.args) <= nargs[1]:
            want = " or ".join(str(n) for n in sorted(set(nargs)))
            raise _err(f"'{e.func}' takes {want} argument(s), got {len(e.args)}", e.span)
        args = [self.expr(a) for a in e.args]
        if e.func == "concat":
            return Concat(args[0], (), "", e.span)
        return Apply(e.func, args, None, e.span)

    # ------------------------------------------------------------ statements
    def equation(self, eq_id: int, lhs: ast.Ref, op: str, rhs: Node, span: Span | None, text: str,
                 rhs_vars_extra: set[str] = frozenset()) -> Equation:
        n_rhs = len(self.slices)
        lhs_pos = self.positions(lhs)
        rhs_slices, lhs_slices = self.slices[:n_rhs], self.slices[n_rhs:]
        if rhs_slices:
            if lhs.indices is None:
                lhs_pos = tuple(Pos(IVar(s.var)) for s in rhs_slices)
            elif lhs_slices:
                if len(lhs_slices) != len(rhs_slices):
                    raise _err(f"the left side has {len(lhs_slices)} slice(s) but the right side "
                               f"{len(rhs_slices)}", span, "slices are matched in order")
                # the k-th LHS slice uses the k-th RHS slice's variable
                rename = {ls.var: rs.var for ls, rs in zip(lhs_slices, rhs_slices)}
                lhs_pos = tuple(Pos(_rename(p.expr, rename), p.virtual, p.normalized, p.span) for p in lhs_pos)
                for ls, rs in zip(lhs_slices, rhs_slices):
                    ls.var = rs.var
            else:
                raise _err("a slice on the right needs a slice on the left, or a left side without indices",
                           rhs_slices[0].span, "e.g. Y = X[4:8] or Y[0:4] = X[4:8]")
        norm = [p for p in lhs_pos if p.normalized]
        virt = [p for p in lhs_pos if p.virtual]
        if len(norm) > 1:
            raise _err("only one index may be normalised (marked with '.')", norm[1].span)
        if norm and not isinstance(norm[0].expr, IVar):
            raise _err("a normalised index must be a plain index variable", norm[0].span)
        if len(virt) > 1:
            raise _err("only one index of a tensor may be virtual", virt[1].span)
        opname = {"=": "+", "+=": "+", "max=": "max", "min=": "min", "avg=": "avg"}[op]
        e = Equation(eq_id, lhs.name, lhs_pos, opname, rhs, lhs.boolean, span, text)
        e.norm_var = norm[0].expr.name if norm else None
        if virt and not isinstance(virt[0].expr, IConst):  # X[i,*0] = ... sets the initial state
            vs = [v for v in _vars_of(virt[0].expr)]
            if len(vs) != 1:
                raise _err("a virtual index must be one index variable, maybe with an offset (*t+1)",
                           virt[0].span)
            e.virtual_var = vs[0]
        keep = set(e.lhs_vars())
        e.rhs = self._normalisers(e.rhs, e, keep)
        exclude: set[str] = set()
        for c in _concats(e.rhs):
            into = [v for v in e.lhs_vars() if v not in node_vars(e.rhs)]
            if len(into) != 1:
                raise _err("concat needs exactly one index on the left that does not occur on the right "
                           "(the concatenated index)", c.span or span,
                           "e.g. Merge[b,p,dm] = concat(Attn[b,h,p,dv]) lays out h and dv as dm")
            c.merged = tuple(v for v in node_vars(c.operand) if v not in keep)
            c.into = into[0]
            exclude |= set(c.merged)
        e.rhs = place_summations(e.rhs, keep | rhs_vars_extra, exclude)
        if e.op != "+" and isinstance(e.rhs, Reduce):
            # max=, min=, avg= project the indices summed at the top with their own operator instead
            e.rhs = e.rhs.operand
        if self.slices:
            self.out.slices[eq_id] = list(self.slices)
        return e

    def _normalisers(self, n: Node, eq: Equation, keep: set[str]) -> Node:
        for m in _walk_apply(n):
            if m.func in NORMALIZING:
                if eq.norm_var is None:
                    lhs_vars = eq.lhs_vars()
                    if len(lhs_vars) == 1:
                        eq.norm_var = lhs_vars[0]
                    else:
                        raise _err(f"{m.func} needs to know which index to normalise over", m.span,
                                   f"mark it on the left with a dot, e.g. {eq.lhs}[p,t.] = {m.func}(...)")
                m.norm_var = eq.norm_var
        return n


_rename = rename_ix


def _vars_of(e: IExpr) -> list[str]:
    if isinstance(e, IVar):
        return [e.name]
    if isinstance(e, IBin):
        return _vars_of(e.left) + _vars_of(e.right)
    return []


def _walk_apply(n: Node):
    from .nodes import walk

    return [m for m in walk(n) if isinstance(m, Apply)]


def _concats(n: Node) -> list[Concat]:
    from .nodes import walk

    return [m for m in walk(n) if isinstance(m, Concat)]


def _source_text(span: Span | None) -> str:
    if span is None or not span.source:
        return ""
    lines = source_lines(span.source)
    if span.line == span.end_line:
        return lines[span.line - 1][span.col - 1:span.end_col - 1]
    first = lines[span.line - 1][span.col - 1:]
    return " ".join([first] + lines[span.line:span.end_line - 1] + [lines[span.end_line - 1][:span.end_col - 1]])


def lower(program: ast.Program, user_functions: set[str] | None = None, first_id: int = 0,
          collect: bool = False) -> Lowered:
    """Lower a parsed (and import-expanded) program. Raises TLAnalysisError on ill-formed statements, or
    with `collect=True` records them in `Lowered.errors` and lowers the rest (so `tl check` sees all)."""
    lw = _Lowerer(set(user_functions or ()))
    out = lw.out
    out.functions = set(user_functions or ())
    errors: list[Diagnostic] = []
    next_id = first_id
    for st in program.statements:
        lw.slices = []
        try:
            if isinstance(st, ast.Equation):
                e = lw.equation(next_id, st.lhs, st.op, lw.expr(st.rhs), st.span, _source_text(st.span))
                out.equations.append(e)
                next_id += 1
            elif isinstance(st, ast.Rule):
                factors: list[Node] = []
                cmp_vars: set[str] = set()
                for item in st.body:
                    if isinstance(item, ast.Comparison):
                        factors.append(Compare(item.op, lw.ix(item.left), lw.ix(item.right)))
                    elif item.negated:
                        factors.append(Not(lw.read(item.atom)))
                    else:
                        factors.append(lw.read(item.atom))
                rhs: Node = factors[0] if len(factors) == 1 else Join(factors, [False] * len(factors))
                e = lw.equation(next_id, st.head, "=", rhs, st.span, _source_text(st.span), cmp_vars)
                e.boolean = True
                out.equations.append(e)
                next_id += 1
            elif isinstance(st, ast.Query):
                expr = lw.expr(st.expr)
                if lw.slices:
                    raise _err("slices are not supported in queries", st.span,
                               "define a tensor with the slice and query it")
                free = tuple(node_vars(expr))
                is_bool = _boolean_query(st.expr)
                out.queries.append(QueryIR(st.text, expr, free, is_bool, st.span))
            elif isinstance(st, ast.FileWrite):
                if st.ref.indices:
                    raise _err("write a whole tensor to a file: \"out.csv\" = Name", st.ref.span)
                out.writes.append(FileWriteIR(st.path, st.ref.name, st.span))
            elif isinstance(st, ast.Fact | ast.Literal | ast.FileRead):
                out.data.append(st)
            elif isinstance(st, ast.TensorDecl | ast.IndexDecl | ast.DomainDecl):
                out.decls.append(st)
            elif isinstance(st, ast.Setting):
                out.settings[st.name] = st.value
            elif isinstance(st, ast.Import):
                raise _err(f"import of '{st.module}' was not expanded", st.span)
        except TLAnalysisError as err:
            errors.extend(err.diagnostics)
            head = getattr(st, "lhs", None) or getattr(st, "head", None)
            if isinstance(head, ast.Ref):
                out.failed_defs.add(head.name)
    if errors and not collect:
        raise TLAnalysisError(errors)
    out.errors = errors
    return out


__all__ = ["lower", "Lowered", "SliceInfo", "BUILTINS", "ELEMENTWISE", "NORMALIZING", "Reduce"]


def _boolean_query(e: ast.Expr) -> bool:
    """A relation, or a conjunction (juxtaposition) of relations: answered with tuples or true/false."""
    if isinstance(e, ast.Ref):
        return e.boolean
    return isinstance(e, ast.Product) and not any(e.divides) and all(_boolean_query(f) for f in e.factors)


def lower_query(expr: ast.Expr, text: str, span: Span | None, user_functions: set[str]) -> QueryIR:
    """Lower one query expression (for `prog.query` and the REPL)."""
    lw = _Lowerer(set(user_functions))
    node = lw.expr(expr)
    if lw.slices:
        raise _err("slices are not supported in queries", span, "define a tensor with the slice and query it")
    is_bool = _boolean_query(expr)
    return QueryIR(text, node, tuple(node_vars(node)), is_bool, span)
