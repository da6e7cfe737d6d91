"""The intermediate representation: tensor equations with explicit summation, resolved constants and ranges.

Lowering (`lower.py`) builds these from the AST; analysis fills in types, shapes and index ranges; the
graph, planner and runtime read them. Index variables are strings; constants are already integer ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..syntax.diagnostics import Span

# ---------------------------------------------------------------------------- index expressions


@dataclass(frozen=True)
class IVar:
    name: str


@dataclass(frozen=True)
class IConst:
    value: int


@dataclass(frozen=True)
class ISym:
    """A symbolic or named constant not yet resolved to an integer (analysis replaces it by IConst)."""

    name: str
    quoted: bool
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IBin:
    op: str  # + - / %
    left: IExpr
    right: IExpr


IExpr = IVar | IConst | ISym | IBin


@dataclass(frozen=True)
class Pos:
    """One index position: its expression and markers."""

    expr: IExpr
    virtual: bool = False
    normalized: bool = False
    span: Span | None = field(default=None, compare=False)


def ix_vars(e: IExpr) -> list[str]:
    """The index variables of an index expression, in order of appearance."""
    if isinstance(e, IVar):
        return [e.name]
    if isinstance(e, IBin):
        return ix_vars(e.left) + [v for v in ix_vars(e.right) if v not in ix_vars(e.left)]
    return []


def ix_str(e: IExpr) -> str:
    if isinstance(e, IVar):
        return e.name
    if isinstance(e, IConst):
        return str(e.value)
    if isinstance(e, ISym):
        return f'"{e.name}"' if e.quoted else e.name
    return f"{ix_str(e.left)}{e.op}{ix_str(e.right)}"


def pos_str(p: Pos) -> str:
    return ("*" if p.virtual else "") + ix_str(p.expr) + ("." if p.normalized else "")


# ---------------------------------------------------------------------------- expressions


@dataclass
class Read:
    """Reading a tensor at index expressions."""

    tensor: str
    pos: tuple[Pos, ...]
    boolean_syntax: bool = False
    span: Span | None = None


@dataclass
class Const:
    value: float


@dataclass
class IndexValue:
    """An index variable used as a number."""

    var: str
    span: Span | None = None


@dataclass
class Join:
    """A product: juxtaposition (join), `*`, and `/` (divides[k] marks a divisor)."""

    factors: list[Node]
    divides: list[bool]


@dataclass
class Add:
    terms: list[Node]
    signs: list[int]


@dataclass
class Neg:
    operand: Node


@dataclass
class Pow:
    base: Node
    exponent: Node


@dataclass
class Apply:
    """An elementwise function, or softmax / lnorm over `norm_var` (the LHS's dotted index)."""

    func: str
    args: list[Node]
    norm_var: str | None = None
    span: Span | None = None


@dataclass
class Concat:
    """`concat(x)`: the argument's variables `merged` are laid out row-major as the new variable `into`."""

    operand: Node
    merged: tuple[str, ...]
    into: str
    span: Span | None = None


@dataclass
class Reduce:
    """Summation of `over` (index variables) at this node: the summation rule of LANGUAGE.md section 3."""

    over: tuple[str, ...]
    operand: Node


@dataclass
class Compare:
    """A built-in condition between index expressions (`x != y`): 1 where it holds, else 0."""

    op: str
    left: IExpr
    right: IExpr


@dataclass
class Not:
    """Negation of a Boolean read in a rule body (stratified)."""

    operand: Read


Node = Read | Const | IndexValue | Join | Add | Neg | Pow | Apply | Concat | Reduce | Compare | Not


def children(n: Node) -> list[Node]:
    if isinstance(n, Join):
        return list(n.factors)
    if isinstance(n, Add):
        return list(n.terms)
    if isinstance(n, Neg | Reduce | Concat | Not):
        return [n.operand]
    if isinstance(n, Pow):
        return [n.base, n.exponent]
    if isinstance(n, Apply):
        return list(n.args)
    return []


def walk(n: Node):
    """All nodes of an expression, parents before children."""
    yield n
    for c in children(n):
        yield from walk(c)


def rename_ix(e: IExpr, ren: dict[str, str]) -> IExpr:
    """An index expression with its variables renamed by `ren`."""
    if isinstance(e, IVar):
        return IVar(ren.get(e.name, e.name))
    if isinstance(e, IBin):
        return IBin(e.op, rename_ix(e.left, ren), rename_ix(e.right, ren))
    return e


def free_vars(n: Node) -> list[str]:
    """The index variables of a node's value (those not summed inside it), in order of first appearance: the
    axes the dense evaluator produces. A softmax/lnorm adds its normalised index; concat its new index."""
    if isinstance(n, Read):
        out: list[str] = []
        for p in n.pos:
            for v in ix_vars(p.expr):
                if v not in out:
                    out.append(v)
        return out
    if isinstance(n, IndexValue):
        return [n.var]
    if isinstance(n, Compare):
        return list(dict.fromkeys(ix_vars(n.left) + ix_vars(n.right)))
    if isinstance(n, Reduce):
        return [v for v in free_vars(n.operand) if v not in n.over]
    if isinstance(n, Concat):
        return [v for v in free_vars(n.operand) if v not in n.merged] + [n.into]
    out = []
    for c in children(n):
        for v in free_vars(c):
            if v not in out:
                out.append(v)
    if isinstance(n, Apply) and n.norm_var and n.norm_var not in out:
        out.append(n.norm_var)
    return out


def reads(n: Node) -> list[Read]:
    return [m for m in walk(n) if isinstance(m, Read)]


def node_vars(n: Node) -> list[str]:
    """Index variables occurring anywhere under n, in order of first appearance."""
    out: list[str] = []
    for m in walk(n):
        vs: list[str] = []
        if isinstance(m, Read):
            for p in m.pos:
                vs += ix_vars(p.expr)
        elif isinstance(m, IndexValue):
            vs = [m.var]
        elif isinstance(m, Compare):
            vs = ix_vars(m.left) + ix_vars(m.right)
        elif isinstance(m, Concat):
            vs = [m.into]
        for v in vs:
            if v not in out:
                out.append(v)
    return out


# ---------------------------------------------------------------------------- statements


@dataclass
class Equation:
    """`lhs[pos] op rhs`. Rules and facts-with-variables lower to this too."""

    id: int
    lhs: str
    lhs_pos: tuple[Pos, ...]
    op: str  # "+" (for = and +=), "max", "min", "avg"
    rhs: Node
    boolean: bool  # the LHS was written Name(...)
    span: Span | None = None
    text: str = ""
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # filled by analysis
    norm_var: str | None = None
    virtual_var: str | None = None  # the LHS's virtual index variable, if any

    def lhs_vars(self) -> list[str]:
        out: list[str] = []
        for p in self.lhs_pos:
            for v in ix_vars(p.expr):
                if v not in out:
                    out.append(v)
        return out


@dataclass
class QueryIR:
    """A query: an expression whose free variables are the answer's columns."""

    text: str
    expr: Node
    free: tuple[str, ...]
    boolean: bool
    span: Span | None = None
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class FileWriteIR:
    path: str
    tensor: str
    span: Span | None = None


def expr_str(n: Node) -> str:
    """Readable form of an IR expression, with summations shown as `sum[i,j](...)`."""
    if isinstance(n, Read):
        inner = ",".join(pos_str(p) for p in n.pos)
        if not n.pos:
            return n.tensor
        return f"{n.tensor}({inner})" if n.boolean_syntax else f"{n.tensor}[{inner}]"
    if isinstance(n, Const):
        v = n.value
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)
    if isinstance(n, IndexValue):
        return n.var
    if isinstance(n, Join):
        s = ""
        for k, (f, d) in enumerate(zip(n.factors, n.divides)):
            t = expr_str(f)
            if isinstance(f, Add | Neg):
                t = f"({t})"
            s += t if k == 0 else (f" / {t}" if d else f" {t}")
        return s
    if isinstance(n, Add):
        s = ""
        for k, (t, sg) in enumerate(zip(n.terms, n.signs)):
            txt = expr_str(t)
            if isinstance(t, Add):
                txt = f"({txt})"
            s += (txt if sg > 0 else f"-{txt}") if k == 0 else (f" + {txt}" if sg > 0 else f" - {txt}")
        return s
    if isinstance(n, Neg):
        return f"-({expr_str(n.operand)})"
    if isinstance(n, Pow):
        return f"({expr_str(n.base)})^({expr_str(n.exponent)})"
    if isinstance(n, Apply):
        extra = f"; over {n.norm_var}" if n.norm_var else ""
        return f"{n.func}({', '.join(expr_str(a) for a in n.args)}{extra})"
    if isinstance(n, Concat):
        return f"concat[{','.join(n.merged)}->{n.into}]({expr_str(n.operand)})"
    if isinstance(n, Reduce):
        return f"sum[{','.join(n.over)}]({expr_str(n.operand)})"
    if isinstance(n, Compare):
        return f"{ix_str(n.left)} {n.op} {ix_str(n.right)}"
    if isinstance(n, Not):
        return f"not {expr_str(n.operand)}"
    raise TypeError(n)


def equation_str(eq: Equation) -> str:
    inner = ",".join(pos_str(p) for p in eq.lhs_pos)
    lhs = eq.lhs if not eq.lhs_pos else (f"{eq.lhs}({inner})" if eq.boolean else f"{eq.lhs}[{inner}]")
    op = "=" if eq.op == "+" else f"{eq.op}="
    return f"{lhs} {op} {expr_str(eq.rhs)}"
