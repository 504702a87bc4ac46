"""Shape layers for CNNs: Flatten and nearest-neighbour Upsample2D."""
from __future__ import annotations

import math
from typing import Any

from .._checks import pair
from .base import Backprop, Layer

__all__ = ["Flatten", "Upsample2D"]


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...), as ``torch.nn.Flatten()`` (start_dim=1)."""
    follows_input = True

    def __init__(self, *, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp = self._check_input(x).xp
        if x.ndim < 2:
            raise ValueError(f"{self._name()}: expected an input with a batch axis and at least one more "
                             f"(ndim >= 2), got shape {tuple(x.shape)}")
        shape = tuple(x.shape)
        # (N, d1*d2*...), the size spelled out so that N = 0 works; a copy only if x is not C-contiguous
        y = xp.reshape(x, (shape[0], math.prod(shape[1:])))

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            return xp.reshape(dY, shape) if need_dx else None

        return y, backprop


class Upsample2D(Layer):
    """Nearest-neighbour upsampling by an integer ``scale_factor`` (int or (h, w)):

    y[n, c, p, q] = x[n, c, p // sh, q // sw]; dX sums dY over each sh x sw block.
    """
    follows_input = True

    def __init__(self, scale_factor: Any = 2, *, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        self.scale_factor = pair(scale_factor, "scale_factor", "Upsample2D")

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp = self._check_input(x, ndim=4).xp
        n, c, h, w = x.shape
        sh, sw = self.scale_factor
        big = xp.broadcast_to(x[:, :, :, None, :, None], (n, c, h, sh, w, sw))
        y = xp.reshape(big, (n, c, h * sh, w * sw))  # reshape of a broadcast view copies

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            if not need_dx:
                return None
            return xp.sum(xp.reshape(dY, (n, c, h, sh, w, sw)), axis=(3, 5))  # (N, C, H, W)

        return y, backprop
