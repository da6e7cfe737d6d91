"""The compiled fast path (runtime/compiled.py, compiled_nodes.py) gives the numbers of numpy references.

Each program is run twice (the second run of an analysis also compiles whole heads) and compared against the
same computation written with numpy in the test; each test also checks that the equations really went through
the compiled path (the per-analysis cache holds a compiled entry), and that inputs are never overwritten by
the in-place elementwise chains. Left to the interpreter (and still correct): sparse relations in products,
user functions.
"""

from __future__ import annotations

import numpy as np
import pytest
from reference_algorithms import lnorm, relu, softmax

import tensorlogic as tl
from tensorlogic.learn.optimizers import Adam
from tensorlogic.runtime.compiled import compiled_for


def _compiled_count(prog: tl.Program) -> int:
    """How many equations of the last analysis the compiler accepted."""
    state = prog.executor._strata.get("compiled", {"eqs": {}})
    return sum(1 for _, code in state["eqs"].values() if code is not None)


def _run_twice(prog: tl.Program, **inputs):
    first = [np.array(a.value) for a in prog.run(**inputs)]
    second = [np.array(a.value) for a in prog.run(**inputs)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    return second


def test_mlp_bias_activation_chain_matches_numpy_and_keeps_inputs():
    rng = np.random.default_rng(0)
    x, w1, b1, w2, b2 = (rng.normal(size=s) for s in [(7, 5), (6, 5), (6,), (3, 6), (3,)])
    copies = [a.copy() for a in (x, w1, b1, w2, b2)]
    prog = tl.Program("H[e, h] = relu(W1[h, i] X[e, i] + B1[h])\nY[e, o] = tanh(W2[o, h] H[e, h] - B2[o])\n"
                      "Z[e, o] = sig(Y[e, o]) + exp(-Y[e, o])\nH?\nY?\nZ?\n")
    h, y, z = _run_twice(prog, X=x, W1=w1, B1=b1, W2=w2, B2=b2)
    h_ref = relu(x @ w1.T + b1)
    y_ref = np.tanh(h_ref @ w2.T - b2)
    np.testing.assert_allclose(h, h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, 1 / (1 + np.exp(-y_ref)) + np.exp(-y_ref), rtol=1e-12, atol=1e-12)
    for a, b in zip((x, w1, b1, w2, b2), copies):
        np.testing.assert_array_equal(a, b)  # nothing written in place into an input
    assert _compiled_count(prog) == 3


def test_layered_transformer_block_matches_numpy():
    rng = np.random.default_rng(1)
    blocks, heads, p, dk, d, f = 2, 2, 5, 3, 6, 8
    w = {"WQ": (blocks, heads, dk, d), "WK": (blocks, heads, dk, d), "WV": (blocks, heads, dk, d),
         "WS": (blocks, d, heads * dk), "W1": (blocks, f, d), "W2": (blocks, d, f)}
    vals = {k: rng.normal(size=s) / np.sqrt(s[-1]) for k, s in w.items()}
    x0 = rng.normal(size=(p, d))
    prog = tl.Program("""
Stream[0, p, d] = X0[p, d]
Query[b, h, p, dk] = WQ[b, h, dk, d] Stream[b, p, d]
Key[b, h, p, dk] = WK[b, h, dk, d] Stream[b, p, d]
Val[b, h, p, dv] = WV[b, h, dv, d] Stream[b, p, d]
Comp[b, h, p, p'.] = softmax(Query[b, h, p, dk] Key[b, h, p', dk] / sqrt(Dk))
Attn[b, h, p, dv] = Comp[b, h, p, p'] Val[b, h, p', dv]
Merge[b, p, dm] = concat(Attn[b, h, p, dv])
Resid[b, p, d.] = lnorm(WS[b, d, dm] Merge[b, p, dm] + Stream[b, p, d])
Hidden[b, p, f] = relu(W1[b, f, d] Resid[b, p, d])
Stream[b+1, p, d.] = lnorm(W2[b, d, f] Hidden[b, p, f] + Resid[b, p, d])
Stream?
""")
    (got,) = _run_twice(prog, X0=x0, Dk=dk, **vals)
    s = [x0]
    for b in range(blocks):
        q = np.einsum("hkd,pd->hpk", vals["WQ"][b], s[-1])
        k = np.einsum("hkd,pd->hpk", vals["WK"][b], s[-1])
        v = np.einsum("hkd,pd->hpk", vals["WV"][b], s[-1])
        attn = softmax(q @ k.transpose(0, 2, 1) / np.sqrt(dk)) @ v
        merge = attn.transpose(1, 0, 2).reshape(p, heads * dk)
        resid = lnorm(merge @ vals["WS"][b].T + s[-1])
        s.append(lnorm(relu(resid @ vals["W1"][b].T) @ vals["W2"][b].T + resid))
    np.testing.assert_allclose(got, np.array(s), rtol=1e-10, atol=1e-12)
    assert any(r.kind == "layered" for r in prog.report.strata)
    layered = [v for k, v in prog.executor._strata.items() if isinstance(k, tuple) and k[0] == "layer-steps"]
    assert layered and all(step._code is not None for step in layered[0][0])
    assert layered[0][1]  # tensors assigned cell by cell: started without zeros on the second run
    held = prog.executor.values["Stream"]  # a value someone holds is never reused as the next run's buffer
    kept = held.copy()
    (again,) = _run_twice(prog, X0=2 * x0, Dk=dk, **vals)
    np.testing.assert_array_equal(held, kept)
    assert not np.array_equal(again, got)


def test_gathers_with_index_arithmetic_and_padding():
    # index ranges as docs/language.md decides: a shift restricts its variable, a sum of variables ("same"
    # padding) reads zeros outside, `Y[i/2]` runs i over [0, 2n)
    rng = np.random.default_rng(2)
    x, m, k, y = rng.normal(size=8), rng.normal(size=(4, 6)), rng.normal(size=3), rng.normal(size=4)
    prog = tl.Program("A[i] = X[i+1] - X[i-1]\nB[i] = X[i+3]\nC[i, j] = M[j, i] M[j, i+2]\n"
                      "D[i] = Y[i/2]\nE[p] = X[p+d] K[d]\nA?\nB?\nC?\nD?\nE?\n")
    a, b, c, d, e = _run_twice(prog, X=x, M=m, K=k, Y=y)

    def at(v, j):
        return v[j] if 0 <= j < len(v) else 0.0

    np.testing.assert_allclose(a, [0.0] + [x[i + 1] - x[i - 1] for i in range(1, 7)], rtol=1e-12)
    np.testing.assert_allclose(b, x[3:], rtol=1e-12)
    np.testing.assert_allclose(c, (m[:, :4] * m[:, 2:]).T, rtol=1e-12)
    np.testing.assert_allclose(d, np.repeat(y, 2), rtol=1e-12)
    np.testing.assert_allclose(e, [sum(at(x, p + j) * k[j] for j in range(3)) for p in range(8)], rtol=1e-12)
    assert _compiled_count(prog) == 5


def test_scatters_sliced_unique_and_accumulating():
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    prog = tl.Program("tensor S[4, 3]\ntensor H[6]\ntensor P[14]\n"
                      "S[i/3, i%3] = X[i]\nH[i/2] = X[i]\nP[i+2] = X[i]\nQ[0, i] = X[i]\nS?\nH?\nP?\nQ?\n")
    s, h, p, q = _run_twice(prog, X=x)
    np.testing.assert_allclose(s, x.reshape(4, 3), rtol=1e-12)
    np.testing.assert_allclose(h, x.reshape(6, 2).sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(p, np.concatenate([[0, 0], x]), rtol=1e-12)
    np.testing.assert_allclose(q, x[None, :], rtol=1e-12)
    assert _compiled_count(prog) == 4


@pytest.mark.parametrize("op,fold", [("max", np.max), ("min", np.min), ("avg", np.mean)])
def test_max_min_avg_heads(op, fold):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 4))
    prog = tl.Program(f"R[i] {op}= X[i, j]\nT {op}= X[i, j] X[i, j]\nR?\nT?\n")
    r, t = _run_twice(prog, X=x)
    np.testing.assert_allclose(r, fold(x, axis=1), rtol=1e-12)
    np.testing.assert_allclose(t, fold(x * x), rtol=1e-12)


def test_data_plus_equations_and_several_equations_per_head():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=4)
    y0 = np.array([1.0, -2.0, 0.5])
    prog = tl.Program("Y = [1, -2, 0.5]\nY[i] = A[i, j] B[j]\nY[i] = A[i, j]\nY?\n")
    (y,) = _run_twice(prog, A=a, B=b)
    np.testing.assert_allclose(y, y0 + a @ b + a.sum(axis=1), rtol=1e-12)


def test_scalars_powers_and_division():
    rng = np.random.default_rng(6)
    x = rng.random(6) + 0.5
    prog = tl.Program("S = X[i] X[i]\nN = sqrt(S)\nU[i] = X[i] / N + X[i]^3 - i\nV[i, j] = X[i] / X[j]\n"
                      "S?\nN?\nU?\nV?\n")
    s, n, u, v = _run_twice(prog, X=x)
    np.testing.assert_allclose(s, x @ x, rtol=1e-12)
    np.testing.assert_allclose(n, np.sqrt(x @ x), rtol=1e-12)
    np.testing.assert_allclose(u, x / np.sqrt(x @ x) + x ** 3 - np.arange(6), rtol=1e-12)
    np.testing.assert_allclose(v, x[:, None] / x[None, :], rtol=1e-12)


def test_shared_join_and_numeric_fixpoint():
    rng = np.random.default_rng(7)
    a, b, c = rng.random((4, 5)), rng.random((5, 6)), rng.random(6)
    prog = tl.Program("P[i] = A[i,j] B[j,k] C[k]\nQ[i] = relu(A[i,j] B[j,k] C[k]) + 1\nP?\nQ?\n")
    p, q = _run_twice(prog, A=a, B=b, C=c)
    np.testing.assert_allclose(p, a @ b @ c, rtol=1e-12)
    np.testing.assert_allclose(q, relu(a @ b @ c) + 1, rtol=1e-12)
    assert prog.executor.shared_joins >= 1
    w = np.array([[0, 0.5], [0.5, 0]])
    fix = tl.Program("X = [1, 0]\nX[i] = W[i,j] X[j]\nX?\n")
    (x,) = _run_twice(fix, W=w)
    ref = np.array([1.0, 0.0])
    for _ in range(200):
        ref = np.array([1.0, 0.0]) + w @ ref
    np.testing.assert_allclose(x, ref, atol=1e-8)


def test_sparse_relation_and_user_function_fall_back_correctly():
    rng = np.random.default_rng(8)
    n = 30
    edges = sorted({(int(a), int(b)) for a, b in rng.integers(0, n, size=(40, 2))})
    z = rng.normal(size=(n, 3))
    prog = tl.Program("Agg[x, d] = Neig(x, y) Z[y, d]\nF[x, d] = twice(Agg[x, d])\nAgg?\nF?\n",
                      functions={"twice": lambda v: 2 * v})
    agg, f = _run_twice(prog, Neig=edges, Z=z)
    adj = np.zeros((n, n))
    adj[tuple(np.array(edges).T)] = 1
    np.testing.assert_allclose(agg, adj @ z, rtol=1e-12)
    np.testing.assert_allclose(f, 2 * adj @ z, rtol=1e-12)
    eqs = {e.lhs: e for e in prog.analyzed.equations}
    assert compiled_for(prog.executor, eqs["F"]) is None  # a user function: interpreted


def test_runtime_errors_keep_their_diagnostics():
    prog = tl.Program("Y[i] = boom(X[i])\nY?\n", functions={"boom": lambda v: 1 / 0})
    with pytest.raises(tl.TLError) as err:
        prog.run(X=np.ones(3))
    assert "boom" in str(err.value)


def test_gradient_step_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x, t = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    params = {"W1": rng.normal(size=(5, 4)), "B1": rng.normal(size=5), "W2": rng.normal(size=(2, 5))}
    prog = tl.Program("H[e, h] = relu(W1[h, i] X[e, i] + B1[h])\nY[e, o] = W2[o, h] H[e, h]\n"
                      "Loss = (Y[e, o] - T[e, o])^2\n")
    ps = {k: v.copy() for k, v in params.items()}
    tp = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt, topt = Adam(0.01), torch.optim.Adam(list(tp.values()), lr=0.01)
    tx, tt = torch.tensor(x), torch.tensor(t)
    for _ in range(3):
        grads = prog.grad("Loss", sorted(ps), X=x, T=t, **ps)
        topt.zero_grad()
        loss = (((torch.relu(tx @ tp["W1"].T + tp["B1"]) @ tp["W2"].T) - tt) ** 2).sum()
        loss.backward()
        for k in ps:
            np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-10, atol=1e-12)
        assert abs(prog.last_loss - loss.item()) <= 1e-10 * abs(loss.item())
        opt.step(ps, grads)
        topt.step()
        for k in ps:
            np.testing.assert_allclose(ps[k], tp[k].detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_specialised_pair_kernels_equal_einsum(seed: int):
    import random

    from tensorlogic.backends.numpy_backend import _pair_plan, _run_pair_out, pair_function, pair_out_shape

    rnd, rng = random.Random(seed), np.random.default_rng(seed)
    letters = "abcdef"
    checked = 0
    for _ in range(300):
        la = "".join(rnd.sample(letters, rnd.randint(1, 4)))
        lb = "".join(rnd.sample(letters, rnd.randint(1, 4)))
        used = sorted(set(la + lb))
        out = "".join(rnd.sample(used, rnd.randint(1, len(used))))
        size = {c: rnd.choice([1, 2, 3, 5, 8]) for c in letters}
        a, b = rng.normal(size=[size[c] for c in la]), rng.normal(size=[size[c] for c in lb])
        sub = f"{la},{lb}->{out}"
        plan = _pair_plan(sub, a.shape, b.shape)
        if plan is None:
            continue
        want = np.einsum(sub, a, b)
        np.testing.assert_allclose(pair_function(plan)(a, b), want, rtol=1e-12, atol=1e-12, err_msg=sub)
        shape = pair_out_shape(plan)
        if shape is not None and not plan[1] and not plan[2]:  # written into a given array (no pre-summing)
            dest = np.full(shape, np.nan)
            got = _run_pair_out(plan, a, b, dest)
            np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-12, atol=1e-12, err_msg=sub)
            assert np.shares_memory(got, dest)
        checked += 1
    assert checked > 100


def test_inplace_kernels_equal_plain_formulas():
    from tensorlogic.backends.numpy_backend import INPLACE_FUNCTIONS, lnorm_inplace, softmax_inplace

    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 4, 5)) * 5
    for axis in range(3):
        np.testing.assert_allclose(softmax_inplace(x.copy(), axis), softmax(x, axis), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(lnorm_inplace(x.copy(), axis), lnorm(x, axis), rtol=1e-12, atol=1e-12)
    plain = {"relu": relu, "tanh": np.tanh, "exp": np.exp, "abs": np.abs, "sin": np.sin, "cos": np.cos,
             "log": lambda v: np.log(np.abs(v)), "sqrt": lambda v: np.sqrt(np.abs(v))}
    for name, f in INPLACE_FUNCTIONS.items():
        arg = np.abs(x) if name in ("log", "sqrt") else x
        y = arg.copy()
        out = f(y)
        assert out is y or np.shares_memory(out, y)  # really in place
        np.testing.assert_allclose(out, plain[name](arg), rtol=1e-13, err_msg=name)


def test_adam_in_place_follows_the_formulas():
    rng = np.random.default_rng(11)
    p = rng.normal(size=(4, 3))
    ref = p.copy()
    opt = Adam(0.05, weight_decay=0.01, decoupled=True)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t in range(1, 6):
        g = rng.normal(size=p.shape)
        opt.step({"w": p}, {"w": g})
        ref *= 1 - 0.05 * 0.01
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref -= 0.05 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(p, ref, rtol=1e-13)


def test_layered_recursion_with_the_layer_in_the_middle():
    # the layer index is the middle axis of the stacked tensors (a GNN's Emb[n, l, d]): written by strided slices
    rng = np.random.default_rng(12)
    n, layers, d = 6, 3, 4
    x, wp, adj = rng.normal(size=(n, d)), rng.normal(size=(layers, d, d)), rng.random((n, n))
    prog = tl.Program("Emb[n, 0, d] = X[n, d]\nZ[n, l, e] = relu(WP[l, e, d] Emb[n, l, d])\n"
                      "Agg[n, l, d] = A[n, m] Z[m, l, d]\nEmb[n, l+1, d] = tanh(Agg[n, l, d]) + Emb[n, l, d]\n"
                      "Emb?\nZ?\n")
    emb, z = _run_twice(prog, X=x, WP=wp, A=adj)
    want_e, want_z = [x], []
    for layer in range(layers):
        want_z.append(relu(want_e[-1] @ wp[layer].T))
        want_e.append(np.tanh(adj @ want_z[-1]) + want_e[-1])
    np.testing.assert_allclose(emb, np.stack(want_e, axis=1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(z, np.stack(want_z, axis=1), rtol=1e-12, atol=1e-12)
    assert any(r.kind == "layered" for r in prog.report.strata)
