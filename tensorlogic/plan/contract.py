"""Contraction-order planning for multi-operand joins.

Every tensor-logic equation is a join of several operands (an einsum) followed by a projection onto the
output indices.  Evaluating a join of ``n`` operands in one go costs the product of the sizes of *all* its
index labels; evaluating it as ``n - 1`` pairwise contractions in a good order is usually exponentially
cheaper.  This module chooses that order.  It only plans: it never touches array data (no numpy, standard
library only), and the runtime executes the resulting steps.

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

Algorithms (modules ``paths_*`` next to this one; ``paths_search`` says which run when):

* exact subset DP over operand subsets (hyperedges and output labels handled by the kept-label rule),
  exhaustive with outer products up to 8 operands in fast mode and 12 in high mode, restricted to
  connected splits beyond that while a work budget allows (``paths_exact``);
* exact interval DP for chain networks of any length, the generalised matrix-chain algorithm
  (``paths_chain``);
* greedy orders -- opt_einsum's own ``greedy`` and ``branch-1``, ours ranked by flops, memory delta or size,
  Boltzmann-sampled random restarts seeded by ``seed``, and bucket (variable) elimination, the classic
  order for graphical models (``paths_greedy``);
* joins whose parts are linked only by output or batch labels are planned part by part (``paths_search``);
* subtree reconfiguration: small subtrees of the best tree replaced by their exact optimum until nothing
  improves (``paths_reconf``);
* slicing when no order fits ``memory_limit`` (``slicing``).

Objectives (``minimize``): ``"flops"`` (total flops, then largest intermediate), ``"size"`` (largest
intermediate, then flops), ``"combo"`` / ``"combo-A"`` (sum over steps of ``flops + A * result size``,
``A = 64`` by default, then largest intermediate).  With ``nnz`` (estimated stored tuples per operand, for
sparse operands) steps are ranked by estimated join result size as a database optimiser does, plans are
compared by the sum of estimated intermediate tuples, and every step records ``estimated_tuples``.

``memory_limit`` (elements) bounds the largest intermediate, the final result included.  When the chosen plan
exceeds it, a size-minimising search is tried; if no order fits, the join is *sliced*: some labels are fixed
one value at a time (see ``slicing``); the plan then records ``sliced`` and ``slice_count``, its steps are
those of one slice (the sliced labels are absent from them), and ``flops`` is the total over all slices.
"""

from __future__ import annotations

import contextlib
import gc
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .paths_common import Network, Objective, Tree, parse_minimize
from .paths_greedy import TupleEstimator
from .paths_search import estimate_tuples, search
from .slicing import choose_slices

__all__ = ["ContractionPlan", "Step", "contract_path", "parse_equation", "plan_join"]

_EFFORT = ("fast", "high")
_SEPARATORS = frozenset(",->.")


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
    """Product of the sizes of all labels involved, times 2 if any label is summed (per slice)."""
    size: int
    """Number of elements of the step's result (per slice)."""
    estimated_tuples: int | None = None
    """Estimated number of stored tuples of the result, when the join was planned with ``nnz``."""


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
    sliced: tuple[str, ...] = ()
    """Labels the join is sliced over (empty: not sliced).  Steps then describe one slice, without them."""
    slice_count: int = 1
    """Number of slices (product of the sliced labels' extents); ``flops`` is the total over all slices."""

    @property
    def equation(self) -> str:
        """The join in einsum-like notation (multi-character labels are bracketed)."""
        return ",".join(_fmt(t) for t in self.inputs) + "->" + _fmt(self.output)

    @property
    def estimated_tuples(self) -> int | None:
        """Sum of the steps' estimated result tuples (``None`` unless planned with ``nnz``)."""
        ests = [s.estimated_tuples for s in self.steps]
        if not ests or any(e is None for e in ests):
            return None
        return sum(ests)  # type: ignore[arg-type]

    def __str__(self) -> str:
        head = f"ContractionPlan {self.equation}  ({len(self.inputs)} operands, {len(self.steps)} steps)"
        algorithm = self.extra.get("algorithm")
        if algorithm:
            head += f"  [{algorithm}]"
        total = f"total flops: {self.flops:,}  largest intermediate: {self.largest_intermediate:,}"
        if self.sliced:
            total += f" (per slice; {self.slice_count:,} slices)"
        if not self.steps:
            return (
                f"{head}\n  single operand: reduction {_fmt(self.inputs[0])} -> {_fmt(self.output) or '()'}\n" + total
            )
        sparse = any(s.estimated_tuples is not None for s in self.steps)
        rows = [("step", "operands", "labels in -> out", "summed", "flops", "size")]
        if sparse:
            rows[0] += ("est. tuples",)
        for k, st in enumerate(self.steps):
            row = (
                str(k),
                f"({st.operands[0]}, {st.operands[1]})",
                f"{_fmt(st.inputs[0])},{_fmt(st.inputs[1])} -> {_fmt(st.output) or '()'}",
                _fmt(st.summed) or "-",
                f"{st.flops:,}",
                f"{st.size:,}",
            )
            if sparse:
                row += (f"{st.estimated_tuples:,}" if st.estimated_tuples is not None else "-",)
            rows.append(row)
        widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
        right = (True, False, False, False, True, True, True)
        lines = [head]
        if self.sliced:
            why = self.extra.get("slicing_reason", "")
            lines.append(
                f"  sliced over {_fmt(self.sliced)} ({self.slice_count:,} slices){': ' + why if why else ''}; "
                "the steps below are one slice (sliced indices fixed)"
            )
            for note in self.extra.get("slicing_notes", ()):  # type: ignore[union-attr]
                lines.append(f"    {note}")
        for r in rows:
            cells = [c.rjust(w) if rj else c.ljust(w) for c, w, rj in zip(r, widths, right)]
            lines.append("  " + "  ".join(cells).rstrip())
        lines.append(total)
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


@contextlib.contextmanager
def _no_gc():
    """Suspend the cyclic garbage collector while a search runs: the searches allocate many small objects
    (and free them by reference counting), which otherwise triggers collections of the whole heap that can
    cost more than a fast-mode plan itself."""
    enabled = gc.isenabled()
    if enabled:
        gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


# ------------------------------------------------------------------------------------- plan construction


def _build_plan(
    inputs: list[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: dict[str, int],
    ssa_pairs: list[tuple[int, int]],
    sliced: frozenset[str] = frozenset(),
    estimates: list[float] | None = None,
) -> ContractionPlan:
    """Turn a contraction order in SSA form (ids ``0..n-1`` are inputs, result of pair ``t`` is ``n + t``)
    into a linear path with per-step labels and costs.  With ``sliced``, the steps are those of one slice:
    the sliced labels are removed from every operand."""
    n = len(inputs)
    full_inputs = list(inputs)
    full_output = output
    if sliced:
        inputs = [tuple(lab for lab in t if lab not in sliced) for t in inputs]
        output = tuple(lab for lab in output if lab not in sliced)
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
            kept = tuple(lab for lab in involved if lab in out_set or counts[lab] - (lab in sa) - (lab in sb) > 0)
        kept_set = set(kept)
        summed = tuple(lab for lab in involved if lab not in kept_set)
        step = Step(
            operands=(pa, pb),
            inputs=(la, lb),
            output=kept,
            summed=summed,
            flops=_prod(sizes, involved) * (2 if summed else 1),
            size=_prod(sizes, kept),
            estimated_tuples=None if estimates is None else int(round(estimates[t])),
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
    slice_count = _prod(sizes, sorted(sliced)) if sliced else 1
    return ContractionPlan(
        path=path,
        steps=steps,
        flops=sum(s.flops for s in steps) * slice_count,
        largest_intermediate=max(s.size for s in steps),
        inputs=full_inputs,
        output=full_output,
        sliced=tuple(sorted(sliced)),
        slice_count=slice_count,
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


# ---------------------------------------------------------------------------------------------- drivers


def _plan_from_tree(
    terms: list[tuple[str, ...]],
    out: tuple[str, ...],
    sizes: dict[str, int],
    net: Network,
    tree: Tree,
    algorithm: str,
    minimize: str,
    estimator: TupleEstimator | None,
    sliced: frozenset[str] = frozenset(),
) -> ContractionPlan:
    pairs = tree.to_ssa()
    estimates = None
    if estimator is not None:
        est = estimate_tuples(net, estimator, tree)
        order = tree.internal_postorder()
        estimates = [est[v] for v in order]
    plan = _build_plan(terms, out, sizes, pairs, sliced, estimates)
    plan.extra["algorithm"] = algorithm
    plan.extra["minimize"] = minimize
    return plan


def _score(plan: ContractionPlan, obj: Objective, sparse: bool = False) -> tuple:
    if sparse:
        return (plan.estimated_tuples or 0, plan.flops, plan.largest_intermediate)
    per = [s.flops * plan.slice_count for s in plan.steps]
    return obj.score(per, [s.size for s in plan.steps])


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


def _validate_nnz(nnz: object, n: int) -> dict[int, int]:
    if not isinstance(nnz, dict):
        raise TypeError(f"nnz must be a dict mapping operand positions to tuple counts, got {type(nnz).__name__}")
    clean: dict[int, int] = {}
    for k, v in nnz.items():
        try:
            pos = operator.index(k)
            count = operator.index(v)
        except TypeError:
            raise TypeError(f"nnz entries must be integers, got {k!r}: {v!r}") from None
        if not 0 <= pos < n:
            raise ValueError(f"nnz names operand {pos}, but the join has {n} operand(s)")
        if count < 0:
            raise ValueError(f"nnz of operand {pos} must be non-negative, got {count}")
        clean[pos] = count
    return clean


def plan_join(
    inputs: list[tuple[str, ...]],
    output: tuple[str, ...],
    sizes: dict[str, int],
    minimize: str = "flops",
    memory_limit: int | None = None,
    effort: str = "fast",
    *,
    nnz: dict[int, int] | None = None,
    time_budget: float | None = None,
    seed: int = 0,
) -> ContractionPlan:
    """Plan the join ``output = sum over other labels of prod(inputs)`` as pairwise contractions.

    Labels are arbitrary strings (index variable names like ``"p'"`` or ``"dx"``), any number of them; a label
    may repeat inside one operand (a diagonal).  ``sizes`` maps every label to its extent.

    * ``minimize``: ``"flops"``, ``"size"`` (largest intermediate), ``"combo"`` or ``"combo-A"`` (see the
      module docstring).
    * ``effort``: ``"fast"`` (default; milliseconds, deterministic) or ``"high"`` (quality mode, up to
      ``time_budget`` seconds, default 5; it stops earlier once nothing improves).
    * ``memory_limit``: bound on the largest intermediate in elements; when no order fits, the join is sliced
      (``plan.sliced``, ``plan.slice_count``).  ``ValueError`` only if even slicing every label cannot fit.
    * ``nnz``: estimated stored tuples per operand position (sparse operands): steps are then ranked by
      estimated join size and ``Step.estimated_tuples`` is filled in.
    * ``seed``: seeds the random restarts (plans are reproducible for a given seed).
    """
    _check_choice("effort", effort, _EFFORT)
    obj = parse_minimize(minimize)
    terms, out, clean = _validate_join(inputs, output, sizes)
    if memory_limit is not None:
        memory_limit = operator.index(memory_limit)
    if time_budget is not None and not time_budget >= 0:
        raise ValueError(f"time_budget must be a non-negative number of seconds, got {time_budget!r}")
    nnz_clean = _validate_nnz(nnz, len(terms)) if nnz is not None else None
    if len(terms) == 1:
        plan = _single_operand_plan(terms, out, clean)
        if memory_limit is not None and plan.largest_intermediate > memory_limit:
            raise ValueError(
                f"join {plan.equation} cannot be planned within memory_limit={memory_limit:,} elements: its "
                f"result alone has {plan.largest_intermediate:,}"
            )
        return plan
    net = Network(terms, out, clean)
    estimator = TupleEstimator(net, nnz_clean) if nnz_clean is not None else None
    sparse = estimator is not None
    with _no_gc():
        tree, algorithm = search(net, obj, effort, time_budget, seed, estimator)
    plan = _plan_from_tree(terms, out, clean, net, tree, algorithm, minimize, estimator)
    if memory_limit is None or plan.largest_intermediate <= memory_limit:
        return plan
    # Too big: look for an order that minimises the largest intermediate instead.
    size_obj = Objective("size")
    candidates = [(plan, tree)]
    if obj.name != "size" or sparse:
        t2, a2 = search(net, size_obj, effort, time_budget, seed)
        candidates.append((_plan_from_tree(terms, out, clean, net, t2, a2, minimize, estimator), t2))
    if effort == "fast" and len(terms) <= 12:
        t3, a3 = search(net, size_obj, "high", 1.0, seed)
        candidates.append((_plan_from_tree(terms, out, clean, net, t3, a3, minimize, estimator), t3))
    fitting = [p for p, _ in candidates if p.largest_intermediate <= memory_limit]
    if fitting:
        return min(fitting, key=lambda p: _score(p, obj, sparse))
    smallest_plan, smallest_tree = min(candidates, key=lambda c: (c[0].largest_intermediate, c[0].flops))
    smallest = smallest_plan.largest_intermediate

    def replan(sub: Network) -> Tree:
        return search(sub, obj, "fast", None, seed)[0]

    try:
        mask, sliced_tree, notes = choose_slices(net, smallest_tree, obj, memory_limit, replan)
    except ValueError as err:
        raise ValueError(
            f"join {plan.equation} cannot be planned within memory_limit={memory_limit:,} elements: the smallest "
            f"largest intermediate of any order found is {smallest:,} elements (the output alone has "
            f"{_prod(clean, out):,}), and slicing cannot fix it: {err}"
        ) from None
    sliced = frozenset(net.labels_of(mask))
    result = _plan_from_tree(
        terms, out, clean, net, sliced_tree, smallest_plan.extra["algorithm"] + " + slicing", minimize, None, sliced
    )
    result.extra["slicing_reason"] = (
        f"no contraction order found keeps every intermediate within memory_limit={memory_limit:,} elements "
        f"(smallest largest intermediate unsliced: {smallest:,}); each slice's largest is "
        f"{result.largest_intermediate:,} and the total flops are {result.flops / max(plan.flops, 1):.2f}x "
        "the unsliced plan's"
    )
    result.extra["slicing_notes"] = notes
    return result


# ----------------------------------------------------------------------------------- einsum-string entry


def parse_equation(equation: str) -> tuple[list[str], str]:
    """Split numpy einsum notation into operand terms and the output term.

    Every character other than ``,``, ``-``, ``>``, ``.`` and whitespace is a label (as in opt_einsum, so
    equations with more than 52 indices can use any Unicode characters); whitespace is ignored; ellipses are
    not supported.  Without ``->`` the output is, as in numpy, the labels occurring exactly once in the
    whole equation, sorted.
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
            if ch in _SEPARATORS:
                raise ValueError(f"einsum equation {equation!r}: operand {k} ({term!r}) contains a stray {ch!r}")
    if explicit:
        for ch in out:
            if ch in _SEPARATORS:
                raise ValueError(f"einsum equation {equation!r}: output contains a stray {ch!r}")
        if len(set(out)) != len(out):
            dup = next(ch for ch in out if out.count(ch) > 1)
            raise ValueError(f"einsum equation {equation!r}: output label {dup!r} appears more than once")
        present = set(lhs) - {","}
        for ch in out:
            if ch not in present:
                raise ValueError(f"einsum equation {equation!r}: output label {ch!r} does not appear in any operand")
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
    *,
    nnz: dict[int, int] | None = None,
    time_budget: float | None = None,
    seed: int = 0,
) -> ContractionPlan:
    """Plan an einsum given in numpy notation (``'ab,bc->ac'``, or implicit ``'ab,bc'``) for operand shapes.

    Checks that the shapes match the equation (number of operands, dimensions per operand, one extent per
    label) and raises ``ValueError`` naming the operand and label otherwise.  See :func:`plan_join` for the
    options.
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
                    f"operand {k} ({term!r}): label {lab!r} has size {dim}, but {where} gives it size {sizes[lab]}"
                )
            sizes[lab] = dim
            origin.setdefault(lab, (k, term))
    return plan_join(
        [tuple(t) for t in terms],
        tuple(out),
        sizes,
        minimize,
        memory_limit,
        effort,
        nnz=nnz,
        time_budget=time_budget,
        seed=seed,
    )
