"""IR equations back to `.tl` source: how gradient programs are printed (`tl grad`).

The printed text re-lowers to the same computation: summations are left implicit and placed by the
summation rule (LANGUAGE.md section 3), which the autodiff stage respects by construction (every summed
index of a copied sub-expression occurs only inside the product that sums it). Constants in symbolic
domains print as quoted symbols, so the text parses and means the same in the program it is added to.
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir.nodes import (
    Add,
    Apply,
    Compare,
    Concat,
    Const,
    Equation,
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
    Pow,
    Read,
    Reduce,
)

# (tensor, position) -> the label of an integer constant there, or None to print the integer
LabelOf = Callable[[str, int, int], str | None]


def number(v: float) -> str:
    """A number literal the grammar accepts (no exponent-free ambiguity, digits after any point)."""
    v = float(v)
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    text = repr(v)
    if "e" in text or "E" in text:
        mant, exp = text.lower().split("e")
        if "." not in mant:
            mant += ".0"
        return f"{mant}e{int(exp)}"
    return text


class Printer:
    """Prints IR expressions and equations as source text."""

    def __init__(self, label_of: LabelOf | None = None):
        self.label_of = label_of

    def ix(self, e: IExpr, tensor: str | None = None, k: int = 0) -> str:
        if isinstance(e, IVar):
            return e.name
        if isinstance(e, IConst):
            if tensor is not None and self.label_of is not None:
                lab = self.label_of(tensor, k, e.value)
                if lab is not None:
                    return '"' + lab.replace("\\", "\\\\").replace('"', '\\"') + '"'
            return str(e.value) if e.value >= 0 else f"-{-e.value}"
        if isinstance(e, ISym):
            return f'"{e.name}"' if e.quoted else e.name
        assert isinstance(e, IBin)
        right = self.ix(e.right)
        if isinstance(e.right, IBin):
            right = f"({right})"
        left = self.ix(e.left)
        if isinstance(e.left, IBin) and e.op in "/%" and e.left.op in "+-":
            left = f"({left})"
        return f"{left}{e.op}{right}"

    def read(self, r: Read) -> str:
        if not r.pos:
            return r.tensor
        inner = ", ".join(("*" if p.virtual else "") + self.ix(p.expr, r.tensor, k) for k, p in enumerate(r.pos))
        return f"{r.tensor}({inner})" if r.boolean_syntax else f"{r.tensor}[{inner}]"

    def expr(self, n: Node) -> str:
        if isinstance(n, Reduce):
            return self.expr(n.operand)
        if isinstance(n, Read):
            return self.read(n)
        if isinstance(n, Const):
            s = number(n.value)
            return f"({s})" if n.value < 0 else s
        if isinstance(n, IndexValue):
            return n.var
        if isinstance(n, Join):
            parts = []
            for k, (f, d) in enumerate(zip(n.factors, n.divides)):
                t = self.factor(f)
                # `A (x)` after a bare name would read as the relation A(x): write `A * (x)`
                bare = k > 0 and isinstance(n.factors[k - 1], Read) and not n.factors[k - 1].pos
                parts.append(t if k == 0 else (f"/ {t}" if d else (f"* {t}" if bare and t.startswith("(") else t)))
            if n.divides and n.divides[0]:
                parts[0] = f"1 / {parts[0]}"
            return " ".join(parts)
        if isinstance(n, Add):
            s = ""
            for k, (t, sg) in enumerate(zip(n.terms, n.signs)):
                txt = self.expr(t)
                if isinstance(t, Add | Neg) or (isinstance(t, Reduce) and isinstance(t.operand, Add)):
                    txt = f"({txt})"
                if k == 0:
                    s = txt if sg > 0 else f"-{self._wrap(t, txt)}"
                else:
                    s += f" + {txt}" if sg > 0 else f" - {self._wrap(t, txt)}"
            return s
        if isinstance(n, Neg):
            return f"-({self.expr(n.operand)})"
        if isinstance(n, Pow):
            return f"({self.expr(n.base)})^({self.expr(n.exponent)})"
        if isinstance(n, Apply):
            return f"{n.func}({', '.join(self.expr(a) for a in n.args)})"
        if isinstance(n, Concat):
            return f"concat({self.expr(n.operand)})"
        if isinstance(n, Not):
            return f"not {self.read(n.operand)}"
        if isinstance(n, Compare):
            raise ValueError("a comparison cannot be printed inside a tensor equation")
        raise TypeError(n)

    def _wrap(self, n: Node, txt: str) -> str:
        inner = n.operand if isinstance(n, Reduce) else n
        return f"({txt})" if isinstance(inner, Join | Add | Neg) else txt

    def factor(self, f: Node) -> str:
        """A factor of a product: parenthesised unless it is an atom (read, number, call, power)."""
        t = self.expr(f)
        inner = f.operand if isinstance(f, Reduce) else f
        if isinstance(inner, Join | Add | Neg) or isinstance(f, Reduce) or (isinstance(f, Const) and f.value < 0):
            return t if t.startswith("(") and _balanced(t) else f"({t})"
        return t

    def equation(self, eq: Equation) -> str:
        inner = ", ".join(self.ix(p.expr, eq.lhs, k) + ("." if p.normalized else "") for k, p in enumerate(eq.lhs_pos))
        lhs = eq.lhs if not eq.lhs_pos else f"{eq.lhs}[{inner}]"
        op = "=" if eq.op == "+" else f"{eq.op}="
        return f"{lhs} {op} {self.expr(eq.rhs)}"


def _balanced(t: str) -> bool:
    """Whether `t` is one parenthesised group from its first to its last character."""
    depth = 0
    for k, ch in enumerate(t):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k < len(t) - 1:
            return False
    return depth == 0
