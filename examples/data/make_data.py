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


def tucker(rng: np.random.Generator) -> None:
    # a 6 x 5 x 4 tensor of multilinear rank (2, 2, 2): core C and factor matrices M1, M2, M3.
    core = rng.normal(size=(2, 2, 2))
    m1, m2, m3 = rng.normal(size=(6, 2)), rng.normal(size=(5, 2)), rng.normal(size=(4, 2))
    np.save(HERE / "tucker_A.npy", np.einsum("ip,jq,kr,pqr->ijk", m1, m2, m3, core))


def cp(rng: np.random.Generator) -> None:
    # a 6 x 5 x 4 tensor of CP rank 3: the sum of three outer products.
    a, b, c = rng.normal(size=(6, 3)), rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    np.save(HERE / "cp_A.npy", np.einsum("ir,jr,kr->ijk", a, b, c))


def image() -> None:
    # a small 12 x 12 RGB image (a disc over a diagonal gradient), values in [0, 1], for the tubal example.
    y, x = np.mgrid[0:12, 0:12] / 11.0
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.08).astype(float)
    img = np.stack([0.3 + 0.5 * x, 0.2 + 0.6 * y * disc, 0.8 * disc + 0.1 * (1 - x)], axis=2)
    np.save(HERE / "image.npy", np.clip(img, 0.0, 1.0))


def kinship_embeddings(rng: np.random.Generator) -> None:
    # orthonormal embeddings of the 104 people of Kinships (a random rotation): readback is exact at T = 0.
    q, _ = np.linalg.qr(rng.normal(size=(104, 104)))
    np.save(HERE / "kinships_Emb.npy", q)


def karate() -> None:
    # Zachary's karate club (networkx): edges both ways, and 1 for the members who followed the officer.
    import networkx as nx

    g = nx.karate_club_graph()
    rows = [f"{a},{b}" for a, b in g.edges()] + [f"{b},{a}" for a, b in g.edges()]
    (HERE / "karate_edges.csv").write_text("\n".join(rows) + "\n")
    labels = np.array([1.0 if g.nodes[n]["club"] == "Officer" else 0.0 for n in g.nodes()])
    np.save(HERE / "karate_labels.npy", labels)


def chars() -> None:
    # the character-level corpus as training windows: X[e,p,t] is character t at position p of window e,
    # Tgt[e,p,t] the character that follows it; Mask[p,p'] is 1 where p' lies in p's future.
    text = (HERE / "corpus.txt").read_text().replace("\n", " ")
    vocab = sorted(set(text))
    ids = np.array([vocab.index(c) for c in text])
    positions, windows = 8, 48
    X = np.zeros((windows, positions, len(vocab)))
    Y = np.zeros_like(X)
    for e in range(windows):
        for p in range(positions):
            X[e, p, ids[e + p]] = 1
            Y[e, p, ids[e + p + 1]] = 1
    np.save(HERE / "chars_X.npy", X)
    np.save(HERE / "chars_Tgt.npy", Y)
    np.save(HERE / "chars_Mask.npy", np.triu(np.ones((positions, positions)), k=1))
    (HERE / "chars_vocab.txt").write_text("".join(vocab) + "\n")


if __name__ == "__main__":
    transformer(np.random.default_rng(2025))
    embeddings(np.random.default_rng(7))
    tucker(np.random.default_rng(11))
    cp(np.random.default_rng(13))
    image()
    kinship_embeddings(np.random.default_rng(17))
    karate()
    chars()
