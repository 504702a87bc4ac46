"""Sequential's backprop stops at the lowest trainable child when no input gradient is asked for
(PyTorch's autograd never reaches a frozen prefix): the skipped children's backprops are not called."""
import numpy as np

import anyxp_nn as nn


class Probe(nn.Layer):
    """Identity that counts how often its backprop runs."""

    def __init__(self, backend=None):
        super().__init__(backend=backend)
        self.calls = 0

    def forward(self, x, train=None):
        def backprop(dY, need_dx=True):
            self.calls += 1
            return dY if need_dx else None

        return x, backprop


def _model(backend, rng_seed=0):
    rng = nn.Generator(rng_seed)
    probe = Probe(backend)
    trunk = nn.Sequential(nn.Linear(4, 5, backend=backend, rng=rng), probe, nn.ReLU(backend=backend),
                          nn.Linear(5, 5, backend=backend, rng=rng))
    head = nn.Sequential(nn.Linear(5, 6, backend=backend, rng=rng), nn.Tanh(backend=backend),
                         nn.Linear(6, 3, backend=backend, rng=rng))
    return nn.Sequential(trunk, head), trunk, head, probe


def _run(backend, model, need_dx):
    x = backend.asarray(np.linspace(-1, 1, 8).reshape(2, 4), dtype="float32")
    y, backprop = model.forward(x)
    model.zero_grad()
    return backprop(backend.xp.ones_like(y), need_dx=need_dx)


def test_frozen_prefix_is_skipped_and_head_gradients_unchanged(backend):
    model, trunk, head, probe = _model(backend)
    assert _run(backend, model, need_dx=False) is None
    assert probe.calls == 1  # everything trainable: the whole chain runs
    reference = [backend.to_numpy(p.grad) for p in head.parameters()]

    trunk.freeze()
    assert _run(backend, model, need_dx=False) is None
    assert probe.calls == 1  # the frozen trunk's backprops were not called
    assert all(p.grad is None for p in trunk.parameters())
    for p, ref in zip(head.parameters(), reference):
        np.testing.assert_allclose(backend.to_numpy(p.grad), ref, rtol=1e-6, atol=1e-7)


def test_stops_inside_a_nested_sequential(backend):
    model, trunk, head, probe = _model(backend)
    probe_low, probe_mid = Probe(backend), Probe(backend)
    model = nn.Sequential(probe_low, trunk, probe_mid, head)
    trunk[0].freeze()  # the trunk's first Linear: its lowest trainable child is now the second Linear
    assert _run(backend, model, need_dx=False) is None
    assert probe_low.calls == 0 and probe.calls == 0  # below the lowest trainable child
    assert probe_mid.calls == 1
    assert trunk[0].weight.grad is None and trunk[3].weight.grad is not None
    assert all(p.grad is not None for p in head.parameters())


def test_need_dx_true_goes_all_the_way(backend):
    model, trunk, head, probe = _model(backend)
    trunk.freeze()
    dx = _run(backend, model, need_dx=True)
    assert probe.calls == 1
    assert tuple(dx.shape) == (2, 4)
    assert all(p.grad is None for p in trunk.parameters())
    # dx matches the chain rule through the unfrozen model
    model2, _, _, _ = _model(backend)
    dx2 = _run(backend, model2, need_dx=True)
    np.testing.assert_allclose(backend.to_numpy(dx), backend.to_numpy(dx2), rtol=1e-6, atol=1e-7)


def test_all_frozen_calls_no_backprop(backend):
    model, trunk, head, probe = _model(backend)
    model.freeze()
    assert _run(backend, model, need_dx=False) is None
    assert probe.calls == 0
    assert all(p.grad is None for p in model.parameters())
