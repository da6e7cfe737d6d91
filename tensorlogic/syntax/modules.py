"""Module instantiation: rename a module's statements for one `use` (see docs/language.md, "Modules").

A module's names are either bound by the use (`X=H1`: every `X` becomes `H1`; `i=h`: every index `i`
becomes `h`, `i'` becomes `h'`) or namespaced with the use's prefix (`as Layer1`: a tensor `W` becomes
`Layer1_W`, an index `j` becomes `layer1_j`). Symbolic constants and domains keep their names unless bound.
Every span of the result records the use that made it (`Span.via`), so an error inside the module's
equations also points at the user's line.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace

from . import ast
from .diagnostics import Span


def with_via(span: Span | None, use_span: Span | None, what: str) -> Span | None:
    """The span with `use_span` appended to the end of its chain of uses."""
    if span is None or use_span is None:
        return span
    if span.via is None:
        return replace(span, via=use_span, via_what=what)
    return replace(span, via=with_via(span.via, use_span, what))


def defined_names(statements: list[ast.Statement]) -> set[str]:
    """Tensor names a list of statements defines or declares (left sides, rule heads, facts, declarations)."""
    out: set[str] = set()
    for st in statements:
        if isinstance(st, ast.Equation | ast.Literal | ast.FileRead):
            out.add(st.lhs.name)
        elif isinstance(st, ast.Rule):
            out.add(st.head.name)
        elif isinstance(st, ast.Fact):
            out.add(st.atom.name)
        elif isinstance(st, ast.TensorDecl):
            out.add(st.name)
    return out


class Renamer:
    """Rewrites AST nodes for one use: bound names replaced, free names prefixed, spans tagged with the use."""

    def __init__(self, prefix: str, tensors: dict[str, str | float], indices: dict[str, str],
                 local: set[str], use_span: Span | None, what: str) -> None:
        self.prefix, self.tensors, self.indices, self.local = prefix, tensors, indices, local
        self.index_prefix = prefix[:1].lower() + prefix[1:]
        self.use_span, self.what = use_span, what

    def tensor(self, name: str) -> str:
        bound = self.tensors.get(name)
        if isinstance(bound, str):
            return bound
        return f"{self.prefix}_{name}"

    def index(self, name: str) -> str:
        base = name.rstrip("'")
        primes = name[len(base):]
        if base in self.indices:
            return self.indices[base] + primes
        return f"{self.index_prefix}_{name}"

    def domain(self, name: str | None) -> str | None:
        if name is None:
            return None
        bound = self.tensors.get(name)
        return bound if isinstance(bound, str) else name

    def walk(self, node):
        if isinstance(node, tuple):
            return tuple(self.walk(x) for x in node)
        if isinstance(node, list):
            return [self.walk(x) for x in node]
        if not is_dataclass(node) or isinstance(node, Span):
            return node
        if isinstance(node, ast.Ref) and node.indices is None and isinstance(self.tensors.get(node.name), float):
            value = self.tensors[node.name]
            return ast.Number(value, repr(value), with_via(node.span, self.use_span, self.what))
        if isinstance(node, ast.IxSymbol) and not node.quoted and isinstance(self.tensors.get(node.name), float):
            return ast.IxInt(int(self.tensors[node.name]), with_via(node.span, self.use_span, self.what))
        changes = {}
        for f in fields(node):
            v = getattr(node, f.name)
            if f.name == "span":
                changes["span"] = with_via(v, self.use_span, self.what)
            elif isinstance(v, tuple | list) or (is_dataclass(v) and not isinstance(v, Span)):
                changes[f.name] = self.walk(v)
        if isinstance(node, ast.Ref | ast.TensorDecl):
            changes["name"] = self.tensor(node.name)
        elif isinstance(node, ast.IxVar | ast.VarValue):
            changes["name"] = self.index(node.name)
        elif isinstance(node, ast.IxSymbol) and not node.quoted and (node.name in self.local
                                                                      or node.name in self.tensors):
            changes["name"] = self.tensor(node.name)
        elif isinstance(node, ast.DimSpec):
            changes["var"] = self.index(node.var) if node.var else None
            changes["domain"] = self.domain(node.domain)
            if isinstance(self.tensors.get(node.domain or ""), float):  # `tensor B[l, j, N]` with N=4: a size
                changes["domain"], changes["size"] = None, int(self.tensors[node.domain])
        elif isinstance(node, ast.IndexDecl):
            changes["names"] = tuple(self.index(n) for n in node.names)
            changes["domain"] = self.domain(node.domain)
        elif isinstance(node, ast.DomainDecl):
            changes["name"] = self.domain(node.name)
        return replace(node, **changes)
