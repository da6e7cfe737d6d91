"""Modules and reuse: `module` sections, `use FILE.MODULE(...) as Prefix`, and the stdlib modules.

Parsing, expansion, namespacing and errors (with carets and the use-site note) are checked on small
programs; every stdlib module is checked against an independent reference (torch layers and functions,
numpy, networkx) with the same weights.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import torch

import tensorlogic as tl
from tensorlogic.syntax import ast
from tensorlogic.syntax.diagnostics import TLError
from tensorlogic.syntax.imports import expand_imports
from tensorlogic.syntax.parser import parse

RNG = np.random.default_rng(7)

LAYERS = """\
# two modules of a user's file
module linear(X, Y, W, B, n, i, o)
tensor W[o, i] learnable
tensor B[o] learnable
Y[n, o] = W[o, i] X[n, i] + B[o]

module twice(X, Y, n, i, h, o)
use linear(X=X, Y=Mid, n=n, i=i, o=h) as First
use linear(X=Mid, Y=Y, n=n, i=h, o=o) as Second
"""


def program(tmp_path: Path, src: str, layers: str = LAYERS) -> tl.Program:
    (tmp_path / "layers.tl").write_text(layers)
    (tmp_path / "main.tl").write_text(src)
    return tl.Program(src, str(tmp_path / "main.tl"))


def error(tmp_path: Path, src: str, layers: str = LAYERS) -> str:
    with pytest.raises(TLError) as info:
        p = program(tmp_path, src, layers)
        p.run()
    return info.value.render()


# ---------------------------------------------------------------------------- syntax and expansion


def test_parse_module_header_and_use() -> None:
    prog = parse("module lin(X, Y, i)\nY[i] = X[i]\nuse nn.linear(X = H, i=h, o=16, Eps=-0.5) as L1\n"
                 "use nn.mlp(\n  X=A,\n  Y=B)\n")
    mod, _, use, use2 = prog.statements
    assert mod == ast.ModuleDecl("lin", ("X", "Y", "i"))
    assert isinstance(use, ast.Use) and use.module == "nn.linear" and use.alias == "L1"
    assert [(a.param, a.value) for a in use.args] == [("X", "H"), ("i", "h"), ("o", 16), ("Eps", -0.5)]
    assert use2.alias is None and [a.value for a in use2.args] == ["A", "B"]


def test_use_keyword_words_remain_index_names() -> None:
    """`use`, `module` and `as` are keywords only where a statement or a use expects them."""
    prog = tl.Program("X = [1.0, 2.0]\nY[as] = X[as]\nZ[use] = 2 X[use]\n")
    prog.run()
    assert np.allclose(prog["Z"], [2, 4])


def test_two_uses_are_namespaced_and_expand_to_plain_equations(tmp_path: Path) -> None:
    src = ("X = [[1.0, 2.0], [3.0, 4.0]]\n"
           "use layers.linear(X=X, Y=H, n=b, i=d, o=3) as Layer1\n"
           "use layers.linear(X=H, Y=Out, n=b, i=layer1_o, o=2) as Layer2\n")
    p = program(tmp_path, src)
    eqs = [s for s in p.ast.statements if isinstance(s, ast.Equation)]
    assert [ast.unparse_ref(e.lhs) + " = " + ast.unparse(e.rhs) for e in eqs] == [
        "H[b,layer1_o] = Layer1_W[layer1_o,d] X[b,d] + Layer1_B[layer1_o]",
        "Out[b,layer2_o] = Layer2_W[layer2_o,layer1_o] H[b,layer1_o] + Layer2_B[layer2_o]"]
    w1, b1, w2, b2 = (RNG.normal(size=s) for s in [(3, 2), (3,), (2, 3), (2,)])
    p.run(Layer1_W=w1, Layer1_B=b1, Layer2_W=w2, Layer2_B=b2)
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert np.allclose(p["Out"], (x @ w1.T + b1) @ w2.T + b2)
    # every expanded statement re-parses (gradient programs are printed source)
    for e in eqs:
        parse(ast.unparse_ref(e.lhs) + " = " + ast.unparse(e.rhs))


def test_nested_uses_compose_prefixes_and_train(tmp_path: Path) -> None:
    src = ("X = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]\nT = [[1.0], [2.0], [3.0]]\n"
           "use layers.twice(X=X, Y=Y, n=b, i=d, h=4, o=1) as Net\n"
           "Loss = (Y[b, o] - T[b, o])^2\n")
    p = program(tmp_path, src)
    names = set(p.analyzed.tensors)
    assert {"Net_Mid", "Net_First_W", "Net_First_B", "Net_Second_W", "Net_Second_B"} <= names
    vals = {"Net_First_W": RNG.normal(size=(4, 2)), "Net_First_B": RNG.normal(size=4),
            "Net_Second_W": RNG.normal(size=(1, 4)), "Net_Second_B": RNG.normal(size=1)}
    grads = p.grad("Loss", **vals)
    assert "Grad_Net_First_W" in p.grad_source("Loss", **vals)
    parse(p.grad_source("Loss", **vals))  # the gradient program of expanded uses is plain, re-parsable source
    x, t = torch.tensor([[1.0, 0], [0, 1], [1, 1]]), torch.tensor([[1.0], [2.0], [3.0]])
    tv = {k: torch.tensor(v, requires_grad=True) for k, v in vals.items()}
    y = (x.double() @ tv["Net_First_W"].T + tv["Net_First_B"]) @ tv["Net_Second_W"].T + tv["Net_Second_B"]
    ((y - t.double()) ** 2).sum().backward()
    for k in vals:
        assert np.allclose(grads[k], tv[k].grad.numpy()), k


def test_local_module_and_number_argument() -> None:
    src = "X = [1.0, 2.0]\nuse scale(X=X, Y=Y, S=2.5, i=i)\nY?\nmodule scale(X, Y, S, i)\nY[i] = S X[i]\n"
    p = tl.Program(src)
    p.run()
    assert np.allclose(p["Y"], [2.5, 5.0])


def test_import_still_splices_only_the_top_part() -> None:
    prog = expand_imports(parse("import logic\nimport logic\nEdge(A, B).\n"))
    heads = [s.head.name for s in prog.statements if isinstance(s, ast.Rule)]
    assert heads == ["Closure", "Closure", "Symmetric", "Symmetric", "SameGen", "SameGen"]


# ---------------------------------------------------------------------------- errors


def test_error_inside_module_points_at_module_and_use(tmp_path: Path) -> None:
    bad = LAYERS.replace("+ B[o]", "+ Bias[o]")
    msg = error(tmp_path, "X = [[1.0]]\nuse layers.linear(X=X, Y=Y, n=b, i=d, o=2) as L1\n", bad)
    lines = msg.splitlines()
    assert lines[0].endswith("layers.tl:5:29: error: undefined tensor 'L1_Bias'")
    assert lines[2].index("^") == 4 + 28
    assert lines[3].endswith("main.tl:2:1: note: in module 'layers.linear', used as L1 here")
    assert lines[4] == "    use layers.linear(X=X, Y=Y, n=b, i=d, o=2) as L1"
    assert lines[5].startswith("    ^~~~")


def test_unknown_parameter_and_wrong_kinds(tmp_path: Path) -> None:
    msg = error(tmp_path, "use layers.linear(X=X, Z=Y) as L1\n")
    assert "main.tl:1:24: error: module 'linear' has no parameter 'Z'" in msg
    assert "layers.tl:2:1: note: module 'linear' is declared here" in msg
    assert "hint: its parameters are: X, Y, W, B, n, i, o" in msg
    assert "tensor parameter" in error(tmp_path, "use layers.linear(X=x) as L1\n")
    assert "index parameter" in error(tmp_path, "use layers.linear(i=X) as L1\n")
    assert "positive integer" in error(tmp_path, "use layers.linear(i=2.5) as L1\n")


def test_missing_module_and_file_and_duplicate_prefix(tmp_path: Path) -> None:
    assert "no module 'lin' in layers.tl" in error(tmp_path, "use layers.lin(X=X)\n")
    assert "its modules are: linear, twice" in error(tmp_path, "use layers.lin(X=X)\n")
    assert "cannot use 'nope.lin'" in error(tmp_path, "use nope.lin(X=X)\n")
    msg = error(tmp_path, "X = [[1.0]]\nuse layers.linear(X=X, Y=A)\nuse layers.linear(X=X, Y=B)\n")
    assert "main.tl:3:1: error: a second use named 'Linear'" in msg and "main.tl:2:1: note: the first use" in msg


def test_syntax_error_in_module_file_notes_the_use(tmp_path: Path) -> None:
    msg = error(tmp_path, "use layers.linear(X=X)\n", LAYERS + "Y[i = 2\n")
    assert "layers.tl:10" in msg and "main.tl:1:1: note: while loading module 'layers.linear'" in msg


def test_self_use_is_an_error(tmp_path: Path) -> None:
    msg = error(tmp_path, "use layers.loop(X=X)\n", "module loop(X)\nuse loop(X=X)\n")
    assert "module 'loop' uses itself" in msg


# ---------------------------------------------------------------------------- nn against torch


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _run(src: str, **inputs: np.ndarray) -> tl.Program:
    p = tl.Program(src)
    p.run(**inputs)
    return p


def test_nn_linear_and_mlp_match_torch() -> None:
    torch.manual_seed(1)
    lin1, lin2 = torch.nn.Linear(3, 5), torch.nn.Linear(5, 2)
    x = torch.randn(4, 3)
    p = _run("use nn.mlp(X=X, Y=Y, W1=W1, B1=B1, W2=W2, B2=B2, n=b, i=d, h=h, o=o) as M\n"
             "use nn.linear(X=X, Y=Z, W=W1, B=B1, n=b, i=d, o=h) as L\n", X=_np(x),
             W1=_np(lin1.weight), B1=_np(lin1.bias), W2=_np(lin2.weight), B2=_np(lin2.bias))
    assert np.allclose(p["Z"], _np(lin1(x)), atol=1e-6)
    assert np.allclose(p["Y"], _np(lin2(torch.relu(lin1(x)))), atol=1e-6)


def test_nn_embedding_matches_torch() -> None:
    emb = torch.nn.Embedding(6, 3)
    tokens = [4, 0, 4, 2]
    facts = " ".join(f"Tok({n}, {t})." for n, t in enumerate(tokens))
    p = _run(f"{facts}\nuse nn.embedding(Tok=Tok, Emb=E, Y=Y, n=n, t=t, d=d)\n", E=_np(emb.weight))
    assert np.allclose(p["Y"], _np(emb(torch.tensor(tokens))), atol=1e-6)


def test_nn_layernorm_matches_torch() -> None:
    ln = torch.nn.LayerNorm(6)
    torch.nn.init.normal_(ln.weight)
    torch.nn.init.normal_(ln.bias)
    x = torch.randn(3, 6) * 3
    p = _run("use nn.layernorm(X=X, Y=Y, G=G, B=B, n=n, d=d)\n", X=_np(x), G=_np(ln.weight), B=_np(ln.bias))
    assert np.allclose(p["Y"], _np(ln(x)), atol=1e-5)


def test_nn_attention_with_causal_mask_matches_torch() -> None:
    torch.manual_seed(2)
    x, wq, wk, wv = torch.randn(5, 4), torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    causal = torch.ones(5, 5).tril().bool()
    ref = torch.nn.functional.scaled_dot_product_attention((x @ wq.T)[None], (x @ wk.T)[None], (x @ wv.T)[None],
                                                           attn_mask=causal)[0]
    src = ("index p, p': 5\nuse nn.causal(Mask=Causal, p=p, q=p')\n"
           "use nn.attention(X=X, Y=Y, WQ=WQ, WK=WK, WV=WV, Mask=Causal, Dk=3, p=p, d=d, k=k) as Head\n")
    p = _run(src, X=_np(x), WQ=_np(wq), WK=_np(wk), WV=_np(wv))
    assert np.allclose(p["Y"], _np(ref), atol=1e-5)
    assert np.array_equal(p["Causal"].astype(bool), causal.numpy())


def _mha_inputs(attn: torch.nn.MultiheadAttention, heads: int) -> dict[str, np.ndarray]:
    d = attn.embed_dim
    k = d // heads
    w, b = _np(attn.in_proj_weight), _np(attn.in_proj_bias)
    out = {}
    for n, name in enumerate("QKV"):
        out[f"W{name}"] = w[n * d:(n + 1) * d].reshape(heads, k, d)
        out[f"B{name}"] = b[n * d:(n + 1) * d].reshape(heads, k)
    return {**out, "WO": _np(attn.out_proj.weight), "BO": _np(attn.out_proj.bias)}


def test_nn_multihead_attention_matches_torch() -> None:
    torch.manual_seed(3)
    attn = torch.nn.MultiheadAttention(6, 2, batch_first=True)
    for prm in attn.parameters():
        torch.nn.init.normal_(prm, std=0.5)
    x = torch.randn(1, 4, 6)
    ref, _ = attn(x, x, x, need_weights=False)
    src = ("index p, p': 4\nuse nn.full(Mask=All, p=p, q=p')\n"
           "use nn.mha(X=X, Y=Y, WQ=WQ, WK=WK, WV=WV, BQ=BQ, BK=BK, BV=BV, WO=WO, BO=BO, Mask=All, Dk=3,\n"
           "           p=p, d=d, h=h, k=k) as Attn\n")
    p = _run(src, X=_np(x[0]), **_mha_inputs(attn, 2))
    assert np.allclose(p["Y"], _np(ref[0]), atol=1e-5)


def test_nn_two_transformer_blocks_match_torch() -> None:
    """Two uses of nn.transformer (each nesting mha, layernorm and mlp) against two torch encoder layers."""
    torch.manual_seed(4)
    P, D, H, F = 5, 8, 2, 6
    layers = [torch.nn.TransformerEncoderLayer(D, H, dim_feedforward=F, dropout=0.0, batch_first=True).eval()
              for _ in range(2)]
    for layer in layers:
        for prm in layer.parameters():
            torch.nn.init.normal_(prm, std=0.4)
    x = torch.randn(1, P, D)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(P)
    ref = layers[1](layers[0](x, src_mask=mask, is_causal=True), src_mask=mask, is_causal=True)[0]
    src = f"index p, p': {P}\nuse nn.causal(Mask=Causal, p=p, q=p')\n"
    inputs = {"X": _np(x[0])}
    for n, layer in enumerate(layers, 1):
        names = ["WQ", "WK", "WV", "BQ", "BK", "BV", "WO", "BO", "G1", "C1", "W1", "B1", "W2", "B2", "G2", "C2"]
        args = ", ".join(f"{a}={a}_{n}" for a in names)
        src += (f"use nn.transformer(X={'X' if n == 1 else 'Y1'}, Y=Y{n}, {args}, Mask=Causal, Dk={D // H},"
                f" p=p, d=d, h=h, k=k, f=f) as Block{n}\n")
        vals = {**_mha_inputs(layer.self_attn, H), "G1": _np(layer.norm1.weight), "C1": _np(layer.norm1.bias),
                "W1": _np(layer.linear1.weight), "B1": _np(layer.linear1.bias), "W2": _np(layer.linear2.weight),
                "B2": _np(layer.linear2.bias), "G2": _np(layer.norm2.weight), "C2": _np(layer.norm2.bias)}
        inputs.update({f"{k}_{n}": v for k, v in vals.items()})
    p = _run(src, **inputs)
    assert np.allclose(p["Y2"], _np(ref), atol=1e-5)
    assert "Block1_Attention_Score" in p.analyzed.tensors and "Block2_Attention_Score" in p.analyzed.tensors


def test_nn_gnn_layer_matches_torch() -> None:
    g = nx.karate_club_graph()
    edges = [(a, b) for a, b in g.edges()] + [(b, a) for a, b in g.edges()]
    facts = " ".join(f"Adj({a}, {b})." for a, b in edges)
    x, w, ws = torch.randn(34, 4), torch.randn(3, 4), torch.randn(3, 4)
    adj = torch.zeros(34, 34)
    for a, b in edges:
        adj[a, b] = 1.0
    p = _run(f"{facts}\nuse nn.gnn(Adj=Adj, X=X, Y=Y, W=W, WS=WS, n=n, m=m, d=d, e=e)\n",
             X=_np(x), W=_np(w), WS=_np(ws))
    assert np.allclose(p["Y"], _np(torch.relu(adj @ x @ w.T + x @ ws.T)), atol=1e-5)


def test_nn_losses_match_torch() -> None:
    torch.manual_seed(5)
    pred, target = torch.randn(4, 3), torch.randn(4, 3)
    logits, labels = torch.randn(5, 4) * 3, torch.tensor([0, 3, 1, 1, 2])
    prob, t = torch.rand(6) * 0.9 + 0.05, torch.tensor([0.0, 1, 1, 0, 1, 0])
    facts = " ".join(f"Label({n}, {c})." for n, c in enumerate(labels.tolist()))
    src = (f"{facts}\nuse nn.mse(Pred=P, Target=T, Loss=Mse, n=n, o=o)\n"
           "use nn.cross_entropy(Logits=Z, Target=Label, Loss=Ce, n=n, c=c)\n"
           "use nn.bce(Prob=Q, Target=QT, Loss=Bce, n=n)\n")
    p = _run(src, P=_np(pred), T=_np(target), Z=_np(logits), Q=_np(prob), QT=_np(t))
    f = torch.nn.functional
    assert np.isclose(p["Mse"], f.mse_loss(pred, target).item(), atol=1e-6)
    assert np.isclose(p["Ce"], f.cross_entropy(logits, labels).item(), atol=1e-5)
    assert np.isclose(p["Bce"], f.binary_cross_entropy(prob, t).item(), atol=1e-5)



@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), (3, 2)])
def test_nn_conv2d_with_stride_and_padding_matches_torch(stride: int, padding: int) -> None:
    torch.manual_seed(stride)
    x, conv = torch.randn(1, 2, 7, 6), torch.nn.Conv2d(2, 3, 3, stride=stride, padding=padding)
    u, v = 7 + 2 * padding - 3 + 1, 6 + 2 * padding - 3 + 1
    p = _run(f"use nn.conv2d(X=X, Y=Y, W=W, B=B, S={stride}, P={padding}, c=c, o=o, u={u}, v={v})\n",
             X=_np(x[0]), W=_np(conv.weight), B=_np(conv.bias))
    assert np.allclose(p["Y"], _np(conv(x)[0]), atol=1e-5)


def test_nn_pooling_matches_torch() -> None:
    x = torch.randn(1, 2, 7, 6)
    p = _run("use nn.maxpool(X=X, Y=M, S=2, c=c, x=x, y=y)\nuse nn.avgpool(X=X, Y=A, S=2, c=c, x=x, y=y)\n"
             "use nn.sumpool(X=X, Y=S, S=3, c=c, x=x, y=y)\n", X=_np(x[0]))
    f = torch.nn.functional
    assert np.allclose(p["M"], _np(f.max_pool2d(x, 2, ceil_mode=True)[0]))
    assert np.allclose(p["A"], _np(f.avg_pool2d(x, 2, ceil_mode=True)[0]), atol=1e-6)
    assert np.allclose(p["S"], _np(f.avg_pool2d(x, 3, ceil_mode=True, divisor_override=1)[0]), atol=1e-5)


def test_nn_rnn_cell_matches_torch() -> None:
    rnn, seq = torch.nn.RNN(3, 4), torch.randn(5, 3)
    _, last = rnn(seq[:, None, :])
    p = _run("use nn.rnn(X=X, H=H, WH=WH, WI=WI, B=B, t=t, i=i, h=h)\n", X=_np(seq), WH=_np(rnn.weight_hh_l0),
             WI=_np(rnn.weight_ih_l0), B=_np(rnn.bias_ih_l0 + rnn.bias_hh_l0))
    assert np.allclose(p["H"], _np(last[0, 0]), atol=1e-6)

# ---------------------------------------------------------------------------- logic against networkx


def _answers(p: tl.Program, name: str) -> set[tuple[int, ...]]:
    return {tuple(int(v) for v in row) for row in np.argwhere(np.asarray(p[name]) > 0)}


def test_logic_modules_match_networkx() -> None:
    g = nx.gnp_random_graph(12, 0.15, seed=3, directed=True)
    h = nx.gnp_random_graph(12, 0.2, seed=4, directed=True)
    facts = " ".join(f"Link({a}, {b})." for a, b in g.edges()) + "\n"
    facts += " ".join(f"Other({a}, {b})." for a, b in h.edges()) + "\nSeed(0). Seed(5).\n"
    src = facts + ("domain Node: 12\ntensor Link(Node, Node)\ntensor Other(Node, Node)\ntensor Seed(Node)\n"
                   "use logic.closure(R=Link, C=Path)\nuse logic.closure(R=Other, C=OtherPath) as Closure2\n"
                   "use logic.symmetric(R=Link, S=Both)\nuse logic.reach(R=Link, Start=Seed, Reached=Seen)\n"
                   "use logic.compose(A=Link, B=Other, C=Comp)\nuse logic.union(A=Link, B=Other, C=Either)\n"
                   "use logic.intersect(A=Link, B=Other, C=Common)\nuse logic.converse(R=Link, C=Back)\n")
    p = _run(src)
    closure = nx.transitive_closure(g, reflexive=False)
    assert _answers(p, "Path") == set(closure.edges())
    assert _answers(p, "OtherPath") == set(nx.transitive_closure(h, reflexive=False).edges())
    assert _answers(p, "Both") == set(g.edges()) | {(b, a) for a, b in g.edges()}
    assert {r[0] for r in _answers(p, "Seen")} == {0, 5} | nx.descendants(g, 0) | nx.descendants(g, 5)
    assert _answers(p, "Comp") == {(a, c) for a, b in g.edges() for b2, c in h.edges() if b == b2}
    assert _answers(p, "Either") == set(g.edges()) | set(h.edges())
    assert _answers(p, "Common") == set(g.edges()) & set(h.edges())
    assert _answers(p, "Back") == {(b, a) for a, b in g.edges()}


def test_logic_samegen_matches_brute_force() -> None:
    tree = nx.balanced_tree(2, 3, create_using=nx.DiGraph)
    facts = " ".join(f"Par({a}, {b})." for a, b in tree.edges())
    p = _run(facts + "\nuse logic.samegen(R=Par, S=Same)\n")
    depth = nx.shortest_path_length(tree, 0)
    expect = {(a, b) for a in tree for b in tree if a != b and depth[a] == depth[b] and a != 0}
    assert _answers(p, "Same") == expect


# ---------------------------------------------------------------------------- kernel and factor against numpy


def test_kernel_gram_matrices_and_prediction_match_numpy() -> None:
    from scipy.spatial.distance import cdist

    x, q = RNG.normal(size=(6, 3)), RNG.normal(size=(4, 3))
    alpha, label = RNG.random(6), np.array([1.0, -1, 1, 1, -1, -1])
    src = ("use kernel.poly(X=X, Z=X, K=Poly, C=1.0, Deg=3, n=n, m=m, d=d)\n"
           "use kernel.gauss(X=X, Z=X, K=Gram, Var=2.0, n=n, m=m, d=d)\n"
           "use kernel.gauss(X=Q, Z=X, K=Cross, Var=2.0, n=q, m=m, d=d) as QK\n"
           "use kernel.predict(K=Cross, Alpha=Alpha, Label=Label, B=0.5, Y=Y, q=q, n=m)\n")
    p = _run(src, X=x, Q=q, Alpha=alpha, Label=label)
    assert np.allclose(p["Poly"], (x @ x.T + 1) ** 3)
    assert np.allclose(p["Gram"], np.exp(-cdist(x, x, "sqeuclidean") / 2))
    cross = np.exp(-cdist(q, x, "sqeuclidean") / 2)
    assert np.allclose(p["Y"], cross @ (alpha * label) + 0.5)


def test_factor_models_match_numpy_reconstruction() -> None:
    a, b, c = RNG.normal(size=(4, 2)), RNG.normal(size=(3, 2)), RNG.normal(size=(5, 2))
    g = RNG.normal(size=(2, 2, 2))
    g1, g2, g3 = RNG.normal(size=(4, 2)), RNG.normal(size=(2, 3, 3)), RNG.normal(size=(3, 5))
    w, up, down = RNG.normal(size=(3, 4)), RNG.normal(size=(3, 2)), RNG.normal(size=(2, 4))
    src = ("use factor.cp(A=A, B=B, C=C, T=Cp, i=i, j=j, k=k, r=r)\n"
           "use factor.tucker(G=G, A=A, B=B, C=C, T=Tk, i=i, j=j, k=k, p=r, q=r', r=r'')\n"
           "use factor.tt(G1=G1, G2=G2, G3=G3, T=Tt, i=i, j=j, k=k, a=a, b=b)\n"
           "use factor.lora(W=W, Up=Up, Down=Down, Out=Adapted, Scale=0.5, o=o, i=i, r=r)\n")
    p = _run(src, A=a, B=b, C=c, G=g, G1=g1, G2=g2, G3=g3, W=w, Up=up, Down=down)
    assert np.allclose(p["Cp"], np.einsum("ir,jr,kr->ijk", a, b, c))
    assert np.allclose(p["Tk"], np.einsum("pqr,ip,jq,kr->ijk", g, a, b, c))
    assert np.allclose(p["Tt"], np.einsum("ia,ajb,bk->ijk", g1, g2, g3))
    assert np.allclose(p["Adapted"], w + 0.5 * up @ down)


def test_factor_tprod_matches_numpy_fft_and_fits_a_tubal_rank_one_tensor() -> None:
    a, b = RNG.normal(size=(3, 2, 4)), RNG.normal(size=(2, 5, 4))
    p = _run("use factor.tprod(A=A, B=B, T=T, N=4, i=i, l=l, j=j, k=4)\n", A=a, B=b)
    fft = np.fft.fft
    ref = np.real(np.fft.ifft(np.einsum("ilf,ljf->ijf", fft(a, axis=2), fft(b, axis=2)), axis=2))
    assert np.allclose(p["T"], ref)
    data = np.real(np.fft.ifft(np.einsum("ilf,ljf->ijf", fft(a[:, :1], axis=2), fft(b[:1], axis=2)), axis=2))
    fit = tl.Program("index i: 3\nindex j: 5\nuse factor.tprod(A=A, B=B, T=Approx, N=4, i=i, l=1, j=j, k=4)\n"
                     "use factor.fit(Data=Data, T=Approx, Loss=Loss, i=i, j=j, k=k)\n")
    losses = fit.train(epochs=600, lr=0.05, Data=data)
    assert losses[-1] < 1e-3 * losses[0]

def test_factor_tprod_dft_matches_numpy_fft() -> None:
    a, b = RNG.normal(size=(3, 2, 5)), RNG.normal(size=(2, 4, 5))
    p = _run("use factor.tprod_dft(A=A, B=B, T=T, N=5, i=i, l=l, j=j, k=5, f=5)\n", A=a, B=b)
    fft = np.fft.fft
    ref = np.real(np.fft.ifft(np.einsum("ilf,ljf->ijf", fft(a, axis=2), fft(b, axis=2)), axis=2))
    np.testing.assert_allclose(p["T"], ref, atol=1e-12)


def test_factor_cp_fit_recovers_a_rank_two_tensor() -> None:
    a, b, c = RNG.normal(size=(6, 2)), RNG.normal(size=(5, 2)), RNG.normal(size=(4, 2))
    data = np.einsum("ir,jr,kr->ijk", a, b, c)
    p = tl.Program("index i: 6\nindex j: 5\nindex k: 4\n"
                   "use factor.cp(A=A, B=B, C=C, T=Approx, i=i, j=j, k=k, r=2)\n"
                   "use factor.fit(Data=Data, T=Approx, Loss=Loss, i=i, j=j, k=k)\n")
    losses = p.train(epochs=500, lr=0.05, Data=data)
    assert losses[-1] < 1e-4 * losses[0]
    p.run(Data=data)
    approx = np.einsum("ir,jr,kr->ijk", p.params["A"], p.params["B"], p.params["C"])
    assert np.allclose(p["Approx"], approx) and np.abs(approx - data).max() < 1e-2


# ---------------------------------------------------------------------------- embed against numpy


def test_embed_modules_match_numpy_and_reason_exactly_at_zero_temperature() -> None:
    n, dim = 8, 10
    emb = np.linalg.qr(RNG.normal(size=(dim, dim)))[0][:n]  # orthonormal rows
    rel = (RNG.random((n, n)) < 0.25).astype(float)
    facts = " ".join(f"Par({a}, {b})." for a, b in np.argwhere(rel))
    src = (f"{facts}\ndomain Node: {n}\ntensor Par(Node, Node)\n"
           "use embed.relation(R=Par, Emb=Emb, EmbR=EmbPar, x=x, y=y, i=i, j=j)\n"
           "use embed.readback(EmbR=EmbPar, Emb=Emb, Score=Score, x=x, y=y, i=i, j=j)\n"
           "use embed.compose(EmbA=EmbPar, EmbB=EmbPar, EmbC=EmbGrand, i=i, j=j, k=k)\n"
           "use embed.reason(EmbR=EmbGrand, Emb=Emb, T=0, Out=Grand, x=x, y=y, i=i, j=j)\n"
           "use embed.reason(EmbR=EmbGrand, Emb=Emb, T=0.2, Out=Soft, x=x, y=y, i=i, j=j) as Warm\n")
    p = _run(src, Emb=emb)
    emb_par = emb.T @ rel @ emb
    assert np.allclose(p["EmbPar"], emb_par)
    assert np.allclose(p["Score"], rel)
    grand = emb_par @ emb_par
    assert np.allclose(p["EmbGrand"], grand)
    assert np.array_equal(p["Grand"], ((rel @ rel) > 0).astype(float))
    score = emb @ grand @ emb.T
    assert np.allclose(p["Soft"], 1 / (1 + np.exp(-(score - 0.5) / 0.2)))


# ---------------------------------------------------------------------------- pgm against enumeration


def _pairwise_model(n: int, states: int, edges: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, str]:
    phi = RNG.random((n, states)) + 0.1
    psi = np.zeros((n, n, states, states))
    for u, v in edges:
        psi[u, v] = RNG.random((states, states)) + 0.1
        psi[v, u] = psi[u, v].T
    facts = " ".join(f"Nb({u}, {v}). Nb({v}, {u})." for u, v in edges)
    src = (f"{facts}\ndomain Node: {n}\ntensor Nb(Node, Node)\n"
           "use pgm.bp(Phi=Phi, Psi=Psi, Nb=Nb, Belief=Belief, n=n, m=m, a=a, b=b)\n")
    return phi, psi, src


def _brute_marginals(phi: np.ndarray, psi: np.ndarray, edges: list[tuple[int, int]]) -> np.ndarray:
    n, states = phi.shape
    marg = np.zeros((n, states))
    for xs in itertools.product(range(states), repeat=n):
        w = np.prod(phi[np.arange(n), xs]) * np.prod([psi[u, v, xs[u], xs[v]] for u, v in edges])
        marg[np.arange(n), xs] += w
    return marg / marg.sum(1, keepdims=True)


def test_pgm_bp_is_exact_on_a_tree() -> None:
    edges = [(0, 1), (1, 2), (1, 3), (3, 4), (0, 5)]
    phi, psi, src = _pairwise_model(6, 3, edges)
    p = _run(src, Phi=phi, Psi=psi)
    assert np.allclose(p["Belief"], _brute_marginals(phi, psi, edges), atol=1e-9)


def test_pgm_loopy_bp_reaches_the_fixed_point_of_a_numpy_loopy_bp() -> None:
    edges = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]
    phi, psi, src = _pairwise_model(4, 2, edges)
    p = _run("set max_iterations = 200\n" + src, Phi=phi, Psi=psi)
    nb = {(u, v) for u, v in edges} | {(v, u) for u, v in edges}
    msg = {e: np.ones(2) / 2 for e in nb}
    for _ in range(500):  # synchronous loopy BP
        new = {}
        for u, v in nb:
            inc = np.prod([msg[k, w] for k, w in nb if w == u and k != v], axis=0)
            out = psi[u, v].T @ (phi[u] * inc)
            new[u, v] = out / out.sum()
        msg = new
    belief = np.array([phi[u] * np.prod([msg[k, w] for k, w in nb if w == u], axis=0) for u in range(4)])
    belief /= belief.sum(1, keepdims=True)
    assert np.allclose(p["Belief"], belief, atol=1e-6)
    assert not np.allclose(belief, _brute_marginals(phi, psi, edges), atol=1e-6)  # loopy: not exact


def test_pgm_marginal_conditional_and_markov_chain_match_numpy() -> None:
    pa, pb, pc = RNG.dirichlet(np.ones(2)), RNG.dirichlet(np.ones(3), size=2), RNG.dirichlet(np.ones(2), size=3)
    prior, trans = RNG.dirichlet(np.ones(3)), RNG.dirichlet(np.ones(3), size=3)
    src = ("Joint[a, b, c] = PA[a] PB[a, b] PC[b, c]\nJointAC[a, c] = Joint[a, b, c]\n"
           "use pgm.marginal(Joint=JointAC, Marg=PAm, q=a, r=c)\n"
           "use pgm.conditional(Joint=JointAC, Cond=AgivenC, q=a, e=c)\n"
           "use pgm.markov(Prior=Prior, Trans=Trans, Marg=Chain, t=5, s=s)\n")
    p = _run(src, PA=pa, PB=pb, PC=pc, Prior=prior, Trans=trans)
    joint = np.einsum("a,ab,bc->ac", pa, pb, pc)
    assert np.allclose(p["PAm"], joint.sum(1))
    assert np.allclose(p["AgivenC"], joint / joint.sum(0))
    assert np.allclose(p["Chain"], [prior @ np.linalg.matrix_power(trans, t) for t in range(6)])


def test_editor_diagnostic_of_an_error_inside_a_module_sits_on_the_use(tmp_path: Path) -> None:
    from tensorlogic.lsp.analysis import check

    (tmp_path / "layers.tl").write_text(LAYERS.replace("+ B[o]", "+ Bias[o]"))
    src = "X = [[1.0]]\n\nuse layers.linear(X=X, Y=Y, n=b, i=d, o=2) as L1\n"
    problems = check(src, str(tmp_path / "main.tl"), tmp_path).problems
    assert len(problems) == 1 and problems[0].start == (2, 0)
    assert "layers.tl:5:29" in problems[0].message and "L1_Bias" in problems[0].message


def test_show_ir_prints_the_expanded_equations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tensorlogic.cli import main

    path = tmp_path / "net.tl"
    path.write_text("X = [[1.0, 2.0]]\nuse nn.linear(X=X, Y=H, n=b, i=d, o=3) as Layer1\n"
                    "use nn.linear(X=H, Y=Out, n=b, i=layer1_o, o=2) as Layer2\n")
    main(["show", "--ir", str(path)])
    out = capsys.readouterr().out
    assert "H[b,layer1_o] = sum[d](Layer1_W[layer1_o,d] X[b,d]) + Layer1_B[layer1_o]" in out
    assert "Out[b,layer2_o] = sum[layer1_o](Layer2_W[layer2_o,layer1_o] H[b,layer1_o]) + Layer2_B[layer2_o]" in out


def test_pgm_ancestral_sampling_by_selective_projection_matches_inverse_cdf() -> None:
    pa, pb = RNG.dirichlet(np.ones(4)), RNG.dirichlet(np.ones(3), size=4)
    p = tl.Program("use pgm.sample(P=PA, U=UA, S=SA, a=a)\nuse pgm.select(PCond=PB, Parent=SA, Row=Row, a=a, b=b)\n"
                   "use pgm.sample(P=Row, U=UB, S=SB, a=b) as SampleB\n")
    for ua, ub in [(0.01, 0.99), (0.3, 0.5), (0.62, 0.1), (0.97, 0.75)]:
        p.run(PA=pa, PB=pb, UA=np.array(ua), UB=np.array(ub))
        a = int(np.searchsorted(np.cumsum(pa), ua, side="right"))
        b = int(np.searchsorted(np.cumsum(pb[a]), ub, side="right"))
        assert np.array_equal(p["SA"], np.eye(4)[a]) and np.array_equal(p["SB"], np.eye(3)[b])
