"""ColorJitter: random brightness and contrast per image."""
from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..random import Generator
from ._base import Transform
from ._sampling import row_mean

__all__ = ["ColorJitter"]


class ColorJitter(Transform):
    """Scale brightness by f_b ~ U[max(0, 1 - brightness), 1 + brightness], then contrast
    around the image mean by f_c ~ U[max(0, 1 - contrast), 1 + contrast]:

        x' = f_b x,   x'' = mean(x') + f_c (x' - mean(x'))

    (torchvision's order and ranges; the mean is over all channels and pixels of one image.)

    Args:
        brightness, contrast: jitter strengths >= 0 (0 disables).
        clip: (low, high) the result is clipped to (None: no clipping); (0, 1) for images in [0, 1].
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0,
                 clip: "tuple[float, float] | None" = (0.0, 1.0)):
        for name, v in (("brightness", brightness), ("contrast", contrast)):
            if not v >= 0:
                raise ValueError(f"ColorJitter: `{name}` must be >= 0, got {v!r}")
        self.brightness, self.contrast, self.clip = float(brightness), float(contrast), clip

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        xp = b.xp
        n = x.shape[0]
        lo_b, lo_c = max(0.0, 1.0 - self.brightness), max(0.0, 1.0 - self.contrast)
        u = rng.host_uniform((n, 2))  # column 0: brightness, column 1: contrast
        u[:, 0] = lo_b + (1.0 + self.brightness - lo_b) * u[:, 0]
        u[:, 1] = lo_c + (1.0 + self.contrast - lo_c) * u[:, 1]
        f = b.asarray(u, dtype=x.dtype)  # (N, 2), one transfer
        y = x * xp.reshape(f[:, 0], (n, 1, 1, 1))
        if self.contrast:
            m = xp.reshape(row_mean(xp.reshape(y, (n, -1))), (n, 1, 1, 1))
            y = m + xp.reshape(f[:, 1], (n, 1, 1, 1)) * (y - m)
        return y if self.clip is None else xp.clip(y, self.clip[0], self.clip[1])
