"""The torch backend and tl.TorchModule.

* Every example in examples/*.tl, and small programs covering each runtime path (scatters with max=/min=/avg=,
  index arithmetic, sparse relation products, fixpoints, loops, functions), run with backend="torch" on the
  CPU equal the numpy backend to 1e-9 (both float64): every tensor and every answer.
* Gradient programs (prog.grad) run on torch equal numpy's.
* TorchModule: an MLP layer and an attention layer written in .tl against the same layers written in torch
  (values and torch.autograd gradients, float64), torch.autograd.gradcheck through the module's
  autograd.Function, a training loop with torch.optim.Adam, and the error messages.
* Section `gpu` at the end: the same on CUDA (names contain `cuda`, run them with `-k cuda`); skipped when
  torch sees no GPU.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tensorlogic as tl  # noqa: E402
from tensorlogic.cli import main as cli_main  # noqa: E402
from tensorlogic.ir.nodes import Read  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.tl"))
TOL = 1e-9
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="torch sees no CUDA GPU (run on a GPU machine with -k cuda)")


# ---------------------------------------------------------------------------------------------- helpers

def run_all(prog: tl.Program, **inputs) -> tuple[list, dict[str, np.ndarray]]:
    """Every answer and every tensor of a program (prog[name] is numpy whatever the backend)."""
    answers = [a.value for a in prog.run(**inputs)]
    return answers, {n: prog[n] for n in prog.tensors()}


def assert_same_answers(got: list, want: list) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, bool) or (isinstance(w, list) and w and isinstance(w[0], list)
                                   and any(isinstance(c, str) for c in w[0])):
            assert g == w
        else:
            np.testing.assert_allclose(np.asarray(g, dtype=float), np.asarray(w, dtype=float), rtol=TOL, atol=TOL)


def assert_same_program(source: str | Path, device: str = "cpu", functions: dict | None = None, **inputs) -> None:
    """The program on torch (device) equals the program on numpy: answers and every tensor."""
    def make(backend: str, dev: str | None) -> tl.Program:
        if isinstance(source, Path):
            return tl.load(source, backend=backend, device=dev, functions=functions)
        return tl.Program(source, backend=backend, device=dev, functions=functions)

    want_ans, want = run_all(make("numpy", None), **inputs)
    got_ans, got = run_all(make("torch", device), **inputs)
    assert_same_answers(got_ans, want_ans)
    assert set(got) == set(want)
    for name in want:
        assert isinstance(got[name], np.ndarray), name
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], rtol=TOL, atol=TOL, equal_nan=True, err_msg=name)


SNIPPETS = {
    "sparse_matmul": "tensor Edge(50, 50) sparse\nEdge(0, 1). Edge(1, 2). Edge(3, 4). Edge(49, 0).\nX[b] = b / 7\n"
                     "Y[a] = Edge(a, b) X[b]\nZ[b] = Edge(a, b) X[a]\nY?\nZ?\n",
    "max_min_avg": "A = [[1, 5, 2], [4, 0, 3]]\nM[i] max= A[i, j]\nN[j] min= A[i, j]\nV[i] avg= A[i, j]\nM?\nN?\nV?\n",
    "index_functions": "A = [1, 2, 3, 4, 5, 6, 7]\nP[x/2] max= A[x]\nS[x/2] = A[x]\nQ[i] = A[i+1] - A[i-1]\n"
                       "R[i % 3] = A[i]\nM[x/3] min= A[x]\nV[x/2] avg= A[x]\nP?\nS?\nQ?\nR?\nM?\nV?\n",
    "rules": "Edge(0,1). Edge(1,2). Edge(2,0).\nNode(0). Node(1). Node(2).\n"
             "No(x,y) <- Node(x), Node(y), not Edge(x,y), x != y\nLt(x,y) <- Node(x), Node(y), x < y\n"
             "C[x] = No(x, y) + Lt(x, y)\nNo(x,y)?\nC?\n",
    "numeric_fixpoint": "A = [[0.5, 0.2], [0.1, 0.3]]\nB = [1, 2]\nX[i] = A[i, j] X[j] + B[i]\nX?\n",
    "pagerank": "W = [[0, 0.5, 0.5], [1, 0, 0], [0, 1, 0]]\nR[i] = 0.15 / 3 + 0.85 W[j, i] R[j]\nR?\n",
    "virtual_loop": "U = [[1, 0, 0.5], [0, 1, -0.5]]\nT = 3\nH = [0, 0]\nW = [[0.5, -0.4], [0.3, 0.8]]\n"
                    "H[i, *t+1] = tanh(W[i, j] H[j, *t] + U[i, t])\nH?\n",
    "functions": "A = [[1, 2], [3, 4], [5, 7]]\nB[i, j.] = softmax(A[i, j])\nC[i, j.] = lnorm(A[i, j])\n"
                 "D[i] = sig(A[i, 0], 0.5) + sig(A[i, 1], 0) + sqrt(A[i, 0]) + log(A[i,1]) + abs(A[i,0] - 3)"
                 " + exp(-A[i,1]) + sin(A[i,0]) cos(A[i,1]) + relu(2 - A[i, 0]) + step(A[i, 1] - 4)\nB?\nC?\nD?\n",
    "powers": "A = [1, 2, 0, -1]\nB[i] = A[i]^2 / (A[i] + 3) - A[i]^0.5\nB?\n",
    "index_values": "X = [1, 1, 1]\nY[i] = i 2 + X[i]\nY?\n",
    "scalars": "A = 3\nB = A A + 1\nC = 2\nD max= C\nB?\nD?\n",
}


# ---------------------------------------------------------------------------------------------- programs

@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_on_torch_equals_numpy(path):
    assert_same_program(path)


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_runtime_paths_on_torch_equal_numpy(name):
    assert_same_program(SNIPPETS[name])


def namespace_cases(xp) -> dict:
    """The array-namespace calls the runtime makes, written once for numpy and for the torch namespace."""
    a = xp.asarray(np.array([[1.5, -2.0, 0.0], [4.0, 0.25, -1.0]]))
    i = xp.asarray(np.array([0, 2, 2, 1]))
    out = {
        "zeros": xp.zeros((2, 3)), "ones": xp.asarray(xp.ones((2,), dtype=xp.bool_), dtype=xp.float64),
        "full": xp.full((2,), -np.inf), "arange": xp.arange(2, 6), "arange_f": xp.arange(0, 3, dtype=xp.float64),
        "copy": xp.copy(a), "broadcast_to": xp.broadcast_to(xp.asarray(np.array([1.0, 2.0, 3.0])), (2, 3)),
        "transpose": xp.transpose(a, (1, 0)), "reshape": xp.reshape(a, (3, 2)),
        "concatenate": xp.concatenate([a, a], axis=1), "where": xp.where(a > 0, a, 0.0),
        "where_scalar_first": xp.where(a > 0, 1.0, a), "clip": xp.clip(i, 0, 1),
        "sum": xp.sum(a, axis=(1,)), "sum_all": xp.sum(a), "sum_keep": xp.sum(a, axis=0, keepdims=True),
        "mean": xp.mean(a, axis=1, keepdims=True), "max": xp.max(a, axis=(0,)), "min": xp.min(a, axis=1),
        "max_all": xp.max(a), "abs": xp.abs(a), "exp": xp.exp(a), "sqrt": xp.sqrt(xp.abs(a)),
        "isfinite": xp.isfinite(xp.asarray(np.array([1.0, np.inf, np.nan]))), "power": xp.power(a, 2.0),
        "maximum": xp.maximum(a, 0.5), "minimum": xp.minimum(a, xp.asarray(0.5)),
        "floor_divide": xp.asarray(np.array([-7, 7])) // 2, "mod": xp.asarray(np.array([-7, 7])) % 3,
    }
    for name, ufunc, init in (("add_at", xp.add, 0.0), ("maximum_at", xp.maximum, -np.inf),
                              ("minimum_at", xp.minimum, np.inf)):
        acc = xp.full((2, 3), init)
        ufunc.at(acc, (xp.asarray(np.array([0, 0, 1, 0])), i), xp.asarray(np.array([1.0, 2.0, 3.0, 5.0])))
        out[name] = acc
    with xp.errstate(divide="ignore"):
        out["divide"] = 1.0 / xp.asarray(np.array([0.0, 2.0]))
    return out


def test_array_namespace_matches_numpy():
    from tensorlogic.backends.numpy_backend import get_backend

    want = namespace_cases(np)
    got = namespace_cases(get_backend("torch").xp)
    for name in want:
        assert isinstance(got[name], torch.Tensor), name
        np.testing.assert_array_equal(got[name].numpy(), np.asarray(want[name]), err_msg=name)


def test_python_function_gets_numpy_on_torch():
    seen = []

    def twice(x):
        seen.append(type(x))
        return 2 * x

    assert_same_program("A = [1, 2, 3]\nB[i] = twice(A[i])\nB?\n", functions={"twice": twice})
    assert seen and all(t is np.ndarray for t in seen)


def test_inputs_and_repeated_runs_on_torch():
    src = "H[h] = relu(W[h, i] X[i])\nY = V[h] H[h]\nY?\n"
    rng = np.random.default_rng(0)
    prog = tl.Program(src, backend="torch")
    for _ in range(3):  # the second run reuses the analysis; values must follow the new inputs
        w, x, v = rng.normal(size=(5, 3)), rng.normal(size=3), rng.normal(size=5)
        (y,) = [a.value for a in prog.run(W=w, X=x, V=v)]
        assert y == pytest.approx(float(v @ np.maximum(w @ x, 0)), rel=1e-12)
        assert isinstance(prog["H"], np.ndarray)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_torch_tensors_as_inputs(backend):
    w, x = np.array([[1.0, 2.0], [3.0, -1.0]]), np.array([0.5, 2.0])
    prog = tl.Program("Y[i] = W[i, j] X[j]\nY?\n", backend=backend)
    for _ in range(2):  # the analysis, then its reuse
        (y,) = prog.run(W=torch.tensor(w), X=torch.tensor(x, dtype=torch.float32))
        np.testing.assert_allclose(y.value, w @ x, rtol=1e-12)


def test_values_live_on_the_backend():
    prog = tl.Program("A = [1, 2]\nB[i] = A[i] A[i]\nB?\n", backend="torch")
    prog.run()
    assert isinstance(prog.executor.array("B"), torch.Tensor)
    assert prog.executor.array("B").dtype == torch.float64
    assert prog.backend.name == "torch" and str(prog.backend.device) == "cpu"


def test_backend_names_round_trip():
    from tensorlogic.backends.numpy_backend import get_backend

    b = get_backend("torch", dtype="float32")
    assert b.name == "torch:float32" and get_backend(b.name).dtype == torch.float32
    assert get_backend("torch:cpu").name == "torch"
    assert get_backend("numpy").name == "numpy"


def test_float32_option_on_cpu():
    rng = np.random.default_rng(1)
    w, x = rng.normal(size=(4, 3)), rng.normal(size=3)
    prog = tl.Program("Y[i] = tanh(W[i, j] X[j])\nY?\n", backend="torch", device="cpu")
    prog32 = tl.Program("Y[i] = tanh(W[i, j] X[j])\nY?\n", backend="torch:cpu:float32")
    prog.run(W=w, X=x)
    prog32.run(W=w, X=x)
    assert prog32.executor.array("Y").dtype == torch.float32
    np.testing.assert_allclose(prog32["Y"], np.tanh(w @ x), rtol=1e-5)
    np.testing.assert_allclose(prog["Y"], np.tanh(w @ x), rtol=1e-12)


@pytest.mark.parametrize("argv,message", [
    (["--backend", "torch", "--device", "cuda:99"], "cuda"),
    (["--backend", "torch", "--device", "tpu"], "device"),
    (["--device", "cuda"], "the numpy backend runs on the CPU only"),
    (["--backend", "jax"], "unknown backend 'jax'"),
])
def test_bad_backend_or_device_is_a_clear_error(argv, message, capsys):
    assert cli_main(["run", str(ROOT / "examples" / "mlp.tl"), *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_run_on_torch_prints_what_numpy_prints(capsys):
    path = str(ROOT / "examples" / "transformer.tl")
    assert cli_main(["run", path, "--json"]) == 0
    want = capsys.readouterr().out
    assert cli_main(["run", path, "--json", "--backend", "torch", "--device", "cpu"]) == 0
    got = capsys.readouterr().out
    import json

    for g, w in zip(got.splitlines(), want.splitlines(), strict=True):
        g, w = json.loads(g), json.loads(w)
        assert g["query"] == w["query"]
        np.testing.assert_allclose(np.asarray(g["value"], float), np.asarray(w["value"], float), rtol=TOL, atol=TOL)


def test_import_tensorlogic_does_not_import_torch():
    code = "import sys, tensorlogic as tl; tl.Program('A = 1\\nA?').run(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------- gradients

def _grad_case(stem: str) -> tuple[str, str, list[str] | None]:
    """(source with a scalar loss, loss name, wrt): the example's loss and parameters when it learns; else
    the squared norm of its last numeric query, differentiated with respect to its numeric data."""
    path = ROOT / "examples" / f"{stem}.tl"
    prog = tl.load(path)
    prog.run()
    a = prog.analyzed
    if "Loss" in a.tensors:
        return prog.source, "Loss", None
    outs = [q.expr.tensor for q in a.queries if isinstance(q.expr, Read) and not a.tensors[q.expr.tensor].boolean]
    out = outs[-1]
    idx = ", ".join(f"q{k}" for k in range(len(a.tensors[out].shape)))
    ref = f"{out}[{idx}]" if idx else out
    computed = {e.lhs for e in a.equations}
    wrt = sorted(n for n in a.data if n in a.tensors and not a.tensors[n].boolean and n not in computed
                 and a.tensors[n].shape)
    return prog.source + f"\nLossT = {ref} {ref}\n", "LossT", wrt


GRAD_EXAMPLES = ["mlp", "rnn", "cnn", "attention", "transformer", "gnn", "kernel_machine", "perceptron",
                 "bayesian_network", "xor", "tucker", "karate_gnn", "char_transformer"]


def no_numpy_contractions(monkeypatch) -> None:
    """Make any contraction on the numpy backend fail (to show a computation ran on torch only)."""
    from tensorlogic.backends.numpy_backend import NumpyBackend

    def fail(self, *args):
        raise AssertionError("a contraction ran on the numpy backend")

    monkeypatch.setattr(NumpyBackend, "contract", fail)


@pytest.mark.parametrize("stem", GRAD_EXAMPLES)
def test_gradient_program_on_torch_equals_numpy(stem, monkeypatch):
    src, loss, wrt = _grad_case(stem)
    path = str(ROOT / "examples" / f"{stem}.tl")
    want = tl.Program(src, path).grad(loss, wrt)
    prog = tl.Program(src, path, backend="torch")
    no_numpy_contractions(monkeypatch)  # the gradient program runs on torch
    got = prog.grad(loss, wrt)
    assert set(got) == set(want) and got
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=TOL, atol=TOL, err_msg=name)


def test_cli_train_on_torch_matches_numpy(capsys):
    path = str(ROOT / "examples" / "xor.tl")
    assert cli_main(["train", path, "--epochs", "5", "--quiet"]) == 0
    want = capsys.readouterr().out
    assert cli_main(["train", path, "--epochs", "5", "--quiet", "--backend", "torch", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == want  # the same losses to the printed 6 digits


# ---------------------------------------------------------------------------------------------- TorchModule

MLP_TL = """
tensor W1[6, 4] learnable
tensor B1[6] learnable
tensor W2[3, 6] learnable
H[e, h] = tanh(W1[h, i] X[e, i] + B1[h])
Y[e, o] = W2[o, h] H[e, h]
"""


def mlp_torch(x, w1, b1, w2):
    return torch.tanh(x @ w1.T + b1) @ w2.T


ATTN_TL = """
tensor WQ[4, 5] learnable
tensor WK[4, 5] learnable
tensor WV[3, 5] learnable
Q[p, k] = WQ[k, d] X[p, d]
K[p, k] = WK[k, d] X[p, d]
V[p, v] = WV[v, d] X[p, d]
A[p, p'.] = softmax(Q[p, k] K[p', k] / 2)
Out[p, v] = A[p, p'] V[p', v]
"""


def attn_torch(x, wq, wk, wv):
    a = torch.softmax((x @ wq.T) @ (x @ wk.T).T / 2, dim=-1)
    return a @ (x @ wv.T)


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_module_mlp_values_and_gradients_equal_torch(backend):
    rng = np.random.default_rng(2)
    layer = tl.TorchModule(MLP_TL, outputs=["Y"], inputs=["X"], example_inputs={"X": np.zeros((5, 4))},
                           backend=backend)
    assert sorted(layer.params) == ["B1", "W1", "W2"]
    assert all(isinstance(p, torch.nn.Parameter) for p in layer.parameters())
    x = torch.tensor(rng.normal(size=(5, 4)), requires_grad=True)
    y = layer(x)
    target = torch.tensor(rng.normal(size=(5, 3)))
    ((y - target) ** 2).sum().backward()
    ref = {n: p.detach().clone().requires_grad_() for n, p in layer.params.items()}
    x2 = x.detach().clone().requires_grad_()
    y2 = mlp_torch(x2, ref["W1"], ref["B1"], ref["W2"])
    ((y2 - target) ** 2).sum().backward()
    np.testing.assert_allclose(y.detach().numpy(), y2.detach().numpy(), rtol=1e-12, atol=1e-12)
    for n in ref:
        np.testing.assert_allclose(layer.params[n].grad.numpy(), ref[n].grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_module_attention_gradients_equal_torch():
    rng = np.random.default_rng(3)
    layer = tl.TorchModule(ATTN_TL, outputs=["Out"], inputs=["X"], example_inputs={"X": np.zeros((6, 5))})
    x = torch.tensor(rng.normal(size=(6, 5)), requires_grad=True)
    w = torch.tensor(rng.normal(size=(6, 3)))
    (layer(x) * w).sum().backward()
    ref = {n: p.detach().clone().requires_grad_() for n, p in layer.params.items()}
    x2 = x.detach().clone().requires_grad_()
    (attn_torch(x2, ref["WQ"], ref["WK"], ref["WV"]) * w).sum().backward()
    for n in ref:
        np.testing.assert_allclose(layer.params[n].grad.numpy(), ref[n].grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("source,shape", [(MLP_TL, (3, 4)), (ATTN_TL, (4, 5))], ids=["mlp", "attention"])
def test_module_gradcheck(source, shape):
    """torch.autograd.gradcheck (finite differences, float64) through the module's autograd.Function, with
    respect to the input and every parameter."""
    layer = tl.TorchModule(source, inputs=["X"], outputs=[("Y" if "Y[" in source else "Out")],
                           example_inputs={"X": np.zeros(shape)})
    names = list(layer.params)
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.normal(size=shape), requires_grad=True)
    params = [layer.params[n].detach().clone().requires_grad_() for n in names]

    def fn(x, *ps):
        return torch.func.functional_call(layer, {f"params.{n}": p for n, p in zip(names, ps)}, (x,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


def test_module_is_a_layer_trained_by_adam():
    """A .tl layer between torch layers, trained end to end by torch.optim.Adam: the loss falls below half."""
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    x = torch.tensor(rng.normal(size=(16, 3)))
    y = torch.tensor(np.sin(x.numpy() @ np.array([1.0, -2.0, 0.5]))[:, None])
    layer = tl.TorchModule("index h: 5\nH[e, h] = tanh(W[h, i] X[e, i] + B[h])\n", outputs=["H"], inputs=["X"],
                           example_inputs={"X": np.zeros((16, 4))})
    assert sorted(layer.params) == ["B", "W"]  # read, never defined, not an input: parameters
    model = torch.nn.Sequential(torch.nn.Linear(3, 4, dtype=torch.float64), layer,
                                torch.nn.Linear(5, 1, dtype=torch.float64))
    assert layer.params["W"].shape == (5, 4)
    assert {id(p) for p in layer.parameters()} <= {id(p) for p in model.parameters()}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert layer.params["W"].grad is not None and torch.all(torch.isfinite(layer.params["W"].grad))


def test_module_positional_keyword_and_several_outputs():
    src = "tensor W[2, 3] learnable\nY[o] = W[o, i] X[i]\nZ = Y[o] Y[o] S\n"
    layer = tl.TorchModule(src, outputs=["Y", "Z"], inputs=["X", "S"], example_inputs={"X": np.zeros(3), "S": 1.0})
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    y, z = layer(x, 2.0)
    y2, z2 = layer(S=2.0, X=x)
    w = layer.params["W"].detach()
    np.testing.assert_allclose(y.detach().numpy(), (w @ x).numpy(), rtol=1e-12)
    assert z.item() == pytest.approx(2 * float((w @ x) @ (w @ x)), rel=1e-12)
    assert torch.equal(y, y2) and torch.equal(z, z2)
    (y.sum() + z).backward()  # cotangents for both outputs
    ref = w.clone().requires_grad_()
    yy = ref @ x
    (yy.sum() + 2 * yy @ yy).backward()
    np.testing.assert_allclose(layer.params["W"].grad.numpy(), ref.grad.numpy(), rtol=1e-12)


def test_module_state_dict_pickle_and_copy(tmp_path):
    import copy

    src = "tensor W[2, 3] learnable\nY[o] = W[o, i] X[i]\n"
    layer = tl.TorchModule(src, outputs=["Y"], inputs=["X"], example_inputs={"X": np.zeros(3)})
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    want = layer.params["W"].detach() @ x
    torch.save(layer, tmp_path / "layer.pt")
    for other in (torch.load(tmp_path / "layer.pt", weights_only=False), copy.deepcopy(layer)):
        y = other(x)
        torch.testing.assert_close(y, want)
        y.sum().backward()
        torch.testing.assert_close(other.params["W"].grad, x.expand(2, 3).clone())
    fresh = tl.TorchModule(src, outputs=["Y"], inputs=["X"], example_inputs={"X": np.zeros(3)}, seed=7)
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x), want)


def test_module_outputs_default_to_queries_and_float32_parameters():
    layer = tl.TorchModule("tensor W[3] learnable\nY[i] = W[i] X[i]\nY?\n", inputs=["X"],
                           example_inputs={"X": np.zeros(3)}, dtype=torch.float32)
    assert layer.outputs == ["Y"]
    y = layer(torch.ones(3))
    assert y.dtype == torch.float32 and layer.params["W"].dtype == torch.float32
    y.sum().backward()
    np.testing.assert_allclose(layer.params["W"].grad.numpy(), np.ones(3))
    assert layer.double()(torch.ones(3)).dtype == torch.float64  # outputs follow the parameters' dtype


@pytest.mark.parametrize("kwargs,message", [
    (dict(inputs=["X"]), "shapes of the inputs ['X'] are not known"),
    (dict(inputs=["X"], outputs=["Nope"], example_inputs={"X": np.zeros(3)}), "no tensor 'Nope'"),
    (dict(inputs=["X"], example_inputs={"Q": np.zeros(3)}), "not among the inputs"),
    (dict(inputs=["X"], example_inputs={"X": np.zeros(3)}, backend="jax"), "torch or numpy backend"),
])
def test_module_errors(kwargs, message):
    with pytest.raises(tl.TLError, match=message.replace("[", r"\[").replace("]", r"\]")):
        tl.TorchModule("index i: 2\nY[i] = W[i, j] X[j]\n", **{"outputs": ["Y"], **kwargs})


def test_module_forward_argument_errors():
    layer = tl.TorchModule("index i: 2\nY[i] = W[i, j] X[j]\n", outputs=["Y"], inputs=["X"],
                           example_inputs={"X": np.zeros(3)})
    with pytest.raises(TypeError, match="missing inputs: X"):
        layer()
    with pytest.raises(TypeError, match="not an input"):
        layer(Q=torch.zeros(3))


# ---------------------------------------------------------------------------------------------- gpu
# Run on a GPU machine with `pytest tests/test_torch_backend.py -k cuda`.

CUDA_EXAMPLES = ["transformer", "gnn", "cnn", "rnn", "family_tree", "bayesian_network", "char_transformer"]


@needs_cuda
@pytest.mark.parametrize("stem", CUDA_EXAMPLES)
def test_cuda_example_equals_numpy(stem):
    assert_same_program(ROOT / "examples" / f"{stem}.tl", device="cuda")


@needs_cuda
@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_cuda_runtime_paths_equal_numpy(name):
    assert_same_program(SNIPPETS[name], device="cuda")


@needs_cuda
@pytest.mark.parametrize("stem", ["transformer", "xor", "karate_gnn"])
def test_cuda_gradient_program_equals_numpy(stem, monkeypatch):
    src, loss, wrt = _grad_case(stem)
    path = str(ROOT / "examples" / f"{stem}.tl")
    want = tl.Program(src, path).grad(loss, wrt)
    prog = tl.Program(src, path, backend="torch", device="cuda")
    from tensorlogic.backends.torch_backend import TorchBackend

    devices = set()
    contract = TorchBackend.contract

    def spy(self, *args):
        devices.add(self.device.type)
        return contract(self, *args)

    monkeypatch.setattr(TorchBackend, "contract", spy)
    got = prog.grad(loss, wrt)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=TOL, atol=TOL, err_msg=name)
    assert devices == {"cuda"}  # the gradient program ran on the GPU too


@needs_cuda
def test_cuda_array_namespace_matches_numpy():
    from tensorlogic.backends.numpy_backend import get_backend

    want = namespace_cases(np)
    got = namespace_cases(get_backend("torch", device="cuda").xp)
    for name in want:
        assert got[name].device.type == "cuda", name
        np.testing.assert_array_equal(got[name].cpu().numpy(), np.asarray(want[name]), err_msg=name)


@needs_cuda
def test_cuda_values_are_on_the_gpu():
    prog = tl.Program("A = [1, 2]\nB[i] = A[i] A[i]\nB?\n", backend="torch", device="cuda")
    prog.run()
    assert prog.executor.array("B").device.type == "cuda"
    np.testing.assert_allclose(prog["B"], [1, 4])


@needs_cuda
def test_cuda_module_gradients_and_training():
    rng = np.random.default_rng(6)
    layer = tl.TorchModule(MLP_TL, outputs=["Y"], inputs=["X"], example_inputs={"X": np.zeros((5, 4))}).cuda()
    x = torch.tensor(rng.normal(size=(5, 4)), device="cuda", requires_grad=True)
    target = torch.tensor(rng.normal(size=(5, 3)), device="cuda")
    y = layer(x)
    assert y.device.type == "cuda"
    ((y - target) ** 2).sum().backward()
    ref = {n: p.detach().clone().requires_grad_() for n, p in layer.params.items()}
    x2 = x.detach().clone().requires_grad_()
    ((mlp_torch(x2, ref["W1"], ref["B1"], ref["W2"]) - target) ** 2).sum().backward()
    for n in ref:
        assert layer.params[n].grad.device.type == "cuda"
        torch.testing.assert_close(layer.params[n].grad, ref[n].grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-10, atol=1e-12)
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = ((layer(x.detach()) - target) ** 2).mean()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.5 * first


@needs_cuda
def test_cuda_float32_and_cli(capsys):
    prog = tl.Program("Y[i] = tanh(W[i, j] X[j])\nY?\n", backend="torch:cuda:0:float32")
    w, x = np.eye(3), np.array([0.1, 0.2, 0.3])
    prog.run(W=w, X=x)
    assert prog.executor.array("Y").dtype == torch.float32
    np.testing.assert_allclose(prog["Y"], np.tanh(x), rtol=1e-6)
    path = str(ROOT / "examples" / "mlp.tl")
    assert cli_main(["run", path, "--json"]) == 0
    want = capsys.readouterr().out
    assert cli_main(["run", path, "--json", "--backend", "torch", "--device", "cuda"]) == 0
    got = capsys.readouterr().out
    import json

    for g, w_ in zip(got.splitlines(), want.splitlines(), strict=True):
        g, w_ = json.loads(g)["value"], json.loads(w_)["value"]
        np.testing.assert_allclose(np.asarray(g, float), np.asarray(w_, float), rtol=TOL, atol=TOL)


_BUDGET_MLP = """
tensor W1[16, 8] learnable
tensor W2[4, 16] learnable
H[e, j] = relu(W1[j, i] X[e, i])
Y[e, k] = W2[k, j] H[e, j]
Loss = (Y[e, k] - T[e, k])^2
"""


def _budget_case(device: str):
    rng = np.random.default_rng(0)
    vals = {"X": rng.normal(size=(256, 8)), "T": rng.normal(size=(256, 4))}
    plain = tl.Program(_BUDGET_MLP, backend="torch", device=device)
    ref = plain.grad("Loss", ["W1", "W2"], **vals)
    budget = int(plain.last_peak_bytes * 0.8)
    prog = tl.Program(_BUDGET_MLP, backend="torch", device=device)
    try:
        got = prog.grad("Loss", ["W1", "W2"], memory_budget=budget, **vals)
    except tl.TLRuntimeError as e:  # refused before running: the least budget it names must then work
        budget = int(re.search(r"\(([\d,]+) bytes", str(e)).group(1).replace(",", ""))
        got = prog.grad("Loss", ["W1", "W2"], memory_budget=budget, **vals)
    return ref, got, budget, prog


def test_budgeted_step_reports_no_device_peak_off_cuda():
    ref, got, budget, prog = _budget_case("cpu")
    assert prog.last_peak_bytes <= budget
    assert prog.last_device_peak_bytes is None  # the allocator's peak is a CUDA measurement
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-12)


@needs_cuda
def test_cuda_budgeted_step_stays_under_the_budget_in_the_allocator_too():
    ref, got, budget, prog = _budget_case("cuda")
    assert prog.last_peak_bytes <= budget  # counted by the executor
    assert prog.last_device_peak_bytes is not None
    assert prog.last_device_peak_bytes <= budget  # torch.cuda.max_memory_allocated during the step
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, atol=1e-12)
