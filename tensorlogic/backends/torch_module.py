"""`tl.TorchModule`: a tensor logic program as a `torch.nn.Module`, one layer of a PyTorch model.

    layer = tl.TorchModule('''
        tensor W1[8, 4] learnable
        tensor W2[3, 8] learnable
        H[h] = relu(W1[h, i] X[i])
        Y[o] = W2[o, h] H[h]
    ''', outputs=["Y"], inputs=["X"], example_inputs={"X": np.zeros(4)})
    y = layer(torch.randn(4))          # a torch tensor; layer.params["W1"] is an nn.Parameter

The module's parameters (`module.params`, an `nn.ParameterDict`) are the program's learnable tensors: those
declared `learnable` and those read but never defined that are neither inputs nor data
(`tensorlogic.learn.trainer.parameters`), initialised from the program's seeded initialisation.

How the backward pass is done: the forward pass is one `torch.autograd.Function`. Its `forward` runs the
program (on the torch backend, on the device of the parameters; or on numpy) with the inputs and the current
parameter values and returns the outputs as tensors. Its `backward` receives the cotangents dL/dOutput of
every output and calls `tensorlogic.learn.trainer.program_vjp`: the program's own *gradient program* (the
reverse-mode gradient equations that `tl grad` prints, with `Grad_<Output>` given as input instead of the
seed 1) is run on the same backend with the saved forward inputs, and its `Grad_<T>` tensors are the
vector-Jacobian products for the parameters and for every input that requires grad. torch never traces the
program's operations: gradients come from tensor logic's autodiff, so whatever the program computes
(recursion, index arithmetic, max=, softmax over a dotted index) has the gradient the autodiff stage
defines. The backward pass is not itself differentiable (no double backward). See docs/torch.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..syntax.diagnostics import TLRuntimeError
from .torch_backend import tensor_to_numpy


class _Runner:
    """The program of one TorchModule on one device: forward values and vector-Jacobian products."""

    def __init__(self, prog: Any, outputs: list[str]) -> None:
        self.outputs = outputs
        self.prog = prog
        self.prog.learning = True

    def forward(self, values: dict[str, Any]) -> list[torch.Tensor | np.ndarray]:
        prog = self.prog
        prog.analyze(**values)
        ex = prog.executor
        ex.ensure(set(self.outputs))
        if prog.backend.native:
            return [np.array(ex.dense(o), dtype=np.float64) for o in self.outputs]
        return [ex.array(o).clone() for o in self.outputs]

    def vjp(self, values: dict[str, Any], cotangents: dict[str, np.ndarray], wrt: list[str]) -> dict[str, np.ndarray]:
        from ..learn.trainer import program_vjp

        return program_vjp(self.prog, self.outputs, wrt, values, cotangents)


class _ProgramFunction(torch.autograd.Function):
    """outputs = program(inputs, parameters); backward by the program's gradient program (program_vjp)."""

    @staticmethod
    def forward(ctx: Any, runner: _Runner, names: tuple[str, ...], static: dict[str, Any],
                spec: tuple[torch.device, torch.dtype], *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = {n: np.array(tensor_to_numpy(t), dtype=np.float64) for n, t in zip(names, tensors)}
        outs = runner.forward({**static, **values})
        device, dtype = spec
        ctx.runner, ctx.names, ctx.static, ctx.values = runner, names, static, values
        ctx.like = [(t.device, t.dtype, tuple(t.shape)) for t in tensors]
        return tuple(torch.as_tensor(o).to(device=device, dtype=dtype) for o in outs)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        need = ctx.needs_input_grad[4:]
        wrt = [n for n, k in zip(ctx.names, need) if k]
        result: list[torch.Tensor | None] = [None] * len(ctx.names)
        if wrt:
            cot = {o: tensor_to_numpy(g) for o, g in zip(ctx.runner.outputs, grads)}
            got = ctx.runner.vjp({**ctx.static, **ctx.values}, cot, wrt)
            for k, (n, flag) in enumerate(zip(ctx.names, need)):
                if flag:
                    device, dtype, shape = ctx.like[k]
                    result[k] = torch.as_tensor(np.asarray(got[n]).reshape(shape)).to(device=device, dtype=dtype)
        return (None, None, None, None, *result)


class TorchModule(torch.nn.Module):
    """A tensor logic program as a `torch.nn.Module`.

    source: the program text (or a `pathlib.Path` to a .tl file). outputs: the tensors `forward` returns (in
    order; default: the tensors the program queries). inputs: the tensors `forward` takes (positionally in
    this order, or by name). example_inputs: values for inputs whose shapes the program does not declare,
    used once to find the parameters' shapes. data: constant values bound on every call (tensors as arrays,
    relations as lists of tuples, sizes as numbers). backend: "torch" (default: runs on the device of the
    parameters, following `module.to(device)`) or "numpy" (CPU). dtype: the parameters' dtype (float64).

    `forward(*inputs, **inputs)` returns one tensor per output (a single tensor when there is one output).
    The backward pass runs the program's gradient program (see the module docstring and docs/torch.md).
    """

    def __init__(self, source: str | Path, outputs: Sequence[str] | None = None, inputs: Sequence[str] = (),
                 example_inputs: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                 backend: str = "torch", seed: int = 0, functions: dict[str, Callable] | None = None,
                 dtype: torch.dtype = torch.float64, file: str = "<input>", base_dir: str | Path | None = None):
        super().__init__()
        if isinstance(source, Path):
            file, base_dir = str(source), base_dir or source.resolve().parent
            source = source.read_text()
        if backend not in ("torch", "numpy"):
            raise TLRuntimeError(f"a TorchModule runs on the torch or numpy backend, not '{backend}'")
        self.source, self.file, self.base_dir = source, file, base_dir
        self.inputs = list(inputs)
        self.data = dict(data or {})
        self.backend_name, self.seed, self.functions = backend, seed, dict(functions or {})
        self._runners: dict[str, _Runner] = {}
        runner = self._runner(torch.device("cpu"))
        prog = runner.prog
        examples = {k: _as_value(v) for k, v in (example_inputs or {}).items()}
        unknown = set(examples) - set(self.inputs)
        if unknown:
            raise TLRuntimeError(f"example_inputs names {sorted(unknown)}, which are not among the inputs "
                                 f"{self.inputs}")
        self._check_inputs(prog, examples)
        prog.analyze(**self.data, **examples)
        a = prog.analyzed
        if outputs is None:
            from ..ir.nodes import Read

            outputs = [q.expr.tensor for q in a.queries if isinstance(q.expr, Read)]
        self.outputs = list(outputs)
        if not self.outputs:
            raise TLRuntimeError("a TorchModule needs at least one output tensor",
                                 hint="give outputs=['Y'] (or end the program with a query Y?)")
        for n in self.outputs + self.inputs:
            if n not in a.tensors:
                raise TLRuntimeError(f"no tensor '{n}' in the program")
        for r in self._runners.values():
            r.outputs = self.outputs
        from ..learn.trainer import initial_values, parameters

        names = parameters(prog, set(self.inputs) | set(self.data))
        init = initial_values(prog, names)
        self.params = torch.nn.ParameterDict(
            {n: torch.nn.Parameter(torch.as_tensor(np.asarray(init[n], dtype=np.float64)).to(dtype)) for n in names})
        self.dtype = dtype

    # ------------------------------------------------------------ helpers
    def _runner(self, device: torch.device) -> _Runner:
        key = "numpy" if self.backend_name == "numpy" else str(device)
        if key not in self._runners:
            from ..api import Program

            prog = Program(self.source, self.file, base_dir=self.base_dir, backend=self.backend_name,
                           device=None if self.backend_name == "numpy" else str(device),
                           functions=self.functions, seed=self.seed)
            self._runners[key] = _Runner(prog, getattr(self, "outputs", []))
        return self._runners[key]

    def __getstate__(self) -> dict:
        """Pickling (torch.save(module)) keeps the source and the parameters; programs are made again."""
        state = dict(self.__dict__)
        state["_runners"] = {}
        return state

    def _check_inputs(self, prog: Any, examples: dict[str, Any]) -> None:
        """Inputs need a shape before the first call: a declaration, data in the program, or an example."""
        from ..syntax import ast as A

        low = prog.lowered()
        declared = {d.name for d in low.decls if isinstance(d, A.TensorDecl) and d.dims is not None}
        have = declared | {getattr(st, "lhs", getattr(st, "atom", None)).name for st in low.data}
        missing = [n for n in self.inputs if n not in have and n not in examples and n not in self.data]
        if missing:
            raise TLRuntimeError(
                f"the shapes of the inputs {missing} are not known before the first call",
                hint="declare them (tensor X[4]) or give example_inputs={'X': array}")

    def extra_repr(self) -> str:
        return f"inputs={self.inputs}, outputs={self.outputs}, backend={self.backend_name!r}"

    @property
    def program(self) -> Any:
        """The Program the module runs on the CPU (for `grad_source`, `plan`, ...)."""
        return self._runner(torch.device("cpu")).prog

    # ------------------------------------------------------------ forward
    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(args) > len(self.inputs):
            raise TypeError(f"forward takes {len(self.inputs)} inputs ({', '.join(self.inputs)}), "
                            f"got {len(args)} positional")
        given = dict(zip(self.inputs, args))
        for k, v in kwargs.items():
            if k not in self.inputs:
                raise TypeError(f"'{k}' is not an input of this module (inputs: {', '.join(self.inputs)})")
            if k in given:
                raise TypeError(f"input '{k}' given twice")
            given[k] = v
        missing = [n for n in self.inputs if n not in given]
        if missing:
            raise TypeError(f"missing inputs: {', '.join(missing)}")
        names, tensors, static = [], [], dict(self.data)
        for n, v in given.items():
            if isinstance(v, torch.Tensor):
                names.append(n)
                tensors.append(v)
            else:
                static[n] = _as_value(v)
        for n, p in self.params.items():
            names.append(n)
            tensors.append(p)
        device = tensors[-1].device if tensors else torch.device("cpu")  # the parameters' device
        dtype = next(iter(self.params.values())).dtype if len(self.params) else self.dtype  # follows .float()
        outs = _ProgramFunction.apply(self._runner(device), tuple(names), static, (device, dtype), *tensors)
        return outs[0] if len(outs) == 1 else outs


def _as_value(v: Any) -> Any:
    """A forward or example value as the Program API takes it (arrays as float64 numpy)."""
    if isinstance(v, torch.Tensor):
        return np.array(tensor_to_numpy(v), dtype=np.float64)
    if isinstance(v, np.ndarray):
        return np.asarray(v, dtype=np.float64) if v.dtype.kind in "biuf" else v
    return v
