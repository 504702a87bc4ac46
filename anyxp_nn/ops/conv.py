"""2-D convolution, written once against the Array API: im2col/col2im, batch chunks, and
:func:`conv2d`, which picks an algorithm per shape and returns ``(y, backward)`` as the
pooling ops do.

im2col layout: the patch matrix is *channel-major*,
``cols[c, i, j, n, ho, wo] = xpad[n, c, i*dh + ho*sh, j*dw + wo*sw]``, reshaped to
``(C*kh*kw, N*Ho*Wo)``.  A convolution is then ONE large GEMM
``W (O, C*kh*kw) @ cols -> (O, N*Ho*Wo)`` (per group: a batch of ``groups`` GEMMs), and the
result ``(O, N, Ho, Wo)`` is handed on as the NCHW view ``permute_dims(Y, (1, 0, 2, 3))``
with no copy.  Elementwise ops downstream keep that memory order, so the next convolution's
``permute_dims(x, (1, 0, 2, 3))`` reads contiguous memory.

Both directions are a loop over the ``kh*kw`` kernel offsets, each moving one strided slice:
no strided-view tricks, no scatter-add, so the code runs unchanged on NumPy, CuPy, PyTorch
and ``array_api_strict``.

Algorithms (:func:`conv_algorithm` chooses; measurements in benchmarks/README.md):

* ``"winograd"``: 3x3, stride 1, no dilation or groups, padding <= 2, at least
  ``WINOGRAD_MIN_CHANNELS`` input and output channels, on a CPU: Winograd F(2x2, 3x3)
  (:mod:`anyxp_nn.ops.winograd`) for forward, dX and dW; no 9x patch matrix at all.
* ``"im2col"``: everything else.  Backward routes: :func:`backward_transposed` for stride 1
  (one patch matrix, that of dY), :func:`backward_col2im` otherwise.

Output size along one axis (PyTorch's formula, ``floor`` division):
``out = (size + 2*padding - dilation*(kernel - 1) - 1) // stride + 1``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from array_api_compat import array_namespace, device as _device

from .winograd import winograd_conv3x3, winograd_conv3x3_dw, winograd_conv3x3_dx

__all__ = ["conv_output_size", "window_slices", "pad2d", "im2col", "col2im", "ConvGeometry", "batch_chunks",
           "conv_algorithm", "conv2d", "backward_transposed", "backward_col2im", "WINOGRAD_MIN_CHANNELS"]

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


# -- conv2d: one convolution, its algorithm chosen per shape -----------------------------------------

Scratch = Callable[..., Any]
Backward = Callable[..., tuple[Any, Any, Any]]
#: ``map_chunks(fn, chunks) -> [fn(chunk) for chunk in chunks]``, possibly on several threads
#: (``Backend.parallel_map``); results in chunk order.
MapChunks = Callable[[Callable[[Pair], Any], list], list]


def _sequential(fn: Callable[[Pair], Any], chunks: list) -> list:
    return [fn(chunk) for chunk in chunks]


#: Winograd F(2x2, 3x3) is chosen for 3x3 stride-1 convolutions with at least this many input
#: and output channels.  Its GEMM work (16 C*O per 2x2 tile against im2col's 36 C*O) shrinks
#: faster with the channels than its tile transforms (~C + O) grow; below 64 channels the
#: transforms cost more than the GEMM work saved (measured: benchmarks/README.md).
WINOGRAD_MIN_CHANNELS = 64


class ConvGeometry(NamedTuple):
    """The sizes of a 2-D convolution, each an (h, w) pair.

    ``pad_end``: extra zero rows/columns after the input (bottom, right), beyond ``padding`` on
    both sides; ``padding="same"`` with an even dilated kernel needs it, as in PyTorch.
    """
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)
    pad_end: Pair = (0, 0)

    def output_size(self, h: int, w: int) -> Pair:
        """(Ho, Wo) for an (H, W) input (may be <= 0 when the kernel does not fit)."""
        (kh, kw), (sh, sw), (ph, pw), (dh, dw), (eh, ew) = self
        return conv_output_size(h + eh, kh, sh, ph, dh), conv_output_size(w + ew, kw, sw, pw, dw)


def batch_chunks(n: int, bytes_per_sample: int, budget: "int | None", whole_below: int = 4,
                 min_chunks: int = 1) -> list[Pair]:
    """``[(start, stop)]`` batch ranges for a work array of ``bytes_per_sample`` bytes per sample.

    One chunk, the whole batch, when there is no budget (GPUs, which want one big kernel) or
    the whole array is at most ``whole_below`` x ``budget``; otherwise as few chunks of at most
    ``budget // bytes_per_sample`` samples (at least one) as cover the batch, of near-equal sizes
    (a 64-sample batch at 9 per chunk is 8 x 8, not 7 x 9 + 1), whose work arrays stay in cache.
    With ``min_chunks`` > 1 (one per host thread that will run them): a multiple of it, where
    the batch allows, so that the threads get equal shares.  An empty batch has no chunks.
    """
    if budget is None or n * bytes_per_sample <= whole_below * budget:
        size = max(n, 1)
    else:
        size = max(1, min(n, budget // max(1, bytes_per_sample)))
    k = -(-n // size)  # as few chunks as fit the budget, of near-equal sizes (no small last chunk)
    if min_chunks > 1 and n:  # a multiple of min_chunks: equal shares per thread
        k = min(n, -(-max(k, min_chunks) // min_chunks) * min_chunks)
    return [(n * i // k, n * (i + 1) // k) for i in range(k)]


def conv_algorithm(x_shape: tuple[int, ...], w_shape: tuple[int, ...], geometry: ConvGeometry, groups: int,
                   block_bytes: "int | None") -> str:
    """``"winograd"`` or ``"im2col"`` for a convolution of these shapes (the rule is measured).

    Winograd F(2x2, 3x3) needs a 3x3 kernel, stride 1, no dilation, one group and padding <= 2
    (so that dX, a convolution of dY padded by ``2 - p``, is one too).  It is taken on CPUs
    (``block_bytes`` set) when both channel counts are at least ``WINOGRAD_MIN_CHANNELS``; on
    GPUs, where it is not measured yet, im2col's one big GEMM is kept.
    """
    fits = (geometry.kernel == (3, 3) and geometry.stride == (1, 1) and geometry.dilation == (1, 1)
            and groups == 1 and max(geometry.padding) <= 2 and geometry.pad_end == (0, 0))
    wide = min(x_shape[1], w_shape[0]) >= WINOGRAD_MIN_CHANNELS
    return "winograd" if fits and wide and block_bytes is not None else "im2col"


def conv2d(x: Any, W: Any, b: Any, geometry: ConvGeometry, groups: int = 1, *, block_bytes: "int | None" = None,
           scratch: "Scratch | None" = None, algorithm: "str | None" = None,
           map_chunks: "MapChunks | None" = None, min_chunks: int = 1) -> tuple[Any, Backward]:
    """2-D cross-correlation, PyTorch's layout and numerics:

        y[n, o, p, q] = b[o] + sum_{c in group(o), i, j} W[o, c, i, j] * xpad[n, c, p*sh + i*dh, q*sw + j*dw]

    Args:
        x: (N, C, H, W).  W: (O, C/groups, kh, kw).  b: (O,) or None.
        geometry: kernel, stride, padding, dilation, pad_end.
        block_bytes: work-array budget for batch chunks (``Backend.cache_block_bytes``; None: one chunk).
        scratch: ``Backend.scratch``, for reused work buffers (None: fresh arrays).
        algorithm: ``"im2col"`` or ``"winograd"`` to override :func:`conv_algorithm`.
        map_chunks, min_chunks: run the im2col route's batch chunks (at least ``min_chunks``)
            through ``map_chunks`` (``Backend.parallel_map``: on host threads); default in turn.

    Returns ``y`` (N, O, Ho, Wo), an NCHW view of a channel-first (O, N, Ho, Wo) array, and
    ``backward(dY, need_dx=True, need_dw=True, need_db=True) -> (dx, dW, db)`` (None for each
    gradient not asked for, and db when there is no bias).
    """
    xp = array_namespace(x)
    n, c, h, w = x.shape
    o = W.shape[0]
    ho, wo = geometry.output_size(h, w)
    if geometry.pad_end != (0, 0):
        return _conv2d_pad_end(x, W, b, geometry, groups, block_bytes, scratch, algorithm, map_chunks, min_chunks)
    if n == 0:
        return _conv2d_empty(x, W, b, (ho, wo))
    algo = algorithm or conv_algorithm(tuple(x.shape), tuple(W.shape), geometry, groups, block_bytes)
    if algo == "winograd":
        Y, backward_xw = _winograd_route(x, W, geometry, block_bytes, scratch)
    elif algo == "im2col":
        Y, backward_xw = _im2col_route(x, W, geometry, groups, block_bytes, scratch, map_chunks or _sequential,
                                       min_chunks)
    else:
        raise ValueError(f"conv2d: `algorithm` must be 'im2col' or 'winograd', got {algorithm!r}")
    if b is not None:
        Y += xp.reshape(b, (o, 1, 1, 1))

    def backward(dY: Any, need_dx: bool = True, need_dw: bool = True, need_db: bool = True) -> tuple[Any, Any, Any]:
        db = None
        if need_db and b is not None:  # sum of dY over batch and pixels
            db = xp.sum(xp.reshape(xp.permute_dims(dY, (1, 0, 2, 3)), (o, n * ho * wo)), axis=1)
        dx, dW = backward_xw(dY, need_dx, need_dw) if (need_dx or need_dw) else (None, None)
        return dx, dW, db

    return xp.permute_dims(Y, (1, 0, 2, 3)), backward  # (N, O, Ho, Wo) view, no copy


def _conv2d_empty(x: Any, W: Any, b: Any, out: Pair) -> tuple[Any, Backward]:
    """An empty batch: an empty output, zero weight and bias gradients."""
    xp = array_namespace(x)
    dev = _device(x)
    y = xp.zeros((0, W.shape[0], out[0], out[1]), dtype=x.dtype, device=dev)

    def backward(dY: Any, need_dx: bool = True, need_dw: bool = True, need_db: bool = True) -> tuple[Any, Any, Any]:
        return (xp.zeros(tuple(x.shape), dtype=x.dtype, device=dev) if need_dx else None,
                xp.zeros(tuple(W.shape), dtype=W.dtype, device=dev) if need_dw else None,
                xp.zeros((W.shape[0],), dtype=W.dtype, device=dev) if need_db and b is not None else None)

    return y, backward


def _conv2d_pad_end(x: Any, W: Any, b: Any, geometry: ConvGeometry, groups: int, block_bytes: "int | None",
                    scratch: "Scratch | None", algorithm: "str | None", map_chunks: "MapChunks | None",
                    min_chunks: int) -> tuple[Any, Backward]:
    """Extra zeros after the input (``pad_end``): convolve a padded copy, crop dX back."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    (eh, ew) = geometry.pad_end
    xe = xp.zeros((n, c, h + eh, w + ew), dtype=x.dtype, device=_device(x))
    xe[:, :, :h, :w] = x
    y, inner = conv2d(xe, W, b, geometry._replace(pad_end=(0, 0)), groups, block_bytes=block_bytes,
                      scratch=scratch, algorithm=algorithm, map_chunks=map_chunks, min_chunks=min_chunks)

    def backward(dY: Any, need_dx: bool = True, need_dw: bool = True, need_db: bool = True) -> tuple[Any, Any, Any]:
        dx, dW, db = inner(dY, need_dx, need_dw, need_db)
        return (dx[:, :, :h, :w] if dx is not None else None), dW, db

    return y, backward


def _winograd_route(x: Any, W: Any, geometry: ConvGeometry, block_bytes: "int | None",
                    scratch: "Scratch | None") -> tuple[Any, Callable]:
    """Winograd F(2x2, 3x3) forward, dX and dW (:mod:`anyxp_nn.ops.winograd`); the transformed
    tiles (16 per 2x2 output tile and channel) are chunked by batch as im2col's patch matrix is."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    o = W.shape[0]
    ho, wo = geometry.output_size(h, w)
    tiles = ((ho + 1) // 2) * ((wo + 1) // 2)
    chunks = batch_chunks(n, 16 * max(c, o) * tiles * (xp.finfo(x.dtype).bits // 8), block_bytes)
    Y = winograd_conv3x3(x, W, geometry.padding, chunks, scratch)  # (O, N, Ho, Wo)

    def backward_xw(dY: Any, need_dx: bool, need_dw: bool) -> tuple[Any, Any]:
        dW = winograd_conv3x3_dw(x, dY, geometry.padding, chunks, scratch) if need_dw else None
        dX = winograd_conv3x3_dx(dY, W, geometry.padding, chunks, scratch) if need_dx else None
        return (xp.permute_dims(dX, (1, 0, 2, 3)) if need_dx else None), dW  # (N, C, H, W) view

    return Y, backward_xw


def _cols(x: Any, geometry: ConvGeometry, groups: int, scratch: "Scratch | None", key: "str | None") -> Any:
    """im2col(x) as (groups, C/g*kh*kw, N*Ho*Wo); the padded input in a reused buffer, and the
    patch matrix too when ``key`` names one (a temporary, used up before the next call)."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    (kh, kw), stride, (ph, pw), dilation, _ = geometry
    ho, wo = geometry.output_size(h, w)
    pad = (scratch(("conv-pad", ph, pw), (c, n, h + 2 * ph, w + 2 * pw), x.dtype, zero=True)
           if scratch is not None and (ph or pw) else None)
    out = scratch(key, (c, kh, kw, n, ho, wo), x.dtype) if scratch is not None and key is not None else None
    cols = im2col(x, geometry.kernel, stride, geometry.padding, dilation, out=out, pad_buffer=pad)
    return xp.reshape(cols, (groups, c // groups * kh * kw, n * ho * wo))


def _im2col_route(x: Any, W: Any, geometry: ConvGeometry, groups: int, block_bytes: "int | None",
                  scratch: "Scratch | None", run: MapChunks, min_chunks: int) -> tuple[Any, Callable]:
    """Forward ``Y = W @ im2col(x)`` (one GEMM per group and batch chunk); backward by
    :func:`backward_transposed` (stride 1 with dX wanted) or :func:`backward_col2im`."""
    xp = array_namespace(x)
    n, c, h, w = x.shape
    o, g = W.shape[0], groups
    (kh, kw), (ph, pw), (dh, dw) = geometry.kernel, geometry.padding, geometry.dilation
    ho, wo = geometry.output_size(h, w)
    Wg = xp.reshape(W, (g, o // g, c // g * kh * kw))  # (g, O/g, C/g*kh*kw)
    tpad = (dh * (kh - 1) - ph, dw * (kw - 1) - pw)  # the flipped kernel's reach, for dX
    transposed = geometry.stride == (1, 1) and min(tpad) >= 0
    # chunks fit the larger patch matrix: im2col(x) in forward, im2col(dY) in a stride-1 backward
    patch_elems = max(c * kh * kw * ho * wo, o * kh * kw * (h * w if transposed else ho * wo))
    chunks = batch_chunks(n, patch_elems * (xp.finfo(x.dtype).bits // 8), block_bytes, min_chunks=min_chunks)
    kept = None  # x's patch matrix, kept for dW where it is the smaller one or dX may not be wanted
    if len(chunks) == 1:
        cols = _cols(x, geometry, g, scratch, None)  # may be kept: not a reused buffer
        Y = xp.reshape(Wg @ cols, (o, n, ho, wo))  # one GEMM per group
        kept = cols if not transposed or c < o else None
    else:  # recomputed chunk by chunk in backward (cheap, and no big buffer held)
        Y = xp.empty((o, n, ho, wo), dtype=x.dtype, device=_device(x))

        def forward_chunk(chunk: Pair) -> None:
            a, z = chunk
            cols = _cols(x[a:z, ...], geometry, g, scratch, "conv-cols-x")  # (g, C/g*kh*kw, m*Ho*Wo)
            Y[:, a:z, ...] = xp.reshape(Wg @ cols, (o, z - a, ho, wo))

        run(forward_chunk, chunks)

    def backward_xw(dY: Any, need_dx: bool, need_dw: bool) -> tuple[Any, Any]:
        if need_dx and transposed:
            return backward_transposed(x, W, dY, geometry, g, chunks, need_dw, kept, scratch, run)
        return backward_col2im(x, W, dY, geometry, g, chunks, need_dx, need_dw, kept, scratch, run)

    return Y, backward_xw


def _sum(parts: list) -> Any:
    """Partial dW of the chunks, added in chunk order (the same sum whichever thread made them)."""
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def _dw_from_cols(cols: Any, dY: Any) -> Any:
    """dW (g, O/g, C/g*kh*kw) = dY @ cols^T, computed as (cols @ dY^T)^T: the same numbers, with
    the long axis as K and the wide operand first, which OpenBLAS runs faster for these shapes
    (benchmarks/README.md)."""
    xp = array_namespace(cols)
    return xp.matrix_transpose(cols @ xp.matrix_transpose(dY))


def backward_transposed(x: Any, W: Any, dY: Any, geometry: ConvGeometry, groups: int, chunks: list[Pair],
                        need_dw: bool, kept: Any, scratch: "Scratch | None",
                        run: MapChunks = _sequential) -> tuple[Any, Any]:
    """dX and dW of a stride-1 convolution from ONE patch matrix, that of dY.

    With ``dcols = im2col(dY)`` padded by ``t = d*(k - 1) - p`` (the flipped kernel's reach):

        dX = Wt @ dcols           Wt[c, (o, i, j)] = W[o, c, kh-1-i, kw-1-j]   (per group)
        dW = flip(dcols @ x^T)    taps flipped back; or (cols @ dY^T)^T from ``kept`` cols

    i.e. dX is the convolution of dY with the flipped, transposed kernel: K = O*kh*kw for the
    GEMM, no col2im, and no patch matrix of x (docs/03-cnns-deep-learning-keys.md derives it).
    Returns dX (N, C, H, W) as a view of a channel-first array, and dW (O, C/g, kh, kw) or None.
    """
    xp = array_namespace(x)
    n, c, h, w = x.shape
    o, g = W.shape[0], groups
    (kh, kw), (ph, pw), (dh, dw) = geometry.kernel, geometry.padding, geometry.dilation
    ho, wo = dY.shape[2], dY.shape[3]
    dgeom = ConvGeometry(geometry.kernel, (1, 1), (dh * (kh - 1) - ph, dw * (kw - 1) - pw), geometry.dilation)
    Wt = xp.flip(xp.reshape(W, (g, o // g, c // g, kh, kw)), axis=(-2, -1))  # taps flipped
    Wt = xp.reshape(xp.permute_dims(Wt, (0, 2, 1, 3, 4)), (g, c // g, o // g * kh * kw))  # (g, C/g, O/g*kh*kw)
    xt = xp.permute_dims(x, (1, 0, 2, 3))  # (C, N, H, W)
    dX = xp.empty((c, n, h, w), dtype=dY.dtype, device=_device(dY))

    def chunk_grads(chunk: Pair) -> Any:  # writes dX's chunk, returns its part of dW (or None)
        a, z = chunk
        m = z - a
        dcols = _cols(dY[a:z, ...], dgeom, g, scratch, "conv-cols-dy")  # (g, O/g*kh*kw, m*H*W)
        dX[:, a:z, ...] = xp.reshape(Wt @ dcols, (c, m, h, w))
        if need_dw and kept is None:  # (g, O/g*kh*kw, C/g)
            return dcols @ xp.matrix_transpose(xp.reshape(xt[:, a:z, ...], (g, c // g, m * h * w)))
        return None

    parts = run(chunk_grads, chunks)
    dW = None
    if need_dw and kept is None:  # (g, O/g, kh, kw, C/g) -> (O, C/g, kh, kw), taps unflipped
        dW = xp.reshape(_sum(parts), (o, kh, kw, c // g))
        dW = xp.flip(xp.permute_dims(dW, (0, 3, 1, 2)), axis=(-2, -1))
    elif need_dw:  # one chunk: x's patch matrix kept from forward
        dW = _dw_from_cols(kept, xp.reshape(xp.permute_dims(dY, (1, 0, 2, 3)), (g, o // g, n * ho * wo)))
    return xp.permute_dims(dX, (1, 0, 2, 3)), (xp.reshape(dW, tuple(W.shape)) if need_dw else None)


def backward_col2im(x: Any, W: Any, dY: Any, geometry: ConvGeometry, groups: int, chunks: list[Pair],
                    need_dx: bool, need_dw: bool, kept: Any, scratch: "Scratch | None",
                    run: MapChunks = _sequential) -> tuple[Any, Any]:
    """dX and dW of any convolution from x's patch matrix ``cols`` (kept, or rebuilt per chunk):

        dW = dY @ cols^T          (per group; computed as (cols @ dY^T)^T)
        dX = col2im(W^T @ dY)     (overlapping windows add up)

    Returns dX (N, C, H, W) view or None, dW (O, C/g, kh, kw) or None.
    """
    xp = array_namespace(x)
    n, c, h, w = x.shape
    o, g = W.shape[0], groups
    kh, kw = geometry.kernel
    ho, wo = dY.shape[2], dY.shape[3]
    Wg = xp.reshape(W, (g, o // g, c // g * kh * kw))
    dYt = xp.permute_dims(dY, (1, 0, 2, 3))  # (O, N, Ho, Wo)
    dX = xp.empty((c, n, h, w), dtype=dY.dtype, device=_device(dY)) if need_dx else None  # (C, N, H, W)

    def chunk_grads(chunk: Pair) -> Any:  # writes dX's chunk, returns its part of dW (or None)
        a, z = chunk
        m = z - a
        dY = xp.reshape(dYt[:, a:z, ...], (g, o // g, m * ho * wo))  # (g, O/g, m*Ho*Wo)
        part = None
        if need_dw and kept is None:
            part = _dw_from_cols(_cols(x[a:z, ...], geometry, g, scratch, "conv-cols-x"), dY)
        if need_dx:
            dcols = xp.reshape(xp.matrix_transpose(Wg) @ dY, (c, kh, kw, m, ho, wo))
            dX[:, a:z, ...] = xp.permute_dims(col2im(dcols, (m, c, h, w), geometry.kernel, geometry.stride,
                                                     geometry.padding, geometry.dilation), (1, 0, 2, 3))
        return part

    parts = run(chunk_grads, chunks)
    dW = None
    if need_dw:
        dW = _sum(parts) if kept is None else _dw_from_cols(kept, xp.reshape(dYt, (g, o // g, n * ho * wo)))
    return (xp.permute_dims(dX, (1, 0, 2, 3)) if need_dx else None), (
        xp.reshape(dW, tuple(W.shape)) if need_dw else None)
