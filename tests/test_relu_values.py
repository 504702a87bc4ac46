"""ReLU's forward broadcasts against zeros over the trailing axes (NumPy has no vector loop for
``maximum(array, scalar)``): the values must be exactly ``maximum(x, 0)`` for every rank and size."""
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
