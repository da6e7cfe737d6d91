"""Where each index is summed: the summation rule of LANGUAGE.md section 3.

Every index variable that is not kept (not on the left-hand side) is summed at the smallest sub-expression
containing all its occurrences; when that node is a sum, difference, negation or power, the summation
moves up to the nearest enclosing product, function argument, or the whole right-hand side. A lone tensor
read counts as a product of one factor. `place_summations` returns the expression with explicit `Reduce`
nodes.
"""

from __future__ import annotations

from ..ir.nodes import Add, Apply, Concat, Join, Neg, Node, Pow, Read, Reduce, children, node_vars

_MOVES_UP = (Add, Neg, Pow)


def _rebuild(n: Node, kids: list[Node]) -> Node:
    if isinstance(n, Join):
        return Join(kids, list(n.divides))
    if isinstance(n, Add):
        return Add(kids, list(n.signs))
    if isinstance(n, Neg):
        return Neg(kids[0])
    if isinstance(n, Pow):
        return Pow(kids[0], kids[1])
    if isinstance(n, Apply):
        return Apply(n.func, kids, n.norm_var, n.span)
    if isinstance(n, Concat):
        return Concat(kids[0], n.merged, n.into, n.span)
    if isinstance(n, Reduce):
        return Reduce(n.over, kids[0])
    return n


def place_summations(rhs: Node, keep: set[str], exclude: set[str] = frozenset()) -> Node:
    """Insert a Reduce for every variable of `rhs` not in `keep` (nor in `exclude`, e.g. concat's)."""
    where: dict[int, list[str]] = {}
    for v in node_vars(rhs):
        if v in keep or v in exclude:
            continue
        path = [rhs]  # root to LCA
        while True:
            n = path[-1]
            if isinstance(n, Read):
                break
            holders = [c for c in children(n) if v in node_vars(c)]
            if len(holders) != 1:
                break
            path.append(holders[0])
        # move up while the LCA is a sum, difference, negation or power
        k = len(path) - 1
        while k > 0 and isinstance(path[k], _MOVES_UP) and not isinstance(path[k - 1], Apply):
            k -= 1
        where.setdefault(id(path[k]), []).append(v)

    def go(n: Node) -> Node:
        kids = [go(c) for c in children(n)]
        m = _rebuild(n, kids) if kids else n
        over = where.get(id(n))
        return Reduce(tuple(over), m) if over else m

    return go(rhs)
