"""ops.conv.conv2d's algorithms agree: Winograd F(2x2, 3x3) vs im2col vs PyTorch, in float64 and
float32 (Winograd's stated error bound), batch chunks, the per-shape rule, empty batches, "same"."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.ops.conv import ConvGeometry, conv2d, conv_algorithm, WINOGRAD_MIN_CHANNELS
from anyxp_nn.ops.winograd import winograd_conv3x3

# (N, C, O, H, W, padding): odd and even output sizes, padding 0..2, a 1x1 output
SHAPES = [(2, 3, 4, 6, 5, 1), (1, 2, 3, 7, 7, 0), (3, 2, 2, 4, 5, 2), (2, 3, 2, 3, 3, 0), (1, 1, 1, 1, 2, 1)]


def _run(backend, x, W, b, dy, padding, algorithm, block_bytes=None):
    geom = ConvGeometry((3, 3), (1, 1), (padding, padding), (1, 1))
    y, backward = conv2d(backend.asarray(x), backend.asarray(W), None if b is None else backend.asarray(b), geom,
                         block_bytes=block_bytes, scratch=backend.scratch, algorithm=algorithm)
    dx, dW, db = backward(backend.asarray(dy))
    return [backend.to_numpy(a) for a in (y, dx, dW)] + [None if db is None else backend.to_numpy(db)]


def _torch_ref(x, W, b, dy, padding):
    torch = pytest.importorskip("torch")
    tx, tW = torch.from_numpy(x).requires_grad_(), torch.from_numpy(W).requires_grad_()
    tb = None if b is None else torch.from_numpy(b).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tW, tb, padding=padding)
    ty.backward(torch.from_numpy(dy))
    return ty.detach().numpy(), tx.grad.numpy(), tW.grad.numpy(), None if b is None else tb.grad.numpy()


@pytest.mark.parametrize("shape", SHAPES, ids=[f"N{s[0]}C{s[1]}O{s[2]}-{s[3]}x{s[4]}-p{s[5]}" for s in SHAPES])
@pytest.mark.parametrize("block_bytes", [None, 1], ids=["whole", "chunk-per-sample"])
def test_winograd_matches_im2col_and_torch_float64(backend, shape, block_bytes):
    n, c, o, h, w, p = shape
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    dy = rng.standard_normal((n, o, h + 2 * p - 2, w + 2 * p - 2))
    wino = _run(backend, x, W, b, dy, p, "winograd", block_bytes)
    ref = _run(backend, x, W, b, dy, p, "im2col")
    for got, want in zip(wino, ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    try:
        torch_ref = _torch_ref(x, W, b, dy, p)
    except pytest.skip.Exception:
        return
    for got, want in zip(wino, torch_ref):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("c", [8, 32])
def test_winograd_float32_error_bound(backend, c):
    """|y_winograd - y_exact| <= 81 C (C + 16) u max|x| max|W| (ops/winograd.py), u = 2^-24; dX is a
    Winograd convolution of dY too (C := O), and dW stays within the float32 im2col error scale."""
    n, o, h = 2, 6, 9
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (n, c, h, h)).astype(np.float32)
    W = rng.uniform(-1, 1, (o, c, 3, 3)).astype(np.float32)
    dy = rng.uniform(-1, 1, (n, o, h, h)).astype(np.float32)
    y, dx, dW, _ = _run(backend, x, W, None, dy, 1, "winograd")
    y64, dx64, dW64, _ = _run(nn.get_backend("numpy"), x.astype(np.float64), W.astype(np.float64), None,
                              dy.astype(np.float64), 1, "im2col")
    u = 2.0 ** -24

    def bound(k, a, b_):  # the bound for a k-channel Winograd convolution of a with kernel b_
        return 81 * k * (k + 16) * u * np.abs(a).max() * np.abs(b_).max()

    assert y.dtype == np.float32 and dx.dtype == np.float32 and dW.dtype == np.float32
    assert np.abs(y - y64).max() <= bound(c, x, W)
    assert np.abs(dx - dx64).max() <= bound(o, dy, W)
    # dW sums n*H*W products per tap: a float32 sum of that many terms, scaled like the bound above
    assert np.abs(dW - dW64).max() <= 81 * (n * h * h) * 16 * u * np.abs(x).max() * np.abs(dy).max()
    # and in practice far inside it: within a few float32 ulps of the output scale
    assert np.abs(y - y64).max() <= 1e-5 * np.abs(y64).max()
    y_im2col = _run(backend, x, W, None, dy, 1, "im2col")[0]
    assert np.abs(y - y64).max() <= 8 * max(np.abs(y_im2col - y64).max(), u * np.abs(y64).max())


def test_winograd_is_chosen_by_the_rule():
    g = ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1))
    cpu, k = 4 << 20, WINOGRAD_MIN_CHANNELS
    assert conv_algorithm((8, k, 16, 16), (k, k, 3, 3), g, 1, cpu) == "winograd"
    assert conv_algorithm((8, k - 1, 16, 16), (k, k - 1, 3, 3), g, 1, cpu) == "im2col"  # few input channels
    assert conv_algorithm((8, k, 16, 16), (k - 1, k, 3, 3), g, 1, cpu) == "im2col"  # few output channels
    assert conv_algorithm((8, k, 16, 16), (k, k, 3, 3), g, 1, None) == "im2col"  # GPU: not measured
    assert conv_algorithm((8, k, 16, 16), (k, k // 2, 3, 3), g, 2, cpu) == "im2col"  # groups
    for other in (g._replace(stride=(2, 2)), g._replace(dilation=(2, 1)), g._replace(padding=(3, 1)),
                  g._replace(kernel=(5, 5)), g._replace(pad_end=(0, 1))):
        assert conv_algorithm((8, k, 16, 16), (k, k) + other.kernel, other, 1, cpu) == "im2col"


@pytest.mark.parametrize("check", ["gradcheck", "torch", "dtype_device", "non_contiguous"])
def test_winograd_layer_rows(backend, monkeypatch, check):
    """The layer table's 3x3 rows again with Winograd taken (the rule's threshold lowered to 1)."""
    from anyxp_nn.ops import conv as conv_ops
    from anyxp_nn.testing import check_layer
    from layer_cases.cnn import CASES
    monkeypatch.setattr(conv_ops, "WINOGRAD_MIN_CHANNELS", 1)
    calls = []
    route = conv_ops._winograd_route
    monkeypatch.setattr(conv_ops, "_winograd_route", lambda *a: calls.append(1) or route(*a))
    rows = [c for c in CASES if c.name.startswith("Conv2D-winograd")]
    assert len(rows) == 2
    for case in rows:
        check_layer(case, backend, checks=(check,))
    assert calls


def test_conv2d_unknown_algorithm():
    x, W = np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: `algorithm` must be 'im2col' or 'winograd', got 'fft'"):
        conv2d(x, W, None, ConvGeometry((3, 3)), algorithm="fft")


def test_winograd_function_returns_channel_first(xp):
    x = xp.ones((2, 1, 4, 4), dtype=xp.float64)
    W = xp.ones((1, 1, 3, 3), dtype=xp.float64)
    Y = winograd_conv3x3(x, W, (0, 0))
    assert tuple(Y.shape) == (1, 2, 2, 2) and float(xp.min(Y)) == 9.0 == float(xp.max(Y))


@pytest.mark.parametrize("make", [lambda kw: nn.Conv2D(64, 64, 3, padding=1, **kw),  # 3x3, Winograd-sized
                                  lambda kw: nn.Conv2D(2, 4, 3, stride=2, padding=1, **kw),  # im2col + col2im
                                  lambda kw: nn.Conv2D(2, 4, 2, padding="same", **kw)],  # pad_end
                         ids=["3x3-64ch", "col2im", "same-even"])
def test_conv2d_empty_batch(backend, make):
    conv = make(dict(backend=backend, dtype="float64"))
    x = backend.asarray(np.zeros((0, conv.in_channels, 5, 5)))
    y, backprop = conv.forward(x)
    n, o, ho, wo = conv.output_shape((0, conv.in_channels, 5, 5))
    assert tuple(y.shape) == (0, o, ho, wo)
    dx = backprop(backend.asarray(np.zeros((0, o, ho, wo))))
    assert tuple(dx.shape) == (0, conv.in_channels, 5, 5)
    assert np.all(backend.to_numpy(conv.weight.grad) == 0) and conv.weight.grad.shape == conv.weight.shape
    assert np.all(backend.to_numpy(conv.bias.grad) == 0)


def test_conv2d_same_keeps_size_and_errors():
    conv = nn.Conv2D(1, 2, (4, 3), padding="same", dilation=(1, 2))
    assert tuple(conv(np.ones((1, 1, 6, 7), dtype=np.float32)).shape) == (1, 2, 6, 7)
    assert "padding='same'" in repr(conv)
    with pytest.raises(ValueError, match=r"Conv2D: padding='same' needs stride 1, got stride=\(2, 2\)"):
        nn.Conv2D(1, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"Conv2D: `padding` must be an int >= 0, a pair of them, 'same' or "
                                         r"'valid', got 'full'"):
        nn.Conv2D(1, 2, 3, padding="full")


@pytest.mark.parametrize("stride,c,o", [(1, 3, 4), (1, 4, 3), (2, 3, 4)], ids=["transposed-kept", "transposed", "col2im"])
def test_parallel_chunks_match_sequential(backend, monkeypatch, stride, c, o):
    """Batch chunks on two host threads (Backend.parallel_map) give the same numbers as in turn."""
    if not backend.parallel_chunks:
        pytest.skip(f"{backend.label} runs chunks in turn (its ops parallelise themselves)")
    from anyxp_nn.ops.conv import _sequential
    monkeypatch.setattr(backend, "host_threads", lambda: 2)
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((5, c, 6, 7)), rng.standard_normal((o, c, 3, 3)), rng.standard_normal(o)
    geom = ConvGeometry((3, 3), (stride, stride), (1, 1), (1, 1))
    ho, wo = geom.output_size(6, 7)
    dy = backend.asarray(rng.standard_normal((5, o, ho, wo)))
    out = {}
    for name, run in (("threads", backend.parallel_map), ("in turn", _sequential)):
        y, backward = conv2d(backend.asarray(x), backend.asarray(W), backend.asarray(b), geom,
                             block_bytes=backend.cache_block_bytes, scratch=backend.scratch, map_chunks=run,
                             min_chunks=2)
        out[name] = [backend.to_numpy(a) for a in (y,) + backward(dy)]
    for got, want in zip(out["threads"], out["in turn"]):
        np.testing.assert_array_equal(got, want)
    torch_ref = _torch_ref(x, W, b, backend.to_numpy(dy), 1) if stride == 1 else None
    if torch_ref is not None:
        for got, want in zip(out["threads"], torch_ref):
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_parallel_map_restores_blas_threads(monkeypatch):
    from threadpoolctl import threadpool_limits
    from anyxp_nn.backend import _thread_pools
    be = nn.get_backend("numpy")
    monkeypatch.setattr(be, "host_threads", lambda: 2)
    sizes = lambda: {get() for get, _ in _thread_pools("numpy")}  # noqa: E731  NumPy's BLAS pools
    seen = []

    def piece(i):
        seen.append(sizes())
        return i * i

    with threadpool_limits(2, user_api="blas"):
        assert be.parallel_map(piece, [1, 2, 3]) == [1, 4, 9]  # results in item order
        assert seen and all(s == {1} for s in seen)  # one BLAS thread per caller while they run
        assert sizes() == {2}


def test_conv2d_layer_gradcheck_on_two_host_threads(backend, monkeypatch):
    from anyxp_nn.testing import gradcheck
    if not backend.parallel_chunks:
        pytest.skip(f"{backend.label} runs chunks in turn")
    monkeypatch.setattr(backend, "host_threads", lambda: 2)
    for conv in (nn.Conv2D(2, 3, 3, padding=1, backend=backend, dtype="float64"),
                 nn.Conv2D(2, 3, 3, stride=2, padding=1, backend=backend, dtype="float64")):
        gradcheck(conv, backend.asarray(np.random.default_rng(0).standard_normal((3, 2, 5, 5))))
