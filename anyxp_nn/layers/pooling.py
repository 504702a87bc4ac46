"""Pooling layers over NCHW input: windowed max/average and global max/average."""
from __future__ import annotations

from typing import Any

from .._checks import pair
from ..ops.pool import avg_pool2d, max_pool2d, pool_output_size
from .base import Backprop, Layer

__all__ = ["MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D"]


class _Pool2D(Layer):
    follows_input = True
    _op = None

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, *,
                 backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        cls = type(self).__name__
        self.kernel_size = pair(kernel_size, "kernel_size", cls)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride", cls)
        self.padding = pair(padding, "padding", cls, minimum=0)
        for p, k in zip(self.padding, self.kernel_size):
            if 2 * p > k:  # as PyTorch: a window must never lie entirely in the padding
                raise ValueError(f"{cls}: `padding` (={self.padding}) must be at most half of "
                                 f"`kernel_size` (={self.kernel_size})")

    def extra_repr(self) -> str:
        s = f"kernel_size={self.kernel_size}, stride={self.stride}"
        return s + (f", padding={self.padding}" if self.padding != (0, 0) else "")

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        self._check_input(x, ndim=4)
        h, w = x.shape[2], x.shape[3]
        ho, wo = pool_output_size(h, w, self.kernel_size, self.stride, self.padding)
        if ho < 1 or wo < 1:
            (kh, kw), (ph, pw) = self.kernel_size, self.padding
            raise ValueError(f"{self._name()}: kernel {kh}x{kw} is larger than the padded input "
                             f"{h + 2 * ph}x{w + 2 * pw} (input {h}x{w}, padding {ph}x{pw})")
        y, backward = type(self)._op(x, self.kernel_size, self.stride, self.padding)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            return backward(dY) if need_dx else None

        return y, backprop


class MaxPool2D(_Pool2D):
    """Maximum over ``kernel_size`` windows (stride defaults to kernel_size; padding is -inf).

    On ties the gradient goes to the first maximum in row-major window order, as in PyTorch.
    """
    _op = staticmethod(max_pool2d)


class AvgPool2D(_Pool2D):
    """Mean over ``kernel_size`` windows; zero padding counts in the mean (``count_include_pad=True``)."""
    _op = staticmethod(avg_pool2d)


class _GlobalPool(Layer):
    follows_input = True

    def __init__(self, *, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)


class GlobalAvgPool2D(_GlobalPool):
    """(N, C, H, W) -> (N, C): the mean over all pixels of each channel."""

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        xp = self._check_input(x, ndim=4).xp
        if x.shape[2] == 0 or x.shape[3] == 0:
            raise ValueError(f"{self._name()}: the input has no pixels to average (shape {tuple(x.shape)}, "
                             "H and W must be >= 1)")
        shape = tuple(x.shape)
        y = xp.mean(x, axis=(2, 3))

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            if not need_dx:
                return None
            g = dY[:, :, None, None] / float(shape[2] * shape[3])
            return xp.asarray(xp.broadcast_to(g, shape), copy=True)  # writable, like every dX

        return y, backprop


class GlobalMaxPool2D(_GlobalPool):
    """(N, C, H, W) -> (N, C): the maximum of each channel; the gradient goes to its first argmax."""

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        b = self._check_input(x, ndim=4)
        xp = b.xp
        n, c, h, w = x.shape
        flat = xp.reshape(x, (n, c, h * w))  # (N, C, H*W)
        arg = xp.argmax(flat, axis=2)  # first occurrence, as PyTorch
        y = xp.max(flat, axis=2)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            if not need_dx:
                return None
            pos = xp.arange(h * w, dtype=arg.dtype, device=b.device)
            dx = xp.where(pos == arg[:, :, None], dY[:, :, None], 0.0)  # (N, C, H*W)
            return xp.reshape(dx, (n, c, h, w))

        return y, backprop
