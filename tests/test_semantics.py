"""Targeted semantics against numpy: layers, shifts, convolution, pooling, slices, concat, softmax, lnorm,
temperature sigmoid, index values, virtual indices, projections, and files (CSV with weights, text, npy,
writing CSV)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import tensorlogic as tl


def run(src: str, base_dir: Path | None = None, **inputs) -> tl.Program:
    prog = tl.Program(src, base_dir=base_dir)
    prog.run(**inputs)
    return prog


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


RNG = np.random.default_rng(1234)


# ---------------------------------------------------------------------------------------------- layers, shifts


def mlp_reference(x0: np.ndarray, W: np.ndarray) -> np.ndarray:
    X = np.zeros((W.shape[0], W.shape[1]))
    X[0] = x0
    for i in range(1, W.shape[0]):
        X[i] = sigmoid(W[i] @ X[i - 1])
    return X


def test_mlp_with_input_layer_equation():
    W = RNG.normal(size=(4, 3, 3))
    x0 = np.array([1.0, -1.0, 0.5])
    prog = run("X[0, j] = Input[j]\nX[i, j] = sig(W[i, j, k] X[i-1, k])\n", Input=x0, W=W)
    np.testing.assert_allclose(prog["X"], mlp_reference(x0, W))


def test_mlp_layer_zero_given_as_data_is_not_overwritten():
    W = RNG.normal(size=(4, 3, 3))
    X = np.zeros((4, 3))
    X[0] = [1.0, -1.0, 0.5]
    prog = run("X[i, j] = sig(W[i, j, k] X[i-1, k])\n", X=X, W=W)
    np.testing.assert_array_equal(prog["X"][0], X[0])
    np.testing.assert_allclose(prog["X"], mlp_reference(X[0], W))
    assert prog.report.warnings == []


def test_recursive_tensor_with_data_fixpoint():
    prog = run("X = [1, 0, 0]\nX[i] = X[i-1]\n")
    np.testing.assert_allclose(prog["X"], [1.0, 1.0, 1.0])
    assert prog.report.warnings == []


def test_data_plus_non_recursive_equation_is_added():
    prog = run("A = [1, 2]\nZ = [100, 200]\nZ[i] = A[i]\n")
    np.testing.assert_allclose(prog["Z"], [101.0, 202.0])


def test_several_equations_for_one_head_are_summed():
    prog = run("A = [1, 2]\nB = [10, 20]\nY[i] = A[i]\nY[i] += B[i]\nY[i] = 3 A[i]\n")
    np.testing.assert_allclose(prog["Y"], [14.0, 28.0])


def test_shift_reads_inside():
    x = RNG.normal(size=6)
    prog = run("Y[t] = X[t+1]\n", X=x)
    np.testing.assert_allclose(prog["Y"], x[1:])
    # t-1 reads inside X for t in 1..6, so Y has 7 cells and Y[0] receives nothing
    prog = run("Y[t] = X[t-1]\n", X=x)
    np.testing.assert_allclose(prog["Y"], np.concatenate([[0.0], x]))


def test_forward_difference_has_one_element_fewer():
    x = RNG.normal(size=5)
    prog = run("D[x] = X[x+1] - X[x]\n", X=x)
    np.testing.assert_allclose(prog["D"], np.diff(x))


# ---------------------------------------------------------------------------------------------- convolution, pooling


def conv_reference(img: np.ndarray, filt: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(out_shape)
    for x in range(out_shape[0]):
        for y in range(out_shape[1]):
            for dx in range(filt.shape[0]):
                for dy in range(filt.shape[1]):
                    for ch in range(filt.shape[2]):
                        if x + dx < img.shape[0] and y + dy < img.shape[1]:
                            out[x, y] += filt[dx, dy, ch] * img[x + dx, y + dy, ch]
    return out


def test_convolution_keeps_size_with_zero_padding():
    img, filt = RNG.normal(size=(6, 5, 2)), RNG.normal(size=(3, 2, 2))
    prog = run("F[x, y] = relu(Filter[dx, dy, ch] Image[x+dx, y+dy, ch])\n", Image=img, Filter=filt)
    np.testing.assert_allclose(prog["F"], np.maximum(conv_reference(img, filt, (6, 5)), 0))


def test_convolution_with_declared_output_is_valid_convolution():
    img, filt = RNG.normal(size=(5, 5, 1)), RNG.normal(size=(3, 3, 1))
    prog = run("tensor F[3, 3]\nF[x, y] = Filter[dx, dy, ch] Image[x+dx, y+dy, ch]\n", Image=img, Filter=filt)
    np.testing.assert_allclose(prog["F"], conv_reference(img, filt, (3, 3)))


@pytest.mark.parametrize("op,reduce", [("=", np.sum), ("max=", np.max), ("min=", np.min), ("avg=", np.mean)])
def test_pooling_1d(op, reduce):
    x = RNG.normal(size=7)  # the last block has one element
    prog = run(f"P[x/2] {op} F[x]\n", F=x)
    expected = [reduce(x[k:k + 2]) for k in range(0, 7, 2)]
    np.testing.assert_allclose(prog["P"], expected)


@pytest.mark.parametrize("op,reduce", [("=", np.sum), ("max=", np.max), ("avg=", np.mean)])
def test_pooling_2d_with_scalar_stride(op, reduce):
    f = RNG.normal(size=(4, 6))
    prog = run(f"S = 2\nPooled[x/S, y/S] {op} F[x, y]\n", F=f)
    expected = reduce(f.reshape(2, 2, 3, 2), axis=(1, 3))
    np.testing.assert_allclose(prog["Pooled"], expected)


def test_max_projection_over_an_index():
    X = RNG.normal(size=(3, 4))
    prog = run("M[i] max= X[i, j]\nN[j] min= X[i, j]\nV[i] avg= X[i, j]\n", X=X)
    np.testing.assert_allclose(prog["M"], X.max(1))
    np.testing.assert_allclose(prog["N"], X.min(0))
    np.testing.assert_allclose(prog["V"], X.mean(1))


# ---------------------------------------------------------------------------------------------- slices

X5 = np.array([1.0, 2.0, 3.0, 4.0, 5.0])


@pytest.mark.parametrize("sl", ["1:3", "2:", "0:2", "1:-1", "0:5", "3:4"])
def test_slices(sl):
    prog = run(f"Y = X[{sl}]\n", X=X5)
    np.testing.assert_array_equal(prog["Y"], eval(f"X5[{sl}]"))  # noqa: S307 - a literal slice


@pytest.mark.parametrize("sl", [":2", ":-1"])
def test_slices_without_start(sl):  # X[:2] once gave [1,2,0,0,0]
    prog = run(f"Y = X[{sl}]\n", X=X5)
    np.testing.assert_array_equal(prog["Y"], eval(f"X5[{sl}]"))  # noqa: S307 - a literal slice


def test_slice_with_negative_start():
    prog = run("Y = X[-2:]\n", X=X5)
    np.testing.assert_array_equal(prog["Y"], [4.0, 5.0])


def test_slices_on_both_sides_and_with_other_indices():
    X = RNG.normal(size=(3, 5))
    prog = run("Y[i, 0:2] = X[i, 1:3]\n", X=X)
    np.testing.assert_allclose(prog["Y"], X[:, 1:3])
    prog = run("Y = X[1:3, 2:5]\n", X=X)
    np.testing.assert_allclose(prog["Y"], X[1:3, 2:5])


# ---------------------------------------------------------------------------------------------- normalisers, concat


def test_concat_layout():
    A = RNG.normal(size=(2, 3, 4))  # h, p, dv
    prog = run("Merge[p, dm] = concat(Attn[h, p, dv])\n", Attn=A)
    np.testing.assert_allclose(prog["Merge"], A.transpose(1, 0, 2).reshape(3, 8))


def test_concat_layout_with_batch():
    A = RNG.normal(size=(2, 3, 4, 2))  # b, h, p, dv
    prog = run("Merge[b, p, dm] = concat(Attn[b, h, p, dv])\n", Attn=A)
    np.testing.assert_allclose(prog["Merge"], A.transpose(0, 2, 1, 3).reshape(2, 4, 6))


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_attention_softmax_over_dotted_index():
    Q, K = RNG.normal(size=(3, 2)), RNG.normal(size=(4, 2))
    prog = run("Dk = 2\nComp[p, p'.] = softmax(Query[p, dk] Key[p', dk] / sqrt(Dk))\n", Query=Q, Key=K)
    np.testing.assert_allclose(prog["Comp"], softmax(Q @ K.T / np.sqrt(2), axis=1))


def test_softmax_over_the_first_index():
    X = RNG.normal(size=(3, 5))
    prog = run("Z[p., d] = softmax(X[p, d])\n", X=X)
    np.testing.assert_allclose(prog["Z"], softmax(X, axis=0))


def test_output_softmax_with_sum_inside():
    Wo, S = RNG.normal(size=(5, 3)), RNG.normal(size=(4, 3))
    prog = run("Y[p, t.] = softmax(WO[t, d] Stream[p, d])\n", WO=Wo, Stream=S)
    np.testing.assert_allclose(prog["Y"], softmax(S @ Wo.T, axis=1))


@pytest.mark.parametrize("axis", [0, 1])
def test_layer_norm(axis):
    X = RNG.normal(size=(3, 5)) * 3 + 1
    lhs = "Y[p, d.]" if axis == 1 else "Y[p., d]"
    prog = run(f"{lhs} = lnorm(X[p, d])\n", X=X)
    expected = (X - X.mean(axis, keepdims=True)) / np.sqrt(X.var(axis, keepdims=True) + 1e-5)
    np.testing.assert_allclose(prog["Y"], expected, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------------------------------------- functions


def test_sig_with_zero_temperature_is_step_exactly():
    x = np.array([-2.0, -1e-12, 0.0, 1e-12, 3.0])
    prog = run("T = 0\nY[i] = sig(X[i], T)\nZ[i] = step(X[i])\nV[i] = sig(X[i], 0)\n", X=x)
    np.testing.assert_array_equal(prog["Y"], [0.0, 0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(prog["Z"], [0.0, 0.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(prog["V"], prog["Z"])


def test_sig_with_temperature():
    x = RNG.normal(size=6) * 3
    prog = run("T = 2.5\nY[i] = sig(X[i], T)\nZ[i] = sig(X[i])\n", X=x)
    np.testing.assert_allclose(prog["Y"], sigmoid(x / 2.5))
    np.testing.assert_allclose(prog["Z"], sigmoid(x))


@pytest.mark.parametrize("func,ref", [("relu", lambda x: np.maximum(x, 0)), ("tanh", np.tanh), ("exp", np.exp),
                                      ("abs", np.abs), ("sin", np.sin), ("cos", np.cos),
                                      ("step", lambda x: (x > 0).astype(float))])
def test_elementwise_functions(func, ref):
    x = RNG.normal(size=7)
    prog = run(f"Y[i] = {func}(X[i])\n", X=x)
    np.testing.assert_allclose(prog["Y"], ref(x))


def test_log_and_sqrt():
    x = RNG.uniform(0.1, 3, size=5)
    prog = run("Y[i] = log(X[i])\nZ[i] = sqrt(X[i])\n", X=x)
    np.testing.assert_allclose(prog["Y"], np.log(x))
    np.testing.assert_allclose(prog["Z"], np.sqrt(x))


def test_index_value_in_an_expression():
    prog = run("tensor Y[4]\nY[p] = p\n")
    np.testing.assert_array_equal(prog["Y"], [0.0, 1.0, 2.0, 3.0])
    X = RNG.normal(size=(3, 2))
    prog = run("Z[p, q] = X[p, q] p + q\n", X=X)
    np.testing.assert_allclose(prog["Z"], X * np.arange(3)[:, None] + np.arange(2)[None, :])


def test_positional_encoding_with_conditions():
    prog = run("D = 4\nEven(0). Even(2). Odd(1). Odd(3).\ntensor PosEnc[3, 4]\n"
               "PosEnc[p, d] = Even(d) sin(p / 10000^(d/D)) + Odd(d) cos(p / 10000^((d-1)/D))\n")
    P, Dd = np.meshgrid(np.arange(3.0), np.arange(4.0), indexing="ij")
    expected = np.where(Dd % 2 == 0, np.sin(P / 10000 ** (Dd / 4)), np.cos(P / 10000 ** ((Dd - 1) / 4)))
    np.testing.assert_allclose(prog["PosEnc"], expected)


def test_boolean_head_applies_step():
    A = np.array([[0.0, 2.0], [0.0, 0.0]])
    B = np.array([[1.0, 0.0], [3.0, 0.0]])
    prog = run("C(x, z) = A[x, y] B[y, z]\n", A=A, B=B)
    np.testing.assert_array_equal(prog["C"], ((A @ B) > 0).astype(float))


def test_registered_python_function():
    prog = tl.Program("Y[i] = cube(X[i]) + 1\n")
    prog.register_function("cube", lambda a: a ** 3)
    x = RNG.normal(size=4)
    prog.run(X=x)
    np.testing.assert_allclose(prog["Y"], x ** 3 + 1)


# ---------------------------------------------------------------------------------------------- virtual index


def test_rnn_with_virtual_index():
    W, V, U = RNG.normal(size=(3, 3)), RNG.normal(size=(3, 3)), RNG.normal(size=(3, 6))
    prog = tl.Program("X = [0, 0, 0]\nX[i, *t+1] = sig(W[i, j] X[j, *t] + V[i, j] U[j, t])\nX?\n")
    answers = prog.run(W=W, V=V, U=U)
    h = np.zeros(3)
    for t in range(6):
        h = sigmoid(W @ h + V @ U[:, t])
    np.testing.assert_allclose(prog["X"], h)
    np.testing.assert_allclose(answers[0].value, h)


def test_rnn_with_initial_state_equation():
    W, U, H0 = RNG.normal(size=(2, 2)), RNG.normal(size=(2, 4)), RNG.normal(size=2)
    prog = run("X[i, *0] = H0[i]\nX[i, *t+1] = tanh(W[i, j] X[j, *t] + U[i, t])\n", W=W, U=U, H0=H0)
    h = H0.copy()
    for t in range(4):
        h = np.tanh(W @ h + U[:, t])
    np.testing.assert_allclose(prog["X"], h)


# ---------------------------------------------------------------------------------------------- files


def test_weighted_facts_from_csv(tmp_path):
    (tmp_path / "w.csv").write_text("Alice,Bob,0.5\nBob,Carol,2.0\nAlice,Carol,1.5\n")
    prog = run('W = "w.csv"\nOut[x] = W[x, y]\nTotal = W[x, y]\n', base_dir=tmp_path)
    assert prog.query("Total") == pytest.approx(4.0)
    assert prog.query("W[Alice, Carol]") == pytest.approx(1.5)
    assert prog.query("W[Bob, Carol]") == pytest.approx(2.0)
    assert prog.query("W[Bob, Bob]") == pytest.approx(0.0)
    assert prog.query("Out[Alice]") == pytest.approx(2.0)
    assert prog.query("Out[Bob]") == pytest.approx(2.0)


def test_csv_tuples_without_weights(tmp_path):
    (tmp_path / "parents.csv").write_text("Alice,Bob\nBob,Carol\n")
    prog = run('Parent = "parents.csv"\nAnc(x, y) <- Parent(x, y).\nAnc(x, z) <- Anc(x, y), Parent(y, z).\n',
               base_dir=tmp_path)
    assert prog.query("Anc(x, y)") == [["Alice", "Bob"], ["Alice", "Carol"], ["Bob", "Carol"]]


def test_text_file_is_position_word_matrix(tmp_path):
    (tmp_path / "text.txt").write_text("Alice loves Bob\n")
    prog = run('M = "text.txt"\nWords(w) <- M(p, w).\n', base_dir=tmp_path)
    assert prog.query("M(p, w)") == [[0, "Alice"], [1, "loves"], [2, "Bob"]]
    assert prog.query("M(1, w)") == [["loves"]]
    assert prog.query("M(p, Bob)") == [[2]]
    assert prog.query("Words(w)") == [["Alice"], ["Bob"], ["loves"]]
    assert prog["M"].shape == (3, 3)


def test_write_csv_and_read_back(tmp_path):
    src = ("Parent(Alice, Bob). Parent(Bob, Carol). Parent(Carol, Dan).\n"
           "Anc(x, y) <- Parent(x, y).\nAnc(x, z) <- Anc(x, y), Parent(y, z).\n"
           '"out.csv" = Anc\n')
    prog = tl.Program(src, str(tmp_path / "prog.tl"))
    prog.run()
    with open(tmp_path / "out.csv", newline="") as f:
        rows = sorted(tuple(r) for r in csv.reader(f))
    people = ["Alice", "Bob", "Carol", "Dan"]
    assert rows == sorted((people[a], people[b]) for a in range(4) for b in range(a + 1, 4))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_write_numeric_csv_and_read_back(tmp_path):
    src = 'A = [[1, 0], [0, 2.5]]\nB[i, j] = 2 A[i, j]\n"b.csv" = B\n'
    prog = tl.Program(src, str(tmp_path / "prog.tl"))
    prog.run()
    with open(tmp_path / "b.csv", newline="") as f:
        rows = [r for r in csv.reader(f)]
    values = {(int(r[0]), int(r[1])): float(r[-1]) for r in rows}
    assert values == {(0, 0): 2.0, (1, 1): 5.0}


def test_npy_read_and_write(tmp_path):
    arr = RNG.normal(size=(2, 3))
    np.save(tmp_path / "a.npy", arr)
    prog = tl.Program('A = "a.npy"\nB[i] = A[i, j]\n"b.npy" = B\n', str(tmp_path / "prog.tl"))
    prog.run()
    np.testing.assert_allclose(prog["A"], arr)
    np.testing.assert_allclose(prog["B"], arr.sum(1))
    np.testing.assert_allclose(np.load(tmp_path / "b.npy"), arr.sum(1))


@pytest.mark.parametrize(("src", "query", "axes"), [
    ("Edge(A, B)\nCount[x] = Edge(x, y)\n", "Count?", ("x",)),
    ("X = [[1, 2], [3, 4]]\nK[i, i'] = X[i, j] X[i', j]\n", "K?", ("i", "i'")),
    ("X = [[1, 2], [3, 4]]\n", "X?", ("i1", "i2")),
    ("V = [1, 2]\n", "V?", ("i",)),
    ("X = [[1, 2], [3, 4]]\nD[i, i] = X[i, i]\n", "D?", ("i1", "i2")),  # one name for two axes: generic
    ("X = [[1, 2], [3, 4]]\nE[n, 0, d] = X[n, d]\nE[n, l + 1, d] = E[n, l, d]\n", "E?", ("n", "i2", "d")),
    ("X = [[1, 2], [3, 4]]\nS[i2, i] = X[i, i2]\nS[a, b] = X[a, b]\n", "S?", ("i2", "i")),
])
def test_whole_tensor_queries_name_their_axes_after_the_equations(src, query, axes):
    from tensorlogic.analysis.program import analyze_query
    from tensorlogic.syntax.parser import parse_expression

    prog = tl.Program(src + query + "\n")
    prog.run()
    assert prog.answers[0].ir.free == axes
    later = analyze_query(prog.analyzed, parse_expression(query[:-1], "<query>"), query[:-1])
    assert later.free == axes  # a query typed later (REPL, prog.query) names them the same way
