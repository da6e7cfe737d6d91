"""The worked examples of LANGUAGE.md section 7 (examples/*.tl), checked against independent references.

Each example is run twice: as it is, against a reference computed here with numpy (or Python sets,
networkx, brute-force enumeration) from the example's own data, read from the file by this test (the
literals are parsed with `ast.literal_eval`, .npy files with numpy); and with its data statements removed
and random data from a seeded RNG passed to `prog.run(...)`, so the equations are tested beyond the literals.
Nothing is compared against the implementation itself.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from reference_algorithms import lnorm, relu, softmax

import tensorlogic as tl
from tensorlogic.cli import main as cli_main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ALL_EXAMPLES = sorted(EXAMPLES.glob("*.tl"))
REQUIRED = ["family_tree", "aunt", "perceptron", "mlp", "rnn", "cnn", "gnn", "attention", "transformer",
            "kernel_machine", "bayesian_network", "embedding_reasoning"]


# ---------------------------------------------------------------------------------------------- helpers

def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def step(x):
    return (np.asarray(x) > 0).astype(float)


@dataclass
class Stmt:
    first: int  # first and last line (0-based) of the statement in the file
    last: int
    text: str  # without comments
    kind: str  # "data" | "facts" | "tensor" | "domain" | "query" | "other"
    names: list[str] = field(default_factory=list)
    value: object = None


_NAME = r"[A-Z][A-Za-z0-9_]*'*"
_FACT = rf"({_NAME})\(([^()<=]*)\)\s*\.?"


def _const(s: str):
    s = s.strip().strip('"')
    return int(s) if re.fullmatch(r"-?\d+", s) else s


def _classify(first: int, last: int, text: str) -> Stmt:
    t = text.strip()
    st = Stmt(first, last, t, "other")
    if t.endswith("?"):
        st.kind = "query"
    elif m := re.match(rf"tensor\s+({_NAME})", t):
        st.kind, st.names = "tensor", [m.group(1)]
    elif m := re.match(rf"domain\s+({_NAME})\s*:(.*)$", t, re.S):
        st.kind, st.names, st.value = "domain", [m.group(1)], [_const(s) for s in m.group(2).split(",")]
    elif re.fullmatch(rf"(\s*{_FACT})+", t):
        facts = re.findall(_FACT, t)
        st.kind, st.names = "facts", sorted({n for n, _ in facts})
        st.value = [(n, tuple(_const(a) for a in args.split(","))) for n, args in facts]
    elif m := re.fullmatch(rf"({_NAME})\s*=\s*(.+)", t, re.S):
        try:
            value = ast.literal_eval(m.group(2).strip())
        except (ValueError, SyntaxError):
            return st
        st.kind, st.names, st.value = "data", [m.group(1)], value
    return st


class Example:
    """An example file split into statements, with its data readable by numpy."""

    def __init__(self, name: str):
        self.name = name
        self.path = EXAMPLES / f"{name}.tl"
        self.lines = self.path.read_text().splitlines()
        self.stmts: list[Stmt] = []
        buf, start, depth = "", 0, 0
        for k, line in enumerate(self.lines):
            code = line.split("#", 1)[0]
            if not buf.strip():
                buf, start = "", k
            buf += code + "\n"
            depth += code.count("[") + code.count("(") - code.count("]") - code.count(")")
            if depth == 0:
                if buf.strip():
                    self.stmts.append(_classify(start, k, buf))
                buf = ""

    def data(self, name: str) -> np.ndarray:
        """A tensor given as a literal or a .npy file."""
        for st in self.stmts:
            if st.kind == "data" and st.names == [name]:
                if isinstance(st.value, str):
                    return np.load(EXAMPLES / st.value)
                return np.array(st.value, dtype=float)
        raise KeyError(name)

    def scalar(self, name: str) -> float:
        return float(self.data(name))

    def int(self, name: str) -> int:
        v = self.scalar(name)
        assert v == int(v)
        return int(v)

    def facts(self, name: str) -> list[tuple]:
        return [args for st in self.stmts if st.kind == "facts" for n, args in st.value if n == name]

    def domain(self, name: str) -> list:
        return next(st.value for st in self.stmts if st.kind == "domain" and st.names == [name])

    def source(self, drop: tuple[str, ...] = (), drop_queries: bool = True, drop_domains: bool = False,
               replace: dict[str, str] | None = None, extra: str = "") -> str:
        """The file's text without the data, facts and declarations of `drop` (and its queries).

        Dropped statements become blank lines, so line numbers in messages still match the file.
        `replace` substitutes whole statements (keyed by their text without comments).
        """
        lines = list(self.lines)
        for st in self.stmts:
            gone = (st.kind in ("data", "facts", "tensor") and st.names and all(n in drop for n in st.names)) \
                or (st.kind == "query" and drop_queries) or (st.kind == "domain" and drop_domains)
            if gone:
                lines[st.first:st.last + 1] = [""] * (st.last - st.first + 1)
            elif replace and st.text in replace:
                lines[st.first:st.last + 1] = [replace[st.text]] + [""] * (st.last - st.first)
        return "\n".join(lines) + "\n" + extra

    def program(self, drop: tuple[str, ...] = (), **kwargs) -> tl.Program:
        return tl.Program(self.source(drop, **kwargs), file=str(self.path), base_dir=EXAMPLES)


def run_example(name: str) -> tl.Program:
    prog = tl.load(EXAMPLES / f"{name}.tl")
    prog.run()
    return prog


def pairs(answer) -> set[tuple]:
    return {tuple(row) for row in answer}


# ---------------------------------------------------------------------------------------------- all examples

def test_every_required_example_exists():
    names = {p.stem for p in ALL_EXAMPLES}
    assert set(REQUIRED) <= names, sorted(set(REQUIRED) - names)


def _tl_command() -> list[str]:
    exe = Path(sys.executable).parent / "tl"
    if exe.exists():
        return [str(exe)]
    if shutil.which("tl"):
        return [shutil.which("tl")]
    return [sys.executable, "-c", "import sys; from tensorlogic.cli import main; sys.exit(main())"]


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_from_the_cli(path: Path):
    r = subprocess.run([*_tl_command(), "run", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "error" not in r.stderr and "warning" not in r.stderr, r.stderr
    assert r.stdout.strip()


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.stem)
def test_example_json_answers_every_query(path: Path, capsys):
    assert cli_main(["run", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    answers = [json.loads(line) for line in out.splitlines() if line.strip()]
    n_queries = sum(st.kind == "query" for st in Example(path.stem).stmts)
    assert n_queries > 0 and len(answers) == n_queries


@pytest.mark.parametrize("path", ALL_EXAMPLES, ids=lambda p: p.stem)
def test_example_starts_with_a_header_comment(path: Path):
    assert path.read_text().startswith("# ")


# ---------------------------------------------------------------------------------------------- Datalog

def closure(edges: set[tuple]) -> set[tuple]:
    g = nx.DiGraph()
    g.add_edges_from(edges)
    return set(nx.transitive_closure(g, reflexive=False).edges())


def aunts(sister: set[tuple], parent: set[tuple]) -> set[tuple]:
    return {(x, z) for x, y in sister for y2, z in parent if y == y2}


def test_family_tree():
    ex = Example("family_tree")
    parent, sister = set(ex.facts("Parent")), set(ex.facts("Sister"))
    prog = run_example("family_tree")
    anc = closure(parent)
    assert pairs(prog.query("Ancestor(x, y)")) == anc
    assert pairs(prog.query("Ancestor(Alice, x)")) == {(y,) for x, y in anc if x == "Alice"}
    assert pairs(prog.query("Ancestor(x, Eve)")) == {(x,) for x, y in anc if y == "Eve"}
    assert pairs(prog.query("Aunt(x, y)")) == aunts(sister, parent)
    assert prog.query("Ancestor(Eve, Alice)") is (("Eve", "Alice") in anc)


@pytest.mark.parametrize("seed", range(3))
def test_family_tree_random(seed: int):
    rng = np.random.default_rng(seed)
    people = [f"P{k}" for k in range(14)]
    parent = {(people[a], people[b]) for a, b in rng.integers(0, len(people), size=(20, 2)) if a != b}
    sister = {(people[a], people[b]) for a, b in rng.integers(0, len(people), size=(6, 2)) if a != b}
    prog = Example("family_tree").program(drop=("Parent", "Sister"))
    prog.run(Parent=sorted(parent), Sister=sorted(sister))
    assert pairs(prog.query("Ancestor(x, y)")) == closure(parent)  # cycles give Ancestor(x, x)
    assert pairs(prog.query("Aunt(x, y)")) == aunts(sister, parent)


def test_aunt():
    ex = Example("aunt")
    parent, sister = set(ex.facts("Parent")), set(ex.facts("Sister"))
    expected = aunts(sister, parent)
    assert len(expected) >= 3
    prog = run_example("aunt")
    assert pairs(prog.query("Aunt(x, z)")) == expected
    assert pairs(prog.query("AuntT(x, z)")) == expected
    assert pairs(prog.query("Aunt(x, Frank)")) == {(x,) for x, z in expected if z == "Frank"}
    assert prog.query("Aunt(Carol, Dave)") is (("Carol", "Dave") in expected)
    assert prog.query("Aunt(Carol, Frank)") is (("Carol", "Frank") in expected)


@pytest.mark.parametrize("seed", range(3))
def test_aunt_random(seed: int):
    rng = np.random.default_rng(seed)
    people = [f"Q{k}" for k in range(12)]
    parent = {(people[a], people[b]) for a, b in rng.integers(0, len(people), size=(18, 2)) if a != b}
    sister = {(people[a], people[b]) for a, b in rng.integers(0, len(people), size=(10, 2)) if a != b}
    prog = Example("aunt").program(drop=("Parent", "Sister"))
    prog.run(Parent=sorted(parent), Sister=sorted(sister))
    assert pairs(prog.query("Aunt(x, z)")) == aunts(sister, parent)
    assert pairs(prog.query("AuntT(x, z)")) == aunts(sister, parent)


# ---------------------------------------------------------------------------------------------- perceptron, MLP, RNN

def perceptron_ref(W, X, XS, B):
    return {"Act": W @ X + B, "Y": step(W @ X + B), "YS": step(XS @ W + B), "YE": step(W * X)}


def check_perceptron(prog, ref):
    assert prog["Act"] == pytest.approx(ref["Act"])
    for name in ("Y", "YS", "YE"):
        np.testing.assert_array_equal(prog[name], ref[name], err_msg=name)


def test_perceptron():
    ex = Example("perceptron")
    ref = perceptron_ref(ex.data("W"), ex.data("X"), ex.data("XS"), ex.scalar("B"))
    assert 0 < ref["YS"].sum() < len(ref["YS"])  # the literals show both classes
    prog = run_example("perceptron")
    check_perceptron(prog, ref)
    assert prog.query("Y") == ref["Y"]


@pytest.mark.parametrize("seed", range(3))
def test_perceptron_random(seed: int):
    rng = np.random.default_rng(seed)
    W, X = rng.normal(size=7), rng.integers(0, 2, size=7).astype(float)
    XS, B = rng.integers(0, 2, size=(9, 7)).astype(float), float(rng.normal())
    prog = Example("perceptron").program(drop=("W", "X", "XS", "B"))
    prog.run(W=W, X=X, XS=XS, B=B)
    check_perceptron(prog, perceptron_ref(W, X, XS, B))


def mlp_ref(W, x, L):
    layers = [np.asarray(x, dtype=float)]
    for i in range(1, L + 1):
        out = np.zeros(W.shape[1])
        for j in range(W.shape[1]):
            out[j] = sig(sum(W[i, j, k] * layers[-1][k] for k in range(W.shape[2])))
        layers.append(out)
    return np.array(layers)


def test_mlp():
    ex = Example("mlp")
    ref = mlp_ref(ex.data("W"), ex.data("Input"), ex.int("L"))
    prog = run_example("mlp")
    np.testing.assert_allclose(prog["X"], ref, rtol=1e-12)
    np.testing.assert_allclose(prog["Out"], ref[-1], rtol=1e-12)
    np.testing.assert_allclose(prog.query("Out[j]"), ref[-1], rtol=1e-12)


@pytest.mark.parametrize(("seed", "layers", "units"), [(0, 3, 4), (1, 5, 2), (2, 1, 6)])
def test_mlp_random(seed: int, layers: int, units: int):
    rng = np.random.default_rng(seed)
    W, x = rng.normal(size=(layers + 1, units, units)), rng.normal(size=units)
    prog = Example("mlp").program(drop=("W", "Input", "L"))
    prog.run(W=W, Input=x, L=layers)
    ref = mlp_ref(W, x, layers)
    np.testing.assert_allclose(prog["X"], ref, rtol=1e-12)
    np.testing.assert_allclose(prog["Out"], ref[-1], rtol=1e-12)


def test_mlp_input_layer_given_as_data():
    # The paper's form: layer 0 of X is data, the equation computes layers 1..L.
    rng = np.random.default_rng(5)
    W, x = rng.normal(size=(4, 3, 3)), rng.normal(size=3)
    X0 = np.zeros((4, 3))
    X0[0] = x
    prog = tl.Program("X[i, j] = sig(W[i, j, k] X[i-1, k])\n")
    prog.run(W=W, X=X0)
    np.testing.assert_allclose(prog["X"], mlp_ref(W, x, 3), rtol=1e-9)


def test_mlp_scalar_input_as_numpy_array():
    rng = np.random.default_rng(6)
    W, x = rng.normal(size=(4, 3, 3)), rng.normal(size=3)
    prog = Example("mlp").program(drop=("W", "Input", "L"))
    prog.run(W=W, Input=x, L=np.array(3))
    np.testing.assert_allclose(prog["Out"], mlp_ref(W, x, 3)[-1], rtol=1e-12)


def rnn_ref(W, V, U, x0, w_out):
    x = np.asarray(x0, dtype=float)
    for t in range(U.shape[1]):
        x = sig(W @ x + V @ U[:, t])
    return x, sig(w_out @ x)


def test_rnn():
    ex = Example("rnn")
    U = ex.data("U")
    assert ex.int("T") == U.shape[1]
    h, y = rnn_ref(ex.data("W"), ex.data("V"), U, ex.data("X"), ex.data("WOut"))
    prog = run_example("rnn")
    np.testing.assert_allclose(prog["H"], h, rtol=1e-12)
    np.testing.assert_allclose(prog["X"], h, rtol=1e-12)  # the state tensor holds the last state
    assert prog["Y"] == pytest.approx(y, rel=1e-12)


@pytest.mark.parametrize(("seed", "units", "steps"), [(0, 4, 6), (1, 2, 1), (2, 5, 10)])
def test_rnn_random(seed: int, units: int, steps: int):
    rng = np.random.default_rng(seed)
    W, V = rng.normal(size=(units, units)), rng.normal(size=(units, units))
    U, x0, w_out = rng.normal(size=(units, steps)), rng.normal(size=units), rng.normal(size=units)
    prog = Example("rnn").program(drop=("W", "V", "U", "X", "T", "WOut"))
    prog.run(W=W, V=V, U=U, X=x0, T=steps, WOut=w_out)
    h, y = rnn_ref(W, V, U, x0, w_out)
    np.testing.assert_allclose(prog["H"], h, rtol=1e-12)
    assert prog["Y"] == pytest.approx(y, rel=1e-12)


def test_rnn_query_state_tensor():
    # `X?` on the state tensor answers its last state
    ex = Example("rnn")
    h, _ = rnn_ref(ex.data("W"), ex.data("V"), ex.data("U"), ex.data("X"), ex.data("WOut"))
    prog = tl.load(ex.path)
    answers = {a.query: a.value for a in prog.run()}
    np.testing.assert_allclose(answers["X"], h, rtol=1e-12)
    np.testing.assert_allclose(answers["H"], h, rtol=1e-12)


def test_api_query_bare_name():
    ex = Example("rnn")
    h, _ = rnn_ref(ex.data("W"), ex.data("V"), ex.data("U"), ex.data("X"), ex.data("WOut"))
    prog = run_example("rnn")
    np.testing.assert_allclose(prog.query("H"), h, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- CNN and pooling

def conv_ref(image, filt, out_shape):
    """Features[x,y] = relu(sum Filter[dx,dy,ch] Image[x+dx,y+dy,ch]), zero outside the image."""
    out = np.zeros(out_shape)
    H, W, _ = image.shape
    for x in range(out_shape[0]):
        for y in range(out_shape[1]):
            s = 0.0
            for dx, dy, ch in itertools.product(*map(range, filt.shape)):
                if x + dx < H and y + dy < W:
                    s += filt[dx, dy, ch] * image[x + dx, y + dy, ch]
            out[x, y] = max(s, 0.0)
    return out


def pool_ref(f, S, op):
    n0, n1 = -(-f.shape[0] // S), -(-f.shape[1] // S)
    out = np.zeros((n0, n1))
    for a in range(n0):
        for b in range(n1):
            out[a, b] = op(f[a * S:(a + 1) * S, b * S:(b + 1) * S])
    return out


def check_cnn(prog, image, filt, S):
    H, W, _ = image.shape
    feats = conv_ref(image, filt, (H, W))
    valid = conv_ref(image, filt, (H - filt.shape[0] + 1, W - filt.shape[1] + 1))
    np.testing.assert_allclose(prog["Features"], feats, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prog["ValidFeatures"], valid, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prog["Pooled"], pool_ref(feats, S, np.sum), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prog["MaxPooled"], pool_ref(feats, S, np.max), rtol=1e-12, atol=1e-12)


def test_cnn():
    ex = Example("cnn")
    image, filt, S = ex.data("Image"), ex.data("Filter"), ex.int("S")
    assert next(st for st in ex.stmts if st.kind == "tensor").text == \
        f"tensor ValidFeatures[{image.shape[0] - filt.shape[0] + 1}, {image.shape[1] - filt.shape[1] + 1}]"
    check_cnn(run_example("cnn"), image, filt, S)


@pytest.mark.parametrize(("seed", "S"), [(0, 2), (1, 3), (2, 2)])
def test_cnn_random(seed: int, S: int):
    # a 7x7 image with 3 channels and a 3x3 filter: valid output 5x5; the pooled maps have a partial last block
    rng = np.random.default_rng(seed)
    image, filt = rng.normal(size=(7, 7, 3)), rng.normal(size=(3, 3, 3))
    prog = Example("cnn").program(drop=("Image", "Filter", "S"))
    prog.run(Image=image, Filter=filt, S=S)
    check_cnn(prog, image, filt, S)


# ---------------------------------------------------------------------------------------------- GNN

def gnn_ref(edges, X, WP, w_agg, w_self, w_out, L):
    n = X.shape[0]
    A = np.zeros((n, n))
    for a, b in edges:
        A[a, b] = 1.0
    emb = [X]
    for layer in range(L):
        Z = relu(emb[-1] @ WP[layer].T)  # Z[n,d'] = relu(sum_d WP[l,d',d] Emb[n,l,d])
        agg = A @ Z  # Agg[n,d] = sum_n' Neig(n,n') Z[n',d]
        emb.append(relu(w_agg * agg + w_self * emb[-1]))
    final = emb[L]
    return {"Final": final, "YNode": sig(final @ w_out), "YEdge": sig(final @ final.T),
            "YGraph": sig((final @ w_out).sum()), "Emb": np.stack(emb, axis=1)}


def check_gnn(prog, ref):
    for name in ("Final", "YNode", "YEdge", "YGraph"):
        np.testing.assert_allclose(prog[name], ref[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_gnn():
    ex = Example("gnn")
    L, WP = ex.int("L"), ex.data("WP")
    assert WP.shape[0] == L  # one matrix per layer (Table 1)
    ref = gnn_ref(ex.facts("Neig"), ex.data("X"), WP, ex.scalar("WAgg"), ex.scalar("WSelf"),
                  ex.data("WOut"), L)
    prog = run_example("gnn")
    check_gnn(prog, ref)
    assert prog["Emb"].shape[1] == L + 1  # layers 0..L
    np.testing.assert_allclose(prog["Emb"], ref["Emb"], rtol=1e-10)


def random_graph(rng, n, m):
    edges = set()
    for a, b in rng.integers(0, n, size=(m, 2)):
        if a != b:
            edges |= {(int(a), int(b)), (int(b), int(a))}
    return sorted(edges)


@pytest.mark.parametrize(("seed", "nodes", "dim", "L"), [(0, 7, 4, 3), (1, 5, 2, 1), (2, 9, 3, 2)])
def test_gnn_random(seed: int, nodes: int, dim: int, L: int):
    rng = np.random.default_rng(seed)
    edges = random_graph(rng, nodes, 2 * nodes)
    X, WP = rng.normal(size=(nodes, dim)), rng.normal(scale=0.7, size=(L, dim, dim))
    w_agg, w_self, w_out = float(rng.uniform(0.2, 1)), float(rng.uniform(0.2, 1)), rng.normal(size=dim)
    prog = Example("gnn").program(drop=("Neig", "X", "WP", "WAgg", "WSelf", "WOut", "L"))
    prog.run(Neig=edges, X=X, WP=WP, WAgg=w_agg, WSelf=w_self, WOut=w_out, L=L)
    check_gnn(prog, gnn_ref(edges, X, WP, w_agg, w_self, w_out, L))


def test_gnn_with_exactly_L_layer_matrices():
    # Table 1 exactly: WP has one matrix per layer, Emb gets layers 0..L.
    rng = np.random.default_rng(3)
    nodes, dim, L = 6, 3, 2
    edges = random_graph(rng, nodes, 8)
    X, WP = rng.normal(size=(nodes, dim)), rng.normal(size=(L, dim, dim))
    prog = Example("gnn").program(drop=("Neig", "X", "WP", "WAgg", "WSelf", "WOut", "L"))
    prog.run(Neig=edges, X=X, WP=WP, WAgg=0.5, WSelf=0.8, WOut=np.ones(dim), L=L)
    check_gnn(prog, gnn_ref(edges, X, WP, 0.5, 0.8, np.ones(dim), L))


# ---------------------------------------------------------------------------------------------- attention, transformer

def attention_ref(X, WQ, WK, WV, Dk):
    q, k, v = X @ WQ.T, X @ WK.T, X @ WV.T
    comp = softmax(q @ k.T / np.sqrt(Dk), axis=1)
    return comp, comp @ v


def check_attention(prog, X, WQ, WK, WV, MQ, MK, MV, WO, Dk):
    comp, attn = attention_ref(X, WQ, WK, WV, Dk)
    np.testing.assert_allclose(prog["Comp"], comp, rtol=1e-10)
    np.testing.assert_allclose(prog["Comp"].sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(prog["Attn"], attn, rtol=1e-10)
    heads = [attention_ref(X, MQ[h], MK[h], MV[h], Dk) for h in range(MQ.shape[0])]
    np.testing.assert_allclose(prog["MComp"], np.stack([c for c, _ in heads]), rtol=1e-10)
    merge = np.concatenate([a for _, a in heads], axis=1)  # Merge[p, h*|dv| + dv]
    np.testing.assert_allclose(prog["Merge"], merge, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(prog["Out"], merge @ WO.T, rtol=1e-10, atol=1e-14)


def test_attention():
    ex = Example("attention")
    names = ("X", "WQ", "WK", "WV", "MQ", "MK", "MV", "WO")
    check_attention(run_example("attention"), *(ex.data(n) for n in names), ex.scalar("Dk"))


@pytest.mark.parametrize(("seed", "positions", "dim", "heads", "dk", "dv"), [(0, 5, 4, 3, 3, 2), (1, 2, 6, 1, 4, 5)])
def test_attention_random(seed, positions, dim, heads, dk, dv):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(positions, dim))
    WQ, WK, WV = rng.normal(size=(dk, dim)), rng.normal(size=(dk, dim)), rng.normal(size=(dv, dim))
    MQ, MK = rng.normal(size=(heads, dk, dim)), rng.normal(size=(heads, dk, dim))
    MV, WO = rng.normal(size=(heads, dv, dim)), rng.normal(size=(dim, heads * dv))
    prog = Example("attention").program(drop=("X", "WQ", "WK", "WV", "MQ", "MK", "MV", "WO", "Dk"))
    prog.run(X=X, WQ=WQ, WK=WK, WV=WV, MQ=MQ, MK=MK, MV=MV, WO=WO, Dk=dk)
    check_attention(prog, X, WQ, WK, WV, MQ, MK, MV, WO, dk)


def transformer_ref(tokens, w, B, base=10000.0):
    P, D = len(tokens), w["Emb"].shape[1]
    pe = np.zeros((P, D))
    for p in range(P):
        for d in range(D):
            pe[p, d] = np.sin(p / base ** (d / D)) if d % 2 == 0 else np.cos(p / base ** ((d - 1) / D))
    s = w["Emb"][tokens] + pe
    Dk = w["WQ"].shape[2]
    for b in range(B):
        q = np.einsum("hkd,pd->hpk", w["WQ"][b], s)
        k = np.einsum("hkd,pd->hpk", w["WK"][b], s)
        v = np.einsum("hkd,pd->hpk", w["WV"][b], s)
        comp = softmax(np.einsum("hpk,hqk->hpq", q, k) / np.sqrt(Dk), axis=-1)
        attn = np.einsum("hpq,hqv->hpv", comp, v)
        merge = attn.transpose(1, 0, 2).reshape(P, -1)
        resid = lnorm(merge @ w["WS"][b].T + s)
        hidden = relu(resid @ w["W1"][b].T)
        s = lnorm(hidden @ w["W2"][b].T + resid)
    return softmax(s @ w["WO"].T, axis=-1)


WEIGHTS = ("Emb", "WQ", "WK", "WV", "WS", "W1", "W2", "WO")


def test_transformer():
    ex = Example("transformer")
    facts = sorted(ex.facts("X"))
    assert [p for p, _ in facts] == list(range(len(facts)))  # one token per position
    tokens = [t for _, t in facts]
    w = {n: ex.data(n) for n in WEIGHTS}
    B = ex.int("B")
    assert ex.int("De") == w["Emb"].shape[1] and ex.int("Dk") == w["WQ"].shape[2]
    assert all(w[n].shape[0] == B for n in ("WQ", "WK", "WV", "WS", "W1", "W2"))  # one block of weights each
    ref = transformer_ref(tokens, w, B, ex.scalar("Base"))
    prog = run_example("transformer")
    assert prog["Stream"].shape[0] == B + 1  # the inputs of blocks 0..B-1 and the output of the last block
    np.testing.assert_allclose(prog["Y"], ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(prog["Y"].sum(axis=1), 1.0)
    np.testing.assert_allclose(prog.query("Y[p, t]"), ref, rtol=1e-9, atol=1e-12)


def random_transformer(rng, vocab, dim, heads, dk, hidden, blocks):
    return {"Emb": rng.normal(size=(vocab, dim)),
            "WQ": rng.normal(scale=0.6, size=(blocks, heads, dk, dim)),
            "WK": rng.normal(scale=0.6, size=(blocks, heads, dk, dim)),
            "WV": rng.normal(scale=0.6, size=(blocks, heads, dk, dim)),
            "WS": rng.normal(scale=0.6, size=(blocks, dim, heads * dk)),
            "W1": rng.normal(scale=0.6, size=(blocks, hidden, dim)),
            "W2": rng.normal(scale=0.6, size=(blocks, dim, hidden)),
            "WO": rng.normal(size=(vocab, dim))}


@pytest.mark.parametrize(("seed", "positions", "vocab", "heads", "dk", "hidden", "B"),
                         [(0, 6, 7, 2, 3, 5, 3), (1, 3, 4, 1, 2, 8, 1), (2, 5, 9, 3, 2, 4, 2)])
def test_transformer_random(seed, positions, vocab, heads, dk, hidden, B):
    rng = np.random.default_rng(seed)
    dim = 4  # Even(d)/Odd(d) are facts for d < 4 in the example
    w = random_transformer(rng, vocab, dim, heads, dk, hidden, B)
    tokens = [int(t) for t in rng.integers(0, vocab, size=positions)]
    prog = Example("transformer").program(drop=("X", *WEIGHTS, "Dk", "B"))
    prog.run(X=[(p, t) for p, t in enumerate(tokens)], Dk=dk, B=B, **w)
    np.testing.assert_allclose(prog["Y"], transformer_ref(tokens, w, B), rtol=1e-9, atol=1e-12)


def test_transformer_with_exactly_B_blocks():
    rng = np.random.default_rng(4)
    B = 2
    w = random_transformer(rng, 5, 4, 2, 2, 6, B)
    tokens = [3, 0, 2]
    prog = Example("transformer").program(drop=("X", *WEIGHTS, "Dk", "B"))
    prog.run(X=[(p, t) for p, t in enumerate(tokens)], Dk=2, B=B, **w)
    np.testing.assert_allclose(prog["Y"], transformer_ref(tokens, w, B), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------- kernel machine

def kernel_ref(X, label, A, B, N, var, XQ):
    kpoly = (X @ X.T) ** N
    kgauss = np.exp(-((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) / var)
    kqpoly = (XQ @ X.T) ** N
    kqgauss = np.exp(-((XQ[:, None, :] - X[None, :, :]) ** 2).sum(-1) / var)
    sp, sg = kqpoly @ (A * label) + B, kqgauss @ (A * label) + B
    return {"KPoly": kpoly, "KGauss": kgauss, "ScorePoly": sp, "ScoreGauss": sg, "YPoly": step(sp),
            "YGauss": step(sg)}


def check_kernel(prog, ref):
    for name, value in ref.items():
        np.testing.assert_allclose(prog[name], value, rtol=1e-10, atol=1e-12, err_msg=name)


def test_kernel_machine():
    ex = Example("kernel_machine")
    ref = kernel_ref(ex.data("X"), ex.data("Label"), ex.data("A"), ex.scalar("B"), ex.int("N"),
                     ex.scalar("Var"), ex.data("XQ"))
    assert 0 < ref["YPoly"].sum() < len(ref["YPoly"])
    check_kernel(run_example("kernel_machine"), ref)


@pytest.mark.parametrize(("seed", "N"), [(0, 2), (1, 3), (2, 1)])
def test_kernel_machine_random(seed: int, N: int):
    rng = np.random.default_rng(seed)
    X, XQ = rng.normal(size=(8, 3)), rng.normal(size=(6, 3))
    label, A = rng.choice([-1.0, 1.0], size=8), rng.uniform(0.1, 2, size=8)
    B, var = float(rng.normal()), float(rng.uniform(0.5, 3))
    prog = Example("kernel_machine").program(drop=("X", "Label", "A", "B", "N", "Var", "XQ"))
    prog.run(X=X, Label=label, A=A, B=B, N=N, Var=var, XQ=XQ)
    check_kernel(prog, kernel_ref(X, label, A, B, N, var, XQ))


# ---------------------------------------------------------------------------------------------- Bayesian network

def bayes_ref(PC, CPTS, CPTR, CPTW, ev_w, ev_r):
    """Every marginal and conditional by brute-force enumeration of the joint distribution."""
    joint = {}
    for c, s, r, w in itertools.product(*(range(n) for n in (len(PC), CPTS.shape[0], CPTR.shape[0],
                                                                CPTW.shape[0]))):
        joint[c, s, r, w] = PC[c] * CPTS[s, c] * CPTR[r, c] * CPTW[w, s, r]

    def prob(keep, cond=lambda c, s, r, w: True):
        out = {}
        for (c, s, r, w), p in joint.items():
            if cond(c, s, r, w):
                key = keep(c, s, r, w)
                out[key] = out.get(key, 0.0) + p
        return np.array([out.get(k, 0.0) for k in sorted(out)])

    w_obs, r_obs = int(np.argmax(ev_w)), int(np.argmax(ev_r))
    e_w = lambda c, s, r, w: w == w_obs  # noqa: E731
    e_wr = lambda c, s, r, w: w == w_obs and r == r_obs  # noqa: E731
    return {
        "PS": prob(lambda c, s, r, w: s), "PR": prob(lambda c, s, r, w: r), "PW": prob(lambda c, s, r, w: w),
        "Total": sum(joint.values()),
        "PRGivenW": prob(lambda c, s, r, w: r, e_w) / prob(lambda c, s, r, w: 0, e_w)[0],
        "PSGivenW": prob(lambda c, s, r, w: s, e_w) / prob(lambda c, s, r, w: 0, e_w)[0],
        "PSGivenWR": prob(lambda c, s, r, w: s, e_wr) / prob(lambda c, s, r, w: 0, e_wr)[0],
        "PCGivenW": prob(lambda c, s, r, w: c, e_w) / prob(lambda c, s, r, w: 0, e_w)[0],
    }


def check_bayes(prog, ref):
    for name, value in ref.items():
        np.testing.assert_allclose(prog[name], value, rtol=1e-10, err_msg=name)


def test_bayesian_network():
    ex = Example("bayesian_network")
    cpts = [ex.data(n) for n in ("PC", "CPTS", "CPTR", "CPTW")]
    for cpt in cpts:  # each is a distribution over its first index
        np.testing.assert_allclose(cpt.sum(axis=0), 1.0)
    ref = bayes_ref(*cpts, ex.data("EvW"), ex.data("EvR"))
    prog = run_example("bayesian_network")
    check_bayes(prog, ref)
    assert ref["PSGivenWR"][1] < ref["PSGivenW"][1]  # explaining away
    assert prog.query("Total") == pytest.approx(1.0)


@pytest.mark.parametrize(("seed", "sizes", "w_obs", "r_obs"),
                         [(0, (2, 2, 2, 2), 1, 1), (1, (3, 2, 4, 3), 0, 2), (2, (2, 3, 2, 2), 1, 0)])
def test_bayesian_network_random(seed, sizes, w_obs, r_obs):
    rng = np.random.default_rng(seed)
    nc, ns, nr, nw = sizes

    def cpt(*shape):
        t = rng.uniform(0.05, 1, size=shape)
        return t / t.sum(axis=0, keepdims=True)

    PC, CPTS, CPTR, CPTW = cpt(nc), cpt(ns, nc), cpt(nr, nc), cpt(nw, ns, nr)
    ev_w, ev_r = np.eye(nw)[w_obs], np.eye(nr)[r_obs]
    prog = Example("bayesian_network").program(drop=("PC", "CPTS", "CPTR", "CPTW", "EvW", "EvR"))
    prog.run(PC=PC, CPTS=CPTS, CPTR=CPTR, CPTW=CPTW, EvW=ev_w, EvR=ev_r)
    check_bayes(prog, bayes_ref(PC, CPTS, CPTR, CPTW, ev_w, ev_r))


# ---------------------------------------------------------------------------------------------- embedding space

def embedding_ref(E, R, half=0.5, T=0.1):
    """D = sum over R(x,y) of (e_a . e_x)(e_b . e_y); DGP the same through the join R R."""
    G = E @ E.T
    D = G @ R @ G
    DGP = G @ R @ G @ R @ G
    return {"D": D, "DGP": DGP, "Deduced": step(DGP - half), "Graded": sig((DGP - half) / T)}


def test_embedding_reasoning():
    ex = Example("embedding_reasoning")
    people = ex.domain("Person")
    E = ex.data("Emb")
    assert E.shape[0] == len(people)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1.0)
    R = np.zeros((len(people), len(people)))
    for x, y in ex.facts("Parent"):
        R[people.index(x), people.index(y)] = 1.0
    ref = embedding_ref(E, R, ex.scalar("Half"), ex.scalar("T"))
    prog = run_example("embedding_reasoning")
    for name, value in ref.items():
        np.testing.assert_allclose(prog[name], value, rtol=1e-9, atol=1e-12, err_msg=name)
    # with these embeddings the deductive answers are exactly the grandparent relation
    np.testing.assert_array_equal(prog["Deduced"], step(R @ R))
    a, b = people.index("Alice"), people.index("Bob")
    assert prog.query("D[Alice, Bob]") == pytest.approx(ref["D"][a, b])
    assert prog.query("D[Bob, Alice]") == pytest.approx(ref["D"][b, a])


def random_embedding_run(seed: int, dim: int, n: int = 20, m: int = 30):
    rng = np.random.default_rng(seed)
    E = rng.normal(size=(n, dim))
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    facts = sorted({(int(a), int(b)) for a, b in rng.integers(0, n, size=(m, 2))})
    R = np.zeros((n, n))
    for a, b in facts:
        R[a, b] = 1.0
    prog = Example("embedding_reasoning").program(drop=("Emb", "Parent"), drop_domains=True)
    prog.run(Emb=E, Parent=facts)
    return prog, E, R


def test_embedding_reasoning_statistics():
    seeds, dims = range(4), (64, 256, 1024)
    rms = {d: [] for d in dims}
    for seed in seeds:
        for dim in dims:
            prog, E, R = random_embedding_run(seed, dim)
            D, ref = prog["D"], embedding_ref(E, R)
            np.testing.assert_allclose(D, ref["D"], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(prog["DGP"], ref["DGP"], rtol=1e-9, atol=1e-12)
            rms[dim].append(np.sqrt(np.mean((D - R) ** 2)))
            if dim == 256:
                assert abs(D[R == 1].mean() - 1) < 0.1
                assert abs(D[R == 0].mean()) < 0.03
            if dim == 1024:
                truth = step(R @ R)
                assert np.mean(prog["Deduced"] == truth) > 0.98
                assert np.mean(prog["Deduced"][truth == 1]) > 0.9
    mean_rms = [np.mean(rms[d]) for d in dims]
    # the error falls as the dimension grows, like 1/sqrt(dim): halved for each 4x
    assert mean_rms[0] / mean_rms[1] > 1.6 and mean_rms[1] / mean_rms[2] > 1.6
    assert mean_rms[2] < 0.08
