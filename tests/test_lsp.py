"""The language server end to end (pytest-lsp): `tl lsp` started as editors start it, over stdio.

Diagnostics are checked against positions found in the test's own text (where the stray token is), and
hovers against shapes computed here with numpy and from the facts written here.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pygls", reason="the language server needs pygls (pip install -e '.[dev]')")
pytest_lsp = pytest.importorskip("pytest_lsp", reason="the LSP tests need pytest-lsp (pip install -e '.[dev]')")
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402

# pytest-asyncio (used by pytest-lsp) runs these tests and the server fixture in one event loop per module.
pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVER = [sys.executable, "-c", "import sys; from tensorlogic.cli import main; sys.exit(main(['lsp']))"]
ROOT = Path(__file__).resolve().parents[1]


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=SERVER))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=ROOT.as_uri()))
    yield
    await lsp_client.shutdown_session()


_docs = iter(range(10**6))


def _uri(folder: Path | None = None, name: str | None = None) -> str:
    folder = folder or ROOT / "build" / "lsp-test"
    return (folder / (name or f"doc{next(_docs)}.tl")).as_uri()


async def _diagnostics(client: LanguageClient, uri: str, timeout: float = 20.0) -> list[types.Diagnostic]:
    """The diagnostics the server publishes for uri (waits for the first publication)."""
    for _ in range(int(timeout / 0.05)):
        if uri in client.diagnostics:
            return list(client.diagnostics[uri])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no diagnostics published for {uri} within {timeout}s")


async def _open(client: LanguageClient, text: str, uri: str | None = None) -> tuple[str, list[types.Diagnostic]]:
    uri = uri or _uri()
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="tensorlogic", version=1, text=text)))
    return uri, await _diagnostics(client, uri)


async def _hover(client: LanguageClient, uri: str, line: int, character: int) -> str | None:
    h = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=line, character=character)))
    if h is None:
        return None
    assert isinstance(h.contents, types.MarkupContent)
    return h.contents.value


async def test_syntax_error_at_its_line_and_column(client: LanguageClient):
    lines = ["Parent(Alice, Bob).", "C[i, k] = A[i, j]) B[j, k]", "C?"]
    uri, diags = await _open(client, "\n".join(lines) + "\n")
    assert len(diags) == 1
    d = diags[0]
    assert d.severity == types.DiagnosticSeverity.Error
    assert (d.range.start.line, d.range.start.character) == (1, lines[1].index(")"))
    assert "unexpected ')'" in d.message


async def test_columns_are_utf16_units(client: LanguageClient):
    line = 'Likes("😋", Bob) ]'  # the emoji is one code point but two UTF-16 units
    uri, diags = await _open(client, line + "\n")
    assert len(diags) == 1
    prefix = line[:line.index("]")]
    assert diags[0].range.start.character == len(prefix.encode("utf-16-le")) // 2 == len(prefix) + 1


async def test_arity_mismatch_is_an_analysis_error(client: LanguageClient):
    lines = ["A = [1, 2, 3]", "B[i] = A[i, j]", "B?"]
    uri, diags = await _open(client, "\n".join(lines) + "\n")
    assert diags, "an arity mismatch must be reported"
    arity = [d for d in diags if "with 1 index" in d.message and "with 2" in d.message]
    assert len(arity) == 1, [(d.range, d.message) for d in diags]
    d = arity[0]
    # the error and its note point at the two uses: the literal (line 0) and the read A[i, j] (line 1)
    places = {(d.range.start.line, d.range.start.character)}
    places |= {(r.location.range.start.line, r.location.range.start.character) for r in d.related_information or []}
    assert places == {(0, 0), (1, lines[1].index("A[i, j]"))}


async def test_several_analysis_errors_are_all_published(client: LanguageClient):
    lines = ["Y[i] = Undefined1[i]", "Z[i] = Undefined2[i]"]
    uri, diags = await _open(client, "\n".join(lines) + "\n")
    where = sorted((d.range.start.line, d.range.start.character) for d in diags)
    assert where == [(0, lines[0].index("Undefined1")), (1, lines[1].index("Undefined2"))]


async def test_valid_program_has_no_diagnostics(client: LanguageClient):
    text = (ROOT / "examples" / "family_tree.tl").read_text()
    uri, diags = await _open(client, text, _uri(ROOT / "examples", "family_tree.tl"))
    assert diags == []


async def test_hover_shows_shape_type_and_role(client: LanguageClient, tmp_path: Path):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(3, 4))
    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.save(tmp_path / "w.npy", w)  # read relative to the document's folder
    lines = ['W = "w.npy"', f"X = [{', '.join(map(str, x))}]", "Y[i] = W[i, j] X[j]", "Y?"]
    uri, diags = await _open(client, "\n".join(lines) + "\n", _uri(tmp_path, "prog.tl"))
    assert diags == []

    def shape_text(shape: tuple[int, ...]) -> str:
        return "shape: " + " × ".join(str(n) for n in shape)

    text = await _hover(client, uri, 2, lines[2].index("W[") + 1)
    assert text is not None and shape_text(w.shape) in text and "real" in text and "data" in text
    text = await _hover(client, uri, 2, 0)
    assert shape_text((w @ x).shape) in text and "computed" in text and "real" in text
    text = await _hover(client, uri, 2, lines[2].index("j]"))  # j is summed: not on the left
    assert f"[0, {w.shape[1]})" in text and "projected out" in text
    text = await _hover(client, uri, 1, 0)
    assert shape_text(x.shape) in text
    assert await _hover(client, uri, 2, lines[2].index("=")) is None  # an operator is not a name


async def test_hover_on_relation_lists_its_symbols(client: LanguageClient):
    facts = [("Alice", "Bob"), ("Bob", "Carol"), ("Carol", "Dan")]
    lines = [f"Parent({a}, {b})." for a, b in facts]
    lines += ["Ancestor(x, y) <- Parent(x, y).", "Ancestor(x, z) <- Ancestor(x, y), Parent(y, z).",
              "Ancestor(Alice, x)?"]
    uri, diags = await _open(client, "\n".join(lines) + "\n")
    assert diags == []
    people = sorted({p for f in facts for p in f})
    text = await _hover(client, uri, 3, 2)
    assert "bool" in text and "computed" in text and f"shape: {len(people)} × {len(people)}" in text
    assert all(p in text for p in people)
    text = await _hover(client, uri, 0, 1)
    assert "bool" in text and "data" in text
    text = await _hover(client, uri, 0, lines[0].index("Bob"))
    assert "Bob" in text and "symbol" in text
    text = await _hover(client, uri, 5, lines[5].index("x)?"))  # the query's free variable
    assert f"[0, {len(people)})" in text


async def test_change_updates_diagnostics(client: LanguageClient):
    uri, diags = await _open(client, "X = [1, 2]\nX?\n")
    assert diags == []
    client.diagnostics.pop(uri, None)
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=1, character=0), end=types.Position(line=1, character=1)),
            text="Q")]))
    diags = await _diagnostics(client, uri)
    assert len(diags) == 1 and "Q" in diags[0].message and diags[0].range.start.line == 1
    # while the text has an error, hover still knows X from the last good analysis
    text = await _hover(client, uri, 0, 0)
    assert text is not None and "shape: 2" in text


async def test_bad_input_never_stops_the_server(client: LanguageClient):
    for text in ["(" * 5000, "\x00\x01 ]]] ???", "X[" + "i," * 3000 + "i] = Y[i]", '"unterminated', "Ä = 1\n",
                 "tensor W[-1]\n", "X = [[1, 2], [3]]\n", "import nosuchmodule\n", "W = \"missing.npy\"\nW?\n"]:
        uri, diags = await _open(client, text)
        assert diags, f"no diagnostic for {text[:30]!r}"
        assert all(d.range.start.line >= 0 and d.range.start.character >= 0 for d in diags)
    uri, diags = await _open(client, "X = [1, 2]\nX?\n")  # still serving
    assert diags == [] and "shape: 2" in await _hover(client, uri, 0, 0)


async def test_save_rereads_data_files(client: LanguageClient, tmp_path: Path):
    uri, diags = await _open(client, 'W = "w.npy"\nW?\n', _uri(tmp_path, "save.tl"))
    assert [d.range.start.line for d in diags if "cannot read 'w.npy'" in d.message] == [0]
    np.save(tmp_path / "w.npy", np.ones((2, 5)))
    client.diagnostics.pop(uri, None)
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert await _diagnostics(client, uri) == []
    assert "shape: 2 × 5" in await _hover(client, uri, 0, 0)


async def test_unsaved_buffer(client: LanguageClient):
    uri, diags = await _open(client, "Edge(A, B). Edge(B, C).\nimport logic\nClosure(A, x)?\n", "untitled:Untitled-1")
    assert diags == []
    text = await _hover(client, uri, 2, 0)  # a relation the imported module defines
    assert "bool" in text and "computed" in text
