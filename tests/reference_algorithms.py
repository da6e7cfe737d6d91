"""Independent reference algorithms shared by the tests: the classic matrix-chain optimum, and the numpy
forms of the nonlinearities the examples use (written here, not taken from tensorlogic)."""

from __future__ import annotations

import numpy as np


def classic_matrix_chain(dims: list[int]) -> int:
    n = len(dims) - 1
    best = [[0] * n for _ in range(n)]
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            best[i][j] = min(best[i][k] + best[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1] for k in range(i, j))
    return best[0][n - 1]


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def lnorm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """PyTorch's layer_norm without weights: biased variance, eps 1e-5."""
    m = x.mean(axis=axis, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axis, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5)
