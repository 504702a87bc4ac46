"""ConvTranspose2D: the transposed ("fractionally strided") convolution, PyTorch's layout and numerics.

    y[n, o, :, :] = b[o] + sum_{c in group(o), i, j} x[n, c, p, q] W[c, o', i, j]
                    placed at ypad[n, o, p*sh + i*dh, q*sw + j*dw], then the padding cropped

It is the input-gradient of a Conv2D with the same weight (see :mod:`anyxp_nn.ops.conv_transpose`),
so a stride-2 ConvTranspose2D upsamples by 2 where a stride-2 Conv2D downsamples (U-Net decoders).
"""
from __future__ import annotations

from typing import Any

from .. import init as _init
from .._checks import pair
from ..ops.conv_transpose import conv_transpose2d, conv_transpose2d_backward, conv_transpose_output_size
from ..parameter import Parameter
from ..random import Generator
from ._conv_common import check_channels, check_input_channels, conv_bias, conv_repr
from .base import Backprop, Layer

__all__ = ["ConvTranspose2D", "ConvTranspose2d"]


class ConvTranspose2D(Layer):
    """2-D transposed convolution layer (``torch.nn.ConvTranspose2d``).

    Args:
        in_channels, out_channels: C_in and C_out (both divisible by ``groups``).
        kernel_size, stride, padding, dilation: int or (h, w); ``padding`` removes that many
            rows/columns from each side of the full output (it undoes a Conv2D's padding).
        output_padding: int or (h, w) extra rows/columns at the bottom/right; each must be smaller
            than the stride or the dilation of its axis (PyTorch's rule).
        groups: independent channel groups.
        bias: learn a per-output-channel bias.
        init: weight initialiser (:func:`anyxp_nn.init.get_initializer`) applied to the weight
            shape, whose fans are PyTorch's for ConvTranspose2d (fan_in = C_out/g*kh*kw);
            "torch" also draws the bias as PyTorch does, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        rng: generator for the initial weights.

    Shapes: x (N, C_in, H, W) -> y (N, C_out, Hout, Wout),
    Hout = (H - 1)*sh - 2*ph + dh*(kh - 1) + oph + 1; ``weight`` (C_in, C_out/groups, kh, kw), ``bias`` (C_out,).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 output_padding: Any = 0, groups: int = 1, bias: bool = True, dilation: Any = 1,
                 init: Any = "he", *, rng: "Generator | None" = None, backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        check_channels(in_channels, out_channels, groups, "ConvTranspose2D")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "ConvTranspose2D")
        self.stride = pair(stride, "stride", "ConvTranspose2D")
        self.padding = pair(padding, "padding", "ConvTranspose2D", minimum=0)
        self.output_padding = pair(output_padding, "output_padding", "ConvTranspose2D", minimum=0)
        self.dilation = pair(dilation, "dilation", "ConvTranspose2D")
        for op, s, d in zip(self.output_padding, self.stride, self.dilation):
            if op >= s and op >= d:
                raise ValueError(f"ConvTranspose2D: `output_padding` {self.output_padding} must be smaller than "
                                 f"either `stride` {self.stride} or `dilation` {self.dilation} on each axis")
        kh, kw = self.kernel_size
        f = _init.get_initializer(init, "ConvTranspose2D")
        kw_ = dict(rng=rng, dtype=self.dtype, backend=self.backend)
        shape = (in_channels, out_channels // groups, kh, kw)
        self.weight = Parameter(f(shape, **kw_))
        fan_in, _ = _init.fans(shape)  # C_out/g*kh*kw, as torch computes it for this layout
        self.bias = conv_bias(init, out_channels, fan_in, **kw_) if bias else None

    def extra_repr(self) -> str:
        return conv_repr(self, (("padding", self.padding, (0, 0)), ("output_padding", self.output_padding, (0, 0)),
                                ("dilation", self.dilation, (1, 1))))

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C_out, Hout, Wout) for an input of shape (N, C_in, H, W); raises ValueError for a bad one."""
        check_input_channels(self, x_shape)
        n, _, h, w = x_shape
        size = [conv_transpose_output_size(s, k, st, p, op, d) for s, k, st, p, op, d in
                zip((h, w), self.kernel_size, self.stride, self.padding, self.output_padding, self.dilation)]
        if min(size) < 1:
            raise ValueError(f"{self._name()}: input {h}x{w} gives an empty output {size[0]}x{size[1]}; "
                             f"`padding` {self.padding} crops more than the transposed convolution produces")
        return n, self.out_channels, size[0], size[1]

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        self._check_input(x, ndim=4)
        n, o, ho, wo = self.output_shape(tuple(x.shape))
        xp = self.backend.xp
        W, b, g = self.weight, self.bias, self.groups
        geom = (self.stride, self.padding, self.dilation)
        y = conv_transpose2d(x, W.data, g, (ho, wo), *geom)  # (N, C_out, Hout, Wout)
        if b is not None:
            y = y + xp.reshape(b.data, (1, o, 1, 1))

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            if b is not None and b.requires_grad:
                b.accumulate(xp.sum(dY, axis=(0, 2, 3)))
            dX, dW = conv_transpose2d_backward(dY, x, W.data, g, *geom, need_dx=need_dx, need_dw=W.requires_grad)
            if dW is not None:
                W.accumulate(dW)
            return dX

        return y, backprop


ConvTranspose2d = ConvTranspose2D  # PyTorch's spelling
