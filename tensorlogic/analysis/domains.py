"""Domains and symbol tables.

Every tensor position is a *slot* `(tensor, k)`. Slots that share a plain index variable in some equation,
or that are declared with the same named domain, belong to one domain (union-find). A domain is symbolic
when any symbol (`Alice`, `"v17"`) lands in it; its symbol table gives each symbol an integer position, in
order of declaration and then of first appearance. Other domains are integer ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Slot = tuple[str, int]


class UnionFind:
    """Union-find over hashable keys, remembering each class's members."""

    def __init__(self) -> None:
        self.parent: dict = {}

    def find(self, k):
        self.parent.setdefault(k, k)
        root = k
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[k] != root:
            self.parent[k], k = root, self.parent[k]
        return root

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # keep named domains (strings starting with '@') as roots so the class keeps the name
            if isinstance(rb, tuple) and rb[0] == "@":
                ra, rb = rb, ra
            self.parent[rb] = ra

    def members(self, root) -> list:
        return [k for k in self.parent if self.find(k) == root]


@dataclass
class Domain:
    """A domain of index values: a symbol table, or an integer range."""

    name: str
    symbols: list[str] | None = None  # None for integer domains
    index: dict[str, int] = field(default_factory=dict)
    declared_size: int | None = None

    @property
    def symbolic(self) -> bool:
        return self.symbols is not None

    def add(self, sym: str) -> int:
        assert self.symbols is not None
        if sym not in self.index:
            self.index[sym] = len(self.symbols)
            self.symbols.append(sym)
        return self.index[sym]

    def lookup(self, sym: str) -> int | None:
        return self.index.get(sym)

    def label(self, i: int) -> str | int:
        """The constant at position i: the symbol for a symbolic domain, else the integer."""
        if self.symbols is not None and 0 <= i < len(self.symbols):
            return self.symbols[i]
        return int(i)

    @property
    def size(self) -> int | None:
        if self.symbols is not None:
            return len(self.symbols)
        return self.declared_size
