"""The Pygments lexer: registered as an entry point, lossless, no error tokens, and token classes that agree
with the real parser's reading of every example program (tensors, index variables, functions, symbols)."""

from __future__ import annotations

import dataclasses
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String

from tensorlogic.syntax import ast
from tensorlogic.syntax.highlight import TensorLogicLexer
from tensorlogic.syntax.parser import parse

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = sorted(ROOT.glob("examples/*.tl")) + sorted(ROOT.glob("stdlib/*.tl"))


def _tokens(src: str) -> list[tuple[object, str]]:
    return [(t, v) for t, v in TensorLogicLexer().get_tokens(src) if v.strip()]


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, list | tuple):
            stack.extend(n)
        elif dataclasses.is_dataclass(n) and not isinstance(n, type):
            yield n
            stack.extend(getattr(n, f.name) for f in dataclasses.fields(n) if f.name != "span")


def test_registered_with_pygments():
    assert isinstance(get_lexer_by_name("tensorlogic"), TensorLogicLexer)
    assert isinstance(get_lexer_by_name("tl"), TensorLogicLexer)
    assert isinstance(get_lexer_for_filename("family.tl"), TensorLogicLexer)
    eps = {ep.name: ep.value for ep in entry_points(group="pygments.lexers")}
    assert eps.get("tensorlogic") == "tensorlogic.syntax.highlight:TensorLogicLexer"


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_examples_lex_without_errors_and_losslessly(path):
    src = path.read_text()
    toks = list(TensorLogicLexer().get_tokens(src))
    assert [v for t, v in toks if t in Error] == []
    assert "".join(v for _, v in toks) == (src if src.endswith("\n") else src + "\n")


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.name)
def test_token_classes_agree_with_the_parser(path):
    """Every name the lexer calls a tensor, index variable, function or symbol is one in the parsed program."""
    src = path.read_text()
    prog = parse(src, str(path))
    tensors, variables, funcs, symbols, domains = set(), set(), set(), set(), set()
    for n in _walk(prog.statements):
        if isinstance(n, ast.Ref | ast.TensorDecl):
            tensors.add(n.name)
        elif isinstance(n, ast.IxVar | ast.VarValue):
            variables.add(n.name)
        elif isinstance(n, ast.IndexDecl):
            variables.update(n.names)
        elif isinstance(n, ast.DimSpec) and n.var:
            variables.add(n.var)
        elif isinstance(n, ast.Call):
            funcs.add(n.func)
        elif isinstance(n, ast.IxSymbol):
            symbols.add(n.name)
        elif isinstance(n, ast.DomainDecl):
            domains.add(n.name)
            symbols.update(n.symbols or ())
    toks = _tokens(src)
    seen = {cls: {v for t, v in toks if t is cls} for cls in
            (Name.Class, Name.Variable, Name.Function, Name.Builtin, Name.Constant)}
    assert seen[Name.Class] <= tensors
    assert seen[Name.Variable] <= variables
    assert seen[Name.Function] | seen[Name.Builtin] == funcs
    assert seen[Name.Constant] <= symbols
    # conversely: every tensor that is read or written in the program is highlighted as a tensor
    assert tensors <= seen[Name.Class]


def test_token_classes_of_each_construct():
    src = ('tensor W[4, Person] learnable  # weights\n'
           'domain Person: Alice, Bob\n'
           'index i, j: 10\n'
           'import logic\n'
           'set tolerance = 1e-6\n'
           'Anc(x, z) :- Anc(x, y), Parent(y, z), not Sib(x, y), x != y.\n'
           'M[i] max= sig(W[i, j] X[j], 0.5) + foo(Y[i-1]) / 2^n\n'
           'Y[i] += 3.25; M = "data.csv"\n'
           'Anc(Alice, "New York")?\n')
    toks = _tokens(src)
    kinds = {}
    for t, v in toks:
        kinds.setdefault(v, set()).add(t)
    assert kinds["tensor"] == {Keyword.Declaration}
    assert kinds["learnable"] == {Keyword.Type}
    assert kinds["# weights"] == {Comment.Single}
    assert kinds["domain"] == {Keyword.Declaration} and kinds["import"] == {Keyword.Declaration}
    assert kinds["Person"] == {Name.Namespace} and kinds["logic"] == {Name.Namespace}
    assert kinds["Alice"] == {Name.Constant} and kinds["Bob"] == {Name.Constant}
    assert kinds["tolerance"] == {Name.Attribute}
    assert kinds["Anc"] == {Name.Class} and kinds["W"] == {Name.Class} and kinds["Y"] == {Name.Class}
    assert kinds["x"] == {Name.Variable} and kinds["i"] == {Name.Variable} and kinds["n"] == {Name.Variable}
    for op in (":-", "max=", "+=", "!=", "=", "/", "^", "?"):
        assert kinds[op] == {Operator}, op
    assert kinds["not"] == {Operator.Word}
    assert kinds["sig"] == {Name.Builtin} and kinds["foo"] == {Name.Function}
    assert kinds['"data.csv"'] == {String.Double} and kinds['"New York"'] == {String.Double}
    assert kinds["3.25"] <= set(Number.subtypes) | {Number}
    assert kinds["1e-6"] <= set(Number.subtypes) | {Number}


def test_keywords_only_start_statements():
    """`index` as an index variable (allowed by the grammar) is a variable, not a declaration."""
    toks = _tokens("Y[index] = X[index, set]\n")
    assert ("index", Name.Variable) in [(v, t) for t, v in toks]
    assert all(t is not Keyword.Declaration for t, _ in toks)
    parse("Y[index] = X[index, set]\n")  # the parser agrees that this is an equation
