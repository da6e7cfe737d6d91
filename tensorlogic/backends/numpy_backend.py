"""The numpy backend: dense arrays on the CPU, BLAS through `numpy.einsum` / `tensordot`.

A backend is a small object: `xp` (the array namespace the runtime uses for indexing, broadcasting and
reductions), `contract(subscripts, a, b)` for one pairwise contraction, and `functions`, the elementwise
functions of LANGUAGE.md section 5. Other backends (torch, cupy) implement the same protocol.
"""

from __future__ import annotations

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


class NumpyBackend:
    """Dense numpy execution."""

    name = "numpy"
    xp = np

    def __init__(self) -> None:
        self.functions: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            "step": _step, "sig": lambda x: _sig(np.asarray(x, dtype=np.float64)),
            "relu": lambda x: np.maximum(x, 0.0), "tanh": np.tanh, "exp": np.exp, "log": _log,
            "sqrt": _sqrt, "abs": np.abs, "sin": np.sin, "cos": np.cos,
        }

    def contract(self, subscripts: str, *operands: np.ndarray) -> np.ndarray:
        """One pairwise (or single-operand) contraction in einsum notation."""
        if len(operands) == 2:  # the order is already planned: skip numpy's own path search, keep BLAS
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


def get_backend(name: str = "numpy") -> NumpyBackend:
    """The backend called `name`. Only numpy exists so far; torch and cupy come with the learning issue."""
    if name == "numpy":
        return NumpyBackend()
    from ..syntax.diagnostics import TLRuntimeError

    raise TLRuntimeError(f"unknown backend '{name}'", hint="the available backend is: numpy")
