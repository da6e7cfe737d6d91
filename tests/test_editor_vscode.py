"""The VS Code extension (editor/vscode): manifest, snippets, TextMate grammar and packaging.

Without node: the manifest points at files that exist, and every snippet expands (with its default
placeholders) to a program the real parser accepts. With node and npm (the tools are installed into
editor/vscode/node_modules once, then reused): vscode-tmgrammar-test checks the annotated samples in
editor/vscode/tests/, the grammar's scopes over every example program agree with the real parser's tokens
(a tensor where the parser sees a tensor, an index variable where it sees one, ...), the client module
loads, and @vscode/vsce packages a .vsix that holds the grammar.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from lark import Token, Tree

from tensorlogic.syntax.parser import _lark, parse

ROOT = Path(__file__).resolve().parents[1]
VSCODE = ROOT / "editor" / "vscode"
GRAMMAR = VSCODE / "syntaxes" / "tensorlogic.tmLanguage.json"
SAMPLES = sorted((VSCODE / "tests").glob("*.test.tl"))
PROGRAMS = sorted((ROOT / "examples").glob("*.tl")) + sorted((ROOT / "stdlib").glob("*.tl"))
ASSERTION = re.compile(r"#\s*(<[~-]|\^)")  # a vscode-tmgrammar-test assertion line
BUILTINS = {"step", "sig", "relu", "tanh", "exp", "log", "sqrt", "abs", "sin", "cos", "softmax", "lnorm", "concat"}


# ------------------------------------------------------------------ the parser's view of a program
# (rule of the parse tree, terminal) -> what the token is. The rule names are grammar.lark's.
KINDS = {
    ("numeric_ref", "TENSOR"): "tensor", ("scalar_ref", "TENSOR"): "tensor", ("tensor_decl", "TENSOR"): "declared",
    ("bool_ref", "TENSOR"): "relation",
    ("ix_name", "TENSOR"): "symbol", ("domain_symbols", "TENSOR"): "symbol", ("domain_symbols", "VAR"): "symbol",
    ("ix_var", "VAR"): "index", ("var_value", "VAR"): "index", ("dim_var", "VAR"): "index",
    ("dim_var_size", "VAR"): "index", ("dim_var_domain", "VAR"): "index", ("index_decl", "VAR"): "index",
    ("dim_domain", "TENSOR"): "domain", ("dim_var_domain", "TENSOR"): "domain", ("domain_decl", "TENSOR"): "domain",
    ("index_decl", "TENSOR"): "domain",
    ("import_decl", "MODNAME"): "module", ("set_decl", "VAR"): "setting", ("modifier", "MODIFIER"): "modifier",
    ("equation", "ASSIGN"): "assign", ("rule", "RULE_ARROW"): "rule", ("negated", "NOT"): "not",
    ("comparison", "CMP"): "compare", ("index_pos", "DOT"): "normalize", ("start", "DOT"): "terminator",
    ("binop", "ADDOP"): "operator", ("ix_binop", "ADDOP"): "operator",
}
NUMERIC = {"NUMBER", "INT"}


def parser_tokens(source: str) -> list[tuple[int, int, int, str, str]]:
    """(0-based line, start col, end col, kind, text) for each token the real parser keeps in its tree."""
    out = []
    for tree in _lark().parse(source).iter_subtrees():
        rule = str(tree.data)
        for tok in tree.children:
            if not isinstance(tok, Token) or tok.line != tok.end_line:
                continue
            if tok.type == "STRING":
                kind = "string"
            elif tok.type in NUMERIC:
                kind = "number"
            elif tok.type == "FUNC":
                kind = "builtin" if str(tok) in BUILTINS else "function"
            else:
                kind = KINDS.get((rule, tok.type))
            if kind is not None:
                out.append((tok.line - 1, tok.column - 1, tok.end_column - 1, kind, str(tok)))
    return sorted(out)


def _strip_assertions(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if not ASSERTION.match(line))


# ------------------------------------------------------------------ without node
def test_manifest_points_at_its_files():
    pkg = json.loads((VSCODE / "package.json").read_text())
    (lang,) = pkg["contributes"]["languages"]
    assert lang["id"] == "tensorlogic" and lang["extensions"] == [".tl"]
    conf = json.loads((VSCODE / lang["configuration"]).read_text())
    assert conf["comments"]["lineComment"] == "#"
    assert ["[", "]"] in conf["brackets"] and ["(", ")"] in conf["brackets"]
    (gram,) = pkg["contributes"]["grammars"]
    assert gram["language"] == "tensorlogic"
    assert json.loads((VSCODE / gram["path"]).read_text())["scopeName"] == gram["scopeName"]
    (snip,) = pkg["contributes"]["snippets"]
    assert (VSCODE / snip["path"]).exists() and (VSCODE / pkg["main"]).exists()
    for f in ("README.md", "LICENSE", ".vscodeignore"):
        assert (VSCODE / f).exists(), f


def _expand(body: str) -> str:
    """A snippet's text with each placeholder's default (the first choice of ${1|a,b|}) and no tab stops."""
    body = re.sub(r"\$\{\d+\|([^,|]*)[^}]*\|\}", r"\1", body)
    for _ in range(3):  # placeholders may nest
        body = re.sub(r"\$\{\d+:([^${}]*)\}", r"\1", body)
    return re.sub(r"\$\d+", "", body)


SNIPPETS = json.loads((VSCODE / "snippets" / "tensorlogic.json").read_text())


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_snippet_expands_to_a_program_the_parser_accepts(name: str):
    body = SNIPPETS[name]["body"]
    text = _expand("\n".join(body) if isinstance(body, list) else body)
    assert "$" not in text, text
    parse(text + "\n", f"<snippet {name}>")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_grammar_samples_are_programs(sample: Path):
    """The annotated samples are real tensor logic (the assertion lines are comments)."""
    parse(_strip_assertions(sample.read_text()), str(sample))


# ------------------------------------------------------------------ with node
NODE, NPM = shutil.which("node"), shutil.which("npm")
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ECONNRESET", "ENETUNREACH", "network")


def _installed() -> bool:
    nm = VSCODE / "node_modules"
    stamp = nm / ".package-lock.json"  # npm rewrites it after every install
    tools = [nm / ".bin" / "vscode-tmgrammar-test", nm / ".bin" / "vsce", nm / "vscode-languageclient"]
    if not stamp.exists() or not all(t.exists() for t in tools):
        return False
    newest = max((VSCODE / f).stat().st_mtime for f in ("package.json", "package-lock.json"))
    return stamp.stat().st_mtime >= newest


@pytest.fixture(scope="module")
def node_tools() -> Path:
    """editor/vscode with its npm packages installed (once; reused while package*.json are unchanged)."""
    if NODE is None or NPM is None:
        pytest.skip("node/npm are not installed: the VS Code grammar and packaging tests need them")
    if not _installed():
        proc = subprocess.run([NPM, "install", "--no-audit", "--no-fund"], cwd=VSCODE, capture_output=True,
                              text=True, timeout=900)
        if proc.returncode != 0:
            log = proc.stdout + proc.stderr
            if any(e in log for e in NETWORK_ERRORS):
                pytest.skip(f"npm install could not reach the registry (no network?):\n{log[-800:]}")
            pytest.fail(f"npm install failed:\n{log[-3000:]}")
    return VSCODE


def _tmgrammar_test(files: list[Path]) -> subprocess.CompletedProcess:
    exe = VSCODE / "node_modules" / ".bin" / "vscode-tmgrammar-test"
    return subprocess.run([str(exe), "-c", "-g", str(GRAMMAR), *map(str, files)], cwd=VSCODE,
                          capture_output=True, text=True, timeout=300)


def test_grammar_unit_tests_pass(node_tools: Path):
    assert SAMPLES, "no annotated samples in editor/vscode/tests"
    proc = _tmgrammar_test(SAMPLES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_grammar_unit_tests_catch_a_wrong_scope(node_tools: Path, tmp_path: Path):
    bad = tmp_path / "wrong.test.tl"
    bad.write_text('# SYNTAX TEST "source.tensorlogic"\nW[i] = X[i]\n# <- variable.parameter.index.tensorlogic\n')
    proc = _tmgrammar_test([bad])
    assert proc.returncode != 0 and "variable.parameter.index" in proc.stdout + proc.stderr


SCOPE_OF_KIND = {
    "tensor": "entity.name.type.tensor", "declared": "entity.name.type.tensor",
    "relation": "entity.name.type.relation", "symbol": "constant.other.symbol",
    "index": "variable.parameter.index", "builtin": "support.function.builtin", "function": "entity.name.function",
    "number": "constant.numeric", "string": "string.quoted.double", "domain": "entity.name.type.domain",
    "module": "entity.name.namespace", "setting": "variable.other.setting", "modifier": "storage.modifier",
    "assign": "keyword.operator.assignment", "rule": "keyword.operator.rule", "not": "keyword.operator.logical.not",
    "compare": "keyword.operator.comparison", "normalize": "keyword.operator.normalize",
    "terminator": "punctuation.terminator.statement", "operator": "keyword.operator.arithmetic",
}


def test_grammar_agrees_with_the_parser_on_every_example(node_tools: Path, tmp_path: Path):
    files = PROGRAMS + SAMPLES
    proc = subprocess.run([NODE, str(VSCODE / "tests" / "tokenize.js"), *map(str, files)], cwd=VSCODE,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    scopes = json.loads(proc.stdout)
    wrong, checked = [], 0
    for f in files:
        lines = scopes[str(f)]
        for line, start, end, kind, text in parser_tokens(_strip_assertions(f.read_text()) if f in SAMPLES
                                                          else f.read_text()):
            if f in SAMPLES:  # map the line back to the sample with its assertion lines
                line = _line_with_assertions(f, line)
            want = SCOPE_OF_KIND[kind]
            for col in (start, end - 1):
                tok = next((t for t in lines[line] if t["start"] <= col < t["end"]), None)
                got = tok["scopes"] if tok else []
                checked += 1
                if not any(s.startswith(want + ".") for s in got):
                    wrong.append(f"{f.name}:{line + 1}:{col + 1} {text!r} is a {kind}: want {want}, got {got[1:]}")
    assert checked > 1000
    assert not wrong, f"{len(wrong)} of {checked} disagree:\n" + "\n".join(wrong[:40])


def _line_with_assertions(f: Path, line: int) -> int:
    kept = [n for n, text in enumerate(f.read_text().splitlines()) if not ASSERTION.match(text)]
    return kept[line]


def test_client_module_loads(node_tools: Path):
    """extension.js runs without a build step: it loads (against a stand-in `vscode` module) and exports
    activate/deactivate."""
    script = """
const Module = require('module'); const load = Module._load;
const any = () => new Proxy(class {}, {get: (t, p) => (p in t ? t[p] : any())});
Module._load = function (r, ...a) {
  return r === 'vscode' ? new Proxy({}, {get: () => any()}) : load.call(this, r, ...a);
};
const m = require('./extension.js');
if (typeof m.activate !== 'function' || typeof m.deactivate !== 'function') process.exit(3);
console.log('ok');
"""
    proc = subprocess.run([NODE, "-e", script], cwd=VSCODE, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_vsix_package_holds_the_grammar(node_tools: Path, tmp_path: Path):
    exe = VSCODE / "node_modules" / ".bin" / "vsce"
    out = tmp_path / "vsix"
    out.mkdir()
    env = {**os.environ, "VSCE_STORE": str(tmp_path / "store")}
    proc = subprocess.run([str(exe), "package", "--allow-missing-repository", "--out", str(out) + os.sep],
                          cwd=VSCODE, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pkg = json.loads((VSCODE / "package.json").read_text())
    vsix = out / f"{pkg['name']}-{pkg['version']}.vsix"
    assert vsix.exists(), list(out.iterdir())
    with zipfile.ZipFile(vsix) as z:
        names = set(z.namelist())
        assert z.read("extension/syntaxes/tensorlogic.tmLanguage.json") == GRAMMAR.read_bytes()
        assert json.loads(z.read("extension/package.json"))["contributes"]["languages"][0]["id"] == "tensorlogic"
    for f in ("extension/language-configuration.json", "extension/snippets/tensorlogic.json",
              "extension/extension.js", "extension/node_modules/vscode-languageclient/package.json"):
        assert f in names, f
    assert not any(n.startswith("extension/tests/") for n in names), "grammar tests must not be shipped"
    assert not any("vscode-tmgrammar-test" in n or "@vscode/vsce" in n for n in names), "dev tools shipped"


def test_parser_tokens_walk_sees_every_kind():
    """The reference above is not vacuous: over the examples it finds every kind of token it maps."""
    seen = {k for f in PROGRAMS + SAMPLES for *_, k, _ in parser_tokens(_strip_assertions(f.read_text()))}
    assert set(SCOPE_OF_KIND) <= seen, set(SCOPE_OF_KIND) - seen
    assert isinstance(_lark().parse("X = 1\n"), Tree)
