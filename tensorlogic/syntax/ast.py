"""The abstract syntax tree of a tensor logic program: plain dataclasses, each with its source span.

The parser (`parser.py`) builds these; analysis reads them. Nothing here knows about shapes, domains or
backends. `unparse` turns nodes back into source text (used by `tl show`, the REPL and error messages).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .diagnostics import Span

# ---------------------------------------------------------------------------- index expressions


@dataclass(frozen=True)
class IxVar:
    """An index variable: `i`, `p'`, `dx`."""

    name: str
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IxInt:
    """An integer constant in an index position (0-based)."""

    value: int
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IxSymbol:
    """A symbolic constant: `Alice` (quoted=False) or `"New York"` (quoted=True).

    An unquoted capitalised name may also name an integer scalar of the program (`N = 3`); analysis
    decides which.
    """

    name: str
    quoted: bool = False
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IxBin:
    """Index arithmetic: `t+1`, `x+dx`, `i-1`, `x/S` (integer division), `x%S`."""

    op: str
    left: IxExpr
    right: IxExpr
    span: Span | None = field(default=None, compare=False)


IxExpr = IxVar | IxInt | IxSymbol | IxBin


@dataclass(frozen=True)
class Index:
    """One position of a tensor reference: an index expression, maybe virtual (`*t`) or normalised (`p'.`)."""

    expr: IxExpr
    virtual: bool = False
    normalized: bool = False
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Slice:
    """A half-open slice `4:8` in an index position; either bound may be missing."""

    start: IxExpr | None
    stop: IxExpr | None
    span: Span | None = field(default=None, compare=False)


Position = Index | Slice

# ---------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Ref:
    """A tensor reference. `indices is None` for a scalar written without brackets; `boolean` for `Name(...)`."""

    name: str
    indices: tuple[Position, ...] | None
    boolean: bool
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Number:
    value: float
    text: str
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class VarValue:
    """An index variable used as a number: `sin(p / 10000)`."""

    name: str
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Call:
    """A function application: `sig(x)`, `sig(x, T)`, `softmax(...)`, a user function `f(...)`."""

    func: str
    args: tuple[Expr, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Product:
    """Juxtaposition (a join), `*` and `/`: `factors[k]` divides when `divides[k]`."""

    factors: tuple[Expr, ...]
    divides: tuple[bool, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Sum:
    """`a + b - c`: `signs[k]` is +1 or -1."""

    terms: tuple[Expr, ...]
    signs: tuple[int, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Power:
    base: Expr
    exponent: Expr
    span: Span | None = field(default=None, compare=False)


Expr = Ref | Number | VarValue | Call | Product | Sum | Neg | Power

# ---------------------------------------------------------------------------- statements


@dataclass(frozen=True)
class Equation:
    """`lhs op rhs` with op one of `=`, `+=`, `max=`, `min=`, `avg=`."""

    lhs: Ref
    op: str
    rhs: Expr
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Literal:
    """A literal tensor: `W = [0.2, 1.9, -0.7, 3]` (nested lists for higher rank)."""

    lhs: Ref
    value: object  # nested lists of floats
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FileRead:
    """`M = "text.txt"`: the tensor is read from a file (path relative to the program's file)."""

    lhs: Ref
    path: str
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class FileWrite:
    """`"out.csv" = M`: the tensor is written to a file after the program runs."""

    path: str
    ref: Ref
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Comparison:
    """A built-in condition in a rule body: `x != y`, `x < y`."""

    op: str
    left: IxExpr
    right: IxExpr
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class BodyAtom:
    atom: Ref
    negated: bool = False
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Rule:
    """A Datalog rule `Head(x,z) <- A(x,y), B(y,z).` (`:-` too)."""

    head: Ref
    body: tuple[BodyAtom | Comparison, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Fact:
    """A ground atom `Parent(Bob, Charlie)`: the cell is 1."""

    atom: Ref
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Query:
    """`Y?` or `Ancestor(Alice, x)?`; `text` is the query as written (without the `?`)."""

    expr: Expr
    text: str
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DimSpec:
    """One position of a tensor declaration: a size, a domain name, or an index variable (maybe with either)."""

    size: int | None = None
    domain: str | None = None
    var: str | None = None
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class TensorDecl:
    """`tensor W[4, 3] learnable`, `tensor Parent(Person, Person) sparse`."""

    name: str
    dims: tuple[DimSpec, ...] | None
    boolean: bool | None
    modifiers: tuple[str, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class IndexDecl:
    """`index i, j: 10` or `index x, y: Person`."""

    names: tuple[str, ...]
    size: int | None
    domain: str | None
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class DomainDecl:
    """`domain Person: Alice, Bob` or `domain Layer: 4` or just `domain Person`."""

    name: str
    size: int | None
    symbols: tuple[str, ...] | None
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Import:
    """`import logic` (a stdlib module) or `import "mine.tl"` (a file, relative to this one)."""

    module: str
    is_path: bool
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ModuleDecl:
    """`module linear(X, Y, W, B, i, o)`: opens a module section of a file; the names may be bound by a use."""

    name: str
    params: tuple[str, ...]
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class UseArg:
    """`W=W1` (a tensor), `i=h` (an index), `i=16` (an index of that size) or `Eps=0.001` (a scalar)."""

    param: str
    value: str | float
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Use:
    """`use nn.linear(X=H, Y=O) as Layer1`: the module's equations with these names, the rest prefixed."""

    module: str
    args: tuple[UseArg, ...]
    alias: str | None
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Setting:
    """`set max_iterations = 500`, `set tolerance = 1e-8`."""

    name: str
    value: float
    span: Span | None = field(default=None, compare=False)


Statement = (Equation | Literal | FileRead | FileWrite | Rule | Fact | Query | TensorDecl | IndexDecl
             | DomainDecl | Import | Setting | ModuleDecl | Use)


@dataclass
class Program:
    """A parsed program: its statements in source order."""

    statements: list[Statement]
    file: str = "<input>"
    source: str = ""


# ---------------------------------------------------------------------------- unparsing


def unparse_ix(e: IxExpr) -> str:
    if isinstance(e, IxVar):
        return e.name
    if isinstance(e, IxInt):
        return str(e.value)
    if isinstance(e, IxSymbol):
        return f'"{e.name}"' if e.quoted else e.name
    prec = {"+": 1, "-": 1, "/": 2, "%": 2}
    left, right = unparse_ix(e.left), unparse_ix(e.right)
    if isinstance(e.left, IxBin) and prec[e.left.op] < prec[e.op]:
        left = f"({left})"
    if isinstance(e.right, IxBin) and prec[e.right.op] <= prec[e.op]:
        right = f"({right})"
    return f"{left}{e.op}{right}"


def unparse_position(p: Position) -> str:
    if isinstance(p, Slice):
        a = unparse_ix(p.start) if p.start is not None else ""
        b = unparse_ix(p.stop) if p.stop is not None else ""
        return f"{a}:{b}"
    return ("*" if p.virtual else "") + unparse_ix(p.expr) + ("." if p.normalized else "")


def unparse_ref(r: Ref) -> str:
    if r.indices is None:
        return r.name
    inner = ",".join(unparse_position(p) for p in r.indices)
    return f"{r.name}({inner})" if r.boolean else f"{r.name}[{inner}]"


_PREC = {Sum: 1, Neg: 2, Product: 3, Power: 4}


def unparse(e: Expr, parent: int = 0) -> str:
    """Source text of an expression, parenthesised only where needed."""
    if isinstance(e, Ref):
        return unparse_ref(e)
    if isinstance(e, Number):
        return e.text
    if isinstance(e, VarValue):
        return e.name
    if isinstance(e, Call):
        return f"{e.func}({', '.join(unparse(a) for a in e.args)})"
    prec = _PREC[type(e)]
    if isinstance(e, Sum):
        parts = []
        for k, (t, s) in enumerate(zip(e.terms, e.signs)):
            txt = unparse(t, prec + (1 if k else 0))
            parts.append(txt if k == 0 and s > 0 else (f"-{txt}" if k == 0 else f" {'+' if s > 0 else '-'} {txt}"))
        text = "".join(parts)
    elif isinstance(e, Neg):
        text = "-" + unparse(e.operand, prec)
    elif isinstance(e, Product):
        text = ""
        for k, (f, d) in enumerate(zip(e.factors, e.divides)):
            txt = unparse(f, prec + 1)
            sep = " * " if txt.startswith("(") else " "
            text += txt if k == 0 else (f"/{txt}" if d else f"{sep}{txt}")
    else:
        text = f"{unparse(e.base, prec + 1)}^{unparse(e.exponent, prec + 1)}"
    return f"({text})" if prec < parent or (prec == parent and isinstance(e, Sum | Product)) else text
