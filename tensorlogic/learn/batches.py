"""Minibatches over a virtual example index: `Loss = (Y[e] - T[*e])^2` with `--batch-size B`.

A data tensor read with a virtual index (`X[*e, i]`, `T[*e]`) that no equation writes virtually is indexed by
examples along that position (LANGUAGE.md: a virtual index on data is an ordinary index). Training with a
batch size shuffles the examples once per epoch (from the program's seed) and takes one optimiser step per
batch of B consecutive examples of that order; each data tensor with an example axis is given the batch's
rows, so everything else in the program sees a smaller example index. The last batch may be smaller.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ir.nodes import reads
from ..syntax.diagnostics import TLRuntimeError


def example_axes(a: Any) -> dict[str, int]:
    """Data tensors read with a virtual index that is not a state's, and that index's position."""
    out: dict[str, int] = {}
    for eq in a.equations:
        for r in reads(eq.rhs):
            t = a.tensors[r.tensor]
            if t.has_equations or t.virtual_axis is not None:
                continue
            for k, p in enumerate(r.pos):
                if p.virtual:
                    out[r.tensor] = k
    return out


def batch_plan(a: Any, data: dict[str, Any], batch_size: int) -> tuple[dict[str, np.ndarray], dict[str, int], int]:
    """(full arrays, example axis per tensor, number of examples) for minibatch training."""
    if batch_size < 1:
        raise TLRuntimeError(f"the batch size must be at least 1, not {batch_size}")
    axes = example_axes(a)
    if not axes:
        raise TLRuntimeError("--batch-size needs an example index: read the training data with a virtual index, "
                             "e.g. X[*e, i] and T[*e]", hint="or train on the whole data set (no --batch-size)")
    full = {}
    for t in axes:
        v = data[t] if t in data else a.data.get(t)
        if not isinstance(v, np.ndarray):
            raise TLRuntimeError(f"{t} must be a dense array to be split into minibatches")
        full[t] = np.asarray(v, dtype=np.float64)
    sizes = {t: full[t].shape[k] for t, k in axes.items()}
    if len(set(sizes.values())) != 1:
        raise TLRuntimeError(f"the example index has different sizes in {sizes}",
                             hint="every tensor read with *e must hold the same examples")
    return full, axes, next(iter(sizes.values()))


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The example indices of each batch of one epoch, in a fresh random order."""
    order = rng.permutation(n)
    return [order[k:k + batch_size] for k in range(0, n, batch_size)]


def batch_values(full: dict[str, np.ndarray], axes: dict[str, int], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {t: np.take(arr, idx, axis=axes[t]) for t, arr in full.items()}
