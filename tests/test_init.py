"""Initialisers: PyTorch's fan computation and the right variance."""
import math

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import init


def test_fans_match_torch():
    torch = pytest.importorskip("torch")
    for shape in [(8, 3), (16, 4, 3, 5), (5, 2, 7)]:
        assert init.fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.fans((4,))


@pytest.mark.parametrize("name,std", [
    ("he_normal", math.sqrt(2 / 400)), ("he_uniform", math.sqrt(2 / 400)),
    ("xavier_normal", math.sqrt(2 / 600)), ("xavier_uniform", math.sqrt(2 / 600))])
def test_init_statistics(backend, name, std):
    w = backend.to_numpy(getattr(init, name)((200, 400), rng=nn.Generator(0), backend=backend))
    assert w.dtype == np.float32 and w.shape == (200, 400)
    assert abs(w.std() / std - 1) < 0.02
    assert abs(w.mean()) < 0.05 * std
    if "uniform" in name:
        assert np.abs(w).max() <= math.sqrt(3) * std * (1 + 1e-6)


def test_zeros_and_normal(backend):
    z = init.zeros((2, 3), backend=backend, dtype="float64")
    assert backend.owns(z) and z.dtype == backend.xp.float64 and not np.any(backend.to_numpy(z))
    n = backend.to_numpy(init.normal((1000, 100), std=0.5, rng=nn.Generator(1), backend=backend))
    assert abs(n.std() - 0.5) < 0.01


def test_unknown_init_name():
    with pytest.raises(ValueError, match="Linear: unknown init 'lecun'"):
        nn.Linear(2, 2, init="lecun")
