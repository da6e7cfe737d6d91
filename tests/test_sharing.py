"""Partial sub-join sharing (plan/sharing.py): a pair of factors common to several joins is computed once.

Every result is checked against numpy.einsum on the same arrays; the rewrite must leave the user's program
(its analysis, autodiff) untouched and show itself in `tl plan`.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensorlogic as tl
from tensorlogic.cli import main
from tensorlogic.plan import sharing
from tensorlogic.plan.program import render

ISSUE = """
A[i,k] = X[i,j] Y[j,k] Z[k]
B[i,k] = X[i,j] Y[j,k] W[k]
A?
B?
"""


def _arrays(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return dict(X=rng.random((n, n)), Y=rng.random((n, n)), Z=rng.random(n), W=rng.random(n))


def test_issue_example_is_shared_and_equals_numpy():
    v = _arrays()
    prog = tl.Program(ISSUE)
    prog.run(**v)
    assert np.allclose(prog["A"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["Z"]))
    assert np.allclose(prog["B"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["W"]))
    run = prog.executor.prog
    shared = sharing.shared_of(run)
    assert [s.consumers for s in shared] == [["A", "B"]]
    assert shared[0].equation.text == "_shared1[i,k] = sum[j](X[i,j] Y[j,k])"
    # the consumers read the temporary; the user's program is untouched
    texts = [e.text for e in run.equations]
    assert "A[i,k] = _shared1[i,k] Z[k]" in texts and "B[i,k] = _shared1[i,k] W[k]" in texts
    assert "_shared1" not in prog.analyzed.tensors
    assert [e.text for e in prog.analyzed.equations] == [e.text for e in tl.Program(ISSUE).analyze(**v).equations]
    assert sharing.shared_of(prog.analyzed) == []
    # the plan says so, with the estimate
    text = render(prog.plan())
    assert text.startswith("shared: _shared1[i,k] = sum[j](X[i,j] Y[j,k])  computed once for A, B")


def test_tl_plan_prints_a_shared_line(tmp_path, capsys):
    path = tmp_path / "s.tl"
    n = 30
    rows = ", ".join("[" + ", ".join(str((r * 7 + c) % 5) for c in range(n)) + "]" for r in range(n))
    vec = "[" + ", ".join(str(c % 3) for c in range(n)) + "]"
    path.write_text(f"X = [{rows}]\nY = [{rows}]\nZ = {vec}\nW = {vec}\n" + ISSUE)
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "shared: _shared1[i,k] = sum[j](X[i,j] Y[j,k])  computed once for A, B" in out


def test_renamed_and_reordered_pairs_match():
    v = _arrays(seed=1)
    src = "A[a,c] = X[a,b] Y[b,c] Z[c]\nB[p,r] = W[p] Y[q,r] X[p,q]\nA?\nB?\n"
    prog = tl.Program(src)
    prog.run(**v)
    assert np.allclose(prog["A"], np.einsum("ab,bc,c->ac", v["X"], v["Y"], v["Z"]))
    assert np.allclose(prog["B"], np.einsum("p,qr,pq->pr", v["W"], v["Y"], v["X"]))
    assert [s.consumers for s in sharing.shared_of(prog.executor.prog)] == [["A", "B"]]


def test_a_consumer_that_is_just_the_pair_and_three_consumers():
    v = _arrays(seed=2)
    src = ISSUE + "C[i,k] = X[i,j] Y[j,k]\nD[i] = X[i,j] Y[j,k] Z[k] W[i]\nC?\nD?\n"
    prog = tl.Program(src)
    prog.run(**v)
    xy = v["X"] @ v["Y"]
    assert np.allclose(prog["A"], xy * v["Z"])
    assert np.allclose(prog["B"], xy * v["W"])
    assert np.allclose(prog["C"], xy)
    assert np.allclose(prog["D"], (xy @ v["Z"]) * v["W"])
    shared = sharing.shared_of(prog.executor.prog)
    assert shared and set(shared[0].consumers) == {"A", "B", "C", "D"}


@pytest.mark.parametrize("force", [False, True])
def test_pair_under_a_function_and_a_kept_index(monkeypatch, force):
    v = _arrays(n=20, seed=3)
    # in E the summed index j of the pair is kept, so a shared pair keeps it too: an n^3 temporary, not worth
    # it unless forced (then A sums j after reading it)
    if force:
        monkeypatch.setattr(sharing, "EQUATION_OVERHEAD_FLOPS", -10**9)
    src = "A[i,k] = relu(X[i,j] Y[j,k] Z[k])\nE[i,j] = X[i,j] Y[j,k] W[k]\nA?\nE?\n"
    prog = tl.Program(src)
    prog.run(**v)
    assert np.allclose(prog["A"], np.maximum(np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["Z"]), 0))
    assert np.allclose(prog["E"], np.einsum("ij,jk,k->ij", v["X"], v["Y"], v["W"]))
    shared = sharing.shared_of(prog.executor.prog)
    assert bool(shared) == force
    if force:
        assert shared[0].equation.text == "_shared1[i,j,k] = X[i,j] Y[j,k]"


def test_a_temporary_can_pair_up_again():
    rng = np.random.default_rng(8)
    n = 40
    x, y, u, z, w = rng.random((n, n)), rng.random((n, n)), rng.random((n, n)), rng.random(n), rng.random(n)
    src = "A[i,l] = X[i,j] Y[j,k] U[k,l] Z[l]\nB[i,l] = X[i,j] Y[j,k] U[k,l] W[l]\nA?\nB?\n"
    prog = tl.Program(src)
    prog.run(X=x, Y=y, U=u, Z=z, W=w)
    xyu = x @ y @ u
    assert np.allclose(prog["A"], xyu * z) and np.allclose(prog["B"], xyu * w)
    shared = sharing.shared_of(prog.executor.prog)
    assert len(shared) == 2 and shared[1].consumers == ["A", "B"]
    assert "_shared1" in shared[1].equation.text or "_shared1" in shared[0].equation.text


def test_torch_backend_runs_the_rewritten_program():
    pytest.importorskip("torch")
    v = _arrays(seed=9)
    prog = tl.Program(ISSUE, backend="torch")
    prog.run(**v)
    assert [s.name for s in sharing.shared_of(prog.executor.prog)] == ["_shared1"]
    assert np.allclose(prog["A"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["Z"]))
    assert np.allclose(prog["B"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["W"]))


def test_other_factors_may_be_constants_sums_and_divisors():
    v = _arrays(seed=10)
    v["V"] = np.random.default_rng(11).random(40) + 1.0
    src = ("A[i,k] = 0.5 X[i,j] Y[j,k] (Z[k] + W[k])\nB[i,k] = X[i,j] Y[j,k] / V[k]\n"
           "C[i] = X[i,j] Y[j,k] exp(Z[k])\nA?\nB?\nC?\n")
    prog = tl.Program(src)
    prog.run(**v)
    xy = v["X"] @ v["Y"]
    assert np.allclose(prog["A"], 0.5 * xy * (v["Z"] + v["W"]))
    assert np.allclose(prog["B"], xy / v["V"])
    assert np.allclose(prog["C"], xy @ np.exp(v["Z"]))
    shared = sharing.shared_of(prog.executor.prog)
    assert shared and set(shared[0].consumers) == {"A", "B", "C"}
    assert shared[0].equation.text == "_shared1[i,k] = sum[j](X[i,j] Y[j,k])"


def test_a_variable_used_by_another_factor_is_not_summed_in_the_pair():
    v = _arrays(seed=12)
    # j is used by the sum factor (Z[j] + W[j]) of A: the pair keeps j there, so only a j-keeping temporary
    # could be shared; forced, the results must still be right
    src = "A[i,k] = X[i,j] Y[j,k] (Z[j] + W[j])\nB[i,k] = X[i,j] Y[j,k] W[k]\nA?\nB?\n"
    old = sharing.EQUATION_OVERHEAD_FLOPS
    sharing.EQUATION_OVERHEAD_FLOPS = -10**9
    try:
        prog = tl.Program(src)
        prog.run(**v)
    finally:
        sharing.EQUATION_OVERHEAD_FLOPS = old
    assert np.allclose(prog["A"], np.einsum("ij,jk,j->ik", v["X"], v["Y"], v["Z"] + v["W"]))
    assert np.allclose(prog["B"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["W"]))
    shared = sharing.shared_of(prog.executor.prog)
    assert shared and "sum[j]" not in shared[0].equation.text


def test_small_joins_are_not_worth_a_temporary():
    v = _arrays(n=4)
    prog = tl.Program(ISSUE)
    prog.run(**v)
    assert sharing.shared_of(prog.executor.prog) == []
    assert "shared:" not in render(prog.plan())


def test_switched_off_by_environment(monkeypatch):
    monkeypatch.setenv("TL_SHARE", "0")
    prog = tl.Program(ISSUE)
    prog.run(**_arrays())
    assert sharing.shared_of(prog.executor.prog) == []


def test_a_memory_budget_shares_nothing_and_a_run_without_one_shares_again():
    v = _arrays()
    prog = tl.Program(ISSUE)
    prog.run(memory_budget="64MB", **v)
    assert sharing.shared_of(prog.executor.prog) == []  # a temporary would hold memory a budget is there to save
    assert np.allclose(prog["A"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["Z"]))
    assert not render(prog.plan("64MB")).startswith("shared:")
    prog.run(**v)
    assert [s.consumers for s in sharing.shared_of(prog.executor.prog)] == [["A", "B"]]
    assert np.allclose(prog["B"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["W"]))
    budgeted = tl.Program(ISSUE, memory_budget="64MB")  # a program-wide budget too
    budgeted.run(**v)
    assert sharing.shared_of(budgeted.executor.prog) == [] and not budgeted.plan().shared


def test_recursive_strata_are_left_alone():
    # a numeric recursion reading the same pair as a plain equation: only plain (non-recursive) equations share
    src = ("H[i,k] = X[i,j] Y[j,k] Z[k]\nR[i,k] = 0.5 R[i,k] + X[i,j] Y[j,k] W[k]\nB[i,k] = X[i,j] Y[j,k] W[k]\n"
           "H?\nR?\nB?\n")
    v = _arrays(n=20, seed=4)
    prog = tl.Program(src)
    prog.run(**v)
    xy = v["X"] @ v["Y"]
    assert np.allclose(prog["H"], xy * v["Z"])
    assert np.allclose(prog["B"], xy * v["W"])
    assert np.allclose(prog["R"], 2 * xy * v["W"], rtol=1e-4)
    for s in sharing.shared_of(prog.executor.prog):
        assert "R" not in s.consumers


def test_rerun_with_new_inputs_uses_the_new_values():
    prog = tl.Program(ISSUE)
    for seed in (5, 6):
        v = _arrays(seed=seed)
        prog.run(**v)
        assert np.allclose(prog["A"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["Z"]))
        assert np.allclose(prog["B"], np.einsum("ij,jk,k->ik", v["X"], v["Y"], v["W"]))


def test_gradients_are_unchanged_by_sharing():
    v = _arrays(n=30, seed=7)
    src = ("tensor X[30, 30] learnable\nA[i,k] = X[i,j] Y[j,k] Z[k]\nB[i,k] = X[i,j] Y[j,k] W[k]\n"
           "Loss = A[i,k] B[i,k]\n")
    prog = tl.Program(src)
    x = v.pop("X")
    g = prog.grad("Loss", ["X"], X=x, **v)["X"]
    # Loss = sum_ik (XY)_ik^2 Z_k W_k: dLoss/dX = 2 ((XY) * (Z W)) Y^T
    xy = x @ v["Y"]
    expected = 2 * (xy * (v["Z"] * v["W"])) @ v["Y"].T
    assert np.allclose(g, expected)
    assert "_shared" not in prog.grad_source("Loss", ["X"], X=x, **v)


# ---------------------------------------------------------------------------------------- random programs

VARS = "ijkl"


def _read(draw):
    name = draw(st.sampled_from("XYVZW"))
    idx = tuple(draw(st.sampled_from(VARS)) for _ in range(1 if name in "ZW" else 2))
    if len(set(idx)) < len(idx):
        return draw(st.sampled_from("ZW")), idx[:1]
    return name, idx


@st.composite
def programs(draw):
    """Two to four equations, each a product of two to four reads of matrices X, Y, V and vectors Z, W over
    index variables i, j, k, l (all of one size), with a random subset of its variables on the left; some
    factors are divisors, some products have a constant factor. Most equations start with the program's
    common pair of reads (its variables renamed at random), so that there is something to share."""
    common = [_read(draw), _read(draw)]
    eqs = []
    for _ in range(draw(st.integers(2, 4))):
        factors = []
        if draw(st.integers(0, 2)):
            ren = dict(zip(VARS, draw(st.permutations(VARS))))
            factors = [(name, tuple(ren[v] for v in idx), False) for name, idx in common]
        for _ in range(draw(st.integers(0 if factors else 2, 2))):
            name, idx = _read(draw)
            # a divisor only over variables of earlier factors (a variable only a divisor has is summed
            # inside it, LANGUAGE.md section 3, which the einsum reference below does not do)
            earlier = {v for _, ix, div in factors if not div for v in ix}
            factors.append((name, idx, set(idx) <= earlier and draw(st.integers(0, 4)) == 0))
        used = sorted({v for _, idx, _ in factors for v in idx})
        lhs = tuple(v for v in used if draw(st.booleans()))
        eqs.append((factors, lhs, draw(st.sampled_from([1.0, 1.0, 0.5]))))
    return eqs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(), st.integers(0, 1000))
def test_random_programs_equal_numpy(eqs, seed):
    n = 5
    rng = np.random.default_rng(seed)
    arrays = {"X": rng.random((n, n)) + 0.5, "Y": rng.random((n, n)) + 0.5, "V": rng.random((n, n)) + 0.5,
              "Z": rng.random(n) + 0.5, "W": rng.random(n) + 0.5}
    lines = []
    for k, (factors, lhs, const) in enumerate(eqs):
        rhs = ("0.5 " if const != 1.0 else "") + " ".join(
            f"{'/ ' if div else ''}{name}[{','.join(idx)}]" for name, idx, div in factors)
        lines.append(f"T{k}[{','.join(lhs)}] = {rhs}" if lhs else f"T{k} = {rhs}")
    src = "\n".join(lines) + "\n"
    old = sharing.EQUATION_OVERHEAD_FLOPS
    sharing.EQUATION_OVERHEAD_FLOPS = -10**9  # share whatever matches, so that the rewrite itself is exercised
    try:
        prog = tl.Program(src)
        prog.run(**{k: v for k, v in arrays.items() if any(k == f for fs, _, _ in eqs for f, _, _ in fs)})
        for k, (factors, lhs, const) in enumerate(eqs):
            sub = ",".join("".join(idx) for _, idx, _ in factors) + "->" + "".join(lhs)
            expected = const * np.einsum(sub, *[1 / arrays[name] if div else arrays[name]
                                                for name, _, div in factors])
            assert np.allclose(prog[f"T{k}"], expected), (src, k)
    finally:
        sharing.EQUATION_OVERHEAD_FLOPS = old
