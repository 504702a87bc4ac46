"""im2col / col2im for 2-D convolution, written once against the Array API.

Layout (chosen by measurement, see benchmarks/README.md): the patch matrix is
*channel-major*, ``cols[c, i, j, n, ho, wo] = xpad[n, c, i*dh + ho*sh, j*dw + wo*sw]``,
reshaped to ``(C*kh*kw, N*Ho*Wo)``.  A convolution is then ONE large GEMM
``W (O, C*kh*kw) @ cols -> (O, N*Ho*Wo)`` (per group: a batch of ``groups`` GEMMs),
and the result ``(O, N, Ho, Wo)`` is handed on as the NCHW view
``permute_dims(Y, (1, 0, 2, 3))`` with no copy.  Elementwise ops downstream keep
that memory order, so the next convolution's ``permute_dims(x, (1, 0, 2, 3))``
reads contiguous memory.

Both directions are a loop over the ``kh*kw`` kernel offsets, each moving one
strided slice: no strided-view tricks, no scatter-add, so the code runs unchanged on
NumPy, CuPy, PyTorch and ``array_api_strict``.

Output size along one axis (PyTorch's formula, ``floor`` division):
``out = (size + 2*padding - dilation*(kernel - 1) - 1) // stride + 1``.
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device as _device

__all__ = ["conv_output_size", "window_slices", "pad2d", "im2col", "col2im"]

Pair = tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution/pooling along one axis (may be <= 0 for a too-large kernel)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def window_slices(kernel: Pair, stride: Pair, dilation: Pair, out: Pair) -> list[tuple[int, int, slice, slice]]:
    """``(i, j, rows, cols)`` for each kernel offset in row-major (PyTorch's scan) order.

    ``x[..., rows, cols]`` of the padded input is the ``(Ho, Wo)`` grid of input
    pixels that kernel tap ``(i, j)`` touches.
    """
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out
    return [(i, j, slice(i * dh, i * dh + sh * (ho - 1) + 1, sh), slice(j * dw, j * dw + sw * (wo - 1) + 1, sw))
            for i in range(kh) for j in range(kw)]


def pad2d(x: Any, padding: Pair, value: float = 0.0) -> Any:
    """Pad the last two axes of a 4-D array with ``value``: a fresh buffer only when there is padding."""
    xp = array_namespace(x)
    ph, pw = padding
    if not (ph or pw):
        return x
    a, b, h, w = x.shape
    buf = xp.full((a, b, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype, device=_device(x))
    buf[:, :, ph:ph + h, pw:pw + w] = x
    return buf


def _channels_first_padded(x: Any, padding: Pair, value: float = 0.0, buffer: Any = None) -> Any:
    """(N, C, H, W) -> (C, N, H + 2ph, W + 2pw); into ``buffer`` (border already ``value``) if given."""
    xt = array_namespace(x).permute_dims(x, (1, 0, 2, 3))  # (C, N, H, W) view
    ph, pw = padding
    if buffer is None or not (ph or pw):
        return pad2d(xt, padding, value)
    _, _, h, w = xt.shape
    buffer[:, :, ph:ph + h, pw:pw + w] = xt
    return buffer


def im2col(x: Any, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair, *, out: Any = None,
           pad_buffer: Any = None) -> Any:
    """(N, C, H, W) -> cols (C, kh, kw, N, Ho, Wo), contiguous.

    One strided-slice copy per kernel offset.  ``out``: a (C, kh, kw, N, Ho, Wo) array to
    write into instead of a fresh one.  ``pad_buffer``: a (C, N, H + 2ph, W + 2pw) array
    whose border is zero, for the padded input (only its interior is written); by default a
    padded copy lives only for this call.  Both let a caller reuse work buffers.
    """
    xp = array_namespace(x)
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho, wo = conv_output_size(h, kh, sh, ph, dh), conv_output_size(w, kw, sw, pw, dw)
    xpad = _channels_first_padded(x, padding, buffer=pad_buffer)  # (C, N, Hp, Wp)
    cols = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype, device=_device(x)) if out is None else out
    for i, j, rows, cs in window_slices(kernel, stride, dilation, (ho, wo)):
        cols[:, i, j, ...] = xpad[:, :, rows, cs]  # (C, N, Ho, Wo)
    return cols


def col2im(dcols: Any, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair,
           dilation: Pair) -> Any:
    """Adjoint of :func:`im2col`: cols (C, kh, kw, N, Ho, Wo) -> dx (N, C, H, W).

    Overlapping windows add up: one ``+=`` into a strided slice of a zero-padded
    buffer per kernel offset.  The result is an NCHW view of that buffer.
    """
    xp = array_namespace(dcols)
    n, c, h, w = x_shape
    (ph, pw) = padding
    _, kh, kw, _, ho, wo = dcols.shape
    dxpad = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype, device=_device(dcols))
    for i, j, rows, cs in window_slices(kernel, stride, dilation, (ho, wo)):
        dxpad[:, :, rows, cs] += dcols[:, i, j, ...]
    return xp.permute_dims(dxpad[:, :, ph:ph + h, pw:pw + w], (1, 0, 2, 3))  # (N, C, H, W) view
