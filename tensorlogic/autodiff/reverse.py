"""Reverse-mode autodiff as a transformation of IR equations into gradient equations of the same form.

For an equation `T[lhs] = rhs` and the adjoint `Grad_T` of its left side, the adjoint is pushed down the
right side's tree: through a product each factor gets the join of the adjoint with the other factors (a
divisor `/f` gets `-adjoint others / f^2`), through a sum each term gets the adjoint (negated for a minus),
through a summation nothing changes (the adjoint does not depend on the summed index: it broadcasts).
At a nonlinearity the adjoint times the derivative is materialised as a new tensor `Adj_T_k` over the
argument's free indices, so every tensor's gradient is one plain join that the planner orders. At a read
`R[pos]` the gradient equation `Grad_R[pos] += adjoint` is emitted; the indices of the adjoint that are not
in `pos` are summed by the ordinary summation rule. A shifted read `R[i-1,k]` thus becomes the shifted write
`Grad_R[i-1,k] = ...`, and a left-side index function (a scatter `P[x/S,y/S] = F[x,y]`) becomes a gather
`Grad_P[x/S,y/S]`.

Decisions (docs/learning.md): Boolean heads (rules) pass no gradient; `step` and `sig(x, 0)` take the
sigmoid's derivative as a surrogate (a straight-through estimator); `max=`/`min=` send the gradient to the
cells that attain the extremum, shared equally among ties (as `torch.amax`); a recursive group gets the
adjoint recursion, iterated to its own fixpoint (exact for layered recursion, the implicit-function gradient
for numeric fixpoints).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis.program import Analyzed
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
    free_vars,
    ix_vars,
    reads,
    walk,
)
from ..syntax.diagnostics import Span, TLAnalysisError, TLError
from .exprs import (
    DERIVATIVES,
    all_vars,
    anchor_top_sums,
    disjoint,
    neg,
    one_minus,
    prod,
    read_of,
    uniquify,
)

NONDIFF = (Const, IndexValue, Compare, Not)


class TLGradError(TLAnalysisError):
    """A construct the autodiff stage cannot differentiate (with the equation's location)."""


def _fail(msg: str, span: Span | None, hint: str | None = None) -> TLError:
    from ..syntax.diagnostics import Diagnostic

    return TLGradError([Diagnostic(msg, span, hint)])


@dataclass
class GradEquations:
    """The gradient equations of a program, with the names of the gradient tensors."""

    equations: list[Equation] = field(default_factory=list)
    grad_of: dict[str, str] = field(default_factory=dict)  # tensor -> its gradient tensor
    seeds: dict[str, str] = field(default_factory=dict)  # output -> the gradient tensor given as input
    comments: dict[int, str] = field(default_factory=dict)  # equation index -> a comment line before it


class Differentiator:
    """Builds the gradient equations of `outputs` (whose adjoints are given) with respect to `wrt`."""

    def __init__(self, a: Analyzed, outputs: list[str], wrt: list[str]):
        self.a = a
        self.outputs = list(outputs)
        self.wrt = list(wrt)
        self.out = GradEquations()
        self.taken = set(a.tensors)
        self.by_lhs: dict[str, list[Equation]] = {}
        for eq in a.equations:
            self.by_lhs.setdefault(eq.lhs, []).append(eq)
        self.relevant = self._relevant()
        self.counter = 0

    # ------------------------------------------------------------ names and relevance
    def fresh(self, base: str) -> str:
        name = base
        k = 1
        while name in self.taken:
            k += 1
            name = f"{base}{k}"
        self.taken.add(name)
        return name

    def grad(self, t: str) -> str:
        if t not in self.out.grad_of:
            self.out.grad_of[t] = self.fresh(f"Grad_{t}")
        return self.out.grad_of[t]

    def _relevant(self) -> set[str]:
        """Tensors on a path from a `wrt` tensor to an output, through numeric (non-Boolean) equations."""
        for t in self.wrt + self.outputs:
            if t not in self.a.tensors:
                raise _fail(f"no tensor '{t}' in the program", None)
        active = set(self.wrt)
        changed = True
        while changed:
            changed = False
            for eq in self.a.equations:
                if eq.boolean or eq.lhs in active:
                    continue
                if any(r.tensor in active for r in reads(eq.rhs)):
                    active.add(eq.lhs)
                    changed = True
        needed = set(self.outputs)
        changed = True
        while changed:
            changed = False
            for eq in self.a.equations:
                if eq.lhs in needed and not eq.boolean:
                    for r in reads(eq.rhs):
                        if r.tensor not in needed:
                            needed.add(r.tensor)
                            changed = True
        return active & needed

    # ------------------------------------------------------------ driver
    def run(self) -> GradEquations:
        for o in self.outputs:
            self.out.seeds[o] = self.grad(o)
        for eq in self.a.equations:
            if eq.boolean or eq.lhs not in self.relevant:
                continue
            if not any(r.tensor in self.relevant for r in reads(eq.rhs)):
                continue
            if any(p.virtual for p in eq.lhs_pos) or any(p.virtual for r in reads(eq.rhs) for p in r.pos
                                                           if r.tensor in self.relevant):
                raise _fail(f"cannot differentiate through the virtual index of '{eq.text or eq.lhs}' yet",
                            eq.span, "write the index as an ordinary one (X[i,t+1] instead of X[i,*t+1]) so "
                                     "every step is kept for the backward pass")
            for e in self.split_normalisations(eq):
                self.eq = e
                self.ctx: set[str] = set()
                self.counter = 0
                self.differentiate(e)
        return self.out

    def split_normalisations(self, eq: Equation) -> list[Equation]:
        """A softmax or lnorm inside a larger expression normalises over the left side's dotted index (a concat
        lays out into the left side's new index), which a copy in a gradient equation would not have: it
        becomes its own tensor `Norm_T_k[..., v.]` (an
        equation added to the gradient program, with the same values) read by a rewritten equation; both
        are differentiated. Returns the equations to differentiate."""
        inner = [m for m in walk(eq.rhs) if (isinstance(m, Apply) and m.func in ("softmax", "lnorm")
                                             or isinstance(m, Concat))
                 and m is not eq.rhs and not (isinstance(eq.rhs, Reduce) and not eq.rhs.over and m is eq.rhs.operand)
                 and self.active(m)]
        if not inner:
            return [eq]
        subst: dict[int, Read] = {}
        extra: list[Equation] = []
        for k, m in enumerate(inner, 1):
            vs = free_vars(m)
            norm = getattr(m, "norm_var", None)
            name = self.fresh(f"Norm_{eq.lhs}_{k}")
            pos = tuple(Pos(IVar(v), normalized=(v == norm)) for v in vs)
            aux = Equation(-1, name, pos, "+", m, False, norm_var=norm, ranges=dict(eq.ranges))
            what = m.func if isinstance(m, Apply) else "concat"
            self.out.comments[len(self.out.equations)] = f"the {what} inside {eq.lhs}'s equation, as a tensor"
            self.out.equations.append(aux)  # a forward equation of the gradient program (printed as is)
            self.relevant.add(name)
            self.by_lhs[name] = [aux]
            subst[id(m)] = read_of(name, vs)
            extra.append(aux)
        rewritten = Equation(eq.id, eq.lhs, eq.lhs_pos, eq.op, _substitute(eq.rhs, subst), eq.boolean, eq.span,
                             eq.text, eq.ranges, eq.norm_var, eq.virtual_var)
        self.by_lhs[eq.lhs] = [rewritten if x is eq else x for x in self.by_lhs[eq.lhs]]
        return [rewritten, *extra]

    def differentiate(self, eq: Equation) -> None:
        g = Read(self.grad(eq.lhs), eq.lhs_pos)
        rhs = eq.rhs
        if eq.op == "+":
            self.prop(rhs, g, root=True)
            return
        if eq.op == "avg":
            # (x)^0 (x)^0 = 1 at every cell of the group, summed at the top: the group's size
            cnt = self.aux_count(eq, Join([Pow(rhs, Const(0.0)), Pow(rhs, Const(0.0))], [False, False]))
            self.prop(rhs, prod(g, Read(cnt, eq.lhs_pos), divides=[False, True]))
            return
        # max= / min=: the cells that attain the extremum share the gradient equally
        fv = free_vars(rhs)
        ind = self.fresh(f"Arg_{eq.lhs}")
        t_at = Read(eq.lhs, eq.lhs_pos)
        diff = Add([rhs, t_at], [1, -1])
        self.emit(ind, fv, one_minus(Apply("step", [Apply("abs", [diff])])), f"where {eq.lhs} attains its {eq.op}")
        cnt = self.fresh(f"Cnt_{eq.lhs}")
        self.add(Equation(-1, cnt, eq.lhs_pos, "+", read_of(ind, fv), False))
        self.prop(rhs, prod(g, read_of(ind, fv), Read(cnt, eq.lhs_pos), divides=[False, False, True]))

    def aux_count(self, eq: Equation, ones: Node) -> str:
        name = self.fresh(f"Cnt_{eq.lhs}")
        self.add(Equation(-1, name, eq.lhs_pos, "+", ones, False))
        return name

    def emit(self, name: str, vs: list[str], rhs: Node, comment: str | None = None,
             norm_var: str | None = None) -> None:
        pos = tuple(Pos(IVar(v), normalized=(v == norm_var)) for v in vs)
        if comment:
            self.out.comments[len(self.out.equations)] = comment
        rhs = prod(rhs, *self.masks(vs))
        self.add(Equation(-1, name, pos, "+", rhs, False, norm_var=norm_var))

    def masks(self, vs: list[str]) -> list[Node]:
        """Factors restricting the forward equation's variables to its ranges where inference would widen
        them (a materialised adjoint reads only plain positions)."""
        out: list[Node] = []
        for v in vs:
            rng = self.eq.ranges.get(v)
            if rng is None:
                continue
            lo, hi = rng
            size = self.natural_size(v)
            if lo > 0:
                out.append(Apply("step", [Add([IndexValue(v), Const(lo - 0.5)], [1, -1])]))
            if size is not None and hi < size:
                out.append(Apply("step", [Add([Const(hi - 0.5), IndexValue(v)], [1, -1])]))
        return out

    def natural_size(self, v: str) -> int | None:
        for r in [Read(self.eq.lhs, self.eq.lhs_pos)] + reads(self.eq.rhs):
            t = self.a.tensors.get(r.tensor)
            for k, p in enumerate(r.pos):
                if isinstance(p.expr, IVar) and p.expr.name == v and t is not None and k < len(t.shape):
                    return t.shape[k]
        return None

    def add(self, eq: Equation) -> None:
        """Append a gradient equation, its nested summations given their own variable names."""
        lhs = {v for p in eq.lhs_pos for v in ix_vars(p.expr)}
        taken = all_vars(eq.rhs) | lhs
        eq.rhs = anchor_top_sums(uniquify(eq.rhs, taken), lhs)
        self.out.equations.append(eq)

    def declarable(self, t: str) -> bool:
        """Whether Grad_t can be declared with t's shape: t is not computed and has no symbolic domain."""
        info = self.a.tensors.get(t)
        if info is None:  # a tensor the gradient program adds (Norm_T_k): computed
            return False
        return not info.has_equations and info.virtual_axis is None and not any(
            self.a.domains[d].symbolic for d in info.domains)

    # ------------------------------------------------------------ the adjoint pushed down the tree
    def active(self, n: Node) -> bool:
        return any(r.tensor in self.relevant for r in reads(n)) and not isinstance(n, Not)

    def prop(self, n: Node, adj: Node, root: bool = False) -> None:
        if not self.active(n) or isinstance(n, NONDIFF):
            return
        if isinstance(n, Read):
            if n.boolean_syntax:
                return
            lhs_vars = free_vars(n)
            adj = prod(adj, *self.count(lhs_vars, adj))
            if set(lhs_vars) - set(free_vars(adj)) and not self.declarable(n.tensor):
                adj = prod(adj, Pow(n, Const(0.0)))  # (R[pos])^0 = 1 gives the missing indices their ranges
            extra = [v for v in free_vars(adj) if v not in lhs_vars]
            rhs = Reduce(tuple(extra), adj) if extra else adj
            self.add(Equation(-1, self.grad(n.tensor), n.pos, "+", rhs, False))
            return
        if isinstance(n, Reduce):
            saved = self.ctx
            self.ctx = saved | set(n.over)
            self.prop(n.operand, adj, root and not n.over)
            self.ctx = saved
            return
        if isinstance(n, Add):
            for t, s in zip(n.terms, n.signs):
                self.prop(t, adj if s > 0 else neg(adj))
            return
        if isinstance(n, Neg):
            self.prop(n.operand, neg(adj))
            return
        if isinstance(n, Join):
            for k, f in enumerate(n.factors):
                if not self.active(f):
                    continue
                others = [x for j, x in enumerate(n.factors) if j != k]
                odiv = [d for j, d in enumerate(n.divides) if j != k]
                if n.divides[k]:
                    a = neg(prod(adj, *others, f, f, divides=[False, *odiv, True, True]))
                else:
                    a = prod(adj, *others, divides=[False, *odiv])
                self.prop(f, a)
            return
        if isinstance(n, Pow):
            self.pow(n, adj)
            return
        if isinstance(n, Apply):
            self.apply(n, adj, root)
            return
        if isinstance(n, Concat):
            self.concat(n, adj)
            return
        raise _fail(f"cannot differentiate {type(n).__name__}", self.eq.span)

    def count(self, node_vars: list[str], adj: Node) -> list[Node]:
        """The adjoint of a node broadcast over summed variables it lacks is summed over them: those absent from
        the adjoint too contribute their range's size."""
        missing = self.ctx - set(node_vars) - set(free_vars(adj))
        size = 1
        for v in missing:
            lo, hi = self.eq.ranges[v]
            size *= hi - lo
        return [Const(float(size))] if size != 1 else []

    def descend(self, x: Node, expr: Node, what: str) -> None:
        """Store the adjoint `expr` of x (unless x is a plain read) and push it into x."""
        a = self.materialize(x, expr, what)
        saved = self.ctx
        if a is not expr:
            self.ctx = saved & set(free_vars(x))
        self.prop(x, a)
        self.ctx = saved

    def materialize(self, n: Node, adj_times_deriv: Node, what: str, norm_var: str | None = None) -> Node:
        """Store `adjoint * derivative` over n's free indices as a new tensor; return its read."""
        if isinstance(n, Read) and not n.boolean_syntax and all(isinstance(p.expr, IVar) for p in n.pos) \
                and not isinstance(adj_times_deriv, Reduce):
            return adj_times_deriv  # one read below: no need to store
        vs = free_vars(n)
        adj_times_deriv = prod(adj_times_deriv, *self.count(vs, adj_times_deriv))
        self.counter += 1
        name = self.fresh(f"Adj_{self.eq.lhs}_{self.counter}")
        self.emit(name, vs, adj_times_deriv, f"adjoint of {what} in {self.eq.lhs}'s equation", norm_var)
        return read_of(name, vs)

    def pow(self, n: Pow, adj: Node) -> None:
        b, e = n.base, n.exponent
        if self.active(e):
            d = prod(adj, n, Apply("log", [b]))
            self.descend(e, d, "an exponent")
        if not self.active(b):
            return
        if isinstance(e, Const):
            c = e.value
            deriv: Node = Const(0.0) if c == 0 else (Const(1.0) if c == 1 else (
                prod(Const(2.0), b) if c == 2 else prod(Const(c), Pow(b, Const(c - 1)))))
        else:
            deriv = prod(e, Pow(b, Add([e, Const(1.0)], [1, -1])))
        self.descend(b, prod(adj, deriv), "a power's base")

    def shortcut_ok(self, eq: Equation) -> bool:
        """Whether T[lhs] holds exactly this equation's right side, so f'(x) can be written with T itself:
        plain or shifted distinct variables on the left, no data, and other equations of T write elsewhere."""
        t = self.a.tensors.get(eq.lhs)
        if (t is not None and t.has_data) or eq.op != "+":
            return False
        seen = set()
        for p in eq.lhs_pos:
            e = p.expr
            if isinstance(e, IBin) and e.op in "+-" and isinstance(e.left, IVar) and isinstance(e.right, IConst):
                e = e.left
            if not isinstance(e, IVar) or e.name in seen:
                return False
            seen.add(e.name)
        if set(free_vars(eq.rhs)) - seen:
            return False
        for other in self.by_lhs[eq.lhs]:
            if other is not eq and not disjoint(eq, other):
                return False
        return True

    def apply(self, n: Apply, adj: Node, root: bool) -> None:
        x = n.args[0] if n.args else None
        if n.func not in DERIVATIVES and n.func not in ("softmax", "lnorm", "sig"):
            raise _fail(f"the function '{n.func}' has no derivative", self.eq.span,
                        "tensorlogic differentiates its built-in functions; a Python function has none")
        if len(n.args) > 1 and n.func != "sig":
            raise _fail(f"cannot differentiate '{n.func}' with {len(n.args)} arguments", self.eq.span)
        if len(n.args) == 2 and self.active(n.args[1]):
            raise _fail("cannot differentiate sig(x, T) with respect to its temperature T", self.eq.span)
        use_out = root and self.shortcut_ok(self.eq)
        y: Node = Read(self.eq.lhs, self.eq.lhs_pos) if use_out else n
        if n.func == "softmax":
            self.softmax(n, adj, y if use_out else None)
            return
        if n.func == "lnorm":
            self.lnorm(n, adj, y if use_out else None)
            return
        if n.func == "sig" and len(n.args) == 2:
            t = n.args[1]
            if isinstance(t, Const) and t.value == 0:
                s = Apply("sig", [x])
                deriv = prod(s, one_minus(s))  # the surrogate of step (see the module docstring)
            else:
                deriv = prod(y, one_minus(y), t, divides=[False, False, True])
        else:
            deriv = DERIVATIVES[n.func](x, y)
        self.descend(x, prod(adj, deriv), f"{n.func}'s argument")

    def softmax(self, n: Apply, adj: Node, y: Node | None) -> None:
        v = n.norm_var
        x = n.args[0]
        vs = free_vars(n)
        if y is None:
            self.counter += 1
            ys = self.fresh(f"Soft_{self.eq.lhs}_{self.counter}")
            self.emit(ys, vs, Apply("softmax", [x], norm_var=v), "the softmax, kept for its derivative", v)
            y = read_of(ys, vs)
        self.counter += 1
        a_name = self.fresh(f"Adj_{self.eq.lhs}_{self.counter}")
        self.emit(a_name, vs, prod(adj, *self.count(vs, adj)), "the adjoint reaching the softmax")
        saved, self.ctx = self.ctx, self.ctx & set(vs)
        rest = [u for u in vs if u != v]
        s_name = self.fresh(f"Dot_{self.eq.lhs}_{self.counter}")
        self.emit(s_name, rest, prod(read_of(a_name, vs), y), "sum over the normalised index of adjoint * softmax")
        d = prod(y, Add([read_of(a_name, vs), read_of(s_name, rest)], [1, -1]))
        self.descend(x, d, "softmax's argument")
        self.ctx = saved

    def lnorm(self, n: Apply, adj: Node, y: Node | None) -> None:
        v = n.norm_var
        x = n.args[0]
        vs = free_vars(n)
        rest = [u for u in vs if u != v]
        rest_pos = tuple(Pos(IVar(u)) for u in rest)
        self.counter += 1
        k = self.counter
        xc, mu, dev, var = (self.fresh(f"{s}_{self.eq.lhs}_{k}") for s in ("In", "Mean", "Dev", "Var"))
        # every averaged index occurs in a lone read or in two reads, so `avg=` projects it at the top
        self.emit(xc, vs, x, "layer norm's input and statistics, kept for its derivative")
        self.add(Equation(-1, mu, rest_pos, "avg", read_of(xc, vs), False))
        self.emit(dev, vs, Add([read_of(xc, vs), read_of(mu, rest)], [1, -1]))
        self.add(Equation(-1, var, rest_pos, "avg", prod(read_of(dev, vs), read_of(dev, vs)), False))
        sd = Apply("sqrt", [Add([read_of(var, rest), Const(1e-5)], [1, 1])])
        if y is None:
            y = prod(read_of(dev, vs), sd, divides=[False, True])
        a_name = self.fresh(f"Adj_{self.eq.lhs}_{k}")
        self.emit(a_name, vs, prod(adj, *self.count(vs, adj)), "the adjoint reaching the layer norm")
        saved, self.ctx = self.ctx, self.ctx & set(vs)
        ma = self.fresh(f"MeanAdj_{self.eq.lhs}_{k}")
        may = self.fresh(f"MeanAdjY_{self.eq.lhs}_{k}")
        self.add(Equation(-1, ma, rest_pos, "avg", read_of(a_name, vs), False))
        self.add(Equation(-1, may, rest_pos, "avg", prod(read_of(a_name, vs), y), False))
        num = Add([read_of(a_name, vs), read_of(ma, rest), prod(y, read_of(may, rest))], [1, -1, -1])
        self.descend(x, prod(num, sd, divides=[False, True]), "layer norm's argument")
        self.ctx = saved

    def concat(self, n: Concat, adj: Node) -> None:
        vs = free_vars(n)
        self.counter += 1
        a_name = self.fresh(f"Adj_{self.eq.lhs}_{self.counter}")
        self.emit(a_name, vs, prod(adj, *self.count(vs, adj)), "the adjoint reaching concat")
        saved, self.ctx = self.ctx, self.ctx & set(vs)
        sizes = []
        for m in n.merged:
            lo, hi = self.eq.ranges[m]
            if lo != 0:
                raise _fail(f"cannot differentiate concat over '{m}', whose range does not start at 0", n.span)
            sizes.append(hi)
        into = IVar(n.into)
        pos: list[Pos] = []
        stride = 1
        exprs: list = []
        for k in range(len(n.merged) - 1, -1, -1):
            e = into if stride == 1 else IBin("/", into, IConst(stride))
            if k > 0:
                e = IBin("%", e, IConst(sizes[k]))
            exprs.append(e)
            stride *= sizes[k]
        exprs.reverse()
        rest = [u for u in vs if u != n.into]
        self.counter += 1
        split = self.fresh(f"Split_{self.eq.lhs}_{self.counter}")
        pos = [Pos(IVar(u)) for u in rest] + [Pos(e) for e in exprs]
        self.out.comments[len(self.out.equations)] = "concat's adjoint laid back out over the merged indices"
        self.add(Equation(-1, split, tuple(pos), "+", read_of(a_name, vs), False))
        self.prop(n.operand, read_of(split, rest + list(n.merged)))
        self.ctx = saved


def _substitute(n: Node, subst: dict[int, Node]) -> Node:
    """n with the nodes whose ids are in `subst` replaced (a copy along the replaced paths)."""
    if id(n) in subst:
        return subst[id(n)]
    if isinstance(n, Join):
        return Join([_substitute(f, subst) for f in n.factors], list(n.divides))
    if isinstance(n, Add):
        return Add([_substitute(t, subst) for t in n.terms], list(n.signs))
    if isinstance(n, Neg):
        return Neg(_substitute(n.operand, subst))
    if isinstance(n, Pow):
        return Pow(_substitute(n.base, subst), _substitute(n.exponent, subst))
    if isinstance(n, Apply):
        return Apply(n.func, [_substitute(a, subst) for a in n.args], n.norm_var, n.span)
    if isinstance(n, Reduce):
        return Reduce(n.over, _substitute(n.operand, subst))
    if isinstance(n, Concat):
        return Concat(_substitute(n.operand, subst), n.merged, n.into, n.span)
    return n


def differentiate(a: Analyzed, outputs: list[str], wrt: list[str]) -> GradEquations:
    """The gradient equations of `outputs` with respect to `wrt` (see the module docstring)."""
    return Differentiator(a, outputs, wrt).run()
