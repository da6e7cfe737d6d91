"""Regenerate the small .npy data files used by the examples (seeded, so the files are reproducible).

    .venv/bin/python examples/data/make_data.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def transformer(rng: np.random.Generator) -> None:
    # vocabulary 5, model dimension 4, 2 heads of size 2, MLP hidden size 6, B = 2 blocks.
    # The per-block weights have one entry per block: shape (B, ...).
    vocab, dim, heads, dk, hidden, blocks = 5, 4, 2, 2, 6, 2

    def per_block(*shape: int, scale: float) -> np.ndarray:
        return rng.normal(scale=scale, size=(blocks, *shape))

    arrays = {
        "Emb": rng.normal(size=(vocab, dim)),
        "WQ": per_block(heads, dk, dim, scale=0.5),
        "WK": per_block(heads, dk, dim, scale=0.5),
        "WV": per_block(heads, dk, dim, scale=0.5),
        "WS": per_block(dim, heads * dk, scale=0.5),
        "W1": per_block(hidden, dim, scale=0.5),
        "W2": per_block(dim, hidden, scale=0.5),
        "WO": rng.normal(size=(vocab, dim)),
    }
    for name, arr in arrays.items():
        np.save(HERE / f"transformer_{name}.npy", arr)


def embeddings(rng: np.random.Generator) -> None:
    # 6 objects, random unit vectors of dimension 128.
    e = rng.normal(size=(6, 128))
    np.save(HERE / "reasoning_Emb.npy", e / np.linalg.norm(e, axis=1, keepdims=True))


if __name__ == "__main__":
    transformer(np.random.default_rng(2025))
    embeddings(np.random.default_rng(7))
