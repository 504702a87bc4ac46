"""2-D max and average pooling as loops over kernel offsets (Array API only).

Max pooling keeps a running maximum and a running argmax over the ``kh*kw``
window offsets, scanned in row-major order; the strict ``>`` keeps the *first*
maximum, so on ties the whole gradient goes to one element per window, the one
PyTorch picks.  Backward adds ``where(argmax == k, dY, 0)`` into the strided
slice of offset ``k``.

Average pooling pads with zeros and divides by ``kh*kw`` (PyTorch's default
``count_include_pad=True``); backward adds ``dY / (kh*kw)`` into every offset's slice.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from array_api_compat import array_namespace, device as _device

from .conv import Pair, conv_output_size, pad2d, window_slices

__all__ = ["max_pool2d", "avg_pool2d", "pool_output_size"]


def pool_output_size(h: int, w: int, kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    return (conv_output_size(h, kernel[0], stride[0], padding[0]),
            conv_output_size(w, kernel[1], stride[1], padding[1]))


def _scatter(dy_parts: Callable[[int], Any], x_shape: tuple[int, ...], kernel: Pair, stride: Pair,
             padding: Pair, out: Pair, like: Any, layout: Any = None) -> Any:
    """dx (N, C, H, W): sum over offsets k of ``dy_parts(k)`` placed at offset k's slice.

    ``layout``: the input x, when held anyway; without padding dx is then ``zeros_like(x)``
    (``empty_like(x)`` when the windows tile x exactly, so that every cell is written),
    which keeps x's memory order (the channel-first order of a convolution's output), so the
    elementwise passes that follow read matching layouts (a transposed mix of operands ran
    ~1.4x slower in NumPy).  Otherwise dx is a fresh C-order array."""
    xp = array_namespace(like)
    n, c, h, w = x_shape
    ph, pw = padding
    overlap = stride[0] < kernel[0] or stride[1] < kernel[1]
    if ph or pw or layout is None:
        dxpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=like.dtype, device=_device(like))
    elif not overlap and out[0] * stride[0] == h and out[1] * stride[1] == w and tuple(stride) == tuple(kernel):
        dxpad = xp.empty_like(layout, dtype=like.dtype)  # the windows tile x exactly: every cell is written
    else:
        dxpad = xp.zeros_like(layout, dtype=like.dtype)
    for k, (_, _, rows, cols) in enumerate(window_slices(kernel, stride, (1, 1), out)):
        if overlap:
            dxpad[:, :, rows, cols] += dy_parts(k)
        else:  # disjoint windows: each pixel gets at most one contribution
            dxpad[:, :, rows, cols] = dy_parts(k)
    return dxpad[:, :, ph:ph + h, pw:pw + w] if (ph or pw) else dxpad


def max_pool2d(x: Any, kernel: Pair, stride: Pair, padding: Pair) -> tuple[Any, Callable[[Any], Any]]:
    """(N, C, H, W) -> y (N, C, Ho, Wo) and ``backward(dY) -> dX``; padding is -inf."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    out = pool_output_size(h, w, kernel, stride, padding)
    xpad = pad2d(x, padding, -math.inf)
    slices = window_slices(kernel, stride, (1, 1), out)
    idx_dtype = xp.int8 if len(slices) <= 127 else xp.int32
    y, arg = None, None
    for k, (_, _, rows, cols) in enumerate(slices):
        v = xpad[:, :, rows, cols]  # (N, C, Ho, Wo)
        if y is None:
            y = v
            continue
        y_new = xp.maximum(y, v)
        better = y_new > y  # v beat the running max, strictly: ties keep the first maximum (and
        # the comparison reads the two contiguous maxima, not the strided window slice again)
        # offsets come in increasing k, so the last k that beat the running max is the argmax;
        # maximum/astype/multiply are cheaper than where() on NumPy
        hit = xp.astype(better, idx_dtype) * k
        arg = hit if arg is None else xp.maximum(arg, hit)
        y = y_new
    if arg is None:  # 1x1 window
        y = xp.asarray(y, copy=True)  # never hand out a view of the input
        arg = xp.zeros(tuple(y.shape), dtype=idx_dtype, device=_device(x))

    def backward(dY: Any) -> Any:
        # dY * (arg == k): a 0/1 mask product (an inf/nan dY would leak as nan, unlike where());
        # dX in x's memory order (x is held anyway by the ReLU that usually precedes the pool)
        return _scatter(lambda k: dY * xp.astype(arg == k, dY.dtype), (n, c, h, w), kernel, stride, padding,
                        out, dY, layout=x)

    return y, backward


def avg_pool2d(x: Any, kernel: Pair, stride: Pair, padding: Pair) -> tuple[Any, Callable[[Any], Any]]:
    """(N, C, H, W) -> y (N, C, Ho, Wo) and ``backward(dY) -> dX``; zero padding counts."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    out = pool_output_size(h, w, kernel, stride, padding)
    xpad = pad2d(x, padding, 0.0)
    y = None
    for _, _, rows, cols in window_slices(kernel, stride, (1, 1), out):
        v = xpad[:, :, rows, cols]
        if y is None:
            y = xp.asarray(v, copy=True)  # a fresh array, never a view of x
        else:
            y += v
    y /= float(kernel[0] * kernel[1])  # sum / (kh*kw), as PyTorch

    def backward(dY: Any) -> Any:
        g = dY / float(kernel[0] * kernel[1])
        return _scatter(lambda k: g, (n, c, h, w), kernel, stride, padding, out, dY)

    return y, backward
