"""Concatenate: parallel branches on the same input, outputs joined along one axis.

    y = concat([branch_0(x), branch_1(x), ...], axis)
    dX = sum_k backprop_k(dY[..., slice_k, ...])      (x feeds every branch: gradients add)

``Concatenate(Identity(), inner)`` is a U-Net skip connection: the decoder sees the encoder's
features next to the processed ones.  Inception blocks are Concatenate of convolution towers.
"""
from __future__ import annotations

from typing import Any

from ..backend import backend_of
from .base import Backprop, Layer, children_backend

__all__ = ["Concatenate"]


class Concatenate(Layer):
    """``Concatenate(*branches, axis=1)``: every branch gets x; their outputs are concatenated.

    Args:
        branches: one or more Layers, children named "0", "1", ...
        axis: the axis to join along (default 1, the channel axis of NCHW); negative counts
            from the end.  Outputs must agree on every other axis.

    Backend and dtype are the children's (see ``children_backend``); the concatenation runs
    on the branches' outputs' namespace, so a Concatenate of parameter-free branches follows its
    input as they do.
    """

    def __init__(self, *branches: Layer, axis: int = 1):
        if not branches:
            raise ValueError("Concatenate: expected at least one branch, got none")
        for i, branch in enumerate(branches):
            if not isinstance(branch, Layer):
                raise TypeError(f"Concatenate: branch {i} is a {type(branch).__name__}, expected a Layer")
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise TypeError(f"Concatenate: `axis` must be an int, got {axis!r}")
        backend, dtype = children_backend(list(branches))
        super().__init__(backend=backend, dtype=dtype)
        self.axis = axis
        for i, branch in enumerate(branches):
            setattr(self, str(i), branch)

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def __len__(self) -> int:
        return len(self._children)

    def _check_outputs(self, ys: list[Any], x_shape: tuple[int, ...]) -> int:
        """The non-negative concat axis; ValueError if the outputs cannot be joined along it."""
        ndim = ys[0].ndim
        if not -ndim <= self.axis < ndim:
            raise ValueError(f"Concatenate: `axis` {self.axis} is out of range for the branches' {ndim}-D outputs "
                             f"(shape {tuple(ys[0].shape)})")
        axis = self.axis % ndim
        ref = tuple(ys[0].shape)
        for k, y in enumerate(ys[1:], start=1):
            s = tuple(y.shape)
            if len(s) != ndim or any(a != b for d, (a, b) in enumerate(zip(s, ref)) if d != axis):
                raise ValueError(f"Concatenate(axis={self.axis}): branch {k}'s output shape {s} differs from branch "
                                 f"0's {ref} outside axis {axis} (input shape {x_shape}); every branch must "
                                 "keep the other axes' sizes")
        return axis

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        outs = [branch.forward(x, train) for branch in self._children.values()]
        ys = [y for y, _ in outs]
        axis = self._check_outputs(ys, tuple(x.shape))
        xp = backend_of(ys[0]).xp
        y = xp.concat(ys, axis=axis)
        bounds, start = [], 0
        for part in ys:
            bounds.append((start, start + part.shape[axis]))
            start += part.shape[axis]

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            dX = None
            for (a, z), (_, back) in zip(bounds, outs):
                index = (slice(None),) * axis + (slice(a, z), ...)
                part = back(dY[index], need_dx=need_dx)
                if need_dx:
                    dX = part if dX is None else dX + part  # never in place: a part may be a view of dY
            return dX

        return y, backprop
