"""Elementwise activations: each forward keeps only what its derivative needs.

| layer | y | dy/dx |
|---|---|---|
| ReLU | max(x, 0) | 1[x > 0] |
| LeakyReLU(a) | x if x > 0 else a x | 1 or a |
| Sigmoid | 1 / (1 + e^-x) | y (1 - y) |
| Tanh | tanh x | 1 - y^2 |
| GELU("none") | x Phi(x) = x/2 (1 + erf(x/sqrt 2)) | Phi(x) + x phi(x) |
| GELU("tanh") | x/2 (1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715 x^3) | see below |
| Softmax(axis) | e^x / sum e^x | dX = y (dY - sum(dY y)) |
"""
from __future__ import annotations

import math
from typing import Any

from ..ops.erf import erf
from .base import Backprop, Layer

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softmax", "Identity", "sigmoid"]


def sigmoid(xp: Any, x: Any) -> Any:
    """Overflow-free logistic function: uses e^-|x| <= 1 on both sides."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class _Elementwise(Layer):
    follows_input = True

    def __init__(self, *, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)


class ReLU(_Elementwise):
    """max(x, 0)."""

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        b = self._check_input(x)
        xp = b.xp
        y = xp.maximum(x, b.zero_for_max(x))  # the scalar 0, or zeros where that is faster

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            # a 0/1 mask multiply: much cheaper than where(y > 0, dY, 0.0) on NumPy and PyTorch
            # (benchmarks/README.md)
            return dY * xp.astype(y > 0.0, dY.dtype) if need_dx else None

        return y, backprop


class LeakyReLU(_Elementwise):
    """x for x > 0, ``negative_slope * x`` otherwise."""

    def __init__(self, negative_slope: float = 0.01, *, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        self.negative_slope = float(negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp, a = self._check_input(x).xp, self.negative_slope
        slope = xp.astype(x > 0.0, x.dtype) * (1.0 - a) + a  # 1 where x > 0, else a
        y = x * slope

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            return dY * slope if need_dx else None

        return y, backprop


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)), computed without overflow."""

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp = self._check_input(x).xp
        y = sigmoid(xp, x)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            return dY * y * (1.0 - y) if need_dx else None

        return y, backprop


class Tanh(_Elementwise):
    """tanh(x)."""

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp = self._check_input(x).xp
        y = xp.tanh(x)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            return dY * (1.0 - y * y) if need_dx else None

        return y, backprop


class GELU(_Elementwise):
    """Gaussian error linear unit (Hendrycks & Gimpel, 2016).

    ``approximate="none"``: x * Phi(x) with the from-scratch :func:`anyxp_nn.ops.erf`;
    ``approximate="tanh"``: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch.
    """

    def __init__(self, approximate: str = "none", *, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: `approximate` must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp = self._check_input(x).xp
        if self.approximate == "none":
            cdf = 0.5 * (1.0 + erf(x * (1.0 / math.sqrt(2.0))))
            y = x * cdf

            def backprop(dY: Any, need_dx: bool = True) -> Any:
                if not need_dx:
                    return None
                pdf = xp.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
                return dY * (cdf + x * pdf)
        else:
            k = math.sqrt(2.0 / math.pi)
            t = xp.tanh(k * (x + 0.044715 * x * x * x))
            y = 0.5 * x * (1.0 + t)

            def backprop(dY: Any, need_dx: bool = True) -> Any:
                if not need_dx:
                    return None
                du = k * (1.0 + 3 * 0.044715 * x * x)
                return dY * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)

        return y, backprop


class Softmax(_Elementwise):
    """exp(x) / sum(exp(x)) along ``axis`` (max-shifted, so any finite logits work)."""

    def __init__(self, axis: int = -1, *, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        self.axis = int(axis)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp, ax = self._check_input(x).xp, self.axis
        if x.ndim == 0 or not -x.ndim <= ax < x.ndim:
            raise ValueError(f"{self._name()}: axis {ax} is out of range for input shape {tuple(x.shape)}")
        e = xp.exp(x - xp.max(x, axis=ax, keepdims=True))
        y = e / xp.sum(e, axis=ax, keepdims=True)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            if not need_dx:
                return None
            return y * (dY - xp.sum(dY * y, axis=ax, keepdims=True))

        return y, backprop


class Identity(_Elementwise):
    """y = x."""

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        self._check_input(x)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            return dY if need_dx else None

        return x, backprop
