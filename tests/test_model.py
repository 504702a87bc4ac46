"""Layer plumbing: state_dict, to(), freeze, accumulation, input errors, SGD, end-to-end training."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.losses import softmax_cross_entropy
from anyxp_nn.testing import assert_close


def mlp(backend, dtype="float32", seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8, backend=backend, dtype=dtype), nn.ReLU(backend=backend, dtype=dtype),
                         nn.Linear(8, 3, backend=backend, dtype=dtype))


def test_state_dict_keys_match_torch(backend):
    torch = pytest.importorskip("torch")
    model = mlp(backend)
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    sd = model.state_dict()
    assert list(sd) == list(tm.state_dict())
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    assert_close(backend.to_numpy(model(backend.asarray(x))), tm(torch.from_numpy(x)).detach().numpy())
    # and back: a torch state_dict (any backend's arrays) loads unchanged
    model2 = mlp(backend, seed=1)
    model2.load_state_dict(tm.state_dict())
    for k, v in model2.state_dict().items():
        np.testing.assert_array_equal(v, sd[k])


def test_load_state_dict_errors_leave_model_unchanged(backend):
    model = mlp(backend)
    before = model.state_dict()
    good = mlp(backend, seed=5).state_dict()
    missing = {k: v for k, v in good.items() if k != "2.bias"}
    with pytest.raises(KeyError, match=r"missing keys \['2.bias'\]"):
        model.load_state_dict(missing)
    extra = dict(good, **{"3.weight": np.zeros((2, 2), np.float32)})
    with pytest.raises(KeyError, match=r"unexpected keys \['3.weight'\]"):
        model.load_state_dict(extra)
    wrong = dict(good, **{"2.weight": np.zeros((3, 9), np.float32)})
    with pytest.raises(ValueError, match=r"'2.weight' has shape \(3, 9\), expected \(3, 8\)"):
        model.load_state_dict(wrong)
    nan = dict(good, **{"0.bias": np.full(8, np.nan, np.float32)})
    with pytest.raises(ValueError, match="'0.bias' holds non-finite values"):
        model.load_state_dict(nan)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    model.load_state_dict(missing, strict=False)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], good["0.weight"])
    np.testing.assert_array_equal(model.state_dict()["2.bias"], before["2.bias"])


def test_to_moves_and_casts(backend):
    model = mlp("numpy")
    x = np.ones((2, 4), np.float32)
    y_ref = model(nn.get_backend("numpy").asarray(x))
    model.to(backend, dtype="float64")
    for p in model.parameters():
        assert backend.owns(p.data) and p.data.dtype == backend.xp.float64
    for _, layer in model.named_layers():
        assert layer.backend == backend
    y = model(backend.asarray(x, dtype="float64"))
    assert_close(backend.to_numpy(y), y_ref.astype(np.float64), rtol=1e-6, atol=1e-6)


def test_gradients_accumulate_and_zero_grad(backend):
    model = mlp(backend)
    x = backend.asarray(np.ones((2, 4)), dtype="float32")
    dy = backend.asarray(np.ones((2, 3)), dtype="float32")
    _, bp = model.forward(x)
    bp(dy)
    g1 = backend.to_numpy(model[0].weight.grad)
    _, bp = model.forward(x)
    bp(dy)
    np.testing.assert_allclose(backend.to_numpy(model[0].weight.grad), 2 * g1, rtol=1e-6)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_freeze_skips_grads_and_updates(backend):
    model = mlp(backend)
    model[0].freeze()
    w0 = model.state_dict()["0.weight"]
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = backend.asarray(np.ones((2, 4)), dtype="float32")
    _, bp = model.forward(x)
    bp(backend.asarray(np.ones((2, 3)), dtype="float32"))
    assert model[0].weight.grad is None and model[2].weight.grad is not None
    opt.step()
    np.testing.assert_array_equal(model.state_dict()["0.weight"], w0)
    model.unfreeze()
    assert all(p.requires_grad for p in model.parameters())


def test_need_dx_false_skips_first_input_grad(backend):
    model = mlp(backend)
    _, bp = model.forward(backend.asarray(np.ones((2, 4)), dtype="float32"))
    assert bp(backend.asarray(np.ones((2, 3)), dtype="float32"), need_dx=False) is None
    assert model[0].weight.grad is not None


def test_input_errors(backend):
    model = mlp(backend)
    with pytest.raises(ValueError, match=r"Linear\(4, 8, bias=True\): expected input of shape \(\.\.\., 4\), got \(2, 5\)"):
        model(backend.asarray(np.ones((2, 5)), dtype="float32"))
    with pytest.raises(TypeError, match=r"dtype float64 \(float64 input\), expected float32"):
        model(backend.asarray(np.ones((2, 4)), dtype="float64"))
    with pytest.raises(TypeError, match=r"dtype int64 \(integer input\), expected float32"):
        model(backend.asarray(np.ones((2, 4), dtype=np.int64)))
    other = nn.get_backend("array_api_strict" if backend.name == "numpy" else "numpy")
    with pytest.raises(ValueError, match=f"input is on backend '{other.label}', expected '{backend.label}'"):
        model(other.asarray(np.ones((2, 4)), dtype="float32"))
    with pytest.raises(ValueError, match="`in_features` must be a positive int, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match="Sequential: argument 1 is a int, expected a Layer"):
        nn.Sequential(nn.ReLU(), 3)


def test_strict_other_device_rejected():
    layer = nn.Linear(2, 2, backend="array_api_strict")
    x = nn.get_backend("array_api_strict:device1").asarray(np.ones((1, 2)), dtype="float32")
    with pytest.raises(ValueError, match="input is on backend 'array_api_strict:device1', expected 'array_api_strict'"):
        layer(x)


@pytest.mark.parametrize("kw", [dict(momentum=0.0), dict(momentum=0.9), dict(momentum=0.9, nesterov=True),
                                dict(momentum=0.5, weight_decay=0.01)])
def test_sgd_matches_torch(backend, kw):
    torch = pytest.importorskip("torch")
    model = mlp(backend, dtype="float64")
    tm = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).double()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    opt = nn.optim.SGD(model.parameters(), lr=0.05, **kw)
    topt = torch.optim.SGD(tm.parameters(), lr=0.05, **kw)
    rng = np.random.default_rng(0)
    for _ in range(30):
        x = rng.standard_normal((6, 4))
        y = rng.integers(0, 3, 6)
        logits, bp = model.forward(backend.asarray(x))
        _, d = softmax_cross_entropy(logits, backend.asarray(y))
        model.zero_grad()
        bp(d)
        opt.step()
        topt.zero_grad()
        torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    for k, v in tm.state_dict().items():
        assert_close(model.state_dict()[k], v.numpy(), rtol=1e-10, atol=1e-12, msg=k)


def test_sgd_errors():
    p = nn.Linear(2, 2).parameters()
    with pytest.raises(ValueError, match="lr must be a non-negative float or a schedule, got -0.1"):
        nn.optim.SGD(p, lr=-0.1)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        nn.optim.SGD(p, lr=0.1, nesterov=True)


def test_mlp_trains_to_same_loss_on_every_backend(backend):
    """End to end: a seeded MLP on a toy problem reaches the same loss everywhere."""
    from anyxp_nn.datasets import make_spirals
    X, y = make_spirals(60, seed=0)

    def train(b):
        nn.manual_seed(0)
        model = nn.Sequential(nn.Linear(2, 32, backend=b), nn.Tanh(backend=b), nn.Linear(32, 3, backend=b))
        opt = nn.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        xb, yb = b.asarray(X), b.asarray(y)
        losses = []
        for _ in range(150):
            logits, bp = model.forward(xb)
            loss, d = softmax_cross_entropy(logits, yb)
            model.zero_grad()
            bp(d, need_dx=False)
            opt.step()
            losses.append(b.item(loss))
        return losses

    ref = train(nn.get_backend("numpy"))
    got = train(backend)
    assert got[-1] < 0.5 * got[0]
    np.testing.assert_allclose(got, ref, rtol=2e-4, atol=2e-5)
