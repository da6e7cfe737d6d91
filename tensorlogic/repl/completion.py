"""Tab completion for the REPL: tensor names, functions, index names, symbols, stdlib modules, commands.

Names come from the session's live program (its analysed tensors and domains, and every name in its
parsed statements, imported modules included) plus the built-in functions and the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from prompt_toolkit.completion import CompleteEvent, Completer, Completion, PathCompleter
from prompt_toolkit.document import Document

from ..ir.lower import BUILTINS
from ..syntax import ast
from ..syntax.highlight import DECLARATION_KEYWORDS, MODIFIERS
from ..syntax.imports import stdlib_modules
from .session import Session
from .text import walk

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*'*$")
BACKENDS = ("numpy", "torch")


@dataclass
class Names:
    """Names a session knows, by kind."""

    tensors: dict[str, str] = field(default_factory=dict)  # name -> short description
    indices: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    symbols: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)


def session_names(session: Session) -> Names:
    """The names to complete in this session."""
    names = Names(functions=set(BUILTINS) | set(session.functions))
    try:
        prog = session.live()
    except Exception:  # completion must never break the prompt
        return names
    a = prog.analyzed
    for name, t in a.tensors.items():
        kind = ("relation" if t.boolean else "tensor") + (f" {'x'.join(map(str, t.shape))}" if t.shape else "")
        names.tensors[name] = kind
    for dom in a.domains.values():
        names.symbols.update(s for s in (dom.symbols or []) if re.fullmatch(r"[A-Za-z_]\w*'*", s))
    for node in walk(prog.ast.statements):
        if isinstance(node, ast.Ref):
            names.tensors.setdefault(node.name, "tensor")
        elif isinstance(node, ast.IxVar | ast.VarValue):
            names.indices.add(node.name)
        elif isinstance(node, ast.IndexDecl):
            names.indices.update(node.names)
            if node.domain:
                names.domains.add(node.domain)
        elif isinstance(node, ast.TensorDecl):
            names.tensors.setdefault(node.name, "tensor")
        elif isinstance(node, ast.DimSpec):
            if node.var:
                names.indices.add(node.var)
            if node.domain:
                names.domains.add(node.domain)
        elif isinstance(node, ast.DomainDecl):
            names.domains.add(node.name)
        elif isinstance(node, ast.IxSymbol) and not node.quoted:
            names.symbols.add(node.name)
    names.symbols -= set(names.tensors)
    return names


class TensorLogicCompleter(Completer):
    """Completes the word before the cursor from the session's names, by context."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.paths = PathCompleter(expanduser=True)

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        line = document.current_line_before_cursor
        m = re.match(r"^\s*:(\w*)$", line)
        if m and document.cursor_position_row == 0:
            yield from self._commands(m.group(1))
            return
        m = re.match(r"^\s*:(\w+)\s+(.*)$", line)
        if m and document.cursor_position_row == 0:
            yield from self._command_arg(m.group(1), m.group(2), complete_event)
            return
        m = re.match(r"^(.*;)?\s*import\s+([\w.]*)$", line)
        if m:
            yield from _matching(m.group(2), {mod: "stdlib module" for mod in stdlib_modules()})
            return
        word_m = _WORD.search(line)
        word = word_m.group(0) if word_m else ""
        if not word:
            return
        names = session_names(self.session)
        start_of_statement = re.fullmatch(r"(.*;)?\s*" + re.escape(word), line) is not None
        cands: dict[str, str] = {}
        if word[0].isupper():
            cands.update(names.tensors)
            cands.update({s: "symbol" for s in names.symbols if s not in cands})
            cands.update({d: "domain" for d in names.domains if d not in cands})
        else:
            cands.update({f: "function" for f in names.functions})
            cands.update({i: "index" for i in names.indices if i not in cands})
            if start_of_statement:
                cands.update({k: "declaration" for k in DECLARATION_KEYWORDS})
            elif re.match(r"^\s*tensor\b", line):
                cands.update({k: "modifier" for k in MODIFIERS})
            else:
                cands.setdefault("not", "negation")
        yield from _matching(word, cands)

    def _commands(self, prefix: str) -> Iterable[Completion]:
        from .commands import COMMANDS

        for name, cmd in COMMANDS.items():
            if name.startswith(prefix):
                yield Completion(name, -len(prefix), display=f":{name}", display_meta=cmd.help)

    def _command_arg(self, command: str, arg: str, event: CompleteEvent) -> Iterable[Completion]:
        from .commands import ALIASES, COMMANDS

        cmd = COMMANDS.get(ALIASES.get(command, command))
        if cmd is None or cmd.arg is None:
            return
        if cmd.arg == "tensor":
            yield from _matching(arg, session_names(self.session).tensors)
        elif cmd.arg == "backend":
            yield from _matching(arg, {b: "backend" for b in BACKENDS})
        elif cmd.arg == "command":
            yield from _matching(arg, {c.name: c.help for c in COMMANDS.values()})
        elif cmd.arg == "file":
            yield from self.paths.get_completions(Document(arg, len(arg)), event)


def _matching(prefix: str, cands: dict[str, str]) -> Iterable[Completion]:
    for name in sorted(cands, key=lambda s: (s.lower(), s)):
        if name.startswith(prefix) and name != prefix:
            yield Completion(name, -len(prefix), display_meta=cands[name])
