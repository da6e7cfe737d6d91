"""Sparse numeric tensors (weighted relations, numeric data declared sparse): the COO value type against numpy,
whole programs with sparse storage against the same programs with `dense` forced and against numpy computing
the same sums, no densification where a sparse product or a weighted segment sum applies, and a weighted
graph of 100,000 nodes and 300,000 edges whose PageRank-style step runs without the dense matrix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import tensorlogic as tl
from tensorlogic.backends.sparse_numeric import SparseTensor, choose_form, coo_bytes
from tensorlogic.cli import main
from tensorlogic.syntax.diagnostics import TLRuntimeError

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- the value type

def test_from_coo_sums_duplicates_and_drops_zeros_like_add_at() -> None:
    rng = np.random.default_rng(1)
    shape = (7, 5, 3)
    ids = np.stack([rng.integers(0, s - (k == 0), 200) for k, s in enumerate(shape)], axis=1)  # row 6 unused
    w = rng.normal(size=200)
    ids = np.concatenate([ids, [[6, 1, 1], [6, 1, 1], [6, 2, 2]]])
    w = np.concatenate([w, [2.5, -2.5, 0.0]])  # weights that cancel, and an explicit zero
    ref = np.zeros(shape)
    np.add.at(ref, tuple(ids.T), w)
    st = SparseTensor.from_coo(ids, w, shape)
    np.testing.assert_allclose(st.to_dense(), ref, atol=1e-12)
    assert len(st) == np.count_nonzero(ref) and np.all(st.values != 0)
    assert not np.any(st.coords[:, 0] == 6)  # the cancelled and the zero cell hold no entry
    rows = [tuple(r) for r in st.coords.tolist()]
    assert rows == sorted(set(rows))  # sorted and unique, like Relation.cols


def test_matricize_against_numpy() -> None:
    rng = np.random.default_rng(15)
    dense = rng.normal(size=(4, 3, 5)) * (rng.random((4, 3, 5)) < 0.3)
    st = SparseTensor.from_dense(dense)
    np.testing.assert_allclose(st.matricize((0,), (2,)).toarray(), dense.sum(axis=1))
    np.testing.assert_allclose(st.matricize((2, 0), (1,)).toarray(), dense.transpose(2, 0, 1).reshape(20, 3))
    np.testing.assert_allclose(st.matricize((), (0, 1, 2)).toarray(), dense.reshape(1, 60))


def test_lookup_csr_support_and_from_dense() -> None:
    rng = np.random.default_rng(2)
    dense = rng.normal(size=(30, 40)) * (rng.random((30, 40)) < 0.1)
    st = SparseTensor.from_dense(dense)
    np.testing.assert_array_equal(st.to_dense(), dense)
    np.testing.assert_array_equal(st.csr().toarray(), dense)
    assert st.support().tuples() == [tuple(r) for r in np.argwhere(dense).tolist()]
    q = np.stack([rng.integers(-2, 33, 500), rng.integers(-2, 43, 500)], axis=1)
    inside = (q[:, 0] >= 0) & (q[:, 0] < 30) & (q[:, 1] >= 0) & (q[:, 1] < 40)
    want = np.zeros(500)
    want[inside] = dense[q[inside, 0], q[inside, 1]]
    np.testing.assert_array_equal(st.lookup(q), want)
    assert st.nbytes >= coo_bytes(len(st), 2)  # coordinates, values, keys (and the cached CSR)


def test_shape_too_large_for_keys() -> None:
    shape = (2**40, 2**40)
    ids = np.array([[5, 2**39], [2**40 - 1, 3], [5, 2**39], [0, 0]])
    st = SparseTensor.from_coo(ids, np.array([1.0, 2.0, 3.0, 0.0]), shape)
    assert [tuple(r) for r in st.coords.tolist()] == [(5, 2**39), (2**40 - 1, 3)]
    np.testing.assert_array_equal(st.values, [4.0, 2.0])
    np.testing.assert_array_equal(st.lookup(np.array([[2**40 - 1, 3], [5, 2**39], [1, 1]])), [2.0, 4.0, 0.0])


def test_choose_form() -> None:
    assert choose_form(10, (1000, 1000), None) == "sparse"  # 8 MB dense, a few hundred bytes sparse
    assert choose_form(300_000, (1000, 1000), None) == "dense"  # 30% dense: the array is smaller
    assert choose_form(10, (10, 10), None) == "dense"  # small arrays stay dense
    assert choose_form(10, (10, 10), True) == "sparse" and choose_form(1, (10**6, 10**6), False) == "dense"


# ------------------------------------------------------------------------------------------- programs

def _write_tsv(path: Path, ids: np.ndarray, w: np.ndarray) -> None:
    path.write_text("".join("\t".join(str(int(c)) for c in row) + f"\t{x:.17g}\n" for row, x in zip(ids, w)))


def _weighted(rng: np.random.Generator, shape: tuple[int, ...], m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`m` random weighted cells (duplicates possible): their ids, weights, and the dense array (np.add.at)."""
    ids = np.stack([rng.integers(0, s, m) for s in shape], axis=1)
    w = np.round(rng.normal(size=m), 3) + 0.0005  # never an integer, so the column reads as weights
    dense = np.zeros(shape)
    np.add.at(dense, tuple(ids.T), w)
    return ids, w, dense


# (equation, numpy reference over W (n x k), U (k x p), E (k x p, 0/1), V (k), V2 (n), M (k x p))
TEMPLATES = [
    ("R[x] = W(x, y) V[y]", lambda d: d["W"] @ d["V"]),
    ("R[y] = W(x, y) V2[x]", lambda d: d["W"].T @ d["V2"]),
    ("R[x] = 0.85 W(x, y) V[y] / 4", lambda d: 0.85 * (d["W"] @ d["V"]) / 4),
    ("R[x, z] = W(x, y) M[y, z]", lambda d: d["W"] @ d["M"]),
    ("R[x, z] = W(x, y) U(y, z)", lambda d: d["W"] @ d["U"]),
    ("R[x, z] = W(x, y) UT(z, y)", lambda d: d["W"] @ d["U"]),
    ("R[x] = W(x, y) U(y, z)", lambda d: (d["W"] @ d["U"]).sum(axis=1)),
    ("R[x, z] = W(x, y) E(y, z)", lambda d: d["W"] @ d["E"]),
    ("R[x] = W(x, y) E(y, z)", lambda d: (d["W"] @ d["E"]).sum(axis=1)),
    ("R[x] = W(x, y)", lambda d: d["W"].sum(axis=1)),
    ("R[y] = W(x, y)", lambda d: d["W"].sum(axis=0)),
    ("R = W(x, y)", lambda d: d["W"].sum()),
    ("R[x] = W(x, 1)", lambda d: d["W"][:, 1]),
    ("R = W(x, y) E2(x, y)", lambda d: (d["W"] * d["E2"]).sum()),
    ("R[x, y] = W(x, y) + M2[x, y]", lambda d: d["W"] + d["M2"]),
    ("R[x, y] = relu(W(x, y))", lambda d: np.maximum(d["W"], 0)),
    ("R[x, y] = W(x, y) V[y]", lambda d: d["W"] * d["V"]),
    ("R[x] = W(x, y) E(y, z) V3[z]", lambda d: d["W"] @ (d["E"] @ d["V3"])),
    ("R[x] = W(x, y) U(y, z) V3[z]", lambda d: d["W"] @ (d["U"] @ d["V3"])),
    ("R[x] = 2 W(x, y) V[y] / P[y]", lambda d: 2 * d["W"] @ (d["V"] / d["P"])),
    ("R[x, w] = W(x, y) M[y, z] UT(z, w)", lambda d: d["W"] @ d["M"] @ d["U"].T),
    ("R[x] = T3(x, y, z)", lambda d: d["T3"].sum(axis=(1, 2))),
    ("R = T3(x, y, z) E(y, z)", lambda d: (d["T3"] * d["E"][None]).sum()),
    ("R[x, z] = T3(x, 1, z)", lambda d: d["T3"][:, 1, :]),
    ("R[x, z] = T3(x, y, z) V[y]", lambda d: np.einsum("xyz,y->xz", d["T3"], d["V"])),
    ("R = A1(y)", lambda d: d["A1"].sum()),
    ("R[x] = W(x, y) A1(y)", lambda d: d["W"] @ d["A1"]),
    ("R = W(x, y) V[y]", lambda d: (d["W"] @ d["V"]).sum()),
    ("R[x] = T3(x, y, z) M[y, z]", lambda d: np.einsum("xyz,yz->x", d["T3"], d["M"])),
    ("R[z] = T3(x, y, z) V2[x]", lambda d: np.einsum("xyz,x->z", d["T3"], d["V2"])),
    ("R[x, w] = T3(x, y, z) M[y, w]", lambda d: np.einsum("xyz,yw->xw", d["T3"], d["M"])),
    ("R = A1(y) V[y]", lambda d: d["A1"] @ d["V"]),
    ("R[x] = 3 T3(x, y, z) E(y, z) V3[z]", lambda d: 3 * np.einsum("xyz,yz,z->x", d["T3"], d["E"], d["V3"])),
]
NO_DENSE = set(range(len(TEMPLATES))) - {14, 15, 16}  # all but elementwise use never make a sparse tensor dense


def _program(tmp: Path, rng: np.random.Generator, form: str, picks: list[int]) -> tuple[str, dict]:
    n, k, p = (int(x) for x in rng.integers(2, 9, 3))
    d: dict[str, np.ndarray] = {}
    for name, shape, m in (("W", (n, k), int(rng.integers(1, 2 * n * k))), ("U", (k, p), int(rng.integers(1, k * p)))):
        ids, w, d[name] = _weighted(rng, shape, m)
        _write_tsv(tmp / f"{name}.tsv", ids, w)
        if name == "U":
            _write_tsv(tmp / "UT.tsv", ids[:, ::-1], w)
    for name, shape in (("T3", (n, k, p)), ("A1", (k,))):
        ids, w, d[name] = _weighted(rng, shape, int(rng.integers(1, 2 * np.prod(shape))))
        _write_tsv(tmp / f"{name}.tsv", ids, w)
    d["E"] = (rng.random((k, p)) < 0.4).astype(float)
    d["E2"] = (rng.random((n, k)) < 0.4).astype(float)
    d["E"][0, 0] = d["E2"][0, 0] = 1.0  # never empty (an empty relation without facts is undefined)
    d["V"], d["V2"], d["V3"] = rng.normal(size=k), rng.normal(size=n), rng.normal(size=p)
    d["P"] = rng.random(k) + 0.5
    d["M"], d["M2"] = rng.normal(size=(k, p)), rng.normal(size=(n, k))
    for name in ("V", "V2", "V3", "P", "M", "M2"):
        np.save(tmp / f"{name}.npy", d[name])
    lines = [f'{t} = "{t}.tsv"' for t in ("W", "U", "UT", "T3", "A1")]
    lines += [f'{t} = "{t}.npy"' for t in ("V", "V2", "V3", "P", "M", "M2")]
    lines += [f"tensor W[{n}, {k}] {form}", f"tensor U[{k}, {p}] {form}", f"tensor UT[{p}, {k}] {form}"]
    lines += [f"tensor T3[{n}, {k}, {p}] {form}", f"tensor A1[{k}] {form}"]
    lines += [f"E({a}, {b})." for a, b in np.argwhere(d["E"])] + [f"E2({a}, {b})." for a, b in np.argwhere(d["E2"])]
    lines += [f"tensor E({k}, {p})", f"tensor E2({n}, {k})"]
    lines += [TEMPLATES[i][0].replace("R", f"R{i}", 1) for i in picks]
    return "\n".join(lines) + "\n", d


def _run(tmp: Path, source: str, names: list[str]) -> tuple[tl.Program, dict[str, np.ndarray]]:
    (tmp / "prog.tl").write_text(source)
    prog = tl.load(tmp / "prog.tl")
    prog.analyze()
    prog.executor.ensure(set(names))
    return prog, {nm: np.array(prog.executor.dense(nm)) for nm in names}


@pytest.mark.parametrize("seed", range(6))
def test_random_programs_sparse_equals_dense_equals_numpy(tmp_path: Path, seed: int) -> None:
    picks = list(range(len(TEMPLATES)))
    got = {}
    for form in ("sparse", "dense"):
        rng = np.random.default_rng(seed)
        src, d = _program(tmp_path, rng, form, picks)
        prog, got[form] = _run(tmp_path, src, [f"R{i}" for i in picks])
        for name in ("W", "U", "UT", "T3", "A1"):
            assert isinstance(prog.executor.values[name], SparseTensor if form == "sparse" else np.ndarray)
    for i in picks:
        ref = TEMPLATES[i][1](d)
        np.testing.assert_allclose(got["sparse"][f"R{i}"], ref, atol=1e-9, err_msg=TEMPLATES[i][0])
        np.testing.assert_allclose(got["dense"][f"R{i}"], ref, atol=1e-9, err_msg=TEMPLATES[i][0])


def test_products_and_sums_never_make_the_sparse_tensor_dense(tmp_path: Path, monkeypatch) -> None:
    def refuse(self):
        raise AssertionError(f"{self!r} was made dense")

    monkeypatch.setattr(SparseTensor, "to_dense", refuse)
    rng = np.random.default_rng(11)
    picks = sorted(NO_DENSE)
    src, d = _program(tmp_path, rng, "sparse", picks)
    _, got = _run(tmp_path, src, [f"R{i}" for i in picks])
    for i in picks:
        np.testing.assert_allclose(got[f"R{i}"], TEMPLATES[i][1](d), atol=1e-9, err_msg=TEMPLATES[i][0])


def test_elementwise_use_converts_once_per_version(tmp_path: Path, monkeypatch) -> None:
    calls = []
    original = SparseTensor.to_dense

    def counted(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(SparseTensor, "to_dense", counted)
    ids, w, dense = _weighted(np.random.default_rng(3), (6, 6), 12)
    _write_tsv(tmp_path / "W.tsv", ids, w)
    src = 'W = "W.tsv"\ntensor W[6, 6] sparse\nA[x, y] = W(x, y) W(x, y)\nB[x, y] = relu(W(x, y)) + W(x, y)\n'
    _, got = _run(tmp_path, src, ["A", "B"])
    np.testing.assert_allclose(got["A"], dense * dense)
    np.testing.assert_allclose(got["B"], np.maximum(dense, 0) + dense)
    assert len(calls) == 1


def test_head_declared_sparse_is_stored_sparse(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ids, w, dw = _weighted(rng, (9, 7), 15)
    _write_tsv(tmp_path / "W.tsv", ids, w)
    src = ('W = "W.tsv"\ntensor W[9, 7] sparse\ntensor Q[9, 9] sparse\nQ[x, z] = W(x, y) W(z, y)\n'
           "P[x, z] = W(x, y) W(z, y)\nS = Q[x, z]\n")
    prog, got = _run(tmp_path, src, ["Q", "P", "S"])
    assert isinstance(prog.executor.values["Q"], SparseTensor)
    assert isinstance(prog.executor.values["P"], np.ndarray)  # dense results stay dense
    np.testing.assert_allclose(got["Q"], dw @ dw.T, atol=1e-12)
    np.testing.assert_allclose(got["P"], dw @ dw.T, atol=1e-12)
    assert float(got["S"]) == pytest.approx((dw @ dw.T).sum())


def test_sparse_products_into_a_sparse_head_never_go_dense(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    n, m = 2 * 10**6, 40  # dense: 32 TB, so anything made dense is an error (check_dense)
    a, b = rng.integers(0, 50, m), rng.integers(0, n, m)
    w = rng.random(m) + 0.25
    _write_tsv(tmp_path / "W.tsv", np.stack([a * 1000, b], axis=1), w)
    _write_tsv(tmp_path / "U.tsv", np.stack([b, a], axis=1), w + 1.0)
    (tmp_path / "p.tl").write_text(
        f'W = "W.tsv"\nU = "U.tsv"\ntensor W[{n}, {n}]\ntensor U[{n}, {n}]\n'
        f"tensor Q[{n}, {n}] sparse\ntensor QT[{n}, {n}] sparse\n"
        "Q[x, z] = 0.5 W(x, y) U(y, z)\nQ[x, z] = W(x, z)\nQT[z, x] = W(x, y) U(y, z)\n"
        "S = Q(x, z)\nRow[x] = Q(x, z)\n")
    prog = tl.load(tmp_path / "p.tl")
    prog.analyze()
    prog.executor.ensure({"Q", "QT", "S", "Row"})
    q, qt = prog.executor.values["Q"], prog.executor.values["QT"]
    assert isinstance(q, SparseTensor) and isinstance(qt, SparseTensor)
    mw = sp.coo_matrix((w, (a * 1000, b)), shape=(n, n)).tocsr()
    mu = sp.coo_matrix((w + 1.0, (b, a)), shape=(n, n)).tocsr()
    ref = (0.5 * (mw @ mu) + mw).tocoo()
    got = {tuple(c): v for c, v in zip(q.coords.tolist(), q.values)}
    want = {(r, c): v for r, c, v in zip(ref.row.tolist(), ref.col.tolist(), ref.data) if v != 0}
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-12 for k in want)
    ref_t = (mw @ mu).T.tocoo()
    np.testing.assert_allclose(qt.lookup(np.stack([ref_t.row, ref_t.col], axis=1)), ref_t.data)
    assert len(qt) == ref_t.nnz
    assert float(prog.executor.dense("S")) == pytest.approx(ref.data.sum())
    row = prog.executor.values["Row"]
    assert row.shape == (n,) and row[1000 * a[0]] == pytest.approx(ref.tocsr()[1000 * a[0]].sum())


def _closure_pairs(n: int, src: np.ndarray, dst: np.ndarray) -> set[tuple[int, int]]:
    """(x, y) with a path of one or more edges from x to y (networkx, independent of the engine)."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from(zip(src.tolist(), dst.tolist()))
    out = set()
    for v in range(n):
        for s in g.successors(v):
            out |= {(v, s)} | {(v, d) for d in nx.descendants(g, s)}
    return out


@pytest.mark.parametrize("form", ["", "sparse", "dense"])
def test_rules_over_a_weighted_graph_join_its_support(tmp_path: Path, monkeypatch, form: str) -> None:
    rng = np.random.default_rng(12)
    n, m = 120, 150
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    _write_tsv(tmp_path / "W.tsv", np.stack([a, b], axis=1), rng.random(m) + 0.1)
    if form != "dense":
        def refuse(self):
            raise AssertionError(f"{self!r} was made dense")

        monkeypatch.setattr(SparseTensor, "to_dense", refuse)
    src = (f'W = "W.tsv"\ntensor W[{n}, {n}] {form}\nReach(x, y) <- W(x, y)\n'
           "Reach(x, z) <- Reach(x, y), W(y, z)\nReach(x, y)?\nReach(3, y)?\n")
    prog = tl.Program(src, base_dir=tmp_path)
    answer, single = prog.run()  # the second demand-driven (runtime/demand.py)
    want = _closure_pairs(n, a, b)
    assert {tuple(r) for r in answer.value} == want
    assert sorted(r[0] for r in single.value) == sorted(y for x, y in want if x == 3)
    assert any(s.kind == "semi-naive" for s in prog.report.strata)


def test_rules_over_negative_weights_keep_the_step_of_the_sum(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    ids, w, dense = _weighted(rng, (12, 12), 40)  # normal weights: some negative
    _write_tsv(tmp_path / "W.tsv", ids, w)
    for form in ("sparse", "dense"):
        prog = tl.Program(f'W = "W.tsv"\ntensor W[12, 12] {form}\nH(x) <- W(x, y)\nH(x)?\n', base_dir=tmp_path)
        (answer,) = prog.run()
        assert sorted(r[0] for r in answer.value) == np.flatnonzero(dense.sum(axis=1) > 0).tolist()


def test_writing_a_sparse_tensor_writes_its_entries(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(14)
    ids, w, dense = _weighted(rng, (30, 40), 25)
    names = [f"n{i}" for i in range(30)]
    (tmp_path / "W.tsv").write_text("".join(f"{names[a]}\t{b}\t{x:.17g}\n" for (a, b), x in zip(ids, w)))
    (tmp_path / "p.tl").write_text('W = "W.tsv"\ntensor W[Node, 40] sparse\nQ[x, y] = 2 W(x, y)\n'
                                   'tensor Q[Node, 40] sparse\n"out.tsv" = W\n"q.csv" = Q\n')

    def refuse(self):
        raise AssertionError(f"{self!r} was made dense")

    monkeypatch.setattr(SparseTensor, "to_dense", refuse)
    tl.load(tmp_path / "p.tl").run()
    for path, scale, sep in (("out.tsv", 1.0, "\t"), ("q.csv", 2.0, ",")):
        got = {}
        for line in (tmp_path / path).read_text().splitlines():
            a, b, x = line.split(sep)
            got[(a, int(b))] = float(x)
        want = {(f"n{i}", int(j)): scale * dense[i, j] for i, j in np.argwhere(dense != 0)}
        assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-12 for k in want)


def test_array_data_declared_sparse(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    w = rng.normal(size=(20, 20)) * (rng.random((20, 20)) < 0.1)
    v = rng.normal(size=20)
    prog = tl.Program("tensor W[20, 20] sparse\nR[x] = W[x, y] V[y]\nR?\n")
    out = prog.run(W=w, V=v)
    assert isinstance(prog.executor.values["W"], SparseTensor)
    np.testing.assert_allclose(out[0].value, w @ v)


def test_pagerank_iteration_on_a_sparse_weighted_graph(tmp_path: Path, monkeypatch) -> None:
    def refuse(self):
        raise AssertionError(f"{self!r} was made dense")

    monkeypatch.setattr(SparseTensor, "to_dense", refuse)
    rng = np.random.default_rng(6)
    n = 300
    a, b = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    out_deg = np.bincount(a, minlength=n).astype(float)
    w = 1.0 / out_deg[a]  # column-stochastic transition weights W(y, x) = 1/outdeg(x)
    _write_tsv(tmp_path / "W.tsv", np.stack([b, a], axis=1), w + 1e-12)
    src = (f'W = "W.tsv"\ntensor W[{n}, {n}]\nset tolerance = 1e-12\n'
           f"R[x] = {0.15 / n!r} + 0.85 W(x, y) R[y]\n")
    prog, got = _run(tmp_path, src, ["R"])
    assert isinstance(prog.executor.values["W"], SparseTensor)  # chosen by size: 18 KB sparse, 720 KB dense
    mat = sp.coo_matrix((w + 1e-12, (b, a)), shape=(n, n)).tocsr()
    r = np.zeros(n)
    for _ in range(500):
        r = 0.15 / n + 0.85 * (mat @ r)
    np.testing.assert_allclose(got["R"], r, atol=1e-9)


def test_plan_and_stats_show_the_form(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(7)
    ids, w, _ = _weighted(rng, (3000, 3000), 500)
    _write_tsv(tmp_path / "W.tsv", ids, w)
    (tmp_path / "p.tl").write_text('W = "W.tsv"\ntensor W[3000, 3000]\nE(0, 1).\ntensor V[3000]\nV[x] = 1\n'
                                   "R[x] = W(x, y) V[y]\nR[0]?\n")
    assert main(["plan", str(tmp_path / "p.tl")]) == 0
    out = capsys.readouterr().out
    assert "data W: sparse COO, 500 entries" in out
    assert out.count("reads W (sparse COO): sparse products and sums") == 1  # one equation reads W
    assert main(["run", "--stats", str(tmp_path / "p.tl")]) == 0
    err = capsys.readouterr().err
    assert "[storage] W: sparse COO" in err and "dense would be 68.7 MB" in err


def test_torch_backend_reads_sparse_tensors(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    ids, w, dense = _weighted(np.random.default_rng(8), (10, 10), 20)
    _write_tsv(tmp_path / "W.tsv", ids, w)
    (tmp_path / "p.tl").write_text('W = "W.tsv"\ntensor W[10, 10] sparse\nV[x] = x\nR[x] = W(x, y) V[y]\n'
                                   "S[x, y] = W(x, y) + 1\nR?\nS?\n")
    prog = tl.load(tmp_path / "p.tl", backend="torch")
    r, s = prog.run()
    np.testing.assert_allclose(r.value, dense @ np.arange(10.0))
    np.testing.assert_allclose(s.value, dense + 1)


def test_densifying_what_cannot_fit_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "W.tsv").write_text("0\t1\t0.5\n9999999\t5\t2.25\n")
    (tmp_path / "p.tl").write_text('W = "W.tsv"\ntensor W[10000000, 10000000]\ntensor V[10000000]\nV[x] = 1\n'
                                   "R[x] = W(x, y) V[y]\nH[x, y] = relu(W(x, y))\nR[0]?\nH[0, 1]?\n")
    prog = tl.load(tmp_path / "p.tl")
    with pytest.raises(TLRuntimeError) as err:  # 800 TB dense: refused before anything is allocated
        prog.run()
    text = str(err.value)
    assert "p.tl:6:16: error: W is stored sparse (2 entries)" in text and "727.6 TB" in text
    assert "relu(W(x, y))" in text and "^" in text
    prog.executor.ensure({"R"})  # the product itself never needs the dense matrix
    assert prog.executor.dense("R")[0] == 0.5 and prog.executor.dense("R")[9999999] == 2.25


# ------------------------------------------------------------------------------------------- at scale

_SCALE = textwrap.dedent('''
    import resource, sys, tracemalloc
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the dense matrix (80 GB) cannot be allocated
    import numpy as np, scipy.sparse as sp, tensorlogic as tl
    from tensorlogic.backends.sparse_numeric import SparseTensor
    tmp = sys.argv[1]
    rng = np.random.default_rng(0)
    n, m = 100_000, 300_000
    a, b, w = rng.integers(0, n, m), rng.integers(0, n, m), rng.random(m) + 0.01
    with open(f"{tmp}/W.tsv", "w") as f:
        f.write("".join(f"{x}\\t{y}\\t{z:.17g}\\n" for x, y, z in zip(a, b, w)))
    r0 = rng.random(n)
    np.save(f"{tmp}/R0.npy", r0)
    open(f"{tmp}/p.tl", "w").write('W = "W.tsv"\\nR0 = "R0.npy"\\ntensor W[100000, 100000]\\n'
                                   'R[x] = 0.15 + 0.85 W(x, y) R0[y]\\nOut[x] = W(x, y)\\nTotal = W(x, y)\\n')
    prog = tl.load(f"{tmp}/p.tl")
    prog.analyze()
    ex = prog.executor
    assert isinstance(ex.initial("W"), SparseTensor), type(ex.initial("W"))
    tracemalloc.start()
    ex.ensure({"R", "Out", "Total"})
    traced = tracemalloc.get_traced_memory()[1]
    mat = sp.coo_matrix((w, (a, b)), shape=(n, n)).tocsr()
    assert np.allclose(ex.dense("R"), 0.15 + 0.85 * (mat @ r0), atol=1e-12)
    assert np.allclose(ex.dense("Out"), np.asarray(mat.sum(axis=1)).ravel(), atol=1e-12)
    assert abs(float(ex.dense("Total")) - w.sum()) < 1e-6
    print(ex.peak_bytes, traced)
''')


@pytest.mark.skipif(sys.platform != "linux", reason="needs resource.RLIMIT_AS (Linux) to cap the address space")
def test_weighted_graph_of_100k_nodes_runs_without_the_dense_matrix(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _SCALE, str(tmp_path)], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    peak, traced = (int(x) for x in done.stdout.split())
    assert peak < 64 * 2**20  # the executor's own count: the COO arrays, the CSR view, a few vectors
    assert traced < 256 * 2**20  # everything numpy allocated while the step ran (the dense matrix: 80 GB)
