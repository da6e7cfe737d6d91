"""Transitive closure benchmark: tensorlogic vs networkx vs a scipy.sparse semi-naive loop.

    Reach(x,y) <- Edge(x,y).
    Reach(x,z) <- Reach(x,y), Edge(y,z).

Workloads: a chain of 1,000 nodes (i -> i+1, 499,500 pairs) and a seeded random directed graph with 2,000
nodes and 10,000 distinct edges (no self loops). All three implementations compute the same set: the pairs
(x, y) joined by a path of length >= 1, so (x, x) belongs to it exactly when x lies on a cycle; that is
networkx's ``transitive_closure(G, reflexive=False)`` (``reflexive=True`` would add (x, x) for every node,
``reflexive=None`` would drop all self-loops). The script asserts that the three pair counts agree.

Timing: time.perf_counter, best of 3 runs; an implementation whose first run takes more than 5 s runs once
(the table marks such times with ``*``). BLAS / OpenMP thread pools are limited to one thread (set before
numpy is imported), so the comparison is single-threaded throughout.

Run from the repository root: ``python bench/closure.py``.
"""

from __future__ import annotations

import os

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in _THREAD_VARS:
    os.environ[_v] = "1"

import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import tensorlogic  # noqa: E402
from tensorlogic.backends.relations import Relation  # noqa: E402

SRC = """
Reach(x,y) <- Edge(x,y).
Reach(x,z) <- Reach(x,y), Edge(y,z).
"""
SEED = 20240917
SLOW_S = 5.0  # a first run slower than this is not repeated
REPEATS = 3


# ----------------------------------------------------------------------------------------------------------
# workloads
# ----------------------------------------------------------------------------------------------------------


def chain(n: int) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(n - 1)]


def random_graph(n: int, m: int, seed: int) -> list[tuple[int, int]]:
    """`m` distinct directed edges (no self loops) between `n` nodes, drawn uniformly with `seed`."""
    rng = np.random.default_rng(seed)
    keys = np.zeros(0, dtype=np.int64)
    while keys.shape[0] < m:
        src = rng.integers(0, n, size=2 * m)
        dst = rng.integers(0, n, size=2 * m)
        cand = (src * n + dst)[src != dst]
        # keep first occurrences only, in draw order, so the edge set depends on the seed alone
        allk = np.concatenate([keys, cand])
        _, first = np.unique(allk, return_index=True)
        keys = allk[np.sort(first)][:m]
    return [(int(k // n), int(k % n)) for k in keys]


# ----------------------------------------------------------------------------------------------------------
# the three implementations: each returns (pairs, rounds or None)
# ----------------------------------------------------------------------------------------------------------


def run_tensorlogic(edges: list[tuple[int, int]]) -> tuple[int, int | None]:
    prog = tensorlogic.Program(SRC)
    prog.run(Edge=edges)
    reach = prog.executor.values["Reach"]
    pairs = len(reach) if isinstance(reach, Relation) else int(np.count_nonzero(reach))
    rounds = [s.rounds for s in prog.report.strata if "Reach" in s.tensors]
    return pairs, rounds[0] if rounds else None


def run_networkx(edges: list[tuple[int, int]]) -> tuple[int, int | None]:
    g = nx.DiGraph()
    g.add_edges_from(edges)
    return nx.transitive_closure(g, reflexive=False).number_of_edges(), None


def run_scipy(edges: list[tuple[int, int]]) -> tuple[int, int | None]:
    """Semi-naive closure with Boolean sparse matrices: R = E; delta = E; until delta is empty:
    new = (delta @ E) > 0 minus R; R += new; delta = new. Rounds count the products, plus the base step."""
    e = np.asarray(edges, dtype=np.int64)
    n = int(e.max()) + 1
    adj = sp.csr_matrix((np.ones(len(e), dtype=np.float32), (e[:, 0], e[:, 1])), shape=(n, n))
    adj.sum_duplicates()
    adj.data[:] = 1
    reach = adj.astype(bool)
    delta = adj
    rounds = 1
    while delta.nnz:
        rounds += 1
        step = (delta @ adj).astype(bool)
        new = step > reach  # in step and not in reach
        reach = reach + new
        delta = new.astype(np.float32)
    return int(reach.nnz), rounds


IMPLS: dict[str, Callable[[list[tuple[int, int]]], tuple[int, int | None]]] = {
    "tensorlogic": run_tensorlogic,
    "networkx": run_networkx,
    "scipy": run_scipy,
}


def timed(fn: Callable, arg) -> tuple[float, bool, tuple[int, int | None]]:
    """(best time, whether it was a single run, result)."""
    t = time.perf_counter()
    res = fn(arg)
    best = time.perf_counter() - t
    if best > SLOW_S:
        return best, True, res
    for _ in range(REPEATS - 1):
        t = time.perf_counter()
        again = fn(arg)
        best = min(best, time.perf_counter() - t)
        assert again == res
    return best, False, res


def main() -> None:
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"networkx {nx.__version__}")
    print(f"cores: {os.cpu_count()} (os.cpu_count), {len(os.sched_getaffinity(0))} usable; "
          + ", ".join(f"{v}={os.environ[v]}" for v in _THREAD_VARS))
    print(f"random graph seed: {SEED} (numpy.random.default_rng)")
    print(f"times: best of {REPEATS} with time.perf_counter, single run (*) when the first run exceeds {SLOW_S:g} s")
    workloads = [
        ("chain 1000", chain(1000), 499_500),
        ("random 2000/10000", random_graph(2000, 10_000, SEED), None),
    ]
    header = f"{'workload':<20}{'pairs':>11}{'rounds':>8}{'tensorlogic s':>15}{'networkx s':>13}{'scipy s':>11}{'ratio':>8}"
    rows = []
    for name, edges, expected in workloads:
        assert len(set(edges)) == len(edges) and all(a != b for a, b in edges)
        times, results = {}, {}
        for impl, fn in IMPLS.items():
            times[impl] = timed(fn, edges)
            results[impl] = times[impl][2]
        counts = {impl: r[0] for impl, r in results.items()}
        assert len(set(counts.values())) == 1, f"{name}: pair counts disagree: {counts}"
        pairs = counts["tensorlogic"]
        if expected is not None:
            assert pairs == expected, f"{name}: {pairs} pairs, expected {expected}"
        rounds_tl, rounds_sp = results["tensorlogic"][1], results["scipy"][1]
        assert rounds_tl == rounds_sp, f"{name}: rounds differ: tensorlogic {rounds_tl}, scipy {rounds_sp}"

        def fmt(impl: str) -> str:
            t, single, _ = times[impl]
            return f"{t:.3f}{'*' if single else ' '}"

        ratio = times["tensorlogic"][0] / min(times["networkx"][0], times["scipy"][0])
        rows.append(f"{name:<20}{pairs:>11,}{rounds_tl:>8}{fmt('tensorlogic'):>15}{fmt('networkx'):>13}"
                    f"{fmt('scipy'):>11}{ratio:>8.2f}")
        print(f"  {name}: {len(edges)} edges done", flush=True)
    print()
    print(header)
    print("\n".join(rows))
    print("ratio = tensorlogic / min(networkx, scipy); * = single run")


if __name__ == "__main__":
    main()
