"""Train/eval modes and parameter-free layers that follow their input, on every backend."""
import numpy as np
import pytest

import anyxp_nn as nn

FOLLOWERS = [
    ("ReLU", lambda: nn.ReLU(), (2, 3, 4, 4)),
    ("LeakyReLU", lambda: nn.LeakyReLU(0.2), (2, 3)),
    ("Sigmoid", lambda: nn.Sigmoid(), (2, 3)),
    ("Tanh", lambda: nn.Tanh(), (2, 3)),
    ("GELU", lambda: nn.GELU(), (2, 3)),
    ("Softmax", lambda: nn.Softmax(), (2, 3)),
    ("Identity", lambda: nn.Identity(), (2, 3)),
    ("Dropout", lambda: nn.Dropout(0.5), (2, 3)),
    ("MaxPool2D", lambda: nn.MaxPool2D(2), (2, 3, 4, 4)),
    ("AvgPool2D", lambda: nn.AvgPool2D(2), (2, 3, 4, 4)),
    ("GlobalAvgPool2D", lambda: nn.GlobalAvgPool2D(), (2, 3, 4, 4)),
    ("GlobalMaxPool2D", lambda: nn.GlobalMaxPool2D(), (2, 3, 4, 4)),
    ("Flatten", lambda: nn.Flatten(), (2, 3, 4, 4)),
    ("Upsample2D", lambda: nn.Upsample2D(2), (2, 3, 2, 2)),
    ("Sequential", lambda: nn.Sequential(nn.ReLU(), nn.MaxPool2D(2), nn.Flatten()), (2, 3, 4, 4)),
    ("Concatenate", lambda: nn.Concatenate(nn.Identity(), nn.ReLU(), axis=1), (2, 3, 4, 4)),
    ("Residual", lambda: nn.Residual(nn.Sequential(nn.ReLU(), nn.Dropout(0.2))), (2, 3)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name,build,shape", FOLLOWERS, ids=[f[0] for f in FOLLOWERS])
def test_parameter_free_layer_follows_its_input(name, build, shape, dtype, backend):
    layer = build()  # built on the default backend (numpy) in float32
    assert layer.backend.name == "numpy"
    x = backend.asarray(np.random.default_rng(0).standard_normal(shape), dtype=dtype)
    y, backprop = layer.forward(x)
    dx = backprop(backend.asarray(np.ones(tuple(y.shape)), dtype=dtype))
    for what, a in (("output", y), ("dx", dx), ("inference", layer(x))):
        assert backend.owns(a), f"{name}: {what} left {backend.label}"
        assert a.dtype == backend.dtype(dtype), f"{name}: {what} has dtype {a.dtype}, expected {dtype}"
    assert tuple(dx.shape) == shape


def test_parameter_free_layer_still_refuses_integer_input(backend):
    x = backend.asarray(np.ones((2, 3), dtype=np.int64))
    with pytest.raises(TypeError, match=r"ReLU\(\): input has dtype int64 \(integer input\), expected a floating dtype"):
        nn.ReLU()(x)
    with pytest.raises(TypeError, match=r"Flatten\(\): input must be an array of a backend's namespace, got list"):
        nn.Flatten()([[1.0, 2.0]])


def test_models_with_default_activations_just_work(backend):
    """The issue's two examples: a torch-built model, and a float64 model, with default activations."""
    model = nn.Sequential(nn.Linear(5, 8, backend=backend), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(8, 2, backend=backend))
    assert model.backend == backend
    x = backend.asarray(np.ones((3, 5)), dtype="float32")
    y, backprop = model.forward(x)
    backprop(backend.asarray(np.ones((3, 2)), dtype="float32"))
    assert backend.owns(model(x)) and model[0].weight.grad is not None
    f64 = nn.Sequential(nn.Linear(5, 8, dtype="float64", backend=backend), nn.GELU(),
                        nn.Linear(8, 2, dtype="float64", backend=backend))
    assert f64(backend.asarray(np.ones((3, 5)), dtype="float64")).dtype == backend.xp.float64


def test_layers_with_parameters_keep_their_mixed_backend_errors(backend):
    other = nn.get_backend("array_api_strict" if backend.name == "numpy" else "numpy")
    model = nn.Sequential(nn.ReLU(), nn.Linear(3, 2, backend=backend))
    assert model.backend == backend  # the container takes the backend of the child with parameters
    with pytest.raises(ValueError, match=rf"Linear\(3, 2, bias=True\): input is on backend '{other.label}', "
                                         rf"expected '{backend.label}'"):
        model(other.asarray(np.ones((1, 3)), dtype="float32"))
    with pytest.raises(TypeError, match=r"Linear\(3, 2, bias=True\): input has dtype float64"):
        model(backend.asarray(np.ones((1, 3)), dtype="float64"))


def test_residual_takes_the_backend_of_its_children_with_parameters(backend):
    res = nn.Residual(nn.ReLU(), nn.Linear(3, 3, backend=backend))
    assert res.backend == backend
    assert nn.Residual(nn.Sequential(nn.Linear(3, 3, backend=backend), nn.ReLU())).backend == backend


# -- modes ---------------------------------------------------------------------------
def _net(backend):
    return nn.Sequential(nn.Linear(4, 6, backend=backend), nn.BatchNorm1D(6, backend=backend), nn.ReLU(),
                         nn.Residual(nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 6, backend=backend))),
                         nn.Linear(6, 2, backend=backend))


def test_train_and_eval_are_recursive_and_return_self(backend):
    model = _net(backend)
    assert all(layer.training for _, layer in model.named_layers())
    assert model.eval() is model
    assert not any(layer.training for _, layer in model.named_layers())
    assert model.train() is model and all(layer.training for _, layer in model.named_layers())
    model[3].train(False)
    assert model.training and not model[3].block[0].training and model[1].training
    with pytest.raises(TypeError, match=r"Sequential.train: `mode` must be a bool, got 'eval'"):
        model.train("eval")


def test_dropout_uses_its_own_mode_unless_forced(backend):
    drop = nn.Dropout(0.5)
    x = backend.asarray(np.ones((8, 16)), dtype="float32")
    y, _ = drop.forward(x)  # training by default
    assert float(backend.to_numpy(y).min()) == 0.0
    drop.eval()
    y, _ = drop.forward(x)
    np.testing.assert_array_equal(backend.to_numpy(y), np.ones((8, 16)))
    y, _ = drop.forward(x, train=True)  # forced
    assert float(backend.to_numpy(y).min()) == 0.0
    drop.train()
    np.testing.assert_array_equal(backend.to_numpy(drop(x)), np.ones((8, 16)))  # __call__ is inference


def test_forward_train_flag_forces_the_subtree(backend):
    model = _net(backend).eval()
    x = backend.asarray(np.random.default_rng(0).standard_normal((5, 4)), dtype="float32")
    bn = model[1]
    before = backend.to_numpy(bn.running_mean)
    model.forward(x)  # every layer in eval: statistics unchanged
    np.testing.assert_array_equal(backend.to_numpy(bn.running_mean), before)
    model.forward(x, train=True)  # forced: they move
    assert not np.array_equal(backend.to_numpy(bn.running_mean), before)
    assert int(backend.to_numpy(bn.num_batches_tracked)) == 1
    assert not bn.training  # forcing never changes the flags


def test_frozen_batchnorm_in_eval_keeps_its_statistics_while_the_rest_trains(backend):
    """The transfer-learning recipe: freeze + eval() a BatchNorm trunk, fine-tune the head."""
    nn.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(4, 6, backend=backend), nn.BatchNorm1D(6, backend=backend), nn.ReLU())
    head = nn.Sequential(nn.Dropout(0.5), nn.Linear(6, 3, backend=backend))
    model = nn.Sequential(trunk, head)
    trunk.freeze().eval()
    state = trunk.state_dict()
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(1)
    head_before = head.state_dict()["1.weight"]
    for _ in range(3):
        x = backend.asarray(rng.standard_normal((8, 4)), dtype="float32")
        labels = backend.asarray(rng.integers(0, 3, 8))
        logits, backprop = model.forward(x)
        _, dlogits = nn.losses.softmax_cross_entropy(logits, labels)
        opt.zero_grad()
        backprop(dlogits)
        opt.step()
    for k, v in trunk.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=f"trunk {k} changed")
    assert not np.array_equal(head.state_dict()["1.weight"], head_before)
    assert head[0].training and not trunk[1].training


def test_batchnorm_eval_matches_torch_eval(backend):
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm2D(3, backend=backend, dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    bn.forward(backend.asarray(x))  # one training step moves the statistics
    tbn = torch.nn.BatchNorm2d(3).double()
    tbn.load_state_dict({k: torch.from_numpy(v) for k, v in bn.state_dict().items()})
    bn.eval()
    tbn.eval()
    y, _ = bn.forward(backend.asarray(x + 1.0))
    np.testing.assert_allclose(backend.to_numpy(y), tbn(torch.from_numpy(x + 1.0)).detach().numpy(), rtol=1e-12)
