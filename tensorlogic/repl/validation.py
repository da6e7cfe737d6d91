"""Input validation for the REPL prompt: a syntax error is marked at its column before anything runs.

The validator runs the real parser (`tensorlogic.syntax.parser.parse`) over the whole entry when Enter
would accept it; on a syntax error prompt-toolkit keeps the input, moves the cursor to the error and shows
the parser's message with its line and column. Meta-commands are checked against the command table.
"""

from __future__ import annotations

from prompt_toolkit.document import Document
from prompt_toolkit.validation import ValidationError, Validator

from ..syntax.diagnostics import TLError
from ..syntax.parser import parse
from .text import needs_more, offset_of


def syntax_error_at(text: str) -> tuple[int, int, str] | None:
    """(line, column, message) of the first syntax error in `text`, or None when it parses."""
    try:
        parse(text, "<repl>")
    except TLError as e:
        d = e.diagnostics[0]
        if d.span is None:
            return 1, 1, d.message
        return d.span.line, d.span.col, d.message
    return None


class TensorLogicValidator(Validator):
    """Rejects an entry that does not parse (or an unknown meta-command), pointing at the spot."""

    def validate(self, document: Document) -> None:
        text = document.text
        if not text.strip():
            return
        stripped = text.lstrip()
        if stripped.startswith(":"):
            from .commands import ALIASES, COMMANDS

            head = stripped[1:].split(" ", 1)[0]
            if ALIASES.get(head, head) not in COMMANDS:
                raise ValidationError(cursor_position=len(text) - len(stripped) + 1,
                                      message=f"unknown command ':{head}' (:help lists the commands)")
            return
        if needs_more(text):
            return
        err = syntax_error_at(text)
        if err is None:
            return
        line, col, message = err
        raise ValidationError(cursor_position=offset_of(text, line, col),
                              message=f"syntax error at line {line}, column {col}: {message}")
