"""RandomCrop: pad each image, then cut a window at a random position (per image)."""
from __future__ import annotations

from typing import Any

from .._checks import pair
from ..backend import Backend
from ..random import Generator
from ._base import Transform
from ._sampling import shifted_window

__all__ = ["RandomCrop"]


class RandomCrop(Transform):
    """Crop a ``size`` window from the image padded by ``padding`` on every side.

    Args:
        size: output (height, width), or an int for a square.
        padding: pixels added on each side (int or (pad_h, pad_w)); the classic
            CIFAR/MNIST recipe is ``RandomCrop(28, padding=2)``: shifts of up to 2 pixels.
        padding_mode: "constant" (zeros) or "reflect" (mirror without repeating the edge).

    Draws: the window's top-left corner, uniform over every position inside the padded image.
    The padded image is never built: output pixels index the source directly.
    """

    def __init__(self, size: "int | tuple[int, int]", padding: "int | tuple[int, int]" = 0,
                 padding_mode: str = "constant"):
        self.size = pair(size, "size", "RandomCrop", 1)
        self.padding = pair(padding, "padding", "RandomCrop", 0)
        if padding_mode not in ("constant", "reflect"):
            raise ValueError(f"RandomCrop: `padding_mode` must be 'constant' or 'reflect', got {padding_mode!r}")
        self.padding_mode = padding_mode

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        n, _, h, w = x.shape
        (sh, sw), (ph, pw) = self.size, self.padding
        if sh > h + 2 * ph or sw > w + 2 * pw:
            raise ValueError(f"RandomCrop: crop size {(sh, sw)} is larger than the padded image "
                             f"{(h + 2 * ph, w + 2 * pw)} (image {(h, w)} + 2 * padding {(ph, pw)})")
        if self.padding_mode == "reflect" and (ph >= h or pw >= w):
            raise ValueError(f"RandomCrop: reflect padding {(ph, pw)} must be smaller than the image {(h, w)}")
        corners = rng.host.integers(0, [h + 2 * ph - sh + 1, w + 2 * pw - sw + 1], size=(n, 2))
        corners = b.asarray(corners - [ph, pw], dtype="int64")  # (N, 2) top, left in image coordinates
        return shifted_window(x, corners[:, 0], corners[:, 1], sh, sw, self.padding_mode)
