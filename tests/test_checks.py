"""The shared argument checks (anyxp_nn._checks) and the one tolerance table of anyxp_nn.testing."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn import datasets
from anyxp_nn._checks import dtype_name, non_negative_int, pair, positive_int
from anyxp_nn.testing import TOLERANCES, default_tolerance, layer_tolerance, tolerance, training_tolerance


def test_positive_int_names_owner_and_argument():
    assert positive_int(3, "stride", "Conv2D") == 3
    for bad in (0, -1, 2.0, True, "3", None):
        with pytest.raises(ValueError, match=rf"^Conv2D: `stride` must be a positive int, got {bad!r}$"):
            positive_int(bad, "stride", "Conv2D")
    assert positive_int(np.int64(2), "n", "X", types=(int, np.integer)) == 2
    with pytest.raises(ValueError, match="X: `n` must be a positive int"):
        positive_int(np.int64(2), "n", "X")


def test_non_negative_int():
    assert non_negative_int(0, "epochs", "fit") == 0
    with pytest.raises(ValueError, match=r"^fit: `epochs` must be a non-negative int, got -1$"):
        non_negative_int(-1, "epochs", "fit")
    with pytest.raises(ValueError, match="must be a non-negative int, got False"):
        non_negative_int(False, "epochs", "fit")


def test_pair():
    assert pair(3, "kernel_size", "MaxPool2D") == (3, 3)
    assert pair([2, 1], "stride", "MaxPool2D") == (2, 1)
    assert pair(0, "padding", "MaxPool2D", minimum=0) == (0, 0)
    for bad in ((1, 2, 3), (1, 0), 0, "2", (True, 1)):
        with pytest.raises(ValueError, match=r"MaxPool2D: `stride` must be an int >= 1 or a pair of them"):
            pair(bad, "stride", "MaxPool2D")


@pytest.mark.parametrize("name", ["float32", "float64", "int64"])
def test_dtype_name_of_every_kind_of_dtype(backend, name):
    assert dtype_name(backend.dtype(name)) == name
    assert dtype_name(np.dtype(name)) == name and dtype_name(getattr(np, name)) == name


def test_errors_name_their_owner():
    with pytest.raises(ValueError, match=r"^EarlyStopping: `mode` must be 'min', 'max' or 'auto', got 'up'$"):
        nn.training.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match=r"^ModelCheckpoint: `mode` must be"):
        nn.training.ModelCheckpoint("ck.npz", mode="up")
    with pytest.raises(ValueError, match=r"^train_test_split: `test_fraction` must be in \(0, 1\), got 1.5$"):
        datasets.train_test_split(np.zeros((4, 2)), np.zeros(4), test_fraction=1.5)
    with pytest.raises(ValueError, match=r"^init.fans: fan-in/fan-out need a shape with at least 2 dimensions"):
        nn.init.fans((3,))
    with pytest.raises(ValueError, match=r"^metrics: unknown metric 'f1'"):
        nn.training.metrics.get_metrics(("f1",))
    with pytest.raises(ValueError, match=r"^gradcheck: needs at least one input$"):
        nn.testing.gradcheck(nn.ReLU())
    with pytest.raises(TypeError, match=r"^evaluate: `data` must be an \(x, y\) pair of host arrays or a DataLoader"):
        nn.training.evaluate(nn.Linear(2, 2), "data", nn.losses.softmax_cross_entropy)


def test_one_tolerance_table():
    assert default_tolerance("float32") == TOLERANCES["default"]["float32"] == (1.3e-6, 1e-5)
    assert default_tolerance("int64") == (0.0, 0.0)
    assert layer_tolerance(np.float64) == TOLERANCES["layer"]["float64"]
    assert training_tolerance("bfloat16") == TOLERANCES["training"]["float32"]
    assert tolerance("torch", "float64") == (1e-7, 1e-9)
    with pytest.raises(ValueError, match=r"^tolerance: unknown comparison 'nope'; known: \["):
        tolerance("nope", "float32")


class _ForgetsItsGradient(nn.Layer):
    """Scales by a learned weight but never accumulates its gradient."""

    def __init__(self, *, backend=None, dtype=None):
        super().__init__(backend=backend, dtype=dtype)
        self.weight = nn.Parameter(self.backend.asarray(np.ones(3), dtype=self.dtype))

    def forward(self, x, train=None):
        self._check_input(x)
        w = self.weight.data
        return x * w, lambda dY, need_dx=True: dY * w if need_dx else None


def test_the_layer_engine_flags_a_missing_gradient(backend):
    from anyxp_nn.testing import LayerCase, check_layer
    from anyxp_nn.testing.layer_run import dtype_device_problems, run_layer
    layer = _ForgetsItsGradient(backend=backend)
    run = run_layer(layer, backend, backend.asarray(np.ones((2, 3)), dtype=layer.dtype))
    assert dtype_device_problems(run, backend, layer) == [("dtype", "parameter 'weight' got no gradient")]
    layer.freeze()  # a frozen parameter gets none, as it should
    assert dtype_device_problems(run_layer(layer, backend, backend.asarray(np.ones((2, 3)), dtype=layer.dtype)),
                                 backend, layer) == []
    with pytest.raises(AssertionError, match=r"^Forgets: parameter 'weight' got no gradient \(on "):
        check_layer(LayerCase("Forgets", lambda **kw: _ForgetsItsGradient(**kw), (2, 3)), backend,
                    checks=("dtype_device",))
