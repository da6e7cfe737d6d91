"""The interactive REPL (`tl repl`, or `tl` alone) and the IPython `%%tl` magic.

Modules: `session` (the live program, entries, roll-back), `commands` (`:help`, `:load`, `:show`, ...),
`render` (what `:show` prints), `text` (brackets, spans, paths), `completion`, `validation` and `ui`
(the prompt-toolkit front end), `magic` (IPython). See docs/repl.md.
"""

from __future__ import annotations

from .session import Reply, Session


def run_repl(load: str | None = None, backend: str = "numpy") -> int:
    """Start the REPL, first loading `load` when given; returns the exit status."""
    from .ui import run_repl as _run  # prompt-toolkit is imported only when a REPL starts

    return _run(load, backend)


__all__ = ["run_repl", "Session", "Reply"]
