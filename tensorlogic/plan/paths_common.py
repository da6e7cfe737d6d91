"""Shared machinery of the contraction-path searches: the network encoded as bitmasks, the cost model, trees.

Labels are numbered ``0..L-1`` (sorted label names, so the numbering and hence every search is deterministic)
and a set of labels is a Python ``int`` used as a bitmask; a set of operands (a *leaf set*) is likewise a
bitmask over operand positions.  Python integers have no width limit, so any number of labels and operands
works.

The cost of a contraction tree is a sum over its internal nodes, and a node's cost depends only on the leaf
sets of its two children: the labels a node keeps are those of its leaves that are needed outside it (in the
output or in some other operand), which is a property of the leaf set, not of the order inside it.  That is
what makes the exact subset DP, the interval DP for chains and subtree reconfiguration possible.

Objectives (``Objective``) compare plans by a pair ``(primary, secondary)``:

* ``"flops"``: (total flops, largest intermediate);
* ``"size"``: (largest intermediate, total flops);
* ``"combo"`` / ``"combo-A"``: (sum over steps of ``flops + A * result size``, largest intermediate), with
  ``A = 64`` by default (cotengra's ``combo`` objective: every element written costs about as much as 64
  multiply-adds).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Network", "Objective", "Tree", "parse_minimize"]


@dataclass(frozen=True)
class Objective:
    """How plans and partial plans are compared."""

    name: str
    """``"flops"``, ``"size"`` or ``"combo"``."""
    alpha: float = 0
    """Weight of written elements for ``"combo"`` (0 otherwise)."""

    @property
    def by_sum(self) -> bool:
        """Primary criterion is a sum over steps (flops, combo) rather than a maximum (size)."""
        return self.name != "size"

    def step_weight(self, flops: int, size: int):
        """The summed per-step quantity of the primary (sum objectives) or secondary (size) criterion."""
        if self.name == "combo":
            return flops + self.alpha * size
        return flops

    def combine(self, ca, cb, flops: int, size: int):
        """Cost of a node from its children's costs and its own step."""
        if self.by_sum:
            w = flops + self.alpha * size if self.alpha else flops
            return (ca[0] + cb[0] + w, max(ca[1], cb[1], size))
        return (max(ca[0], cb[0], size), ca[1] + cb[1] + flops)

    def zero(self):
        return (0, 0)

    def score(self, flops_list: list[int], size_list: list[int]):
        """Cost of a whole plan from its per-step flops and result sizes."""
        largest = max(size_list, default=0)
        if self.name == "size":
            return (largest, sum(flops_list))
        if self.name == "combo":
            return (sum(f + self.alpha * s for f, s in zip(flops_list, size_list)), largest)
        return (sum(flops_list), largest)


def parse_minimize(minimize: str) -> Objective:
    if minimize in ("flops", "size"):
        return Objective(minimize)
    if minimize == "combo":
        return Objective("combo", 64)
    if isinstance(minimize, str) and minimize.startswith("combo-"):
        try:
            alpha = float(minimize[len("combo-") :])
        except ValueError:
            alpha = -1.0
        if alpha >= 0:
            return Objective("combo", int(alpha) if alpha == int(alpha) else alpha)
    raise ValueError(
        f"minimize must be one of 'flops', 'size', 'combo' or 'combo-ALPHA' (ALPHA >= 0), got {minimize!r}"
    )


def bits(mask: int):
    """Positions of the set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _byte_tables(size: list[int]) -> list[list[int]]:
    """Products of label extents for every byte of a label mask (``prod`` multiplies one entry per non-zero
    byte instead of one extent per label)."""
    tables = []
    for base in range(0, len(size), 8):
        t = [1]
        for d in size[base : base + 8]:
            t += [x * d for x in t]
        tables.append(t)
    return tables


class Network:
    """A join encoded with bitmasks.

    ``masks[i]``: labels of operand ``i``; ``out``: output labels; ``owners[b]``: operands holding label ``b``;
    ``size[b]``: extent of label ``b``.  ``prod(mask)`` (cached) multiplies the extents of a label set.
    """

    def __init__(self, inputs: list[tuple[str, ...]], output: tuple[str, ...], sizes: dict[str, int]):
        names = sorted({lab for term in inputs for lab in term} | set(output))
        self.names = names
        self.bit = {lab: b for b, lab in enumerate(names)}
        self.size = [sizes[lab] for lab in names]
        self.n = len(inputs)
        self.masks = []
        for term in inputs:
            m = 0
            for lab in term:
                m |= 1 << self.bit[lab]
            self.masks.append(m)
        out = 0
        for lab in output:
            out |= 1 << self.bit[lab]
        self.out = out
        owners = [0] * len(names)
        for i, m in enumerate(self.masks):
            for b in bits(m):
                owners[b] |= 1 << i
        self.owners = owners
        self.all_leaves = (1 << self.n) - 1
        common = -1
        for m in self.masks:
            common &= m
        self.common = common if self.masks else 0
        """Labels held by every operand (batch labels)."""
        self.positive = all(d > 0 for d in self.size)
        """No label has extent 0 (then a pair's sizes follow from its operands' sizes by division)."""
        self._prod: dict[int, int] = {0: 1}
        self._tables: list[list[int]] | None = None
        self._kept: dict[int, int] = {}
        self._bits: dict[int, tuple[int, ...]] = {}
        self._pairs: dict[int, tuple[int, int, int]] = {}
        """Cache of the greedy: leaf set -> (kept labels, result size, step flops)."""
        """Cache: leaf set -> labels its result keeps (a property of the leaf set alone)."""

    def with_unit_labels(self, mask: int) -> Network:
        """The same network with the labels in ``mask`` given extent 1 (one slice of a sliced join)."""
        other = object.__new__(Network)
        other.__dict__.update(self.__dict__)
        other.size = [1 if (mask >> b) & 1 else d for b, d in enumerate(self.size)]
        other._prod = {0: 1}
        other._tables = None
        other._kept = self._kept  # kept labels do not depend on extents
        other._pairs = {}
        return other

    def prod(self, mask: int) -> int:
        p = self._prod.get(mask)
        if p is None:
            if mask.bit_count() <= 3:  # (few labels, the common case: one extent each beats the byte tables)
                p = 1
                size = self.size
                m = mask
                while m:
                    low = m & -m
                    p *= size[low.bit_length() - 1]
                    m ^= low
                if len(self._prod) < 1_000_000:
                    self._prod[mask] = p
                return p
            tables = self._tables
            if tables is None:
                tables = self._tables = _byte_tables(self.size)
            p = 1
            for t, byte in zip(tables, mask.to_bytes(len(tables), "little")):
                if byte:
                    p *= t[byte]
            if len(self._prod) < 1_000_000:
                self._prod[mask] = p
        return p

    def bit_list(self, mask: int) -> tuple[int, ...]:
        """Positions of the set bits of ``mask`` (cached: the searches iterate over the same label sets often)."""
        t = self._bits.get(mask)
        if t is None:
            t = tuple(bits(mask))
            if len(self._bits) < 200_000:
                self._bits[mask] = t
        return t

    def kept(self, leafset: int, inv: int) -> int:
        """Labels among ``inv`` (those of a node with leaves ``leafset``) needed outside the node."""
        res = inv & self.out
        rest = inv & ~self.out
        owners = self.owners
        nonleaf = ~leafset
        while rest:
            low = rest & -rest
            if owners[low.bit_length() - 1] & nonleaf:
                res |= low
            rest ^= low
        return res

    def pair_sizes(self, ea: int, eb: int, sa: int, sb: int, kept: int) -> tuple[int, int]:
        """(size of ``ea | eb``, size of ``kept``) for operands with labels ``ea``, ``eb`` and sizes ``sa``, ``sb``:
        with positive extents, from the sizes and the products of the two small sets involved (shared labels,
        dropped labels), which the cache holds far more often than the large unions."""
        if not self.positive:
            return self.prod(ea | eb), self.prod(kept)
        pget = self._prod.get
        both = ea & eb
        pb = pget(both)
        if pb is None:
            pb = self.prod(both)
        inv = sa * sb // pb
        dropped = (ea | eb) & ~kept
        if not dropped:
            return inv, inv
        pd = pget(dropped)
        if pd is None:
            pd = self.prod(dropped)
        return inv, inv // pd

    def step_cost(self, ea: int, eb: int, kept: int) -> tuple[int, int]:
        """(flops, result size) of contracting operands with labels ``ea`` and ``eb`` keeping ``kept``."""
        inv = ea | eb
        return self.prod(inv) * (2 if inv & ~kept else 1), self.prod(kept)

    def labels_of(self, mask: int) -> list[str]:
        return [self.names[b] for b in bits(mask)]


class Tree:
    """A contraction tree over a network: leaves ``0..n-1``, internal nodes with two children.

    ``children[v] = (a, b)``, ``leafset[v]`` (bitmask of operands), ``eff[v]`` (labels the node's result
    carries: the raw labels of a leaf, the kept labels of an internal node), ``flops[v]`` and ``size[v]`` of
    the step producing ``v``.  Node ids of internal nodes are arbitrary integers ``>= n``.
    """

    def __init__(self, net: Network):
        self.net = net
        self.children: dict[int, tuple[int, int]] = {}
        self.parent: dict[int, int] = {}
        self.leafset: dict[int, int] = {i: 1 << i for i in range(net.n)}
        self.eff: dict[int, int] = {i: m for i, m in enumerate(net.masks)}
        self.flops: dict[int, int] = {}
        self.size: dict[int, int] = {}
        self.root = 0 if net.n == 1 else -1
        self._next = net.n

    @classmethod
    def from_ssa(cls, net: Network, pairs: list[tuple[int, int]]) -> Tree:
        t = cls(net)
        for a, b in pairs:
            t.join(a, b)
        return t

    def join(self, a: int, b: int, node: int | None = None) -> int:
        if node is None:
            node = self._next
            self._next += 1
        else:
            self._next = max(self._next, node + 1)
        ls = self.leafset[a] | self.leafset[b]
        ea, eb = self.eff[a], self.eff[b]
        net = self.net
        kept = net._kept.get(ls)
        if kept is None:
            kept = net.kept(ls, ea | eb)
            if len(net._kept) < 200_000:
                net._kept[ls] = kept
        inv = ea | eb
        f = net._prod.get(inv)
        if f is None:
            f = net.prod(inv)
        if inv != kept:
            f += f
        s = net._prod.get(kept)
        if s is None:
            s = net.prod(kept)
        self.children[node] = (a, b)
        self.parent[a] = node
        self.parent[b] = node
        self.leafset[node] = ls
        self.eff[node] = kept
        self.flops[node] = f
        self.size[node] = s
        self.root = node
        return node

    def new_id(self) -> int:
        node = self._next
        self._next += 1
        return node

    def total_flops(self) -> int:
        return sum(self.flops.values())

    def score(self, obj: Objective):
        nodes = list(self.children)
        return obj.score([self.flops[v] for v in nodes], [self.size[v] for v in nodes])

    def subtree_score(self, obj: Objective, v: int):
        if v not in self.children:
            return obj.zero()
        a, b = self.children[v]
        return obj.combine(self.subtree_score(obj, a), self.subtree_score(obj, b), self.flops[v], self.size[v])

    def to_ssa(self) -> list[tuple[int, int]]:
        """The tree as SSA pairs (post-order, left child first)."""
        n = self.net.n
        pairs: list[tuple[int, int]] = []
        ssa: dict[int, int] = {i: i for i in range(n)}
        if self.root < n:
            return pairs
        stack: list[tuple[int, bool]] = [(self.root, False)]
        while stack:
            v, done = stack.pop()
            if v < n:
                continue
            a, b = self.children[v]
            if done:
                pairs.append((ssa[a], ssa[b]))
                ssa[v] = n + len(pairs) - 1
            else:
                stack.append((v, True))
                stack.append((b, False))
                stack.append((a, False))
        return pairs

    def internal_postorder(self) -> list[int]:
        n = self.net.n
        order: list[int] = []
        if self.root < n:
            return order
        stack: list[tuple[int, bool]] = [(self.root, False)]
        while stack:
            v, done = stack.pop()
            if v < n:
                continue
            if done:
                order.append(v)
            else:
                a, b = self.children[v]
                stack.append((v, True))
                stack.append((b, False))
                stack.append((a, False))
        return order
