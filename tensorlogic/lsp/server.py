"""The tensor logic language server (`tl lsp`): pygls over stdio.

It publishes the real parser's and analyser's diagnostics when a document is opened, changed (after a short
pause in typing) or saved, and answers hover requests with a tensor's type, role, shape and domains, a
symbol's domain, an index variable's range in its equation, or a built-in function's meaning. Data files
and imports are read relative to the document's folder. Nothing a document contains can stop the server:
every failure becomes a diagnostic (see `analysis.check`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from urllib.parse import urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from .. import __version__
from ..syntax.diagnostics import source_lines
from .analysis import CheckResult, Problem, check, hover

DEBOUNCE_S = 0.3  # analyse this long after the last keystroke

_SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning,
             "information": types.DiagnosticSeverity.Information}


class TensorLogicServer(LanguageServer):
    """A LanguageServer that remembers each open document's last check."""

    def __init__(self) -> None:
        super().__init__("tensorlogic", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.results: dict[str, tuple[int | None, CheckResult]] = {}  # uri -> (version checked, result)
        self.last_good: dict[str, CheckResult] = {}  # uri -> the last check whose analysis succeeded
        self.pending: dict[str, asyncio.Task] = {}

    # ------------------------------------------------------------ checking
    def document_path(self, uri: str) -> str | None:
        if urlparse(uri).scheme != "file":
            return None
        return self.workspace.get_text_document(uri).path

    def base_dir(self) -> Path | None:
        root = self.workspace.root_path
        return Path(root) if root else None

    def check_document(self, uri: str) -> CheckResult:
        """Check the document's current text (once per version) and remember the result."""
        doc = self.workspace.get_text_document(uri)
        cached = self.results.get(uri)
        if cached is not None and cached[0] == doc.version and doc.version is not None:
            return cached[1]
        with contextlib.redirect_stdout(sys.stderr):  # stdout is the protocol channel
            result = check(doc.source, self.document_path(uri), self.base_dir())
        self.results[uri] = (doc.version, result)
        if result.analyzed is not None:
            self.last_good[uri] = result
        return result

    def publish(self, uri: str) -> None:
        doc = self.workspace.get_text_document(uri)
        result = self.check_document(uri)
        lines = source_lines(doc.source)
        diagnostics = [self.to_lsp(p, uri, lines) for p in result.problems]
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, version=doc.version, diagnostics=diagnostics))

    def schedule(self, uri: str, delay: float) -> None:
        """Publish after `delay` seconds unless the document changes again before."""
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()

        async def later() -> None:
            await asyncio.sleep(delay)
            self.pending.pop(uri, None)
            if uri in self.workspace.text_documents:
                self.publish(uri)

        self.pending[uri] = asyncio.get_running_loop().create_task(later())

    # ------------------------------------------------------------ positions
    def to_client(self, lines: list[str], line: int, col: int) -> types.Position:
        text = lines[line] if 0 <= line < len(lines) else ""
        return types.Position(line=line, character=self.workspace.position_codec.client_num_units(text[:col]))

    def from_client(self, lines: list[str], pos: types.Position) -> int:
        """A client position's column in code points of our line."""
        text = lines[pos.line] if 0 <= pos.line < len(lines) else ""
        units = 0
        for k, ch in enumerate(text):
            if units >= pos.character:
                return k
            units += self.workspace.position_codec.client_num_units(ch)
        return len(text)

    def to_range(self, lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> types.Range:
        return types.Range(start=self.to_client(lines, *start), end=self.to_client(lines, *end))

    def to_lsp(self, p: Problem, uri: str, lines: list[str]) -> types.Diagnostic:
        related = [types.DiagnosticRelatedInformation(location=types.Location(uri=uri, range=self.to_range(
            lines, s, e)), message=note) for note, s, e in p.related]
        return types.Diagnostic(range=self.to_range(lines, p.start, p.end), message=p.message,
                                severity=_SEVERITY.get(p.severity, types.DiagnosticSeverity.Error),
                                source="tensorlogic", related_information=related or None)


def make_server() -> TensorLogicServer:
    """A server with its handlers registered (one per process or test)."""
    server = TensorLogicServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TensorLogicServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: TensorLogicServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri, DEBOUNCE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: TensorLogicServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.results.pop(uri, None)  # data files next to it may have changed too
        ls.publish(uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TensorLogicServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        task = ls.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        ls.results.pop(uri, None)
        ls.last_good.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: TensorLogicServer, params: types.HoverParams) -> types.Hover | None:
        uri = params.text_document.uri
        try:
            doc = ls.workspace.get_text_document(uri)
            lines = source_lines(doc.source)
            col = ls.from_client(lines, params.position)
            result = ls.check_document(uri)
            stale = False
            if result.analyzed is None and uri in ls.last_good:  # mid-edit: names from the last good analysis
                result, stale = ls.last_good[uri], True
            found = hover(result, doc.source, params.position.line, col, stale=stale)
        except Exception:  # never fail a hover
            logging.getLogger(__name__).exception("hover failed")
            return None
        if found is None:
            return None
        text, start, end = found
        line = params.position.line
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                           range=ls.to_range(lines, (line, start), (line, end)))

    return server


def main() -> int:
    """Serve over stdio until the client disconnects (`tl lsp`)."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    make_server().start_io()
    return 0
