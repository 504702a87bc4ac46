"""Compose: apply transforms one after the other with one generator."""
from __future__ import annotations

from typing import Any, Callable, Sequence

from ..random import Generator, get_rng

__all__ = ["Compose"]


class Compose:
    """``Compose([t1, t2, ...])(x, rng)`` = ``t_k(... t1(x, rng) ..., rng)``.

    The generator is resolved once (an int seed becomes one Generator), so the
    transforms draw one after another from the same stream.
    """

    def __init__(self, transforms: Sequence[Callable[..., Any]]):
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"Compose: transform {i} is a {type(t).__name__}, expected a callable t(x, rng=None)")
        self.transforms = transforms

    def __call__(self, x: Any, rng: "Generator | int | None" = None) -> Any:
        g = get_rng(rng)
        for t in self.transforms:
            x = t(x, rng=g)
        return x

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"
