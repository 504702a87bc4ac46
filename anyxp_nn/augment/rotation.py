"""RandomRotation: rotate each image by its own random angle, bilinear, zeros outside."""
from __future__ import annotations

import math
from typing import Any

from ..backend import Backend
from ..random import Generator
from ._base import Transform, host_xp
from ._sampling import bilinear

__all__ = ["RandomRotation"]


class RandomRotation(Transform):
    """Rotate counter-clockwise by an angle uniform in ``degrees`` about the image centre.

    Args:
        degrees: d for the range [-d, d], or (low, high) in degrees.

    For an output pixel (i, j), with centre (cy, cx) = ((H-1)/2, (W-1)/2),
    u = j - cx (right) and v = cy - i (up), its source is the inverse rotation:

        j_src = cx + cos(t) u + sin(t) v,   i_src = cy + sin(t) u - cos(t) v

    sampled bilinearly (:func:`anyxp_nn.augment._sampling.bilinear`).  cos and sin
    are computed on the host in float64 and rounded once, so every backend rotates
    by exactly the same numbers; a 90-degree rotation is ``rot90`` exactly.
    """

    def __init__(self, degrees: "float | tuple[float, float]"):
        lo, hi = (-abs(degrees), abs(degrees)) if isinstance(degrees, (int, float)) else tuple(degrees)
        if not lo <= hi:
            raise ValueError(f"RandomRotation: `degrees` range must have low <= high, got {degrees!r}")
        self.degrees = (float(lo), float(hi))

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        hxp, xp = host_xp(), b.xp
        n, _, h, w = x.shape
        t = rng.host_uniform((n,), *self.degrees) * (math.pi / 180.0)
        cs = hxp.stack([hxp.cos(t), hxp.sin(t)], axis=1)
        cs = hxp.where(hxp.abs(cs) < 1e-12, 0.0, cs)  # exact zeros at multiples of 90 degrees
        cs = b.asarray(cs, dtype=x.dtype)  # (N, 2), one transfer
        c, s = xp.reshape(cs[:, 0], (n, 1, 1, 1)), xp.reshape(cs[:, 1], (n, 1, 1, 1))
        cy, cx = (h - 1) / 2, (w - 1) / 2
        dev = b.device
        u = xp.reshape(xp.arange(w, dtype=x.dtype, device=dev) - cx, (1, 1, 1, w))
        v = xp.reshape(cy - xp.arange(h, dtype=x.dtype, device=dev), (1, 1, h, 1))
        sj = (c * u + s * v) + cx  # (N, 1, H, W)
        si = (s * u - c * v) + cy
        return bilinear(x, si, sj)
