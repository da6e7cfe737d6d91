"""The runtime's fast paths give the numbers of their plain definitions.

* the numpy backend's pairwise contraction (a broadcast product or one matmul from a cached plan, possibly
  with operands swapped and batch axes broadcast) against `numpy.einsum`, on random subscripts;
* reruns of a Program: the analysis is reused only while relation tuples are equal, so changed tuples give
  the new answer (against numpy);
* heads written by slicing (constant positions, shifts, max=/min=/avg=) against numpy.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

import tensorlogic as tl
from tensorlogic.backends.numpy_backend import NumpyBackend


@pytest.mark.parametrize("seed", range(4))
def test_pairwise_contraction_equals_einsum(seed: int) -> None:
    rnd, rng, be = random.Random(seed), np.random.default_rng(seed), NumpyBackend()
    letters = "abcdef"
    for _ in range(300):
        la = "".join(rnd.sample(letters, rnd.randint(0, 4)))
        lb = "".join(rnd.sample(letters, rnd.randint(0, 4)))
        used = sorted(set(la + lb))
        out = "".join(rnd.sample(used, rnd.randint(0, len(used))))
        size = {c: rnd.choice([1, 2, 3, 5, 9, 12]) for c in letters}
        if rnd.random() < 0.05:
            size[rnd.choice(letters)] = 0
        a = rng.normal(size=[size[c] for c in la])
        b = rng.normal(size=[size[c] for c in lb])
        sub = f"{la},{lb}->{out}"
        got, want = be.contract(sub, a, b), np.einsum(sub, a, b)
        assert got.shape == want.shape, sub
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=sub)


def test_attention_shaped_contractions() -> None:
    rng, be = np.random.default_rng(1), NumpyBackend()
    cases = [("abcd,aed->abec", (2, 4, 32, 64), (2, 16, 64)),  # Query[b,h,p,k] = WQ[b,h,k,d] S[b,p,d]
             ("abc,adc->adb", (1, 64, 32), (1, 16, 32)),  # Hidden[b,p,f] = W1[b,f,d] R[b,p,d]
             ("abcd,abed->abce", (2, 4, 16, 8), (2, 4, 16, 8))]  # Comp[b,h,p,p'] = Q K
    for sub, sa, sb in cases:
        a, b = rng.normal(size=sa), rng.normal(size=sb)
        np.testing.assert_allclose(be.contract(sub, a, b), np.einsum(sub, a, b), rtol=1e-12, atol=1e-12)


def test_rerun_with_changed_tuples_is_reanalysed() -> None:
    prog = tl.Program("Deg[x] = E(x, y) W[y]\nDeg?\n")
    w = np.arange(4.0) + 1
    first = [(0, 1), (1, 2), (2, 3), (3, 0)]
    prog.run(E=first, W=w)
    a = np.zeros((4, 4))
    a[tuple(np.array(first).T)] = 1
    np.testing.assert_allclose(prog["Deg"], a @ w)
    prog.run(E=list(first), W=2 * w)  # equal tuples, new array: the analysis is reused
    np.testing.assert_allclose(prog["Deg"], a @ (2 * w))
    second = [(0, 1), (3, 0), (1, 3), (2, 2)]  # as many tuples: told apart by content
    prog.run(E=second, W=w)
    b = np.zeros((4, 4))
    b[tuple(np.array(second).T)] = 1
    np.testing.assert_allclose(prog["Deg"], b @ w)


def test_sliced_heads() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(4, 5))
    prog = tl.Program("""
Mx[i] max= A[i, j]
Mn[i] min= A[i, j]
Av[i] avg= A[i, j]
Sh[i+1] max= A[i, j]
Row[j] = A[2, j]
Put[1, j] = A[3, j]
""")
    prog.run(A=a)
    np.testing.assert_allclose(prog["Mx"], a.max(1))
    np.testing.assert_allclose(prog["Mn"], a.min(1))
    np.testing.assert_allclose(prog["Av"], a.mean(1))
    np.testing.assert_allclose(prog["Sh"][1:], a.max(1))
    assert prog["Sh"][0] == 0
    np.testing.assert_allclose(prog["Row"], a[2])
    np.testing.assert_allclose(prog["Put"][1], a[3])
    assert not prog["Put"][0].any()


def test_layered_recursion_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(6, 4)), rng.normal(size=(3, 4, 4)) / 2
    prog = tl.Program("""
H[n, 0, d] = X[n, d]
H[n, l+1, e] = relu(W[l, e, d] H[n, l, d])
Out[n, e] = H[n, L, e]
Out?
""")
    prog.run(X=x, W=w, L=3)
    h = x
    for layer in range(3):
        h = np.maximum(h @ w[layer].T, 0)
    np.testing.assert_allclose(prog["Out"], h, rtol=1e-12)
