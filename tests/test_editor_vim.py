"""The Vim plugin (editor/vim), tested in a real headless Vim (`vim -es -u NONE`).

A *.tl file must get our filetype although Vim's own filetype.vim maps *.tl to Teal, the ftplugin must set
`#` comments, and the syntax groups at chosen characters must be the ones the language's lexical rules
(docs/language.md) call for: capitalised names are tensors, lower-case ones index variables or functions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_editor_vscode import PROGRAMS, SAMPLES, _strip_assertions, parser_tokens

VIM = shutil.which("vim")
pytestmark = pytest.mark.skipif(VIM is None, reason="vim is not installed (apt-get install vim to run these tests)")

PLUGIN = Path(__file__).resolve().parents[1] / "editor" / "vim"

# The Vim script that writes what Vim decided: filetype, commentstring and every character's syntax group.
DUMP = r"""
let s:rows = []
for s:lnum in range(1, line('$'))
  call add(s:rows, map(range(1, len(getline(s:lnum))), {_, c -> synIDattr(synID(s:lnum, c, 1), 'name')}))
endfor
call writefile([json_encode({'ft': &filetype, 'cms': &commentstring, 'syntax': get(b:, 'current_syntax', ''),
      \ 'groups': s:rows})], expand('$TL_VIM_OUT'))
qa!
"""


def _run_vim(tmp_path: Path, text: str, with_plugin: bool = True) -> dict:
    src = tmp_path / "prog.tl"
    src.write_text(text)
    script = tmp_path / "dump.vim"
    script.write_text(DUMP)
    out = tmp_path / "out.json"
    cmd = [VIM, "-es", "-u", "NONE", "-i", "NONE", "-N"]
    if with_plugin:
        cmd += ["--cmd", f"set rtp^={PLUGIN}"]
    cmd += ["--cmd", "filetype plugin on", "--cmd", "syntax on", "-S", str(script), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={"TL_VIM_OUT": str(out),
                                                                                "HOME": str(tmp_path), "PATH": ""})
    assert out.exists(), f"vim wrote nothing: rc={proc.returncode} {proc.stdout} {proc.stderr}"
    return json.loads(out.read_text())


def test_tl_files_get_our_filetype_not_teal(tmp_path: Path):
    plain = _run_vim(tmp_path, "X = [1, 2]\n", with_plugin=False)
    assert plain["ft"] == "teal", "Vim itself maps *.tl to Teal: the plugin must override that"
    ours = _run_vim(tmp_path, "X = [1, 2]\n")
    assert ours["ft"] == "tensorlogic" and ours["syntax"] == "tensorlogic"
    assert ours["cms"] == "# %s"


LINES = [
    "# The family tree",                                         # 0
    "Parent(Alice, Bob).",                                       # 1
    "Ancestor(x, z) <- Ancestor(x, y), Parent(y, z), not Sister(x, y), x != y.",  # 2
    "Comp[p, p'.] = softmax(Query[p, dk] Key[p', dk] / sqrt(Dk))",  # 3
    "H[i, *t+1] = mystep(W[i, j] H[j, *t]) + 1.5e-3",            # 4
    "M[i] max= X[i, j]",                                         # 5
    'Emb = "data/emb.npy"   # a file',                           # 6
    "tensor W[4, 3] learnable",                                  # 7
    "domain Person: Alice, Bob; index x: Person",               # 8
    "import logic",                                              # 9
    "set max_iterations = 500",                                  # 10
    "Ancestor(Alice, x)?",                                       # 11
]

# (line, the text to find on it, which occurrence, the group its first character must have)
EXPECT = [
    (0, "#", 0, "tlComment"), (0, "family", 0, "tlComment"),
    (1, "Parent", 0, "tlRelation"), (1, "Alice", 0, "tlSymbol"), (1, "Bob", 0, "tlSymbol"), (1, ".", 0, "tlTerminator"),
    (2, "x", 0, "tlIndexVar"), (2, "<-", 0, "tlRule"), (2, "not", 0, "tlNot"), (2, "Sister", 0, "tlRelation"),
    (2, "!=", 0, "tlCompare"), (2, "x !=", 0, "tlVar"),
    (3, "Comp", 0, "tlTensor"), (3, "p'", 0, "tlIndexVar"), (3, ".", 0, "tlNormalize"), (3, "=", 0, "tlAssign"),
    (3, "softmax", 0, "tlBuiltin"), (3, "Key", 0, "tlTensor"), (3, "/", 0, "tlOperator"), (3, "sqrt", 0, "tlBuiltin"),
    (3, "Dk", 0, "tlName"),
    (4, "*", 0, "tlVirtual"), (4, "+", 0, "tlIndexOp"), (4, "1", 0, "tlInteger"), (4, "mystep", 0, "tlFunction"),
    (4, "1.5e-3", 0, "tlFloat"), (4, "+ 1", 0, "tlOperator"),
    (5, "max=", 0, "tlAssign"),
    (6, '"', 0, "tlString"), (6, "data", 0, "tlString"), (6, "# a file", 0, "tlComment"),
    (7, "tensor", 0, "tlDeclare"), (7, "W", 0, "tlTensor"), (7, "4", 0, "tlInteger"), (7, "learnable", 0, "tlModifier"),
    (8, "domain", 0, "tlDeclare"), (8, "Person", 0, "tlDomainName"), (8, "Alice", 0, "tlDomainSymbol"),
    (8, "index", 0, "tlDeclare"), (8, ";", 0, "tlTerminator"),
    (9, "import", 0, "tlImport"), (9, "logic", 0, "tlModule"),
    (10, "set", 0, "tlDeclare"), (10, "max_iterations", 0, "tlSetting"), (10, "500", 0, "tlInteger"),
    (11, "?", 0, "tlQuery"), (11, "Alice", 0, "tlSymbol"),
]


def test_syntax_groups(tmp_path: Path):
    res = _run_vim(tmp_path, "\n".join(LINES) + "\n")
    assert res["ft"] == "tensorlogic"
    wrong = []
    for line, needle, nth, group in EXPECT:
        text = LINES[line]
        col = -1
        for _ in range(nth + 1):
            col = text.index(needle, col + 1)
        got = res["groups"][line][col]
        if got != group:
            wrong.append(f"line {line} {needle!r} (col {col}): {got!r}, expected {group!r}")
    assert not wrong, "\n".join(wrong)


def test_keywords_are_only_keywords_at_a_statement_start(tmp_path: Path):
    text = "Index[i] = W[i, index]\nY = set + tensor\n"
    res = _run_vim(tmp_path, text)
    g = res["groups"]
    assert g[0][0] == "tlTensor" and g[0][text.index("index")] == "tlIndexVar"
    second = text.splitlines()[1]
    assert g[1][second.index("set")] == "tlVar" and g[1][second.index("tensor")] == "tlVar"


# What the parser says a token is (see test_editor_vscode.parser_tokens) -> the groups Vim may give it.
GROUPS_OF_KIND = {
    "tensor": {"tlTensor", "tlName"}, "declared": {"tlTensor", "tlRelation", "tlName"}, "relation": {"tlRelation"},
    "symbol": {"tlSymbol", "tlDomainSymbol"}, "index": {"tlIndexVar", "tlVar"}, "builtin": {"tlBuiltin"},
    "function": {"tlFunction"}, "number": {"tlInteger", "tlFloat"}, "string": {"tlString"},
    "domain": {"tlDomainName", "tlSymbol", "tlName"}, "module": {"tlModule"}, "setting": {"tlSetting"},
    "modifier": {"tlModifier"}, "assign": {"tlAssign"}, "rule": {"tlRule"}, "not": {"tlNot"},
    "compare": {"tlCompare"}, "normalize": {"tlNormalize"}, "terminator": {"tlTerminator"},
    "operator": {"tlOperator", "tlIndexOp"},
}


def test_syntax_agrees_with_the_parser_on_every_example(tmp_path: Path):
    wrong, checked = [], 0
    for f in PROGRAMS + SAMPLES:
        text = _strip_assertions(f.read_text())
        groups = _run_vim(tmp_path, text)["groups"]
        for line, start, end, kind, tok in parser_tokens(text):
            for col in (start, end - 1):
                checked += 1
                got = groups[line][col]
                if got not in GROUPS_OF_KIND[kind]:
                    wrong.append(f"{f.name}:{line + 1}:{col + 1} {tok!r} is a {kind}: got {got!r}")
    assert checked > 1000
    assert not wrong, f"{len(wrong)} of {checked} disagree:\n" + "\n".join(wrong[:40])
