"""The executor's value store: tensor values by name, created on first access, with versions and a running
byte count (what the executor's peak-memory accounting reads)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backends.relations import Relation

Value = Any  # a backend array, a Relation, or a SparseTensor


class ValueStore(dict):
    """Tensor values; a missing one is created from the tensor's initial value on first access."""

    def __init__(self, make: Callable[[str], Value]):
        super().__init__()
        # a weak reference to the executor's method: no executor <-> values cycle, so a finished run's executor
        # and its arrays are freed as soon as it is dropped (not at the next garbage collection)
        self._make = weakref.WeakMethod(make) if hasattr(make, "__self__") else (lambda: make)
        self._version: dict[str, int] = {}
        self.bytes = 0  # the bytes of the values held (kept up to date: values are replaced, never resized)

    def __missing__(self, name: str) -> Value:
        v = self._make()(name)
        super().__setitem__(name, v)  # materialising the initial value is not a change
        self.bytes += nbytes(v)
        return v

    def __setitem__(self, name: str, value: Value) -> None:
        self._version[name] = self._version.get(name, 0) + 1
        old = super().get(name)
        if old is not None:
            self.bytes -= nbytes(old)
        super().__setitem__(name, value)
        self.bytes += nbytes(value)

    def __delitem__(self, name: str) -> None:
        self.pop(name)

    def pop(self, name: str, *default):
        self._version[name] = self._version.get(name, 0) + 1
        if name in self:
            self.bytes -= nbytes(super().get(name))
        return super().pop(name, *default)

    def touch(self, name: str) -> None:
        """The value was changed in place: a new version (its bytes are the same)."""
        self._version[name] = self._version.get(name, 0) + 1

    def version(self, name: str) -> int:
        """Changes whenever the tensor's value is replaced (so cached joins over it are not reused)."""
        return self._version.get(name, 0)


def nbytes(v: Value) -> int:
    """The bytes a value holds (a relation counts its tuples and keys)."""
    return v.nbytes() if isinstance(v, Relation) else int(v.nbytes)


def nbytes_of(shape: tuple[int, ...]) -> int:
    """Bytes of a float64 array of this shape (a left side's result, under a memory budget)."""
    return int(np.prod(shape, dtype=np.int64)) * 8
