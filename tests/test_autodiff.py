"""Gradients from tensorlogic's autodiff (gradient programs) against torch.autograd in float64.

Every reference here is the same computation written directly with torch operations; torch differentiates it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from test_einsum_random import REFS, SIZES, _walk, children, render, summation_sites, tree_vars, trees

import tensorlogic as tl

torch.set_default_dtype(torch.float64)
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def tt(x) -> torch.Tensor:
    return torch.tensor(np.asarray(x, dtype=np.float64), requires_grad=True)


def check(prog: tl.Program, loss_fn, values: dict, wrt: list[str], loss: str = "Loss", rtol=1e-7, atol=1e-9):
    """prog.grad(loss, wrt) against torch.autograd of loss_fn(**torch tensors)."""
    got = prog.grad(loss, wrt, **values)
    ts = {k: tt(v) if k in wrt else torch.tensor(np.asarray(v, dtype=np.float64)) for k, v in values.items()
          if not isinstance(v, list)}
    ref_loss = loss_fn(ts)
    ref_loss.backward()
    np.testing.assert_allclose(prog.last_loss, ref_loss.item(), rtol=1e-9, atol=1e-12)
    for name in wrt:
        np.testing.assert_allclose(got[name], ts[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)
    return got


# ---------------------------------------------------------------------------------------------- random programs

AXIS = {"i": 0, "k": 1, "m": 2}
TFUNCS = {"sig": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "relu": torch.relu, "abs": torch.abs,
          "sin": torch.sin}


def t_evaluate(n, data: dict[str, torch.Tensor], sites: dict[int, set[str]]) -> torch.Tensor:
    """The value of a random tree over (i, k, m), in torch (the numpy evaluator of test_einsum_random)."""
    kind = n[0]
    if kind == "ref":
        letters = REFS[n[1]]
        full = torch.einsum(f"{letters}->{''.join(sorted(letters, key=AXIS.get))}", data[n[1]])
        val = full.reshape([SIZES[c] if c in letters else 1 for c in "ikm"])
    elif kind == "num":
        val = torch.full((1, 1, 1), n[1])
    elif kind == "mul":
        val = torch.ones((1, 1, 1))
        for c in n[1]:
            val = val * t_evaluate(c, data, sites)
    elif kind == "add":
        val = torch.zeros((1, 1, 1))
        for c, s in zip(n[1], n[2]):
            val = val + s * t_evaluate(c, data, sites)
    elif kind == "neg":
        val = -t_evaluate(n[1], data, sites)
    elif kind == "pow":
        val = t_evaluate(n[1], data, sites) ** n[2]
    elif kind == "div":
        val = t_evaluate(n[1], data, sites) / n[2]
    else:
        val = TFUNCS[n[1]](t_evaluate(n[2], data, sites))
    for v in sites.get(id(n), ()):
        val = val.sum(dim=AXIS[v], keepdim=True)
    return val


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(), st.integers(0, 2**31 - 1))
@example(("pow", ("mul", (("ref", "A"), ("ref", "B"))), 2), 1)
@example(("call", "exp", ("neg", ("pow", ("add", (("ref", "A"), ("ref", "G")), (1, -1)), 2))), 2)
@example(("call", "sig", ("add", (("ref", "C"), ("ref", "F")), (1, 1))), 3)
@example(("mul", (("call", "tanh", ("mul", (("ref", "A"), ("ref", "B")))), ("ref", "H"))), 4)
def test_random_program_gradients(tree, seed):
    assume("i" in tree_vars(tree))
    used = sorted({n[1] for n in _walk(tree) if n[0] == "ref"})
    assume(used)
    rng = np.random.default_rng(seed)
    data = {name: rng.uniform(-1, 1, size=[SIZES[c] for c in REFS[name]]) for name in used}
    prog = tl.Program(f"Y[i] = {render(tree)}\nLoss = Y[i] Y[i]\n")
    sites = summation_sites(tree, {"i"})

    def loss_fn(ts):
        y = t_evaluate(tree, ts, sites).expand(SIZES["i"], 1, 1)[:, 0, 0]
        return (y * y).sum()

    check(prog, loss_fn, data, used)


def test_children_helper_is_shared():  # the tree helpers come from the summation-rule tests
    assert children(("neg", ("ref", "A"))) == [("ref", "A")]


# ---------------------------------------------------------------------------------------------- the paper's examples


def example_program(name: str, extra: str) -> tl.Program:
    text = (EXAMPLES / f"{name}.tl").read_text() + "\n" + extra + "\n"
    return tl.Program(text, file=str(EXAMPLES / f"{name}.tl"), base_dir=EXAMPLES)


def test_mlp_gradients_through_layers():
    rng = np.random.default_rng(0)
    W, x, tgt = rng.normal(size=(4, 3, 3)), rng.normal(size=3), rng.normal(size=3)
    prog = example_program("mlp", "Loss = (Out[j] - Tgt[j])^2")

    def loss_fn(ts):
        h = ts["Input"]
        for i in range(1, 4):
            h = torch.sigmoid(ts["W"][i] @ h)
        return ((h - ts["Tgt"]) ** 2).sum()

    got = check(prog, loss_fn, {"W": W, "Input": x, "Tgt": tgt}, ["W", "Input"])
    assert np.all(got["W"][0] == 0)  # layer 0 has no weights in use


def test_cnn_gradients_with_sum_and_max_pooling():
    rng = np.random.default_rng(1)
    image, filt = rng.normal(size=(6, 6, 2)), rng.normal(size=(2, 2, 2))
    c1, c2, c3 = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=(5, 5))
    prog = example_program("cnn", "Loss = Pooled[a,b] C1[a,b] + MaxPooled[c,d] C2[c,d] + "
                                  "ValidFeatures[e,f] C3[e,f]")

    def loss_fn(ts):
        img = torch.nn.functional.pad(ts["Image"], (0, 0, 0, 1, 0, 1))  # zeros past the bottom/right edge
        feats = torch.zeros(6, 6)
        for dx in range(2):
            for dy in range(2):
                feats = feats + torch.einsum("xyc,c->xy", img[dx:dx + 6, dy:dy + 6], ts["Filter"][dx, dy])
        feats = torch.relu(feats)
        blocks = feats.reshape(3, 2, 3, 2).permute(0, 2, 1, 3).reshape(3, 3, 4)
        pooled, maxpooled = blocks.sum(-1), blocks.amax(-1)
        return (pooled * ts["C1"]).sum() + (maxpooled * ts["C2"]).sum() + (feats[:5, :5] * ts["C3"]).sum()

    check(prog, loss_fn, {"Image": image, "Filter": filt, "C1": c1, "C2": c2, "C3": c3}, ["Image", "Filter"])


def test_gnn_gradients():
    rng = np.random.default_rng(2)
    X, WP, WOut = rng.normal(size=(5, 3)), rng.normal(size=(2, 3, 3)), rng.normal(size=3)
    cn, ce = rng.normal(size=5), rng.normal(size=(5, 5))
    prog = example_program("gnn", "Loss = YNode[n] CN[n] + YEdge[a,b] CE[a,b] + YGraph")
    adj = np.zeros((5, 5))
    for a, b in [(0, 1), (1, 2), (2, 3), (3, 4), (0, 2)]:
        adj[a, b] = adj[b, a] = 1
    vals = {"X": X, "WP": WP, "WOut": WOut, "WAgg": 0.5, "WSelf": 0.8, "CN": cn, "CE": ce}

    def loss_fn(ts):
        emb = ts["X"]
        A = torch.tensor(adj)
        for layer in range(2):
            z = torch.relu(emb @ ts["WP"][layer].T)
            emb = torch.relu(ts["WAgg"] * (A @ z) + ts["WSelf"] * emb)
        ynode = torch.sigmoid(emb @ ts["WOut"])
        yedge = torch.sigmoid(emb @ emb.T)
        ygraph = torch.sigmoid((emb @ ts["WOut"]).sum())
        return (ynode * ts["CN"]).sum() + (yedge * ts["CE"]).sum() + ygraph

    check(prog, loss_fn, vals, ["X", "WP", "WOut", "WAgg", "WSelf"])


def test_kernel_machine_gradients():
    rng = np.random.default_rng(3)
    X, XQ, A, tq = rng.normal(size=(4, 2)), rng.normal(size=(5, 2)), rng.normal(size=4), rng.normal(size=5)
    label = np.array([1.0, 1.0, -1.0, -1.0])
    prog = example_program("kernel_machine", "Loss = (ScorePoly[q] - TQ[q])^2 + (ScoreGauss[q] - TQ[q])^2")
    vals = {"X": X, "XQ": XQ, "A": A, "B": 0.1, "Var": 2.0, "TQ": tq, "Label": label}

    def loss_fn(ts):
        kq = (ts["XQ"] @ ts["X"].T) ** 2
        kg = torch.exp(-((ts["XQ"][:, None, :] - ts["X"][None, :, :]) ** 2).sum(-1) / ts["Var"])
        al = ts["A"] * ts["Label"]
        return ((kq @ al + ts["B"] - ts["TQ"]) ** 2).sum() + ((kg @ al + ts["B"] - ts["TQ"]) ** 2).sum()

    check(prog, loss_fn, vals, ["X", "XQ", "A", "B", "Var"])


def t_lnorm(x):
    m = x.mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(((x - m) ** 2).mean(-1, keepdim=True) + 1e-5)


def test_transformer_gradients():
    from test_examples import WEIGHTS, Example, random_transformer

    rng = np.random.default_rng(4)
    B, vocab, dim, heads, dk, hidden = 2, 5, 4, 2, 2, 6
    w = random_transformer(rng, vocab, dim, heads, dk, hidden, B)
    tokens = [3, 0, 2, 4, 1]
    target = rng.uniform(size=(len(tokens), vocab))
    ex = Example("transformer")
    src = ex.source(drop=("X", *WEIGHTS, "Dk", "B"), extra="Loss = (Y[p,t] - Tgt[p,t])^2\n")
    prog = tl.Program(src, file=str(ex.path), base_dir=EXAMPLES)
    P = len(tokens)
    pe = np.zeros((P, dim))
    for p in range(P):
        for d in range(dim):
            pe[p, d] = np.sin(p / 10000.0 ** (d / dim)) if d % 2 == 0 else np.cos(p / 10000.0 ** ((d - 1) / dim))

    def loss_fn(ts):
        s = ts["Emb"][tokens] + torch.tensor(pe)
        for b in range(B):
            q = torch.einsum("hkd,pd->hpk", ts["WQ"][b], s)
            k = torch.einsum("hkd,pd->hpk", ts["WK"][b], s)
            v = torch.einsum("hkd,pd->hpk", ts["WV"][b], s)
            comp = torch.softmax(torch.einsum("hpk,hqk->hpq", q, k) / np.sqrt(dk), dim=-1)
            merge = torch.einsum("hpq,hqv->hpv", comp, v).permute(1, 0, 2).reshape(P, -1)
            resid = t_lnorm(merge @ ts["WS"][b].T + s)
            s = t_lnorm(torch.relu(resid @ ts["W1"][b].T) @ ts["W2"][b].T + resid)
        y = torch.softmax(s @ ts["WO"].T, dim=-1)
        return ((y - ts["Tgt"]) ** 2).sum()

    vals = {**w, "Tgt": target, "Dk": dk, "B": B, "X": [(p, t) for p, t in enumerate(tokens)]}
    got = prog.grad("Loss", list(WEIGHTS), **vals)
    ts = {k: tt(v) for k, v in w.items()}
    ts["Tgt"] = torch.tensor(target)
    ref = loss_fn(ts)
    ref.backward()
    np.testing.assert_allclose(prog.last_loss, ref.item(), rtol=1e-9)
    for name in WEIGHTS:
        np.testing.assert_allclose(got[name], ts[name].grad.numpy(), rtol=1e-6, atol=1e-9, err_msg=name)


# ---------------------------------------------------------------------------------------------- constructs


@pytest.mark.parametrize("src,fn", [
    ("M[i] avg= X[i,j]\nLoss = M[i] C[i]", lambda t: (t["X"].mean(1) * t["C"]).sum()),
    ("M[i] min= X[i,j]\nLoss = M[i] C[i]", lambda t: (t["X"].amin(1) * t["C"]).sum()),
    ("M[i] max= X[i,j] X[i,j]\nLoss = M[i] C[i]", lambda t: ((t["X"] ** 2).amax(1) * t["C"]).sum()),
    ("P[j/2] avg= X[i,j]\nLoss = P[a] D[a]",
     lambda t: (t["X"].reshape(3, 2, 2).permute(1, 0, 2).reshape(2, 6).mean(1) * t["D"]).sum()),
    ("Y[i,j] = X[i,j] / (C[i] C[i] + 1)\nLoss = Y[i,j] Y[i,j]",
     lambda t: ((t["X"] / (t["C"][:, None] ** 2 + 1)) ** 2).sum()),
    ("Y[i] = log(exp(X[i,j]) + 2) + sqrt(abs(C[i]) + 1) + cos(C[i])\nLoss = Y[i] Y[i]",
     lambda t: ((torch.log(torch.exp(t["X"].sum(1)) + 2) + torch.sqrt(t["C"].abs() + 1) + torch.cos(t["C"])) ** 2)
     .sum()),
    ("Y[i] = (X[i,j] + 2)^(C[i])\nLoss = Y[i]", lambda t: ((t["X"].sum(1) + 2) ** t["C"]).sum()),
    ("S[i,j.] = softmax(X[i,j] C[i])\nLoss = S[i,j] E[i,j]",
     lambda t: (torch.softmax(t["X"] * t["C"][:, None], 1) * t["E"]).sum()),
    ("N[i,j.] = lnorm(X[i,j] + C[i])\nLoss = N[i,j] E[i,j]",
     lambda t: (t_lnorm(t["X"] + t["C"][:, None]) * t["E"]).sum()),
    ("Y[i] = sig(X[i,j] E[i,j] C[i], 0.5)\nLoss = Y[i] Y[i]",
     lambda t: (torch.sigmoid((t["X"] * t["E"]).sum(1) * t["C"] / 0.5) ** 2).sum()),
    ("Z[i,k] = concat(X[i,j] E[i,j] F[h])\nLoss = Z[i,k] G[i,k]",
     lambda t: ((t["X"] * t["E"])[:, :, None] * t["F"][None, None, :]).reshape(3, 8).mul(t["G"]).sum()),
    ("Y[i] = X[i,j] Q[j,k] R[k] + C[i]\nLoss = (Y[i] - 1)^2",
     lambda t: ((t["X"] @ t["Q"] @ t["R"] + t["C"]).sum() - 1) ** 2),  # a lone read: i summed first
    ("Diff[j] = X[0,j+1] - X[0,j]\nLoss = Diff[j] Diff[j]", lambda t: ((t["X"][0, 1:] - t["X"][0, :-1]) ** 2).sum()),
    ("Y[i] = -(X[i,j] C[i])\nLoss = sig(Y[i]) Y[i]", lambda t: (torch.sigmoid(-(t["X"].sum(1) * t["C"])) *
                                                               -(t["X"].sum(1) * t["C"])).sum()),
])
def test_construct_gradients(src, fn):
    rng = np.random.default_rng(5)
    vals = {"X": rng.uniform(-1, 1, (3, 4)), "C": rng.uniform(0.5, 1.5, 3), "E": rng.normal(size=(3, 4)),
            "D": rng.normal(size=2), "F": rng.normal(size=2), "G": rng.normal(size=(3, 8)),
            "Q": rng.normal(size=(4, 5)), "R": rng.normal(size=5)}
    prog = tl.Program(src + "\n")
    used = [k for k in vals if f"{k}[" in src]
    check(prog, fn, {k: vals[k] for k in used}, [k for k in used if k in ("X", "C", "E", "F", "Q", "R")])


def test_step_uses_the_sigmoid_surrogate():
    """Decision: step's derivative is taken as sig'(x) (a straight-through estimator), documented."""
    rng = np.random.default_rng(6)
    x, w = rng.normal(size=4), rng.normal(size=4)
    prog = tl.Program("Y = step(W[i] X[i])\nLoss = Y\n")
    got = prog.grad("Loss", ["W"], W=w, X=x)
    s = torch.sigmoid(torch.tensor(w @ x))
    np.testing.assert_allclose(got["W"], (s * (1 - s)).item() * x, rtol=1e-12)


def test_boolean_rules_pass_no_gradient():
    prog = tl.Program("R(x,y) = E(x,z) E(z,y)\nLoss = R(x,y) W[x,y]\n")
    e = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0.0]])
    got = prog.grad("Loss", ["W"], E=e, W=np.ones((3, 3)))
    r = ((e @ e) > 0).astype(float)
    np.testing.assert_array_equal(got["W"], r)


def test_gradient_with_respect_to_unused_tensor_is_zero():
    prog = tl.Program("Y = A[i] B[i]\nZ = C[i]\nLoss = Y\n")
    got = prog.grad("Loss", ["A", "C"], A=np.ones(3), B=np.arange(3.0), C=np.ones(3))
    np.testing.assert_array_equal(got["A"], np.arange(3.0))
    np.testing.assert_array_equal(got["C"], np.zeros(3))


def test_errors_are_clear():
    prog = tl.Program("Y[i] = f(X[i])\nLoss = Y[i]\n", functions={"f": np.tanh})
    with pytest.raises(tl.TLError, match="'f' has no derivative"):
        prog.grad("Loss", ["X"], X=np.ones(3))
    prog = tl.Program("Y[i] = X[i]\n")
    with pytest.raises(tl.TLError, match="must be a scalar"):
        prog.grad("Y", ["X"], X=np.ones(3))
    with pytest.raises(tl.TLError, match="no tensor 'Nope'"):
        tl.Program("L = X[i]\n").grad("L", ["Nope"], X=np.ones(3))


def test_rnn_backpropagation_through_time():
    """The virtual index *t keeps only the current state; its gradient program keeps every step
    (`set history = 1`) and backpropagates through time."""
    rng = np.random.default_rng(8)
    W, V, U, w_out = rng.normal(size=(3, 3)), rng.normal(size=(3, 3)), rng.normal(size=(3, 5)), rng.normal(size=3)
    x0 = rng.normal(size=3)
    prog = example_program("rnn", "Loss = (Y - 0.3)^2")
    vals = {"W": W, "V": V, "U": U, "WOut": w_out, "X": x0}

    def loss_fn(ts):
        x = ts["X"]
        for t in range(5):
            x = torch.sigmoid(ts["W"] @ x + ts["V"] @ ts["U"][:, t])
        return (torch.sigmoid(ts["WOut"] @ x) - 0.3) ** 2

    check(prog, loss_fn, vals, ["W", "V", "U", "WOut", "X"])
    assert "set history = 1" in prog.grad_source("Loss", ["W"], **vals)


def finite_difference(prog: tl.Program, loss: str, values: dict, name: str, coords, eps=1e-6) -> list[float]:
    """Central differences of the loss, each from a fresh forward run of the program (the reference)."""
    out = []
    for c in coords:
        vals = []
        for sign in (1, -1):
            v = {k: np.array(x, dtype=float) for k, x in values.items()}
            v[name][c] += sign * eps
            p = tl.Program(prog.source, file=prog.file, base_dir=prog.base_dir)
            p.run(**v)
            vals.append(float(p[loss]))
        out.append((vals[0] - vals[1]) / (2 * eps))
    return out


@pytest.mark.parametrize("name,loss,wrt", [
    ("attention", "Loss = Attn[p,v] Attn[p,v] + Out[a,b] Out[a,b]", ["X", "WQ", "WK", "WV", "MQ", "MK", "MV", "WO"]),
    ("bayesian_network", "Loss = PRGivenW[r] PRGivenW[r] + PSGivenWR[s] PCGivenW[s] + Total", ["CPTS", "CPTR",
                                                                                                "CPTW", "PC"]),
    ("embedding_reasoning", "Loss = D[a,b] D[a,b]", ["Emb"]),
    ("perceptron", "Loss = (Act - 1)^2", ["W", "X"]),
])
def test_paper_example_gradients_against_finite_differences(name, loss, wrt):
    prog = example_program(name, loss)
    prog.run()
    values = {t: np.array(prog.analyzed.data[t], dtype=float) for t in wrt}
    got = prog.grad("Loss", wrt, **values)
    rng = np.random.default_rng(9)
    for t in wrt:
        flat = rng.choice(values[t].size, size=min(4, values[t].size), replace=False)
        coords = [np.unravel_index(k, values[t].shape) for k in flat]
        fd = finite_difference(prog, "Loss", values, t, coords)
        np.testing.assert_allclose([got[t][c] for c in coords], fd, rtol=1e-5, atol=1e-6, err_msg=t)


@pytest.mark.parametrize("src,fn", [
    ("Y[0:2] = X[0, 1:3]\nLoss = Y[i] Y[i]", lambda t: (t["X"][0, 1:3] ** 2).sum()),
    ("Y[0] = X[0, j] X[1, j]\nY[i] = C[i]\nLoss = Y[i] Y[i]",
     lambda t: ((t["X"][0] * t["X"][1]).sum() + t["C"][0]) ** 2 + (t["C"][1:] ** 2).sum()),
    ("Loss = X[i, j] X[i, j]\nLoss = C[i]", lambda t: (t["X"] ** 2).sum() + t["C"].sum()),
    ("S[i, j.] = C[i] softmax(X[i, j] E[i, j])\nLoss = S[i, j] E[i, j]",
     lambda t: (t["C"][:, None] * torch.softmax(t["X"] * t["E"], 1) * t["E"]).sum()),
    ("N[i, j.] = 2 lnorm(X[i, j]) + E[i, j]\nLoss = N[i, j] N[i, j]",
     lambda t: ((2 * t_lnorm(t["X"]) + t["E"]) ** 2).sum()),
    ("Y[i] = (C[i])^(-2) + X[i, j] / C[i]\nLoss = Y[i] Y[i]",
     lambda t: ((t["C"] ** -2 + t["X"].sum(1) / t["C"]) ** 2).sum()),
    ("Y[i, j] = X[i, j] Big(i, j)\nLoss = Y[i, j] Y[i, j]", lambda t: ((t["X"] * (t["X"] > 0)) ** 2).sum()),
])
def test_more_construct_gradients(src, fn):
    rng = np.random.default_rng(10)
    vals = {"X": rng.uniform(-1, 1, (3, 4)), "C": rng.uniform(0.5, 1.5, 3), "E": rng.normal(size=(3, 4))}
    prog = tl.Program(src + "\n")
    used = {k: v for k, v in vals.items() if f"{k}[" in src}
    if "Big(" in src:
        used["Big"] = [tuple(ij) for ij in np.argwhere(vals["X"] > 0)]
        prog = tl.Program(src + "\n")
        got = prog.grad("Loss", ["X"], **used)
        t = tt(vals["X"])
        fn({"X": t}).backward()
        np.testing.assert_allclose(got["X"], t.grad.numpy(), rtol=1e-9)
        return
    check(prog, fn, used, [k for k in used])


def test_numeric_fixpoint_gradient_is_the_implicit_function_gradient():
    """X = 0.5 W X + B iterated to its fixpoint; the adjoint fixpoint gives d(C.X)/dB = (I - 0.5 W)^-T C."""
    rng = np.random.default_rng(11)
    W = rng.uniform(-0.5, 0.5, (4, 4))
    B, C = rng.normal(size=4), rng.normal(size=4)
    prog = tl.Program("set tolerance = 0.000000000001\nX[i] = 0.5 W[i, j] X[j] + B[i]\nLoss = C[i] X[i]\n")
    got = prog.grad("Loss", ["B", "W"], W=W, B=B, C=C)
    A = np.eye(4) - 0.5 * W
    x = np.linalg.solve(A, B)
    gb = np.linalg.solve(A.T, C)
    np.testing.assert_allclose(got["B"], gb, rtol=1e-8)
    np.testing.assert_allclose(got["W"], 0.5 * np.outer(gb, x), rtol=1e-8)


def test_concat_inside_a_sum():
    rng = np.random.default_rng(12)
    x, f, c = rng.normal(size=(3, 4)), rng.normal(size=2), rng.normal(size=3)
    prog = tl.Program("Z[i, k] = concat(X[i, j] F[h]) + C[i]\nLoss = Z[i, k] Z[i, k]\n")
    check(prog, lambda t: (((t["X"][:, :, None] * t["F"][None, None, :]).reshape(3, 8) + t["C"][:, None]) ** 2)
          .sum(), {"X": x, "F": f, "C": c}, ["X", "F", "C"])
