"""The from-scratch erf (the standard has none) against math.erf."""
import math

import numpy as np
import pytest

from anyxp_nn.ops import erf

XS = np.concatenate([np.linspace(-8, 8, 4001), [0.0, 1e-8, -1e-8, 2.5, -2.5, 1.0, -1.0, 30.0, -30.0]])
REF = np.array([math.erf(v) for v in XS])


@pytest.mark.parametrize("dtype,tol", [("float64", 2e-15), ("float32", 3e-7)])
def test_erf_accuracy(backend, dtype, tol):
    x = backend.asarray(XS, dtype=dtype)
    y = erf(x)
    assert y.dtype == x.dtype and backend.owns(y)
    got = backend.to_numpy(y).astype(np.float64)
    ref32 = np.array([math.erf(float(v)) for v in XS.astype(dtype)])
    assert np.max(np.abs(got - ref32)) <= tol
    assert np.all(np.abs(got) <= 1.0)


def test_erf_odd_and_monotone():
    x = np.linspace(0, 5, 1001)
    np.testing.assert_array_equal(erf(-x), -erf(x))
    assert np.all(np.diff(erf(x)) >= 0)
