"""Benchmark: keep or recompute under a memory budget (issue 4 part 4; docs/remat.md).

(a) Checkmate's unit-cost linear graph of 16 layers (forward and backward steps cost 1, every value 1
unit): recompute overhead at 72% and 50% of the store-everything peak by the MILP and the DP (the proven
optimum: 15.2% and 27.3%), and the smallest budget (3 units). (b) An MLP chain and a 2-block transformer:
their computation graphs are built from tensorlogic's own gradient programs (`tl grad`), one node per
stratum, FLOPs and bytes from the whole-program plan; for each strategy (store-all, sqrt(n), DP where the
graph is a chain, the layered chain DP where the graph is a sequential network's, MILP) the modelled peak
and the extra FLOPs at 100%, 50%, 33% and 30% of the modelled store-everything peak, and each schedule run by
the executor: its measured peak, time and gradients. The MILP here computes each backward value once
(`recompute_backward=False`, a smaller model HiGHS solves fast) and starts from the best heuristic schedule;
its bound (and with --full-bound, the bound of the full model, where backward values may be recomputed too)
says how far from optimal a schedule not proven optimal can be.

    .venv/bin/python bench/remat.py [--quick] [--time-limit SECONDS] [--full-bound SECONDS] [--skip-chain]
"""

from __future__ import annotations

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: steady timings
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import tensorlogic as tl  # noqa: E402
from tensorlogic.plan.remat import chain_graph, lower_bound_budget, solve, store_all  # noqa: E402
from tensorlogic.plan.remat_chain import chain_shape  # noqa: E402
from tensorlogic.plan.remat_graph import graph_from_plan  # noqa: E402
from tensorlogic.plan.remat_layers import layer_chain  # noqa: E402
from tensorlogic.plan.remat_milp import milp_solve  # noqa: E402


def mlp_source(layers: int, width: int, batch: int) -> tuple[str, dict[str, np.ndarray]]:
    """A ReLU MLP with `layers` hidden layers, squared-error loss; data X and Y."""
    lines = [f"tensor X[{batch}, {width}]", f"tensor Y[{batch}, {width}]"]
    lines += [f"tensor W{i}[{width}, {width}] learnable" for i in range(1, layers + 2)]
    prev = "X"
    for i in range(1, layers + 1):
        lines.append(f"H{i}[b, j] = relu(W{i}[j, k] {prev}[b, k])")
        prev = f"H{i}"
    lines += [f"Z[b, j] = W{layers + 1}[j, k] {prev}[b, k]", "Loss = (Z[b, j] - Y[b, j])^2"]
    rng = np.random.default_rng(0)
    return "\n".join(lines) + "\n", {"X": rng.standard_normal((batch, width)),
                                     "Y": rng.standard_normal((batch, width))}


def transformer_source(seqs: int = 32, P: int = 16, De: int = 64, H: int = 4, Dk: int = 16, F: int = 128,
                       V: int = 16, blocks: int = 2) -> tuple[str, dict[str, np.ndarray]]:
    """`blocks` transformer blocks (attention, residual, layer norm, ReLU MLP) over `seqs` sequences of P
    positions, a softmax output and cross-entropy loss; data X (embedded input) and Tgt (one-hot)."""
    lines = [f"tensor X[{seqs}, {P}, {De}]", f"tensor Tgt[{seqs}, {P}, {V}]", f"Dk = {Dk}"]
    for b in range(1, blocks + 1):
        for w, shp in [("WQ", (H, Dk, De)), ("WK", (H, Dk, De)), ("WV", (H, Dk, De)), ("WS", (De, H, Dk)),
                       ("WA", (F, De)), ("WB", (De, F))]:
            lines.append(f"tensor {w}{b}[{', '.join(map(str, shp))}] learnable")
    lines.append(f"tensor WO[{V}, {De}] learnable")
    prev = "X"
    for b in range(1, blocks + 1):
        lines += [f"Q{b}[n, h, p, k] = WQ{b}[h, k, d] {prev}[n, p, d]",
                  f"K{b}[n, h, p, k] = WK{b}[h, k, d] {prev}[n, p, d]",
                  f"V{b}[n, h, p, k] = WV{b}[h, k, d] {prev}[n, p, d]",
                  f"C{b}[n, h, p, q.] = softmax(Q{b}[n, h, p, k] K{b}[n, h, q, k] / sqrt(Dk))",
                  f"A{b}[n, h, p, k] = C{b}[n, h, p, q] V{b}[n, h, q, k]",
                  f"R{b}[n, p, d.] = lnorm(WS{b}[d, h, k] A{b}[n, h, p, k] + {prev}[n, p, d])",
                  f"M{b}[n, p, f] = relu(WA{b}[f, d] R{b}[n, p, d])",
                  f"S{b}[n, p, d.] = lnorm(WB{b}[d, f] M{b}[n, p, f] + R{b}[n, p, d])"]
        prev = f"S{b}"
    lines += [f"Out[n, p, t.] = softmax(WO[t, d] {prev}[n, p, d])", "Loss = - Tgt[n, p, t] log(Out[n, p, t])"]
    rng = np.random.default_rng(0)
    return "\n".join(lines) + "\n", {"X": rng.standard_normal((seqs, P, De)),
                                     "Tgt": np.eye(V)[rng.integers(0, V, (seqs, P))]}


class Case:
    """A model's gradient program, its computation graph, and a way to run a schedule of it."""

    def __init__(self, source: str, data: dict[str, np.ndarray]):
        prog = tl.Program(source)
        self.source = prog.grad_source("Loss", **data)
        self.values = {**data, **prog.params}
        gp = tl.Program(self.source)
        gp.run(**self.values)
        self.run_peak = gp.executor.peak_bytes  # an ordinary `run()` of the gradient program
        plan = gp.plan()
        self.predicted = plan.peak_bytes
        self.graph = graph_from_plan(plan)
        self.grads = sorted(t for node in self.graph.outputs for t in self.graph.tensors[node])
        self.reference = {t: gp[t] for t in self.grads}

    def run(self, steps) -> tuple[int, float, float] | None:
        """Run `steps` on the executor (`Executor.run_schedule`, where the executor has it): measured peak
        bytes, seconds, largest gradient difference from an ordinary run."""
        gp = tl.Program(self.source)
        gp.analyze(**self.values)
        ex = gp.executor
        if not hasattr(ex, "run_schedule"):
            return None
        t0 = time.process_time()  # CPU time of this process: other processes on a shared machine do not count
        ex.run_schedule(self.graph.tensors, steps)
        secs = time.process_time() - t0
        diff = max(float(np.abs(ex.dense(t) - self.reference[t]).max()) for t in self.grads)
        return ex.peak_bytes, secs, diff

    def measure(self, steps, base_steps, repeat: int = 5) -> tuple[int, float, float] | None:
        """`run`, alternating with the store-all schedule `repeat` times: (peak, time ratio of the best runs,
        gradient difference)."""
        best, base = None, float("inf")
        for k in range(repeat):
            if k % 2:
                r, b = self.run(steps), self.run(base_steps)
            else:
                b, r = self.run(base_steps), self.run(steps)
            if r is None or b is None:
                return None
            best = r if best is None or r[1] < best[1] else best
            base = min(base, b[1])
        return best[0], best[1] / base, best[2]


def unit_chain(time_limit: float) -> None:
    g = chain_graph(16)
    base = store_all(g)
    print(f"(a) Checkmate's linear graph, 16 layers, unit costs and sizes: {g.n} nodes, store-all cost "
          f"{base.cost:g}, peak {base.peak:g} units")
    print(f"    {'budget':>14} {'DP extra':>20} {'MILP extra':>20} {'MILP proven':>12}")
    for units in (13, 9, 5, 3, 2):
        dp = solve(g, units, "dp")
        milp = solve(g, units, "milp", time_limit=time_limit) if units >= 5 or units < 3 else None
        label = f"{units} ({100 * units / base.peak:.0f}%)"

        def fmt(s):
            if s is None:
                return "-"
            if not s.feasible and not s.optimal:
                return "none found"
            if not s.feasible:
                return f"infeasible, least {s.min_budget:g}" + ("" if "not proven" not in s.note else "?")
            return f"{100 * s.overhead(base.cost):.1f}%"
        print(f"    {label:>14} {fmt(dp):>20} {fmt(milp):>20} {'' if milp is None else str(milp.optimal):>12}")
    print(f"    (MILP time limit {time_limit:g} s; at 3 units HiGHS takes minutes to find a schedule, not run; below 3 "
          "units no schedule exists: b_i needs f_i, b_(i+1) and itself live, 3 units, a proof the solver also uses)")


def full_model_bound(g, budget: float, base_cost: float, seconds: float) -> str:
    """HiGHS's bound on Checkmate's full model (backward values may be recomputed too): no schedule of the
    graph within `budget` costs less."""
    r = milp_solve(g, budget, seconds, recompute_backward=True)
    if r.status == "infeasible":
        return "full model: infeasible"
    if r.bound is None:
        return f"full model: no bound in {seconds:g} s"
    return f"full model ({seconds:g} s): the optimum is at least +{100 * (r.bound / base_cost - 1):.1f}%"


def table(name: str, case: Case, fractions: list[float], time_limit: float, full_bound: float = 0.0) -> None:
    g = case.graph
    base = store_all(g)
    print(f"\n(b) {name}: {g.n} nodes ({sum(g.backward)} backward), static {g.static / 2**20:.2f} MiB; store-all "
          f"{base.cost:,.0f} FLOPs, peak modelled {base.peak / 2**20:.2f} MiB (plan {case.predicted / 2**20:.2f}"
          f" MiB; an ordinary run of the gradient program measures {case.run_peak / 2**20:.2f} MiB); no schedule "
          f"fits below {lower_bound_budget(g) / base.peak:.0%} (one node's inputs, output and workspace)")
    print(f"    {'budget':>6} {'strategy':>9} {'model MiB':>9} {'meas. MiB':>9} {'extra FLOPs':>11} "
          f"{'time':>8} {'grad diff':>9}  note")
    strategies = ["store_all", "sqrt", "greedy"] + (["dp"] if chain_shape(g) is not None else []) + \
        (["layers"] if layer_chain(g) is not None else []) + ["milp"]
    for f in fractions:
        budget = f * base.peak
        for strat in strategies:
            t0 = time.perf_counter()
            s = solve(g, budget, strat, time_limit=time_limit, recompute_backward=False) if strat == "milp" else \
                solve(g, budget, strat)
            secs = time.perf_counter() - t0
            note = s.note
            if strat == "milp":
                note = (note + "; " if note else "") + f"solved in {secs:.1f} s" + ("" if s.optimal else
                                                                                  ", not proven optimal")
                if s.feasible and not s.optimal and s.lower_bound:
                    note += f"; the optimum is at least +{100 * (s.lower_bound / base.cost - 1):.1f}%"
                if full_bound and s.feasible and not s.optimal:
                    note += "; " + full_model_bound(g, budget, base.cost, full_bound)
            if not s.steps:
                least = f"; least budget {s.min_budget / base.peak:.0%}" if s.min_budget else ""
                print(f"    {f'{100 * f:.0f}%':>6} {strat:>9} {'-':>9} {'-':>9} {'infeasible':>11} {'':>8} "
                      f"{'':>9}  {note}{least}")
                continue
            run = case.measure(s.steps, base.steps) if s.peak <= budget * (1 + 1e-9) else None
            over = "" if s.peak <= budget * (1 + 1e-9) else " (over budget)"
            meas = f"{run[0] / 2**20:.2f}" if run else "-"
            timing = f"{run[1]:.2f}x" if run else "-"
            diff = f"{run[2]:.0e}" if run else "-"
            print(f"    {f'{100 * f:.0f}%':>6} {strat:>9} {s.peak / 2**20:>9.2f} {meas:>9} "
                  f"{100 * s.overhead(base.cost):>10.1f}% {timing:>8} {diff:>9}  {note}{over}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="smaller models and time limits")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per MILP solve")
    ap.add_argument("--full-bound", type=float, default=0.0,
                    help="seconds for a lower bound from the full model (backward recomputation too) where the "
                    "MILP's schedule is not proven optimal (default: not run)")
    ap.add_argument("--skip-chain", action="store_true", help="skip (a), the unit chain")
    args = ap.parse_args()
    tlim = 10.0 if args.quick else args.time_limit
    if not args.skip_chain:
        unit_chain(tlim)
    fractions = [1.0, 0.5, 0.33, 0.3]
    layers = 8 if args.quick else 16
    table(f"MLP, {layers} ReLU layers of 64 units, batch 1024", Case(*mlp_source(layers, 64, 1024)), fractions,
          tlim, args.full_bound)
    table("2-block transformer, 32 sequences x 16 positions, De 64, 4 heads, MLP 128", Case(*transformer_source()),
          fractions, tlim, args.full_bound)
    print("\nmodel: FLOPs and bytes per stratum from the plan, peaks by replaying each schedule (remat.simulate); "
          "meas.: the schedule run by the executor (Executor.run_schedule), its counted peak, its time relative "
          "to store-all (CPU time, numpy on one thread, best of 5 runs alternating with store-all) and the "
          "largest difference of its gradients from an ordinary run. Schedules over the budget are not run.")


if __name__ == "__main__":
    main()
