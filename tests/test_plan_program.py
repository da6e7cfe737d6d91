"""Whole-program planning: `tl plan`, the memory budget check, plan caching and liveness."""

from __future__ import annotations

import numpy as np
import pytest

import tensorlogic as tl
from tensorlogic.cli import main
from tensorlogic.plan.program import cached_plan_join, parse_bytes

CHAIN = """
A[i,j] = X[i,j]
B[i,k] = A[i,j] Y[j,k]
C[i,l] = B[i,k] Z[k,l] W[l,m] V[m,n]
C?
"""


def _inputs(rng):
    return dict(X=rng.random((30, 40)), Y=rng.random((40, 5)), Z=rng.random((5, 50)), W=rng.random((50, 60)),
                V=rng.random((60, 2)))


def test_plan_reports_each_join_with_its_flops(tmp_path, capsys):
    path = tmp_path / "p.tl"
    path.write_text("X = [[1, 2], [3, 4]]\nY = [[1, 0], [0, 1]]\nZ = [[2, 0], [0, 2]]\n"
                    "C[i,l] = X[i,j] Y[j,k] Z[k,l]\nC?\n")
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "C[i,l] = sum[j,k](X[i,j] Y[j,k] Z[k,l])" in out
    assert "dense; flops" in out and "predicted peak memory" in out
    # two pairwise steps for a three-operand join, each costing 2*2*2*2 = 16 flops
    assert out.count("  16  ") >= 1


def test_plan_marks_relational_joins_sparse(capsys):
    assert main(["plan", "examples/family_tree.tl"]) == 0
    out = capsys.readouterr().out
    assert "sparse relational join" in out and "[semi-naive]" in out


def test_plan_dot(capsys):
    assert main(["plan", "--dot", "examples/family_tree.tl"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("digraph plan") and "cluster_0" in out


def test_memory_budget_refuses_before_running(tmp_path):
    prog = tl.Program("Big[i,j] = X[i] X[j]\nS = Big[i,j]\nS?\n", memory_budget="100KB")
    with pytest.raises(tl.TLRuntimeError) as info:
        prog.run(X=np.ones(1000))  # Big alone is 8 MB
    msg = str(info.value)
    assert "memory budget" in msg and "at least" in msg


def test_memory_budget_that_fits_runs(tmp_path):
    prog = tl.Program("Big[i,j] = X[i] X[j]\nS = Big[i,j]\nS?\n", memory_budget="1GB")
    assert prog.run(X=np.ones(100))[0].value == pytest.approx(100.0 * 100.0)


def test_cli_plan_budget_exit_status(tmp_path, capsys):
    path = tmp_path / "p.tl"
    path.write_text("index i, j: 2000\nBig[i,j] = 1\nBig?\n")
    assert main(["plan", "--memory-budget", "1MB", str(path)]) == 1
    assert "EXCEEDED" in capsys.readouterr().out


def test_plans_are_cached_per_shape_signature():
    a = cached_plan_join([("i", "j"), ("j", "k"), ("k", "l")], ("i", "l"), {"i": 2, "j": 3, "k": 4, "l": 5})
    b = cached_plan_join([("i", "j"), ("j", "k"), ("k", "l")], ("i", "l"), {"i": 2, "j": 3, "k": 4, "l": 5, "z": 9})
    assert a is b


def test_liveness_frees_dead_intermediates_and_recomputes_on_demand():
    rng = np.random.default_rng(0)
    inputs = _inputs(rng)
    prog = tl.Program(CHAIN)
    prog.run(**inputs)
    ex = prog.executor
    assert "A" not in ex.computed and "B" not in ex.computed  # dead after C was computed
    b = inputs["X"] @ inputs["Y"]
    expected = np.einsum("ik,kl,lm,mn->il", b, inputs["Z"], inputs["W"], inputs["V"])
    np.testing.assert_allclose(prog["C"], expected)
    np.testing.assert_allclose(prog["B"], inputs["X"] @ inputs["Y"])  # recomputed when asked for


def test_executor_peak_within_plan_prediction():
    rng = np.random.default_rng(1)
    prog = tl.Program(CHAIN)
    inputs = _inputs(rng)
    prog.analyze(**inputs)
    predicted = prog.plan().peak_bytes
    prog.run(**inputs)
    measured = prog.executor.peak_bytes
    assert measured <= predicted * 1.10


@pytest.mark.parametrize("text,value", [("200MB", 200 * 1024**2), ("1.5GB", int(1.5 * 1024**3)), ("4096", 4096)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


def test_common_sub_joins_are_computed_once():
    rng = np.random.default_rng(2)
    a, b, c, d = rng.random((4, 5)), rng.random((5, 6)), rng.random((6,)), rng.random((4,))
    prog = tl.Program("P[i] = A[i,j] B[j,k] C[k]\nQ[i] = sig(A[i,j] B[j,k] C[k]) + D[i]\nP?\nQ?\n")
    answers = prog.run(A=a, B=b, C=c, D=d)
    p = a @ b @ c
    np.testing.assert_allclose(answers[0].value, p)
    np.testing.assert_allclose(answers[1].value, 1 / (1 + np.exp(-p)) + d)
    assert prog.executor.shared_joins >= 1


def test_join_cache_is_not_reused_after_values_change():
    # a numeric recursion reads the same join every iteration with new values
    prog = tl.Program("X = [1, 0]\nW = [[0, 0.5], [0.5, 0]]\nX[i] = W[i,j] X[j]\nX?\n")
    x = np.array([1.0, 0.0])
    w = np.array([[0, 0.5], [0.5, 0]])
    ref = x.copy()
    for _ in range(200):
        ref = x + w @ ref
    np.testing.assert_allclose(prog.run()[0].value, ref, atol=1e-8)


def test_layered_recursion_matches_a_numpy_loop():
    # H[l] from S[l] (same layer), S[l+1] from H[l] (next layer), S[0] given by a constant-layer equation
    rng = np.random.default_rng(5)
    w = rng.normal(size=(4, 3, 3))
    x0 = rng.normal(size=3)
    prog = tl.Program("S[0, j] = X0[j]\nH[l, j] = tanh(W[l, j, k] S[l, k])\nS[l+1, j] = H[l, j] + S[l, j]\nS?\nH?\n")
    s_val, h_val = (a.value for a in prog.run(W=w, X0=x0))
    s = [x0]
    h = []
    for layer in range(4):
        h.append(np.tanh(w[layer] @ s[-1]))
        s.append(h[-1] + s[-1])
    np.testing.assert_allclose(s_val, np.array(s))
    np.testing.assert_allclose(h_val, np.array(h))
    assert any(r.kind == "layered" for r in prog.report.strata)


def test_second_run_with_new_values_reuses_the_analysis():
    rng = np.random.default_rng(7)
    prog = tl.Program("Y[i] = sig(W[i,j] X[j])\nY?\n")
    w1, x1 = rng.normal(size=(3, 4)), rng.normal(size=4)
    first = prog.run(W=w1, X=x1)[0].value
    analyzed = prog.analyzed
    w2, x2 = rng.normal(size=(3, 4)), rng.normal(size=4)
    second = prog.run(W=w2, X=x2)[0].value
    assert prog.analyzed is analyzed  # not analysed again
    np.testing.assert_allclose(first, 1 / (1 + np.exp(-(w1 @ x1))))
    np.testing.assert_allclose(second, 1 / (1 + np.exp(-(w2 @ x2))))
    third = prog.run(W=rng.normal(size=(2, 4)), X=x2)[0].value  # a new shape: analysed again
    assert len(third) == 2 and prog.analyzed is not analyzed


def test_sparse_relation_times_dense_matches_numpy():
    rng = np.random.default_rng(11)
    n, d = 300, 4
    edges = {(int(a), int(b)) for a, b in rng.integers(0, n, size=(900, 2))}
    adj = np.zeros((n, n))
    for a, b in edges:
        adj[a, b] = 1.0
    z = rng.normal(size=(n, d))
    prog = tl.Program("Agg[u,k] = Neig(u,v) Z[v,k]\nBack[v,k] = Neig(u,v) Z[u,k]\nDeg[u] = Neig(u,v) One[v]\n"
                      "Agg? Back? Deg?\n")
    agg, back, deg = (a.value for a in prog.run(Neig=sorted(edges), Z=z, One=np.ones(n)))
    np.testing.assert_allclose(agg, adj @ z)
    np.testing.assert_allclose(back, adj.T @ z)
    np.testing.assert_allclose(deg, adj.sum(axis=1))
    assert any(len(k) == 2 for k in prog.executor._csr)  # the relation was used as a CSR matrix
