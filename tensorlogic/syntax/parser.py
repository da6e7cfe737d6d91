"""Parser: source text to the AST of `ast.py`, using the lark grammar in `grammar.lark`.

`parse(source, file)` returns an `ast.Program` or raises `TLSyntaxError` whose diagnostic shows
``file:line:col``, the line, a caret, and what was expected in plain words.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, Span, TLError, TLSyntaxError, source_lines

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")

_OPEN = {"LPAR", "LSQB"}
_CLOSE = {"RPAR", "RSQB"}


class _DropNewlinesInBrackets:
    """Post-lexer: newlines inside () or [] do not end a statement."""

    always_accept = ("_NL",)

    def process(self, stream):
        depth = 0
        for tok in stream:
            if tok.type in _OPEN:
                depth += 1
            elif tok.type in _CLOSE:
                depth = max(0, depth - 1)
            elif tok.type == "_NL" and depth > 0:
                continue
            yield tok


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(GRAMMAR_PATH.read_text(), parser="lalr", lexer="contextual",
                postlex=_DropNewlinesInBrackets(), propagate_positions=True, maybe_placeholders=True)


# What each terminal is, in plain words, for "expected ..." messages.
_WORDS = {
    "TENSOR": "a tensor name (capitalised)", "VAR": "an index variable (lower-case)", "FUNC": "a function",
    "NUMBER": "a number", "INT": "an integer", "STRING": "a quoted string", "ASSIGN": "'=' (or +=, max=, min=, avg=)",
    "RULE_ARROW": "'<-'", "_NL": "the end of the line", "$END": "the end of the input", "LPAR": "'('",
    "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','", "DOT": "'.'", "QMARK": "'?'",
    "EQUAL": "'='", "ADDOP": "'+' or '-'", "MINUS": "'-'", "PLUS": "'+'", "SLASH": "'/'", "STAR": "'*'",
    "CIRCUMFLEX": "'^'", "COLON": "':'", "SEMICOLON": "';'", "CMP": "a comparison", "NOT": "'not'",
    "MODIFIER": "a modifier (const, learnable, sparse, dense, bool, real)", "SIGN": "'+' or '-'",
    "MODNAME": "a module name", "PERCENT": "'%'",
}


def _expected_words(expected: set[str], closer: str | None = None) -> str:
    """Plain words for a set of terminals; `closer` (the bracket that must close next) comes first."""
    wrong = {"RPAR", "RSQB"} - {closer} if closer else set()
    names = sorted({_WORDS.get(e, e.lower()) for e in expected if not e.startswith("__") and e not in wrong
                    and e != closer})
    if len(names) > 6:
        names = names[:6] + ["..."]
    if closer in expected:
        names.insert(0, _WORDS[closer])
    return ", ".join(names)


def _open_bracket(source: str, line: int, col: int) -> str | None:
    """The terminal of the bracket that must close next at (line, col), ignoring strings and comments."""
    lines = source_lines(source)
    stack: list[str] = []
    for n, text in enumerate(lines[:line], 1):
        in_str = False
        for c_idx, ch in enumerate(text, 1):
            if n == line and c_idx >= col:
                break
            if ch == '"':
                in_str = not in_str
            elif in_str:
                continue
            elif ch == "#":
                break
            elif ch in "([":
                stack.append("RPAR" if ch == "(" else "RSQB")
            elif ch in ")]" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _span_of(meta_or_tok, file: str, source: str) -> Span | None:
    line = getattr(meta_or_tok, "line", None)
    if line is None:
        return None
    return Span(file, line, meta_or_tok.column, meta_or_tok.end_line, meta_or_tok.end_column, source)


def _syntax_error(err: UnexpectedInput, file: str, source: str) -> TLSyntaxError:
    line, col = getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1
    hint = None
    if isinstance(err, UnexpectedCharacters):
        lines = source_lines(source)
        text = lines[line - 1] if line - 1 < len(lines) else ""
        ch = text[col - 1] if 0 <= col - 1 < len(text) else "?"
        msg = f"unexpected character {ch!r}"
        exp = _expected_words(set(err.allowed or ()))
        if exp:
            msg += f"; expected {exp}"
        if ch == "'":
            hint = "quote symbols with double quotes; a prime (p') must follow a name directly"
        span = Span(file, line, col, line, col + 1, source)
    elif isinstance(err, UnexpectedEOF):
        lines = source_lines(source) or [""]
        line, col = len(lines), len(lines[-1]) + 1
        closer = _open_bracket(source, line, col)
        msg = f"unexpected end of input; expected {_expected_words(set(err.expected), closer)}"
        span = Span(file, line, col, line, col + 1, source)
    else:
        assert isinstance(err, UnexpectedToken)
        tok = err.token
        if tok.type == "$END":
            lines = source_lines(source) or [""]
            line, col = len(lines), len(lines[-1]) + 1
            what = "end of input"
        elif tok.type == "_NL":
            what = "end of line"
            col = (tok.column or col)
        else:
            what = repr(str(tok))
        closer = _open_bracket(source, line, col)
        msg = f"unexpected {what}; expected {_expected_words(set(err.expected), closer)}"
        width = max(1, len(str(tok))) if tok.type not in ("_NL", "$END") else 1
        span = Span(file, line, col, line, col + width, source)
        if err.expected & {"RPAR", "RSQB"} and tok.type not in ("RPAR", "RSQB"):
            hint = "is a bracket left open? A statement inside ( ) or [ ] continues over new lines"
        if str(tok) == "(" and "ASSIGN" in err.expected:
            hint = "write a product with a parenthesised factor as `A * (B + C)`"
    return TLSyntaxError(Diagnostic(msg, span, hint))


def _unquote(s: str) -> str:
    return bytes(s[1:-1], "utf-8").decode("unicode_escape") if "\\" in s else s[1:-1]


class _ToAST(Transformer):
    """lark parse tree to `ast` dataclasses."""

    def __init__(self, file: str, source: str):
        super().__init__()
        self.file, self.source = file, source

    def _sp(self, meta) -> Span | None:
        return _span_of(meta, self.file, self.source)

    def _text(self, meta) -> str:
        return self.source[meta.start_pos:meta.end_pos]

    # ------------------------------------------------------------ program
    def start(self, items):
        return [s for s in items if not isinstance(s, Token)]

    # ------------------------------------------------------------ index expressions
    @v_args(meta=True)
    def ix_var(self, meta, items):
        return ast.IxVar(str(items[0]), self._sp(meta))

    @v_args(meta=True)
    def ix_int(self, meta, items):
        return ast.IxInt(int(items[0]), self._sp(meta))

    @v_args(meta=True)
    def ix_negint(self, meta, items):
        return ast.IxInt(-int(items[0]), self._sp(meta))

    @v_args(meta=True)
    def ix_name(self, meta, items):
        return ast.IxSymbol(str(items[0]), False, self._sp(meta))

    @v_args(meta=True)
    def ix_string(self, meta, items):
        return ast.IxSymbol(_unquote(str(items[0])), True, self._sp(meta))

    @v_args(meta=True)
    def ix_binop(self, meta, items):
        return ast.IxBin(str(items[1]), items[0], items[2], self._sp(meta))

    @v_args(meta=True)
    def ix_div(self, meta, items):
        return ast.IxBin("/", items[0], items[1], self._sp(meta))

    @v_args(meta=True)
    def ix_mod(self, meta, items):
        return ast.IxBin("%", items[0], items[1], self._sp(meta))

    @v_args(meta=True)
    def index_pos(self, meta, items):
        return ast.Index(items[0], False, items[1] is not None, self._sp(meta))

    @v_args(meta=True)
    def virtual_index(self, meta, items):
        return ast.Index(items[0], True, False, self._sp(meta))

    @v_args(meta=True)
    def slice(self, meta, items):
        return ast.Slice(items[0], items[1], self._sp(meta))

    # ------------------------------------------------------------ refs and expressions
    @v_args(meta=True)
    def scalar_ref(self, meta, items):
        return ast.Ref(str(items[0]), None, False, self._sp(meta))

    def _indices(self, items):
        return tuple(i for i in items[1:] if i is not None)

    @v_args(meta=True)
    def numeric_ref(self, meta, items):
        return ast.Ref(str(items[0]), self._indices(items), False, self._sp(meta))

    @v_args(meta=True)
    def bool_ref(self, meta, items):
        return ast.Ref(str(items[0]), self._indices(items), True, self._sp(meta))

    @v_args(meta=True)
    def number(self, meta, items):
        return ast.Number(float(items[0]), str(items[0]), self._sp(meta))

    @v_args(meta=True)
    def var_value(self, meta, items):
        return ast.VarValue(str(items[0]), self._sp(meta))

    @v_args(meta=True)
    def call(self, meta, items):
        return ast.Call(str(items[0]), tuple(a for a in items[1:] if a is not None), self._sp(meta))

    @v_args(meta=True)
    def binop(self, meta, items):
        left, op, right = items
        sign = 1 if str(op) == "+" else -1
        if isinstance(left, ast.Sum):
            return ast.Sum(left.terms + (right,), left.signs + (sign,), self._sp(meta))
        return ast.Sum((left, right), (1, sign), self._sp(meta))

    @v_args(meta=True)
    def neg(self, meta, items):
        return ast.Neg(items[0], self._sp(meta))

    def _product(self, meta, left, right, divides):
        if isinstance(left, ast.Product):
            return ast.Product(left.factors + (right,), left.divides + (divides,), self._sp(meta))
        return ast.Product((left, right), (False, divides), self._sp(meta))

    @v_args(meta=True)
    def juxt(self, meta, items):
        return self._product(meta, items[0], items[1], False)

    @v_args(meta=True)
    def mul(self, meta, items):
        return self._product(meta, items[0], items[1], False)

    @v_args(meta=True)
    def div(self, meta, items):
        return self._product(meta, items[0], items[1], True)

    @v_args(meta=True)
    def pow(self, meta, items):
        return ast.Power(items[0], items[1], self._sp(meta))

    # ------------------------------------------------------------ statements
    @v_args(meta=True)
    def equation(self, meta, items):
        lhs, op, rhs = items
        sp = self._sp(meta)
        if isinstance(rhs, tuple) and rhs[0] == "file":
            if str(op) != "=":
                raise _StatementError(f"a file can only be read with '=', not '{op}'", sp)
            return ast.FileRead(lhs, rhs[1], sp)
        if isinstance(rhs, tuple) and rhs[0] == "literal":
            if str(op) != "=":
                raise _StatementError(f"a literal tensor is given with '=', not '{op}'", sp)
            return ast.Literal(lhs, rhs[1], sp)
        return ast.Equation(lhs, str(op), rhs, sp)

    def file_read(self, items):
        return ("file", _unquote(str(items[0])))

    def literal_rhs(self, items):
        return ("literal", items[0])

    def literal(self, items):
        return [i for i in items if i is not None]

    def signed_number(self, items):
        sign, num = items
        v = float(num)
        return -v if sign is not None and str(sign) == "-" else v

    @v_args(meta=True)
    def file_write(self, meta, items):
        return ast.FileWrite(_unquote(str(items[0])), items[1], self._sp(meta))

    @v_args(meta=True)
    def rule(self, meta, items):
        return ast.Rule(items[0], tuple(items[2]), self._sp(meta))

    def body(self, items):
        return [ast.BodyAtom(i, False, i.span) if isinstance(i, ast.Ref) else i for i in items]

    @v_args(meta=True)
    def negated(self, meta, items):
        return ast.BodyAtom(items[1], True, self._sp(meta))

    @v_args(meta=True)
    def comparison(self, meta, items):
        return ast.Comparison(str(items[1]), items[0], items[2], self._sp(meta))

    @v_args(meta=True)
    def fact(self, meta, items):
        return ast.Fact(items[0], self._sp(meta))

    @v_args(meta=True)
    def query(self, meta, items):
        return ast.Query(items[0], self._text(meta).rstrip("?").strip(), self._sp(meta))

    # ------------------------------------------------------------ declarations
    @v_args(meta=True)
    def tensor_decl(self, meta, items):
        name = str(items[0])
        dims, boolean, mods = None, None, []
        for it in items[1:]:
            if isinstance(it, tuple) and it and it[0] in ("sq", "rd"):
                dims, boolean = it[1], it[0] == "rd"
            elif isinstance(it, str):
                mods.append(it)
        if "bool" in mods:
            boolean = True
        if "real" in mods:
            boolean = False
        return ast.TensorDecl(name, dims, boolean, tuple(mods), self._sp(meta))

    def dim_list_sq(self, items):
        return ("sq", tuple(i for i in items if i is not None))

    def dim_list_rd(self, items):
        return ("rd", tuple(i for i in items if i is not None))

    def modifier(self, items):
        return str(items[0])

    @v_args(meta=True)
    def dim_size(self, meta, items):
        return ast.DimSpec(size=int(items[0]), span=self._sp(meta))

    @v_args(meta=True)
    def dim_domain(self, meta, items):
        return ast.DimSpec(domain=str(items[0]), span=self._sp(meta))

    @v_args(meta=True)
    def dim_var(self, meta, items):
        return ast.DimSpec(var=str(items[0]), span=self._sp(meta))

    @v_args(meta=True)
    def dim_var_size(self, meta, items):
        return ast.DimSpec(var=str(items[0]), size=int(items[1]), span=self._sp(meta))

    @v_args(meta=True)
    def dim_var_domain(self, meta, items):
        return ast.DimSpec(var=str(items[0]), domain=str(items[1]), span=self._sp(meta))

    @v_args(meta=True)
    def index_decl(self, meta, items):
        *names, what = items
        if what.type == "INT":
            return ast.IndexDecl(tuple(map(str, names)), int(what), None, self._sp(meta))
        return ast.IndexDecl(tuple(map(str, names)), None, str(what), self._sp(meta))

    @v_args(meta=True)
    def domain_decl(self, meta, items):
        name = str(items[0])
        body = items[1] if len(items) > 1 else None
        if body is None:
            return ast.DomainDecl(name, None, None, self._sp(meta))
        if body[0] == "size":
            return ast.DomainDecl(name, body[1], None, self._sp(meta))
        return ast.DomainDecl(name, None, body[1], self._sp(meta))

    def domain_size(self, items):
        return ("size", int(items[0]))

    def domain_symbols(self, items):
        return ("symbols", tuple(_unquote(str(s)) if str(s).startswith('"') else str(s) for s in items))

    @v_args(meta=True)
    def import_decl(self, meta, items):
        tok = str(items[0])
        if tok.startswith('"'):
            return ast.Import(_unquote(tok), True, self._sp(meta))
        return ast.Import(tok, False, self._sp(meta))

    @v_args(meta=True)
    def module_decl(self, meta, items):
        return ast.ModuleDecl(str(items[0]), tuple(str(i) for i in items[1:] if i is not None), self._sp(meta))

    @v_args(meta=True)
    def use_decl(self, meta, items):
        alias = items[-1] if isinstance(items[-1], str) and not isinstance(items[-1], Token) else None
        args = tuple(i for i in items[1:] if isinstance(i, ast.UseArg))
        return ast.Use(str(items[0]), args, alias, self._sp(meta))

    def use_as(self, items):
        return str(items[0])

    @v_args(meta=True)
    def use_arg(self, meta, items):
        name, value = items
        if isinstance(value, Token):
            value = int(value) if value.type == "INT" else str(value)
        return ast.UseArg(str(name), value, self._sp(meta))

    @v_args(meta=True)
    def set_decl(self, meta, items):
        return ast.Setting(str(items[0]), float(items[1]), self._sp(meta))


class _StatementError(Exception):
    def __init__(self, message: str, span: Span | None):
        super().__init__(message)
        self.message, self.span = message, span


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, text) of each statement-sized chunk, for error recovery: a line, joined with the
    next ones while brackets are open and the next line does not look like a new statement."""
    lines = source_lines(text)
    out, n = [], 0
    while n < len(lines):
        start, buf, depth = n, [lines[n]], 0
        while True:
            code = lines[n].split("#", 1)[0]
            depth += sum(code.count(c) for c in "([") - sum(code.count(c) for c in ")]")
            nxt = lines[n + 1] if n + 1 < len(lines) else None
            if depth <= 0 or nxt is None or (nxt[:1].isalpha() and nxt[:1].isupper()) or nxt.startswith('"'):
                break
            n += 1
            buf.append(lines[n])
        out.append((start + 1, "\n".join(buf)))
        n += 1
    return out


def _more_errors(text: str, file: str, first: UnexpectedInput) -> list[Diagnostic]:
    """Syntax errors after the first one: parse the remaining statements one chunk at a time."""
    first_line = getattr(first, "line", None) or 0
    found: list[Diagnostic] = []
    for start, chunk in _logical_lines(text):
        if start <= first_line + chunk.count("\n") and start + chunk.count("\n") >= first_line:
            continue
        if start < first_line or not chunk.strip():
            continue
        padded = "\n" * (start - 1) + chunk + "\n"
        try:
            _lark().parse(padded)
        except UnexpectedInput as err:
            d = _syntax_error(err, file, text).diagnostics[0]
            found.append(d)
        if len(found) >= 20:
            break
    return found


def parse_tree(source: str) -> Tree:
    """The raw lark tree (for `tl show --tree` and debugging)."""
    return _lark().parse(source)


def parse(source: str, file: str = "<input>") -> ast.Program:
    """Parse a whole program. Raises TLSyntaxError with a rendered diagnostic."""
    text = source if source.endswith("\n") else source + "\n"
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as err:
        first = _syntax_error(err, file, text)
        raise TLSyntaxError(first.diagnostics + _more_errors(text, file, err)) from None
    try:
        stmts = _ToAST(file, text).transform(tree)
    except VisitError as err:
        inner = err.orig_exc
        if isinstance(inner, _StatementError):
            raise TLSyntaxError(Diagnostic(inner.message, inner.span)) from None
        if isinstance(inner, TLError):
            raise inner from None
        raise
    return ast.Program(list(stmts), file, text)


def parse_expression(source: str, file: str = "<input>") -> ast.Expr:
    """Parse one expression (as in a query), e.g. `Ancestor(Alice, x)`."""
    prog = parse(source.strip().rstrip("?") + "?", file)
    if len(prog.statements) != 1 or not isinstance(prog.statements[0], ast.Query):
        raise TLSyntaxError(Diagnostic(f"expected one expression, got {source!r}"))
    return prog.statements[0].expr
