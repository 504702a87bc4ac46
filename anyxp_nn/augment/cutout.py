"""Cutout (DeVries & Taylor, 2017): blank a random square of each image."""
from __future__ import annotations

from typing import Any

from .._checks import positive_int
from ..backend import Backend
from ..random import Generator
from ._base import Transform

__all__ = ["Cutout"]


class Cutout(Transform):
    """Set a ``size`` x ``size`` square to ``fill``; its centre is uniform over the image,
    so near the border only part of the square lands inside (as in the paper).

    Args:
        size: side of the square in pixels.
        fill: the value written.
    """

    def __init__(self, size: int = 8, fill: float = 0.0):
        positive_int(size, "size", "Cutout")
        self.size, self.fill = size, float(fill)

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        xp = b.xp
        n, _, h, w = x.shape
        centre = rng.host.integers(0, [h, w], size=(n, 2))
        top_left = b.asarray(centre - self.size // 2, dtype="int64")  # (N, 2)
        top = xp.reshape(top_left[:, 0], (n, 1, 1, 1))
        left = xp.reshape(top_left[:, 1], (n, 1, 1, 1))
        i = xp.reshape(xp.arange(h, dtype=xp.int64, device=b.device), (1, 1, h, 1))
        j = xp.reshape(xp.arange(w, dtype=xp.int64, device=b.device), (1, 1, 1, w))
        hole = (i >= top) & (i < top + self.size) & (j >= left) & (j < left + self.size)  # (N, 1, H, W)
        return xp.where(hole, self.fill, x)
