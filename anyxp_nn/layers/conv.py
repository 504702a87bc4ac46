"""Conv2D: 2-D cross-correlation over NCHW input, PyTorch's layout and numerics.

    y[n, o, p, q] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] * xpad[n, c, p*sh + i*dh, q*sw + j*dw]

Forward: ``cols = im2col(x)`` (C*kh*kw, N*Ho*Wo), then ``Y = W @ cols`` (one GEMM per group).
Backward: ``dW = dY @ cols^T``, ``db = sum dY``, ``dX = col2im(W^T @ dY)`` (skipped when
``need_dx=False``, e.g. for the first layer of a model).
"""
from __future__ import annotations

import math
from typing import Any

from .. import init as _init
from ..ops.conv import col2im, conv_output_size, im2col
from ..parameter import Parameter
from ..random import Generator
from .base import Backprop, Layer

__all__ = ["Conv2D", "pair"]


def pair(v: Any, name: str, layer: str, minimum: int = 1) -> tuple[int, int]:
    """An int or an (h, w) pair of ints >= ``minimum`` -> (h, w)."""
    vals = (v, v) if isinstance(v, int) and not isinstance(v, bool) else tuple(v) if isinstance(v, (tuple, list)) else None
    if (vals is None or len(vals) != 2
            or any(not isinstance(s, int) or isinstance(s, bool) or s < minimum for s in vals)):
        raise ValueError(f"{layer}: `{name}` must be an int >= {minimum} or a pair of them, got {v!r}")
    return vals


class Conv2D(Layer):
    """2-D convolution layer.

    Args:
        in_channels, out_channels: C and O.
        kernel_size, stride, padding, dilation: int or (h, w); zero padding on both sides.
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
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Conv2D: `{name}` must be a positive int, got {v!r}")
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
            if v % groups:
                raise ValueError(f"Conv2D: `{name}` (={v}) must be divisible by `groups` (={groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2D")
        self.stride = pair(stride, "stride", "Conv2D")
        self.padding = pair(padding, "padding", "Conv2D", minimum=0)
        self.dilation = pair(dilation, "dilation", "Conv2D")
        kh, kw = self.kernel_size
        f = _init.get_initializer(init, "Conv2D")
        kw_ = dict(rng=rng, dtype=self.dtype, backend=self.backend)
        self.weight = Parameter(f((out_channels, in_channels // groups, kh, kw), **kw_))
        if bias:
            fan_in = in_channels // groups * kh * kw
            b = (_init.uniform((out_channels,), 1 / math.sqrt(fan_in), **kw_) if init == "torch"
                 else _init.zeros((out_channels,), **kw_))
            self.bias = Parameter(b)
        else:
            self.bias = None

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")

    def output_shape(self, x_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, O, Ho, Wo) for an input of shape (N, C, H, W); raises ValueError for a bad one."""
        n, c, h, w = x_shape
        if c != self.in_channels:
            raise ValueError(f"{self._name()}: input has {c} channels, expected {self.in_channels} "
                             f"(input shape {tuple(x_shape)})")
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        ho, wo = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
        if ho < 1 or wo < 1:
            raise ValueError(f"{self._name()}: kernel {dh * (kh - 1) + 1}x{dw * (kw - 1) + 1} (dilated) is larger "
                             f"than the padded input {h + 2 * ph}x{w + 2 * pw} (input {h}x{w}, padding {ph}x{pw})")
        return n, self.out_channels, ho, wo

    def forward(self, x: Any, train: bool = True) -> tuple[Any, Backprop]:
        self._check_input(x, ndim=4)
        n, o, ho, wo = self.output_shape(tuple(x.shape))
        xp = self.backend.xp
        W, b, g = self.weight, self.bias, self.groups
        geom = (self.kernel_size, self.stride, self.padding, self.dilation)
        k = self.in_channels // g * self.kernel_size[0] * self.kernel_size[1]
        m = n * ho * wo
        cols = xp.reshape(im2col(x, *geom), (g, k, m))  # (g, C/g*kh*kw, N*Ho*Wo)
        Wg = xp.reshape(W.data, (g, o // g, k))  # (g, O/g, C/g*kh*kw)
        Y = xp.reshape(Wg @ cols, (o, n, ho, wo))  # one GEMM per group
        if b is not None:
            Y += xp.reshape(b.data, (o, 1, 1, 1))
        y = xp.permute_dims(Y, (1, 0, 2, 3))  # (N, O, Ho, Wo) view, no copy
        x_shape = tuple(x.shape)

        def backprop(dy: Any, need_dx: bool = True) -> Any:
            dY = xp.reshape(xp.permute_dims(dy, (1, 0, 2, 3)), (g, o // g, m))  # (g, O/g, N*Ho*Wo)
            if W.requires_grad:
                W.accumulate(xp.reshape(dY @ xp.matrix_transpose(cols), tuple(W.shape)))  # (O, C/g, kh, kw)
            if b is not None and b.requires_grad:
                b.accumulate(xp.sum(xp.reshape(dY, (o, m)), axis=1))
            if not need_dx:
                return None
            dcols = xp.matrix_transpose(Wg) @ dY  # (g, C/g*kh*kw, N*Ho*Wo)
            kh, kw = self.kernel_size
            dcols = xp.reshape(dcols, (self.in_channels, kh, kw, n, ho, wo))
            return col2im(dcols, x_shape, *geom)

        return y, backprop
