"""The numpy backend: dense arrays on the CPU, BLAS through `numpy.einsum` / `tensordot`.

A backend is a small object:

* `xp`, the array namespace the runtime (runtime/dense.py, runtime/executor.py) calls for every array
  operation: numpy's own names (`zeros`, `where`, `transpose`, `broadcast_to`, `sum`, `add.at`, `errstate`,
  `asarray(x, dtype=xp.float64)`, ...). Here it is the `numpy` module itself, so the numpy path costs nothing
  extra; the torch backend supplies an object with the same names (`torch_backend.TorchNamespace`).
* `contract(subscripts, a, b)` for one pairwise contraction, `functions` (the elementwise functions of
  LANGUAGE.md section 5), `softmax`, `lnorm`, `sig_temperature`.
* the boundary: `from_numpy` (data and initial values, relations made dense), `to_numpy` (what users see),
  `sparse_matmul` (a scipy CSR relation times a dense array). `native` is True when arrays are numpy's.

`get_backend(name, device, dtype)` makes one; torch is imported only when a torch backend is asked for.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np


def _sig(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _step(x: np.ndarray) -> np.ndarray:
    return (np.asarray(x) > 0).astype(np.float64)


def _log(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x)


def _sqrt(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sqrt(x)


@functools.lru_cache(maxsize=4096)
def _pair_plan(subscripts: str, sa: tuple[int, ...], sb: tuple[int, ...]) -> tuple | None:
    """How to compute `einsum(subscripts, a, b)` with numpy's elementwise product or matmul (see `_run_pair`),
    or None when an operand repeats an index (a diagonal: left to einsum)."""
    ins, out = subscripts.split("->")
    la, lb = ins.split(",")
    if len(set(la)) != len(la) or len(set(lb)) != len(lb) or len(set(out)) != len(out):
        return None
    size = dict(zip(la, sa))
    for c, n in zip(lb, sb):
        if size.setdefault(c, n) != n:
            return None  # broadcasting a size-1 axis: einsum's business
    sum_a = tuple(k for k, c in enumerate(la) if c not in lb and c not in out)  # summed, in one operand only
    sum_b = tuple(k for k, c in enumerate(lb) if c not in la and c not in out)
    la = "".join(c for c in la if c in lb or c in out)
    lb = "".join(c for c in lb if c in la or c in out)
    batch = [c for c in out if c in la and c in lb]
    summed = [c for c in la if c in lb and c not in out]
    keep_a = [c for c in out if c in la and c not in lb]
    keep_b = [c for c in out if c in lb and c not in la]
    mid = batch + keep_a + keep_b
    out_perm = tuple(mid.index(c) for c in out)
    out_perm = None if out_perm == tuple(range(len(out))) else out_perm
    if not summed:  # an elementwise product (an outer product for kept indices): broadcasting, exact
        pa = tuple(la.index(c) for c in batch + keep_a)
        pb = tuple(lb.index(c) for c in batch + keep_b)
        shape_a = tuple(size[c] for c in batch + keep_a) + (1,) * len(keep_b)
        shape_b = tuple(size[c] for c in batch) + (1,) * len(keep_a) + tuple(size[c] for c in keep_b)
        return ("mul", sum_a, sum_b, pa, shape_a, pb, shape_b, None, out_perm, False)
    pa = tuple(la.index(c) for c in batch + keep_a + summed)
    pb = tuple(lb.index(c) for c in batch + summed + keep_b)

    def prod(cs: list[str]) -> int:
        return int(np.prod([size[c] for c in cs], dtype=np.int64))

    nb, na, nk, nc = prod(batch), prod(keep_a), prod(keep_b), prod(summed)
    if out_perm is not None:  # a matmul that writes the output's layout directly, if one is not much slower
        for lx, ly, swap in ((la, lb, False), (lb, la, True)):
            j = len(out)
            while j > 0 and out[j - 1] in ly and out[j - 1] not in lx:
                j -= 1
            i = j
            while i > 0 and out[i - 1] in lx and out[i - 1] not in ly:
                i -= 1
            lead, m, n = list(out[:i]), list(out[i:j]), list(out[j:])
            if prod(lead) > 16 * nb or prod(m) * prod(n) < 64:
                continue  # many small products: the plain plan and a transposition cost less
            px = tuple(lx.index(c) for c in lead if c in lx) + tuple(lx.index(c) for c in m + summed)
            py = tuple(ly.index(c) for c in lead if c in ly) + tuple(ly.index(c) for c in summed + n)
            sx = tuple(size[c] if c in lx else 1 for c in lead) + (prod(m), nc)
            sy = tuple(size[c] if c in ly else 1 for c in lead) + (nc, prod(n))
            return ("matmul", sum_a, sum_b, px, sx, py, sy, tuple(size[c] for c in out), None, swap)
    shape_a, shape_b = ((na, nc), (nc, nk)) if not batch else ((nb, na, nc), (nb, nc, nk))
    res_shape = tuple(size[c] for c in mid)
    return ("matmul", sum_a, sum_b, pa, shape_a, pb, shape_b, res_shape, out_perm, False)


def _run_pair(plan: tuple, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    kind, sum_a, sum_b, pa, shape_a, pb, shape_b, res_shape, out_perm, swap = plan
    if sum_a:
        a = np.sum(a, axis=sum_a)
    if sum_b:
        b = np.sum(b, axis=sum_b)
    if swap:  # the plan multiplies b by a
        a, b = b, a
    a = np.transpose(a, pa).reshape(shape_a)
    b = np.transpose(b, pb).reshape(shape_b)
    res = a * b if kind == "mul" else np.matmul(a, b).reshape(res_shape)
    return res if out_perm is None else np.transpose(res, out_perm)


def pair_function(plan: tuple) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`_run_pair(plan, a, b)` as a closure specialised to the plan: the same operations, with the sums,
    transpositions and reshapes that do nothing left out (runtime/compiled_nodes.py calls it per run)."""
    kind, sum_a, sum_b, pa, shape_a, pb, shape_b, res_shape, out_perm, swap = plan

    def prep(perm: tuple[int, ...], shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
        if perm == tuple(range(len(perm))):
            return lambda x: x.reshape(shape)
        return lambda x: x.transpose(perm).reshape(shape)

    fa, fb = prep(pa, shape_a), prep(pb, shape_b)
    if sum_a or sum_b or swap:
        return lambda a, b: _run_pair(plan, a, b)
    if kind == "mul":
        if out_perm is None:
            return lambda a, b: fa(a) * fb(b)
        return lambda a, b: (fa(a) * fb(b)).transpose(out_perm)
    matmul = np.matmul
    if out_perm is None:
        return lambda a, b: matmul(fa(a), fb(b)).reshape(res_shape)
    return lambda a, b: matmul(fa(a), fb(b)).reshape(res_shape).transpose(out_perm)


def pair_out_shape(plan: tuple) -> tuple[int, ...] | None:
    """The shape `_run_pair_out` writes for a pair plan (before its final reshape), or None when the plan
    cannot write into a given array (its result is transposed afterwards)."""
    kind, _, _, _, shape_a, _, shape_b, _, out_perm, _ = plan
    if out_perm is not None:
        return None
    if kind == "mul":
        return tuple(np.broadcast_shapes(shape_a, shape_b))
    lead = tuple(np.broadcast_shapes(shape_a[:-2], shape_b[:-2]))
    return lead + (shape_a[-2], shape_b[-1])


def _run_pair_out(plan: tuple, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """`_run_pair` writing its result into `out` (of `pair_out_shape(plan)`, C-contiguous): the same
    products, no new array. Returns the result in `_run_pair`'s shape (a view of out)."""
    kind, sum_a, sum_b, pa, shape_a, pb, shape_b, res_shape, _, swap = plan
    if sum_a:
        a = np.sum(a, axis=sum_a)
    if sum_b:
        b = np.sum(b, axis=sum_b)
    if swap:
        a, b = b, a
    a = np.transpose(a, pa).reshape(shape_a)
    b = np.transpose(b, pb).reshape(shape_b)
    if kind == "mul":
        return np.multiply(a, b, out=out)
    return np.matmul(a, b, out=out).reshape(res_shape)


def softmax_inplace(x: np.ndarray, axis: int) -> np.ndarray:
    """`NumpyBackend.softmax` overwriting `x` (a fresh array nothing else refers to): the same operations in
    the same order, so the same numbers, without two temporaries of x's size."""
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    np.subtract(x, m, out=x)
    np.exp(x, out=x)
    return np.divide(x, np.sum(x, axis=axis, keepdims=True), out=x)


def _mean(x: np.ndarray, axis: int) -> np.ndarray:
    """`np.mean(x, axis=axis, keepdims=True)` as numpy computes it (a sum, then a division by the count),
    without its Python wrapper."""
    s = np.add.reduce(x, axis=axis, keepdims=True)
    return np.true_divide(s, x.shape[axis], out=s)


def lnorm_inplace(x: np.ndarray, axis: int) -> np.ndarray:
    """`NumpyBackend.lnorm` overwriting `x` (fresh): the same numbers."""
    np.subtract(x, _mean(x, axis), out=x)
    var = _mean(np.square(x), axis)
    return np.divide(x, np.sqrt(var + 1e-5), out=x)


def _inplace(f: Callable) -> Callable[[np.ndarray], np.ndarray]:
    return lambda x: f(x, out=x)


def _inplace_quiet(f: Callable) -> Callable[[np.ndarray], np.ndarray]:
    def g(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return f(x, out=x)
    return g


# elementwise functions that overwrite a fresh argument (runtime/compiled_nodes.py): same values as `functions`
INPLACE_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda x: np.maximum(x, 0.0, out=x), "tanh": _inplace(np.tanh), "exp": _inplace(np.exp),
    "abs": _inplace(np.abs), "sin": _inplace(np.sin), "cos": _inplace(np.cos), "log": _inplace_quiet(np.log),
    "sqrt": _inplace_quiet(np.sqrt),
}


class NumpyBackend:
    """Dense numpy execution."""

    name = "numpy"
    xp = np
    native = True
    device = "cpu"

    def __init__(self) -> None:
        self.functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "step": _step, "sig": lambda x: _sig(np.asarray(x, dtype=np.float64)),
            "relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh, "exp": np.exp, "log": _log,
            "sqrt": _sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos,
        }

    def from_numpy(self, a: np.ndarray) -> np.ndarray:
        return a

    def to_numpy(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    def sparse_matmul(self, mat, arr: np.ndarray) -> np.ndarray:
        """scipy sparse matrix @ dense 2-D array."""
        return np.asarray(mat @ arr)

    def contract(self, subscripts: str, *operands: np.ndarray) -> np.ndarray:
        """One pairwise (or single-operand) contraction in einsum notation: a product by broadcasting when no
        index is summed, else one `matmul` over (batch, kept, summed) axes, from a plan made once per
        subscripts and shapes; numpy's einsum where the plan does not apply (a repeated index)."""
        if len(operands) == 2:
            a, b = operands
            plan = _pair_plan(subscripts, a.shape, b.shape)
            if plan is not None:
                return _run_pair(plan, a, b)
            # the order is already planned: skip numpy's own path search, keep BLAS
            return np.einsum(subscripts, *operands, optimize=["einsum_path", (0, 1)])
        return np.einsum(subscripts, *operands)

    def softmax(self, x: np.ndarray, axis: int) -> np.ndarray:
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(x - m)
        return e / np.sum(e, axis=axis, keepdims=True)

    def lnorm(self, x: np.ndarray, axis: int) -> np.ndarray:
        mean = np.mean(x, axis=axis, keepdims=True)
        var = np.mean((x - mean) ** 2, axis=axis, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5)

    def sig_temperature(self, x: np.ndarray, t: float) -> np.ndarray:
        """Sigmoid with temperature: 1/(1+exp(-x/T)); T = 0 is exactly step."""
        if t == 0:
            return _step(x)
        return _sig(np.asarray(x, dtype=np.float64) / t)


BACKENDS = ("numpy", "torch")


def get_backend(name: str | object = "numpy", device: str | None = None, dtype: str | None = None):
    """The backend called `name` ("numpy" or "torch"), on `device` ("cpu", "cuda", "cuda:1"; torch only) with
    floats of `dtype` ("float64" by default, "float32"; torch only). A name may carry its device and dtype, as
    a torch backend's `name` does ("torch:cuda:0", "torch:cuda:0:float32"), so `get_backend(b.name)` makes
    the same backend again; a backend object is returned as it is."""
    from ..syntax.diagnostics import TLRuntimeError

    if not isinstance(name, str):
        return name
    kind, _, rest = name.partition(":")
    if rest:
        parts = rest.split(":")
        if parts[-1] in ("float32", "float64"):
            dtype = dtype or parts.pop()
        device = device or ":".join(parts) or None
    if kind == "numpy":
        if (device or "cpu") != "cpu":
            raise TLRuntimeError(f"the numpy backend runs on the CPU only, not on '{device}'",
                                 hint="use --backend torch for a GPU")
        if (dtype or "float64") != "float64":
            raise TLRuntimeError(f"the numpy backend computes in float64, not {dtype}")
        return NumpyBackend()
    if kind == "torch":
        try:
            from .torch_backend import TorchBackend
        except ImportError as e:
            raise TLRuntimeError(f"the torch backend needs PyTorch, which cannot be imported: {e}",
                                 hint="pip install torch==2.13.0") from None
        return TorchBackend(device, dtype)
    raise TLRuntimeError(f"unknown backend '{name}'", hint=f"the available backends are: {', '.join(BACKENDS)}")


def to_numpy(a: object) -> np.ndarray:
    """Any backend's array (a torch tensor on any device included) as a numpy array."""
    if isinstance(a, np.ndarray):
        return a
    if type(a).__module__.startswith("torch"):
        from .torch_backend import tensor_to_numpy

        return tensor_to_numpy(a)
    return np.asarray(a)
