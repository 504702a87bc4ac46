"""GaussianNoise: add N(0, std^2) noise to every pixel."""
from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..random import Generator
from ._base import Transform

__all__ = ["GaussianNoise"]


class GaussianNoise(Transform):
    """x + eps, eps ~ N(0, std^2) per pixel, optionally clipped to ``clip`` = (low, high).

    The noise is drawn on the host like every random array of the library: the
    whole (N, C, H, W) block in one transfer.
    """

    def __init__(self, std: float = 0.1, clip: "tuple[float, float] | None" = None):
        if not std >= 0:
            raise ValueError(f"GaussianNoise: `std` must be >= 0, got {std!r}")
        self.std, self.clip = float(std), clip

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        y = x + rng.normal(tuple(x.shape), 0.0, self.std, dtype=x.dtype, backend=b)
        return y if self.clip is None else b.xp.clip(y, self.clip[0], self.clip[1])
