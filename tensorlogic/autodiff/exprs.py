"""Expression tools for autodiff: free indices, renaming, product building, and the shapes of the
expressions that gradient equations are made of (derivatives of the built-in functions included).

`uniquify` and `anchor_top_sums` make sure that a gradient equation, printed and read back, sums each index
where the IR does (the summation rule of LANGUAGE.md section 3 places sums by where indices occur).
"""

from __future__ import annotations

from ..ir.nodes import (
    Add,
    Apply,
    Compare,
    Concat,
    Const,
    Equation,
    IBin,
    IConst,
    IndexValue,
    IVar,
    Join,
    Neg,
    Node,
    Not,
    Pos,
    Pow,
    Read,
    Reduce,
    children,
    free_vars,
    rename_ix,
)


def rename(n: Node, m: dict[str, str]) -> Node:
    """n with index variables renamed by m (a copy; summed variables inside are renamed too)."""
    if not m:
        return n
    if isinstance(n, Read):
        return Read(n.tensor, tuple(Pos(rename_ix(p.expr, m), p.virtual, p.normalized) for p in n.pos),
                    n.boolean_syntax, n.span)
    if isinstance(n, IndexValue):
        return IndexValue(m.get(n.var, n.var), n.span)
    if isinstance(n, Compare):
        return Compare(n.op, rename_ix(n.left, m), rename_ix(n.right, m))
    if isinstance(n, Not):
        return Not(rename(n.operand, m))
    if isinstance(n, Join):
        return Join([rename(f, m) for f in n.factors], list(n.divides))
    if isinstance(n, Add):
        return Add([rename(t, m) for t in n.terms], list(n.signs))
    if isinstance(n, Neg):
        return Neg(rename(n.operand, m))
    if isinstance(n, Pow):
        return Pow(rename(n.base, m), rename(n.exponent, m))
    if isinstance(n, Apply):
        return Apply(n.func, [rename(a, m) for a in n.args], m.get(n.norm_var, n.norm_var) if n.norm_var else None,
                     n.span)
    if isinstance(n, Concat):
        return Concat(rename(n.operand, m), tuple(m.get(v, v) for v in n.merged), m.get(n.into, n.into), n.span)
    if isinstance(n, Reduce):
        return Reduce(tuple(m.get(v, v) for v in n.over), rename(n.operand, m))
    return n


def uniquify(n: Node, taken: set[str], top: bool = True) -> Node:
    """Give every nested summation its own variable names, so that printing the expression and re-reading it
    with the summation rule sums each one where the IR does (copies of one sub-expression would share them)."""
    if isinstance(n, Reduce):
        if top:
            return Reduce(n.over, uniquify(n.operand, taken, False))
        m = {}
        for v in n.over:
            k = 1
            while f"{v}_{k}" in taken:
                k += 1
            m[v] = f"{v}_{k}"
            taken.add(m[v])
        return Reduce(tuple(m[v] for v in n.over), uniquify(rename(n.operand, m), taken, False))
    if isinstance(n, Join):
        return Join([uniquify(f, taken, False) for f in n.factors], list(n.divides))
    if isinstance(n, Add):
        return Add([uniquify(t, taken, False) for t in n.terms], list(n.signs))
    if isinstance(n, Neg):
        return Neg(uniquify(n.operand, taken, False))
    if isinstance(n, Pow):
        return Pow(uniquify(n.base, taken, False), uniquify(n.exponent, taken, False))
    if isinstance(n, Apply):
        return Apply(n.func, [uniquify(a, taken, False) for a in n.args], n.norm_var, n.span)
    if isinstance(n, Concat):
        return Concat(uniquify(n.operand, taken, False), n.merged, n.into, n.span)
    return n


def top_reads(n: Node) -> list[Read]:
    """Reads of n outside nested summations (and outside negated atoms), in order."""
    if isinstance(n, Read):
        return [n]
    if isinstance(n, Reduce | Not):
        return []
    out: list[Read] = []
    for c in children(n):
        out += top_reads(c)
    return out


def anchor_top_sums(rhs: Node, lhs: set[str]) -> Node:
    """An index summed over the whole right side that occurs in one read only, inside a power or a function,
    would be summed at that read when the text is read back: a factor (R[..])^0 = 1 beside it keeps the sum
    at the top."""
    body = rhs.operand if isinstance(rhs, Reduce) else rhs
    direct = {id(f) for f in (body.factors if isinstance(body, Join) else [body]) if isinstance(f, Read)}
    anchors: list[Node] = []
    counts: dict[str, list[Read]] = {}
    for r in top_reads(body):
        for v in free_vars(r):
            counts.setdefault(v, []).append(r)
    for v, rs in counts.items():
        if v in lhs or len(rs) != 1 or id(rs[0]) in direct:
            continue
        if not any(v in free_vars(a) for a in anchors):
            anchors.append(Pow(rs[0], Const(0.0)))
    if not anchors:
        return rhs
    new = prod(body, *anchors)
    return Reduce(rhs.over, new) if isinstance(rhs, Reduce) else new


def all_vars(n: Node) -> set[str]:
    from ..ir.nodes import node_vars, walk

    out = set(node_vars(n))
    for m in walk(n):
        if isinstance(m, Reduce):
            out |= set(m.over)
        if isinstance(m, Concat):
            out |= set(m.merged)
    return out


def prod(*fs: Node, divides: list[bool] | None = None) -> Node:
    factors: list[Node] = []
    divs: list[bool] = []
    for k, f in enumerate(fs):
        d = bool(divides[k]) if divides else False
        if isinstance(f, Const) and f.value == 1 and not d:
            continue
        if isinstance(f, Join) and not d:
            factors += f.factors
            divs += f.divides
        else:
            factors.append(f)
            divs.append(d)
    if not factors:
        return Const(1.0)
    if len(factors) == 1 and not divs[0]:
        return factors[0]
    return Join(factors, divs)


def neg(x: Node) -> Node:
    return x.operand if isinstance(x, Neg) else Neg(x)


def one_minus(x: Node) -> Node:
    return Add([Const(1.0), x], [1, -1])


def sq(x: Node) -> Node:
    return Pow(x, Const(2.0))


def read_of(name: str, vs: list[str] | tuple[str, ...]) -> Read:
    return Read(name, tuple(Pos(IVar(v)) for v in vs))



def writes_range(eq: Equation, k: int) -> tuple[int, int] | None:
    e = eq.lhs_pos[k].expr
    if isinstance(e, IConst):
        return (e.value, e.value + 1)
    shift = 0
    if isinstance(e, IBin) and e.op in "+-" and isinstance(e.left, IVar) and isinstance(e.right, IConst):
        shift = e.right.value if e.op == "+" else -e.right.value
        e = e.left
    if isinstance(e, IVar) and e.name in eq.ranges:
        lo, hi = eq.ranges[e.name]
        return (lo + shift, hi + shift)
    return None


def disjoint(a: Equation, b: Equation) -> bool:
    """Whether two equations of one tensor write disjoint cells (some axis's written values never meet)."""
    for k in range(min(len(a.lhs_pos), len(b.lhs_pos))):
        ra, rb = writes_range(a, k), writes_range(b, k)
        if ra is not None and rb is not None and (ra[1] <= rb[0] or rb[1] <= ra[0]):
            return True
    return False


def _sig_d(x: Node, y: Node) -> Node:
    return prod(y, one_minus(y))


def _step_d(x: Node, y: Node) -> Node:
    s = Apply("sig", [x])
    return prod(s, one_minus(s))


DERIVATIVES = {
    "sig": _sig_d,
    "tanh": lambda x, y: one_minus(sq(y)),
    "relu": lambda x, y: Apply("step", [y]),
    "exp": lambda x, y: y,
    "log": lambda x, y: prod(Const(1.0), x, divides=[False, True]),
    "sqrt": lambda x, y: prod(Const(0.5), y, divides=[False, True]),
    "abs": lambda x, y: Add([Apply("step", [x]), Apply("step", [Neg(x)])], [1, -1]),
    "sin": lambda x, y: Apply("cos", [x]),
    "cos": lambda x, y: Neg(Apply("sin", [x])),
    "step": _step_d,
}
