"""The executor's compiled steps: a layered recursion as a flat list, and a stratum's heads.

`layer_steps` turns a layer schedule (ir/layered.py) into the flat list of its evaluations (tensor,
equation, ranges with the layer fixed), each compiled on first use; `uninitialised` finds the tensors whose
every cell one of them assigns (they need no zeros to start from). `HeadStep` is one head of a non-recursive
stratum with `Executor.combine` compiled (its data, each equation's contribution, their projection).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from ..ir.nodes import Equation
from .compiled import CompiledEquation, compile_equation, compiled_for
from .dense import finish_head, fold_contribution


class LayerStep:
    """One evaluation of a layered recursion (`Executor.run_layers`): the tensor, the equation, its ranges
    with the layer fixed, and the equation compiled at those ranges (on first use, once per analysis)."""

    __slots__ = ("tensor", "equation", "ranges", "stratum", "alone", "_code")
    _UNSET = object()

    def __init__(self, tensor: str, equation: Equation, ranges: dict, stratum: frozenset):
        self.tensor, self.equation, self.ranges, self.stratum = tensor, equation, ranges, stratum
        self.alone = False  # the only evaluation writing this tensor's layer
        self._code = LayerStep._UNSET

    def code(self, ex) -> CompiledEquation | None:
        if self._code is LayerStep._UNSET:
            # a tensor without data starts as zeros (Executor.initial): a layer written by one evaluation only
            # is still zero when that evaluation runs
            zero = self.alone and self.tensor not in ex.prog.data
            self._code = compile_equation(ex, self.equation, self.ranges, self.stratum, zero)
        return self._code


def uninitialised(steps: list[LayerStep], ex) -> frozenset | None:
    """The tensors of a layered stratum that need no zeros to start from: every cell is assigned by exactly one
    compiled evaluation (each the only writer of its layer, all regions together tiling the tensor). Known once
    every evaluation has been compiled (after the first run); until then None."""
    by_tensor: dict[str, list[LayerStep]] = {}
    for s in steps:
        if s._code is LayerStep._UNSET:
            return None
        by_tensor.setdefault(s.tensor, []).append(s)
    out = set()
    for t, ss in by_tensor.items():
        if t in ex.prog.data or not all(s._code is not None and s._code.region is not None for s in ss):
            continue
        covered = np.zeros(ex.prog.tensors[t].storage_shape, dtype=bool)
        ok = True
        for s in ss:
            region = s._code.region
            if covered[region].any():
                ok = False
                break
            covered[region] = True
        if ok and covered.all():
            out.add(t)
    return frozenset(out)


def layer_steps(sched, stratum: frozenset) -> list[LayerStep]:
    """A layer schedule (ir/layered.py) as the flat list of its evaluations, in order."""
    out, written = [], []
    layers = range(sched.layers) if sched.direction > 0 else range(sched.layers - 1, -1, -1)
    for layer in layers:
        for t in sched.order:
            for step in sched.steps[t]:
                e = step.equation
                if step.var is None:
                    if step.offset != layer:
                        continue
                    rng = e.ranges
                else:
                    v = layer - step.offset
                    lo, hi = e.ranges.get(step.var, (0, 0))
                    if not lo <= v < hi:
                        continue
                    rng = dict(e.ranges)
                    rng[step.var] = (v, v + 1)
                out.append(LayerStep(t, e, rng, stratum))
                written.append((t, layer))  # (each evaluation writes its tensor's layer `layer`)
    writers = Counter(written)
    for s, w in zip(out, written):
        s.alone = writers[w] == 1
    return out


class HeadStep:
    """One head of a non-recursive stratum (`Executor.run_stratum`): `Executor.combine` compiled, i.e. its
    data, each equation's contribution and their projection (`=`, `max=`, `min=`, `avg=`) into one closure."""

    __slots__ = ("tensor", "equations", "_code")
    _UNSET = object()

    def __init__(self, tensor: str, equations: list[Equation]):
        self.tensor, self.equations = tensor, equations
        self._code = HeadStep._UNSET

    def code(self, ex) -> Callable | None:
        """The compiled head, or None (interpreted). Built once the interpreter has run the head once (which
        decides each equation's relational count form)."""
        if self._code is HeadStep._UNSET:
            if not all(("count", e.id) in ex._strata for e in self.equations):
                return None  # not yet: the interpreter runs this head first
            self._code = compile_head(ex, self.tensor, self.equations)
        return self._code


def compile_head(ex, name: str, eqs: list[Equation]) -> Callable | None:
    """`Executor.combine(name, eqs, ex.read_current)` as a closure `f(ex) -> value`, or None."""
    t = ex.prog.tensors[name]
    if not eqs or t.sparse or len({e.op for e in eqs}) > 1:
        return None
    if t.boolean and all(ex.forms.get(e.id) is not None for e in eqs):
        return None  # a relational head
    if any(ex._strata.get(("count", e.id)) is not None for e in eqs):
        return None
    codes = [compiled_for(ex, e) for e in eqs]
    if not all(codes):
        return None
    op = eqs[0].op
    has_data = name in ex.prog.data
    boolean = t.boolean
    if len(codes) == 1 and op == "+" and not has_data:
        code = codes[0]
        if boolean:
            return lambda ex: np.asarray(code(ex)[0] > 0, dtype=np.float64)
        return lambda ex: code(ex)[0]

    def head(ex):
        base = ex.to_array(ex.initial_array(name)) if has_data else None
        acc, aux = None, None
        for code in codes:
            a, x = code(ex)
            acc, aux = fold_contribution(acc, aux, a, x, op)
        return finish_head(acc, aux, base, op, boolean)

    return head
