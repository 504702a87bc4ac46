"""Linear: y = x W^T + b, over the last axis of any-rank input."""
from __future__ import annotations

import math
from typing import Any

from .._checks import positive_int
from .. import init as _init
from ..parameter import Parameter
from ..random import Generator
from .base import Backprop, Layer

__all__ = ["Linear"]


class Linear(Layer):
    """Fully connected layer.

    Args:
        in_features, out_features: sizes of the last input / output axis.
        bias: learn an additive bias.
        init: weight initialiser name ("he", "he_uniform", "xavier", "xavier_normal",
            "torch" = PyTorch's default incl. bias, "normal", "zeros") or a callable.
        rng: generator for the initial weights (default: the global one).

    Shapes: x (..., in) -> y (..., out); ``weight`` (out, in), ``bias`` (out,).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init: Any = "he", *,
                 rng: "Generator | None" = None, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        positive_int(in_features, "in_features", "Linear")
        positive_int(out_features, "out_features", "Linear")
        self.in_features, self.out_features = in_features, out_features
        f = _init.get_initializer(init, "Linear")
        kw = dict(rng=rng, dtype=self.dtype, backend=self.backend)
        self.weight = Parameter(f((out_features, in_features), **kw))
        if bias:
            if init == "torch":
                b = _init.uniform((out_features,), 1 / math.sqrt(in_features), **kw)
            else:
                b = _init.zeros((out_features,), **kw)
            self.bias = Parameter(b)
        else:
            self.bias = None

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        self._check_input(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self._name()}: expected input of shape (..., {self.in_features}), "
                             f"got {tuple(x.shape)}")
        xp = self.backend.xp
        W, b = self.weight, self.bias
        lead = tuple(x.shape[:-1])
        X = x if x.ndim == 2 else xp.reshape(x, (-1, self.in_features))  # (N, in)
        Wd = W.data
        Y = X @ Wd.T  # (N, out)
        if b is not None:
            Y += b.data
        y = Y if x.ndim == 2 else xp.reshape(Y, lead + (self.out_features,))

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            G = dY if dY.ndim == 2 else xp.reshape(dY, (-1, self.out_features))  # dL/dY as (N, out)
            if W.requires_grad:
                W.accumulate(G.T @ X)  # (out, in)
            if b is not None and b.requires_grad:
                b.accumulate(xp.sum(G, axis=0))
            if not need_dx:
                return None
            dX = G @ Wd  # (N, in)
            return dX if x.ndim == 2 else xp.reshape(dX, lead + (self.in_features,))

        return y, backprop
