"""The documentation site cannot drift from the code: it builds without warnings and every example runs.

1. `mkdocs build --strict` of docs/site-config/mkdocs.yml (into a temporary folder) must succeed: a broken
   link, a page missing from the nav or a bad config fails the test.
2. Every fenced code block of every page (docs/**/*.md and README.md) is checked, by its language
   (the convention is documented for authors in docs/writing-docs.md):

   - ```tl         a program: written to `prog.tl` in the page's working folder and run with `tl run prog.tl`
                   (the real CLI entry point, in-process); it must exit with status 0. When the next block
                   (only blank lines between) is ```output, that block must equal what the run printed
                   (stdout, then stderr), trailing whitespace of each line and blank lines at either end
                   ignored; `...` in the shown output stands for any text (as doctest's ELLIPSIS).
   - ```tl preceded by `<!-- file: NAME -->`: written as NAME and parsed, not run on its own (a module to
                   import, or a program that a ```console block runs).
   - ```tl-fragment   part of a program (one equation, say): parsed with tensorlogic's parser, not run.
   - ```console    a transcript: each `$ tl ...` line runs that command in the page's folder, and the lines
                   up to the next `$` line must equal what it printed (`...` stands for any text). A
                   transcript with any other command (`tl repl`, `make`) is shown, not run.
   - ```python     executed (each block in a fresh namespace, in the page's folder); a following ```output
                   block must equal what it printed.
   - any other block preceded by `<!-- file: NAME -->` (a CSV file, say) is written as NAME.

   Each page gets one temporary working folder in which its blocks run in order, with `data/` linked to
   examples/data/ (programs read the examples' data files as examples/*.tl do) and `examples/` to examples/
   (`$ tl run examples/mlp.tl` works as from the repository's root).

Run `python tests/test_docs.py --update docs/PAGE.md ...` to rewrite those pages' ```output blocks and
console transcripts that do not match from real runs (that is how they are written: never by hand).
Besides the blocks, the CLI page must name every `tl` subcommand and option, the API page every public name,
and the stdlib page every module and what it defines.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CONFIG = DOCS / "site-config" / "mkdocs.yml"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "site-config" not in p.parts) + [ROOT / "README.md"]
RUNNABLE_TL = {"run", "check", "show", "graph", "plan", "grad", "train"}
INTERACTIVE_TL = {"repl", "lsp"}

FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
FILE_DIRECTIVE = re.compile(r"^<!--\s*file:\s*(?P<name>[\w./-]+)\s*-->$")


@dataclass
class Block:
    """One fenced code block of a page: language, text, first line (1-based), file directive."""

    lang: str
    text: str
    line: int
    end: int  # the line of the closing fence
    file: str | None = None
    follows: bool = False  # only blank lines separate it from the previous block


@dataclass
class Failure:
    line: int
    message: str


@dataclass
class PageResult:
    failures: list[Failure] = field(default_factory=list)
    outputs: dict[int, str] = field(default_factory=dict)  # output block's line -> what the run printed


def blocks_of(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    lines = text.split("\n")
    out: list[Block] = []
    k, last_end = 0, -10
    while k < len(lines):
        m = FENCE.match(lines[k])
        if not m:
            k += 1
            continue
        fence, start = m["fence"], k
        k += 1
        body = []
        while k < len(lines) and not lines[k].strip().startswith(fence):
            body.append(lines[k][len(m["indent"]):] if lines[k].startswith(m["indent"]) else lines[k])
            k += 1
        prev = start - 1
        while prev >= 0 and not lines[prev].strip():
            prev -= 1
        d = FILE_DIRECTIVE.match(lines[prev].strip()) if prev >= 0 else None
        out.append(Block(m["lang"], "\n".join(body) + "\n", start + 1, k + 1, d["name"] if d else None,
                         follows=prev == last_end))
        last_end = k
        k += 1
    return out


def normalise(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").split("\n")).strip("\n")


def matches(printed: str, shown: str) -> bool:
    """Whether a run's output equals the shown output, where `...` in the shown text stands for any text
    (as doctest's ELLIPSIS: for numbers that change with every version, such as bytes in `tl plan`)."""
    got, want = normalise(printed), normalise(shown)
    if "..." not in want:
        return got == want
    pattern = ".*?".join(re.escape(part) for part in want.split("..."))
    return re.fullmatch(pattern, got, re.DOTALL) is not None


def run_tl(argv: list[str]) -> tuple[int, str]:
    """Run the `tl` command in-process; its exit status and everything it printed (stdout, then stderr)."""
    from tensorlogic.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as e:  # argparse errors
            status = e.code if isinstance(e.code, int) else 1
    return status, out.getvalue() + err.getvalue()


def run_python(code: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            exec(compile(code, "<docs>", "exec"), {"__name__": "__docs__"})
        except Exception as e:  # reported as the block's failure
            return 1, out.getvalue() + f"{type(e).__name__}: {e}\n"
    return 0, out.getvalue()


def console_commands(text: str) -> list[tuple[str, str]]:
    """A console transcript as (command, expected output) pairs."""
    pairs: list[tuple[str, list[str]]] = []
    for line in text.rstrip("\n").split("\n"):
        if line.startswith("$ "):
            pairs.append((line[2:].strip(), []))
        elif pairs:
            pairs[-1][1].append(line)
        elif line.strip():
            raise ValueError(f"a console block must start with a '$ ' command line, not {line!r}")
    return [(c, "\n".join(o)) for c, o in pairs]


def check_page(page: Path) -> PageResult:
    """Run every block of one page in a fresh working folder; what failed, and what each output block got."""
    from tensorlogic.syntax.diagnostics import TLError
    from tensorlogic.syntax.parser import parse

    result = PageResult()
    blocks = blocks_of(page.read_text())
    previous_cwd = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="tl-docs-") as tmp:
        work = Path(tmp)
        (work / "data").symlink_to(ROOT / "examples" / "data", target_is_directory=True)
        (work / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
        os.chdir(work)
        try:
            for k, b in enumerate(blocks):
                nxt = blocks[k + 1] if k + 1 < len(blocks) else None
                expected = nxt if nxt is not None and nxt.lang == "output" and nxt.follows else None
                fail = result.failures.append
                if b.lang == "output":
                    prev = blocks[k - 1] if k else None
                    if not (b.follows and prev is not None and prev.lang in ("tl", "python") and prev.file is None):
                        fail(Failure(b.line, "an ```output block must directly follow a ```tl or ```python block"))
                    continue
                if b.file and b.lang != "tl":
                    (work / b.file).parent.mkdir(parents=True, exist_ok=True)
                    (work / b.file).write_text(b.text)
                    continue
                if b.lang in ("tl", "tl-fragment"):
                    try:
                        parse(b.text, b.file or "prog.tl")
                    except TLError as e:
                        fail(Failure(b.line, f"does not parse:\n{e.render()}"))
                        continue
                if b.lang == "tl":
                    (work / (b.file or "prog.tl")).write_text(b.text)
                    if b.file:
                        continue
                    status, printed = run_tl(["run", "prog.tl"])
                    if status != 0:
                        fail(Failure(b.line, f"`tl run` exited with status {status}:\n{printed}"))
                elif b.lang == "python":
                    status, printed = run_python(b.text)
                    if status != 0:
                        fail(Failure(b.line, f"the Python block failed:\n{printed}"))
                elif b.lang == "console":
                    try:
                        commands = console_commands(b.text)
                    except ValueError as e:
                        fail(Failure(b.line, str(e)))
                        continue
                    argvs = [shlex.split(cmd) for cmd, _ in commands]
                    if not all(a[:1] == ["tl"] and a[1:2] and a[1] in RUNNABLE_TL for a in argvs):
                        for a in argvs:  # a transcript of other commands is shown, not run: only typos fail
                            if a[:1] == ["tl"] and a[1:2] and a[1] not in RUNNABLE_TL | INTERACTIVE_TL:
                                fail(Failure(b.line, f"`{shlex.join(a)}`: no such tl subcommand"))
                        continue
                    got = []
                    for cmd, shown in commands:
                        argv = shlex.split(cmd)
                        _, printed = run_tl(argv[1:])
                        ok = matches(printed, shown)
                        got.append(f"$ {cmd}\n" + (shown if ok else printed).strip("\n") + "\n")
                        if not ok:
                            fail(Failure(b.line, f"`{cmd}` printed:\n{printed}\nthe page shows:\n{shown}"))
                    if any(f.line == b.line for f in result.failures):
                        result.outputs[b.line] = "".join(got)
                    continue
                else:
                    continue
                if expected is not None and not matches(printed, expected.text):
                    result.outputs[expected.line] = printed
                    fail(Failure(b.line, f"it printed:\n{printed}\nthe page shows:\n{expected.text}"))
        finally:
            os.chdir(previous_cwd)
    return result


def update(page: Path) -> int:
    """Rewrite the page's ```output blocks and console transcripts that do not match what the runs print."""
    result = check_page(page)
    lines = page.read_text().split("\n")
    by_line = {b.line: b for b in blocks_of(page.read_text())}
    for line in sorted(result.outputs, reverse=True):
        b = by_line[line]
        new = normalise(result.outputs[line]).split("\n")
        lines[b.line:b.end - 1] = new
    tmp = page.with_name(f".{page.name}.tmp")
    tmp.write_text("\n".join(lines))
    tmp.replace(page)
    left = [f for f in check_page(page).failures]
    for f in left:
        print(f"{page.relative_to(ROOT)}:{f.line}: {f.message}", file=sys.stderr)
    return 1 if left else 0


# ------------------------------------------------------------------------------------------------- tests

@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_runs_and_shows_its_real_output(page: Path) -> None:
    failures = check_page(page).failures
    rel = page.relative_to(ROOT)
    assert not failures, "\n\n".join(f"{rel}:{f.line}: {f.message}" for f in failures) + (
        f"\n\nIf the new output is right, write it into the page with: python tests/test_docs.py --update {rel}")


def test_site_builds_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(CONFIG),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True, cwd=ROOT)
    # (not --quiet: mkdocs then stops counting warnings, and --strict passes whatever happens)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "WARNING" not in log, f"mkdocs build --strict failed:\n{log}"
    assert (tmp_path / "site" / "index.html").exists()
    assert (tmp_path / "site" / "tutorial" / "first-program" / "index.html").exists()


def test_nav_lists_each_page_once() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML (a dependency of mkdocs) is not installed")

    def pages(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [p for v in node.values() for p in pages(v)]
        return [p for v in node for p in pages(v)] if isinstance(node, list) else []

    listed = pages(yaml.safe_load(CONFIG.read_text())["nav"])
    twice = sorted({p for p in listed if listed.count(p) > 1})
    assert not twice, f"{CONFIG.relative_to(ROOT)} lists these pages more than once in nav: {twice}"


def test_the_checker_catches_drift(tmp_path: Path) -> None:
    """The block checker itself: a wrong output, a failing program and an unparsable fragment are caught."""
    page = tmp_path / "page.md"
    page.write_text("```tl\nA = [1, 2]\nS = A[i]\nS?\n```\n\n```output\nS? 4\n```\n\n"
                    "```tl\nX = Y[\n```\n\n```tl-fragment\nC[i] = A[i] B[i]\n```\n\n"
                    "```tl-fragment\nC[i] = = A\n```\n\n```console\n$ tl rnu prog.tl\n```\n\n"
                    "```console\n$ tl repl\n```\n\n```console\n$ tl check prog.tl\nprog.tl: ok (...)\n```\n")
    failures = check_page(page).failures
    assert [f.line for f in failures] == [1, 11, 19, 23], failures
    assert "S = 3" in failures[0].message


def test_stdlib_page_lists_every_module_and_definition() -> None:
    """docs/reference/stdlib.md has a section per stdlib module naming each tensor the module defines."""
    from tensorlogic.syntax.parser import parse

    page = (DOCS / "reference" / "stdlib.md").read_text()
    for module in sorted((ROOT / "stdlib").glob("*.tl")):
        assert f"\n## {module.stem}\n" in page, f"docs/reference/stdlib.md has no section '## {module.stem}'"
        section = page.split(f"\n## {module.stem}\n", 1)[1].split("\n## ", 1)[0]
        statements = parse(module.read_text(), str(module)).statements
        heads = {getattr(st, "head", getattr(st, "lhs", None)) for st in statements}
        names = {h.name for h in heads if h is not None and hasattr(h, "name")}
        assert names, f"found no definitions in {module}"
        missing = [n for n in sorted(names)  # a scalar is written without brackets: `Loss = ...`
                   if not any(f"`{n}{c}" in section for c in "([ `")]
        assert not missing, f"docs/reference/stdlib.md does not describe {missing} of stdlib/{module.name}"


def test_cli_page_names_every_subcommand_and_option() -> None:
    """docs/reference/cli.md mentions each subcommand of `tl` (as `tl NAME`) and each of its --options."""
    import argparse

    from tensorlogic.cli import build_parser

    page = (DOCS / "reference" / "cli.md").read_text()
    missing = []
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                section = page.split(f"## tl {name}", 1)[1].split("\n## ", 1)[0] if f"## tl {name}" in page else ""
                if not section:
                    missing.append(f"a section '## tl {name}'")
                options = {o for a in sub._actions for o in a.option_strings if o.startswith("--") and o != "--help"}
                missing += [f"tl {name} {o}" for o in sorted(options) if f"{o}" not in section]
    assert not missing, f"docs/reference/cli.md does not document: {', '.join(missing)}"


def test_api_page_names_every_public_name() -> None:
    """docs/reference/api.md mentions every name tensorlogic exports and every public attribute of Program."""
    import tensorlogic as tl

    page = (DOCS / "reference" / "api.md").read_text()
    names = set(tl.__all__) | {n for n in dir(tl.Program) if not n.startswith("_")}
    missing = sorted(n for n in names if not re.search(rf"[`.]{n}\b", page))
    assert not missing, f"docs/reference/api.md does not document: {', '.join(missing)}"


def test_pages_are_found() -> None:
    names = {str(p.relative_to(DOCS)) for p in PAGES if p.is_relative_to(DOCS)}
    assert {"index.md", "tutorial/first-program.md", "reference/cli.md", "language.md"} <= names


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] != "--update":
        sys.exit("usage: python tests/test_docs.py --update PAGE.md ...")
    sys.exit(max(update(Path(p).resolve()) for p in sys.argv[2:]))
