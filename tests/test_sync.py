"""The host-sync guard: counting, forbidding, and a training step with no hidden transfers."""
import functools

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.backend import transfer_hooks
from anyxp_nn.testing import SyncError, count_syncs, sync_guard, syncs_per_step


def _mlp(b):
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8, backend=b), nn.ReLU(backend=b), nn.Linear(8, 3, backend=b))


def test_counts_each_kind(backend):
    x_host = np.ones((4, 5), dtype=np.float32)
    with sync_guard() as syncs:
        x = backend.asarray(x_host)
        y = backend.xp.sum(x * 2.0)
        backend.item(y)
        backend.to_numpy(x)
        backend.to_numpy(x)
    up = 0 if backend.owns(x_host) else 1   # on NumPy a host array is already "on the device"
    assert syncs.counts == {"to_device": up, "to_host": 2, "item": 1}
    assert syncs.total == 3 + up and len(syncs.events) == 3 + up
    assert [e.kind for e in syncs.events] == ["to_device"] * up + ["item", "to_host", "to_host"]
    assert syncs.events[-1].nbytes == 80 and "test_sync.py" in syncs.events[0].where
    assert not transfer_hooks  # the hook is gone after the block


def test_forbid_names_kind_backend_and_line(backend):
    x = backend.asarray(np.ones(3, dtype=np.float32))
    with pytest.raises(SyncError, match=rf"item \(8 bytes\) on '{backend.label}' at .*test_sync.py:\d+"):
        with sync_guard(forbid=True):
            backend.item(backend.xp.sum(x))
    assert not transfer_hooks


def test_allow_lets_named_kinds_through(backend):
    with sync_guard(forbid=True, allow=("to_device", "item")) as syncs:
        x = backend.asarray([0.0, 1.0])
        backend.item(x[1])
        with pytest.raises(SyncError, match="to_host"):
            backend.to_numpy(x)
    assert syncs.counts == {"to_device": 1, "to_host": 1, "item": 1}


def test_library_internal_transfer_is_located():
    """A transfer made inside the library names the library line, not the backend module."""
    with pytest.raises(SyncError, match=r"to_device .* at .*random\.py:\d+"):
        with sync_guard(forbid=True):
            nn.random.Generator(0).normal((2, 2), backend="array_api_strict")


def test_training_step_makes_no_hidden_syncs(backend):
    """Forward, loss, backward and an SGD step on device data: zero transfers, even forbidden."""
    model = _mlp(backend)
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = backend.asarray(np.random.default_rng(0).standard_normal((6, 5)), dtype="float32")
    y = backend.asarray(np.array([0, 1, 2, 0, 1, 2]))
    loss_fn = functools.partial(nn.losses.softmax_cross_entropy, check_labels=False)

    def step():
        model.zero_grad()
        out, backprop = model.forward(x)
        loss, dout = loss_fn(out, y)
        backprop(dout, need_dx=False)
        opt.step()
        return loss

    with sync_guard(forbid=True):
        for _ in range(3):
            loss = step()
    assert np.isfinite(backend.item(loss))


def test_syncs_per_step_counts_a_logging_step(backend):
    model = _mlp(backend)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    x_host = np.ones((4, 5), dtype=np.float32)
    y_host = np.array([0, 1, 2, 0])

    def step():
        x, y = backend.asarray(x_host), backend.asarray(y_host)   # one batch upload: 2 transfers
        model.zero_grad()
        out, backprop = model.forward(x)
        loss, dout = nn.losses.softmax_cross_entropy(out, y, check_labels=False)
        backprop(dout, need_dx=False)
        opt.step()
        return backend.item(loss)                                # one logged loss

    per = syncs_per_step(step, n=3)
    up = 0.0 if backend.owns(x_host) else 2.0   # NumPy: the batch is already where it computes
    assert (per["to_device"], per["to_host"], per["item"], per["total"]) == (up, 0.0, 1.0, up + 1.0)
    assert per["seconds"] > 0


def test_count_syncs_returns_the_result():
    b = nn.get_backend("array_api_strict")
    c = count_syncs(lambda a: b.to_numpy(b.asarray(a)) * 2, np.arange(3.0))
    np.testing.assert_array_equal(c.result, [0.0, 2.0, 4.0])
    assert c.counts == {"to_device": 1, "to_host": 1, "item": 0}
    assert repr(c) == "SyncCounter(to_device=1, to_host=1, item=0)"


def test_backends_filter():
    np_b, strict = nn.get_backend("numpy"), nn.get_backend("array_api_strict")
    with sync_guard(backends=("array_api_strict",)) as syncs:
        np_b.asarray(np.zeros(2))
        strict.asarray(np.zeros(2))
    assert syncs.counts["to_device"] == 1 and syncs.events[0].backend == "array_api_strict"


def test_top_level_exports():
    assert nn.sync_guard is sync_guard and nn.count_syncs is count_syncs


def test_errors():
    with pytest.raises(ValueError, match=r"unknown kinds in `allow` \['to_gpu'\]"):
        with sync_guard(forbid=True, allow=("to_gpu",)):
            pass
    with pytest.raises(ValueError, match="`n` must be >= 1, got 0"):
        syncs_per_step(lambda: None, n=0)
