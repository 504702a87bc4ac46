"""Parameter: a trainable array with its gradient."""
from __future__ import annotations

from typing import Any

__all__ = ["Parameter"]


class Parameter:
    """A trainable array.

    Attributes:
        data: the backend array.
        grad: same shape, dtype and device as ``data``, or None before the first backward.
        requires_grad: False for a frozen parameter (no gradient, no update).
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data: Any, requires_grad: bool = True):
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    def accumulate(self, g: Any) -> None:
        """Add ``g`` to ``grad`` (gradients accumulate until ``zero_grad``).

        ``g`` is kept (not copied) on the first call, so pass a fresh array
        that nothing else writes to.
        """
        if not self.requires_grad:
            return
        if self.grad is None:
            self.grad = g
        else:
            self.grad += g

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", frozen"
        return f"Parameter(shape={self.shape}, dtype={self.dtype}{frozen})"
