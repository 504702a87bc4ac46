"""RandomTranslate: shift each image by a random whole number of pixels, zeros flowing in."""
from __future__ import annotations

from typing import Any

from ..backend import Backend
from ..random import Generator
from ._base import Transform
from ._sampling import shifted_window

__all__ = ["RandomTranslate"]


class RandomTranslate(Transform):
    """Shift by (dy, dx) with dy uniform in [-max_dy, max_dy] and dx in [-max_dx, max_dx].

    Args:
        max_shift: the largest shift in pixels, an int or (max_dy, max_dx).
        fraction: if True, ``max_shift`` is a fraction of the image size (floats allowed),
            as torchvision's ``RandomAffine(translate=...)``.

    Positive dy moves the content down, positive dx to the right; the size is kept.
    """

    def __init__(self, max_shift: "float | tuple[float, float]" = 2, fraction: bool = False):
        pair = (max_shift, max_shift) if isinstance(max_shift, (int, float)) else tuple(max_shift)
        if len(pair) != 2 or not all(isinstance(s, (int, float)) and s >= 0 for s in pair) or (
                not fraction and not all(isinstance(s, int) for s in pair)):
            kind = "a fraction >= 0" if fraction else "an int >= 0 (pixels)"
            raise ValueError(f"RandomTranslate: `max_shift` must be {kind} or a pair of them, got {max_shift!r}")
        self.max_shift, self.fraction = pair, bool(fraction)

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        n, _, h, w = x.shape
        my, mx = self.max_shift
        if self.fraction:
            my, mx = int(my * h), int(mx * w)
        shifts = rng.host.integers([-my, -mx], [my + 1, mx + 1], size=(n, 2))
        src = b.asarray(-shifts, dtype="int64")  # (N, 2): the source window starts at -shift
        return shifted_window(x, src[:, 0], src[:, 1], h, w, "constant")
