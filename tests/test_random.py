"""Same seed -> bitwise-identical draws on every backend."""
import json

import pytest

import anyxp_nn as nn
from anyxp_nn.random import Generator


def _draws(b):
    g = Generator(42)
    return [b.to_numpy(g.normal((3, 4), dtype="float32", backend=b)),
            b.to_numpy(g.uniform((5,), -1, 1, dtype="float64", backend=b)),
            b.to_numpy(g.bernoulli((7,), 0.3, backend=b)),
            b.to_numpy(g.integers(0, 10, (4,), backend=b)),
            g.permutation(9)]


def test_bitwise_identical_across_backends(backend):
    ref = _draws(nn.get_backend("numpy"))
    got = _draws(backend)
    for r, a in zip(ref, got):
        assert r.dtype == a.dtype
        assert r.tobytes() == a.tobytes()


def test_init_identical_across_backends(backend):
    nn.manual_seed(3)
    ref = nn.Linear(7, 5, backend="numpy").state_dict()
    nn.manual_seed(3)
    got = nn.Linear(7, 5, backend=backend).state_dict()
    for k in ref:
        assert ref[k].tobytes() == got[k].tobytes()


def test_state_roundtrip_json():
    g = Generator(1)
    g.uniform((10,))
    state = json.loads(json.dumps(g.get_state()))
    a = nn.to_numpy(g.uniform((5,)))
    g.set_state(state)
    b = nn.to_numpy(g.uniform((5,)))
    assert a.tobytes() == b.tobytes()


def test_manual_seed_resets_default():
    nn.manual_seed(5)
    a = nn.to_numpy(nn.random.default_generator.normal((4,)))
    nn.manual_seed(5)
    b = nn.to_numpy(nn.random.default_generator.normal((4,)))
    assert a.tobytes() == b.tobytes()


def test_bad_seed_and_state():
    with pytest.raises(ValueError, match="Generator: `seed` must be a non-negative int, got -1"):
        Generator(-1)
    with pytest.raises(ValueError, match="expected a PCG64 generator state dict"):
        Generator(0).set_state({"bit_generator": "MT19937"})
    with pytest.raises(TypeError, match="get_rng: `rng` must be None, an int seed or an anyxp_nn.random.Generator"):
        nn.random.get_rng("abc")
