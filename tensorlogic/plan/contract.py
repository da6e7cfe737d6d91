"""Contraction-order planning for multi-operand joins.

Every tensor-logic equation is a join of several operands (an einsum) followed by a projection onto the
output indices.  Evaluating a join of ``n`` operands in one go costs the product of the sizes of *all* its
index labels; evaluating it as ``n - 1`` pairwise contractions in a good order is usually exponentially
cheaper.  This module chooses that order.  It only plans: it never touches array data (no numpy), and the
runtime executes the resulting steps.

Conventions (shared with opt_einsum so numbers can be compared):

* ``path`` is in *linear* format: each entry ``(i, j)`` names two positions in the current operand list;
  both are removed and the result is appended at the end.  We always emit ``i < j``.
* A step's ``flops`` is the product of the sizes of every label involved in it, times 2 when any label is
  summed away in that step (a multiply and an add per term).  A lone operand (no pairwise step) costs the
  product of its label sizes.
* A label is summed in a step when it appears neither in the output nor in any other remaining operand.
  Labels that occur in only one operand and not in the output (single-operand reductions), and repeated
  labels inside one operand (diagonals), are folded into the first pairwise step that touches that operand:
  ``Step.inputs`` holds the operand's labels verbatim (repeats included), so the step is one einsum call.
* The last step produces exactly ``plan.output`` (same label order); intermediate results keep their labels
  in order of first appearance in the step's inputs.

Algorithms:

* ``effort="fast"`` (and any join with more than 12 operands): opt_einsum-style greedy.  Candidate pairs are
  operands sharing a label (all pairs once no two operands share one).  ``minimize="flops"`` picks the
  cheapest step, ties broken by the memory delta (result size minus the two input sizes);
  ``minimize="size"`` picks the smallest result.  A heap of candidates with lazy deletion keeps this at
  roughly O(n^2 log n): contracting ``i`` and ``j`` changes the cost of no pair that avoids both, so only
  pairs with the new operand are pushed.  Cheapest-step-first alone is myopic (with a batch label shared
  by every operand it happily takes cheap outer products that blow up later), so the greedy is also run
  ranking by memory delta (opt_einsum's default) and by result size, and the best of the three plans under
  the objective is kept.
* ``effort="high"`` with at most 12 operands: an exact dynamic program over subsets of operands, restricted to
  splits into two connected parts that share a label when the network is connected (all splits otherwise),
  minimising total flops (``minimize="flops"``) or the largest intermediate (``minimize="size"``, flops as
  tie-break).  The greedy plan is also computed and the better of the two is returned.

``memory_limit`` (elements) bounds the largest intermediate, the final result included.  When the chosen plan
exceeds it the other objective is tried (and, for at most 12 operands, the exact size-minimising plan);
if nothing fits, a ``ValueError`` reports the smallest largest-intermediate found.  Slicing is not done here.
"""

from __future__ import annotations

import heapq
import operator
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

__all__ = ["ContractionPlan", "Step", "contract_path", "parse_equation", "plan_join"]

_MINIMIZE = ("flops", "size")
_EFFORT = ("fast", "high")
_EXACT_MAX_OPERANDS = 12


@dataclass
class Step:
    """One pairwise contraction of a plan."""

    operands: tuple[int, int]
    """Positions of the two operands in the current operand list (linear path format, ``i < j``)."""
    inputs: tuple[tuple[str, ...], tuple[str, ...]]
    """Index labels of the two operands, as they stand (original operands keep repeated labels)."""
    output: tuple[str, ...]
    """Labels kept: those still needed by another remaining operand or by the final output."""
    summed: tuple[str, ...]
    """Labels summed away in this step."""
    flops: int
    """Product of the sizes of all labels involved, times 2 if any label is summed."""
    size: int
    """Number of elements of the step's result."""


@dataclass
class ContractionPlan:
    """An order of pairwise contractions for a join, with its cost."""

    path: list[tuple[int, int]]
    steps: list[Step]
    flops: int
    largest_intermediate: int
    inputs: list[tuple[str, ...]]
    output: tuple[str, ...]
    extra: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    """Free-form notes (e.g. which algorithm produced the plan); not part of the plan's identity."""

    @property
    def equation(self) -> str:
        """The join in einsum-like notation (multi-character labels are bracketed)."""
        return ",".join(_fmt(t) for t in self.inputs) + "->" + _fmt(self.output)

    def __str__(self) -> str:
        head = f"ContractionPlan {self.equation}  ({len(self.inputs)} operands, {len(self.steps)} steps)"
        if not self.steps:
            return (
                f"{head}\n  single operand: reduction {_fmt(self.inputs[0])} -> {_fmt(self.output) or '()'}\n"
                f"total flops: {self.flops:,}  largest intermediate: {self.largest_intermediate:,}"
            )
        rows = [("step", "operands", "labels in -> out", "summed", "flops", "size")]
        for k, st in enumerate(self.steps):
            rows.append(
                (
                    str(k),
                    f"({st.operands[0]}, {st.operands[1]})",
                    f"{_fmt(st.inputs[0])},{_fmt(st.inputs[1])} -> {_fmt(st.output) or '()'}",
                    _fmt(st.summed) or "-",
                    f"{st.flops:,}",
                    f"{st.size:,}",
                )
            )
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        right = (True, False, False, False, True, True)
        lines = [head]
        for r in rows:
            cells = [c.rjust(w) if rj else c.ljust(w) for c, w, rj in zip(r, widths, right)]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append(f"total flops: {self.flops:,}  largest intermediate: {self.largest_intermediate:,}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- helpers


def _fmt(labels: Iterable[str]) -> str:
    labels = tuple(labels)
    if all(len(lab) == 1 for lab in labels):
        return "".join(labels)
    return "[" + " ".join(labels) + "]"


def _prod(sizes: dict[str, int], labels: Iterable[str]) -> int:
    p = 1
    for lab in labels:
        p *= sizes[lab]
    return p


def _unique(labels: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(labels))


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


# ------------------------------------------------------------------------------------- plan construction


def _build_plan(
    inputs: list[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: dict[str, int],
    ssa_pairs: list[tuple[int, int]],
) -> ContractionPlan:
    """Turn a contraction order in SSA form (ids ``0..n-1`` are inputs, result of pair ``t`` is ``n + t``)
    into a linear path with per-step labels and costs."""
    n = len(inputs)
    out_set = set(output)
    labels: list[tuple[str, ...]] = list(inputs)
    counts: dict[str, int] = {}
    for labs in inputs:
        for lab in set(labs):
            counts[lab] = counts.get(lab, 0) + 1
    alive = list(range(n))
    path: list[tuple[int, int]] = []
    steps: list[Step] = []
    for t, (a, b) in enumerate(ssa_pairs):
        pa, pb = alive.index(a), alive.index(b)
        if pa > pb:
            a, b, pa, pb = b, a, pb, pa
        la, lb = labels[a], labels[b]
        sa, sb = set(la), set(lb)
        involved = _unique(la + lb)
        if t == len(ssa_pairs) - 1:
            kept = output
        else:
            kept = tuple(
                lab for lab in involved if lab in out_set or counts[lab] - (lab in sa) - (lab in sb) > 0
            )
        kept_set = set(kept)
        summed = tuple(lab for lab in involved if lab not in kept_set)
        step = Step(
            operands=(pa, pb),
            inputs=(la, lb),
            output=kept,
            summed=summed,
            flops=_prod(sizes, involved) * (2 if summed else 1),
            size=_prod(sizes, kept),
        )
        for lab in sa:
            counts[lab] -= 1
        for lab in sb:
            counts[lab] -= 1
        for lab in kept:
            counts[lab] += 1
        del alive[pb]
        del alive[pa]
        alive.append(n + t)
        labels.append(kept)
        path.append((pa, pb))
        steps.append(step)
    return ContractionPlan(
        path=path,
        steps=steps,
        flops=sum(s.flops for s in steps),
        largest_intermediate=max(s.size for s in steps),
        inputs=list(inputs),
        output=output,
    )


def _single_operand_plan(inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int]):
    return ContractionPlan(
        path=[],
        steps=[],
        flops=_prod(sizes, set(inputs[0])),
        largest_intermediate=_prod(sizes, output),
        inputs=list(inputs),
        output=output,
        extra={"algorithm": "single"},
    )


# ------------------------------------------------------------------------------------------------ greedy


def _greedy_ssa(
    inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int], rank: str
) -> list[tuple[int, int]]:
    """Greedy order.  ``rank`` orders candidate steps: ``"flops"`` by (step flops, size delta), ``"size"``
    by (result size, size delta, flops), ``"delta"`` by (size delta, flops) -- opt_einsum's default."""
    n = len(inputs)
    out_set = frozenset(output)
    labels: dict[int, frozenset[str]] = {i: frozenset(labs) for i, labs in enumerate(inputs)}
    osize: dict[int, int] = {i: _prod(sizes, labs) for i, labs in labels.items()}
    owners: dict[str, set[int]] = {}
    for i, labs in labels.items():
        for lab in labs:
            owners.setdefault(lab, set()).add(i)

    heap: list[tuple[tuple[int, ...], int, int, frozenset[str], int]] = []

    def push(i: int, j: int) -> None:
        if i > j:
            i, j = j, i
        li, lj = labels[i], labels[j]
        union = li | lj
        kept = frozenset(
            lab for lab in union if lab in out_set or len(owners[lab]) - (lab in li) - (lab in lj) > 0
        )
        size = _prod(sizes, kept)
        flops = _prod(sizes, union) * (2 if len(kept) != len(union) else 1)
        delta = size - osize[i] - osize[j]
        if rank == "flops":
            key: tuple[int, ...] = (flops, delta)
        elif rank == "size":
            key = (size, delta, flops)
        else:
            key = (delta, flops)
        heapq.heappush(heap, (key, i, j, kept, size))

    seen: set[tuple[int, int]] = set()
    for holders in owners.values():
        hs = sorted(holders)
        for x, i in enumerate(hs):
            for j in hs[x + 1 :]:
                if (i, j) not in seen:
                    seen.add((i, j))
                    push(i, j)
    del seen

    alive = set(range(n))
    pairs: list[tuple[int, int]] = []
    all_pairs = False
    while len(alive) > 1:
        while heap:
            _, i, j, kept, size = heapq.heappop(heap)
            if i in alive and j in alive:
                break
        else:
            # No two remaining operands share a label: every pairing is an outer product.
            all_pairs = True
            rest = sorted(alive)
            for x, i in enumerate(rest):
                for j in rest[x + 1 :]:
                    push(i, j)
            continue
        k = n + len(pairs)
        pairs.append((i, j))
        alive.discard(i)
        alive.discard(j)
        for old in (i, j):
            for lab in labels.pop(old):
                owners[lab].discard(old)
        labels[k] = kept
        osize[k] = size
        for lab in kept:
            owners[lab].add(k)
        alive.add(k)
        if all_pairs:
            neighbours: set[int] = alive - {k}
        else:
            neighbours = set()
            for lab in kept:
                neighbours |= owners[lab]
            neighbours.discard(k)
        for m in neighbours:
            push(m, k)
    return pairs


# -------------------------------------------------------------------------------------- exact (subset DP)


def _is_connected(masks: list[int]) -> bool:
    """Whether operands (given as label bitmasks) form one component under label sharing."""
    n = len(masks)
    reached = {0}
    frontier = [0]
    while frontier:
        i = frontier.pop()
        for j in range(n):
            if j not in reached and masks[i] & masks[j]:
                reached.add(j)
                frontier.append(j)
    return len(reached) == n


def _optimal_ssa(
    inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int], minimize: str
) -> list[tuple[int, int]]:
    n = len(inputs)
    all_labels = sorted({lab for labs in inputs for lab in labs})
    index = {lab: b for b, lab in enumerate(all_labels)}
    lsize = [sizes[lab] for lab in all_labels]
    raw = [0] * n
    for i, labs in enumerate(inputs):
        for lab in labs:
            raw[i] |= 1 << index[lab]
    owners = [0] * len(all_labels)
    for i, m in enumerate(raw):
        b = m
        while b:
            low = b & -b
            owners[low.bit_length() - 1] |= 1 << i
            b ^= low
    out_mask = 0
    for lab in output:
        out_mask |= 1 << index[lab]
    connected_only = _is_connected(raw)

    prod_cache: dict[int, int] = {}

    def prod(mask: int) -> int:
        p = prod_cache.get(mask)
        if p is None:
            p, b = 1, mask
            while b:
                low = b & -b
                p *= lsize[low.bit_length() - 1]
                b ^= low
            prod_cache[mask] = p
        return p

    full = (1 << n) - 1
    union = [0] * (full + 1)
    for s in range(1, full + 1):
        low = s & -s
        union[s] = union[s ^ low] | raw[low.bit_length() - 1]

    def kept_of(s: int) -> int:
        res = union[s] & out_mask
        b = union[s] & ~out_mask
        while b:
            low = b & -b
            if owners[low.bit_length() - 1] & ~s:
                res |= low
            b ^= low
        return res

    by_flops = minimize == "flops"
    # best[s] = (cost, split); cost = (total flops, largest) or (largest, total flops)
    best: dict[int, tuple[tuple[int, int], int]] = {}
    eff: dict[int, int] = {}
    for i in range(n):
        best[1 << i] = ((0, 0), 0)
        eff[1 << i] = raw[i]
    for s in range(1, full + 1):
        if not s & (s - 1):
            continue
        low = s & -s
        rest = s ^ low
        kept = -1
        size = 0
        choice: tuple[tuple[int, int], int] | None = None
        sub = rest
        while True:
            a = sub | low
            b = s ^ a
            if b:
                ba = best.get(a)
                bb = best.get(b) if ba is not None else None
                if bb is not None:
                    ea, eb = eff[a], eff[b]
                    if not connected_only or ea & eb:
                        if kept < 0:
                            kept = kept_of(s)
                            size = prod(kept)
                        inv = ea | eb
                        flops = prod(inv) * (2 if inv & ~kept else 1)
                        (ca0, ca1), (cb0, cb1) = ba[0], bb[0]
                        if by_flops:
                            cost = (ca0 + cb0 + flops, max(ca1, cb1, size))
                        else:
                            cost = (max(ca0, cb0, size), ca1 + cb1 + flops)
                        if choice is None or cost < choice[0]:
                            choice = (cost, a)
            if not sub:
                break
            sub = (sub - 1) & rest
        if choice is not None:
            best[s] = choice
            eff[s] = kept

    pairs: list[tuple[int, int]] = []

    def emit(s: int) -> int:
        if not s & (s - 1):
            return s.bit_length() - 1
        a = best[s][1]
        x = emit(a)
        y = emit(s ^ a)
        pairs.append((x, y))
        return n + len(pairs) - 1

    emit(full)
    return pairs


# ---------------------------------------------------------------------------------------------- drivers


def _score(plan: ContractionPlan, minimize: str) -> tuple[int, int]:
    if minimize == "flops":
        return (plan.flops, plan.largest_intermediate)
    return (plan.largest_intermediate, plan.flops)


def _plan(
    inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int], minimize: str, effort: str
) -> ContractionPlan:
    if len(inputs) == 1:
        return _single_operand_plan(inputs, output, sizes)
    plan: ContractionPlan | None = None
    for rank in (minimize, "delta", "size" if minimize == "flops" else "flops"):
        candidate = _build_plan(inputs, output, sizes, _greedy_ssa(inputs, output, sizes, rank))
        candidate.extra["algorithm"] = f"greedy ({rank})"
        if plan is None or _score(candidate, minimize) < _score(plan, minimize):
            plan = candidate
    assert plan is not None
    if effort == "high" and len(inputs) <= _EXACT_MAX_OPERANDS:
        exact = _build_plan(inputs, output, sizes, _optimal_ssa(inputs, output, sizes, minimize))
        exact.extra["algorithm"] = "optimal"
        if _score(exact, minimize) <= _score(plan, minimize):
            plan = exact
    plan.extra["minimize"] = minimize
    return plan


def _validate_join(
    inputs: Sequence[Sequence[str]], output: Sequence[str], sizes: dict[str, int]
) -> tuple[list[tuple[str, ...]], tuple[str, ...], dict[str, int]]:
    if isinstance(inputs, str) or not isinstance(inputs, Sequence):
        raise TypeError("inputs must be a list of label tuples")
    if not inputs:
        raise ValueError("a join needs at least one operand")
    terms: list[tuple[str, ...]] = []
    for k, term in enumerate(inputs):
        if isinstance(term, str):
            raise TypeError(f"operand {k}: labels must be a tuple of strings, got the string {term!r}")
        term = tuple(term)
        for lab in term:
            if not isinstance(lab, str):
                raise TypeError(f"operand {k}: label {lab!r} is not a string")
        terms.append(term)
    if isinstance(output, str):
        raise TypeError(f"output must be a tuple of strings, got the string {output!r}")
    out = tuple(output)
    present = {lab for term in terms for lab in term}
    clean: dict[str, int] = {}
    for lab in sorted(present):
        if lab not in sizes:
            raise ValueError(f"no size given for label {lab!r}")
        try:
            dim = operator.index(sizes[lab])
        except TypeError:
            raise TypeError(f"size of label {lab!r} must be an integer, got {sizes[lab]!r}") from None
        if dim < 0:
            raise ValueError(f"size of label {lab!r} must be non-negative, got {dim}")
        clean[lab] = dim
    seen: set[str] = set()
    for lab in out:
        if not isinstance(lab, str):
            raise TypeError(f"output label {lab!r} is not a string")
        if lab in seen:
            raise ValueError(f"output label {lab!r} appears more than once")
        if lab not in present:
            raise ValueError(f"output label {lab!r} does not appear in any operand")
        seen.add(lab)
    return terms, out, clean


def plan_join(
    inputs: list[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: dict[str, int],
    minimize: str = "flops",
    memory_limit: int | None = None,
    effort: str = "fast",
) -> ContractionPlan:
    """Plan the join ``output = sum over other labels of prod(inputs)`` as pairwise contractions.

    Labels are arbitrary strings (index variable names like ``"p'"`` or ``"dx"``), any number of them; a label
    may repeat inside one operand (a diagonal).  ``sizes`` maps every label to its extent.  ``minimize`` is
    ``"flops"`` or ``"size"`` (largest intermediate); ``effort="high"`` runs the exact subset DP for joins of
    at most 12 operands.  ``memory_limit`` bounds the largest intermediate in elements; ``ValueError`` if no
    plan found fits (slicing is not implemented here).
    """
    _check_choice("minimize", minimize, _MINIMIZE)
    _check_choice("effort", effort, _EFFORT)
    terms, out, clean = _validate_join(inputs, output, sizes)
    plan = _plan(terms, out, clean, minimize, effort)
    if memory_limit is None or plan.largest_intermediate <= memory_limit:
        return plan
    other = "size" if minimize == "flops" else "flops"
    candidates = [plan, _plan(terms, out, clean, other, effort)]
    if effort == "fast" and 1 < len(terms) <= _EXACT_MAX_OPERANDS:
        candidates.append(_plan(terms, out, clean, "size", "high"))
    fitting = [p for p in candidates if p.largest_intermediate <= memory_limit]
    if fitting:
        return min(fitting, key=lambda p: _score(p, minimize))
    smallest = min(p.largest_intermediate for p in candidates)
    raise ValueError(
        f"join {plan.equation} cannot be planned within memory_limit={memory_limit:,} elements: the smallest "
        f"largest intermediate found is {smallest:,} elements (the output alone has "
        f"{_prod(clean, out):,}); slicing is not implemented in the contraction planner"
    )


# ----------------------------------------------------------------------------------- einsum-string entry


def parse_equation(equation: str) -> tuple[list[str], str]:
    """Split numpy einsum notation into operand terms and the output term.

    Only ASCII letters are labels; whitespace is ignored; ellipses are not supported.  Without ``->`` the
    output is, as in numpy, the labels occurring exactly once in the whole equation, sorted.
    """
    if not isinstance(equation, str):
        raise TypeError(f"equation must be a string, got {type(equation).__name__}")
    eq = "".join(equation.split())
    if "." in eq:
        raise ValueError(f"einsum equation {equation!r}: ellipsis ('...') broadcasting is not supported")
    if eq.count("->") > 1:
        raise ValueError(f"einsum equation {equation!r} has more than one '->'")
    if "->" in eq:
        lhs, out = eq.split("->")
        explicit = True
    else:
        lhs, out = eq, ""
        explicit = False
    terms = lhs.split(",")
    for k, term in enumerate(terms):
        for ch in term:
            if ch not in string.ascii_letters:
                raise ValueError(
                    f"einsum equation {equation!r}: operand {k} ({term!r}) contains {ch!r}; labels must be "
                    "ASCII letters (use plan_join for arbitrary label names)"
                )
    if explicit:
        for ch in out:
            if ch not in string.ascii_letters:
                raise ValueError(f"einsum equation {equation!r}: output contains {ch!r}, not an ASCII letter")
        if len(set(out)) != len(out):
            dup = next(ch for ch in out if out.count(ch) > 1)
            raise ValueError(f"einsum equation {equation!r}: output label {dup!r} appears more than once")
        present = set(lhs) - {","}
        for ch in out:
            if ch not in present:
                raise ValueError(
                    f"einsum equation {equation!r}: output label {ch!r} does not appear in any operand"
                )
    else:
        flat = lhs.replace(",", "")
        out = "".join(sorted(ch for ch in set(flat) if flat.count(ch) == 1))
    return terms, out


def contract_path(
    equation: str,
    shapes: list[tuple[int, ...]],
    minimize: str = "flops",
    memory_limit: int | None = None,
    effort: str = "fast",
) -> ContractionPlan:
    """Plan an einsum given in numpy notation (``'ab,bc->ac'``, or implicit ``'ab,bc'``) for operand shapes.

    Checks that the shapes match the equation (number of operands, dimensions per operand, one extent per
    label) and raises ``ValueError`` naming the operand and label otherwise.  See :func:`plan_join`.
    """
    terms, out = parse_equation(equation)
    shapes = list(shapes)
    if len(shapes) != len(terms):
        raise ValueError(
            f"einsum equation {equation!r} has {len(terms)} operand(s) but {len(shapes)} shape(s) were given"
        )
    sizes: dict[str, int] = {}
    origin: dict[str, tuple[int, str]] = {}
    for k, (term, shape) in enumerate(zip(terms, shapes)):
        shape = tuple(shape)
        if len(shape) != len(term):
            raise ValueError(
                f"operand {k} ({term!r}) has {len(shape)} dimension(s) {shape} but the equation gives it "
                f"{len(term)} label(s)"
            )
        for lab, dim in zip(term, shape):
            try:
                dim = operator.index(dim)
            except TypeError:
                raise TypeError(f"operand {k} ({term!r}): extent of {lab!r} is not an integer") from None
            if dim < 0:
                raise ValueError(f"operand {k} ({term!r}): label {lab!r} has negative extent {dim}")
            if lab in sizes and sizes[lab] != dim:
                k0, term0 = origin[lab]
                where = "elsewhere in the same operand" if k0 == k else f"operand {k0} ({term0!r})"
                raise ValueError(
                    f"operand {k} ({term!r}): label {lab!r} has size {dim}, but {where} gives it size "
                    f"{sizes[lab]}"
                )
            sizes[lab] = dim
            origin.setdefault(lab, (k, term))
    return plan_join([tuple(t) for t in terms], tuple(out), sizes, minimize, memory_limit, effort)
