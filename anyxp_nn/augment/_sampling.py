"""Pixel sampling with standard ops: gathers from the flattened batch, zero or reflect borders.

Both samplers compute, per output pixel, where its value comes from in the
source image, then read all of them in one ``xp.take`` on the flattened batch:
the flat index of ``x[n, c, i, j]`` is ``((n * C + c) * H + i) * W + j``.
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device as _device

__all__ = ["gather", "shifted_window", "pad_zeros", "bilinear", "row_mean"]


def gather(x: Any, src_i: Any, src_j: Any) -> Any:
    """``out[n, c, i, j] = x[n, c, src_i[n, i, j], src_j[n, i, j]]``.

    Args:
        x: (N, C, H, W).
        src_i, src_j: int64 arrays broadcastable to (N, 1, Ho, Wo), every value in range.

    Returns (N, C, Ho, Wo).
    """
    xp = array_namespace(x)
    n, c, h, w = x.shape
    plane = xp.reshape(xp.arange(n * c, dtype=xp.int64, device=_device(x)), (n, c, 1, 1)) * (h * w)
    idx = plane + (src_i * w + src_j)  # (N, C, Ho, Wo)
    out = xp.take(xp.reshape(x, (-1,)), xp.reshape(idx, (-1,)), axis=0)
    return xp.reshape(out, tuple(idx.shape))


def _reflect(xp: Any, i: Any, size: int) -> Any:
    """Mirror indices at the borders without repeating the edge (PyTorch's "reflect")."""
    i = xp.where(i < 0, -i, i)
    return xp.where(i >= size, 2 * (size - 1) - i, i)


def shifted_window(x: Any, top: Any, left: Any, out_h: int, out_w: int, mode: str = "constant") -> Any:
    """``out[n, :, i, j] = x[n, :, top[n] + i, left[n] + j]``, zero (or mirrored) outside the image.

    Args:
        x: (N, C, H, W).
        top, left: (N,) int64 on x's device; may point outside the image (that is the padding).
        mode: "constant" (zeros) or "reflect" (needs the overhang < the image size).
    """
    xp = array_namespace(x)
    dev = _device(x)
    n, _, h, w = x.shape
    ii = xp.reshape(top, (n, 1, 1, 1)) + xp.reshape(xp.arange(out_h, dtype=xp.int64, device=dev), (1, 1, out_h, 1))
    jj = xp.reshape(left, (n, 1, 1, 1)) + xp.reshape(xp.arange(out_w, dtype=xp.int64, device=dev), (1, 1, 1, out_w))
    if mode == "reflect":
        return gather(x, _reflect(xp, ii, h), _reflect(xp, jj, w))
    inside = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)  # (N, 1, Ho, Wo)
    vals = gather(x, xp.clip(ii, 0, h - 1), xp.clip(jj, 0, w - 1))
    return xp.where(inside, vals, 0.0)


def pad_zeros(x: Any, p: int) -> Any:
    """(N, C, H, W) -> (N, C, H + 2p, W + 2p) with a border of p zeros."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    dev = _device(x)
    side = xp.zeros((n, c, h, p), dtype=x.dtype, device=dev)
    x = xp.concat([side, x, side], axis=3)
    band = xp.zeros((n, c, p, w + 2 * p), dtype=x.dtype, device=dev)
    return xp.concat([band, x, band], axis=2)


def bilinear(x: Any, si: Any, sj: Any) -> Any:
    """Bilinear samples of ``x`` at fractional source rows ``si`` and columns ``sj``; zero outside.

    Args:
        x: (N, C, H, W).
        si, sj: (N, 1, Ho, Wo) of x's dtype.

    With i0 = floor(si), a = si - i0 (and j0, b likewise):

        top = x[i0, j0] + b (x[i0, j0+1] - x[i0, j0]),  bottom = the same on row i0+1
        out = top + a (bottom - top)

    The image gets a 2-pixel zero border and the corners are clamped into it, so a
    neighbour outside the image reads zero without any mask, and the four reads are
    one gather of the corner index plus the constant offsets (0, 1, W+4, W+5).
    """
    xp = array_namespace(x)
    n, c, h, w = x.shape
    # shift by the 2-pixel border first: floor(si + 2) = floor(si) + 2 and the fraction is unchanged
    si, sj = si + 2.0, sj + 2.0
    fi, fj = xp.floor(si), xp.floor(sj)
    a, b = si - fi, sj - fj
    wp = w + 4
    # top-left corners in the padded image, clamped to [0, H + 2] so the +1 neighbour stays inside
    i0 = xp.clip(xp.astype(fi, xp.int64), 0, h + 2)
    j0 = xp.clip(xp.astype(fj, xp.int64), 0, w + 2)
    flat = xp.reshape(pad_zeros(x, 2), (-1,))
    plane = xp.reshape(xp.arange(n * c, dtype=xp.int64, device=_device(x)), (1, n, c, 1, 1)) * ((h + 4) * wp)
    corner = xp.reshape(xp.asarray([0, 1, wp, wp + 1], dtype=xp.int64, device=_device(x)), (4, 1, 1, 1, 1))
    idx = plane + (i0 * wp + j0) + corner  # (4, N, C, Ho, Wo): the four neighbours, one gather
    v = xp.reshape(xp.take(flat, xp.reshape(idx, (-1,)), axis=0), tuple(idx.shape))
    top = v[0, ...] + b * (v[1, ...] - v[0, ...])
    bottom = v[2, ...] + b * (v[3, ...] - v[2, ...])
    return top + a * (bottom - top)


def row_mean(a: Any) -> Any:
    """Mean of each row of a 2-D array, summed as a fixed pairwise tree of elementwise adds.

    A library reduction may add in any order (NumPy pairwise, PyTorch vectorised),
    so its last bit differs between backends; halving the row with slice adds fixes
    the order and keeps augmentations bit-identical everywhere.  (N, K) -> (N, 1).
    """
    xp = array_namespace(a)
    n, k = a.shape
    width = 1
    while width < k:
        width *= 2
    if width > k:
        a = xp.concat([a, xp.zeros((n, width - k), dtype=a.dtype, device=_device(a))], axis=1)
    while width > 1:
        width //= 2
        a = a[:, :width] + a[:, width:]
    return a * (1.0 / k)
