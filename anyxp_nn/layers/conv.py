"""Conv2D: 2-D cross-correlation over NCHW input, PyTorch's layout and numerics.

    y[n, o, p, q] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] * xpad[n, c, p*sh + i*dh, q*sw + j*dw]

The layer holds the arguments, parameters and shape checks; the algorithm (im2col or
Winograd, batch chunks, the backward routes) is :func:`anyxp_nn.ops.conv.conv2d`.
"""
from __future__ import annotations

from typing import Any

from .. import init as _init
from .._checks import pair
from ..ops.conv import ConvGeometry, conv2d
from ..parameter import Parameter
from ..random import Generator
from ._conv_common import check_channels, check_input_channels, conv_bias, conv_repr
from .base import Backprop, Layer

__all__ = ["Conv2D"]


class Conv2D(Layer):
    """2-D convolution layer.

    Args:
        in_channels, out_channels: C and O.
        kernel_size, stride, dilation: int or (h, w).
        padding: int or (h, w) zeros on both sides; "valid" (none) or "same" (output size =
            input size; stride 1 only; an odd total puts the extra zero at the end, as PyTorch).
        groups: split channels into ``groups`` independent convolutions (both channel
            counts must be divisible by it; ``groups == in_channels`` is depthwise).
        bias: learn a per-output-channel bias.
        init: weight initialiser (see :func:`anyxp_nn.init.get_initializer`); "torch" also
            draws the bias as PyTorch does, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        rng: generator for the initial weights.

    Shapes: x (N, C, H, W) -> y (N, O, Ho, Wo) with Ho = (H + 2p - d(kh - 1) - 1) // s + 1;
    ``weight`` (O, C/groups, kh, kw), ``bias`` (O,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True, init: Any = "he", *,
                 rng: "Generator | None" = None, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        check_channels(in_channels, out_channels, groups, "Conv2D")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = pair(stride, "stride", "Conv2D")
        self.dilation = pair(dilation, "dilation", "Conv2D")
        self._padding_name = padding if isinstance(padding, str) else None
        self.padding, pad_end = _padding(padding, self.kernel_size, self.stride, self.dilation)
        self.geometry = ConvGeometry(self.kernel_size, self.stride, self.padding, self.dilation, pad_end)
        kh, kw = self.kernel_size
        f = _init.get_initializer(init, "Conv2D")
        kw_ = dict(rng=rng, dtype=self.dtype, backend=self.backend)
        self.weight = Parameter(f((out_channels, in_channels // groups, kh, kw), **kw_))
        self.bias = conv_bias(init, out_channels, in_channels // groups * kh * kw, **kw_) if bias else None

    def extra_repr(self) -> str:
        padding = self._padding_name if self._padding_name is not None else self.padding
        return conv_repr(self, (("padding", padding, (0, 0)), ("dilation", self.dilation, (1, 1))))

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, O, Ho, Wo) for an input of shape (N, C, H, W); raises ValueError for a bad one."""
        check_input_channels(self, x_shape)
        n, _, h, w = x_shape
        ho, wo = self.geometry.output_size(h, w)
        if ho < 1 or wo < 1:
            (kh, kw), (ph, pw), (dh, dw) = self.kernel_size, self.padding, self.dilation
            raise ValueError(f"{self._name()}: kernel {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1} (dilated) is larger "
                             f"than the padded input {h + 2 * ph}x{w + 2 * pw} (input {h}x{w}, padding {ph}x{pw})")
        return n, self.out_channels, ho, wo

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        """x (N, C, H, W) -> y (N, O, Ho, Wo) and ``backprop(dY, need_dx=True) -> dX``
        (``train`` has no effect on a convolution)."""
        self._check_input(x, ndim=4)
        self.output_shape(tuple(x.shape))
        W, b, be = self.weight, self.bias, self.backend
        y, backward = conv2d(x, W.data, None if b is None else b.data, self.geometry, self.groups,
                             block_bytes=be.cache_block_bytes, scratch=be.scratch,
                             map_chunks=be.parallel_map, min_chunks=be.host_threads())

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            dx, dW, db = backward(dY, need_dx=need_dx, need_dw=W.requires_grad,
                                  need_db=b is not None and b.requires_grad)
            if dW is not None:
                W.accumulate(dW)
            if db is not None:
                b.accumulate(db)
            return dx

        return y, backprop


def _padding(padding: Any, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """``padding`` (int, pair, "valid" or "same") -> (both-sides padding, extra padding at the end).

    "same" keeps the input size (stride 1 only, as PyTorch): a total of ``d*(k - 1)`` zeros per
    axis, half on each side and the odd one at the end (bottom/right), as PyTorch pads.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0), (0, 0)
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(f"Conv2D: padding='same' needs stride 1, got stride={stride}; "
                                 "use an int padding for strided convolutions")
            total = [d * (k - 1) for k, d in zip(kernel, dilation)]
            both = (total[0] // 2, total[1] // 2)
            return both, (total[0] - 2 * both[0], total[1] - 2 * both[1])
        raise ValueError(f"Conv2D: `padding` must be an int >= 0, a pair of them, 'same' or 'valid', got {padding!r}")
    return pair(padding, "padding", "Conv2D", minimum=0), (0, 0)
