"""Contraction-path benchmark: tensorlogic's planner against opt_einsum and cotengra, side by side.

Planners (each on the same expression, in this process unless marked *guarded*):

* ``ours fast`` / ``ours high``: ``tensorlogic.plan.contract.contract_path(eq, shapes, minimize="flops",
  effort=...)``.  Equations whose labels the einsum parser rejects (more than 52 labels need non-ASCII
  symbols) go through ``plan_join`` with the same labels, marked ``[plan_join]``.  If ``contract_path`` grows a
  time-budget keyword (``time_limit``/``max_time``/``timeout``/``time_budget``) ``--high-timeout`` is passed to
  it; otherwise the high-effort call runs guarded.
* opt_einsum 3.x: ``greedy``, ``auto`` (what ``torch.einsum`` uses), ``auto-hq``, ``dp`` (guarded), ``optimal``
  (guarded, only for few operands).
* cotengra: ``HyperOptimizer(max_time=..., max_repeats=..., parallel=False, progbar=False)`` with its default
  methods (without kahypar installed that is greedy + labels, sampled by its default optlib) and
  ``OptimalOptimizer(minimize="flops")`` (guarded, only for few operands).
* references that are not planners: an exhaustive subset DP written here (all bipartitions, outer products
  included, opt_einsum's FLOP convention; at most 12 operands), the classic O(n^3) matrix-chain DP for pure
  chains, and the published paths of the einsum_benchmark instances.

*Guarded* calls run in a forked child with a wall-clock limit, timed inside the child, so a planner that runs
away is reported as a timeout instead of stalling the benchmark.

FLOPs.  Every path, whoever produced it, is re-costed by one function here, in opt_einsum's convention: a step
contracting k operands costs the product of the sizes of every label involved, times max(1, k - 1) plus 1 when
some label is summed away in that step (a label is summed when it is neither in the output nor in a remaining
operand).  For pairwise steps that is "product of sizes, times 2 when anything is summed", the convention of
``ContractionPlan.flops``.  The script checks, on random equations, that opt_einsum's ``info.opt_cost`` and our
``.flops`` equal the re-costed value and shows that cotengra's ``contraction_cost()`` counts one operation per
term (no factor 2): cotengra numbers are therefore never taken from cotengra, only from its path.

Timing: ``time.perf_counter`` around one planning call (after a warm-up call on an unrelated equation);
calls under 50 ms are repeated up to 5 times and the minimum is kept (unless the planner returns the identical
memoised object, in which case the first call counts).  Single-threaded: cotengra runs with
``parallel=False``.  Fast mode's 5 ms target is judged by the CPU time (``time.process_time``) of that call,
printed next to the wall time: on the shared machine wall time includes waiting for a core.

Run from the repository root: ``python bench/paths.py [--quick] [--only NAME]``.
"""

from __future__ import annotations

import argparse
import gc
import glob
import inspect
import json
import math
import multiprocessing
import os
import platform
import random
import re
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tensorlogic.plan import contract as tl_contract  # noqa: E402

try:
    import opt_einsum as oe
except ImportError:  # pragma: no cover - reported at run time
    oe = None
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import cotengra as ctg
except ImportError:  # pragma: no cover - reported at run time
    ctg = None
try:
    import networkx as nx
except ImportError:  # pragma: no cover - reported at run time
    nx = None

BENCH_DIR = (ROOT / ".." / "shared" / "bench" / "einsum_benchmark").resolve()
if not BENCH_DIR.is_dir():
    BENCH_DIR = Path("/work/shared/bench/einsum_benchmark")

EXACT_MAX = 12  # operands: the exhaustive reference DP, and the "exact" target of the issue
FAST_TIME_OPERANDS = 30  # the fast-mode time target applies up to this many operands
FAST_TIME_LIMIT = 0.005
TIME_KWARGS = ("time_limit", "max_time", "timeout", "time_budget")


# ------------------------------------------------------------------------------------------------ helpers


def get_symbol(i: int) -> str:
    """opt_einsum's symbol scheme: ASCII letters first, then code points from 192 upwards."""
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if i < 52:
        return letters[i]
    if i >= 55296:
        return chr(i + 2048)
    return chr(i + 140)


def fmt_int(x: int | None) -> str:
    return "-" if x is None else f"{x:,}"


def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} us"
    if t < 1.0:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:,.0f}x"
    return f"{r:.3f}x"


@dataclass
class Expr:
    name: str
    group: str  # "synthetic" or "einsum_benchmark"
    inputs: list[str]
    output: str
    sizes: dict[str, int]
    note: str = ""
    published_path: list[tuple[int, ...]] | None = None
    readme_published: int | None = None
    best_known: int | None = None

    @property
    def n(self) -> int:
        return len(self.inputs)

    @property
    def eq(self) -> str:
        return ",".join(self.inputs) + "->" + self.output

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(self.sizes[c] for c in t) for t in self.inputs]


@dataclass
class Result:
    planner: str
    flops: int | None = None
    largest: int | None = None
    seconds: float | None = None
    cpu: float | None = None  # CPU seconds of the timed call (ours fast only)
    status: str = ""  # "" when fine, otherwise "timeout >Ns", "skipped: ...", "error: ..."
    claimed: int | None = None  # the planner's own cost figure, when it gives one
    info: str = ""

    @property
    def ok(self) -> bool:
        return self.flops is not None


@dataclass
class Row:
    expr: Expr
    results: dict[str, Result] = field(default_factory=dict)
    refs: dict[str, int] = field(default_factory=dict)

    def best(self) -> int | None:
        vals = [r.flops for r in self.results.values() if r.ok] + list(self.refs.values())
        return min(vals) if vals else None

    def flops(self, planner: str) -> int | None:
        r = self.results.get(planner)
        return r.flops if r is not None else None


# ------------------------------------------------------------------------------------------- cost model


def path_cost(inputs: list[str], output: str, sizes: dict[str, int], path) -> tuple[int, int]:
    """FLOPs (opt_einsum convention) and largest intermediate (elements) of a linear-format path."""
    ops = [set(t) for t in inputs]
    out = set(output)
    count: dict[str, int] = {}
    for s in ops:
        for lab in s:
            count[lab] = count.get(lab, 0) + 1
    flops = 0
    largest = 0
    for step in path:
        idx = sorted((int(i) for i in step), reverse=True)
        if len(set(idx)) != len(idx) or idx[0] >= len(ops) or idx[-1] < 0:
            raise ValueError(f"invalid path step {tuple(step)} with {len(ops)} operands left")
        taken = [ops.pop(i) for i in idx]
        union: set[str] = set().union(*taken)
        for s in taken:
            for lab in s:
                count[lab] -= 1
        keep = {lab for lab in union if lab in out or count[lab] > 0}
        summed = len(keep) < len(union)
        flops += math.prod(sizes[lab] for lab in union) * (max(1, len(taken) - 1) + (1 if summed else 0))
        for lab in keep:
            count[lab] += 1
        ops.append(keep)
        largest = max(largest, math.prod(sizes[lab] for lab in keep))
    if len(ops) != 1 or ops[0] != out:
        raise ValueError(f"path leaves {len(ops)} operand(s), last with labels {sorted(ops[-1])}")
    return flops, largest


def exhaustive_optimum(inputs: list[str], output: str, sizes: dict[str, int]) -> int:
    """Minimum FLOPs over every pairwise contraction tree (outer products included), by subset DP."""
    n = len(inputs)
    labels = sorted({lab for t in inputs for lab in t})
    bit = {lab: 1 << k for k, lab in enumerate(labels)}
    occ = [0] * len(labels)  # operand mask per label
    for i, t in enumerate(inputs):
        for lab in set(t):
            occ[labels.index(lab)] |= 1 << i
    out_mask = 0
    for lab in output:
        out_mask |= bit[lab]
    full = (1 << n) - 1

    def kept(s: int) -> int:
        m = 0
        for k, o in enumerate(occ):
            if o & s and (o & ~s & full or (1 << k) & out_mask):
                m |= 1 << k
        return m

    prod_cache: dict[int, int] = {}

    def prod(m: int) -> int:
        p = prod_cache.get(m)
        if p is None:
            p = 1
            for k, lab in enumerate(labels):
                if m >> k & 1:
                    p *= sizes[lab]
            prod_cache[m] = p
        return p

    kept_of = [0] * (full + 1)
    for s in range(1, full + 1):
        kept_of[s] = kept(s)
    best = [0] * (full + 1)
    for s in sorted(range(1, full + 1), key=int.bit_count):
        if s & (s - 1) == 0:
            continue
        low = s & -s
        ks = kept_of[s]
        b = None
        sub = (s - 1) & s
        while sub:
            if sub & low:
                other = s ^ sub
                union = kept_of[sub] | kept_of[other]
                c = best[sub] + best[other] + prod(union) * (2 if union & ~ks else 1)
                if b is None or c < b:
                    b = c
            sub = (sub - 1) & s
        best[s] = b
    return best[full]


def chain_dims(inputs: list[str], output: str, sizes: dict[str, int]) -> list[int] | None:
    """Dimensions d0..dn when the expression is a pure matrix chain with its two end labels as output."""
    if len(inputs) < 2 or any(len(t) != 2 or t[0] == t[1] for t in inputs):
        return None
    where: dict[str, list[int]] = {}
    for i, t in enumerate(inputs):
        for lab in t:
            where.setdefault(lab, []).append(i)
    if any(len(v) > 2 for v in where.values()):
        return None
    ends = [lab for lab, v in where.items() if len(v) == 1]
    if len(ends) != 2 or set(output) != set(ends) or len(output) != 2:
        return None
    dims = [sizes[ends[0]]]
    lab, prev, seen = ends[0], None, 0
    while True:
        ops = [i for i in where[lab] if i != prev]
        if not ops:
            break
        i = ops[0]
        t = inputs[i]
        lab = t[1] if t[0] == lab else t[0]
        dims.append(sizes[lab])
        prev = i
        seen += 1
        if lab == ends[1]:
            break
    return dims if seen == len(inputs) else None


def chain_optimum(dims: list[int]) -> int:
    """Classic O(n^3) matrix-chain DP; every step sums its shared dimension, so FLOPs are twice the classic."""
    n = len(dims) - 1
    m = [[0] * n for _ in range(n)]
    for length in range(2, n + 1):
        for i in range(n - length + 1):
            j = i + length - 1
            di, dj = dims[i], dims[j + 1]
            m[i][j] = min(m[i][k] + m[k + 1][j] + di * dims[k + 1] * dj for k in range(i, j))
    return 2 * m[0][n - 1]


# ------------------------------------------------------------------------------------------- expressions


def chain_expr(n: int, seed: int) -> Expr:
    rng = random.Random(seed * 1000 + n)
    dims = [rng.randint(2, 100) for _ in range(n + 1)]
    syms = [get_symbol(i) for i in range(n + 1)]
    inputs = [syms[i] + syms[i + 1] for i in range(n)]
    perm = list(range(n))
    rng.shuffle(perm)  # operand order shuffled, as in the published instance
    inputs = [inputs[i] for i in perm]
    return Expr(f"chain_{n}", "synthetic", inputs, syms[0] + syms[n], dict(zip(syms, dims)),
                note=f"random dims 2..100, random.Random({seed * 1000 + n}), operands shuffled")


def lattice_expr(rows: int, cols: int, bond: int) -> Expr:
    site_labels: dict[tuple[int, int], str] = {(r, c): "" for r in range(rows) for c in range(cols)}
    k = 0
    for r in range(rows):
        for c in range(cols):
            for dr, dc in ((0, 1), (1, 0)):
                rr, cc = r + dr, c + dc
                if rr < rows and cc < cols:
                    s = get_symbol(k)
                    k += 1
                    site_labels[(r, c)] += s
                    site_labels[(rr, cc)] += s
    inputs = [site_labels[(r, c)] for r in range(rows) for c in range(cols)]
    sizes = {get_symbol(i): bond for i in range(k)}
    return Expr(f"lattice_{rows}x{cols}", "synthetic", inputs, "", sizes, note=f"closed, bond {bond}")


def regular_expr(n: int, seed: int, bond: int) -> Expr | None:
    if nx is None:
        return None
    g = nx.random_regular_graph(3, n, seed=seed)
    labels: dict[int, str] = {v: "" for v in g.nodes}
    for k, (u, v) in enumerate(g.edges):
        s = get_symbol(k)
        labels[u] += s
        labels[v] += s
    inputs = [labels[v] for v in sorted(g.nodes)]
    sizes = {get_symbol(k): bond for k in range(g.number_of_edges())}
    return Expr(f"rrg3_{n}", "synthetic", inputs, "", sizes,
                note=f"networkx.random_regular_graph(3, {n}, seed={seed}), closed, bond {bond}")


def synthetic_exprs(seed: int, quick: bool) -> list[Expr]:
    exprs = [chain_expr(10, seed), chain_expr(100, seed), lattice_expr(4, 4, 4)]
    if not quick:
        exprs.append(lattice_expr(5, 5, 4))
    for n in (40,) if quick else (40, 60):
        e = regular_expr(n, seed, 2)
        if e is not None:
            exprs.append(e)
    exprs.append(Expr("tucker", "synthetic", ["ip", "jq", "kr", "pqr"], "ijk",
                      {"i": 400, "j": 300, "k": 200, "p": 40, "q": 30, "r": 20},
                      note="A[i,j,k] = M1[i,p] M2[j,q] M3[k,r] C[p,q,r], 400x300x200, ranks 40,30,20"))
    exprs.append(Expr("cp", "synthetic", ["ir", "jr", "kr"], "ijk", {"i": 400, "j": 300, "k": 200, "r": 64},
                      note="A[i,j,k] = U[i,r] V[j,r] W[k,r], 400x300x200, rank 64"))
    exprs.append(Expr("attention", "synthetic", ["bhpd", "bhqd", "bhqe"], "bhpe",
                      {"b": 8, "h": 12, "p": 512, "q": 512, "d": 64, "e": 64},
                      note="scores then weighted values, batch 8, 12 heads, 512 tokens, head dim 64"))
    return exprs


def parse_readme() -> dict[str, tuple[int, int]]:
    """instance name -> (published best, best known) from the README table."""
    out: dict[str, tuple[int, int]] = {}
    path = BENCH_DIR / "README.md"
    if not path.exists():
        return out
    row = re.compile(r"^\|\s*([\w.]+)\s*\|\s*(\d+)\s*\|\s*([\d,]+)\s*\|\s*(same|[\d,]+)")
    for line in path.read_text().splitlines():
        m = row.match(line.strip())
        if m:
            pub = int(m.group(3).replace(",", ""))
            best = pub if m.group(4) == "same" else int(m.group(4).replace(",", ""))
            out[m.group(1)] = (pub, best)
    return out


def benchmark_exprs(quick: bool) -> list[Expr]:
    readme = parse_readme()
    exprs = []
    for f in sorted(glob.glob(str(BENCH_DIR / "*.json"))):
        d = json.loads(Path(f).read_text())
        lhs, output = d["format_string"].split("->")
        inputs = lhs.split(",")
        sizes: dict[str, int] = {}
        for t, s in zip(inputs, d["shapes"]):
            for lab, dim in zip(t, s):
                sizes[lab] = int(dim)
        if quick and len(inputs) > 40:
            continue
        pub_path = None
        paths = d.get("paths", {})
        if "opt_flops" in paths:
            pub_path = [tuple(p) for p in paths["opt_flops"]["path"]]
        pub, best = readme.get(d["name"], (None, None))
        exprs.append(Expr(d["name"], "einsum_benchmark", inputs, output, sizes, published_path=pub_path,
                          readme_published=pub, best_known=best))
    return exprs


# ------------------------------------------------------------------------------------------------ timing


LAST_CPU: list[float] = [0.0]
"""CPU time (``time.process_time``) of the fastest call of the last ``timed``: on a loaded machine wall time
includes waiting for a core, CPU time does not."""


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    first = fn()
    best = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if best < 0.05:
        for _ in range(4):
            c0 = time.process_time()
            t0 = time.perf_counter()
            again = fn()
            dt = time.perf_counter() - t0
            if again is first:  # memoised: only the first call planned
                break
            if dt < best:
                best, cpu = dt, time.process_time() - c0
    LAST_CPU[0] = cpu
    return first, best


def _guarded_child(conn, fn, post) -> None:
    try:
        value, dt = timed(fn)
        conn.send(("ok", value if post is None else post(value), dt))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"[:200], None))
    finally:
        conn.close()


def guarded(
    fn: Callable[[], object], timeout: float, post: Callable[[object], object] | None = None
) -> tuple[str, object, float | None]:
    """Run ``timed(fn)`` in a forked child and send back ``post(value)``.

    Returns ('ok', value, seconds), ('error', message, None) or ('timeout', None, None).
    """
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_guarded_child, args=(child, fn, post), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(timeout):
            try:
                return parent.recv()
            except EOFError:
                return ("error", f"child died (exit code {proc.exitcode})", None)
        return ("timeout", None, None)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        parent.close()


# ---------------------------------------------------------------------------------------------- planners


@dataclass
class Config:
    quick: bool
    ctg_time: float
    ctg_repeats: int
    dp_timeout: float
    optimal_timeout: float
    high_timeout: float
    oe_optimal_max: int
    ctg_optimal_max: int
    dp_max: int
    size_times: dict = field(default_factory=dict)


def _accepts(fn, names) -> str | None:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return None
    return next((n for n in names if n in params), None)


def ours_callable(expr: Expr, effort: str, cfg: Config) -> tuple[Callable[[], object], str, bool]:
    """(call, via, has_time_budget)."""
    via = "contract_path"
    try:
        tl_contract.parse_equation(expr.eq)
    except ValueError:
        via = "plan_join"
    except AttributeError:
        pass
    if via == "contract_path":
        fn = tl_contract.contract_path
        args = (expr.eq, expr.shapes)
    else:
        fn = tl_contract.plan_join
        args = ([tuple(t) for t in expr.inputs], tuple(expr.output), dict(expr.sizes))
    kwargs: dict[str, object] = {"minimize": "flops", "effort": effort}
    tkw = _accepts(fn, TIME_KWARGS) if effort == "high" else None
    if tkw is not None:
        kwargs[tkw] = cfg.high_timeout
    return (lambda: fn(*args, **kwargs)), via, tkw is not None


def run_ours(expr: Expr, effort: str, cfg: Config) -> Result:
    name = f"ours {effort}"
    call, via, has_budget = ours_callable(expr, effort, cfg)
    tag = "" if via == "contract_path" else "[plan_join] "

    def summary(plan) -> tuple[list[tuple[int, ...]], int, str]:
        algo = getattr(plan, "extra", {}).get("algorithm", "") if hasattr(plan, "extra") else ""
        return [tuple(p) for p in plan.path], int(plan.flops), str(algo)

    try:
        if effort == "fast" or has_budget:
            plan, dt = timed(call)
            cpu = LAST_CPU[0]
            path, claimed, algo = summary(plan)
        else:
            status, value, dt = guarded(call, cfg.high_timeout, summary)
            if status == "timeout":
                return Result(name, status=f"timeout >{cfg.high_timeout:g}s", info=tag)
            if status == "error":
                return Result(name, status=f"error: {value}", info=tag)
            path, claimed, algo = value
            cpu = None
    except Exception as exc:  # noqa: BLE001 - the benchmark reports planner failures and goes on
        return Result(name, status=f"error: {type(exc).__name__}: {str(exc)[:120]}", info=tag)
    result = finish(expr, name, path, dt, claimed, tag + algo)
    if effort == "fast":
        result.cpu = cpu
    return result


def finish(expr: Expr, name: str, path, seconds: float | None, claimed: int | None, info: str = "") -> Result:
    try:
        flops, largest = path_cost(expr.inputs, expr.output, expr.sizes, path)
    except (ValueError, KeyError) as exc:
        return Result(name, seconds=seconds, status=f"error: bad path: {exc}"[:140], info=info)
    if claimed is not None and claimed != flops:
        info = (info + " " if info else "") + f"(claims {claimed:,})"
    return Result(name, flops, largest, seconds, claimed=claimed, info=info)


def run_oe(expr: Expr, method: str, cfg: Config, guard: float | None = None) -> Result:
    name = f"oe {method}"

    def call():
        path, info = oe.contract_path(expr.eq, *expr.shapes, shapes=True, optimize=method)
        return [tuple(p) for p in path], int(info.opt_cost)

    try:
        if guard is None:
            (path, claimed), dt = timed(call)
        else:
            status, value, dt = guarded(call, guard)
            if status == "timeout":
                return Result(name, status=f"timeout >{guard:g}s")
            if status == "error":
                return Result(name, status=f"error: {value}")
            path, claimed = value
    except Exception as exc:  # noqa: BLE001
        return Result(name, status=f"error: {type(exc).__name__}: {str(exc)[:120]}")
    return finish(expr, name, path, dt, claimed)


def run_ctg_hyper(expr: Expr, cfg: Config) -> Result:
    name = "ctg hyper"
    opt = ctg.HyperOptimizer(max_time=cfg.ctg_time, max_repeats=cfg.ctg_repeats, parallel=False, progbar=False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            path = opt(list(expr.inputs), expr.output, dict(expr.sizes))
            dt = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001
        return Result(name, status=f"error: {type(exc).__name__}: {str(exc)[:120]}")
    trials = len(getattr(opt, "scores", []))
    return finish(expr, name, [tuple(p) for p in path], dt, None, f"{trials} trials")


def run_ctg_optimal(expr: Expr, cfg: Config) -> Result:
    name = "ctg optimal"

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = ctg.OptimalOptimizer(minimize="flops")
            return [tuple(p) for p in opt(list(expr.inputs), expr.output, dict(expr.sizes))]

    status, value, dt = guarded(call, cfg.optimal_timeout)
    if status == "timeout":
        return Result(name, status=f"timeout >{cfg.optimal_timeout:g}s")
    if status == "error":
        return Result(name, status=f"error: {value}")
    return finish(expr, name, value, dt, None)


PLANNERS = ["ours fast", "ours high", "oe greedy", "oe auto", "oe auto-hq", "oe dp", "oe optimal", "ctg hyper",
            "ctg optimal"]


def bench_expr(expr: Expr, cfg: Config) -> Row:
    row = Row(expr)
    row.results["ours fast"] = run_ours(expr, "fast", cfg)
    row.results["ours high"] = run_ours(expr, "high", cfg)
    if oe is not None:
        for method in ("greedy", "auto", "auto-hq"):
            row.results[f"oe {method}"] = run_oe(expr, method, cfg)
        if expr.n <= cfg.dp_max:
            row.results["oe dp"] = run_oe(expr, "dp", cfg, guard=cfg.dp_timeout)
        else:
            row.results["oe dp"] = Result("oe dp", status=f"skipped (> {cfg.dp_max} operands)")
        if expr.n <= cfg.oe_optimal_max:
            row.results["oe optimal"] = run_oe(expr, "optimal", cfg, guard=cfg.optimal_timeout)
    if ctg is not None:
        row.results["ctg hyper"] = run_ctg_hyper(expr, cfg)
        if expr.n <= cfg.ctg_optimal_max:
            row.results["ctg optimal"] = run_ctg_optimal(expr, cfg)
    if expr.n <= EXACT_MAX:
        row.refs["exhaustive DP"] = exhaustive_optimum(expr.inputs, expr.output, expr.sizes)
    dims = chain_dims(expr.inputs, expr.output, expr.sizes)
    if dims is not None:
        row.refs["chain DP"] = chain_optimum(dims)
    if expr.published_path is not None:
        try:
            row.refs["published path"] = path_cost(expr.inputs, expr.output, expr.sizes, expr.published_path)[0]
        except (ValueError, KeyError) as exc:
            print(f"  ! published path of {expr.name} does not evaluate: {exc}")
    return row


def print_row(row: Row) -> None:
    e = row.expr
    best = row.best()
    nlabels = len(e.sizes)
    print(f"\n== {e.name}: {e.n} operands, {nlabels} labels, output {len(e.output)} labels"
          + (f"  [{e.note}]" if e.note else ""))
    if e.n <= 6:
        print(f"   {e.eq}  sizes {e.sizes}")
    header = f"   {'planner':<16}{'FLOPs':>22}{'time':>12}{'x best':>11}{'x best-known':>14}  notes"
    print(header)
    for name in PLANNERS:
        r = row.results.get(name)
        if r is None:
            continue
        if not r.ok:
            print(f"   {name:<16}{'':>22}{fmt_time(r.seconds):>12}{'':>11}{'':>14}  {r.status} {r.info}".rstrip())
            continue
        rb = r.flops / best if best else None
        rk = r.flops / e.best_known if e.best_known else None
        print(f"   {name:<16}{fmt_int(r.flops):>22}{fmt_time(r.seconds):>12}{fmt_ratio(rb):>11}"
              f"{fmt_ratio(rk):>14}  {r.info}".rstrip())
    for name, val in row.refs.items():
        rk = val / e.best_known if e.best_known else None
        print(f"   {'[' + name + ']':<16}{fmt_int(val):>22}{'':>12}{fmt_ratio(val / best):>11}{fmt_ratio(rk):>14}")
    if e.readme_published is not None:
        pub = row.refs.get("published path")
        check = "" if pub is None else ("  (= re-costed path)" if pub == e.readme_published else
                                        f"  (re-costed path: {pub:,})")
        print(f"   README: published {e.readme_published:,}, best known {e.best_known:,}{check}")
    print(f"   best this run: {fmt_int(best)}")


# ----------------------------------------------------------------------------------- convention check


def convention_check() -> None:
    print("FLOP convention check (all numbers re-costed from paths by path_cost):")
    if oe is None:
        print("  opt_einsum missing: skipped")
        return
    from opt_einsum.testing import rand_equation

    oe_same = oe_total = ours_same = ours_total = 0
    ctg_ratios: list[float] = []
    for n in range(3, 11):
        for seed in range(4):
            eq, shapes = rand_equation(n, 3, seed=seed, n_out=seed % 3, d_min=2, d_max=9)
            lhs, out = eq.split("->")
            inputs = lhs.split(",")
            sizes = {lab: d for t, s in zip(inputs, shapes) for lab, d in zip(t, s)}
            for method in ("greedy", "dp"):
                path, info = oe.contract_path(eq, *shapes, shapes=True, optimize=method)
                oe_total += 1
                oe_same += int(info.opt_cost) == path_cost(inputs, out, sizes, path)[0]
            ours_total += 1
            try:
                plan = tl_contract.contract_path(eq, [tuple(s) for s in shapes], effort="fast")
                ours_same += plan.flops == path_cost(inputs, out, sizes, plan.path)[0]
            except Exception as exc:  # noqa: BLE001
                print(f"  ours failed on {eq}: {exc}")
            if ctg is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    tree = ctg.ContractionTree.from_path(inputs, out, sizes, path=path)
                    ctg_ratios.append(path_cost(inputs, out, sizes, path)[0] / float(tree.contraction_cost()))
    print(f"  opt_einsum info.opt_cost == re-costed: {oe_same}/{oe_total} paths (greedy and dp on 32 random "
          "equations, n = 3..10)")
    print(f"  ours ContractionPlan.flops == re-costed: {ours_same}/{ours_total}")
    if ctg_ratios:
        print(f"  cotengra contraction_cost() is re-costed / {min(ctg_ratios):.3f} .. {max(ctg_ratios):.3f}: it "
              "counts one op per term (no factor 2 for summed steps); cotengra numbers below are re-costed")
    eq, shapes = rand_equation(10, 4, seed=43)
    lhs, out = eq.split("->")
    inputs = lhs.split(",")
    sizes = {lab: d for t, s in zip(inputs, shapes) for lab, d in zip(t, s)}
    print(f"  exhaustive DP on rand_equation(10, 4, seed=43): {exhaustive_optimum(inputs, out, sizes):,} "
          "(issue: 663,054)")


# -------------------------------------------------------------------------------- fast mode by size


def median(xs: list[float]) -> float:
    ys = sorted(xs)
    k = len(ys) // 2
    return ys[k] if len(ys) % 2 else (ys[k - 1] + ys[k]) / 2


def fast_by_size(sizes: tuple[int, ...], seeds: int) -> dict[int, tuple]:
    """Fast-mode planning time on opt_einsum's random equations (regularity 3, 0-2 output labels): per number
    of operands, (our wall times, opt_einsum auto's times, how often ours costs more, count, our CPU times)."""
    if oe is None:
        return {}
    from opt_einsum.testing import rand_equation

    out: dict[int, tuple] = {}
    for n in sizes:
        ours_cpu: list[float] = []
        ours_t: list[float] = []
        auto_t: list[float] = []
        worse = 0
        for seed in range(seeds):
            eq, shapes = rand_equation(n, 3, seed=seed, n_out=seed % 3)
            shapes = [tuple(s) for s in shapes]
            plan, t1 = timed(lambda eq=eq, shapes=shapes: tl_contract.contract_path(eq, shapes, effort="fast"))
            cpu = LAST_CPU[0]
            (_, info), t2 = timed(lambda eq=eq, shapes=shapes: oe.contract_path(eq, *shapes, shapes=True,
                                                                                optimize="auto"))
            ours_t.append(t1)
            ours_cpu.append(cpu)
            auto_t.append(t2)
            worse += int(plan.flops > int(info.opt_cost))
        out[n] = (ours_t, auto_t, worse, seeds, ours_cpu)
    return out


# ----------------------------------------------------------------------------------------------- targets


def geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "MISS")


def summary(rows: list[Row], cfg: Config) -> None:
    print("\n\nSummary (x = FLOPs / best found this run; bk = / README best-known; times are planning times)")
    cols = [("expression", 36, "<"), ("n", 4, ">"), ("best this run", 20, ">"), ("best-known", 16, ">"),
            ("fast x", 9, ">"), ("high x", 9, ">"), ("fast bk", 9, ">"), ("high bk", 9, ">"),
            ("fast t", 10, ">"), ("high t", 10, ">"), ("oe auto x", 10, ">"), ("ctg x", 9, ">"),
            ("ctg t", 9, ">")]
    print("  " + " ".join(f"{c:{a}{w}}" for c, w, a in cols))
    for row in rows:
        e = row.expr
        best = row.best()
        fast, high = row.results.get("ours fast"), row.results.get("ours high")
        auto, hyp = row.results.get("oe auto"), row.results.get("ctg hyper")

        def rx(r: Result | None, ref: int | None) -> str:
            return fmt_ratio(r.flops / ref) if r is not None and r.ok and ref else "-"

        def rt(r: Result | None) -> str:
            return fmt_time(r.seconds) if r is not None and r.ok else ("-" if r is None else r.status[:10])

        cells = [e.name[:36], str(e.n), fmt_int(best), fmt_int(e.best_known), rx(fast, best), rx(high, best),
                 rx(fast, e.best_known), rx(high, e.best_known), rt(fast), rt(high), rx(auto, best),
                 rx(hyp, best), rt(hyp)]
        print("  " + " ".join(f"{c:{a}{w}}" for c, (_, w, a) in zip(cells, cols)))

    print("\nTargets (issue 3, item 6)" + ("  [--quick: partial set, small budgets]" if cfg.quick else ""))

    def ref_of(row: Row) -> int | None:
        return row.expr.best_known or row.best()

    # exact
    small = [r for r in rows if r.expr.n <= EXACT_MAX and "exhaustive DP" in r.refs]
    for mode in ("high", "fast"):
        bad = [r.expr.name for r in small if r.flops(f"ours {mode}") != r.refs["exhaustive DP"]]
        tag = "" if mode == "high" else " (info: fast mode)"
        print(f"  {verdict(not bad if small else None)}  exact{tag}: <= {EXACT_MAX} operands equal to the exhaustive "
              f"optimum on {len(small) - len(bad)}/{len(small)}" + (f"; misses: {', '.join(bad)}" if bad else ""))
    for r in small:
        others = {k: r.flops(k) for k in ("oe optimal", "ctg optimal") if r.flops(k) is not None}
        worse = {k: v for k, v in others.items() if v < r.refs["exhaustive DP"]}
        if worse:
            print(f"        ! {r.expr.name}: {worse} below the exhaustive DP {r.refs['exhaustive DP']:,} (DP bug?)")
    chains = [r for r in rows if "chain DP" in r.refs]
    for mode in ("high", "fast"):
        bad = [f"{r.expr.name} {fmt_int(r.flops(f'ours {mode}'))} vs {r.refs['chain DP']:,}" for r in chains
               if r.flops(f"ours {mode}") != r.refs["chain DP"]]
        tag = "" if mode == "high" else " (info: fast mode)"
        print(f"  {verdict(not bad if chains else None)}  exact{tag}: matrix chains solved exactly on "
              f"{len(chains) - len(bad)}/{len(chains)}" + (f"; misses: {'; '.join(bad)}" if bad else ""))
    mc = next((r for r in rows if r.expr.name == "str_matrix_chain_multiplication_100"), None)
    if mc is not None:
        got = mc.flops("ours high")
        print(f"  {verdict(got == 293_380_776)}  exact: str_matrix_chain_multiplication_100 at 293,380,776 "
              f"(ours high {fmt_int(got)}, chain DP {fmt_int(mc.refs.get('chain DP'))})")

    # fast
    timed_rows = [r for r in rows if r.expr.n <= FAST_TIME_OPERANDS and r.results["ours fast"].ok]
    # judged by CPU time (the target's measure: on the shared machine wall time includes waiting for a core)
    def cpu_of(r: Row) -> float:
        res = r.results["ours fast"]
        return res.cpu if res.cpu is not None else res.seconds

    slow = [f"{r.expr.name} {fmt_time(cpu_of(r))} CPU" for r in timed_rows if cpu_of(r) > FAST_TIME_LIMIT]
    tmax = max((r.results["ours fast"].seconds for r in timed_rows), default=None)
    cmax = max((cpu_of(r) for r in timed_rows), default=None)
    print(f"  {verdict(not slow if timed_rows else None)}  fast: <= 5 ms planning (CPU) for <= {FAST_TIME_OPERANDS} "
          f"operands ({len(timed_rows) - len(slow)}/{len(timed_rows)}, slowest {fmt_time(cmax)} CPU, "
          f"{fmt_time(tmax)} wall)" + (f"; over: {', '.join(slow)}" if slow else ""))
    ratios = []
    over = []
    failed = [r.expr.name for r in rows if not r.results["ours fast"].ok]
    for r in rows:
        f, ref = r.flops("ours fast"), ref_of(r)
        if f is not None and ref:
            ratios.append(f / ref)
            if f / ref > 1.10 + 1e-12:
                over.append(f"{r.expr.name} {fmt_ratio(f / ref)}")
    print(f"  {verdict(not over and not failed)}  fast: <= 1.10x best-known (README value, else best this run) on "
          f"{len(ratios) - len(over)}/{len(rows)}, worst {fmt_ratio(max(ratios, default=None))}"
          + (f"; over: {', '.join(over)}" if over else "") + (f"; failed: {', '.join(failed)}" if failed else ""))
    if oe is not None:
        worse = [f"{r.expr.name} {fmt_ratio(r.flops('ours fast') / r.flops('oe auto'))}" for r in rows
                 if r.flops("ours fast") is not None and r.flops("oe auto") is not None
                 and r.flops("ours fast") > r.flops("oe auto")]
        print(f"  {verdict(not worse and not failed)}  fast: never worse than opt_einsum auto "
              f"({len(rows) - len(worse) - len(failed)}/{len(rows)})"
              + (f"; worse: {', '.join(worse)}" if worse else ""))
    else:
        print("  n/a   fast: never worse than opt_einsum auto (opt_einsum not installed)")
    eb_fast = [r.flops("ours fast") / r.expr.best_known for r in rows
               if r.expr.best_known is not None and r.flops("ours fast") is not None]
    if ratios:
        print(f"  info  fast: ratio to best-known, geometric mean / worst: all {len(ratios)} expressions "
              f"{fmt_ratio(geomean(ratios))} / {fmt_ratio(max(ratios))}"
              + (f"; einsum_benchmark instances {fmt_ratio(geomean(eb_fast))} / {fmt_ratio(max(eb_fast))}"
                 if eb_fast else ""))
    if cfg.size_times:
        for n, (ours_t, auto_t, worse_n, count, ours_cpu) in sorted(cfg.size_times.items()):
            print(f"  {verdict(max(ours_cpu) <= FAST_TIME_LIMIT) if n <= FAST_TIME_OPERANDS else 'info'}  fast: "
                  f"random equations of {n} operands ({count}): planning median {fmt_time(median(ours_t))}, "
                  f"max {fmt_time(max(ours_t))} wall (CPU median {fmt_time(median(ours_cpu))}, max "
                  f"{fmt_time(max(ours_cpu))}; opt_einsum auto median {fmt_time(median(auto_t))}); "
                  f"worse than auto on {worse_n}")

    # high
    eb = [r for r in rows if r.expr.best_known is not None]
    tag = f" ({len(eb)} of 8 instances)" if len(eb) != 8 else ""
    hr = [(r, r.flops("ours high")) for r in eb]
    okr = [(r, f) for r, f in hr if f is not None]
    ratios = [f / r.expr.best_known for r, f in okr]
    missing = [r.expr.name for r, f in hr if f is None]
    gm = geomean(ratios) if ratios else None
    print(f"  {verdict((gm <= 1.03 and not missing) if eb and gm is not None else None)}  high: geometric mean "
          f"<= 1.03x best-known{tag}: {fmt_ratio(gm)}" + (f"; no plan: {', '.join(missing)}" if missing else ""))
    worst = max(ratios, default=None)
    print(f"  {verdict((worst <= 1.25 and not missing) if worst is not None else None)}  high: worst <= 1.25x "
          f"best-known{tag}: {fmt_ratio(worst)}")
    beats = [r.expr.name for r, f in okr if f < r.expr.readme_published]
    need = 4 if len(eb) == 8 else math.ceil(len(eb) / 2)
    print(f"  {verdict(len(beats) >= need if eb else None)}  high: beats the published path on >= {need} of "
          f"{len(eb)}: {len(beats)}" + (f" ({', '.join(beats)})" if beats else ""))
    if ctg is not None and eb:
        th = [r.results["ours high"].seconds for r in eb]
        tc = [r.results["ctg hyper"].seconds for r in eb if r.results.get("ctg hyper") and r.results["ctg hyper"].ok]
        if all(t is not None for t in th) and len(tc) == len(eb):
            slower = [r.expr.name for r in eb if r.results["ours high"].seconds > r.results["ctg hyper"].seconds]
            print(f"  {verdict(sum(th) <= sum(tc))}  high: no more time than cotengra HyperOptimizer (budget "
                  f"{cfg.ctg_time:g} s / {cfg.ctg_repeats} trials each): total {fmt_time(sum(th))} vs "
                  f"{fmt_time(sum(tc))}; slower on {len(slower)}/{len(eb)}"
                  + (f" ({', '.join(slower)})" if slower else ""))
        else:
            print("  MISS  high: time vs cotengra HyperOptimizer: ours high or cotengra did not finish on all")
    else:
        print("  n/a   high: time vs cotengra HyperOptimizer (cotengra missing or no einsum_benchmark instances)")


# -------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="small budgets, no big instances (< 1 min)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only expressions whose name contains NAME (repeatable)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random chains and regular graphs (0)")
    ap.add_argument("--ctg-time", type=float, default=None, help="cotengra HyperOptimizer max_time (10 s; quick 1)")
    ap.add_argument("--ctg-repeats", type=int, default=128, help="cotengra HyperOptimizer max_repeats (128)")
    ap.add_argument("--high-timeout", type=float, default=None,
                    help="time budget for ours high (5 s, the library's default; quick 2)")
    ap.add_argument("--dp-timeout", type=float, default=None, help="limit for opt_einsum dp (10 s; quick 3)")
    ap.add_argument("--no-check", action="store_true", help="skip the FLOP convention check")
    ap.add_argument("--sizes", action="store_true",
                    help="with --only: still time fast mode on random equations of 10, 20, 30 operands")
    args = ap.parse_args(argv)
    q = args.quick
    cfg = Config(
        quick=q,
        ctg_time=args.ctg_time if args.ctg_time is not None else (1.0 if q else 10.0),
        ctg_repeats=args.ctg_repeats,
        dp_timeout=args.dp_timeout if args.dp_timeout is not None else (3.0 if q else 10.0),
        optimal_timeout=3.0 if q else 20.0,
        high_timeout=args.high_timeout if args.high_timeout is not None else (2.0 if q else 5.0),
        oe_optimal_max=8 if q else 10,
        ctg_optimal_max=12 if q else 16,
        dp_max=40 if q else 1000,
    )
    t_start = time.perf_counter()
    print(f"bench/paths.py  python {platform.python_version()}  {platform.machine()}  {os.cpu_count()} CPUs  "
          f"seed {args.seed}{'  --quick' if q else ''}")
    print(f"  opt_einsum {oe.__version__ if oe else 'NOT INSTALLED (columns skipped)'}; "
          f"cotengra {ctg.__version__ if ctg else 'NOT INSTALLED (columns skipped)'}; "
          f"networkx {nx.__version__ if nx else 'NOT INSTALLED (regular graphs skipped)'}")
    if ctg is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            probe = ctg.HyperOptimizer(max_time=0.1, parallel=False, progbar=False)
        missing = [str(w.message).split(" - ")[0] for w in caught]
        methods = getattr(probe, "_methods", None) or getattr(probe, "methods", None)
        optlib = type(getattr(probe, "_optimizer", None)).__name__
        print(f"  cotengra HyperOptimizer: max_time={cfg.ctg_time:g} s, max_repeats={cfg.ctg_repeats}, "
              f"parallel=False, methods={methods or 'default'}, optlib={optlib}"
              + (f"; {'; '.join(missing)}" if missing else ""))
        print(f"  cotengra OptimalOptimizer(minimize='flops') (default search_outer=False): <= {cfg.ctg_optimal_max} "
              f"operands, limit {cfg.optimal_timeout:g} s")
    if oe is not None:
        print(f"  opt_einsum 'optimal': <= {cfg.oe_optimal_max} operands, limit {cfg.optimal_timeout:g} s; "
              f"'dp': <= {cfg.dp_max} operands, limit {cfg.dp_timeout:g} s")
    tkw = _accepts(tl_contract.contract_path, TIME_KWARGS)
    print("  ours high: " + (f"contract_path({tkw}={cfg.high_timeout:g})" if tkw else
                              f"no time-budget keyword in contract_path; guarded at {cfg.high_timeout:g} s"))
    print(f"  einsum_benchmark instances from {BENCH_DIR}")

    # warm-up: imports and first-call effects out of the timings
    tl_contract.contract_path("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)], effort="fast")
    tl_contract.contract_path("ab,bc,cd->ad", [(2, 3), (3, 4), (4, 5)], effort="high")
    if oe is not None:
        oe.contract_path("ab,bc,cd->ad", (2, 3), (3, 4), (4, 5), shapes=True, optimize="auto")

    if not args.no_check:
        convention_check()

    exprs = synthetic_exprs(args.seed, q) + benchmark_exprs(q)
    if args.only:
        keys = [k.lower() for k in args.only]
        exprs = [e for e in exprs if any(k in e.name.lower() for k in keys)]
        if not exprs:
            print(f"no expression matches {args.only}")
            return 2
    if not args.only or args.sizes:
        cfg.size_times = fast_by_size((10, 20, 30), 6 if q else 20)
    rows = []
    for e in exprs:
        rows.append(bench_expr(e, cfg))
        print_row(rows[-1])
        sys.stdout.flush()
    summary(rows, cfg)
    print(f"\ntotal wall time {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
