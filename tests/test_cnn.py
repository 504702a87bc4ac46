"""CNN layers beyond the layer table: max-pool ties, torch weight layouts, need_dx, bad arguments."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.models import mnist_cnn
from anyxp_nn.testing import assert_close


def _torch():
    return pytest.importorskip("torch")


# -- max pooling ties: the whole gradient goes to one element per window, the one torch picks --------

@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), ((2, 3), (1, 2), 0)])
def test_maxpool_ties_match_torch(backend, kernel, stride, padding):
    torch = _torch()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(2, 3, 6, 7)).astype(np.float64)  # lots of ties (0/1 values)
    x[0, 0] = 1.0  # a channel that is one constant: every window is a tie
    pool = nn.MaxPool2D(kernel, stride, padding, backend=backend, dtype="float64")
    y, backprop = pool.forward(backend.asarray(x))
    dy = rng.integers(1, 9, size=tuple(y.shape)).astype(np.float64)  # integers: sums are exact in any order
    dx = backend.to_numpy(backprop(backend.asarray(dy)))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = torch.nn.functional.max_pool2d(tx, kernel, stride, padding)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(backend.to_numpy(y), ty.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy())


def test_maxpool_ties_one_element_per_window(backend):
    x = backend.asarray(np.ones((1, 1, 4, 4)), dtype="float32")
    y, backprop = nn.MaxPool2D(2, backend=backend).forward(x)
    dx = backend.to_numpy(backprop(backend.asarray(np.ones((1, 1, 2, 2)), dtype="float32")))
    want = np.zeros((4, 4), dtype=np.float32)
    want[::2, ::2] = 1.0  # the first element of each window in row-major scan order
    np.testing.assert_array_equal(dx[0, 0], want)


def test_global_maxpool_ties_first_argmax(backend):
    x = np.zeros((1, 2, 3, 3))
    x[0, 1, 1, :] = 5.0
    y, backprop = nn.GlobalMaxPool2D(backend=backend, dtype="float64").forward(backend.asarray(x))
    dx = backend.to_numpy(backprop(backend.asarray(np.ones((1, 2)))))
    assert dx[0, 0, 0, 0] == 1.0 and dx[0, 0].sum() == 1.0
    assert dx[0, 1, 1, 0] == 1.0 and dx[0, 1].sum() == 1.0


# -- weight layouts: a torch state_dict loads unchanged ------------------------------------------------

def test_conv2d_loads_torch_state_dict(backend):
    torch = _torch()
    torch.manual_seed(0)
    tconv = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2).double()
    conv = nn.Conv2D(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2), groups=2, backend=backend,
                     dtype="float64")
    conv.load_state_dict({k: v.detach().numpy() for k, v in tconv.state_dict().items()})
    assert conv.weight.shape == (6, 2, 3, 2)
    x = np.random.default_rng(1).standard_normal((2, 4, 7, 6))
    assert_close(backend.to_numpy(conv(backend.asarray(x))), tconv(torch.from_numpy(x)).detach().numpy(),
                 rtol=1e-10, atol=1e-12)


def test_mnist_cnn_matches_torch_model(backend):
    torch = _torch()
    from anyxp_nn.testing.torch_models import torch_mnist_cnn
    tmodel = torch_mnist_cnn().double()
    model = mnist_cnn(backend=backend, dtype="float64", rng=nn.random.Generator(0))
    assert list(model.state_dict()) == list(tmodel.state_dict())
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(2).random((2, 1, 28, 28))
    assert_close(backend.to_numpy(model(backend.asarray(x))), tmodel(torch.from_numpy(x)).detach().numpy(),
                 rtol=1e-9, atol=1e-10)


# -- backward protocol --------------------------------------------------------------------------------

def test_conv2d_need_dx_false_and_frozen(backend):
    conv = nn.Conv2D(2, 3, 3, padding=1, backend=backend)
    x = backend.asarray(np.ones((1, 2, 4, 4)), dtype="float32")
    y, backprop = conv.forward(x)
    assert backprop(backend.xp.ones_like(y), need_dx=False) is None
    assert conv.weight.grad is not None and conv.bias.grad is not None
    conv.zero_grad()
    conv.freeze()
    dx = backprop(backend.xp.ones_like(y))
    assert tuple(dx.shape) == (1, 2, 4, 4) and conv.weight.grad is None and conv.bias.grad is None


@pytest.mark.parametrize("budget", [None, 1], ids=["whole", "chunked"])
@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("cin", [1, 2])  # 1 -> 2 keeps im2col(x) for dW, 2 -> 2 uses dY's patches
def test_conv2d_called_twice_keeps_independent_closures(backend, monkeypatch, budget, padding, cin):
    """Reused work buffers (backend.scratch) never leak between calls: two forwards, backward in any order."""
    monkeypatch.setattr(backend, "cache_block_bytes", budget)
    conv = nn.Conv2D(cin, 2, 3, padding=padding, backend=backend, dtype="float64")
    x1 = backend.asarray(np.random.default_rng(0).standard_normal((1, cin, 4, 4)))
    x2 = backend.asarray(np.random.default_rng(1).standard_normal((1, cin, 4, 4)))  # same shapes: same buffers
    dy1 = backend.asarray(np.random.default_rng(2).standard_normal((1, 2, 2 + 2 * padding, 2 + 2 * padding)))

    def grads(bp):
        conv.zero_grad()
        return backend.to_numpy(bp(dy1)), backend.to_numpy(conv.weight.grad)

    y_ref, bp = conv.forward(x1)
    y_ref = backend.to_numpy(y_ref)
    dx_ref, dw_ref = grads(bp)
    y1, bp1 = conv.forward(x1)
    y2, bp2 = conv.forward(x2)  # same shapes: the same work buffers as the call for x1
    dx1, dw1 = grads(bp1)
    grads(bp2)
    dx1b, dw1b = grads(bp1)
    for got in (dx1, dx1b):
        np.testing.assert_array_equal(got, dx_ref)
    for got in (dw1, dw1b):
        np.testing.assert_array_equal(got, dw_ref)
    np.testing.assert_array_equal(backend.to_numpy(y1), y_ref)
    np.testing.assert_array_equal(backend.to_numpy(conv(x1)), y_ref)


# -- bad arguments and inputs: clear ValueErrors naming the layer and the numbers -----------------------

def test_conv2d_bad_input_errors():
    conv = nn.Conv2D(3, 8, 3)
    with pytest.raises(ValueError, match=r"Conv2D\(3, 8, kernel_size=\(3, 3\), stride=\(1, 1\)\): input has 4 "
                                         r"channels, expected 3"):
        conv.forward(np.ones((1, 4, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Conv2D\(3, 8.*\): expected a 4-D input, got shape \(3, 5, 5\)"):
        conv.forward(np.ones((3, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Conv2D\(3, 8.*\): kernel 3x3 \(dilated\) is larger than the padded "
                                         r"input 2x4 \(input 2x4, padding 0x0\)"):
        conv.forward(np.ones((1, 3, 2, 4), dtype=np.float32))
    dil = nn.Conv2D(3, 8, 3, padding=1, dilation=3)
    with pytest.raises(ValueError, match=r"kernel 7x7 \(dilated\) is larger than the padded input 6x6 "
                                         r"\(input 4x4, padding 1x1\)"):
        dil.forward(np.ones((1, 3, 4, 4), dtype=np.float32))


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_channels=3, out_channels=8, kernel_size=3, groups=2),
     r"Conv2D: `in_channels` \(=3\) must be divisible by `groups` \(=2\)"),
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4),
     r"Conv2D: `out_channels` \(=6\) must be divisible by `groups` \(=4\)"),
    (dict(in_channels=0, out_channels=6, kernel_size=3), r"Conv2D: `in_channels` must be a positive int, got 0"),
    (dict(in_channels=2, out_channels=6, kernel_size=(3, 0)),
     r"Conv2D: `kernel_size` must be an int >= 1 or a pair of them, got \(3, 0\)"),
    (dict(in_channels=2, out_channels=6, kernel_size=3, stride=(1, 2, 3)),
     r"Conv2D: `stride` must be an int >= 1 or a pair of them, got \(1, 2, 3\)"),
    (dict(in_channels=2, out_channels=6, kernel_size=3, padding=-1),
     r"Conv2D: `padding` must be an int >= 0 or a pair of them, got -1"),
    (dict(in_channels=2, out_channels=6, kernel_size=3, init="bogus"), r"Conv2D: unknown init 'bogus'"),
])
def test_conv2d_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.Conv2D(**kwargs)


@pytest.mark.parametrize("make,match", [
    (lambda: nn.MaxPool2D(2, padding=2), r"MaxPool2D: `padding` \(=\(2, 2\)\) must be at most half of `kernel_size` "
                                         r"\(=\(2, 2\)\)"),
    (lambda: nn.AvgPool2D(0), r"AvgPool2D: `kernel_size` must be an int >= 1 or a pair of them, got 0"),
    (lambda: nn.Upsample2D(1.5), r"Upsample2D: `scale_factor` must be an int >= 1 or a pair of them, got 1.5"),
])
def test_pool_and_upsample_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_pool_kernel_larger_than_input():
    with pytest.raises(ValueError, match=r"AvgPool2D\(kernel_size=\(3, 3\), stride=\(3, 3\)\): kernel 3x3 is larger "
                                         r"than the padded input 2x5 \(input 2x5, padding 0x0\)"):
        nn.AvgPool2D(3).forward(np.ones((1, 1, 2, 5), dtype=np.float32))


def test_batch_chunks_is_pure():
    from anyxp_nn.ops.conv import batch_chunks
    assert batch_chunks(5, 100, 1) == [(i, i + 1) for i in range(5)]  # one sample per chunk at least
    assert batch_chunks(5, 100, 1000) == [(0, 5)]  # 500 bytes in all: below 4x the budget, one chunk
    assert len(batch_chunks(80, 100, 1000)) == 8  # 8000 bytes: chunks of 1000
    assert batch_chunks(7, 100, 200, whole_below=1) == [(0, 1), (1, 3), (3, 5), (5, 7)]  # near-equal sizes <= 2
    assert batch_chunks(64, 100, 900, whole_below=1) == [(8 * i, 8 * i + 8) for i in range(8)]  # not 7 x 9 + 1
    assert batch_chunks(80, 100, None) == [(0, 80)]  # no budget (GPUs): one chunk
    assert batch_chunks(0, 100, 1000) == []  # an empty batch
    assert batch_chunks(5, 100, None, min_chunks=2) == [(0, 2), (2, 5)]  # one chunk per host thread
    assert batch_chunks(32, 100, 500, min_chunks=2) == [(4 * i, 4 * i + 4) for i in range(8)]  # 7 -> 8 chunks
    assert batch_chunks(1, 100, None, min_chunks=2) == [(0, 1)]


@pytest.mark.parametrize("stride", [(2, 2), (1, 1)], ids=["col2im", "transposed-conv"])
def test_conv_batch_chunks_match_one_chunk(backend, monkeypatch, stride):
    """Cache-blocked Conv2D (batch chunks) equals the one-GEMM path and passes gradcheck.

    Stride 2 takes dX through col2im, stride 1 through the convolution of dY with the flipped kernel.
    """
    from anyxp_nn.testing import assert_close, gradcheck
    rng = np.random.default_rng(0)
    x64 = rng.standard_normal((5, 4, 7, 6))
    dy64 = rng.standard_normal((5, 6, 4, 4) if stride == (2, 2) else (5, 6, 7, 7))  # output of the conv below

    def run(budget):
        monkeypatch.setattr(backend, "cache_block_bytes", budget)
        nn.manual_seed(0)
        conv = nn.Conv2D(4, 6, (3, 2), stride=stride, padding=1, groups=2, backend=backend, dtype="float64")
        y, bp = conv.forward(backend.asarray(x64))
        dx = bp(backend.asarray(dy64))
        return conv, backend.to_numpy(y), backend.to_numpy(dx), backend.to_numpy(conv.weight.grad)

    conv, y1, dx1, dw1 = run(None)
    chunked, y2, dx2, dw2 = run(1)  # one sample per chunk
    for a, b_ in ((y1, y2), (dx1, dx2), (dw1, dw2)):
        assert_close(b_, a, rtol=1e-12, atol=1e-12)
    gradcheck(chunked, backend.asarray(x64[:2]))
    # 12,000 bytes: im2col(x) (5 x 9,408 bytes) alone would fit one chunk, im2col(dY) (5 x 12,096
    # bytes, built in a stride-1 backward) does not: chunks are sized by the larger
    _, y3, dx3, dw3 = run(12000)
    for a, b_ in ((y1, y3), (dx1, dx3), (dw1, dw3)):
        assert_close(b_, a, rtol=1e-12, atol=1e-12)


def test_maxpool_dx_keeps_the_input_memory_order_on_numpy():
    """A convolution's output is a channel-first array seen as NCHW; max-pool's dX keeps that order,
    so the ReLU backward after it multiplies same-layout operands (benchmarks/README.md)."""
    x = np.ascontiguousarray(np.random.default_rng(0).standard_normal((3, 2, 4, 6))).transpose(1, 0, 2, 3)
    y, backprop = nn.MaxPool2D(2, backend="numpy", dtype="float64").forward(x)
    dx = backprop(np.ones(y.shape))
    assert dx.strides[1] > dx.strides[0]  # channel-first, like x
    np.testing.assert_array_equal(dx, nn.MaxPool2D(2, backend="numpy", dtype="float64").forward(
        np.ascontiguousarray(x))[1](np.ones(y.shape)))  # the same numbers as from a C-order input
