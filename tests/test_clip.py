"""Gradient clipping against torch.nn.utils.clip_grad_norm_ / clip_grad_value_."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import optim
from anyxp_nn.backend import transfer_hooks
from anyxp_nn.parameter import Parameter

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def _grads(scale, seed=0, dtype=np.float32):
    r = np.random.default_rng(seed)
    return [(scale * r.standard_normal(s)).astype(dtype) for s in SHAPES]


def _params(backend, grads, dtype="float32"):
    ps = []
    for g in grads:
        p = Parameter(backend.xp.zeros(g.shape, dtype=backend.dtype(dtype), device=backend.device))
        p.grad = backend.asarray(g.copy(), dtype=dtype)
        ps.append(p)
    return ps


@pytest.mark.parametrize("scale,max_norm", [(10.0, 1.0), (0.01, 1.0), (3.0, 5.0)])
def test_clip_grad_norm_matches_torch(backend, scale, max_norm):
    torch = pytest.importorskip("torch")
    grads = _grads(scale)
    tps = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for tp, g in zip(tps, grads):
        tp.grad = torch.from_numpy(g.copy())
    ref_total = float(torch.nn.utils.clip_grad_norm_(tps, max_norm))
    ps = _params(backend, grads)
    total = optim.clip_grad_norm(ps, max_norm)
    assert type(total) is float
    assert total == pytest.approx(ref_total, rel=1e-6)
    for p, tp in zip(ps, tps):
        nn.testing.assert_close(p.grad, tp.grad.numpy(), rtol=1e-6, atol=1e-8, backend=backend)
        assert p.grad.dtype == p.data.dtype


def test_clip_grad_norm_float64_and_layer(backend):
    model = nn.Sequential(nn.Linear(3, 4, backend=backend, dtype="float64"), nn.Linear(4, 2, backend=backend,
                                                                                     dtype="float64"))
    x = backend.asarray(np.ones((5, 3)), dtype="float64")
    y, bp = model.forward(x)
    bp(100.0 * backend.xp.ones_like(y))
    host = [nn.to_numpy(p.grad) for p in model.parameters()]
    norm = float(np.sqrt(sum(float(np.sum(g * g)) for g in host)))
    total = optim.clip_grad_norm(model, 2.0)
    assert total == pytest.approx(norm, rel=1e-12)
    after = np.sqrt(sum(float(np.sum(nn.to_numpy(p.grad) ** 2)) for p in model.parameters()))
    assert after == pytest.approx(2.0 * norm / (norm + 1e-6), rel=1e-12)
    assert all(p.grad.dtype == backend.dtype("float64") for p in model.parameters())


def test_clip_grad_norm_one_host_sync(backend):
    ps = _params(backend, _grads(10.0))
    events = []
    hook = lambda kind, b, n: events.append(kind)  # noqa: E731
    transfer_hooks.append(hook)
    try:
        optim.clip_grad_norm(ps, 1.0)
    finally:
        transfer_hooks.remove(hook)
    assert events == ["item"]


def test_clip_grad_norm_skips_missing_and_frozen(backend):
    ps = _params(backend, _grads(10.0))
    ps[0].grad = None
    ps[1].requires_grad = False
    before = nn.to_numpy(ps[1].grad)
    total = optim.clip_grad_norm(ps, 1.0)
    g2 = _grads(10.0)[2]
    assert total == pytest.approx(float(np.linalg.norm(g2)), rel=1e-6)
    assert np.array_equal(nn.to_numpy(ps[1].grad), before)
    assert optim.clip_grad_norm([ps[0]], 1.0) == 0.0


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_clip_grad_norm_nonfinite(backend):
    grads = _grads(1.0)
    grads[1][0] = np.inf
    ps = _params(backend, grads)
    before = [nn.to_numpy(p.grad) for p in ps]
    with pytest.raises(ValueError, match=r"clip_grad_norm: the total gradient norm is inf; not clipping"):
        optim.clip_grad_norm(ps, 1.0, error_if_nonfinite=True)
    for p, b in zip(ps, before):
        assert np.array_equal(nn.to_numpy(p.grad), b)
    assert optim.clip_grad_norm(ps, 1.0) == float("inf")  # as PyTorch: scales anyway


def test_clip_grad_value_matches_torch(backend):
    torch = pytest.importorskip("torch")
    grads = _grads(2.0)
    tps = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for tp, g in zip(tps, grads):
        tp.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_value_(tps, 0.5)
    ps = _params(backend, grads)
    events = []
    hook = lambda kind, b, n: events.append(kind)  # noqa: E731
    transfer_hooks.append(hook)
    try:
        assert optim.clip_grad_value(ps, 0.5) is None
    finally:
        transfer_hooks.remove(hook)
    assert events == []
    for p, tp in zip(ps, tps):
        nn.testing.assert_close(p.grad, tp.grad.numpy(), backend=backend)


def test_clip_errors(backend):
    ps = _params(backend, _grads(1.0))
    with pytest.raises(ValueError, match=r"clip_grad_norm: max_norm must be a float > 0, got 0"):
        optim.clip_grad_norm(ps, 0)
    with pytest.raises(ValueError, match=r"clip_grad_value: clip_value must be a float >= 0, got -1"):
        optim.clip_grad_value(ps, -1)
    with pytest.raises(TypeError, match=r"clip_grad_norm: expected Parameters \(or a Layer\), got"):
        optim.clip_grad_norm([ps[0].grad], 1.0)


@pytest.mark.parametrize("scale", [10.0, 0.01])
def test_clip_grad_norm_no_sync_is_clip_grad_norm_without_the_read(backend, scale):
    from anyxp_nn.optim.clip import clip_grad_norm_no_sync
    a, b = _params(backend, _grads(scale)), _params(backend, _grads(scale))
    value = optim.clip_grad_norm(a, 1.0)
    with nn.sync_guard(forbid=True):                 # no host read, no transfer
        total = clip_grad_norm_no_sync(b, 1.0)
    assert float(nn.to_numpy(total)) == value
    for p, q in zip(a, b):                           # the same arithmetic: bitwise equal gradients
        np.testing.assert_array_equal(nn.to_numpy(p.grad), nn.to_numpy(q.grad))
    assert clip_grad_norm_no_sync([Parameter(backend.xp.zeros((2,), dtype=backend.dtype("float32"),
                                                                 device=backend.device))], 1.0) is None
    with pytest.raises(ValueError, match="clip_grad_norm_no_sync: max_norm must be a float > 0, got 0"):
        clip_grad_norm_no_sync(b, 0)
