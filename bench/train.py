"""Time per training step: tensorlogic's gradient programs against the same models in PyTorch eager.

    .venv/bin/python bench/train.py [--steps 20] [--quick]

Both sides run in this process, on the CPU, with one thread (torch.set_num_threads(1) and one BLAS thread for
numpy), float64, the same sizes and Adam. A tensorlogic step is `prog.grad` (the gradient program run by the
executor) plus the optimiser's update; a torch step is forward, backward and `optimizer.step()`. The steps of
the three variants are interleaved (tensorlogic, torch, tensorlogic with the compiled fast path off, in turn),
so a change of load on the shared machine hits them alike; each variant's time is the median of its steps. The
ratio is tensorlogic / torch (the issue's target is at most 1.3x); `interp` is the same step with every
equation interpreted (`TL_COMPILE=0`), the "before" of the compiled fast path. As in bench/overhead.py, glibc's
malloc keeps freed memory for the whole process (`--default-malloc` to leave it adaptive), so no variant pays
page faults because of the order the others allocate and free in.
"""

from __future__ import annotations

import argparse
import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from malloc_settings import keep_freed_memory  # noqa: E402

import tensorlogic as tl  # noqa: E402
from tensorlogic.learn.optimizers import make_optimizer  # noqa: E402

torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)

MLP = """
H1[e, h] = relu(W1[h, i] X[e, i] + B1[h])
H2[e, g] = relu(W2[g, h] H1[e, h] + B2[g])
Y[e, o] = W3[o, g] H2[e, g] + B3[o]
Loss = (Y[e, o] - T[e, o])^2
"""

TRANSFORMER = """
Stream[0, e, p, d] = X[e, p, t] Emb[t, d] + PosEmb[p, d]
Query[b, h, e, p, k] = WQ[b, h, k, d] Stream[b, e, p, d]
Key[b, h, e, p, k] = WK[b, h, k, d] Stream[b, e, p, d]
Val[b, h, e, p, v] = WV[b, h, v, d] Stream[b, e, p, d]
Comp[b, h, e, p, p'.] = softmax(Query[b, h, e, p, k] Key[b, h, e, p', k] / sqrt(Dk) - 1000 Mask[p, p'])
Attn[b, h, e, p, v] = Comp[b, h, e, p, p'] Val[b, h, e, p', v]
Merge[b, e, p, m] = concat(Attn[b, h, e, p, v])
Resid[b, e, p, d.] = lnorm(WS[b, d, m] Merge[b, e, p, m] + Stream[b, e, p, d])
Hidden[b, e, p, f] = relu(W1[b, f, d] Resid[b, e, p, d])
Stream[b+1, e, p, d.] = lnorm(W2[b, d, f] Hidden[b, e, p, f] + Resid[b, e, p, d])
Y[e, p, t.] = softmax(WO[t, d] Stream[B, e, p, d])
Loss = -Tgt[e, p, t] log(Y[e, p, t] + 0.000000001)
"""


def mlp_case(batch: int, width: int, rng: np.random.Generator):
    inputs, out = 32, 8
    data = {"X": rng.normal(size=(batch, inputs)), "T": rng.normal(size=(batch, out))}
    params = {"W1": rng.normal(size=(width, inputs)) / np.sqrt(inputs), "B1": np.zeros(width),
              "W2": rng.normal(size=(width, width)) / np.sqrt(width), "B2": np.zeros(width),
              "W3": rng.normal(size=(out, width)) / np.sqrt(width), "B3": np.zeros(out)}

    def torch_loss(t):
        h1 = torch.relu(t["X"] @ t["W1"].T + t["B1"])
        h2 = torch.relu(h1 @ t["W2"].T + t["B2"])
        return ((h2 @ t["W3"].T + t["B3"] - t["T"]) ** 2).sum()

    return f"MLP 32-{width}-{width}-8, batch {batch}", MLP, data, params, torch_loss


def lnorm(x):
    m = x.mean(-1, keepdim=True)
    return (x - m) / torch.sqrt(((x - m) ** 2).mean(-1, keepdim=True) + 1e-5)


def transformer_case(batch: int, dim: int, rng: np.random.Generator):
    B, heads, positions, vocab = 2, 2, 16, 20
    dk, hidden = dim // heads, 2 * dim
    tokens = rng.integers(0, vocab, size=(batch, positions + 1))
    X = np.eye(vocab)[tokens[:, :-1]]
    Tgt = np.eye(vocab)[tokens[:, 1:]]
    data = {"X": X, "Tgt": Tgt, "Mask": np.triu(np.ones((positions, positions)), k=1), "Dk": dk, "B": B}
    s = 1 / np.sqrt(dim)
    params = {"Emb": rng.normal(size=(vocab, dim)), "PosEmb": rng.normal(size=(positions, dim)),
              "WQ": rng.normal(scale=s, size=(B, heads, dk, dim)), "WK": rng.normal(scale=s, size=(B, heads, dk, dim)),
              "WV": rng.normal(scale=s, size=(B, heads, dk, dim)), "WS": rng.normal(scale=s, size=(B, dim, dim)),
              "W1": rng.normal(scale=s, size=(B, hidden, dim)),
              "W2": rng.normal(scale=1 / np.sqrt(hidden), size=(B, dim, hidden)),
              "WO": rng.normal(scale=s, size=(vocab, dim))}
    mask = torch.tensor(data["Mask"])

    def torch_loss(t):
        st = torch.einsum("ept,td->epd", t["X"], t["Emb"]) + t["PosEmb"]
        for b in range(B):
            q = torch.einsum("hkd,epd->hepk", t["WQ"][b], st)
            k = torch.einsum("hkd,epd->hepk", t["WK"][b], st)
            v = torch.einsum("hkd,epd->hepk", t["WV"][b], st)
            comp = torch.softmax(torch.einsum("hepk,heqk->hepq", q, k) / np.sqrt(dk) - 1000 * mask, dim=-1)
            attn = torch.einsum("hepq,heqv->hepv", comp, v)
            merge = attn.permute(1, 2, 0, 3).reshape(batch, positions, dim)
            resid = lnorm(merge @ t["WS"][b].T + st)
            st = lnorm(torch.relu(resid @ t["W1"][b].T) @ t["W2"][b].T + resid)
        y = torch.softmax(st @ t["WO"].T, dim=-1)
        return -(t["Tgt"] * torch.log(y + 1e-9)).sum()

    return f"transformer 2 blocks, dim {dim}, 16 positions, batch {batch}", TRANSFORMER, data, params, torch_loss


def tl_stepper(src: str, data: dict, params: dict, compiled: bool = True):
    """(one training step, the first loss): `prog.grad` plus Adam; with `compiled` False every equation runs
    through the interpreter (TL_COMPILE=0)."""
    prog = tl.Program(src)
    opt = make_optimizer("adam", 1e-3)
    ps = {k: v.copy() for k, v in params.items()}
    names = sorted(ps)

    def step() -> None:
        if not compiled:
            os.environ["TL_COMPILE"] = "0"
        try:
            g = prog.grad("Loss", names, **data, **ps)
        finally:
            os.environ.pop("TL_COMPILE", None)
        opt.step(ps, g)

    prog.grad("Loss", names, **data, **ps)  # plan and analyse once
    first = prog.last_loss
    step()
    return step, first


def torch_stepper(loss_fn, data: dict, params: dict):
    t = {k: torch.tensor(np.asarray(v, dtype=np.float64)) for k, v in data.items()}
    ps = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt = torch.optim.Adam(list(ps.values()), lr=1e-3)
    first = loss_fn({**t, **ps}).item()

    def step() -> None:
        opt.zero_grad()
        loss = loss_fn({**t, **ps})
        loss.backward()
        opt.step()

    step()
    return step, first


def median_interleaved(steps: list, n: int) -> list[float]:
    """The median time of each step function, the functions run in turn n times."""
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(n):
        for k, f in enumerate(steps):
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--quick", action="store_true", help="the small sizes only")
    ap.add_argument("--default-malloc", action="store_true", help="keep glibc's adaptive malloc thresholds")
    args = ap.parse_args()
    if not args.default_malloc:
        keep_freed_memory()
    rng = np.random.default_rng(0)
    cases = [mlp_case(64, 64, rng), transformer_case(4, 16, rng)]
    if not args.quick:
        cases += [mlp_case(256, 512, rng), transformer_case(16, 64, rng)]
    print("median time per training step (Adam), CPU, 1 thread (torch.set_num_threads(1), 1 BLAS thread), float64;"
          " steps interleaved")
    print(f"{'model':<52} {'tensorlogic':>12} {'torch eager':>12} {'ratio':>7} {'interp':>10} {'ratio':>7}"
          "  loss agrees")
    for name, src, data, params, loss_fn in cases:
        ours, l_ours = tl_stepper(src, data, params)
        interp, _ = tl_stepper(src, data, params, compiled=False)
        ref, l_ref = torch_stepper(loss_fn, data, params)
        t_ours, t_ref, t_interp = median_interleaved([ours, ref, interp], args.steps)
        agree = abs(l_ours - l_ref) <= 1e-8 * max(1.0, abs(l_ref))
        print(f"{name:<52} {t_ours * 1e3:>10.2f}ms {t_ref * 1e3:>10.2f}ms {t_ours / t_ref:>6.2f}x "
              f"{t_interp * 1e3:>8.2f}ms {t_interp / t_ref:>6.2f}x  {agree}")
    print("target: at most 1.3x on CPU (interp: every equation interpreted, TL_COMPILE=0)")


if __name__ == "__main__":
    main()
