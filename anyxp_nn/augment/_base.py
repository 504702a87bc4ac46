"""The transform protocol shared by every augmentation.

A transform is called ``t(x, rng=None) -> x'`` on a whole batch ``x`` of shape
``(N, C, H, W)``.  Its per-sample random parameters (a few numbers per image)
are drawn on the host from an :class:`anyxp_nn.random.Generator`, computed on
the host in float64 where they need trigonometry, rounded to the batch's dtype
and moved to the batch's device in one transfer.  Everything per pixel then runs
as whole-batch Array API ops on the data's backend: no Python loop over samples,
and only exactly-rounded elementwise ops, gathers and comparisons, so the same
seed gives bit-identical results on every backend.

A transform never changes the dtype or device of the batch and never writes into it.
"""
from __future__ import annotations

from typing import Any

from ..backend import Backend, backend_of, get_backend
from ..random import Generator, get_rng

__all__ = ["Transform", "host_xp", "check_images"]


def host_xp() -> Any:
    """The host (NumPy) array namespace, for per-sample parameter maths before the one transfer."""
    return get_backend("numpy").xp


def check_images(x: Any, name: str) -> Backend:
    """The batch's backend; a clear error for anything but a floating (N, C, H, W) batch."""
    try:
        b = backend_of(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of images, got {type(x).__name__}") from None
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a batch of images of shape (N, C, H, W), got shape {tuple(x.shape)}")
    if not b.xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"{name}: expected a floating batch of images, got dtype {x.dtype}")
    return b


class Transform:
    """Base class: subclasses implement ``apply(x, rng, backend) -> x'``."""

    def __call__(self, x: Any, rng: "Generator | int | None" = None) -> Any:
        b = check_images(x, type(self).__name__)
        return self.apply(x, get_rng(rng), b)

    def apply(self, x: Any, rng: Generator, b: Backend) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"
