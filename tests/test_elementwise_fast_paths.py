"""ReLU compares with ``Backend.zero_for_max(x)``: zeros over the trailing axes on NumPy (whose
``maximum`` has no vector loop for a scalar operand), the scalar 0 elsewhere.  The values must
equal ``maximum(x, 0)`` exactly on every backend, for every rank and size, and on NumPy the
output keeps the input's memory order."""
import numpy as np
import pytest

import anyxp_nn as nn

SPECIALS = [-0.0, 0.0, np.nan, -np.inf, np.inf, -1e-45, 1e-45, 3.0, -3.0, -1e-38, 1e-38]


@pytest.mark.parametrize("shape", [(), (7,), (3, 11), (2, 3, 5, 5), (2, 1, 300, 300), (70000,), (1, 2, 0, 4)])
def test_relu_forward_is_maximum_with_zero(backend, shape):
    rng = np.random.default_rng(0)
    size = int(np.prod(shape))
    values = rng.standard_normal(size).astype(np.float32)
    values[:min(size, len(SPECIALS))] = SPECIALS[:min(size, len(SPECIALS))]
    x_np = values.reshape(shape)
    x = backend.asarray(x_np)
    y, backprop = nn.layers.ReLU().forward(x)
    got = backend.to_numpy(y)
    assert got.shape == shape and got.dtype == np.float32
    want = np.maximum(x_np, np.float32(0.0))
    np.testing.assert_array_equal(got, want)  # NaN where x is NaN, 0 for -inf and for -0.0
    dx = backend.to_numpy(backprop(backend.asarray(np.ones(shape, np.float32))))
    np.testing.assert_array_equal(dx, (x_np > 0).astype(np.float32))


def test_zero_for_max_only_where_it_pays():
    be = nn.get_backend("numpy")
    x = np.zeros((64, 32, 28, 28), np.float32)
    z = be.zero_for_max(x)  # trailing axes while they hold <= 65536 elements
    assert z.shape == (32, 28, 28) and z.dtype == np.float32 and not z.any()
    assert be.zero_for_max(np.zeros((2, 1 << 17), np.float32)) == 0.0  # the last axis alone is too long
    assert be.zero_for_max(np.zeros((), np.float32)) == 0.0
    nhwc = np.zeros((4, 8, 8, 3), np.float32).transpose(0, 3, 1, 2)  # the last axis is not the innermost
    assert be.zero_for_max(nhwc) == 0.0
    for name in ("array_api_strict", "torch"):
        if name in nn.available_backends():
            other = nn.get_backend(name)
            assert other.zero_for_max(other.asarray(x)) == 0.0


@pytest.mark.parametrize("layout", ["C", "channel-first", "NHWC view"])
def test_relu_keeps_the_memory_order_on_numpy(layout):
    rng = np.random.default_rng(2)
    if layout == "C":
        x = rng.standard_normal((4, 3, 5, 6), dtype=np.float32)
    elif layout == "channel-first":
        x = rng.standard_normal((3, 4, 5, 6), dtype=np.float32).transpose(1, 0, 2, 3)
    else:
        x = rng.standard_normal((4, 5, 6, 3), dtype=np.float32).transpose(0, 3, 1, 2)
    y, _ = nn.layers.ReLU().forward(x)
    assert y.strides == np.maximum(x, np.float32(0.0)).strides
    np.testing.assert_array_equal(y, np.maximum(x, 0.0))
