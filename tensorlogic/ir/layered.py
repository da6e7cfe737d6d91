"""Layered recursion: numeric recursive strata that advance along one index, evaluated layer by layer.

`X[i,j] = sig(W[i,j,k] X[i-1,k])`, a transformer's `Stream[b+1,p,d] = ... Stream[b,p,d]` or a GNN's
`Emb[n,l+1,d] = ... Emb[n,l,d]` are recursive only through one index (the layer) with a shift of one. Their
fixpoint is reached by computing layer 0, then layer 1 from it, and so on, each equation once per layer,
instead of recomputing every layer in every round. `layer_schedule` recognises such a stratum (every
recursive read uses the equation's layer variable at the tensor's layer position, shifted by 0 or 1, and
the unshifted reads are acyclic). A gradient program's adjoint recursion runs the other way
(`Grad_X[i-1,k] = ... Grad_X[i,j]`): it is scheduled from the last layer down. The executor falls back
to plain iteration when it returns None.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .graph import Stratum
from .nodes import Equation, IBin, IConst, IExpr, IVar, reads


def _shift(e: IExpr) -> tuple[str | None, int] | None:
    """`v` / `v+c` / `v-c` as (v, c); a constant c as (None, c)."""
    if isinstance(e, IConst):
        return None, e.value
    if isinstance(e, IVar):
        return e.name, 0
    if isinstance(e, IBin) and e.op in "+-" and isinstance(e.left, IVar) and isinstance(e.right, IConst):
        return e.left.name, e.right.value if e.op == "+" else -e.right.value
    return None


@dataclass
class LayerStep:
    """One equation in a layered stratum: its layer variable and offset on the left (None var: a constant
    layer, e.g. `Stream[0,...]`)."""

    equation: Equation
    var: str | None
    offset: int


@dataclass
class LayerSchedule:
    order: list[str]  # tensors in the order they are computed within a layer
    steps: dict[str, list[LayerStep]]
    position: dict[str, int]  # each tensor's layer position
    layers: int  # number of layers to compute
    direction: int = 1  # +1: layer 0 first (a forward pass); -1: the last layer first (its backward pass)


def layer_schedule(st: Stratum, tensors, is_boolean) -> LayerSchedule | None:
    """A layer-by-layer schedule for the stratum, or None when it is not a layered recursion."""
    names = set(st.tensors)
    if any(is_boolean(t) for t in names) or any(e.virtual_var for e in st.equations):
        return None
    for e in st.equations:  # max=/min=/avg= heads: one equation, no data, so each layer's cells are final
        if e.op != "+" and (tensors[e.lhs].has_data or sum(x.lhs == e.lhs for x in st.equations) > 1):
            return None
    position: dict[str, int] = {}
    direction = 1
    # seed: an equation that reads the recursion one layer back (`X[i-1,k]` for `X[i,j]`, `S[b]` for `S[b+1]`)
    for e in st.equations:
        for k, p in enumerate(e.lhs_pos):
            sh = _shift(p.expr)
            if sh is None or sh[0] is None:
                continue
            for r in reads(e.rhs):
                if r.tensor not in names:
                    continue
                for k2, p2 in enumerate(r.pos):
                    sh2 = _shift(p2.expr)
                    if sh2 is not None and sh2[0] == sh[0] and abs(sh[1] - sh2[1]) == 1:
                        position.setdefault(e.lhs, k)
                        position.setdefault(r.tensor, k2)
                        direction = sh[1] - sh2[1]
        if position:
            break
    if not position:
        return None
    changed = True
    while changed:
        changed = False
        for e in st.equations:
            if e.lhs not in position:
                continue
            sh = _shift(e.lhs_pos[position[e.lhs]].expr)
            if sh is None or sh[0] is None:
                continue
            var = sh[0]
            for r in reads(e.rhs):
                if r.tensor in names and r.tensor not in position:
                    ks = [k for k, p in enumerate(r.pos) if (_shift(p.expr) or (None, 0))[0] == var]
                    if len(ks) != 1:
                        return None
                    position[r.tensor] = ks[0]
                    changed = True
        for e in st.equations:  # heads reached only through what they read
            if e.lhs in position:
                continue
            for r in reads(e.rhs):
                if r.tensor in position:
                    sh = _shift(r.pos[position[r.tensor]].expr)
                    ks = [k for k, p in enumerate(e.lhs_pos)
                          if sh and sh[0] and (_shift(p.expr) or (None,))[0] == sh[0]]
                    if len(ks) == 1:
                        position[e.lhs] = ks[0]
                        changed = True
                        break
    if set(position) != names:
        return None
    steps: dict[str, list[LayerStep]] = {t: [] for t in names}
    same_layer = nx.DiGraph()
    same_layer.add_nodes_from(names)
    for e in st.equations:
        sh = _shift(e.lhs_pos[position[e.lhs]].expr)
        if sh is None:
            return None
        var, off = sh
        for r in reads(e.rhs):
            if r.tensor not in names:
                continue
            rs = _shift(r.pos[position[r.tensor]].expr)
            if var is None or rs is None or rs[0] != var:
                return None  # a constant layer must not read the recursion; reads must use the layer variable
            delta = off - rs[1]
            if delta == 0:
                same_layer.add_edge(r.tensor, e.lhs)
            elif delta != direction:
                return None
        steps[e.lhs].append(LayerStep(e, var, off))
    if not nx.is_directed_acyclic_graph(same_layer):
        return None
    order = list(nx.lexicographical_topological_sort(same_layer, key=lambda t: st.tensors.index(t)))
    layers = max(tensors[t].shape[position[t]] for t in names)
    return LayerSchedule(order, steps, position, layers, direction)
