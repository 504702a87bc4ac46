"""RandomFlip: mirror each image left-right and/or top-bottom with probability p."""
from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..random import Generator
from ._base import Transform

__all__ = ["RandomFlip"]


class RandomFlip(Transform):
    """Flip each image independently.

    Args:
        horizontal: allow left-right flips (axis W).
        vertical: allow top-bottom flips (axis H).
        p: probability of each enabled flip, per image.

    Draws: one (N, 2) uniform block per call (column 0 decides the horizontal,
    column 1 the vertical flip), whichever flips are enabled.
    """

    def __init__(self, horizontal: bool = True, vertical: bool = False, p: float = 0.5):
        if not (horizontal or vertical):
            raise ValueError("RandomFlip: enable `horizontal` or `vertical` (both are False)")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlip: `p` must be in [0, 1], got {p!r}")
        self.horizontal, self.vertical, self.p = bool(horizontal), bool(vertical), float(p)

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        xp = b.xp
        n = x.shape[0]
        flips = b.asarray(rng.host_uniform((n, 2)) < self.p, dtype="bool")  # (N, 2), one transfer
        if self.horizontal:
            x = xp.where(xp.reshape(flips[:, 0], (n, 1, 1, 1)), xp.flip(x, axis=3), x)
        if self.vertical:
            x = xp.where(xp.reshape(flips[:, 1], (n, 1, 1, 1)), xp.flip(x, axis=2), x)
        return x
