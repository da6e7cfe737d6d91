"""Random einsum equations against numpy.einsum, and random elementwise / summation expressions against a
numpy evaluator that places every summation by the rule of LANGUAGE.md section 3 (written independently
here: smallest product containing all occurrences; moves up over sums, differences, negations and powers
to the nearest enclosing product, function argument or the whole right side; a lone read is a product)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import tensorlogic as tl

LETTERS = "abcdghijkmnpqrstuvwxyz"
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------- einsum


@st.composite
def einsum_cases(draw):
    n_letters = draw(st.integers(1, 6))
    letters = draw(st.permutations(LETTERS).map(lambda p: p[:n_letters]))
    sizes = {c: draw(st.integers(1, 4)) for c in letters}
    n_ops = draw(st.integers(2, 5))
    ops = [draw(st.lists(st.sampled_from(letters), min_size=1, max_size=3)) for _ in range(n_ops)]
    used = sorted({c for op in ops for c in op}, key=letters.index)
    out = draw(st.permutations(used).flatmap(lambda p: st.integers(0, len(p)).map(lambda k: list(p[:k]))))
    seed = draw(st.integers(0, 2**31 - 1))
    return ops, out, {c: sizes[c] for c in used}, seed


def run_einsum_case(ops: list[list[str]], out: list[str], sizes: dict[str, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    arrays = {f"A{k}": rng.normal(size=[sizes[c] for c in op]) for k, op in enumerate(ops)}
    rhs = " ".join(f"A{k}[{', '.join(op)}]" for k, op in enumerate(ops))
    lhs = f"Out[{', '.join(out)}]" if out else "Out"
    src = f"{lhs} = {rhs}\n"
    prog = tl.Program(src)
    prog.run(**arrays)
    subscripts = ",".join("".join(op) for op in ops) + "->" + "".join(out)
    expected = np.einsum(subscripts, *arrays.values())
    got = prog["Out"]
    assert got.shape == expected.shape, (src, subscripts, got.shape, expected.shape)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-10, err_msg=f"{src} vs einsum {subscripts}")


@SETTINGS
@given(einsum_cases())
@example(([["i", "i"], ["i", "j"]], ["j"], {"i": 3, "j": 2}, 1))  # diagonal
@example(([["i", "i"], ["i"]], [], {"i": 4}, 2))  # trace-like, scalar output
@example(([["i", "j"], ["j", "k"], ["j", "m"], ["j"]], ["i", "k", "m"], {"i": 2, "j": 3, "k": 4, "m": 2}, 3))
@example(([["i", "j", "k"], ["k", "j", "i"], ["i"]], ["k", "i"], {"i": 2, "j": 3, "k": 4}, 4))
@example(([["a", "a", "a"], ["a", "b"], ["b", "b"]], ["b", "a"], {"a": 3, "b": 2}, 5))
@example(([["i"], ["j"], ["k"], ["i", "j"], ["j", "k"]], [], {"i": 1, "j": 4, "k": 1}, 6))
def test_random_einsum(case):
    run_einsum_case(*case)


@pytest.mark.parametrize("ops,out", [
    ([["i", "j"], ["j", "k"]], ["i", "k"]),                       # matrix product
    ([["i", "j"], ["i", "j"]], ["i", "j"]),                       # Hadamard
    ([["i"], ["i"]], []),                                          # dot product
    ([["i", "i"]], ["i"]),                                         # diagonal
    ([["i", "j"], ["j"], ["j"], ["j", "k"], ["j"]], ["i", "k"]),  # j shared by five operands
    ([["b", "h", "p", "d"], ["b", "h", "q", "d"]], ["b", "h", "p", "q"]),  # batched attention scores
    ([["i", "j"], ["k", "m"]], ["m", "i"]),                       # outer product, j and k summed separately
])
def test_named_einsums(ops, out):
    sizes = {"i": 3, "j": 4, "k": 2, "m": 3, "b": 2, "h": 2, "p": 3, "q": 4, "d": 2}
    run_einsum_case(ops, out, {c: sizes[c] for op in ops for c in op}, 7)


def test_boolean_join_is_and_exists():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, size=(4, 5)).astype(float)
    b = rng.integers(0, 2, size=(5, 3)).astype(float)
    prog = tl.Program("C(x, z) = A(x, y) B(y, z)\n")
    prog.run(A=a, B=b)
    np.testing.assert_array_equal(prog["C"], (a @ b > 0).astype(float))


# ---------------------------------------------------------------------------------------------- summation rule

SIZES = {"i": 3, "k": 4, "m": 2}
REFS = {"A": "ik", "B": "k", "C": "i", "D": "km", "E": "mi", "F": "i", "G": "ki", "H": "ikm"}
FUNCS = {"sig": lambda x: 1 / (1 + np.exp(-x)), "tanh": np.tanh, "exp": np.exp, "relu": lambda x: np.maximum(x, 0),
         "abs": np.abs, "sin": np.sin}
AXIS = {"i": 0, "k": 1, "m": 2}


def trees():
    leaves = st.one_of(st.sampled_from(sorted(REFS)).map(lambda n: ("ref", n)),
                       st.sampled_from([0.5, 2.0, 3.0]).map(lambda x: ("num", x)))

    def extend(kids):
        return st.one_of(
            st.lists(kids, min_size=2, max_size=3).map(lambda cs: ("mul", tuple(cs))),
            st.tuples(st.lists(kids, min_size=2, max_size=3), st.lists(st.sampled_from([1, -1]), min_size=3,
                                                                        max_size=3))
            .map(lambda t: ("add", tuple(t[0]), (1,) + tuple(t[1][1:len(t[0])]))),
            kids.map(lambda c: ("neg", c)),
            st.tuples(kids, st.sampled_from([2, 3])).map(lambda t: ("pow", t[0], t[1])),
            st.tuples(st.sampled_from(sorted(FUNCS)), kids).map(lambda t: ("call", t[0], t[1])),
            kids.map(lambda c: ("div", c, 2.0)),
        )

    return st.recursive(leaves, extend, max_leaves=7)


def children(n):
    kind = n[0]
    if kind in ("mul", "add"):
        return list(n[1])
    if kind in ("neg", "pow", "div"):
        return [n[1]]
    if kind == "call":
        return [n[2]]
    return []


def tree_vars(n) -> set[str]:
    if n[0] == "ref":
        return set(REFS[n[1]])
    out: set[str] = set()
    for c in children(n):
        out |= tree_vars(c)
    return out


def render(n) -> str:
    kind = n[0]
    if kind == "ref":
        return f"{n[1]}[{', '.join(REFS[n[1]])}]"
    if kind == "num":
        return repr(n[1])
    if kind == "mul":
        return "(" + " * ".join(render(c) for c in n[1]) + ")"
    if kind == "add":
        parts = [render(n[1][0])] + [f"{'+' if s > 0 else '-'} {render(c)}" for c, s in zip(n[1][1:], n[2][1:])]
        return "(" + " ".join(parts) + ")"
    if kind == "neg":
        return f"(-{render(n[1])})"
    if kind == "pow":
        return f"({render(n[1])})^{n[2]}"
    if kind == "div":
        return f"({render(n[1])} / {n[2]!r})"
    return f"{n[1]}({render(n[2])})"


def summation_sites(root, keep: set[str]) -> dict[int, set[str]]:
    """id(node) -> variables summed there, by the rule of LANGUAGE.md section 3."""
    sites: dict[int, set[str]] = {}
    for v in sorted(tree_vars(root) - keep):
        path = [root]
        while True:
            holders = [c for c in children(path[-1]) if v in tree_vars(c)]
            if path[-1][0] == "ref" or len(holders) != 1:
                break
            path.append(holders[0])
        k = len(path) - 1
        # a sum/difference/negation/power moves the summation up, unless it is a function's argument
        while k > 0 and path[k][0] in ("add", "neg", "pow") and path[k - 1][0] != "call":
            k -= 1
        sites.setdefault(id(path[k]), set()).add(v)
    return sites


def evaluate(n, data: dict[str, np.ndarray], sites: dict[int, set[str]]) -> np.ndarray:
    """The value as an array over (i, k, m) (size-1 axes where it does not depend on a variable)."""
    kind = n[0]
    if kind == "ref":
        arr = data[n[1]]
        letters = REFS[n[1]]
        full = np.einsum(f"{letters}->{''.join(sorted(letters, key=AXIS.get))}", arr)
        shape = [SIZES[c] if c in letters else 1 for c in "ikm"]
        val = full.reshape(shape)
    elif kind == "num":
        val = np.full((1, 1, 1), n[1])
    elif kind == "mul":
        val = np.ones((1, 1, 1))
        for c in n[1]:
            val = val * evaluate(c, data, sites)
    elif kind == "add":
        val = np.zeros((1, 1, 1))
        for c, s in zip(n[1], n[2]):
            val = val + s * evaluate(c, data, sites)
    elif kind == "neg":
        val = -evaluate(n[1], data, sites)
    elif kind == "pow":
        val = evaluate(n[1], data, sites) ** n[2]
    elif kind == "div":
        val = evaluate(n[1], data, sites) / n[2]
    else:
        val = FUNCS[n[1]](evaluate(n[2], data, sites))
    for v in sites.get(id(n), ()):
        val = val.sum(axis=AXIS[v], keepdims=True)
    return val


@SETTINGS
@given(trees(), st.integers(0, 2**31 - 1))
@example(("add", (("ref", "A"), ("ref", "C")), (1, 1)), 0)                            # Y[i] = A[i,k] + C[i]
@example(("pow", ("mul", (("ref", "A"), ("ref", "B"))), 2), 1)                       # (A B)^2: sum, then square
@example(("call", "exp", ("neg", ("pow", ("add", (("ref", "A"), ("ref", "G")), (1, -1)), 2))), 2)  # Gaussian
@example(("call", "sig", ("add", (("ref", "C"), ("ref", "F")), (1, 1))), 3)
@example(("add", (("mul", (("ref", "A"), ("ref", "D"), ("ref", "E"))), ("num", 2.0)), (1, 1)), 4)
def test_summation_rule_random(tree, seed):
    assume("i" in tree_vars(tree))
    rng = np.random.default_rng(seed)
    data = {name: rng.uniform(-1, 1, size=[SIZES[c] for c in letters]) for name, letters in REFS.items()}
    used = {n[1] for n in _walk(tree) if n[0] == "ref"}
    src = f"Y[i] = {render(tree)}\n"
    prog = tl.Program(src)
    prog.run(**{k: v for k, v in data.items() if k in used})
    sites = summation_sites(tree, {"i"})
    expected = np.broadcast_to(evaluate(tree, data, sites), (SIZES["i"], 1, 1))[:, 0, 0]
    np.testing.assert_allclose(prog["Y"], expected, rtol=1e-8, atol=1e-9, err_msg=src)


def _walk(n):
    yield n
    for c in children(n):
        yield from _walk(c)


def elementwise():
    """(tensor logic text, numpy text) of an expression whose refs all carry only the left side's indices i, j
    (so nothing is summed)."""
    leaves = st.sampled_from([("P[i,j]", "P"), ("Q[i,j]", "Q"), ("R[j,i]", "R.T"), ("S[i]", "S[:, None]"),
                              ("T[j]", "T[None, :]"), ("0.5", "0.5"), ("2", "2.0"), ("3", "3.0")])
    funcs = {"sig": "_sig", "tanh": "np.tanh", "relu": "_relu", "abs": "np.abs", "cos": "np.cos", "exp": "np.exp"}

    def extend(kids):
        return st.one_of(
            st.tuples(kids, kids).map(lambda t: (f"({t[0][0]} + {t[1][0]})", f"({t[0][1]} + {t[1][1]})")),
            st.tuples(kids, kids).map(lambda t: (f"({t[0][0]} - {t[1][0]})", f"({t[0][1]} - {t[1][1]})")),
            st.tuples(kids, kids).map(lambda t: (f"({t[0][0]} {t[1][0]})", f"({t[0][1]} * {t[1][1]})")),
            st.tuples(kids, st.sampled_from(["2", "3"])).map(lambda t: (f"({t[0][0]})^{t[1]}",
                                                                        f"({t[0][1]})**{t[1]}")),
            kids.map(lambda c: (f"(-{c[0]})", f"(-{c[1]})")),
            st.tuples(st.sampled_from(sorted(funcs)), kids).map(lambda t: (f"{t[0]}({t[1][0]})",
                                                                           f"{funcs[t[0]]}({t[1][1]})")),
        )

    return st.recursive(leaves, extend, max_leaves=8)


@SETTINGS
@given(elementwise(), st.integers(0, 2**31 - 1))
@example(("((P[i,j] S[i]) - (R[j,i])^2)", "((P * S[:, None]) - (R.T)**2)"), 0)
def test_random_elementwise_expressions(expr, seed):
    text, py = expr
    assume(("P[" in text or "Q[" in text or "R[" in text) or ("S[" in text and "T[" in text))
    rng = np.random.default_rng(seed)
    env = {"P": rng.uniform(-1, 1, (3, 4)), "Q": rng.uniform(-1, 1, (3, 4)), "R": rng.uniform(-1, 1, (4, 3)),
           "S": rng.uniform(-1, 1, 3), "T": rng.uniform(-1, 1, 4)}
    prog = tl.Program(f"Y[i, j] = {text}\n")
    prog.run(**{k: v for k, v in env.items() if f"{k}[" in text})
    scope = {"np": np, "_sig": lambda x: 1 / (1 + np.exp(-x)), "_relu": lambda x: np.maximum(x, 0), **env}
    expected = np.broadcast_to(eval(py, scope), (3, 4))  # noqa: S307 - text built by the generator above
    np.testing.assert_allclose(prog["Y"], expected, rtol=1e-8, atol=1e-9, err_msg=text)


# ---------------------------------------------------------------------------------------------- paper examples


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (4, 2)), rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 4)


def test_sum_only_over_the_product_that_contains_the_index():
    A, _, B, _ = _data()
    prog = tl.Program("Y[i] = A[i,j] + B[i]\n")
    prog.run(A=A, B=B)
    np.testing.assert_allclose(prog["Y"], A.sum(1) + B)


def test_bias_added_once():
    W, _, B, X = _data(1)
    prog = tl.Program("Y[i] = W[i,j] X[j] + B[i]\n")
    prog.run(W=W, X=X, B=B)
    np.testing.assert_allclose(prog["Y"], W @ X + B)


def test_power_after_summing():
    A, B, _, _ = _data(2)
    prog = tl.Program("K[i,k] = (A[i,j] B[j,k])^2\n")
    prog.run(A=A, B=B)
    np.testing.assert_allclose(prog["K"], (A @ B) ** 2)


def test_gaussian_kernel_sums_squares_inside_exp():
    rng = np.random.default_rng(3)
    A, B = rng.uniform(-1, 1, (3, 4)), rng.uniform(-1, 1, (5, 4))
    prog = tl.Program("G[i,k] = exp(-(A[i,j] - B[k,j])^2)\n")
    prog.run(A=A, B=B)
    expected = np.exp(-((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))
    np.testing.assert_allclose(prog["G"], expected)


def test_gaussian_kernel_with_variance():
    rng = np.random.default_rng(4)
    X = rng.uniform(-1, 1, (4, 3))
    prog = tl.Program("Var = 2\nK[i, i'] = exp(-(X[i,j] - X[i',j])^2 / Var)\n")
    prog.run(X=X)
    expected = np.exp(-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) / 2)
    np.testing.assert_allclose(prog["K"], expected)


def test_polynomial_kernel():
    rng = np.random.default_rng(5)
    X = rng.uniform(-1, 1, (4, 3))
    prog = tl.Program("K[i, i'] = (X[i,j] X[i',j])^3\n")
    prog.run(X=X)
    np.testing.assert_allclose(prog["K"], (X @ X.T) ** 3)


def test_sum_inside_function_argument():
    _, _, A, _ = _data(6)
    B = np.arange(3.0)
    prog = tl.Program("Y = sig(A[i] + B[i])\n")
    prog.run(A=A, B=B)
    np.testing.assert_allclose(prog["Y"], 1 / (1 + np.exp(-(A + B).sum())))


def test_kernel_machine_bias_added_once():
    rng = np.random.default_rng(7)
    A, Yv, K = rng.uniform(-1, 1, 4), rng.uniform(-1, 1, 4), rng.uniform(-1, 1, (3, 4))
    prog = tl.Program("B = 0.25\nOut[q] = sig(A[i] Yv[i] K[q,i] + B)\n")
    prog.run(A=A, Yv=Yv, K=K)
    np.testing.assert_allclose(prog["Out"], 1 / (1 + np.exp(-(K @ (A * Yv) + 0.25))))


def test_squared_error_loss_summed_over_examples():
    rng = np.random.default_rng(8)
    Y, X = rng.uniform(-1, 1, 5), rng.uniform(-1, 1, 5)
    prog = tl.Program("Loss = (Y[e] - X[e])^2\n")
    prog.run(Y=Y, X=X)
    np.testing.assert_allclose(prog["Loss"], ((Y - X) ** 2).sum())


def test_lone_read_under_a_power_is_summed_first():
    A, _, _, _ = _data(9)
    prog = tl.Program("Y[i] = A[i,j]^2\n")
    prog.run(A=A)
    np.testing.assert_allclose(prog["Y"], A.sum(1) ** 2)


def test_division_is_a_product():
    A, _, B, _ = _data(10)
    B = B + 2.0
    prog = tl.Program("Y[i] = A[i,j] / B[i]\n")
    prog.run(A=A, B=B)
    np.testing.assert_allclose(prog["Y"], A.sum(1) / B)
