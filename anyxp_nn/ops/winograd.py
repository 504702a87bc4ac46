"""Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
Networks", CVPR 2016), written once against the Array API.

A 3x3, stride-1 convolution computes each 2x2 output tile from a 4x4 input tile ``d``
(tiles overlap by 2) as

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A

with the constant matrices

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Summed over input channels, the elementwise product becomes 16 GEMMs, one per tile position
``(xi, nu)``:  ``M[xi, nu] = U[xi, nu] (O, C) @ V[xi, nu] (C, P)`` with ``U = G g G^T`` (the
transformed weights), ``V = B^T d B`` (the transformed input tiles) and P = N * tiles.
That is 16 multiply-adds per output pair instead of 36 (2.25x fewer), and V is 4x the input
instead of im2col's 9x.  Backward:

* ``dX``: the convolution of dY (padded by ``2 - p``) with the flipped, transposed kernel,
  itself a 3x3 stride-1 convolution, so Winograd again (:func:`winograd_conv3x3` on dY).
* ``dW``: by the chain rule through the three stages, ``dM = A dY_tile A^T``,
  ``dU[xi, nu] = dM[xi, nu] (O, P) @ V[xi, nu]^T (P, C)`` and ``dW = G^T dU G``
  (:func:`winograd_conv3x3_dw`), 16 GEMMs with the long axis P as K.

Float32 error bound (first order in the unit roundoff u = 2^-24, m = max|x| max|W|).  Every
transformed quantity is a short sum of exact or halved terms: |V| <= 4 max|x| (an entry of
B^T d B adds 4 inputs: 3 roundings), |U| <= (9/4) max|W| (9 quarter-weighted taps, two GEMMs:
<= 4 roundings), so T = sum_c |U||V| <= 9 C m, and an entry of M (a sum of C products) is off
by at most (C + 3 + 4) u T.  The output adds 9 entries of M (4 more roundings), so

    |y_winograd - y_exact| <= 9 * (C + 11) * u * 9 C m,   stated with margin as
    |y_winograd - y_exact| <= 81 * C * (C + 16) * u * max|x| * max|W|

for every output element (im2col's sum of 9C products has a bound of the same order,
9C * 9C u m; in practice both errors are far below their bounds).  ``tests/test_conv_algorithms.py``
checks the bound in float32 against a float64 reference, for y and for dX (a Winograd
convolution of dY with C := O).
"""
from __future__ import annotations

from typing import Any, Callable

from array_api_compat import array_namespace, device as _device

__all__ = ["winograd_tiles", "winograd_weights", "winograd_inputs", "winograd_outputs",
           "winograd_output_adjoint", "winograd_weight_adjoint", "winograd_conv3x3",
           "winograd_conv3x3_dx", "winograd_conv3x3_dw", "flip_transpose"]

Pair = tuple[int, int]
Scratch = Callable[..., Any]

_G = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]]


def _bt_into(d: list, out: list) -> None:
    """B^T along one axis: the 4 slices d0..d3 of a tile -> out[0..3] (written in place)."""
    for o, (a, b, sign) in zip(out, ((0, 2, -1), (1, 2, 1), (2, 1, -1), (1, 3, -1))):
        o[...] = d[a]
        if sign > 0:
            o += d[b]
        else:
            o -= d[b]


def _at_into(m: list, out: list) -> None:
    """A^T along one axis: 4 slices -> out[0] = m0 + m1 + m2, out[1] = m1 - m2 - m3."""
    out[0][...] = m[0]
    out[0] += m[1]
    out[0] += m[2]
    out[1][...] = m[1]
    out[1] -= m[2]
    out[1] -= m[3]


def _a_into(d0: Any, d1: Any, out: list) -> None:
    """A along one axis (the adjoint of ``_at_into``) with the last row's sign left out:
    out = [d0, d0 + d1, d0 - d1, d1] (A's last row is -d1; :data:`_SIGN` puts it back)."""
    out[0][...] = d0
    out[1][...] = d0
    out[1] += d1
    out[2][...] = d0
    out[2] -= d1
    out[3][...] = d1


#: (-1)^([xi == 3] + [nu == 3]): the signs :func:`_a_into` leaves out, applied to dU (O, C).
_SIGN = [(-1.0 if k == 3 else 1.0) * (-1.0 if l == 3 else 1.0) for k in range(4) for l in range(4)]


def _work(scratch: "Scratch | None", key: str, shape: tuple, like: Any) -> Any:
    """A work array: from ``scratch`` (reused between calls) when given, else fresh."""
    if scratch is not None:
        return scratch(key, shape, like.dtype)
    return array_namespace(like).empty(shape, dtype=like.dtype, device=_device(like))


def winograd_tiles(out: Pair) -> Pair:
    """Number of 2x2 output tiles along each axis for an (Ho, Wo) output."""
    return (out[0] + 1) // 2, (out[1] + 1) // 2


def flip_transpose(W: Any) -> Any:
    """(O, C, 3, 3) -> (C, O, 3, 3) with the taps rotated by 180 degrees: the kernel of dX."""
    xp = array_namespace(W)
    return xp.flip(xp.permute_dims(W, (1, 0, 2, 3)), axis=(2, 3))


def winograd_weights(W: Any) -> Any:
    """U = G g G^T for every (o, c): (O, C, 3, 3) -> (16, O, C), tile position (xi, nu) at 4*xi + nu.

    Two 2-D GEMMs over all (o, c) at once (a batch of O*C tiny 4x3 products is far slower).
    """
    xp = array_namespace(W)
    o, c = W.shape[0], W.shape[1]
    G = xp.asarray(_G, dtype=W.dtype, device=_device(W))  # (4, 3)
    A = xp.reshape(xp.reshape(W, (o * c * 3, 3)) @ xp.matrix_transpose(G), (o * c, 3, 4))  # g G^T: [oc, i, nu]
    B = xp.reshape(xp.permute_dims(A, (1, 0, 2)), (3, o * c * 4))  # [i, (oc, nu)]
    U = xp.reshape(G @ B, (4, o, c, 4))  # G g G^T: [xi, o, c, nu]
    return xp.reshape(xp.permute_dims(U, (0, 3, 1, 2)), (16, o, c))


def _phases(xt: Any, padding: Pair, tiles: Pair, scratch: "Scratch | None", tag: str) -> list:
    """Split a zero-padded (C, N, H, W) image into its four (row, column) parity phases.

    Returns ``Q[2*rp + cp]`` of shape (C, th + 1, tw + 1, N) with
    ``Q[2*rp + cp][c, a, b, n] = xpad[c, n, 2a + rp, 2b + cp]`` (zero outside the image).  Every
    tile element is then a block ``Q[...][:, a0:a0 + th, b0:b0 + tw, :]`` whose inner axes
    (tw, N) are one contiguous run, which elementwise kernels stream at full speed (NumPy's
    ufuncs slow down several times on short or strided inner axes).
    """
    xp = array_namespace(xt)
    c, n, h, w = xt.shape
    (ph, pw), (th, tw) = padding, tiles
    shape = (c, th + 1, tw + 1, n)
    out = []
    for rp in (0, 1):
        i0 = (rp - ph) % 2  # first input row landing on a padded row of this parity
        rows, a0 = len(range(i0, h, 2)), (ph + i0) // 2
        for cp in (0, 1):
            j0 = (cp - pw) % 2
            cols, b0 = len(range(j0, w, 2)), (pw + j0) // 2
            key = (tag, rp, cp, ph, pw, h, w)  # names the written cells: the rest stays zero
            buf = (scratch(key, shape, xt.dtype, zero=True) if scratch is not None
                   else xp.zeros(shape, dtype=xt.dtype, device=_device(xt)))
            if rows and cols:
                buf[:, a0:a0 + rows, b0:b0 + cols, :] = xp.permute_dims(xt[:, :, i0::2, j0::2], (0, 2, 3, 1))
            out.append(buf)
    return out


def winograd_inputs(x: Any, padding: Pair, out: Pair, scratch: "Scratch | None" = None) -> Any:
    """V = B^T d B for every 4x4 input tile: x (N, C, H, W) -> (16, C, th*tw*N), index 4*xi + nu.

    Tiles are ordered (tile row, tile column, sample).  The padding and the row and column an
    odd output size leaves over are zeros.  With ``scratch(key, shape, dtype, zero=False)``
    every work array, V included, is a reused buffer (V is then valid until the next call).
    """
    xp = array_namespace(x)
    n, c = x.shape[0], x.shape[1]
    th, tw = winograd_tiles(out)
    Q = _phases(xp.permute_dims(x, (1, 0, 2, 3)), padding, (th, tw), scratch, "winograd-in")
    T = _work(scratch, "winograd-T", (2, 4, c, th + 1, tw, n), x)  # B^T along columns, whole phase rows
    for rp in (0, 1):
        _bt_into([Q[2 * rp + j % 2][:, :, j // 2:j // 2 + tw, :] for j in range(4)], [T[rp, nu, ...] for nu in range(4)])
    V = _work(scratch, "winograd-V", (4, 4, c, th, tw, n), x)
    for nu in range(4):
        _bt_into([T[i % 2, nu, :, i // 2:i // 2 + th, ...] for i in range(4)], [V[xi, nu, ...] for xi in range(4)])
    return xp.reshape(V, (16, c, th * tw * n))


def winograd_outputs(M: Any, n: int, out: Pair, into: Any = None, scratch: "Scratch | None" = None) -> Any:
    """Y = A^T M A for every tile: M (16, O, th*tw*N) -> Y (O, N, Ho, Wo), channel-first.

    ``into``: an (O, N, Ho, Wo) array (e.g. a batch slice of a larger output) to write instead
    of a fresh one.
    """
    xp = array_namespace(M)
    o = M.shape[1]
    (ho, wo), (th, tw) = out, winograd_tiles(out)
    M = xp.reshape(M, (4, 4, o, th, tw, n))
    Y = xp.empty((o, n, ho, wo), dtype=M.dtype, device=_device(M)) if into is None else into
    R = _work(scratch, "winograd-R", (2, 4, o, th, tw, n), M)  # A^T along tile rows
    for nu in range(4):
        _at_into([M[xi, nu, ...] for xi in range(4)], [R[r, nu, ...] for r in range(2)])
    Yt = _work(scratch, "winograd-Y", (2, 2, o, th, tw, n), M)  # then along columns
    for r in range(2):
        _at_into([R[r, nu, ...] for nu in range(4)], [Yt[r, s, ...] for s in range(2)])
        for s in range(2):
            y = xp.permute_dims(Yt[r, s, ...], (0, 3, 1, 2))  # (O, N, th, tw)
            Y[:, :, r::2, s::2] = y[:, :, :len(range(r, ho, 2)), :len(range(s, wo, 2))]
    return Y


def winograd_output_adjoint(dY: Any, scratch: "Scratch | None" = None) -> Any:
    """dM = A dY_tile A^T without :data:`_SIGN`, the adjoint of :func:`winograd_outputs` up to
    signs: dy (N, O, Ho, Wo) -> (16, O, th*tw*N)."""
    xp = array_namespace(dY)
    n, o, ho, wo = dY.shape
    th, tw = winograd_tiles((ho, wo))
    # the output pixels (2a + r, 2b + s) as D[2r + s] (O, th, tw, N); an odd size's extra outputs get 0
    D = _phases(xp.permute_dims(dY, (1, 0, 2, 3)), (0, 0), (th - 1, tw - 1), scratch, "winograd-dy")
    Cw = _work(scratch, "winograd-dMc", (2, 4, o, th, tw, n), dY)  # A along columns
    for r in range(2):
        _a_into(D[2 * r], D[2 * r + 1], [Cw[r, nu, ...] for nu in range(4)])
    dM = _work(scratch, "winograd-dM", (4, 4, o, th, tw, n), dY)
    for nu in range(4):
        _a_into(Cw[0, nu, ...], Cw[1, nu, ...], [dM[xi, nu, ...] for xi in range(4)])
    return xp.reshape(dM, (16, o, th * tw * n))


def winograd_weight_adjoint(dU: Any) -> Any:
    """dW = G^T dU G, the adjoint of :func:`winograd_weights`: (16, O, C) -> (O, C, 3, 3)."""
    xp = array_namespace(dU)
    o, c = dU.shape[1], dU.shape[2]
    G = xp.asarray(_G, dtype=dU.dtype, device=_device(dU))  # (4, 3)
    A = xp.permute_dims(xp.reshape(dU, (4, 4, o, c)), (0, 2, 3, 1))  # [xi, o, c, nu]
    A = xp.reshape(xp.reshape(A, (4 * o * c, 4)) @ G, (4, o * c * 3))  # dU G: [xi, (oc, j)]
    dW = xp.reshape(xp.matrix_transpose(G) @ A, (3, o, c, 3))  # G^T dU G: [i, o, c, j]
    return xp.permute_dims(dW, (1, 2, 0, 3))


def winograd_conv3x3(x: Any, W: Any, padding: Pair, chunks: "list[Pair] | None" = None,
                     scratch: "Scratch | None" = None) -> Any:
    """3x3 stride-1 cross-correlation x (N, C, H, W), W (O, C, 3, 3) -> Y (O, N, Ho, Wo), channel-first.

    ``permute_dims(Y, (1, 0, 2, 3))`` is the NCHW result.  ``chunks``: ``[(start, stop)]`` batch
    ranges done one after the other, so the transformed tiles of one chunk stay in cache
    (default: the whole batch at once).
    """
    xp = array_namespace(x)
    n, _, h, w = x.shape
    out = (h + 2 * padding[0] - 2, w + 2 * padding[1] - 2)
    U = winograd_weights(W)  # (16, O, C)
    Y = xp.empty((W.shape[0], n, out[0], out[1]), dtype=x.dtype, device=_device(x))
    for a, z in chunks if chunks is not None else [(0, n)]:
        V = winograd_inputs(x[a:z, ...], padding, out, scratch)  # (16, C, P)
        winograd_outputs(U @ V, z - a, out, into=Y[:, a:z, ...], scratch=scratch)  # 16 GEMMs (O, C) @ (C, P)
    return Y


def winograd_conv3x3_dx(dY: Any, W: Any, padding: Pair, chunks: "list[Pair] | None" = None,
                        scratch: "Scratch | None" = None) -> Any:
    """dX (C, N, H, W), channel-first, of a 3x3 stride-1 convolution with padding p <= 2.

    ``dX = conv(pad(dY, 2 - p), flip_transpose(W))``: each input pixel collects dY over the
    3x3 window of outputs it fed, with the taps rotated by 180 degrees and O, C swapped.
    """
    return winograd_conv3x3(dY, flip_transpose(W), (2 - padding[0], 2 - padding[1]), chunks, scratch)


def winograd_conv3x3_dw(x: Any, dY: Any, padding: Pair, chunks: "list[Pair] | None" = None,
                        scratch: "Scratch | None" = None) -> Any:
    """dW (O, C, 3, 3) of a 3x3 stride-1 convolution: ``G^T (sum over tiles of dM V^T) G``.

    ``dM = A dY_tile A^T`` (:func:`winograd_output_adjoint`) and V, the forward's transformed
    input, is rebuilt chunk by chunk rather than kept; ``dU[t] = dM[t] (O, P) @ V[t]^T (P, C)``.
    """
    xp = array_namespace(x)
    n = x.shape[0]
    out = tuple(dY.shape[2:])
    dU = None
    for a, z in chunks if chunks is not None else [(0, n)]:
        V = winograd_inputs(x[a:z, ...], padding, out, scratch)  # (16, C, P)
        part = winograd_output_adjoint(dY[a:z, ...], scratch) @ xp.matrix_transpose(V)  # (16, O, C)
        if dU is None:
            dU = part
        else:
            dU += part
    sign = xp.reshape(xp.asarray(_SIGN, dtype=x.dtype, device=_device(x)), (16, 1, 1))
    return winograd_weight_adjoint(dU * sign)
