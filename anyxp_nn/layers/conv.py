"""Conv2D: 2-D cross-correlation over NCHW input, PyTorch's layout and numerics.

    y[n, o, p, q] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] * xpad[n, c, p*sh + i*dh, q*sw + j*dw]

Forward: ``cols = im2col(x)`` (C*kh*kw, N*Ho*Wo), then ``Y = W @ cols`` (one GEMM per group).
Backward, ``db = sum dY`` and (dX skipped when ``need_dx=False``, e.g. for a model's first layer):
  * stride 1: one patch matrix of dY, ``dcols = im2col(dY)`` padded by ``d*(k-1) - p``;
    ``dX = Wt @ dcols`` (the convolution of dY with the flipped, transposed kernel) and
    ``dW = flip(dcols @ x^T)``; see docs/03-cnns-deep-learning-keys.md for the derivation.
  * other strides (or padding beyond the dilated kernel): ``dW = (cols @ dY^T)^T`` and
    ``dX = col2im(W^T @ dY)``.
On a CPU a patch matrix far larger than ``backend.cache_block_bytes`` is built and used in
batch chunks, which keeps it in cache and never holds it whole; temporary patch matrices and
padded inputs live in reused work buffers (``backend.scratch``).
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

    def _batch_chunks(self, n: int, bytes_per_sample: int) -> list[tuple[int, int]]:
        """``[(start, stop)]`` batch ranges whose patch matrix fits ``backend.cache_block_bytes``.

        Only a patch matrix far beyond the budget (> 4x) is split: measured on the MNIST CNN
        (14 MiB matrices) chunks cost ~5%, on the small ResNet (29 MiB) they save ~25%.
        """
        budget = self.backend.cache_block_bytes
        whole = n * bytes_per_sample <= 4 * budget if budget else True
        size = n if whole else max(1, min(n, budget // max(1, bytes_per_sample)))
        return [(a, min(n, a + size)) for a in range(0, n, size)]

    def _im2col(self, x: Any, geom: tuple, key: "str | None" = None) -> Any:
        """``im2col(x, *geom)`` with the padded input in a reused buffer (``backend.scratch``), and
        the patch matrix too when ``key`` names one (a temporary, used up before the next call)."""
        be = self.backend
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geom
        n, c, h, w = x.shape
        pad = be.scratch(("conv-pad", ph, pw), (c, n, h + 2 * ph, w + 2 * pw), x.dtype, zero=True) if ph or pw else None
        out = None
        if key is not None:
            ho, wo = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
            out = be.scratch(key, (c, kh, kw, n, ho, wo), x.dtype)
        return im2col(x, *geom, out=out, pad_buffer=pad)

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        self._check_input(x, ndim=4)
        n, o, ho, wo = self.output_shape(tuple(x.shape))
        xp = self.backend.xp
        W, b, g = self.weight, self.bias, self.groups
        geom = (self.kernel_size, self.stride, self.padding, self.dilation)
        k = self.in_channels // g * self.kernel_size[0] * self.kernel_size[1]
        Wg = xp.reshape(W.data, (g, o // g, k))  # (g, O/g, C/g*kh*kw)
        kh, kw = self.kernel_size
        c_in, (h, w_) = self.in_channels, x.shape[2:]
        # A stride-1 convolution's backward is built on ONE patch matrix, that of dY padded by
        # ``tpad`` (the flipped kernel's reach): dX = Wt @ dcols (a stride-1 convolution of dY with
        # the flipped, transposed kernel) and dW = flip(dcols @ x^T).  No col2im's nine
        # read-modify-write passes, and no patch matrix of x kept from forward or recomputed.
        # Other strides (and padding beyond the dilated kernel) keep im2col(x) and use col2im.
        (ph, pw), (dh, dw) = self.padding, self.dilation
        tpad = (dh * (kh - 1) - ph, dw * (kw - 1) - pw)
        transposed_conv = self.stride == (1, 1) and min(tpad) >= 0
        # Chunks fit the larger patch matrix per sample: im2col(x) in forward, im2col(dY) in a
        # stride-1 backward (O/C times as large).  Measured (interleaved A/B, one thread): the
        # MNIST CNN step 58 ms with its 32 -> 64 conv2 chunked this way vs 66 ms whole with
        # im2col(x) kept for dW; a first layer, which never builds im2col(dY), pays ~1.5 ms.
        patch_elems = max(k * g * ho * wo, o * kh * kw * (h * w_ if transposed_conv else ho * wo))
        chunks = self._batch_chunks(n, patch_elems * (xp.finfo(x.dtype).bits // 8))

        def cols_of(a: int, z: int, key: "str | None" = "conv-cols-x") -> Any:  # (g, C/g*kh*kw, (z-a)*Ho*Wo)
            return xp.reshape(self._im2col(x[a:z, ...], geom, key), (g, k, (z - a) * ho * wo))

        # Cache blocking: for a huge patch matrix, im2col, GEMM (and in backward col2im) run
        # over batch chunks whose patch matrix stays in cache instead of one 9x-expanded
        # matrix for the whole batch.  One chunk (the whole batch) on GPUs.
        if len(chunks) == 1:
            cols = cols_of(0, n, key=None)  # may be kept for backward: not a reused buffer
            Y = xp.reshape(Wg @ cols, (o, n, ho, wo))  # one GEMM per group
            # Kept for dW only where backward may not build dcols (need_dx=False, e.g. a first
            # layer) and x's patch matrix is the smaller one.
            kept = cols if not transposed_conv or c_in < o else None
        else:
            kept = None  # recomputed chunk by chunk in backward (cheap, and no big buffer held)
            Y = xp.empty((o, n, ho, wo), dtype=x.dtype, device=self.backend.device)
            for a, z in chunks:
                Y[:, a:z, ...] = xp.reshape(Wg @ cols_of(a, z), (o, z - a, ho, wo))
        if b is not None:
            Y += xp.reshape(b.data, (o, 1, 1, 1))
        y = xp.permute_dims(Y, (1, 0, 2, 3))  # (N, O, Ho, Wo) view, no copy
        xt = xp.permute_dims(x, (1, 0, 2, 3))  # (C, N, H, W) view

        def backprop(dy: Any, need_dx: bool = True) -> Any:
            dYt = xp.permute_dims(dy, (1, 0, 2, 3))  # (O, N, Ho, Wo)
            if b is not None and b.requires_grad:
                b.accumulate(xp.sum(xp.reshape(dYt, (o, n * ho * wo)), axis=1))
            use_dcols = need_dx and transposed_conv
            dW = None  # (g, O/g, C/g*kh*kw); with use_dcols and no kept cols (g, O/g*kh*kw, C/g)
            if need_dx:
                dX = xp.empty((c_in, n, h, w_), dtype=dy.dtype, device=self.backend.device)  # (C, N, H, W)
            if use_dcols:  # (g, C/g, O/g*kh*kw), taps flipped
                Wt = xp.flip(xp.reshape(W.data, (g, o // g, c_in // g, kh, kw)), axis=(-2, -1))
                Wt = xp.reshape(xp.permute_dims(Wt, (0, 2, 1, 3, 4)), (g, c_in // g, o // g * kh * kw))
            for a, z in chunks:
                m = z - a
                dY = xp.reshape(dYt[:, a:z, ...], (g, o // g, m * ho * wo))  # (g, O/g, chunk*Ho*Wo)
                if use_dcols:
                    dcols = self._im2col(xp.permute_dims(dYt[:, a:z, ...], (1, 0, 2, 3)),
                                         (self.kernel_size, (1, 1), tpad, self.dilation), "conv-cols-dy")
                    dcols = xp.reshape(dcols, (g, o // g * kh * kw, m * h * w_))
                    dX[:, a:z, ...] = xp.reshape(Wt @ dcols, (c_in, m, h, w_))
                if W.requires_grad:
                    # (A @ B^T) with the long axis as K and the wide operand first: same numbers as
                    # dY @ cols^T, ~2x faster in OpenBLAS for these shapes, no slower in PyTorch.
                    if use_dcols and kept is None:
                        xc = xp.reshape(xt[:, a:z, ...], (g, c_in // g, m * h * w_))
                        part = dcols @ xp.matrix_transpose(xc)  # (g, O/g*kh*kw, C/g)
                    else:
                        cols = kept if kept is not None else cols_of(a, z)  # kept: one chunk
                        part = xp.matrix_transpose(cols @ xp.matrix_transpose(dY))  # (g, O/g, C/g*kh*kw)
                    if dW is None:
                        dW = part
                    else:
                        dW += part
                if need_dx and not use_dcols:
                    dcols = xp.reshape(xp.matrix_transpose(Wg) @ dY, (c_in, kh, kw, m, ho, wo))
                    dX[:, a:z, ...] = xp.permute_dims(col2im(dcols, (m, c_in, h, w_), *geom), (1, 0, 2, 3))
            if dW is not None:
                if use_dcols and kept is None:  # (g, O/g, kh, kw, C/g) -> (O, C/g, kh, kw), taps unflipped
                    dW = xp.permute_dims(xp.reshape(dW, (g * (o // g), kh, kw, c_in // g)), (0, 3, 1, 2))
                    dW = xp.flip(dW, axis=(-2, -1))
                W.accumulate(xp.reshape(dW, tuple(W.shape)))  # (O, C/g, kh, kw)
            return xp.permute_dims(dX, (1, 0, 2, 3)) if need_dx else None  # (N, C, H, W) view

        return y, backprop
