"""Gradients and training for a Program: `grad`, `train`, parameter files and the loss plot.

`program_grad` builds (once per loss and parameter list) the gradient program of `tensorlogic.autodiff`,
runs it with the inputs and the current parameter values, and returns the gradients as numpy arrays of the
parameters' shapes. `train` repeats that with an optimiser, shows a progress bar with the running loss,
writes the parameters atomically after every epoch and draws the loss curve.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..autodiff.program import GradientSource, gradient_source
from ..syntax.diagnostics import TLRuntimeError
from .optimizers import make_optimizer


def fit_shape(arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """arr cropped or zero-padded to `shape` (a gradient tensor's computed size may differ at its borders)."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape == shape:
        return arr
    if arr.ndim != len(shape):
        raise TLRuntimeError(f"a gradient of shape {arr.shape} does not match its tensor's shape {shape}")
    out = np.zeros(shape)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(arr.shape, shape))
    out[sl] = arr[sl]
    return out


def parameters(prog: Any, given: set[str]) -> list[str]:
    """The tensors a program learns: those declared learnable (and not computed), and those read but never
    defined that are not among the inputs `given`."""
    declared, implicit = parameter_candidates(prog.lowered(), given)
    return sorted(declared | implicit)


def initial_values(prog: Any, names: list[str]) -> dict[str, np.ndarray]:
    """Current values of the named tensors: learned ones, else data, else the seeded initialisation."""
    out = {}
    for n in names:
        if n in prog.params:
            out[n] = prog.params[n]
            continue
        v = prog.executor.initial(n)
        out[n] = np.array(prog.executor.dense(n) if not isinstance(v, np.ndarray) else v, dtype=np.float64)
    return out


def check_loss(a: Any, loss: str) -> None:
    """The loss must be a scalar tensor of the program."""
    if loss not in a.tensors:
        raise TLRuntimeError(f"no tensor '{loss}' in the program to differentiate",
                             hint="name the loss tensor, e.g. --loss Loss")
    if a.tensors[loss].shape:
        raise TLRuntimeError(f"the loss '{loss}' must be a scalar, but it has shape {a.tensors[loss].shape}",
                             hint=f"sum it: Total = {loss}[...] with every index summed")


def differentiable(prog: Any, values: dict[str, Any]) -> Any:
    """The program itself, or for a program with virtual indices its twin with `set history = 1` (every step
    kept, for backpropagation through time), analysed with `values`."""
    if not any(eq.virtual_var for eq in prog.analyzed.equations):
        return prog
    cache = prog._grad_programs
    if "history" not in cache:
        from ..api import Program

        twin = Program(prog.source.rstrip("\n") + "\nset history = 1\n", prog.file, base_dir=prog.base_dir,
                       backend=prog.backend.name, functions=prog.functions, seed=prog.seed)
        twin.learning = prog.learning
        cache["history"] = twin
    twin = cache["history"]
    twin.analyze(**values)
    return twin


def gradient_program(prog: Any, loss: str, wrt: list[str], seeded: bool = True,
                     values: dict[str, Any] | None = None) -> tuple[Any, GradientSource]:
    """The Program computing d(loss)/d(wrt), cached on `prog` per (loss, wrt)."""
    key = (loss, tuple(wrt), seeded)
    cache = prog._grad_programs
    if key not in cache:
        from ..api import Program

        src = differentiable(prog, values or {})
        gs = gradient_source(src.source, src.ast, src.file, src.analyzed, [loss], list(wrt),
                             seed_scalars=seeded, queries=False)
        gp = Program(gs.text, prog.file, base_dir=prog.base_dir, backend=prog.backend.name,
                     functions=prog.functions, seed=prog.seed)
        cache[key] = (gp, gs)
    return cache[key]


def program_grad(prog: Any, loss: str, wrt: list[str] | None, values: dict[str, Any],
                 memory_budget: int | None = None, strategy: str = "auto") -> dict[str, np.ndarray]:
    """d(loss)/d(each of wrt) at `values` (inputs and parameter values; missing parameters take their
    current values). The loss must be a scalar."""
    names = list(wrt) if wrt is not None else parameters(prog, set(values))
    prog.learning = True
    prog.analyze(**values)
    a = prog.analyzed
    check_loss(a, loss)
    for n in names:
        if n not in a.tensors:
            raise TLRuntimeError(f"no tensor '{n}' in the program to differentiate with respect to")
    given = dict(values)
    for n, v in initial_values(prog, [n for n in names if n not in given]).items():
        given[n] = v
    renames = differentiable(prog, given)._renames  # a state's initial value is <state>_Init with history
    gp, gs = gradient_program(prog, loss, [renames.get(n, n) for n in names], values=given)
    gp._no_share = memory_budget is not None  # a budget shares no sub-join (api.Program._run_analysis)
    if memory_budget is None:
        gp.run(**given)
    else:  # keep or recompute forward values so that the step's peak stays under the budget
        from .budget import scheduled_run

        gp.analyze(**given)
        outs = {gs.grad_name(renames.get(n, n)) for n in names} | {loss}
        prog.last_schedule = scheduled_run(gp, {o for o in outs if o}, memory_budget, strategy,
                                           prog._grad_programs)
    prog.last_peak_bytes = gp.executor.peak_bytes
    # torch.cuda.max_memory_allocated of a budgeted step on CUDA (None elsewhere)
    prog.last_device_peak_bytes = getattr(prog.last_schedule, "device_peak", None) if memory_budget else None
    out = {}
    for n in names:
        g = gs.grad_name(renames.get(n, n))
        shape = a.tensors[n].storage_shape
        out[n] = fit_shape(gp[g], shape) if g is not None and g in gp.analyzed.tensors else np.zeros(shape)
    prog.last_loss = float(np.asarray(gp[loss]))
    return out


def save_params(path: str | Path, params: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> None:
    """Write parameters (and `_`-prefixed metadata) to an .npz file atomically: temp file, then rename."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in params.items()}
    for k, v in (meta or {}).items():
        arrays[f"_{k}"] = np.asarray(v)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=str(path.parent or "."))
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_params(path: str | Path) -> dict[str, np.ndarray]:
    """The parameters in an .npz file written by `save_params` (metadata keys left out)."""
    try:
        with np.load(str(path)) as z:
            return {k: np.array(z[k]) for k in z.files if not k.startswith("_")}
    except (OSError, ValueError) as e:
        raise TLRuntimeError(f"cannot read parameters from '{path}': {e}",
                             hint="give an .npz file written by tl train --save") from None


def plot_losses(path: str | Path, history: list[float], title: str = "training loss") -> None:
    """Draw the loss curve to a PNG/SVG/PDF file (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(history) + 1), history)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    if history and min(history) > 0 and max(history) / max(min(history), 1e-300) > 100:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def train(prog: Any, loss: str = "Loss", epochs: int = 100, lr: float = 0.01, optimizer: str = "adam",
          wrt: list[str] | None = None, progress: bool = True, save: str | Path | None = None,
          plot: str | Path | None = None, callback: Callable[[int, float], None] | None = None,
          options: dict[str, float] | None = None, data: dict[str, Any] | None = None,
          batch_size: int | None = None, memory_budget: int | None = None, remat: str = "auto") -> list[float]:
    """Minimise the scalar `loss` over the parameters; returns the loss of every epoch (before its step; with
    minibatches, the sum of the batches' losses, each before its step)."""
    if epochs < 0:
        raise TLRuntimeError(f"the number of epochs must be at least 0, not {epochs}")
    data = dict(data or {})
    names = list(wrt) if wrt is not None else parameters(prog, set(data))
    prog.learning = True
    prog.analyze(**data)
    if not names:
        raise TLRuntimeError("this program has no parameters to learn",
                             hint="declare them (tensor W[4,3] learnable) or leave them without data")
    params = {n: np.array(v, dtype=np.float64) for n, v in initial_values(prog, names).items()}
    opt = make_optimizer(optimizer, lr, **(options or {}))
    history: list[float] = []
    plan = None
    if batch_size is not None:
        from .batches import batch_plan, batch_values, epoch_batches

        plan = batch_plan(prog.analyzed, data, batch_size)
        rng = np.random.default_rng(prog.seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs, desc="training", unit="epoch", file=sys.stderr, dynamic_ncols=True)
    try:
        for epoch in range(epochs):
            if plan is None:
                grads = program_grad(prog, loss, names, {**data, **params}, memory_budget, remat)
                value = prog.last_loss
                opt.step(params, grads)
            else:
                value = 0.0
                for idx in epoch_batches(plan[2], batch_size, rng):
                    batch = batch_values(plan[0], plan[1], idx)
                    grads = program_grad(prog, loss, names, {**data, **batch, **params}, memory_budget, remat)
                    value += prog.last_loss
                    opt.step(params, grads)
            if not np.isfinite(value):
                raise TLRuntimeError(f"the loss became {value} at epoch {epoch + 1}",
                                     hint="lower the learning rate (--lr)")
            history.append(value)
            prog.params.update({n: p.copy() for n, p in params.items()})
            if save is not None:
                save_params(save, params, {"epoch": epoch + 1, "history": history})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.5g}")
            if callback is not None:
                callback(epoch, value)
    finally:
        if bar is not None:
            bar.close()
        if plot is not None and history:
            plot_losses(plot, history, f"{loss} by epoch")
    return history


def parameter_candidates(lowered: Any, given: set[str]) -> tuple[set[str], set[str]]:
    """(declared learnable, implicit) parameters of a lowered program: tensors declared learnable and not
    computed, and tensors read but never defined (no data, equation, declaration or input in `given`)."""
    from ..ir.nodes import reads
    from ..syntax import ast as A

    computed = {eq.lhs for eq in lowered.equations}
    data = {getattr(st, "lhs", getattr(st, "atom", None)).name for st in lowered.data}
    declared = {d.name for d in lowered.decls if isinstance(d, A.TensorDecl)}
    learnable = {d.name for d in lowered.decls if isinstance(d, A.TensorDecl) and "learnable" in d.modifiers}
    read = {r.tensor for eq in lowered.equations for r in reads(eq.rhs)}
    implicit = read - computed - data - declared - set(given)
    return learnable - computed, implicit


def program_vjp(prog: Any, outputs: list[str], wrt: list[str], values: dict[str, Any],
                cotangents: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Vector-Jacobian products: for each tensor in `wrt`, sum over outputs o of cotangents[o] * d(o)/d(wrt),
    computed by the gradient program of `outputs` with the cotangents given as its `Grad_o` inputs (what a
    torch.autograd.Function's backward needs). Values are the forward inputs (parameters included)."""
    prog.analyze(**values)
    a = prog.analyzed
    key = ("vjp", tuple(outputs), tuple(wrt))
    cache = prog._grad_programs
    if key not in cache:
        from ..api import Program

        src = differentiable(prog, values)
        gs = gradient_source(src.source, src.ast, src.file, src.analyzed, list(outputs),
                             [src._renames.get(n, n) for n in wrt],
                             seed_scalars=False, queries=False)
        gp = Program(gs.text, prog.file, base_dir=prog.base_dir, backend=prog.backend.name,
                     functions=prog.functions, seed=prog.seed)
        cache[key] = (gp, gs)
    gp, gs = cache[key]
    renames = differentiable(prog, values)._renames
    given = dict(values)
    for o in outputs:
        shape = a.tensors[o].storage_shape
        given[gs.seed_inputs.get(o, gs.grads.seeds[o])] = np.asarray(cotangents[o], dtype=np.float64).reshape(shape)
    gp.run(**given)
    out = {}
    for n in wrt:
        g = gs.grad_name(renames.get(n, n))
        shape = a.tensors[n].storage_shape
        out[n] = fit_shape(gp[g], shape) if g is not None and g in gp.analyzed.tensors else np.zeros(shape)
    return out
