"""Inverted dropout (Srivastava et al., 2014).

Training: keep each value with probability q = 1 - p and scale the kept ones by 1/q,
so E[y] = x and evaluation is the identity:

    mask ~ Bernoulli(q),  y = mask * x / q,  dX = mask * dY / q

The mask comes from :mod:`anyxp_nn.random` (drawn on the host, moved once), so the
same seed drops the same units on every backend.
"""
from __future__ import annotations

from typing import Any

from ..random import Generator, get_rng
from .base import Backprop, Layer

__all__ = ["Dropout"]


class Dropout(Layer):
    """Zero each input value with probability ``p`` in training; identity in evaluation.

    Args:
        p: drop probability in [0, 1).
        rng: the Generator for the masks (default: the global one). Kept as ``self.rng``
            so :func:`~anyxp_nn.testing.gradcheck` can rewind it.
    """

    follows_input = True

    def __init__(self, p: float = 0.5, *, rng: "Generator | None" = None, backend: Any = None,
                 dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: `p` must be a float in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = rng

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        b = self._check_input(x)
        if not self._mode(train) or self.p == 0.0:
            return x, lambda dY, need_dx=True: dY if need_dx else None
        xp = b.xp
        scale = 1.0 / (1.0 - self.p)
        keep = get_rng(self.rng).bernoulli(tuple(x.shape), 1.0 - self.p, backend=b)
        # the scaled 0/1 mask, as PyTorch builds it; a multiply is much cheaper than
        # where(keep, x * scale, 0.0) with a Python scalar on NumPy and PyTorch (benchmarks/README.md)
        mask = xp.astype(keep, x.dtype) * scale
        y = x * mask

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            return dY * mask if need_dx else None

        return y, backprop
