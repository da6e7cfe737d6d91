"""The gradient program: a program's forward statements followed by its gradient equations, as `.tl` source.

`gradient_source` is what `tl grad FILE --wrt W` prints and what `Program.grad` runs: the forward text of
the program (its queries and file writes left out), then one gradient equation per tensor read on a path
from a `wrt` tensor to the output, then queries of the gradients. Running it is an ordinary run: the same
analysis, planner and backends evaluate the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..analysis.program import Analyzed
from ..syntax import ast
from .printer import Printer
from .reverse import GradEquations, differentiate


@dataclass
class GradientSource:
    """The gradient program's text and what it names."""

    text: str
    grads: GradEquations
    seed_inputs: dict[str, str]  # output tensor -> the gradient tensor to give as input (when not seeded)

    def grad_name(self, tensor: str) -> str | None:
        return self.grads.grad_of.get(tensor)


def forward_text(source: str, program: ast.Program, file: str) -> str:
    """The program's own text with its queries and file writes blanked out (line numbers are kept)."""
    lines = source.split("\n")
    for st in program.statements:
        if not isinstance(st, ast.Query | ast.FileWrite) or st.span is None or st.span.file != file:
            continue
        sp = st.span
        end_line, end_col = sp.end_line, sp.end_col
        if isinstance(st, ast.Query):  # the span ends before the "?": blank through it
            ln = lines[end_line - 1]
            q = ln.find("?", end_col - 1)
            if q >= 0:
                end_col = q + 2
        for k in range(sp.line, end_line + 1):
            ln = lines[k - 1]
            a = sp.col - 1 if k == sp.line else 0
            b = end_col - 1 if k == end_line else len(ln)
            lines[k - 1] = ln[:a] + " " * (b - a) + ln[b:]
    return "\n".join(lines)


def gradient_source(source: str, program: ast.Program, file: str, a: Analyzed, outputs: list[str],
                    wrt: list[str], seed_scalars: bool = True, queries: bool = True) -> GradientSource:
    """The gradient program of `outputs` with respect to `wrt`. A scalar output's gradient is seeded with
    `Grad_Loss = 1` when `seed_scalars`; other outputs' gradients are inputs (`seed_inputs`)."""
    grads = differentiate(a, outputs, wrt)
    origin = {g: t for t, g in grads.grad_of.items()}

    def label_of(tensor: str, k: int, value: int) -> str | None:
        t = origin.get(tensor, tensor)
        if t not in a.tensors or (t, k) not in a.slot_domain:
            return None
        dom = a.domain_of(t, k)
        if dom.symbolic and 0 <= value < len(dom.symbols):
            return dom.symbols[value]
        return None

    pr = Printer(label_of)
    out = [forward_text(source, program, file).rstrip(), "",
           f"# ---- gradient program: d({', '.join(outputs)}) / d({', '.join(wrt)}), by tensorlogic autodiff",
           "# Grad_T[...] is the gradient of the output with respect to T; Adj_T_k are adjoints of inner",
           "# expressions of T's equation, stored once so that each gradient is one join."]
    declared = {st.name for st in program.statements if isinstance(st, ast.TensorDecl)}
    for t in wrt:  # parameters the program leaves undefined (learnt implicitly) are declared here
        if a.tensors[t].learnable and not a.tensors[t].has_data and t not in declared:
            out.append(f"tensor {t} learnable")
    from .reverse import Differentiator

    for t, g in grads.grad_of.items():  # a data or parameter tensor's gradient has its shape
        if t not in outputs and t in a.tensors and a.tensors[t].shape and Differentiator.declarable(_Tensors(a), t):
            out.append(f"tensor {g}[{', '.join(str(n) for n in a.tensors[t].shape)}]")
    seed_inputs: dict[str, str] = {}
    for o in outputs:
        g = grads.seeds[o]
        if seed_scalars and not a.tensors[o].shape:
            out.append(f"{g} = 1")
        else:
            seed_inputs[o] = g
            out.append(f"# {g} (the gradient arriving at {o}) is given as input")
    for k, eq in enumerate(grads.equations):
        if k in grads.comments:
            out.append(f"# {grads.comments[k]}")
        out.append(pr.equation(eq))
    if queries:
        out.append("")
        for t in wrt:
            if t in grads.grad_of:
                out.append(f"{grads.grad_of[t]}?")
    return GradientSource("\n".join(out) + "\n", grads, seed_inputs)


class _Tensors:
    """Adapter: what `Differentiator.declarable` reads of an analysis."""

    def __init__(self, a: Analyzed):
        self.a = a
