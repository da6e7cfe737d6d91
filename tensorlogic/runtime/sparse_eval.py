"""Sparse numeric tensors in evaluation: the load-time form, sparse matrix products, weighted segment sums.

The executor and the dense evaluator call in here through small hooks:

* `initial_value` (executor `_make_initial`): weighted tuple data and numeric data declared `sparse` become a
  `SparseTensor` (backends/sparse_numeric.py) when `choose_form` says so, else a dense float64 array;
* `sparse_join` (`DenseEvaluator.sparse_matmul`, in runtime/sparse_products.py): a join that sums indices of
  a sparse operand (a relation or a sparse numeric tensor stored as tuples) against the rest runs as one
  scipy product, `W(x,y) V[y]` as CSR times a dense array, `A(x,y) B(y,z)` as CSR times CSR, a tensor of
  more indices matricised; nothing sparse is made dense;
* `count_applies` / `weight_of` (executor `_count`, relational.count): numeric sums over joins of relations
  and weighted relations are counted relationally, each satisfying assignment weighted by the product of
  its weighted atoms' values (projection as a weighted segment sum);
* `sparse_head` / `as_head`: a numeric tensor declared `sparse` that equations compute is stored as a
  `SparseTensor`, made by scipy sparse products when its equations are sparse products of sparse values
  (`Q(x,z) = A(x,y) B(y,z)`), else converted from the dense result; every other computed numeric tensor
  stays dense;
* `check_dense` (executor `array`): a sparse value whose dense array would not fit in memory is a clear
  error naming the tensor, never an attempt to allocate it;
* `atom_predicate` (executor `forms`): a Boolean rule may join a weighted relation with no negative weight
  as the relation of its nonzero cells (semi-naive evaluation over a weighted graph, never dense);
* `sparse_table` (`api._write`): a sparse tensor written to a `.csv`/`.tsv` file is its entries with their
  weights, never its dense array;
* `storage_lines`: the form each data tensor was stored in, for `tl run --stats`.

Anything else (elementwise use, a read inside a function, a query) reads the tensor dense: the executor's
`array()` converts a sparse value once per value version and caches it, as it does for relations.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..backends.relations import Relation
from ..backends.sparse_numeric import SparseTensor, data_form, dense_bytes
from ..ir.nodes import Const, IVar, Join, Read, Reduce
from ..plan.program import human_bytes
from ..syntax.diagnostics import TLRuntimeError
from .sparse_products import _two_vars
from .sparse_products import sparse_join as sparse_join  # DenseEvaluator.sparse_matmul's entry


def initial_value(t: Any, data: Any) -> np.ndarray | SparseTensor | None:
    """The stored value of a numeric tensor's data: a `SparseTensor` or a dense array for weighted tuples and
    for an array declared `sparse`; None for anything else (the executor's own cases)."""
    shape = t.storage_shape
    if isinstance(data, np.ndarray):
        if data_form(t, data)[0] != "sparse COO":
            return None
        return SparseTensor.from_dense(data)
    if getattr(data, "weights", None) is None:
        return None
    if data_form(t, data)[0] == "sparse COO":
        return SparseTensor.from_coo(data.ids, data.weights, shape)
    arr = np.zeros(shape)
    np.add.at(arr, tuple(data.ids.T), data.weights)
    return arr


def may_be_weighted(prog: Any, name: str) -> bool:
    """Whether a numeric tensor may be stored as a sparse tensor (so a numeric sum over it may be counted
    relationally): data and no equations, or declared sparse. The runtime checks the stored value before
    relying on it."""
    t = prog.tensors[name]
    return not t.boolean and (t.sparse is True or (not t.has_equations and name in prog.data))


def atom_predicate(prog: Any, is_boolean: Any) -> Any:
    """What a Boolean rule body may join as a relation: Boolean tensors, and weighted relations whose tuple
    data (a file of the analysis) has no negative weight. For those the rule's value, the step of the summed
    products, is 1 exactly where some assignment has every atom nonzero, so the support joins relationally
    (`executor.relation` gives it) and the weighted graph is never made dense."""
    ok: dict[str, bool] = {}

    def atom(name: str) -> bool:
        if is_boolean(name):
            return True
        if name not in ok:
            t, data = prog.tensors[name], prog.data.get(name)
            w = getattr(data, "weights", None)
            ok[name] = (not t.has_equations and t.virtual_axis is None and w is not None
                        and (len(w) == 0 or float(np.min(w)) >= 0))
        return ok[name]

    return atom


def weight_of(value: Any) -> SparseTensor | None:
    return value if isinstance(value, SparseTensor) else None


def count_applies(values: Any, is_boolean: Any, atoms: list[Read]) -> bool:
    """A counting form runs relationally when some atom is stored as tuples and every numeric atom is a
    sparse tensor (its support joins, its values weigh)."""
    vals = [values[a.tensor] for a in atoms]
    if not any(isinstance(v, Relation | SparseTensor) for v in vals):
        return False
    return all(is_boolean(a.tensor) or isinstance(v, SparseTensor) for a, v in zip(atoms, vals))


def as_head(t: Any, value: Any) -> Any:
    """A computed numeric head declared `sparse` as a SparseTensor (numpy values only); others unchanged."""
    if t.sparse and not t.boolean and t.virtual_axis is None and isinstance(value, np.ndarray):
        return SparseTensor.from_dense(value)
    return value


class TooLargeToDensify(TLRuntimeError):
    """A sparse value whose dense array would not fit in memory was needed dense."""

    def at(self, span: Any) -> TooLargeToDensify:
        """The same error located at `span` (the read that needs the dense array)."""
        d = self.diagnostics[0]
        return TooLargeToDensify(d.message, span, d.hint)


def check_dense(t: Any, v: Relation | SparseTensor) -> None:
    """Refuse to make a sparse value dense when the array would take more than half of this machine's memory:
    a clear error at the tensor instead of swapping or an allocation failure deep inside numpy."""
    full = dense_bytes(v.shape)
    if full <= _dense_limit():
        return
    what = "tuples" if isinstance(v, Relation) else "entries"
    raise TooLargeToDensify(
        f"{t.name} is stored sparse ({len(v):,} {what}) but is used where it must be dense, which takes "
        f"{human_bytes(full)}: more than half of this machine's memory", t.span,
        "a sparse tensor is used as it is in products that sum one of its two indices (W(x,y) V[y]) and in sums "
        "(Out[x] = W(x,y)); elementwise use, functions and whole-tensor queries need the dense array")


def _dense_limit() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # not a POSIX system: 1 TB
        return 1 << 40


def sparse_head(ex: Any, t: Any, eqs: list, read: Any) -> SparseTensor | None:
    """A 2-index numeric head declared `sparse` whose equations are all sparse products `A(x,y) B(y,z)` (or
    sparse reads `W(x,z)`, times constants) of values stored sparse, computed as scipy sparse products and
    stored as a SparseTensor without any dense array; None when that does not apply (then it is computed
    dense and converted, `as_head`)."""
    if (len(t.storage_shape) != 2 or t.virtual_axis is not None or not eqs or t.name in ex.prog.data
            or read != ex.read_current or not ex.native):
        return None
    total = None
    for eq in eqs:
        got = _sparse_product(ex, eq, tuple(t.storage_shape))
        if got is None:
            return None
        total = got if total is None else total + got
    m = total.tocoo()
    return SparseTensor.from_coo(np.stack([m.row, m.col], axis=1), m.data, t.storage_shape)


def _sparse_product(ex: Any, eq: Any, shape: tuple[int, int]) -> Any:
    """One equation of `sparse_head` as a scipy sparse matrix of the head's shape, or None."""
    if eq.op != "+" or eq.virtual_var is not None or len(eq.lhs_pos) != 2:
        return None
    head = [p.expr.name if isinstance(p.expr, IVar) else None for p in eq.lhs_pos]
    if None in head or head[0] == head[1]:
        return None
    over: tuple[str, ...] = ()
    body = eq.rhs
    if isinstance(body, Reduce):
        over, body = body.over, body.operand
    factors, divides = (body.factors, body.divides) if isinstance(body, Join) else ([body], [False])
    scale, mats = 1.0, []
    for f, d in zip(factors, divides):
        if isinstance(f, Const):
            scale = scale / float(f.value) if d else scale * float(f.value)
            continue
        if d or not _two_vars(f):
            return None
        mat = ex.sparse_matrix(f)
        names = (f.pos[0].expr.name, f.pos[1].expr.name)
        if mat is None or any(eq.ranges[v] != (0, s) for v, s in zip(names, mat.shape)):
            return None
        mats.append((mat, names))
    if len(mats) == 1 and not over:
        (mat, (a, c)), = mats
    elif len(mats) == 2 and len(over) == 1:
        (m1, (p1, q1)), (m2, (p2, q2)) = mats
        b = over[0]
        if b not in (p1, q1) or b not in (p2, q2):
            return None
        m1, a = (m1, p1) if q1 == b else (m1.T, q1)
        m2, c = (m2, q2) if p2 == b else (m2.T, p2)
        mat = m1 @ m2
    else:
        return None
    if (a, c) == (head[1], head[0]):
        mat = mat.T
    elif (a, c) != tuple(head):
        return None
    if mat.shape != shape or not np.isfinite(scale):
        return None
    return mat * scale if scale != 1.0 else mat


def sparse_table(ex: Any, name: str) -> Any:
    """A tensor stored sparse as the rows of a weighted table file (its entries, indices as labels of their
    domains, then the value), or None when it is not stored sparse."""
    from .files import TupleData

    v = ex.values[name]  # (ensured by the caller; data is loaded on first access)
    if not isinstance(v, SparseTensor):
        return None
    t = ex.prog.tensors[name]
    doms = [ex.prog.domains[d] for k, d in enumerate(t.domains) if k != t.virtual_axis]
    cols = [[d.label(i) for i in v.coords[:, k].tolist()] for k, d in enumerate(doms)]
    return TupleData(list(zip(*cols)) if cols else [()] * len(v), np.asarray(v.values), len(doms))


def storage_lines(ex: Any) -> list[str]:
    """One line per data tensor loaded so far: the form it is stored in and its bytes."""
    out = []
    for name in sorted(ex.prog.data):
        v = ex._initial.get(name)
        if isinstance(v, SparseTensor):
            out.append(f"{name}: sparse COO, {len(v):,} entries, {human_bytes(v.nbytes)} "
                       f"(dense would be {human_bytes(v.dense_nbytes)})")
        elif isinstance(v, Relation):
            out.append(f"{name}: relation, {len(v):,} tuples, {human_bytes(v.nbytes())}")
        elif v is not None:
            out.append(f"{name}: dense, {human_bytes(int(v.nbytes))}")
    return out
