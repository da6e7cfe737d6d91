"""Independent reference algorithms shared by the planner tests."""

from __future__ import annotations


def classic_matrix_chain(dims: list[int]) -> int:
    n = len(dims) - 1
    best = [[0] * n for _ in range(n)]
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            best[i][j] = min(best[i][k] + best[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1] for k in range(i, j))
    return best[0][n - 1]
