"""Sliced joins under a memory budget: peak memory and time of a join whose pairwise products are 100 MB.

`Y[a,b,f,g] = A[a,b,c,f] B[a,b,c,g] C[c,f,g]`: every order's first pairwise product is Y times the extent of
c (a, b = 4; c = 85; f, g = 96: 12.5 M elements, 100 MB), while the inputs take 8.3 MB and Y 1.1 MB. Run
unsliced and under budgets of 40, 20 and 14 MB and at the least budget slicing reaches; for each: the
executor-counted peak, the peak of memory numpy really allocated (tracemalloc, a separate run), the best
time of N runs alternated with the unsliced run in one process, and the ratio. Then the training step of
`Loss = Y Y` (its gradient program): the least budget the keep/recompute optimiser can meet without and with
slicing. `--quick` runs fewer repetitions.

    .venv/bin/python bench/sliced.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tensorlogic as tl  # noqa: E402
from tensorlogic.plan.program import human_bytes  # noqa: E402

SRC = "Y[a, b, f, g] = A[a, b, c, f] B[a, b, c, g] C[c, f, g]\nY?\n"
MB = 2 ** 20


def inputs(a=4, b=4, c=85, f=96, g=96) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return dict(A=rng.normal(size=(a, b, c, f)), B=rng.normal(size=(a, b, c, g)), C=rng.normal(size=(c, f, g)))


def run_once(prog: tl.Program, vals: dict, budget: int | None) -> float:
    t = time.perf_counter()
    prog.run(memory_budget=budget, **vals)
    return time.perf_counter() - t


def traced_peak(src: str, vals: dict, budget: int | None) -> int:
    prog = tl.Program(src)
    prog.run(memory_budget=budget, **vals)  # warm (analysis, plans)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    prog.run(memory_budget=budget, **vals)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak + sum(v.nbytes for v in vals.values())  # the inputs were allocated before tracing


def least_budget(src: str, vals: dict) -> int:
    try:
        tl.Program(src).run(memory_budget=1, **vals)
    except tl.TLRuntimeError as e:
        return int(str(e).split("(")[-1].split(" bytes")[0].replace(",", ""))
    raise AssertionError("a 1-byte budget was accepted")


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def training(reps: int) -> None:
    from tensorlogic.learn.budget import CHUNK_OVERHEAD_FLOPS, slice_nodes
    from tensorlogic.plan.remat import solve
    from tensorlogic.plan.remat_graph import graph_from_plan

    os.environ["TL_SHARE"] = "0"  # sub-join sharing (plan/sharing.py) would store A B, the product slicing avoids
    vals = inputs(a=2, b=3, c=40, f=30, g=30)
    src = SRC.replace("Y?\n", "Loss = Y[a, b, f, g] Y[a, b, f, g]\n")
    prog = tl.Program(src)
    prog.grad("Loss", ["A", "B", "C"], **vals)
    plain = prog.last_peak_bytes
    gp = next(v[0] for k, v in prog._grad_programs.items() if isinstance(k, tuple) and k[0] == "Loss")
    outs = {"Grad_A", "Grad_B", "Grad_C", "Loss"}
    plan = gp.plan()
    g0 = graph_from_plan(plan, outs)
    base_cost = solve(g0, None, "store_all").cost
    without = solve(g0, 1.0, "milp").min_budget  # the least budget the optimiser finds, workspaces as planned
    g1 = graph_from_plan(plan, outs)
    slice_nodes(g1, plan, None)
    with_slicing = solve(g1, 1.0, "milp").min_budget  # ... every join sliced as far as it goes
    print(f"\ntraining step of Loss = Y Y (A, B, C: 2x3x40x30, 2x3x40x30, 40x30x30; sub-join sharing off): "
          f"store-all peak {human_bytes(plain)}; least budget without slicing {human_bytes(int(without))}, "
          f"with slicing {human_bytes(int(with_slicing))}")
    for frac in (0.8, 0.6, 0.45):
        budget = int(plain * frac)
        p = tl.Program(src)
        try:
            p.grad("Loss", ["A", "B", "C"], memory_budget=budget, **vals)  # plans the schedule once
        except tl.TLRuntimeError as e:
            print(f"  budget {frac:.0%} ({human_bytes(budget)}): refused: {e.diagnostics[0].hint}")
            continue
        best = min(_timed(lambda p=p, budget=budget: p.grad("Loss", ["A", "B", "C"], memory_budget=budget, **vals))
                   for _ in range(reps))
        extra = p.last_schedule.cost / base_cost - 1
        print(f"  budget {frac:.0%} ({human_bytes(budget)}): measured peak {human_bytes(p.last_peak_bytes)}, "
              f"modelled cost {extra:+.1%} over store-all (FLOPs, and {CHUNK_OVERHEAD_FLOPS:,} per chunk), "
              f"best step {best * 1e3:.1f} ms")
    del os.environ["TL_SHARE"]


def table(title: str, src: str, vals: dict, ref: np.ndarray, budgets: list[tuple[str, int | None]],
          reps: int) -> None:
    """Each budget's counted and numpy peak and best time, alternated with the unsliced run in one process."""
    progs = {name: tl.Program(src) for name, _ in budgets}
    times: dict[str, list[float]] = {name: [] for name, _ in budgets}
    for name, budget in budgets:
        run_once(progs[name], vals, budget)  # warm
    for _ in range(reps):
        for name, budget in budgets:  # alternated, so each sees the same machine load
            times[name].append(run_once(progs[name], vals, budget))
    base = min(times["unsliced"])
    print(f"\n{title}")
    print(f"{'budget':>16} {'counted peak':>13} {'numpy peak':>11} {'best time':>10} {'vs unsliced':>11}  slicing")
    for name, budget in budgets:
        prog = progs[name]
        err = float(np.abs(prog["Y"] - ref).max())
        assert err < 1e-8 * max(1.0, float(np.abs(ref).max())), err
        how = "-"
        if budget is not None:
            plan = prog.plan(budget)
            how = "; ".join(sj.describe() for _, _, sj in plan.slicing.sliced) or "not sliced"
            assert prog.executor.peak_bytes <= budget
        shown = f"{name} ({human_bytes(budget)})" if name == "least" else name
        print(f"{shown:>16} {human_bytes(prog.executor.peak_bytes):>13} "
              f"{human_bytes(traced_peak(src, vals, budget)):>11} {min(times[name]) * 1e3:>8.0f} ms "
              f"{min(times[name]) / base:>10.2f}x  {how}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    vals = inputs()
    ref = np.einsum("abcf,abcg,cfg->abfg", vals["A"], vals["B"], vals["C"])
    table(f"Y = A B C summed over c; inputs {human_bytes(sum(v.nbytes for v in vals.values()))}, Y "
          f"{human_bytes(ref.nbytes)}, every pairwise product {human_bytes(4 * 4 * 85 * 96 * 96 * 8)}", SRC, vals,
          ref, [("unsliced", None), ("40 MB", 40 * MB), ("20 MB", 20 * MB), ("14 MB", 14 * MB),
                ("least", least_budget(SRC, vals))], reps)
    training(3 if args.quick else 5)


if __name__ == "__main__":
    main()
