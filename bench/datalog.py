"""Datalog benchmark: transitive closure (TC) and same generation (SG), tensorlogic vs DuckDB vs scipy.

    TC:  Reach(x,y) <- Edge(x,y).   Reach(x,z) <- Reach(x,y), Edge(y,z).
    SG:  SG(x,y) <- Edge(p,x), Edge(p,y), x != y.   SG(x,y) <- Edge(a,x), SG(a,b), Edge(b,y).

Workloads: the graphs of ../shared/bench/datalog (OL, cal, TG, p2p-Gnutella09; p2p-Gnutella04 and CA-HepTh
with ``--big``; OL, cal and TG fall back to the copies in tests/data/datalog), a chain of 1,000 nodes, the
seeded random graph of bench/closure.py (2,000 nodes, 10,000 edges) and a complete binary tree of depth 10.
SG on p2p-Gnutella09 (62 million facts) runs only with ``--big``.

Engines, side by side in one process: tensorlogic (the program above, analysed once; the time is
`Executor.ensure` of the relation, i.e. evaluation only, plus separately the whole `Program(src).run()`),
DuckDB (a recursive CTE with UNION, which deduplicates each round against all results so far; the time is
the query over an edge table already loaded), a scipy.sparse semi-naive loop, and Soufflé (`souffle -j1`,
interpreted, whole process) when a ``souffle`` binary is on the PATH.

Checks: every engine's fact count must equal the published count of the README in the graph folder (and
tensorlogic's rounds the published rounds: rounds that derive new facts, the base rule's round included),
the closed forms on the chain (N(N-1)/2 TC pairs, no SG pair) and the tree, and otherwise each other.

Threads: BLAS / OpenMP pools and DuckDB are set to ``--threads`` (default 1) before anything runs, so every
engine runs with the same number of threads. Times are the best of ``--repeats`` (default 3) runs; a run
slower than 5 s is not repeated. The machine may be shared: compare the ratio column, measured in one process.

The compiled chain kernels (numba, `backends/relation_kernels.py`) are loaded before the runs and their load
time printed; ``TL_NUMBA=0 python bench/datalog.py`` measures the numpy rounds instead.

Run from the repository root: ``python bench/datalog.py [--big] [--only TC] [--graphs OL,cal]``.
"""

from __future__ import annotations

import argparse
import os
import sys

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _threads_from_argv() -> str:
    for k, a in enumerate(sys.argv):
        if a == "--threads" and k + 1 < len(sys.argv):
            return sys.argv[k + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


for _v in THREAD_VARS:  # before numpy is imported
    os.environ[_v] = _threads_from_argv()

import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.sparse as sp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import tensorlogic  # noqa: E402

SHARED = ROOT.parent / "shared" / "bench" / "datalog"
LOCAL = ROOT / "tests" / "data" / "datalog"
SEED = 20240917  # bench/closure.py's random graph
SLOW_S = 5.0

TC = "Reach(x,y) <- Edge(x,y).\nReach(x,z) <- Reach(x,y), Edge(y,z).\n"
SG = "SG(x,y) <- Edge(p,x), Edge(p,y), x != y.\nSG(x,y) <- Edge(a,x), SG(a,b), Edge(b,y).\n"
PROGRAMS = {"TC": (TC, "Reach"), "SG": (SG, "SG")}

# file -> (label, TC facts, TC rounds, SG facts), from the README of the graph folder
PUBLISHED = {
    "OL.cedge.txt": ("OL", 146_120, 64, 285_431),
    "cal.cedge.txt": ("cal", 501_755, 195, 23_519),
    "TG.cedge.txt": ("TG", 481_121, 58, 608_090),
    "p2p-Gnutella09.txt": ("Gnutella09", 21_402_960, 20, 62_056_583),
    "p2p-Gnutella04.txt": ("Gnutella04", 47_059_527, 26, 116_931_333),
    "CA-HepTh.txt": ("CA-HepTh", 74_619_885, 18, 74_618_689),
}
BIG = {"p2p-Gnutella04.txt", "CA-HepTh.txt"}


# ----------------------------------------------------------------------------------------------------------
# workloads: (name, edges (m, 2) int64, {program: expected facts or None}, expected TC rounds or None)
# ----------------------------------------------------------------------------------------------------------


def read_edges(path: Path) -> np.ndarray:
    return np.loadtxt(path, dtype=np.int64, ndmin=2).reshape(-1, 2)


def chain(n: int) -> np.ndarray:
    i = np.arange(n - 1, dtype=np.int64)
    return np.stack([i, i + 1], axis=1)


def binary_tree(depth: int) -> np.ndarray:
    """Complete binary tree with 2**(depth+1) - 1 nodes, edges parent -> child (heap numbering)."""
    child = np.arange(1, 2 ** (depth + 1) - 1, dtype=np.int64)
    return np.stack([(child - 1) // 2, child], axis=1)


def tree_counts(depth: int) -> tuple[int, int]:
    """TC: every (ancestor, descendant) pair; SG: ordered pairs of distinct nodes at the same depth >= 1."""
    tc = sum(2**d * (2 ** (depth - d + 1) - 2) for d in range(depth + 1))
    sg = sum(2**d * (2**d - 1) for d in range(1, depth + 1))
    return tc, sg


def random_graph(n: int, m: int, seed: int) -> np.ndarray:
    """bench/closure.py's graph: `m` distinct directed edges, no self loops, first occurrences kept."""
    rng = np.random.default_rng(seed)
    keys = np.zeros(0, dtype=np.int64)
    while keys.shape[0] < m:
        src = rng.integers(0, n, size=2 * m)
        dst = rng.integers(0, n, size=2 * m)
        allk = np.concatenate([keys, (src * n + dst)[src != dst]])
        _, first = np.unique(allk, return_index=True)
        keys = allk[np.sort(first)][:m]
    return np.stack([keys // n, keys % n], axis=1)


def workloads(big: bool, graphs: set[str] | None) -> list[tuple[str, np.ndarray, dict, int | None]]:
    out = []
    for fname, (label, tc, rounds, sg) in PUBLISHED.items():
        if fname in BIG and not big:
            continue
        path = SHARED / fname
        if not path.exists():
            path = LOCAL / fname.replace(".txt", ".tsv")
        if not path.exists():
            print(f"skipping {label}: {fname} not found in {SHARED} or {LOCAL}")
            continue
        expect = {"TC": tc, "SG": sg}
        if label == "Gnutella09" and not big:
            expect.pop("SG")
        if label in ("Gnutella04", "CA-HepTh"):
            expect.pop("SG")
        out.append((label, read_edges(path), expect, rounds))
    n = 1000
    out.append(("chain 1000", chain(n), {"TC": n * (n - 1) // 2, "SG": 0}, n - 1))
    out.append(("random 2000/10000", random_graph(2000, 10_000, SEED), {"TC": None, "SG": None}, None))
    tc, sg = tree_counts(10)
    out.append(("binary tree d10", binary_tree(10), {"TC": tc, "SG": sg}, 10))
    if graphs:
        out = [w for w in out if any(g.lower() in w[0].lower() for g in graphs)]
    return out


# ----------------------------------------------------------------------------------------------------------
# engines: each returns a callable that computes (facts, rounds or None) from edges prepared outside the timer
# ----------------------------------------------------------------------------------------------------------


def tensorlogic_engine(prog_name: str, edges: np.ndarray) -> Callable[[], tuple[int, int | None]]:
    src, rel = PROGRAMS[prog_name]
    rows = [tuple(r) for r in edges.tolist()]
    prog = tensorlogic.Program(src)
    prog.analyze(Edge=rows)

    def run() -> tuple[int, int | None]:
        prog._executor = None  # a fresh executor: nothing computed yet
        ex = prog.executor
        ex.ensure({rel})
        rounds = [s.rounds for s in ex.report.strata if rel in s.tensors]
        return len(ex.relation(rel)), rounds[0]

    return run


def tensorlogic_whole(prog_name: str, edges: np.ndarray) -> Callable[[], tuple[int, int | None]]:
    """Parse, analyse (the edge list included) and evaluate: what `tl run` does, without printing."""
    src, rel = PROGRAMS[prog_name]
    rows = [tuple(r) for r in edges.tolist()]

    def run() -> tuple[int, int | None]:
        prog = tensorlogic.Program(src)
        prog.analyze(Edge=rows)
        prog.executor.ensure({rel})
        return len(prog.executor.relation(rel)), None

    return run


DUCK_SQL = {
    "TC": """WITH RECURSIVE reach(x, y) AS (
                SELECT src, dst FROM edge
                UNION
                SELECT reach.x, edge.dst FROM reach JOIN edge ON reach.y = edge.src)
             SELECT count(*) FROM reach""",
    "SG": """WITH RECURSIVE sg(x, y) AS (
                SELECT e1.dst, e2.dst FROM edge e1 JOIN edge e2 ON e1.src = e2.src WHERE e1.dst <> e2.dst
                UNION
                SELECT e1.dst, e2.dst FROM sg JOIN edge e1 ON e1.src = sg.x JOIN edge e2 ON e2.src = sg.y)
             SELECT count(*) FROM sg""",
}


def duckdb_connect(edges: np.ndarray, threads: int):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("CREATE TABLE edge (src INTEGER, dst INTEGER)")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "edges.csv"
        np.savetxt(path, edges, fmt="%d", delimiter=",")
        con.execute(f"INSERT INTO edge SELECT * FROM read_csv('{path}', header=false, "
                    "columns={'src': 'INTEGER', 'dst': 'INTEGER'})")
    return con


def scipy_engine(prog_name: str, edges: np.ndarray) -> Callable[[], tuple[int, int | None]]:
    """Semi-naive loop with CSR products: TC new = (delta @ E) minus R; SG new = (E^T delta E) minus R."""
    n = int(edges.max()) + 1 if len(edges) else 0
    e = sp.csr_matrix((np.ones(len(edges), dtype=np.float32), (edges[:, 0], edges[:, 1])), shape=(n, n))
    e.sum_duplicates()
    e.data[:] = 1
    et = e.T.tocsr()

    def tc() -> tuple[int, int | None]:
        reach = e.astype(bool)
        delta = e
        rounds = 1 if e.nnz else 0
        while True:
            new = (delta @ e).astype(bool) > reach
            if not new.nnz:
                return int(reach.nnz), rounds
            rounds += 1
            reach = reach + new
            delta = new.astype(np.float32)

    def sg() -> tuple[int, int | None]:
        base = (et @ e).tocsr()
        base.setdiag(0)
        base.eliminate_zeros()
        reach = base.astype(bool)
        delta = reach.astype(np.float32)
        rounds = 1 if reach.nnz else 0
        while True:
            new = (et @ delta @ e).astype(bool) > reach
            if not new.nnz:
                return int(reach.nnz), rounds
            rounds += 1
            reach = reach + new
            delta = new.astype(np.float32)

    return tc if prog_name == "TC" else sg


SOUFFLE = {
    "TC": ".decl edge(x:number, y:number)\n.input edge(IO=file, filename=\"edge.facts\")\n"
          ".decl reach(x:number, y:number)\n.output reach(IO=stdout)\n"
          "reach(x,y) :- edge(x,y).\nreach(x,z) :- reach(x,y), edge(y,z).\n",
    "SG": ".decl edge(x:number, y:number)\n.input edge(IO=file, filename=\"edge.facts\")\n"
          ".decl sg(x:number, y:number)\n.printsize sg\n"
          "sg(x,y) :- edge(p,x), edge(p,y), x != y.\nsg(x,y) :- edge(a,x), sg(a,b), edge(b,y).\n",
}


def souffle_engine(prog_name: str, edges: np.ndarray) -> Callable[[], tuple[int, int | None]] | None:
    exe = shutil.which("souffle")
    if exe is None:
        return None
    d = Path(tempfile.mkdtemp(prefix="tl-souffle-"))
    np.savetxt(d / "edge.facts", edges, fmt="%d", delimiter="\t")
    prog = SOUFFLE[prog_name].replace(".output reach(IO=stdout)", ".printsize reach")
    (d / "p.dl").write_text(prog)

    def run() -> tuple[int, int | None]:
        out = subprocess.run([exe, "-j1", "-F", str(d), str(d / "p.dl")], capture_output=True, text=True,
                             check=True).stdout
        return int(out.split()[-1]), None

    return run


# ----------------------------------------------------------------------------------------------------------
# driver
# ----------------------------------------------------------------------------------------------------------


def timed(fn: Callable[[], tuple[int, int | None]], repeats: int) -> tuple[float, tuple[int, int | None]]:
    t = time.perf_counter()
    res = fn()
    best = time.perf_counter() - t
    if best > SLOW_S:
        return best, res
    for _ in range(repeats - 1):
        t = time.perf_counter()
        again = fn()
        best = min(best, time.perf_counter() - t)
        assert again[0] == res[0], f"run to run difference: {again} vs {res}"
    return best, res


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt(t: float | None) -> str:
    return "-" if t is None else f"{t:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--big", action="store_true", help="add Gnutella04, CA-HepTh and SG on Gnutella09")
    ap.add_argument("--only", choices=sorted(PROGRAMS), help="run one program only")
    ap.add_argument("--graphs", help="comma-separated substrings of workload names to run")
    ap.add_argument("--threads", type=int, default=1, help="threads for BLAS/OpenMP and DuckDB (default 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-scipy", action="store_true", help="skip the scipy loop (slow on the big graphs)")
    args = ap.parse_args()

    import duckdb

    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"duckdb {duckdb.__version__}; {cpu_model()}")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores: {os.cpu_count()}, {affinity} usable; threads: DuckDB {args.threads}, "
          + ", ".join(f"{v}={os.environ[v]}" for v in THREAD_VARS[:3]))
    from tensorlogic.runtime import chain_kernels

    t = time.perf_counter()
    kern = chain_kernels._load() if os.environ.get("TL_NUMBA", "").strip() != "0" else None
    if kern is not None:
        kern.warm()  # every kernel loaded from numba's cache (or compiled) before anything is timed
    print("compiled chain kernels: " + (f"numba, loaded in {time.perf_counter() - t:.2f} s (first call: import "
                                        "and numba's cached or fresh compilation; not in the times below)"
                                        if kern is not None else "off (numpy rounds; TL_NUMBA=0 or no numba)"))
    souffle = shutil.which("souffle")
    print(f"souffle: {souffle or 'not on PATH (skipped)'}; times: best of {args.repeats}, seconds, evaluation "
          "only (tl total: parse + analyse + evaluate)")
    header = ["workload", "facts", "rounds", "tl", "tl total", "DuckDB", "scipy", "souffle", "tl/DuckDB"]
    rows: list[list[str]] = []
    ok = True
    graphs = set(args.graphs.split(",")) if args.graphs else None
    for name, edges, expect, tc_rounds in workloads(args.big, graphs):
        con = duckdb_connect(edges, args.threads)
        for prog_name in PROGRAMS:
            if (args.only and prog_name != args.only) or prog_name not in expect:
                continue
            engines: dict[str, Callable | None] = {
                "tl": tensorlogic_engine(prog_name, edges),
                "tl total": tensorlogic_whole(prog_name, edges),
                "DuckDB": (lambda p=prog_name, c=con: (int(c.execute(DUCK_SQL[p]).fetchone()[0]), None)),
                "scipy": None if args.no_scipy else scipy_engine(prog_name, edges),
                "souffle": souffle_engine(prog_name, edges),
            }
            times: dict[str, float | None] = {}
            counts: dict[str, int] = {}
            rounds = None
            for eng, fn in engines.items():
                if fn is None:
                    times[eng] = None
                    continue
                times[eng], (facts, r) = timed(fn, 1 if eng == "tl total" else args.repeats)
                counts[eng] = facts
                if eng == "tl":
                    rounds = r
            want = expect[prog_name]
            agree = len(set(counts.values())) == 1 and (want is None or counts["tl"] == want)
            if prog_name == "TC" and tc_rounds is not None and rounds != tc_rounds:
                agree = False
            if not agree:
                ok = False
                print(f"MISMATCH {prog_name} {name}: counts {counts}, expected {want}; rounds {rounds} "
                      f"(expected {tc_rounds if prog_name == 'TC' else '-'})")
            ratio = times["tl"] / times["DuckDB"] if times["DuckDB"] else float("nan")
            rows.append([f"{prog_name} {name}", f"{counts['tl']:,}", str(rounds), fmt(times["tl"]),
                         fmt(times["tl total"]), fmt(times["DuckDB"]), fmt(times["scipy"]),
                         fmt(times["souffle"]), f"{ratio:.2f}" + ("" if agree else " MISMATCH")])
            print("  " + " | ".join(rows[-1]), flush=True)
        con.close()
    widths = [max(len(h), *(len(r[k]) for r in rows)) for k, h in enumerate(header)] if rows else []
    print()
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |")
    print("\ncounts: " + ("all equal the published / closed-form counts and each other" if ok else "MISMATCHES above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
