"""Fast checks of the generalization and depth demo sections (the experiments themselves run
in tests/test_examples.py at their --quick sizes)."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.demos import depth, generalization


def test_linear_probe_separates_linearly_separable_features(backend):
    rng = np.random.default_rng(0)
    centres = rng.normal(0.0, 4.0, (10, 5))
    y = rng.integers(0, 10, 400)
    F = (centres[y] + rng.normal(0.0, 0.5, (400, 5))).astype(np.float32)
    acc = generalization.linear_probe(F[:300], y[:300], F[300:], y[300:], backend, steps=200)
    assert acc > 0.95
    noise = rng.normal(size=(400, 5)).astype(np.float32)          # features unrelated to the labels
    assert generalization.linear_probe(noise[:300], y[:300], noise[300:], y[300:], backend, steps=200) < 0.3


def test_small_cnn_and_mlp_shapes(backend):
    x = backend.asarray(np.zeros((2, 1, 14, 14), dtype=np.float32))
    assert tuple(generalization.small_cnn(backend)(x).shape) == (2, 10)
    assert tuple(generalization.mlp(196, 8, 10, backend)(backend.xp.reshape(x, (2, 196))).shape) == (2, 10)


def _first_over_last(model, backend):
    x = nn.Generator(0).normal((64, 784), backend=backend)
    y = backend.asarray(np.arange(64) % 10)
    logits, backprop = model.forward(x)
    _, d = nn.losses.softmax_cross_entropy(logits, y)
    model.zero_grad()
    backprop(d)
    g = depth._hidden_grad_norms(model)
    return g[0] / g[-1]


def test_plain_net_gradient_vanishes_with_torch_init_not_with_he_init():
    b = nn.get_backend("numpy")
    nn.manual_seed(3)
    torch_init = _first_over_last(depth.deep_mlp(10, False, "torch", b), b)
    nn.manual_seed(3)
    he_init = _first_over_last(depth.deep_mlp(10, False, "he", b), b)
    assert torch_init < 1e-4 < 0.1 < he_init < 10


def test_deep_mlp_counts_layers():
    b = nn.get_backend("numpy")
    plain, res = depth.deep_mlp(3, False, "he", b), depth.deep_mlp(3, True, "he", b)
    n_linear = lambda m: sum(1 for name, p in m.named_parameters() if name.endswith("weight"))  # noqa: E731
    assert n_linear(plain) == n_linear(res) == 2 + 2 * 3
    with pytest.raises(ValueError, match="init"):
        depth.deep_mlp(1, False, "bogus", b)


def test_depth_section_claims_hold_over_its_seeds(tmp_path):
    """docs/04's claims at the --quick size, each a median over depth.SEEDS (a deep plain net's run
    is chaotic: one seed's numbers move with float rounding)."""
    lines = []
    rows = {r["item"]: r["value"] for r in depth.depth_experiment("numpy", tmp_path, quick=True, log=lines.append)}
    loss = {k.split(":")[0]: v for k, v in rows.items() if "training loss" in k}
    plain_torch, res_torch = loss["20-layer plain MLP, init='torch'"], loss["20-layer residual MLP, init='torch'"]
    plain_he, res_he = loss["20-layer plain MLP, init='he'"], loss["20-layer residual MLP, init='he'"]
    assert plain_torch > 2.29                       # chance level ln 10: the vanishing gradient
    assert res_torch < 0.7 < plain_he + 0.3 < plain_torch + 0.3 and plain_he > res_torch + 0.5  # degradation
    assert np.isnan(res_he)                         # He-scaled residual branches diverge
    assert lines[0].startswith("[depth] median (min-max) over seeds 3, 4, 5") and len(lines) == 5
