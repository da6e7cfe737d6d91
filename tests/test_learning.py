"""Learning: optimisers against torch.optim, the learned examples reaching their targets, checkpoints,
`tl train`, `tl grad` and `tl run --load` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

import tensorlogic as tl
from tensorlogic.learn.optimizers import make_optimizer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TL = [sys.executable, "-m", "tensorlogic.cli"]


@pytest.mark.parametrize("name,torch_opt", [
    ("sgd", lambda ps, lr: torch.optim.SGD(ps, lr=lr)),
    ("momentum", lambda ps, lr: torch.optim.SGD(ps, lr=lr, momentum=0.9)),
    ("adam", lambda ps, lr: torch.optim.Adam(ps, lr=lr)),
    ("adamw", lambda ps, lr: torch.optim.AdamW(ps, lr=lr, weight_decay=0.01)),
])
def test_optimizers_take_torch_steps(name, torch_opt):
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) for _ in range(5)]
    ours = {"W": p0.copy()}
    opt = make_optimizer(name, 0.1)
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = torch_opt([tp], 0.1)
    for g in grads:
        opt.step(ours, {"W": g})
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(ours["W"], tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_unknown_optimizer_and_bad_learning_rate():
    with pytest.raises(tl.TLError, match="unknown optimizer"):
        make_optimizer("rmsprop", 0.1)
    with pytest.raises(tl.TLError, match="learning rate"):
        make_optimizer("adam", 0.0)


def test_xor_reaches_full_accuracy():
    prog = tl.load(EXAMPLES / "xor.tl")
    history = prog.train("Loss", epochs=300, lr=0.05)
    assert history[-1] < history[0]
    prog.run()
    y = prog["Y"]
    np.testing.assert_array_equal(y > 0.5, np.array([0, 1, 1, 0]) > 0.5)


def test_tucker_recovers_planted_low_rank_tensor():
    prog = tl.load(EXAMPLES / "tucker.tl")
    prog.train("Loss", epochs=600, lr=0.05)
    prog.run()
    a = np.load(EXAMPLES / "data" / "tucker_A.npy")
    p = prog.params
    errs = []
    for r in (1, 2):  # reconstructed by numpy from the learned core and factors
        approx = np.einsum("ip,jq,kr,pqr->ijk", p[f"R{r}_A"], p[f"R{r}_B"], p[f"R{r}_C"], p[f"R{r}_G"])
        errs.append(np.linalg.norm(approx - a) / np.linalg.norm(a))
    assert errs[0] > 1e-3 and errs[1] < 1e-3
    assert float(prog["Rank"]) == 2


def test_gnn_learns_karate_club_factions():
    prog = tl.load(EXAMPLES / "karate_gnn.tl")
    prog.train("Loss", epochs=120, lr=0.05)
    prog.run()
    g = nx.karate_club_graph()
    labels = np.array([g.nodes[n]["club"] == "Officer" for n in g.nodes()])
    accuracy = np.mean((prog["Y"] > 0.5) == labels)
    assert accuracy >= 0.9


def test_char_transformer_loss_halves():
    prog = tl.load(EXAMPLES / "char_transformer.tl")
    history = prog.train("Loss", epochs=20, lr=0.01)
    assert history[-1] < history[0] / 2


def test_step_trains_through_its_surrogate():
    """A perceptron with `step` (zero gradient almost everywhere) learns a separable rule through the
    sigmoid surrogate (docs/learning.md)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 2))
    t = (x[:, 0] - 2 * x[:, 1] > 0).astype(float)
    prog = tl.Program("tensor W[2] learnable\ntensor B learnable\n"
                      "Y[e] = step(W[i] X[e,i] + B)\nLoss = (Y[e] - T[e])^2\n")
    prog.train("Loss", epochs=150, lr=0.05, X=x, T=t)
    prog.run(X=x, T=t)
    assert np.mean(prog["Y"] == t) >= 0.95


def test_checkpoint_survives_an_interrupted_run(tmp_path):
    ckpt = tmp_path / "params.npz"

    def stop(epoch, loss):
        if epoch == 4:
            raise KeyboardInterrupt

    prog = tl.load(EXAMPLES / "xor.tl")
    with pytest.raises(KeyboardInterrupt):
        prog.train("Loss", epochs=50, lr=0.05, save=ckpt, callback=stop)
    with np.load(ckpt) as z:
        assert int(z["_epoch"]) == 5 and len(z["_history"]) == 5
        saved = {k: z[k] for k in z.files if not k.startswith("_")}
    assert set(saved) == {"W1", "B1", "W2", "B2"}
    for k, v in saved.items():
        np.testing.assert_array_equal(v, prog.params[k])
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind
    fresh = tl.load(EXAMPLES / "xor.tl")
    fresh.load_params(ckpt)
    history = fresh.train("Loss", epochs=3, lr=0.05)
    fresh.run()
    first = tl.load(EXAMPLES / "xor.tl").train("Loss", epochs=1, lr=0.05)[0]
    assert history[0] < first  # it resumed from the checkpoint, not from the initial values


def test_implicit_parameters_are_learned():
    """Tensors read but never defined are parameters when learning (sizes from the indices)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3))
    w_true = np.array([1.0, -2.0, 0.5])
    prog = tl.Program("Y[e] = W[i] X[e,i]\nLoss = (Y[e] - T[e])^2\n")
    prog.train("Loss", epochs=400, lr=0.05, X=x, T=x @ w_true)
    np.testing.assert_allclose(prog.params["W"], w_true, atol=1e-3)


def run_tl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*TL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_cli_train_save_plot_and_run_with_loaded_parameters(tmp_path):
    save, plot = tmp_path / "xor.npz", tmp_path / "loss.png"
    r = run_tl("train", str(EXAMPLES / "xor.tl"), "--epochs", "300", "--lr", "0.05", "--save", str(save),
               "--plot", str(plot))
    assert r.returncode == 0, r.stderr
    assert "epoch" in r.stderr  # the progress bar
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = run_tl("run", str(EXAMPLES / "xor.tl"), "--load", str(save), "--json")
    assert r.returncode == 0, r.stderr
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    y = np.array(answers[0]["value"])
    np.testing.assert_array_equal(y > 0.5, [False, True, True, False])


def test_cli_grad_prints_a_program_that_runs_to_the_same_numbers(tmp_path):
    r = run_tl("grad", str(EXAMPLES / "mlp.tl"), "--loss", "Out", "--wrt", "W")
    assert r.returncode != 0 and "scalar" in r.stderr  # Out is a vector
    src = (EXAMPLES / "mlp.tl").read_text() + "\nLoss = Out[j] Out[j]\n"
    (tmp_path / "mlp_loss.tl").write_text(src)
    r = run_tl("grad", str(tmp_path / "mlp_loss.tl"), "--wrt", "W", "--wrt", "Input")
    assert r.returncode == 0, r.stderr
    (tmp_path / "grad.tl").write_text(r.stdout)
    r2 = run_tl("run", str(tmp_path / "grad.tl"), "--json")
    assert r2.returncode == 0, r2.stderr
    prog = tl.Program(src)
    expected = prog.grad("Loss", ["W", "Input"])
    w = torch.tensor(np.array([[[0, 0, 0], [0, 0, 0], [0, 0, 0]], [[0.5, -0.3, 0.8], [1.2, 0.4, -0.6],
                              [-0.7, 0.9, 0.1]], [[0.3, 0.3, -1.0], [-0.5, 1.5, 0.2], [0.8, -0.2, 0.6]],
                              [[1.0, -1.0, 0.5], [0.2, 0.7, -0.4], [-0.9, 0.3, 1.1]]]), requires_grad=True)
    x = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    h = x
    for i in range(1, 4):
        h = torch.sigmoid(w[i] @ h)
    (h @ h).backward()
    np.testing.assert_allclose(expected["W"], w.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(expected["Input"], x.grad.numpy(), rtol=1e-10, atol=1e-12)
    answers = {json.loads(line)["query"]: json.loads(line)["value"] for line in r2.stdout.splitlines()}
    assert set(answers) == {"Grad_W", "Grad_Input"}
    got_input = np.array(answers["Grad_Input"])
    np.testing.assert_allclose(got_input, x.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_cli_train_errors_are_clear(tmp_path):
    (tmp_path / "p.tl").write_text("tensor W[2] learnable\nY[i] = W[i] X[i]\nX = [1.0, 2.0]\n")
    r = run_tl("train", str(tmp_path / "p.tl"))
    assert r.returncode == 1 and "no tensor named Loss" in r.stderr and "Traceback" not in r.stderr
    r = run_tl("train", str(tmp_path / "p.tl"), "--loss", "Y")
    assert r.returncode == 1 and "scalar" in r.stderr
    (tmp_path / "q.tl").write_text("Y = X[i]\nX = [1.0, 2.0]\n")
    r = run_tl("train", str(tmp_path / "q.tl"), "--loss", "Y")
    assert r.returncode == 1 and "no parameters" in r.stderr


def test_minibatches_over_a_virtual_example_index():
    """--batch-size: one Adam step per batch of the examples (read with *e), shuffled once per epoch from the
    program's seed; checked against the same loop written in torch."""
    rng = np.random.default_rng(5)
    x, t = rng.normal(size=(10, 3)), rng.normal(size=10)
    prog = tl.Program("tensor W[3] learnable\nY[e] = W[i] X[*e, i]\nLoss = (Y[e] - T[*e])^2\n", seed=4)
    w0 = tl.Program("tensor W[3] learnable\nW?\n", seed=4)
    w0.run()
    history = prog.train("Loss", epochs=3, lr=0.1, batch_size=4, X=x, T=t)
    w = torch.tensor(w0["W"], requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.1)
    order_rng = np.random.default_rng(4)
    ref_history = []
    for _ in range(3):
        total = 0.0
        order = order_rng.permutation(10)
        for k in range(0, 10, 4):
            idx = order[k:k + 4]
            opt.zero_grad()
            loss = ((torch.tensor(x[idx]) @ w - torch.tensor(t[idx])) ** 2).sum()
            loss.backward()
            opt.step()
            total += loss.item()
        ref_history.append(total)
    np.testing.assert_allclose(history, ref_history, rtol=1e-10)
    np.testing.assert_allclose(prog.params["W"], w.detach().numpy(), rtol=1e-10)


def test_batch_size_without_example_index_is_an_error():
    prog = tl.Program("tensor W[3] learnable\nLoss = (W[i] X[i])^2\n")
    with pytest.raises(tl.TLError, match="example index"):
        prog.train("Loss", epochs=1, batch_size=2, X=np.ones(3))


def test_cp_fits_report_the_planted_rank():
    prog = tl.load(EXAMPLES / "cp.tl")
    prog.train("Loss", epochs=1500, lr=0.05)
    prog.run()
    a = np.load(EXAMPLES / "data" / "cp_A.npy")
    p = prog.params
    errs = []
    for r in range(1, 5):  # relative errors of each fitted rank, reconstructed by numpy
        approx = np.einsum("ir,jr,kr->ijk", p[f"R{r}_A"], p[f"R{r}_B"], p[f"R{r}_C"])
        errs.append(np.linalg.norm(approx - a) / np.linalg.norm(a))
    assert errs[0] > 1e-3 and errs[1] > 1e-3 and errs[2] < 1e-3 and errs[3] < 1e-3
    assert float(prog["Rank"]) == 3


def test_tubal_factorization_reaches_the_truncated_svd_optimum():
    prog = tl.load(EXAMPLES / "tubal.tl")
    prog.train("Loss", epochs=800, lr=0.05)
    prog.run()
    img = np.load(EXAMPLES / "data" / "image.npy")
    f = np.fft.fft(img, axis=2)  # the best tubal rank-2 approximation: truncated SVD of each DFT slice
    best = np.zeros_like(f)
    for k in range(3):
        u, s, vt = np.linalg.svd(f[:, :, k])
        best[:, :, k] = (u[:, :2] * s[:2]) @ vt[:2]
    optimum = np.linalg.norm(np.real(np.fft.ifft(best, axis=2)) - img) / np.linalg.norm(img)
    assert float(prog["RelErr"]) <= optimum * (1 + 1e-4)


def test_reasoning_in_embedding_space_at_zero_temperature_is_exact():
    """examples/kinships_reasoning.tl: per kinship term, the transitive closure computed in embedding space with
    sig(., T) at T = 0 equals the Boolean closure of the training facts (computed here with numpy)."""
    prog = tl.load(EXAMPLES / "kinships_reasoning.tl")
    prog.run()
    closure = prog["Closure"]
    people = prog.analyzed.domain_of("Train", 0)
    terms = prog.analyzed.domain_of("Train", 1)
    n = len(people.symbols)
    rel = np.zeros((len(terms.symbols), n, n), dtype=bool)
    for line in (EXAMPLES / "data" / "kinships" / "train.tsv").read_text().splitlines():
        s, r, o = line.split("\t")
        rel[terms.index[r], people.index[s], people.index[o]] = True
    for r in range(rel.shape[0]):
        reach = rel[r].copy()
        while True:  # Boolean transitive closure by repeated squaring
            nxt = reach | ((reach.astype(int) @ rel[r].astype(int)) > 0)
            if (nxt == reach).all():
                break
            reach = nxt
        np.testing.assert_array_equal(closure[r] > 0.5, reach, err_msg=terms.symbols[r])
        assert set(np.unique(closure[r])) <= {0.0, 1.0}
