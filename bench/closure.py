"""Transitive closure benchmark: tensorlogic vs networkx vs a scipy.sparse semi-naive loop.

    Reach(x,y) <- Edge(x,y).
    Reach(x,z) <- Reach(x,y), Edge(y,z).

Workloads: a chain of 1,000 nodes (i -> i+1: 499,500 pairs) and a seeded random directed graph with 2,000
nodes and 10,000 distinct edges without self loops (numpy.random.default_rng(SEED)).

Semantics. The program derives the pairs (x, y) joined by a path of length >= 1, so (x, x) belongs to
Reach exactly when x lies on a cycle. That is networkx's ``transitive_closure(G, reflexive=False)``
(``reflexive=True`` adds (x, x) for every node, ``reflexive=None`` never adds it). With reflexive=False
networkx walks every edge reachable from every node with ``nx.edge_bfs`` (148 s for the random graph here),
so the timed networkx variant is the equivalent ``transitive_closure(G, reflexive=None)`` (a BFS over nodes,
~10x faster) plus the self-loop (x, x) of every node on a cycle, i.e. in a strongly connected component with
more than one node or with a self loop. Before timing, the script checks on the chain and on smaller random
graphs that this variant gives exactly the edge set of ``transitive_closure(G, reflexive=False)`` and of
tensorlogic's Reach, and it asserts that the three pair counts agree on both workloads. Pass
``--exact-networkx`` to time ``transitive_closure(G, reflexive=False)`` itself (adds ~2.5 minutes).

Timing: time.perf_counter around the whole computation from the edge list (tensorlogic: parse, analyse,
run; networkx: graph construction and closure; scipy: matrix construction and loop), best of 3 runs; an
implementation whose first run takes more than 5 s runs once (marked ``*``). BLAS / OpenMP pools are set
to one thread before numpy is imported, so all three run single-threaded.

Run from the repository root: ``python bench/closure.py``.
"""

from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
for _v in THREAD_VARS:
    os.environ[_v] = "1"

import argparse  # noqa: E402
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

Edges = list[tuple[int, int]]
Result = tuple[int, int | None]  # (pairs, rounds or None)


# ----------------------------------------------------------------------------------------------------------
# workloads
# ----------------------------------------------------------------------------------------------------------


def chain(n: int) -> Edges:
    return [(i, i + 1) for i in range(n - 1)]


def random_graph(n: int, m: int, seed: int) -> Edges:
    """`m` distinct directed edges between `n` nodes, no self loops: uniform draws, first occurrences kept."""
    rng = np.random.default_rng(seed)
    keys = np.zeros(0, dtype=np.int64)
    while keys.shape[0] < m:
        src = rng.integers(0, n, size=2 * m)
        dst = rng.integers(0, n, size=2 * m)
        allk = np.concatenate([keys, (src * n + dst)[src != dst]])
        _, first = np.unique(allk, return_index=True)
        keys = allk[np.sort(first)][:m]
    return [(int(k // n), int(k % n)) for k in keys]


# ----------------------------------------------------------------------------------------------------------
# the three implementations
# ----------------------------------------------------------------------------------------------------------


def tensorlogic_reach(edges: Edges) -> tuple[tensorlogic.Program, int]:
    prog = tensorlogic.Program(SRC)
    prog.run(Edge=edges)
    reach = prog.executor.values["Reach"]
    pairs = len(reach) if isinstance(reach, Relation) else int(np.count_nonzero(reach))
    return prog, pairs


def run_tensorlogic(edges: Edges) -> Result:
    prog, pairs = tensorlogic_reach(edges)
    rounds = [s.rounds for s in prog.report.strata if "Reach" in s.tensors]
    return pairs, rounds[0]


def networkx_closure(edges: Edges) -> nx.DiGraph:
    """Equal to ``nx.transitive_closure(g, reflexive=False)`` (checked by `check_semantics`), ~10x faster."""
    g = nx.DiGraph(edges)
    tc = nx.transitive_closure(g, reflexive=None)
    tc.add_edges_from((v, v) for c in nx.strongly_connected_components(g)
                      for v in c if len(c) > 1 or g.has_edge(v, v))
    return tc


def run_networkx(edges: Edges) -> Result:
    return networkx_closure(edges).number_of_edges(), None


def run_networkx_exact(edges: Edges) -> Result:
    return nx.transitive_closure(nx.DiGraph(edges), reflexive=False).number_of_edges(), None


def scipy_closure(edges: Edges) -> tuple[sp.csr_matrix, int]:
    """Semi-naive closure with sparse matrices: R = E; delta = E; until delta is empty: new = (delta @ E) > 0
    minus R; R += new; delta = new. Rounds: those that derive facts, the base step included (as tensorlogic
    counts: the final product that finds nothing new is not a round)."""
    e = np.asarray(edges, dtype=np.int64)
    n = int(e.max()) + 1
    adj = sp.csr_matrix((np.ones(len(e), dtype=np.float32), (e[:, 0], e[:, 1])), shape=(n, n))
    reach = adj > 0
    delta = adj
    rounds = 1 if adj.nnz else 0
    while delta.nnz:
        new = (delta @ adj).astype(bool) > reach  # in the product and not yet in R (bool > bool: a and not b)
        rounds += 1 if new.nnz else 0
        reach = reach + new
        delta = new.astype(np.float32)
    return reach, rounds


def run_scipy(edges: Edges) -> Result:
    reach, rounds = scipy_closure(edges)
    return int(reach.nnz), rounds


# ----------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------


def check_semantics() -> None:
    """On small graphs, with cycles and without, the three closures are the same set of pairs, and the
    timed networkx variant is exactly ``transitive_closure(reflexive=False)``."""
    graphs = [chain(60), random_graph(300, 1_500, SEED), random_graph(400, 500, SEED + 1),
              [(0, 1), (1, 0), (1, 2), (3, 4), (4, 5), (5, 3), (6, 6 + 1)]]
    for edges in graphs:
        exact = set(nx.transitive_closure(nx.DiGraph(edges), reflexive=False).edges())
        assert set(networkx_closure(edges).edges()) == exact
        prog, _ = tensorlogic_reach(edges)
        assert set(prog.executor.relation("Reach").tuples()) == exact
        reach, _ = scipy_closure(edges)
        assert set(zip(*(a.tolist() for a in reach.nonzero()))) == exact


def timed(fn: Callable[[Edges], Result], edges: Edges) -> tuple[float, bool, Result]:
    """(best time in seconds, whether it ran only once, result)."""
    t = time.perf_counter()
    res = fn(edges)
    best = time.perf_counter() - t
    if best > SLOW_S:
        return best, True, res
    for _ in range(REPEATS - 1):
        t = time.perf_counter()
        again = fn(edges)
        best = min(best, time.perf_counter() - t)
        assert again == res
    return best, False, res


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exact-networkx", action="store_true",
                    help="also time nx.transitive_closure(G, reflexive=False) itself (~2.5 min more)")
    args = ap.parse_args()

    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"networkx {nx.__version__}; {cpu_model()}")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores: {os.cpu_count()} (os.cpu_count), {affinity} usable by this process; threads: "
          + ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS))
    print(f"random graph: numpy.random.default_rng({SEED})")
    print(f"timing: time.perf_counter, best of {REPEATS} runs; * = a single run (first run > {SLOW_S:g} s)")
    print("networkx: transitive_closure(G, reflexive=None) + self-loops of the nodes on cycles, which equals "
          "transitive_closure(G, reflexive=False)", flush=True)
    t = time.perf_counter()
    check_semantics()
    print(f"semantics check (chain, random 300/1500, random 400/500, small cycles: the three closures and "
          f"reflexive=False give the same pairs): ok, {time.perf_counter() - t:.1f} s", flush=True)

    impls: dict[str, Callable[[Edges], Result]] = {
        "tensorlogic": run_tensorlogic, "networkx": run_networkx, "scipy": run_scipy}
    if args.exact_networkx:
        impls["networkx (reflexive=False)"] = run_networkx_exact
    workloads = [
        ("chain 1000", chain(1000), 499_500),
        ("random 2000/10000", random_graph(2000, 10_000, SEED), None),
    ]
    rows = []
    for name, edges, expected in workloads:
        assert len(set(edges)) == len(edges) and all(a != b for a, b in edges)
        times = {impl: timed(fn, edges) for impl, fn in impls.items()}
        counts = {impl: r[2][0] for impl, r in times.items()}
        assert len(set(counts.values())) == 1, f"{name}: pair counts disagree: {counts}"
        pairs = counts["tensorlogic"]
        assert expected is None or pairs == expected, f"{name}: {pairs} pairs, expected {expected}"
        rounds = times["tensorlogic"][2][1]
        assert rounds == times["scipy"][2][1], f"{name}: rounds disagree: {times}"
        best = {impl: t for impl, (t, _, _) in times.items()}
        ratio = best["tensorlogic"] / min(best["networkx"], best["scipy"])
        cells = [f"{best[impl]:.3f}{'*' if times[impl][1] else ' '}" for impl in impls]
        rows.append((name, f"{pairs:,}", str(rounds), *cells, f"{ratio:.2f}"))
        print(f"  {name}: {len(edges):,} edges, {pairs:,} pairs; "
              + ", ".join(f"{impl} {c.strip()} s" for impl, c in zip(impls, cells)), flush=True)

    header = ("workload", "pairs", "rounds", *(f"{impl} s" for impl in impls), "tl / min(nx, scipy)")
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)]
    print()
    for r in (header, *rows):
        print("  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(r, widths))))


if __name__ == "__main__":
    main()
