"""Transposed 2-D convolution, the adjoint of :mod:`anyxp_nn.ops.conv`'s convolution.

A convolution with weight ``W`` (O, C/g, kh, kw) maps (N, C, H, W) -> (N, O, Ho, Wo); its
input-gradient maps (N, O, Ho, Wo) -> (N, C, H, W).  A transposed convolution with the
same ``W`` read as (C_in, C_out/g, kh, kw) (PyTorch's ``ConvTranspose2d`` layout, C_in = O)
*is* that input-gradient:

    forward:  cols = W_g^T @ x_g               (g, C_out/g*kh*kw, N*H*W)
              y    = col2im(cols)               (N, C_out, Hout, Wout)   overlapping taps add
    backward: dX   = W_g @ im2col(dY)           the ordinary convolution of dY
              dW_g = x_g @ im2col(dY)_g^T       (g, C_in/g, C_out/g*kh*kw)

Output size along one axis (PyTorch's formula):
``out = (size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1``.
``output_padding`` only adds rows/columns at the end that no input reaches (zero before the
bias); it picks one of the ``stride`` input sizes a strided convolution maps to the same size.
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from .conv import col2im, im2col

__all__ = ["conv_transpose_output_size", "conv_transpose2d", "conv_transpose2d_backward"]

Pair = tuple[int, int]


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int, output_padding: int = 0,
                               dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis (may be <= 0 for a large padding)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_transpose2d(x: Any, weight: Any, groups: int, out_hw: Pair, stride: Pair, padding: Pair,
                     dilation: Pair) -> Any:
    """y (N, C_out, Hout, Wout) of x (N, C_in, H, W) and weight (C_in, C_out/g, kh, kw), no bias.

    ``out_hw``: (Hout, Wout), from :func:`conv_transpose_output_size` (it carries output_padding).
    """
    xp = array_namespace(x, weight)
    n, c_in, h, w = x.shape
    _, co_g, kh, kw = weight.shape
    g = groups
    Wg = xp.reshape(weight, (g, c_in // g, co_g * kh * kw))  # (g, C_in/g, C_out/g*kh*kw)
    X = xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (g, c_in // g, n * h * w))  # (g, C_in/g, N*H*W)
    cols = xp.reshape(xp.matrix_transpose(Wg) @ X, (g * co_g, kh, kw, n, h, w))  # (C_out, kh, kw, N, H, W)
    return col2im(cols, (n, g * co_g, *out_hw), (kh, kw), stride, padding, dilation)  # (N, C_out, Hout, Wout)


def conv_transpose2d_backward(dY: Any, x: Any, weight: Any, groups: int, stride: Pair, padding: Pair,
                              dilation: Pair, need_dx: bool = True, need_dw: bool = True) -> tuple[Any, Any]:
    """``(dX, dW)`` of :func:`conv_transpose2d` for an upstream gradient dY (N, C_out, Hout, Wout).

    Both come from one patch matrix of dY (the convolution's im2col); either may be skipped (None).
    """
    xp = array_namespace(dY, weight)
    n, c_in, h, w = x.shape
    _, co_g, kh, kw = weight.shape
    g = groups
    cols = im2col(dY, (kh, kw), stride, padding, dilation)  # (C_out, kh, kw, N, Ho', Wo')
    if tuple(cols.shape[-2:]) != (h, w):  # output_padding >= stride (allowed when < dilation): extra rows
        cols = cols[..., :h, :w]  # no input position reads them
    cols = xp.reshape(cols, (g, co_g * kh * kw, n * h * w))  # (g, C_out/g*kh*kw, N*H*W)
    dX = dW = None
    if need_dx:
        Wg = xp.reshape(weight, (g, c_in // g, co_g * kh * kw))
        dX = xp.permute_dims(xp.reshape(Wg @ cols, (c_in, n, h, w)), (1, 0, 2, 3))  # (N, C_in, H, W) view
    if need_dw:
        X = xp.reshape(xp.permute_dims(x, (1, 0, 2, 3)), (g, c_in // g, n * h * w))  # (g, C_in/g, N*H*W)
        dW = xp.reshape(X @ xp.matrix_transpose(cols), tuple(weight.shape))  # (C_in, C_out/g, kh, kw)
    return dX, dW
