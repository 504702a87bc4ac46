"""GradientMonitor: correct per-layer statistics, one host transfer per logged step."""
import math

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import optim
from anyxp_nn.backend import transfer_hooks
from anyxp_nn.losses import mse
from anyxp_nn.monitor import GradientMonitor


def _model(backend, seed=0):
    nn.manual_seed(seed)
    b = dict(backend=backend)
    return nn.Sequential(nn.Linear(6, 8, **b), nn.ReLU(**b), nn.Linear(8, 3, **b))


def _data(backend, n=16):
    r = np.random.default_rng(0)
    return (backend.asarray(r.standard_normal((n, 6)).astype(np.float32)),
            backend.asarray(r.standard_normal((n, 3)).astype(np.float32)))


def _train_step(model, opt, x, t):
    y, backprop = model.forward(x)
    _, dy = mse(y, t)
    opt.zero_grad()
    backprop(dy, need_dx=False)
    opt.step()


class _Counter:
    def __init__(self):
        self.events = []

    def __call__(self, kind, backend, nbytes):
        self.events.append(kind)

    def __enter__(self):
        transfer_hooks.append(self)
        return self

    def __exit__(self, *exc):
        transfer_hooks.remove(self)


def test_one_host_transfer_per_logged_step(backend):
    model = _model(backend)
    opt = optim.Adam(model, lr=0.01)
    mon = GradientMonitor(model, opt, every=3)
    x, t = _data(backend)
    per_step = []
    for _ in range(7):
        with _Counter() as c:
            _train_step(model, opt, x, t)
        per_step.append(c.events)
    assert per_step == [["to_host"] if k % 3 == 0 else [] for k in range(7)]
    assert mon.steps == [0, 3, 6]
    labels = {"0:Linear", "2:Linear"}
    assert set(mon.history["grad_norm"]) == labels == set(mon.history["update_ratio"])
    assert set(mon.history["act_std"]) == {"0:Linear", "1:ReLU", "2:Linear"}
    assert set(mon.history["dead_frac"]) == {"1:ReLU"}
    assert all(len(s) == 3 for m in mon.history.values() for s in m.values())


def test_values_match_a_manual_computation(backend):
    model = _model(backend)
    opt = optim.SGD(model, lr=0.1)
    mon = GradientMonitor(model, opt)
    x, t = _data(backend)
    # by hand, on a copy of the model
    ref = _model(backend)
    h = ref[0](x)
    a = ref[1](h)
    y, backprop = ref.forward(x)
    _, dy = mse(y, t)
    backprop(dy)
    w0 = [nn.to_numpy(p.data) for p in ref[0].parameters()]
    g0 = [nn.to_numpy(p.grad) for p in ref[0].parameters()]
    _train_step(model, opt, x, t)
    grad_norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in g0))
    assert mon.last("grad_norm")["0:Linear"] == pytest.approx(grad_norm, rel=1e-5)
    upd = math.sqrt(sum(float(np.sum((0.1 * g.astype(np.float64)) ** 2)) for g in g0))
    base = math.sqrt(sum(float(np.sum(w.astype(np.float64) ** 2)) for w in w0))
    assert mon.last("update_ratio")["0:Linear"] == pytest.approx(upd / base, rel=1e-4)
    hn, an = nn.to_numpy(h), nn.to_numpy(a)
    assert mon.last("act_mean")["0:Linear"] == pytest.approx(float(hn.mean()), rel=1e-4, abs=1e-6)
    assert mon.last("act_std")["1:ReLU"] == pytest.approx(float(an.std()), rel=1e-4)
    dead = float(np.mean(~np.any(an > 0, axis=0)))
    assert mon.last("dead_frac")["1:ReLU"] == pytest.approx(dead, abs=1e-7)


def test_dead_relu_fraction(backend):
    model = _model(backend)
    # units 0..3 of the hidden layer can never fire: huge negative bias
    b = nn.to_numpy(model[0].bias.data)
    b[:4] = -1e3
    model[0].bias.data = backend.asarray(b)
    opt = optim.SGD(model, lr=0.01)
    mon = GradientMonitor(model, opt)
    x, t = _data(backend)
    _train_step(model, opt, x, t)
    assert mon.last("dead_frac")["1:ReLU"] >= 0.5


def test_manual_record_and_eval_forward_not_recorded(backend):
    model = _model(backend)
    mon = GradientMonitor(model, every=2)
    x, t = _data(backend)
    with _Counter() as c:
        for _ in range(4):
            model(x)  # inference: no statistics
            y, backprop = model.forward(x)
            _, dy = mse(y, t)
            model.zero_grad()
            backprop(dy, need_dx=False)
            mon.record()
    assert c.events == ["to_host", "to_host"]
    assert mon.steps == [0, 2]
    assert mon.history["update_ratio"] == {}  # no optimizer: no updates to measure
    assert set(mon.history["grad_norm"]) == {"0:Linear", "2:Linear"}


def test_detach_restores(backend):
    model = _model(backend)
    opt = optim.Adam(model, lr=0.01)
    x, t = _data(backend)
    with GradientMonitor(model, opt, every=1) as mon:
        for _ in range(3):
            _train_step(model, opt, x, t)
    assert "step" not in opt.__dict__
    assert all("forward" not in layer.__dict__ for _, layer in model.named_layers())
    with _Counter() as c:
        _train_step(model, opt, x, t)
    assert c.events == [] and mon.steps == [0, 1, 2]


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    backend = nn.get_backend("numpy")
    model = _model(backend)
    opt = optim.Adam(model, lr=0.01)
    x, t = _data(backend)
    mon = GradientMonitor(model, opt, every=2)
    for _ in range(6):
        _train_step(model, opt, x, t)
    path = tmp_path / "flow.png"
    mon.plot(path)
    assert path.stat().st_size > 1000


def test_monitor_errors(backend):
    model = _model(backend)
    with pytest.raises(ValueError, match=r"`every` must be a positive int, got 0"):
        GradientMonitor(model, every=0)
    mon = GradientMonitor(model)
    with pytest.raises(ValueError, match=r"unknown metric 'grads'; expected one of"):
        mon.last("grads")
    mon.detach()
