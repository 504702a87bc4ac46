"""Optimizers: numerics against torch.optim over hundreds of steps, param groups, frozen
parameters, state placement, and state_dict round trips (bit-for-bit resume)."""
import json
import math

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import optim
from anyxp_nn.parameter import Parameter

STEPS = 200
SHAPES = [(6, 5), (5,)]

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.1)),
]
IDS = [f"{n}-{'-'.join(k for k in kw if k != 'lr') or 'plain'}" for n, kw in CASES]


def _problem(seed=0, dtype=np.float32, steps=STEPS):
    """Initial values, a target and per-step gradient noise for a noisy quadratic."""
    r = np.random.default_rng(seed)
    init = [r.standard_normal(s).astype(dtype) for s in SHAPES]
    target = [r.standard_normal(s).astype(dtype) for s in SHAPES]
    noise = [[(0.3 * r.standard_normal(s)).astype(dtype) for s in SHAPES] for _ in range(steps)]
    return init, target, noise


def _params(backend, init, dtype="float32"):
    return [Parameter(backend.asarray(a.copy(), dtype=dtype)) for a in init]


def _set_grads(backend, params, target, noise_k):
    for p, t, n in zip(params, target, noise_k):
        # gradient of 0.5 * ||p - t||^2 plus noise, computed on the backend
        p.grad = (p.data - backend.asarray(t, dtype=p.data.dtype)) + backend.asarray(n, dtype=p.data.dtype)


def _run_ours(backend, name, kw, init, target, noise, dtype="float32", groups=None):
    params = _params(backend, init, dtype)
    opt = getattr(optim, name)(groups(params) if groups else params, **kw)
    for nk in noise:
        _set_grads(backend, params, target, nk)
        opt.step()
    return params, opt


def _run_torch(name, kw, init, target, noise, groups=None, scheduler=None):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    kw = dict(kw)
    opt = getattr(torch.optim, name)(groups(params) if groups else params, **kw)
    sched = scheduler(opt) if scheduler else None
    for nk in noise:
        for p, t, n in zip(params, target, nk):
            p.grad = (p.detach() - torch.from_numpy(t)) + torch.from_numpy(n)
        opt.step()
        if sched is not None:
            sched.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_matches_torch_float32(backend, name, kw):
    init, target, noise = _problem()
    ref = _run_torch(name, kw, init, target, noise)
    params, _ = _run_ours(backend, name, kw, init, target, noise)
    for p, r in zip(params, ref):
        nn.testing.assert_close(p.data, r, rtol=1e-4, atol=2e-6, backend=backend)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_matches_torch_float64(name, kw):
    init, target, noise = _problem(dtype=np.float64)
    ref = _run_torch(name, kw, init, target, noise)
    params, opt = _run_ours(nn.get_backend("numpy"), name, kw, init, target, noise, dtype="float64")
    for p, r in zip(params, ref):
        np.testing.assert_allclose(nn.to_numpy(p.data), r, rtol=1e-11, atol=1e-13)
    for st in opt.state.values():  # float64 state for float64 parameters
        assert all(isinstance(v, int) or v.dtype == np.float64 for v in st.values())


def test_schedule_matches_torch_scheduler(backend):
    torch = pytest.importorskip("torch")
    init, target, noise = _problem(steps=60)
    ref = _run_torch("Adam", dict(lr=0.05), init, target, noise,
                     scheduler=lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=60, eta_min=0.001))
    params, opt = _run_ours(backend, "Adam", dict(lr=optim.cosine_annealing(0.05, 60, 0.001)),
                            init, target, noise)
    for p, r in zip(params, ref):
        nn.testing.assert_close(p.data, r, rtol=1e-4, atol=2e-6)
    assert opt.step_count == 60


def test_param_groups_match_torch(backend):
    """Weights decay, biases don't; the second group also has its own lr."""
    init, target, noise = _problem(steps=100)

    def groups(ps):
        return [{"params": [ps[0]], "weight_decay": 0.1}, {"params": [ps[1]], "weight_decay": 0.0, "lr": 0.003}]

    ref = _run_torch("AdamW", dict(lr=0.01), init, target, noise, groups=groups)
    params, opt = _run_ours(backend, "AdamW", dict(lr=0.01), init, target, noise, groups=groups)
    for p, r in zip(params, ref):
        nn.testing.assert_close(p.data, r, rtol=1e-4, atol=2e-6)
    assert [g["lr"] for g in opt.param_groups] == [0.01, 0.003]


def test_param_groups_no_decay(backend):
    model = nn.Sequential(nn.Linear(4, 8, backend=backend), nn.ReLU(backend=backend),
                          nn.Linear(8, 2, backend=backend))
    groups = optim.param_groups_no_decay(model, 0.05, lr=0.1)
    assert [len(g["params"]) for g in groups] == [2, 2]
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    assert all(len(p.shape) == 2 for p in groups[0]["params"])
    assert all(len(p.shape) == 1 for p in groups[1]["params"])
    opt = optim.AdamW(groups)
    assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.param_groups[0]["lr"] == 0.1
    nobias = nn.Linear(3, 3, bias=False, backend=backend)
    assert len(optim.param_groups_no_decay(nobias, 0.1)) == 1


def test_frozen_parameters_are_skipped(backend):
    model = nn.Sequential(nn.Linear(3, 4, backend=backend), nn.Linear(4, 2, backend=backend))
    opt = optim.Adam(model, lr=0.1)
    model[0].freeze()
    before = model.state_dict()
    x = backend.asarray(np.ones((2, 3), np.float32))
    y, bp = model.forward(x)
    bp(backend.xp.ones_like(y))
    model[0].weight.grad = backend.xp.ones_like(model[0].weight.data)  # even a stray grad is ignored
    opt.step()
    after = model.state_dict()
    assert np.array_equal(after["0.weight"], before["0.weight"])
    assert np.array_equal(after["0.bias"], before["0.bias"])
    assert not np.array_equal(after["1.weight"], before["1.weight"])
    assert id(model[0].weight) not in opt.state and id(model[1].weight) in opt.state


@pytest.mark.parametrize("name", ["SGD", "Adam", "RMSprop", "Adagrad"])
def test_state_lives_on_param_device_and_dtype(backend, name):
    kw = {"SGD": dict(lr=0.1, momentum=0.9), "RMSprop": dict(momentum=0.9, centered=True)}.get(name, {})
    for dtype in ("float32", "float64"):
        p = Parameter(backend.xp.ones((3, 2), dtype=backend.dtype(dtype), device=backend.device))
        opt = getattr(optim, name)([p], **kw)
        p.grad = backend.xp.ones((3, 2), dtype=backend.dtype(dtype), device=backend.device)
        opt.step()
        st = opt.state[id(p)]
        arrays = [v for v in st.values() if not isinstance(v, int)]
        assert arrays
        for a in arrays:
            assert backend.owns(a) and a.dtype == p.data.dtype
        assert backend.owns(p.data) and p.data.dtype == backend.dtype(dtype)
        assert all(isinstance(v, int) for k, v in st.items() if k == "step")


def test_state_follows_model_moved_with_to(backend):
    numpy = nn.get_backend("numpy")
    model = nn.Linear(3, 2, backend=numpy)
    opt = optim.Adam(model, lr=0.1)
    for p in model.parameters():
        p.grad = numpy.xp.ones_like(p.data)
    opt.step()
    model.to(backend)
    for p in model.parameters():
        p.grad = backend.xp.ones_like(p.data)
    opt.step()
    for p in model.parameters():
        assert all(backend.owns(v) for v in opt.state[id(p)].values() if not isinstance(v, int))


def _plain(obj):
    """The non-array part of a state dict must be JSON; arrays must be host NumPy."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return "array"
    assert isinstance(obj, (int, float, str, bool)) or obj is None, type(obj)
    return obj


RESUME = [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)), ("Adam", dict(lr=0.01, weight_decay=0.01)),
          ("AdamW", dict(lr=optim.warmup_cosine(0.02, 5, 40))),
          ("RMSprop", dict(momentum=0.5, centered=True)), ("Adagrad", dict(lr_decay=0.01))]


def _resume(backend_a, backend_b, name, kw, k=20, total=40):
    """Train k steps on a, checkpoint, resume on b for the rest -> (params, state_dict at k)."""
    init, target, noise = _problem(steps=total)
    params = _params(backend_a, init)
    opt = getattr(optim, name)(params, **kw)
    for nk in noise[:k]:
        _set_grads(backend_a, params, target, nk)
        opt.step()
    sd = opt.state_dict()
    host = [nn.to_numpy(p.data) for p in params]
    json.dumps(_plain(sd))  # no pickle needed
    params2 = _params(backend_b, host)
    opt2 = getattr(optim, name)(params2, **kw)
    opt2.load_state_dict(sd)
    for nk in noise[k:]:
        _set_grads(backend_b, params2, target, nk)
        opt2.step()
    return params2, opt2, sd


@pytest.mark.parametrize("name,kw", RESUME, ids=[n for n, _ in RESUME])
def test_resume_is_bit_for_bit(backend, name, kw):
    init, target, noise = _problem(steps=40)
    full, opt = _run_ours(backend, name, kw, init, target, noise)
    resumed, opt2, sd = _resume(backend, backend, name, kw)
    for a, b in zip(full, resumed):
        assert np.array_equal(nn.to_numpy(a.data), nn.to_numpy(b.data))
    assert opt2.step_count == opt.step_count == 40
    for key, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            assert np.array_equal(v, opt2.state_dict()["state"][key][k])


@pytest.mark.parametrize("name,kw", RESUME, ids=[n for n, _ in RESUME])
def test_resume_on_another_backend(backend, name, kw):
    """Saved on numpy, resumed on `backend`: the state arrives bit-for-bit; the run
    continues bit-for-bit where the backends' elementwise ops agree bitwise (NumPy-based
    ones, and SGD everywhere), else to float32 rounding (torch's CPU sqrt is not correctly rounded)."""
    numpy = nn.get_backend("numpy")
    init, target, noise = _problem(steps=40)
    full, _ = _run_ours(numpy, name, kw, init, target, noise)
    resumed, opt2, sd = _resume(numpy, backend, name, kw)
    loaded = getattr(optim, name)(_params(backend, init), **kw)
    loaded.load_state_dict(sd)
    for key, st in loaded.state_dict()["state"].items():  # exact round trip through the backend
        for k, v in st.items():
            assert np.array_equal(v, sd["state"][key][k]) if isinstance(v, np.ndarray) else v == sd["state"][key][k]
    exact = backend.name == "array_api_strict" or name == "SGD" or backend.name == "numpy"
    for a, b in zip(full, resumed):
        assert backend.owns(b.data)
        if exact:
            assert np.array_equal(nn.to_numpy(a.data), nn.to_numpy(b.data))
        else:
            np.testing.assert_allclose(nn.to_numpy(b.data), nn.to_numpy(a.data), rtol=1e-5, atol=1e-6)


def test_state_dict_layout():
    b = nn.get_backend("numpy")
    params = _params(b, _problem()[0])
    opt = optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": optim.constant(0.1)}],
                     betas=(0.8, 0.9))
    for p in params:
        p.grad = b.xp.ones_like(p.data)
    opt.step()
    sd = opt.state_dict()
    assert sd["type"] == "Adam" and sd["step_count"] == 1
    assert sd["param_groups"][0] == {"lr": 1e-3, "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0,
                                     "params": [0]}
    assert sd["param_groups"][1]["lr"] == "schedule" and sd["param_groups"][1]["params"] == [1]
    assert set(sd["state"]) == {0, 1} and sd["state"][0]["step"] == 1
    assert isinstance(sd["state"][1]["exp_avg"], np.ndarray)
    # JSON round trip of the plain part (string keys) loads too
    sd2 = json.loads(json.dumps(_plain(sd)))
    for i, st in sd["state"].items():
        sd2["state"][str(i)].update({k: v for k, v in st.items() if isinstance(v, np.ndarray)})
    opt2 = optim.Adam([{"params": [params[0]]}, {"params": [params[1]], "lr": optim.constant(0.1)}])
    opt2.load_state_dict(sd2)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.9) and opt2.step_count == 1


def test_schedule_lr_is_used_per_step():
    b = nn.get_backend("numpy")
    p = Parameter(b.xp.zeros((1,), dtype=b.xp.float64))
    opt = optim.SGD([p], lr=lambda k: 0.1 * (k + 1))
    for _ in range(3):
        p.grad = b.xp.ones((1,), dtype=b.xp.float64)
        opt.step()
    assert math.isclose(float(p.data[0]), -(0.1 + 0.2 + 0.3))
    assert opt.lr_at(opt.param_groups[0]) == pytest.approx(0.4)


def test_zero_grad_and_add_param_group():
    b = nn.get_backend("numpy")
    p, q = _params(b, _problem()[0])
    opt = optim.SGD([p], lr=0.1)
    p.grad = b.xp.ones_like(p.data)
    opt.zero_grad()
    assert p.grad is None
    opt.add_param_group({"params": [q], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0.0
    with pytest.raises(ValueError, match="listed twice"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 2
    assert "SGD(" in repr(opt)
