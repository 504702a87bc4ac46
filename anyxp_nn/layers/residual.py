"""Residual connection (He et al., 2016): y = block(x) + shortcut(x).

The gradient reaches x along both paths and adds up, dX = dX_block + dX_shortcut;
with the identity shortcut dX = dX_block + dY, so even a block whose Jacobian is
tiny passes dY through unchanged: this is why very deep residual nets still train.
"""
from __future__ import annotations

from typing import Any

from .base import Backprop, Layer, children_backend

__all__ = ["Residual"]


class Residual(Layer):
    """``Residual(block, shortcut=None)``: y = block(x) + shortcut(x).

    Args:
        block: the residual branch (any Layer); child name ``"block"``.
        shortcut: None for the identity, or a projection Layer (e.g. a strided 1x1
            Conv2D + BatchNorm2D when the block changes the shape); child name ``"shortcut"``.

    Backend and dtype are the block's (the shortcut's when only it holds parameters).
    """

    def __init__(self, block: Layer, shortcut: "Layer | None" = None):
        for what, v in (("block", block), ("shortcut", shortcut)):
            if v is not None and not isinstance(v, Layer):
                raise TypeError(f"Residual: `{what}` must be a Layer, got {type(v).__name__}")
        if block is None:
            raise TypeError("Residual: `block` must be a Layer, got None")
        backend, dtype = children_backend([block] + ([shortcut] if shortcut is not None else []))
        super().__init__(backend=backend, dtype=dtype)
        self.block = block
        if shortcut is not None:
            self.shortcut = shortcut
        else:
            object.__setattr__(self, "shortcut", None)

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        yb, back_block = self.block.forward(x, train)
        if self.shortcut is None:
            ys, back_short = x, None
        else:
            ys, back_short = self.shortcut.forward(x, train)
        if tuple(yb.shape) != tuple(ys.shape):
            what = "the input" if self.shortcut is None else "the shortcut's output"
            raise ValueError(f"Residual: the block's output shape {tuple(yb.shape)} differs from {what} "
                             f"shape {tuple(ys.shape)}; pass a projection `shortcut` that maps "
                             f"{tuple(x.shape)} to {tuple(yb.shape)}")
        y = yb + ys

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            dXb = back_block(dY, need_dx=need_dx)
            if back_short is None:
                return dXb + dY if need_dx else None
            dXs = back_short(dY, need_dx=need_dx)
            return dXb + dXs if need_dx else None

        return y, backprop
