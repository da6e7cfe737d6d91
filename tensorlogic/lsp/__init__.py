"""The tensor logic language server: diagnostics and hover for editors (`tl lsp`, pygls over stdio).

`analysis` holds what the server computes (diagnostics and hover text, no LSP types); `server` wires it to
pygls. pygls is imported only when the server starts.
"""

from __future__ import annotations


def main() -> int:
    """Run the language server over stdio."""
    from .server import main as server_main

    return server_main()


__all__ = ["main"]
