"""Optimisers over dictionaries of numpy arrays: SGD (with momentum), Adam and AdamW.

Each follows the update rule of its PyTorch namesake (torch.optim.SGD / Adam / AdamW with default betas and
eps), so a model trained here and the same model trained in PyTorch take the same steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..syntax.diagnostics import TLRuntimeError


class Optimizer(ABC):
    """Base class: `step(params, grads)` updates params in place, one `update` per parameter."""

    def __init__(self, lr: float):
        if not lr > 0:
            raise TLRuntimeError(f"the learning rate must be positive, not {lr}", hint="use e.g. --lr 0.01")
        self.lr = float(lr)
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        for name, g in grads.items():
            self.update(name, params[name], np.asarray(g, dtype=np.float64))

    @abstractmethod
    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        """Update parameter `name` (the array `p`, in place) from its gradient `g`."""


class SGD(Optimizer):
    """p -= lr * v, v = momentum * v + g (torch.optim.SGD with dampening 0)."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(lr)
        self.momentum = momentum
        self.weight_decay = weight_decay

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            st = self.state.setdefault(name, {})
            v = st.get("v")
            v = g.copy() if v is None else self.momentum * v + g
            st["v"] = v
            g = v
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma and Ba); `decoupled=True` is AdamW (weight decay applied to the weights directly)."""

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False):
        super().__init__(lr)
        self.b1, self.b2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.decoupled = decoupled

    def update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        if self.weight_decay and not self.decoupled:
            g = g + self.weight_decay * p
        if self.weight_decay and self.decoupled:
            p *= 1 - self.lr * self.weight_decay
        st = self.state.get(name)
        if st is None or st["m"].shape != p.shape:
            st = self.state[name] = {"m": np.zeros_like(p), "v": np.zeros_like(p), "a": np.empty_like(p),
                                     "b": np.empty_like(p)}
        # in place, in the order of the plain formulas (the same numbers, no temporaries):
        # m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g g;  p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
        m, v, a, b = st["m"], st["v"], st["a"], st["b"]
        np.multiply(g, 1 - self.b1, out=a)
        m *= self.b1
        m += a
        np.multiply(g, 1 - self.b2, out=a)
        a *= g
        v *= self.b2
        v += a
        np.divide(v, 1 - self.b2 ** self.t, out=a)
        np.sqrt(a, out=a)
        a += self.eps
        np.divide(m, 1 - self.b1 ** self.t, out=b)
        np.multiply(b, self.lr, out=b)  # lr * mhat, as `self.lr * mhat` computes it
        b /= a
        p -= b


def make_optimizer(name: str, lr: float, **options: float) -> Optimizer:
    """An optimiser by name: sgd, momentum (SGD with momentum 0.9), adam, adamw."""
    key = name.lower()
    if key == "sgd":
        return SGD(lr, momentum=options.get("momentum", 0.0), weight_decay=options.get("weight_decay", 0.0))
    if key == "momentum":
        return SGD(lr, momentum=options.get("momentum", 0.9), weight_decay=options.get("weight_decay", 0.0))
    if key == "adam":
        return Adam(lr, weight_decay=options.get("weight_decay", 0.0))
    if key == "adamw":
        return Adam(lr, weight_decay=options.get("weight_decay", 0.01), decoupled=True)
    raise TLRuntimeError(f"unknown optimizer '{name}'", hint="use one of: sgd, momentum, adam, adamw")
