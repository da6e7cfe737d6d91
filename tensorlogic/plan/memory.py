"""The predicted peak memory of a run, counted the way the executor counts it (docs/planner.md, "Predicted vs
measured peak").

The executor (runtime/executor.py) counts the bytes of the tensor values it holds: a data tensor or parameter
from the first time something reads it (never freed), a computed tensor from its stratum until `_free_dead`
drops it after its last reader in the run; and, while one equation is evaluated, the largest pairwise product
of its joins plus the fresh array its result is scattered into. It runs strata query by query (each query's
`ensure`, then each file write's), so the tensors live at a stratum depend on that order, not only on the
topological one. `simulate` replays that order and freeing on names and byte counts only (no array data) and
returns, per stratum in the order the run first evaluates it, the bytes live while it runs.

Per stratum kind, the transient on top of what is live (the stratum's own outputs included):

* once / loop: the largest pairwise product of an equation plus its fresh result (the head's bytes);
* layered or iterated recursion: the same (the heads' previous values stay live while the new one is made;
  a layered `+` step adds into its head in place, so its result is not fresh -- still counted: a bound);
* relational (semi-naive, or a once-stratum of Boolean rules): nothing beyond the relations held, whose
  size is bounded by their extents (`relation_bound`): a bound, not an estimate (a relation's size is known
  only after running; `tl run --stats` measures it).
"""

from __future__ import annotations

from collections.abc import Callable

from ..ir.graph import Stratum, strata
from ..ir.nodes import reads

__all__ = ["mark_shared", "relation_bound", "run_targets", "simulate"]


def relation_bound(shape: tuple[int, ...]) -> int:
    """Bytes a relation computed by rules may hold at most: every cell a tuple, each an int64 row plus its int64
    key (backends/relations.py), plus a byte per cell of membership bitmap."""
    cells = 1
    for s in shape:
        cells *= max(0, int(s))
    return cells * (8 * (len(shape) + 1) + 1)


def run_targets(prog) -> list[set[str] | None]:
    """What `Program.run` asks the executor for, in order: each query's tensors, then each written tensor;
    [None] (everything, nothing freed) when there are neither."""
    targets: list[set[str] | None] = [{r.tensor for r in reads(q.expr)} for q in prog.queries]
    targets += [{w.tensor} for w in prog.writes]
    return targets or [None]


def simulate(prog, size: Callable[[str], int], targets: list[set[str] | None]
             ) -> tuple[list[Stratum], list[int], list[int], set[str]]:
    """Replays `Executor.ensure` over `targets` (with `free_dead`, as `Program.run` sets it): the strata in the
    order they first run, for each the bytes live when it starts (inputs read, everything not yet freed; not its
    own outputs), and its outputs' bytes; and the tensors computed more than once (freed, then asked for
    again). A stratum run again keeps its largest figure."""
    keep = {t for tg in targets if tg for t in tg}
    readers: dict[str, list[frozenset]] = {}
    for st in strata(prog.equations, keep) if keep else []:
        for e in st.equations:
            for r in reads(e.rhs):
                if r.tensor not in st.tensors:
                    readers.setdefault(r.tensor, []).append(frozenset(st.tensors))
    all_strata = strata(prog.equations)
    by_key = {frozenset(st.tensors): st for st in all_strata}
    computed: set[str] = set()
    held: dict[str, int] = {}
    order: list[frozenset] = []
    live_at: dict[frozenset, int] = {}
    rerun: set[str] = set()

    def hold(name: str) -> None:
        if name not in held:
            held[name] = size(name)

    for tg in targets:
        todo = None if tg is None else {n for n in tg if n not in computed}
        if todo is not None and not todo:
            for name in tg:
                hold(name)
            continue
        sts = [by_key[frozenset(st.tensors)] for st in strata(prog.equations, todo)]
        if todo is not None:
            want, run = set(todo), []
            for st in reversed(sts):
                if any(t in want and t not in computed for t in st.tensors):
                    run.append(st)
                    want |= {r.tensor for e in st.equations for r in reads(e.rhs)}
            sts = run[::-1]
        protect = set(tg or ()) | set(prog.data) | keep
        for st in sts:
            if all(t in computed for t in st.tensors):
                continue
            ins = {r.tensor for e in st.equations for r in reads(e.rhs)}
            for name in ins - set(st.tensors):
                hold(name)
            key = frozenset(st.tensors)
            if key not in live_at:
                order.append(key)
            else:
                rerun |= key
            live_at[key] = max(live_at.get(key, 0), sum(v for n, v in held.items() if n not in key))
            for name in st.tensors:
                hold(name)
            computed.update(st.tensors)
            if tg is None:
                continue
            for t in ins:  # Executor._free_dead
                if t in protect or t in st.tensors or t not in computed or t not in readers:
                    continue
                if all(all(x in computed for x in group) for group in readers[t]):
                    computed.discard(t)
                    held.pop(t, None)
        for name in tg or ():  # the query reads them (materialised when not computed)
            hold(name)
    return ([by_key[k] for k in order], [live_at[k] for k in order], [sum(size(t) for t in k) for k in order],
            rerun)


def mark_shared(plans: list, run_order: list[frozenset], rerun: set[str]) -> None:
    """Mark the summed joins the executor answers from its join cache (an equal join, same text, sizes and
    input values, ran earlier in the run): no pairwise products then. Non-recursive strata only (a recursion's
    inputs change between rounds), and not over a tensor computed twice (its value version changes)."""
    by_key = {frozenset(sp.tensors): sp for sp in plans}
    seen: set[tuple] = set()
    for key in run_order:
        sp = by_key.get(key)
        if sp is None or sp.kind != "once":
            continue
        for e in sp.equations:
            reads_ = {r.tensor for r in reads(e.equation.rhs)}
            for j in e.joins:
                if j.key is None or reads_ & rerun:
                    continue
                j.shared = j.key in seen
                seen.add(j.key)
