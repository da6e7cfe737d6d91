"""The torch backend: the same plans, run on torch tensors on the CPU or a CUDA device.

`TorchBackend` implements the backend protocol of `numpy_backend.py`: `xp`, the array namespace the runtime
calls (here `TorchNamespace`, the subset of numpy's names the runtime uses, implemented with torch on one
device and one floating dtype), `contract` (one pairwise `torch.einsum`), the elementwise `functions`,
`softmax`, `lnorm`, `sig_temperature`, and the boundary conversions `from_numpy` / `to_numpy` /
`sparse_matmul`. Relations (sparse Boolean tuples) stay numpy: the executor converts them at the boundary.

Floats are float64 by default on every device (results equal numpy's to rounding); `dtype="float32"` trades
precision for speed on GPUs. Only `tensorlogic/backends/` imports torch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..syntax.diagnostics import TLRuntimeError

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class _UFunc:
    """A binary function with numpy's `.at` (unbuffered in-place accumulation at indices)."""

    def __init__(self, fn: Callable, at: Callable) -> None:
        self._fn = fn
        self.at = at

    def __call__(self, a: Any, b: Any) -> torch.Tensor:
        return self._fn(a, b)


class TorchNamespace:
    """The numpy names the runtime uses (`zeros`, `where`, `transpose`, `add.at`, ...), on torch tensors.

    Arrays are created on `device`; `float64` is the backend's floating dtype (float64 unless configured
    otherwise), `int64` and `bool_` the index and mask dtypes, so runtime code written as `xp.zeros(shape)`,
    `xp.asarray(x, dtype=xp.float64)` runs unchanged on numpy (`xp = numpy`) and here."""

    int64 = torch.int64
    bool_ = torch.bool

    def __init__(self, device: torch.device, dtype: torch.dtype) -> None:
        self.device = device
        self.float64 = dtype
        self.add = _UFunc(self._binary(torch.add), self._add_at)
        self.maximum = _UFunc(self._binary(torch.maximum), lambda acc, idx, v: self._reduce_at(acc, idx, v, "amax"))
        self.minimum = _UFunc(self._binary(torch.minimum), lambda acc, idx, v: self._reduce_at(acc, idx, v, "amin"))
        self.power = self._binary(torch.pow)
        self._scalars: dict[tuple[float, float], torch.Tensor] = {}

    # ------------------------------------------------------------ creation and conversion
    def dtype(self, dtype: Any) -> torch.dtype | None:
        """A torch dtype for a numpy / Python / torch dtype (floats become the backend's float dtype)."""
        if dtype is None or isinstance(dtype, torch.dtype):
            return dtype
        if dtype is bool:
            return torch.bool
        kind = np.dtype(dtype).kind
        return {"f": self.float64, "b": torch.bool, "i": torch.int64, "u": torch.int64}[kind]

    def asarray(self, x: Any, dtype: Any = None) -> torch.Tensor:
        dt = self.dtype(dtype)
        if isinstance(x, torch.Tensor):
            if x.device != self.device:
                x = x.to(self.device)
            return x if dt is None or x.dtype == dt else x.to(dt)
        if isinstance(x, bool | np.bool_):
            return torch.tensor(bool(x), dtype=dt or torch.bool, device=self.device)
        if isinstance(x, float) and (dt is None or dt == self.float64):  # constants: one small tensor each
            key = (x, math.copysign(1.0, x))
            t = self._scalars.get(key)
            if t is None:
                if len(self._scalars) > 4096:
                    self._scalars.clear()
                t = self._scalars[key] = torch.tensor(x, dtype=self.float64, device=self.device)
            return t
        arr = np.asarray(x)
        if dt is None:
            dt = self.dtype(arr.dtype) if arr.dtype.kind in "fbiu" else self.float64
        if arr.dtype.kind == "f" and arr.dtype != np.float64:
            arr = arr.astype(np.float64)
        return torch.as_tensor(arr, device=self.device).to(dt)

    def zeros(self, shape: Any, dtype: Any = None) -> torch.Tensor:
        return torch.zeros(tuple(shape), dtype=self.dtype(dtype) or self.float64, device=self.device)

    def ones(self, shape: Any, dtype: Any = None) -> torch.Tensor:
        return torch.ones(tuple(shape), dtype=self.dtype(dtype) or self.float64, device=self.device)

    def full(self, shape: Any, value: float, dtype: Any = None) -> torch.Tensor:
        return torch.full(tuple(shape), value, dtype=self.dtype(dtype) or self.float64, device=self.device)

    def arange(self, lo: int, hi: int, dtype: Any = None) -> torch.Tensor:
        return torch.arange(lo, hi, dtype=self.dtype(dtype) or torch.int64, device=self.device)

    def copy(self, x: torch.Tensor) -> torch.Tensor:
        return self.asarray(x).clone()

    # ------------------------------------------------------------ shape
    def broadcast_to(self, x: Any, shape: Any) -> torch.Tensor:
        return torch.broadcast_to(self.asarray(x), tuple(shape))

    def transpose(self, x: torch.Tensor, perm: Any) -> torch.Tensor:
        return self.asarray(x).permute(tuple(perm))

    def reshape(self, x: torch.Tensor, shape: Any) -> torch.Tensor:
        return self.asarray(x).reshape(tuple(shape))

    def concatenate(self, xs: Any, axis: int = 0) -> torch.Tensor:
        return torch.cat([self.asarray(x) for x in xs], dim=axis)

    # ------------------------------------------------------------ elementwise and reductions
    def _binary(self, fn: Callable) -> Callable:
        def op(a: Any, b: Any) -> torch.Tensor:
            return fn(self.asarray(a, self.float64 if not isinstance(a, torch.Tensor) else None),
                      self.asarray(b, self.float64 if not isinstance(b, torch.Tensor) else None))
        return op

    def where(self, cond: Any, a: Any, b: Any) -> torch.Tensor:
        a = a if isinstance(a, torch.Tensor) else self.asarray(float(a))
        b = b if isinstance(b, torch.Tensor) else self.asarray(float(b))
        return torch.where(self.asarray(cond, torch.bool), a, b)

    def clip(self, x: torch.Tensor, lo: Any, hi: Any) -> torch.Tensor:
        return torch.clamp(x, lo, hi)

    @staticmethod
    def _dims(axis: Any) -> tuple[int, ...] | None:
        return None if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))

    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        x, dims = self.asarray(x), self._dims(axis)
        if dims is None:
            return torch.sum(x)
        return torch.sum(x, dim=dims, keepdim=keepdims) if dims else x

    def mean(self, x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        x, dims = self.asarray(x), self._dims(axis)
        return torch.mean(x) if dims is None else torch.mean(x, dim=dims, keepdim=keepdims)

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        x, dims = self.asarray(x), self._dims(axis)
        if dims is None:
            return torch.amax(x)
        return torch.amax(x, dim=dims, keepdim=keepdims) if dims else x

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> torch.Tensor:
        x, dims = self.asarray(x), self._dims(axis)
        if dims is None:
            return torch.amin(x)
        return torch.amin(x, dim=dims, keepdim=keepdims) if dims else x

    def abs(self, x: Any) -> torch.Tensor:
        return torch.abs(self.asarray(x))

    def exp(self, x: Any) -> torch.Tensor:
        return torch.exp(self.asarray(x))

    def sqrt(self, x: Any) -> torch.Tensor:
        return torch.sqrt(self.asarray(x))

    def isfinite(self, x: Any) -> torch.Tensor:
        return torch.isfinite(self.asarray(x))

    def errstate(self, **kwargs: Any) -> contextlib.AbstractContextManager:
        """torch never warns on division by zero or invalid values (numpy's `errstate`, a no-op here)."""
        return contextlib.nullcontext()

    # ------------------------------------------------------------ scatters
    def _add_at(self, acc: torch.Tensor, idx: tuple, v: Any) -> None:
        acc.index_put_(tuple(self.asarray(i, torch.int64) for i in idx), self.asarray(v, acc.dtype),
                       accumulate=True)

    def _reduce_at(self, acc: torch.Tensor, idx: tuple, v: Any, how: str) -> None:
        flat = torch.zeros((), dtype=torch.int64, device=self.device)
        for i, n in zip(idx, acc.shape):
            flat = flat * n + self.asarray(i, torch.int64)
        v = torch.broadcast_to(self.asarray(v, acc.dtype), flat.shape).reshape(-1)
        acc.view(-1).scatter_reduce_(0, flat.reshape(-1), v, reduce=how)


class TorchBackend:
    """Dense execution on torch tensors (CPU or CUDA), float64 unless `dtype` says otherwise."""

    native = False  # arrays are not numpy's: the executor converts data and answers at the boundary

    def __init__(self, device: str | None = None, dtype: str | None = None) -> None:
        self.device = _device(device or "cpu")
        if (dtype or "float64") not in _DTYPES:
            raise TLRuntimeError(f"unknown dtype '{dtype}' for the torch backend", hint="use float64 or float32")
        self.dtype_name = dtype or "float64"
        self.dtype = _DTYPES[self.dtype_name]
        self.xp = TorchNamespace(self.device, self.dtype)
        dev = "" if self.device.type == "cpu" else f":{self.device}"
        self.name = "torch" + dev + ("" if self.dtype_name == "float64" else f":{self.dtype_name}")
        f = self._float
        self.functions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
            "step": lambda x: (f(x) > 0).to(self.dtype), "sig": lambda x: torch.sigmoid(f(x)),
            "relu": lambda x: torch.clamp_min(f(x), 0.0), "tanh": lambda x: torch.tanh(f(x)),
            "exp": lambda x: torch.exp(f(x)), "log": lambda x: torch.log(f(x)), "sqrt": lambda x: torch.sqrt(f(x)),
            "abs": lambda x: torch.abs(f(x)), "sin": lambda x: torch.sin(f(x)), "cos": lambda x: torch.cos(f(x)),
        }
        self._sparse: dict[int, tuple[Any, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"TorchBackend(device={str(self.device)!r}, dtype={self.dtype_name!r})"

    def _float(self, x: Any) -> torch.Tensor:
        return self.xp.asarray(x, self.dtype)

    # ------------------------------------------------------------ device memory
    def reset_device_peak(self) -> None:
        """Start a new measurement of the device allocator's peak (CUDA only; nothing on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def device_peak_bytes(self) -> int | None:
        """`torch.cuda.max_memory_allocated` since the last reset (bytes), or None off CUDA."""
        if self.device.type != "cuda":
            return None
        torch.cuda.synchronize(self.device)
        return int(torch.cuda.max_memory_allocated(self.device))

    def device_bytes_now(self) -> int | None:
        """`torch.cuda.memory_allocated` now (bytes), or None off CUDA."""
        if self.device.type != "cuda":
            return None
        return int(torch.cuda.memory_allocated(self.device))

    # ------------------------------------------------------------ boundary
    def from_numpy(self, a: Any) -> torch.Tensor:
        """A numpy value (data, initial values) as a tensor on this backend's device."""
        return self.xp.asarray(a)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A value of this backend as a numpy array (float64 for floats)."""
        return tensor_to_numpy(a)

    def sparse_matmul(self, mat: Any, arr: torch.Tensor) -> torch.Tensor:
        """scipy sparse matrix @ dense 2-D tensor, as a torch sparse product on the device."""
        key = id(mat)
        hit = self._sparse.get(key)
        if hit is None or hit[0] is not mat:
            coo = mat.tocoo()
            idx = torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64), device=self.device)
            vals = torch.as_tensor(coo.data.astype(np.float64), device=self.device).to(self.dtype)
            sm = torch.sparse_coo_tensor(idx, vals, coo.shape, check_invariants=False).coalesce()
            if len(self._sparse) > 64:
                self._sparse.clear()
            hit = self._sparse[key] = (mat, sm)
        return torch.sparse.mm(hit[1], self._float(arr))

    # ------------------------------------------------------------ computation
    def contract(self, subscripts: str, *operands: torch.Tensor) -> torch.Tensor:
        """One pairwise (or single-operand) contraction in einsum notation."""
        return torch.einsum(subscripts, *[self._float(o) for o in operands])

    def softmax(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        x = self._float(x)
        m = torch.amax(x, dim=axis, keepdim=True)
        m = torch.where(torch.isfinite(m), m, torch.zeros((), dtype=m.dtype, device=m.device))
        e = torch.exp(x - m)
        return e / torch.sum(e, dim=axis, keepdim=True)

    def lnorm(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        x = self._float(x)
        mean = torch.mean(x, dim=axis, keepdim=True)
        var = torch.mean((x - mean) ** 2, dim=axis, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5)

    def sig_temperature(self, x: torch.Tensor, t: float) -> torch.Tensor:
        """Sigmoid with temperature: 1/(1+exp(-x/T)); T = 0 is exactly step."""
        x = self._float(x)
        if t == 0:
            return (x > 0).to(self.dtype)
        return torch.sigmoid(x / t)


def tensor_to_numpy(a: Any) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array; floats come back as float64."""
    if isinstance(a, torch.Tensor):
        a = a.detach()
        if a.is_floating_point() and a.dtype != torch.float64:
            a = a.to(torch.float64)
        return a.cpu().numpy()
    return np.asarray(a)


def _device(spec: str | torch.device) -> torch.device:
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError) as e:
        raise TLRuntimeError(f"unknown torch device '{spec}': {e}", hint="use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TLRuntimeError(f"the torch device '{spec}' is not available: torch sees no CUDA GPU",
                                 hint="use --device cpu, or install a CUDA build of torch on a GPU machine")
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        if dev.index >= torch.cuda.device_count():
            raise TLRuntimeError(f"there is no CUDA device {dev.index} (torch sees {torch.cuda.device_count()})")
    elif dev.type != "cpu" and not _available(dev):
        raise TLRuntimeError(f"the torch device '{spec}' is not available", hint="use cpu or cuda")
    return dev


def _available(dev: torch.device) -> bool:
    try:
        torch.zeros(1, device=dev)
        return True
    except (RuntimeError, AssertionError):
        return False

