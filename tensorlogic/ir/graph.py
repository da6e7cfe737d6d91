"""The dataflow graph of a program (networkx) and its strata.

Nodes are tensors (`("T", name)`) and equations (`("E", id)`); edges run from each tensor an equation reads
to the equation, and from the equation to the tensor it writes. Strata are the strongly connected
components of the tensor dependency graph, in topological order; a stratum is recursive when its tensors
depend on themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from .nodes import Equation, Not, equation_str, reads, walk


@dataclass
class Stratum:
    """Tensors computed together; `recursive` when they depend on themselves."""

    tensors: list[str]
    equations: list[Equation]
    recursive: bool
    negated_inputs: set[str] = field(default_factory=set)


def build_graph(equations: list[Equation], tensors: list[str] | None = None) -> nx.DiGraph:
    """Bipartite dataflow graph of tensors and equations."""
    g = nx.DiGraph()
    for t in tensors or ():
        g.add_node(("T", t), kind="tensor", label=t)
    for eq in equations:
        g.add_node(("E", eq.id), kind="equation", label=equation_str(eq), equation=eq)
        g.add_node(("T", eq.lhs), kind="tensor", label=eq.lhs)
        g.add_edge(("E", eq.id), ("T", eq.lhs))
        for r in reads(eq.rhs):
            g.add_node(("T", r.tensor), kind="tensor", label=r.tensor)
            g.add_edge(("T", r.tensor), ("E", eq.id))
    return g


def dependency_graph(equations: list[Equation]) -> nx.DiGraph:
    """Tensor-to-tensor dependencies: an edge a -> b when an equation for b reads a."""
    g = nx.DiGraph()
    for eq in equations:
        g.add_node(eq.lhs)
        for r in reads(eq.rhs):
            g.add_edge(r.tensor, eq.lhs)
    return g


def strata(equations: list[Equation], needed: set[str] | None = None) -> list[Stratum]:
    """Strongly connected components in dependency order, restricted to what `needed` depends on."""
    g = dependency_graph(equations)
    if needed is not None:
        keep = set()
        for t in needed:
            if t in g:
                keep |= nx.ancestors(g, t) | {t}
        g = g.subgraph(keep).copy()
    cond = nx.condensation(g)
    by_lhs: dict[str, list[Equation]] = {}
    for eq in equations:
        by_lhs.setdefault(eq.lhs, []).append(eq)
    out = []
    for c in nx.topological_sort(cond):
        members = sorted(cond.nodes[c]["members"], key=lambda t: _first_eq(by_lhs, t))
        eqs = [e for t in members for e in by_lhs.get(t, [])]
        if not eqs:
            continue
        eqs.sort(key=lambda e: e.id)
        recursive = len(members) > 1 or g.has_edge(members[0], members[0])
        negated = set()
        for e in eqs:
            for m in walk(e.rhs):
                if isinstance(m, Not):
                    negated.add(m.operand.tensor)
        out.append(Stratum(members, eqs, recursive, negated))
    return out


def _first_eq(by_lhs: dict[str, list[Equation]], t: str) -> int:
    eqs = by_lhs.get(t)
    return min(e.id for e in eqs) if eqs else -1


def to_dot(g: nx.DiGraph, title: str = "tensorlogic") -> str:
    """DOT text: tensors as ellipses, equations as boxes labelled with the equation."""
    lines = [f'digraph "{title}" {{', "  rankdir=LR;", '  node [fontname="Helvetica"];']
    ids = {n: f"n{k}" for k, n in enumerate(g.nodes)}
    for n, data in g.nodes(data=True):
        label = str(data.get("label", n)).replace("\\", "\\\\").replace('"', '\\"')
        shape = "box" if data.get("kind") == "equation" else "ellipse"
        lines.append(f'  {ids[n]} [label="{label}", shape={shape}];')
    for a, b in g.edges:
        lines.append(f"  {ids[a]} -> {ids[b]};")
    lines.append("}")
    return "\n".join(lines) + "\n"
