"""`set history = 1`: virtual indices keep every step, so a recurrence can be differentiated (BPTT).

A virtual index (`X[i,*t+1] = sig(W[i,j] X[j,*t] + V[i,j] U[j,t])`) keeps only the current state of `X`.
Backpropagation through time needs every state, so a gradient program turns the virtual index into an
ordinary one: `X[i,t+1] = ...` stores the whole sequence (a layered recursion over t), the initial state
(`X = [0, 0, 0]`, given as data) becomes `X_Init` and the equation `X[i,0] = X_Init[i]`, and a read of the
final state (`X[i, T]`) reads position T of the sequence, which is the same value. Gradient programs of
programs with virtual indices carry this setting (see `autodiff.program`).
"""

from __future__ import annotations

import dataclasses

from ..ir.lower import Lowered
from ..ir.nodes import Equation, IConst, IVar, Node, Pos, QueryIR, Read, walk
from ..syntax import ast


def _plain(pos: tuple[Pos, ...]) -> tuple[Pos, ...]:
    return tuple(Pos(p.expr, False, p.normalized, p.span) if p.virtual else p for p in pos)


def _strip(n: Node) -> None:
    for m in walk(n):
        if isinstance(m, Read) and any(p.virtual for p in m.pos):
            m.pos = _plain(m.pos)


def state_tensors(low: Lowered) -> dict[str, int]:
    """Tensors written at a virtual index, with that index's position."""
    out: dict[str, int] = {}
    for eq in low.equations:
        for k, p in enumerate(eq.lhs_pos):
            if p.virtual:
                out[eq.lhs] = k
    return out


def init_name(state: str) -> str:
    return f"{state}_Init"


def keep_history(low: Lowered) -> dict[str, str]:
    """Make every virtual index ordinary (in place). Returns the renames of the states' initial data."""
    states = state_tensors(low)
    renames = {s: init_name(s) for s in states}
    next_id = max((eq.id for eq in low.equations), default=0) + 1
    for eq in low.equations:
        eq.lhs_pos = _plain(eq.lhs_pos)
        eq.virtual_var = None
        _strip(eq.rhs)
    for q in low.queries:
        _strip(q.expr)
    data = []
    for st in low.data:
        ref = getattr(st, "lhs", None) or getattr(st, "atom", None)
        if ref is not None and ref.name in states:
            new_ref = dataclasses.replace(ref, name=renames[ref.name], indices=_drop_axis(ref, states[ref.name]))
            st = dataclasses.replace(st, **({"lhs": new_ref} if hasattr(st, "lhs") else {"atom": new_ref}))
        data.append(st)
    low.data = data
    for s, axis in states.items():  # X[h0, .., 0, ..] = X_Init[h0, ..]
        arity = next(len(eq.lhs_pos) for eq in low.equations if eq.lhs == s)
        vs = [f"h{k}" for k in range(arity) if k != axis]
        it = iter(vs)
        lhs = tuple(Pos(IConst(0)) if k == axis else Pos(IVar(next(it))) for k in range(arity))
        rhs = Read(renames[s], tuple(Pos(IVar(v)) for v in vs))
        low.equations.append(Equation(next_id, s, lhs, "+", rhs, False, text=f"{s}[..0..] = {renames[s]}[..]"))
        next_id += 1
    return renames


def _drop_axis(ref: ast.Ref, axis: int) -> tuple | None:
    """A fact `X(1, *0)`-style reference keeps its other indices (facts of states are rare; literals have none)."""
    if not ref.indices or len(ref.indices) <= axis:
        return ref.indices
    return tuple(p for k, p in enumerate(ref.indices) if k != axis)


__all__ = ["keep_history", "state_tensors", "init_name", "QueryIR"]
