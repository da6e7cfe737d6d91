"""Pygments lexer for tensor logic, used by the REPL's highlighting and registered as a Pygments entry point.

Token classes follow the language (docs/language.md):

- a capitalised name is a tensor (``Name.Class``); inside a tensor's index brackets a capitalised name is a
  symbol constant (``Name.Constant``) such as ``Alice``;
- a lower-case name is an index variable (``Name.Variable``), or a function when ``(`` follows
  (``Name.Builtin`` for the built-in functions, ``Name.Function`` for others);
- ``=``, ``+=``, ``max=``, ``min=``, ``avg=``, ``<-``, ``:-``, arithmetic and comparisons are ``Operator``;
  ``not`` in a rule body is ``Operator.Word``; the query mark ``?`` is ``Operator``;
- ``tensor``, ``index``, ``domain``, ``import`` and ``set`` at the start of a statement are
  ``Keyword.Declaration``; declaration modifiers (``const``, ``learnable``, ...) are ``Keyword.Type``;
  domain names in declarations are ``Name.Namespace``, module names ``Name.Namespace``, settings
  ``Name.Attribute``;
- numbers, double-quoted strings and ``#`` comments as usual.

The lexer never produces ``Error`` tokens for text the parser accepts (the tests run it over every example
and standard-library module).
"""

from __future__ import annotations

import re

from pygments.lexer import RegexLexer, bygroups, include
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

BUILTIN_FUNCTIONS = ("step", "sig", "relu", "tanh", "exp", "log", "sqrt", "abs", "sin", "cos", "softmax", "lnorm",
                     "concat")
DECLARATION_KEYWORDS = ("tensor", "index", "domain", "import", "set", "module", "use")
MODIFIERS = ("const", "learnable", "sparse", "dense", "bool", "real")

_TENSOR = r"[A-Z][A-Za-z0-9_]*'*"
_VAR = r"[a-z_][A-Za-z0-9_]*'*"
_NUMBER = r"(\d+\.\d+|\.\d+|\d+)([eE][+-]?\d+)?"
_STRING = r'"([^"\\\n]|\\.)*"'
_END = r"(?=[\s;#]|$)"  # a keyword ends at a space, a separator or the end of the line


class TensorLogicLexer(RegexLexer):
    """Highlights tensor logic source (`.tl` files, REPL input)."""

    name = "Tensor Logic"
    aliases = ["tensorlogic", "tl"]
    filenames = ["*.tl"]
    mimetypes = ["text/x-tensorlogic"]
    url = "https://arxiv.org/abs/2510.12269"
    flags = re.MULTILINE

    tokens = {
        "common": [
            (r"[ \t\f]+", Whitespace),
            (r"\\[ \t]*\n", Text),  # line continuation
            (r"#[^\n]*", Comment.Single),
            (_STRING, String.Double),
        ],
        "root": [
            (r"\n", Whitespace),
            # declarations open a statement (at the start of a line or after a ';')
            (r"^([ \t]*)(tensor)" + _END, bygroups(Whitespace, Keyword.Declaration), "tensor-decl"),
            (r"^([ \t]*)(index)" + _END, bygroups(Whitespace, Keyword.Declaration), "index-decl"),
            (r"^([ \t]*)(domain)" + _END, bygroups(Whitespace, Keyword.Declaration), "domain-decl"),
            (r"^([ \t]*)(import)" + _END, bygroups(Whitespace, Keyword.Declaration), "import-decl"),
            (r"^([ \t]*)(set)" + _END, bygroups(Whitespace, Keyword.Declaration), "set-decl"),
            (r"^([ \t]*)(module|use)" + _END, bygroups(Whitespace, Keyword.Declaration), "module-decl"),
            (r"(;)([ \t]*)(tensor)" + _END, bygroups(Punctuation, Whitespace, Keyword.Declaration), "tensor-decl"),
            (r"(;)([ \t]*)(index)" + _END, bygroups(Punctuation, Whitespace, Keyword.Declaration), "index-decl"),
            (r"(;)([ \t]*)(domain)" + _END, bygroups(Punctuation, Whitespace, Keyword.Declaration), "domain-decl"),
            (r"(;)([ \t]*)(import)" + _END, bygroups(Punctuation, Whitespace, Keyword.Declaration), "import-decl"),
            (r"(;)([ \t]*)(set)" + _END, bygroups(Punctuation, Whitespace, Keyword.Declaration), "set-decl"),
            include("expr"),
        ],
        "expr": [
            include("common"),
            (r"(max|min|avg)=", Operator),
            (r"<-|:-|\+=|!=|==|<=|>=|<|>|=", Operator),
            (r"\bnot(?=[ \t]+[A-Z])", Operator.Word),
            # a tensor with indices: the brackets hold index positions
            (r"(" + _TENSOR + r")([ \t]*)(\[)", bygroups(Name.Class, Whitespace, Punctuation), "indices"),
            (r"(" + _TENSOR + r")([ \t]*)(\()", bygroups(Name.Class, Whitespace, Punctuation), "indices"),
            (_TENSOR, Name.Class),
            (r"(" + "|".join(BUILTIN_FUNCTIONS) + r")(?=[ \t]*\()", Name.Builtin),
            (_VAR + r"(?=[ \t]*\()", Name.Function),
            (_VAR, Name.Variable),
            (_NUMBER, Number),
            (r"[-+*/^%]", Operator),
            (r"\?", Operator),
            (r"[()\[\],.;:]", Punctuation),
            (r"\n", Whitespace),
        ],
        "indices": [
            include("common"),
            (r"\n", Whitespace),
            (r"[\[(]", Punctuation, "#push"),
            (r"[\])]", Punctuation, "#pop"),
            (_TENSOR, Name.Constant),
            (_VAR, Name.Variable),
            (r"\d+", Number.Integer),
            (r"[-+*/%]", Operator),
            (r"[,.:]", Punctuation),
        ],
        "decl-common": [
            include("common"),
            (r"\n", Whitespace, "#pop"),
            (r";", Punctuation, "#pop"),
            (r"\d+", Number.Integer),
            (r"=", Operator),
            (r"[,:\[\]()]", Punctuation),
        ],
        "tensor-decl": [
            (r"(" + "|".join(MODIFIERS) + r")\b", Keyword.Type),
            (r"(" + _TENSOR + r")([ \t]*)(?=[\[(])", bygroups(Name.Class, Whitespace), "dims"),
            (_TENSOR, Name.Class),
            include("decl-common"),
        ],
        "dims": [
            include("common"),
            (r"[\[(]", Punctuation),
            (r"[\])]", Punctuation, "#pop"),
            (_TENSOR, Name.Namespace),
            (_VAR, Name.Variable),
            (r"\d+", Number.Integer),
            (r"[,:]", Punctuation),
            (r"\n", Whitespace),
        ],
        "index-decl": [
            (_TENSOR, Name.Namespace),
            (_VAR, Name.Variable),
            include("decl-common"),
        ],
        "domain-decl": [
            (r"(" + _TENSOR + r")([ \t]*)(:)", bygroups(Name.Namespace, Whitespace, Punctuation), "domain-body"),
            (_TENSOR, Name.Namespace),
            include("decl-common"),
        ],
        "domain-body": [
            (r"(?=[\n;])", Text, "#pop"),
            (_TENSOR, Name.Constant),
            (_VAR, Name.Constant),
            include("decl-common"),
        ],
        "import-decl": [
            (r"[A-Za-z_][A-Za-z0-9_.]*", Name.Namespace),
            include("decl-common"),
        ],
        "module-decl": [  # `module NAME(PARAMS)` and `use FILE.NAME(P=ARG, ...) as Prefix`
            (r"\bas\b", Keyword),
            (r"([A-Za-z_][A-Za-z0-9_.]*)([ \t]*)(\()", bygroups(Name.Namespace, Whitespace, Punctuation),
             "module-args"),
            (_TENSOR, Name.Namespace),
            include("decl-common"),
        ],
        "module-args": [
            include("common"),
            (r"\n", Whitespace),
            (r"\)", Punctuation, "#pop"),
            (r"(" + _TENSOR + "|" + _VAR + r")([ \t]*)(=)", bygroups(Name.Attribute, Whitespace, Operator)),
            (_TENSOR + "|" + _VAR, Name.Label),
            (r"[-+]", Operator),
            (_NUMBER, Number),
            (r",", Punctuation),
        ],
        "set-decl": [
            (_VAR, Name.Attribute),
            (r"[-+]", Operator),
            (_NUMBER, Number),
            include("decl-common"),
        ],
    }

    def analyse_text(text: str) -> float:  # noqa: N805 - pygments calls it as a static method
        """A likelihood that `text` is tensor logic: Datalog arrows and `Name[i,j] =` equations."""
        score = 0.0
        if re.search(r"^\s*[A-Z]\w*\([^)]*\)\s*(<-|:-)", text, re.MULTILINE):
            score += 0.3
        if re.search(r"^\s*[A-Z]\w*\[[a-z][^\]]*\]\s*(=|\+=|max=)", text, re.MULTILINE):
            score += 0.3
        return score
