"""End-to-end overhead: tensorlogic against the same forward passes written directly in numpy.

Two workloads, the equations of examples/transformer.tl and examples/gnn.tl at realistic small-model sizes:

* transformer: sequence P = 128 tokens, vocabulary V = 64, model dimension De = 128, H = 4 heads of Dk = 32,
  MLP hidden size F = 512, B = 2 blocks; queries `Y` (the output distribution per position).
* GNN: N = 2,000 nodes, about 10,000 directed edges (5,000 seeded random undirected pairs, both directions,
  no self loops), dimension D = 64, L = 3 layers; queries `Final`, `YNode` and `YGraph` (the example's
  `YEdge`, an N x N all-pairs score, is left out: one large matmul that would hide the overhead).

The programs are the examples' equations verbatim (the script checks each equation line against the example
file) without their data statements; the data is passed to `prog.run(**inputs)` (relations as lists of
tuples, tensors as arrays, sizes as scalars).

Variants, each timed with `time.perf_counter`, best of `REPEATS` runs:

* tensorlogic, first run: `prog.run(**inputs)` on a freshly constructed `tl.Program` (parsing is not timed;
  analysis, planning and execution are), once;
* tensorlogic, repeated: `prog.run(**inputs)` again on the same Program (plans cached, equations compiled);
* tensorlogic, interpreter: the same with the compiled fast path off (`TL_COMPILE=0`), for before/after;
* numpy direct: `@` matmuls, broadcasting and fancy indexing, the way one writes the model by hand;
* numpy einsum: every contraction as one `np.einsum(..., optimize="optimal")` call.

The last four are timed interleaved (each repetition runs each variant once), so a change of load on a shared
machine hits them alike. The outputs are checked to agree (np.allclose, rtol 1e-8) before timing. The
target (issue 3) is tensorlogic repeated / numpy direct <= 1.10 (PASS/MISS); the table also gives the ratio to
the einsum variant and the interpreter's ratio.

Diagnostics (what-if variants, to attribute the overhead; all checked against numpy too): the time of
`prog.analyze(**inputs)` alone (every `run` analyses again); the program with only its first query (shows
work recomputed across queries); and the same equations with one tensor per layer / block instead of the
recursion over the layer index (what a layer-at-a-time schedule would cost, against the fixpoint iteration).
Finally one tensorlogic run per workload is profiled with cProfile: the top functions by cumulative time, and
a breakdown into stages (analysis, gathers, contractions, scatters, fixpoint rounds, ...).

BLAS / OpenMP pools are set to one thread before numpy is imported. glibc's malloc is told to keep freed memory
(`mallopt`: no trimming, no mmap below 64 MB), for every variant alike: otherwise which variant pays page
faults for its large arrays (hundreds per run) depends on the order the variants happen to run and free in
(`--default-malloc` keeps glibc's adaptive thresholds; the table shows minor page faults per run either way).
CPU times (`time.process_time`) are printed next to wall times: other processes on a shared machine inflate
the latter. Run from the repository root: ``python bench/overhead.py [--repeats N] [--no-diagnostics]
[--no-profile] [--strict] [--default-malloc]`` (``--strict`` exits with status 1 on a MISS). About 15 seconds.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in THREAD_VARS:
    os.environ[_v] = "1"

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from malloc_settings import keep_freed_memory, minor_faults  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import tensorlogic as tl  # noqa: E402

SEED = 20240917
REPEATS = 7
TARGET = 1.10
RTOL, ATOL = 1e-8, 1e-10

# ----------------------------------------------------------------------------------------------------------
# programs: the examples' equations, verbatim, without data statements
# ----------------------------------------------------------------------------------------------------------

TRANSFORMER_TL = """
EmbX[p, d] = X(p, t) Emb[t, d]
PosEnc[p, d] = Even(d) sin(p / Base^(d/De)) + Odd(d) cos(p / Base^((d-1)/De))
Stream[0, p, d] = EmbX[p, d] + PosEnc[p, d]
Query[b, h, p, dk] = WQ[b, h, dk, d] Stream[b, p, d]
Key[b, h, p, dk] = WK[b, h, dk, d] Stream[b, p, d]
Val[b, h, p, dv] = WV[b, h, dv, d] Stream[b, p, d]
Comp[b, h, p, p'.] = softmax(Query[b, h, p, dk] Key[b, h, p', dk] / sqrt(Dk))
Attn[b, h, p, dv] = Comp[b, h, p, p'] Val[b, h, p', dv]
Merge[b, p, dm] = concat(Attn[b, h, p, dv])
Resid[b, p, d.] = lnorm(WS[b, d, dm] Merge[b, p, dm] + Stream[b, p, d])
Hidden[b, p, f] = relu(W1[b, f, d] Resid[b, p, d])
Stream[b+1, p, d.] = lnorm(W2[b, d, f] Hidden[b, p, f] + Resid[b, p, d])
Y[p, t.] = softmax(WO[t, d] Stream[B, p, d])
Y?
"""

GNN_TL = """
Emb[n, 0, d] = X[n, d]
Z[n, l, d'] = relu(WP[l, d', d] Emb[n, l, d])
Agg[n, l, d] = Neig(n, n') Z[n', l, d]
Emb[n, l+1, d] = relu(WAgg Agg[n, l, d] + WSelf Emb[n, l, d])
Final[n, d] = Emb[n, L, d]
YNode[n] = sig(WOut[d] Emb[n, L, d])
YGraph = sig(WOut[d] Emb[n, L, d])
Final?
YNode?
YGraph?
"""


def unrolled_transformer(blocks: int) -> str:
    """The transformer with one tensor per block (S0, Q0, ..., S1, ...): the same equations without recursion."""
    lines = TRANSFORMER_TL.strip().splitlines()[:2] + ["S0[p, d] = EmbX[p, d] + PosEnc[p, d]"]
    for b in range(blocks):
        lines += [f"Q{b}[h, p, dk] = WQ[{b}, h, dk, d] S{b}[p, d]",
                  f"K{b}[h, p, dk] = WK[{b}, h, dk, d] S{b}[p, d]",
                  f"V{b}[h, p, dv] = WV[{b}, h, dv, d] S{b}[p, d]",
                  f"C{b}[h, p, p'.] = softmax(Q{b}[h, p, dk] K{b}[h, p', dk] / sqrt(Dk))",
                  f"A{b}[h, p, dv] = C{b}[h, p, p'] V{b}[h, p', dv]",
                  f"M{b}[p, dm] = concat(A{b}[h, p, dv])",
                  f"R{b}[p, d.] = lnorm(WS[{b}, d, dm] M{b}[p, dm] + S{b}[p, d])",
                  f"H{b}[p, f] = relu(W1[{b}, f, d] R{b}[p, d])",
                  f"S{b + 1}[p, d.] = lnorm(W2[{b}, d, f] H{b}[p, f] + R{b}[p, d])"]
    return "\n".join(lines + [f"Y[p, t.] = softmax(WO[t, d] S{blocks}[p, d])", "Y?"]) + "\n"


def unrolled_gnn(layers: int) -> str:
    """The GNN with one tensor per layer (Z0, Agg0, E1, ...): the same equations without recursion."""
    lines, prev = [], "X"
    for k in range(layers):
        lines += [f"Z{k}[n, d'] = relu(WP[{k}, d', d] {prev}[n, d])",
                  f"Agg{k}[n, d] = Neig(n, n') Z{k}[n', d]",
                  f"E{k + 1}[n, d] = relu(WAgg Agg{k}[n, d] + WSelf {prev}[n, d])"]
        prev = f"E{k + 1}"
    lines += [f"Final[n, d] = {prev}[n, d]", f"YNode[n] = sig(WOut[d] {prev}[n, d])",
              f"YGraph = sig(WOut[d] {prev}[n, d])", "Final?", "YNode?", "YGraph?"]
    return "\n".join(lines) + "\n"


def check_verbatim(src: str, example: str) -> None:
    """Every equation of `src` is a line of the example file (so the benchmark runs the example's program)."""
    lines = {line.split("#", 1)[0].strip() for line in (ROOT / "examples" / example).read_text().splitlines()}
    for line in src.strip().splitlines():
        assert line.strip() in lines, f"{line!r} is not a line of examples/{example}"


# ----------------------------------------------------------------------------------------------------------
# numpy references
# ----------------------------------------------------------------------------------------------------------


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def lnorm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = x.mean(axis=axis, keepdims=True)
    v = ((x - m) ** 2).mean(axis=axis, keepdims=True)
    return (x - m) / np.sqrt(v + 1e-5)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def posenc(P: int, D: int, base: float) -> np.ndarray:
    p = np.arange(P, dtype=np.float64)[:, None]
    d = np.arange(D)[None, :]
    even = np.sin(p / base ** (d / D))
    odd = np.cos(p / base ** ((d - 1) / D))
    return np.where(d % 2 == 0, even, odd)


@dataclass
class Workload:
    name: str
    sizes: str
    source: str
    inputs: dict  # prog.run(**inputs)
    outputs: tuple[str, ...]  # tensors compared
    direct: Callable[[], dict[str, np.ndarray]]
    einsum: Callable[[], dict[str, np.ndarray]]
    unrolled: str  # diagnostic: the same equations with one tensor per layer (no recursion)
    unrolled_inputs: dict


def transformer_workload(rng: np.random.Generator) -> Workload:
    P, V, De, H, Dk, F, B, base = 128, 64, 128, 4, 32, 512, 2, 10000.0
    s = 1.0 / np.sqrt(De)
    w = {"Emb": rng.normal(size=(V, De)),
         "WQ": rng.normal(scale=s, size=(B, H, Dk, De)), "WK": rng.normal(scale=s, size=(B, H, Dk, De)),
         "WV": rng.normal(scale=s, size=(B, H, Dk, De)), "WS": rng.normal(scale=s, size=(B, De, H * Dk)),
         "W1": rng.normal(scale=s, size=(B, F, De)), "W2": rng.normal(scale=1 / np.sqrt(F), size=(B, De, F)),
         "WO": rng.normal(scale=s, size=(V, De))}
    tokens = rng.integers(0, V, size=P)
    inputs = dict(w, X=[(p, int(t)) for p, t in enumerate(tokens)], Even=[(d,) for d in range(0, De, 2)],
                  Odd=[(d,) for d in range(1, De, 2)], De=De, Dk=Dk, Base=base, B=B)
    scale = 1.0 / np.sqrt(Dk)

    def direct() -> dict[str, np.ndarray]:
        onehot = np.zeros((P, V))
        onehot[np.arange(P), tokens] = 1.0
        x = onehot @ w["Emb"] + posenc(P, De, base)
        for b in range(B):
            q = (x @ w["WQ"][b].reshape(H * Dk, De).T).reshape(P, H, Dk).transpose(1, 0, 2)
            k = (x @ w["WK"][b].reshape(H * Dk, De).T).reshape(P, H, Dk).transpose(1, 0, 2)
            v = (x @ w["WV"][b].reshape(H * Dk, De).T).reshape(P, H, Dk).transpose(1, 0, 2)
            comp = softmax((q @ k.transpose(0, 2, 1)) * scale)
            merge = (comp @ v).transpose(1, 0, 2).reshape(P, H * Dk)
            resid = lnorm(merge @ w["WS"][b].T + x)
            x = lnorm(relu(resid @ w["W1"][b].T) @ w["W2"][b].T + resid)
        return {"Y": softmax(x @ w["WO"].T)}

    def einsum() -> dict[str, np.ndarray]:
        def es(sub, *ops):
            return np.einsum(sub, *ops, optimize="optimal")

        onehot = np.zeros((P, V))
        onehot[np.arange(P), tokens] = 1.0
        x = es("pt,td->pd", onehot, w["Emb"]) + posenc(P, De, base)
        for b in range(B):
            q = es("hkd,pd->hpk", w["WQ"][b], x)
            k = es("hkd,pd->hpk", w["WK"][b], x)
            v = es("hkd,pd->hpk", w["WV"][b], x)
            comp = softmax(es("hpk,hqk->hpq", q, k) * scale)
            attn = es("hpq,hqv->phv", comp, v)
            resid = lnorm(es("dm,pm->pd", w["WS"][b], attn.reshape(P, H * Dk)) + x)
            x = lnorm(es("df,pf->pd", w["W2"][b], relu(es("fd,pd->pf", w["W1"][b], resid))) + resid)
        return {"Y": softmax(es("td,pd->pt", w["WO"], x))}

    sizes = f"P={P} V={V} De={De} H={H} Dk={Dk} F={F} B={B}"
    return Workload("transformer", sizes, TRANSFORMER_TL, inputs, ("Y",), direct, einsum, unrolled_transformer(B),
                    {k: v for k, v in inputs.items() if k != "B"})


def gnn_workload(rng: np.random.Generator) -> Workload:
    N, pairs, D, L = 2000, 5000, 64, 3
    a, b = rng.integers(0, N, size=(2, pairs))
    keep = a != b
    e = np.unique(np.concatenate([np.stack([a[keep], b[keep]], 1), np.stack([b[keep], a[keep]], 1)]), axis=0)
    src, dst = e[:, 0], e[:, 1]
    X = rng.normal(size=(N, D))
    WP = rng.normal(scale=1 / np.sqrt(D), size=(L, D, D))
    w_agg, w_self, w_out = 0.2, 0.8, rng.normal(size=D)
    inputs = {"Neig": [(int(i), int(j)) for i, j in e], "X": X, "WP": WP, "WAgg": w_agg, "WSelf": w_self,
              "WOut": w_out, "L": L}

    def outputs(final: np.ndarray) -> dict[str, np.ndarray]:
        score = final @ w_out
        return {"Final": final, "YNode": sig(score), "YGraph": sig(score.sum())}

    def direct() -> dict[str, np.ndarray]:
        A = np.zeros((N, N))
        A[src, dst] = 1.0
        h = X
        for layer in range(L):
            z = relu(h @ WP[layer].T)
            h = relu(w_agg * (A @ z) + w_self * h)
        return outputs(h)

    def einsum() -> dict[str, np.ndarray]:
        A = np.zeros((N, N))
        A[src, dst] = 1.0
        h = X
        for layer in range(L):
            z = relu(np.einsum("ed,nd->ne", WP[layer], h, optimize="optimal"))
            h = relu(w_agg * np.einsum("nm,md->nd", A, z, optimize="optimal") + w_self * h)
        final = h
        score = np.einsum("d,nd->n", w_out, final, optimize="optimal")
        return {"Final": final, "YNode": sig(score), "YGraph": sig(score.sum())}

    sizes = f"N={N} E={len(e)} D={D} L={L}"
    return Workload("gnn", sizes, GNN_TL, inputs, ("Final", "YNode", "YGraph"), direct, einsum, unrolled_gnn(L),
                    {k: v for k, v in inputs.items() if k != "L"})


# ----------------------------------------------------------------------------------------------------------
# timing and profiling
# ----------------------------------------------------------------------------------------------------------


def best_of(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def best_interleaved(fns: list[Callable[[], object]], repeats: int) -> list[tuple[float, float, float]]:
    """(best wall time, best CPU time, minor page faults per run) of each function, the functions run in turn
    in every repetition (so a change of load on a shared machine hits all of them alike)."""
    best = [float("inf")] * len(fns)
    cpu = [float("inf")] * len(fns)
    faults = [0] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            f0, c0, t0 = minor_faults(), time.process_time(), time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
            cpu[k] = min(cpu[k], time.process_time() - c0)
            faults[k] += minor_faults() - f0
    return [(b, c, f / repeats) for b, c, f in zip(best, cpu, faults)]


def interpreted(fn: Callable[[], object]) -> Callable[[], object]:
    """`fn` run with the compiled fast path off (TL_COMPILE=0: every equation through the interpreter)."""
    def run() -> object:
        os.environ["TL_COMPILE"] = "0"
        try:
            return fn()
        finally:
            del os.environ["TL_COMPILE"]
    return run


def agree(name: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray], what: str) -> None:
    for k, v in want.items():
        g = np.asarray(got[k], dtype=np.float64).reshape(np.shape(v))
        err = float(np.max(np.abs(g - v))) if np.size(v) else 0.0
        assert np.allclose(g, v, rtol=RTOL, atol=ATOL), f"{name}: {what} {k} differs from numpy (max abs {err:.3g})"


# Stages of a run: (label, file suffix, function name). Cumulative times; nested stages overlap
# (contractions happen inside the fixpoint rounds, for instance), so the shares do not add up to 100%.
STAGES = [
    ("analysis (Program.analyze)", "tensorlogic/api.py", "analyze"),
    ("execution (Executor.ensure)", "runtime/executor.py", "ensure"),
    ("  fixpoint rounds (Executor.iterate)", "runtime/executor.py", "iterate"),
    ("  compiled equations (CompiledEquation)", "runtime/compiled.py", "__call__"),
    ("  one equation (Executor.contribution)", "runtime/executor.py", "contribution"),
    ("    gathers (dense.gather)", "runtime/dense.py", "gather"),
    ("    pairwise contractions (backend.contract)", "backends/numpy_backend.py", "contract"),
    ("    planning (cached_plan_join)", "plan/program.py", "cached_plan_join"),
    ("    join cache keys (DenseEvaluator.cache_key)", "runtime/dense.py", "cache_key"),
    ("    softmax (backend.softmax)", "backends/numpy_backend.py", "softmax"),
    ("    lnorm (backend.lnorm)", "backends/numpy_backend.py", "lnorm"),
    ("    scatter into the head (scatter.scatter)", "runtime/scatter.py", "scatter"),
    ("      np.add.at (scatter to index expressions)", "~", "<method 'at' of 'numpy.ufunc' objects>"),
    ("  stratification (ir.graph.strata)", "ir/graph.py", "strata"),
    ("  relation -> dense (Relation.to_dense)", "backends/relations.py", "to_dense"),
    ("  live-bytes accounting (live_bytes)", "runtime/executor.py", "live_bytes"),
    ("  answering queries (queries.answer)", "runtime/queries.py", "answer"),
]


def profile_run(prog: tl.Program, inputs: dict, top: int) -> None:
    pr = cProfile.Profile()
    t0 = time.perf_counter()
    pr.enable()
    prog.run(**inputs)
    pr.disable()
    wall = time.perf_counter() - t0
    st = pstats.Stats(pr)
    total = max(st.total_tt, 1e-12)
    print(f"  profiled run: {wall * 1e3:.1f} ms wall (with profiler), {total * 1e3:.1f} ms profiled; cProfile "
          "inflates pure-Python stages (analysis, bookkeeping) several times more than numpy kernels")
    print("  strata: " + "; ".join(f"{'+'.join(s.tensors)} {s.kind}"
                                    + (f" x{s.rounds} ({s.stopped_by})" if s.kind != "once" else "")
                                    for s in prog.report.strata))
    print(f"  {'stage':48s} {'calls':>7s} {'cum ms':>9s} {'share':>7s}")
    for label, suffix, func in STAGES:
        calls, cum = 0, 0.0
        for (file, _line, fn), (_cc, nc, _tt, ct, _callers) in st.stats.items():
            if fn == func and file.replace("\\", "/").endswith(suffix):
                calls += nc
                cum += ct
        if calls:
            print(f"  {label:48s} {calls:7d} {cum * 1e3:9.1f} {cum / total:7.1%}")
    buf = io.StringIO()
    pstats.Stats(pr, stream=buf).strip_dirs().sort_stats("cumulative").print_stats(top)
    lines = buf.getvalue().splitlines()
    start = next((k for k, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    print(f"  top {top} functions by cumulative time:")
    for line in lines[start:]:
        if line.strip():
            print("    " + line)


def first_query_only(src: str) -> str:
    """The program with only its first query (later queries removed)."""
    lines = src.strip().splitlines()
    queries = [k for k, line in enumerate(lines) if line.rstrip().endswith("?")]
    return "\n".join(line for k, line in enumerate(lines) if k not in queries[1:]) + "\n"


def tl_best(src: str, inputs: dict, repeats: int, wl: Workload, ref: dict) -> tuple[float, float]:
    """(best repeated run, best analysis alone) of a program; its outputs are checked against `ref`."""
    prog = tl.Program(src)
    prog.run(**inputs)
    queried = [k for k in wl.outputs if f"{k}?" in src]
    agree(wl.name, {k: prog[k] for k in queried}, {k: ref[k] for k in queried}, "tensorlogic variant")
    run = best_of(lambda: prog.run(**inputs), repeats)
    analysis = best_of(lambda: prog.analyze(**inputs), repeats)
    return run, analysis


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--repeats", type=int, default=REPEATS, help=f"best of N runs (default {REPEATS})")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile section")
    ap.add_argument("--no-diagnostics", action="store_true", help="skip the what-if variants")
    ap.add_argument("--top", type=int, default=15, help="functions shown per profile (default 15)")
    ap.add_argument("--strict", action="store_true", help="exit with status 1 when a workload misses the target")
    ap.add_argument("--default-malloc", action="store_true", help="keep glibc's adaptive malloc thresholds")
    args = ap.parse_args()

    print(f"threads: {', '.join(f'{v}={os.environ[v]}' for v in THREAD_VARS)}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs; timing: time.perf_counter, best of {args.repeats} "
          f"(tensorlogic first run: once, on a fresh Program)")
    rng = np.random.default_rng(SEED)
    check_verbatim(TRANSFORMER_TL.replace("Y?", ""), "transformer.tl")
    check_verbatim(GNN_TL, "gnn.tl")
    workloads = [transformer_workload(rng), gnn_workload(rng)]

    rows, progs, refs, cpu_rows = [], {}, {}, []
    malloc = "glibc default" if args.default_malloc else (
        "freed memory kept (mallopt)" if keep_freed_memory() else "default (no mallopt)")
    print(f"malloc: {malloc}")
    for wl in workloads:
        prog = tl.Program(wl.source, file=f"<{wl.name}>")
        t0 = time.perf_counter()
        prog.run(**wl.inputs)
        first = time.perf_counter() - t0
        ref = refs[wl.name] = wl.direct()
        agree(wl.name, {k: prog[k] for k in wl.outputs}, ref, "tensorlogic")
        agree(wl.name, wl.einsum(), ref, "einsum")
        interp = tl.Program(wl.source, file=f"<{wl.name}>")
        run_interp = interpreted(lambda wl=wl, interp=interp: interp.run(**wl.inputs))
        run_interp()
        timed = best_interleaved(
            [lambda wl=wl, prog=prog: prog.run(**wl.inputs), run_interp, wl.direct, wl.einsum], args.repeats)
        (repeated, cpu_tl, faults_tl), (interp_t, _, _), (direct, cpu_direct, faults_direct), (einsum, _, _) = timed
        agree(wl.name, {k: prog[k] for k in wl.outputs}, ref, "tensorlogic (repeated)")
        agree(wl.name, {k: interp[k] for k in wl.outputs}, ref, "tensorlogic (interpreter)")
        strata = ", ".join(f"{'+'.join(s.tensors)} x{s.rounds}" for s in prog.report.strata if s.kind != "once")
        print(f"{wl.name}: {wl.sizes}; outputs {', '.join(wl.outputs)} agree (np.allclose rtol={RTOL:g} "
              f"atol={ATOL:g}); recursive strata (rounds): {strata or 'none'}")
        rows.append((wl, first, repeated, direct, einsum, interp_t))
        cpu_rows.append((wl.name, cpu_tl, cpu_direct, faults_tl, faults_direct))
        progs[wl.name] = prog

    print(f"\ntimes in ms, best of {args.repeats}, the four variants interleaved; tl/direct = tensorlogic "
          f"repeated / numpy direct, target <= {TARGET:.2f}; interp = the same runs with the compiled fast path "
          "off (TL_COMPILE=0)")
    head = (f"{'workload':12s} {'tl first':>9s} {'tl repeat':>10s} {'interp':>8s} {'np direct':>10s} "
            f"{'np einsum':>10s} {'tl/direct':>10s} {'interp/direct':>14s} {'tl/einsum':>10s} {'first/direct':>13s}"
            "  verdict")
    print(head)
    print("-" * len(head))
    misses = 0
    for wl, first, repeated, direct, einsum, interp_t in rows:
        r_direct, r_einsum = repeated / direct, repeated / einsum
        verdict = "PASS" if r_direct <= TARGET else "MISS"
        misses += verdict == "MISS"
        print(f"{wl.name:12s} {first * 1e3:9.1f} {repeated * 1e3:10.1f} {interp_t * 1e3:8.1f} {direct * 1e3:10.1f} "
              f"{einsum * 1e3:10.1f} {r_direct:10.2f} {interp_t / direct:14.2f} {r_einsum:10.2f} "
              f"{first / direct:13.2f}  {verdict}")
    print("CPU time (best of the same runs; what the other processes on the machine do not inflate), and minor "
          "page faults per run:")
    for name, cpu_tl, cpu_direct, faults_tl, faults_direct in cpu_rows:
        print(f"  {name:12s} tl {cpu_tl * 1e3:.2f} ms, numpy direct {cpu_direct * 1e3:.2f} ms, ratio "
              f"{cpu_tl / cpu_direct:.2f}; page faults tl {faults_tl:.0f}, direct {faults_direct:.0f}")

    if not args.no_diagnostics:
        print("\ndiagnostics (what-if variants of the same computation; ms, best of "
              f"{args.repeats}; ratio to numpy direct in brackets):")
        print("  analysis only   = prog.analyze(**inputs), which every prog.run repeats")
        print("  first query     = the program with only its first query (no recomputation across queries)")
        print("  layers unrolled = one tensor per layer/block, no recursion (what a layer-at-a-time schedule costs)")
        print("  both            = layers unrolled and first query only; '- analysis' subtracts its analysis time")
        dhead = (f"  {'workload':12s} {'tl repeat':>14s} {'analysis only':>14s} {'first query':>14s} "
                 f"{'layers unrolled':>16s} {'both':>14s} {'both - analysis':>16s}")
        print(dhead)
        for wl, _first, repeated, direct, _einsum, _interp in rows:
            analysis = best_of(lambda wl=wl: progs[wl.name].analyze(**wl.inputs), args.repeats)
            one, one_unr = first_query_only(wl.source), first_query_only(wl.unrolled)
            several = one.strip() != wl.source.strip()
            t_one = tl_best(one, wl.inputs, args.repeats, wl, refs[wl.name])[0] if several else repeated
            t_unr, a_unr = tl_best(wl.unrolled, wl.unrolled_inputs, args.repeats, wl, refs[wl.name])
            t_both, a_both = tl_best(one_unr, wl.unrolled_inputs, args.repeats, wl, refs[wl.name]) if several \
                else (t_unr, a_unr)

            def cell(t: float, width: int, direct: float = direct) -> str:
                return f"{t * 1e3:.1f} [{t / direct:.2f}]".rjust(width)

            print(f"  {wl.name:12s} {cell(repeated, 14)} {cell(analysis, 14)} {cell(t_one, 14)} "
                  f"{cell(t_unr, 16)} {cell(t_both, 14)} {cell(t_both - a_both, 16)}")
            progs[wl.name].run(**wl.inputs)  # analyze() above reset the executor; the profile reruns it

    if not args.no_profile:
        for wl in workloads:
            print(f"\nprofile of one repeated tensorlogic run: {wl.name} ({wl.sizes})")
            profile_run(progs[wl.name], wl.inputs, args.top)
    return 1 if args.strict and misses else 0


if __name__ == "__main__":
    sys.exit(main())
