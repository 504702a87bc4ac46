"""The NumPy fast paths written with standard calls, checked for their values on every backend:
ReLU's ``maximum`` against zeros over the trailing axes (NumPy has no vector loop for
``maximum(array, scalar)``) must equal ``maximum(x, 0)`` exactly for every rank and size, and
``ops.row_sums`` (a product with ones instead of ``sum``) must match a float64 sum."""
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


@pytest.mark.parametrize("shape", [(3, 50176), (4, 7), (2, 0), (0, 5)])
def test_row_sums_match_sum(backend, shape):
    """ops.row_sums (BatchNorm's and Conv2D's per-channel sums) against a float64 sum."""
    from anyxp_nn.ops import row_sums
    a_np = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = backend.to_numpy(row_sums(backend.asarray(a_np)))
    want = a_np.astype(np.float64).sum(axis=1)
    assert got.shape == (shape[0],) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * max(1, shape[1]) ** 0.5 * 4)
