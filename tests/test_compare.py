"""compare_backends: agreement on a small CNN, and planted bugs named by the layer pass."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.testing import compare_backends
from anyxp_nn.testing.compare import CompareReport

from array_api_compat import array_namespace

CPU = ["numpy", "array_api_strict", "torch"]


def _backends(*names):
    usable = set(nn.available_backends())
    return [n for n in names if n.split(":")[0] in usable]


def _data(shape, n=64, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, classes, n)


# -- planted bugs: test-only layers --------------------------------------------------------

class OffsetOnTorch(nn.Layer):
    """Identity, except that on PyTorch it adds 1e-3: a backend-specific bug."""

    def forward(self, x, train=True):
        self._check_input(x)
        xp = array_namespace(x)
        torch_b = "torch" in nn.available_backends() and nn.get_backend("torch").xp is xp
        y = x + 1e-3 if torch_b else x

        def backprop(dy, need_dx=True):
            return dy if need_dx else None
        return y, backprop


class NoDeviceScale(nn.Layer):
    """Multiplies by a constant array created without ``device=``: breaks off the default device."""

    def forward(self, x, train=True):
        self._check_input(x)
        xp = self.backend.xp
        s = xp.full((x.shape[-1],), 2.0, dtype=x.dtype)  # BUG: no device=
        y = x * s

        def backprop(dy, need_dx=True):
            return dy * s if need_dx else None
        return y, backprop


class Float64Tanh(nn.Layer):
    """tanh computed through a float64 temporary and cast back: right dtype, forbidden precision."""

    def forward(self, x, train=True):
        self._check_input(x)
        xp = self.backend.xp
        y = xp.astype(xp.tanh(xp.astype(x, xp.float64)), x.dtype)  # BUG: float64 temporary

        def backprop(dy, need_dx=True):
            return dy * (1.0 - y * y) if need_dx else None
        return y, backprop


def _mlp(middle=None):
    def build(backend=None, dtype=None):
        kw = dict(backend=backend, dtype=dtype)
        layers = [nn.Linear(6, 8, **kw), nn.ReLU(**kw)]
        if middle is not None:
            layers.append(middle(**kw))
        layers.append(nn.Linear(8, 4, **kw))
        return nn.Sequential(*layers)
    return build


def _cnn(backend=None, dtype=None):
    kw = dict(backend=backend, dtype=dtype)
    return nn.Sequential(
        nn.Conv2D(1, 4, 3, padding=1, **kw), nn.BatchNorm2D(4, **kw), nn.ReLU(**kw),
        nn.MaxPool2D(2, **kw), nn.Dropout(0.2, **kw), nn.Flatten(**kw), nn.Linear(4 * 4 * 4, 4, **kw))


# -- agreement -------------------------------------------------------------------------------

def test_cnn_20_steps_agree_across_backends():
    if not hasattr(nn, "Conv2D"):
        pytest.skip("Conv2D not available yet")
    backends = _backends(*CPU)
    report = compare_backends(_cnn, _data((1, 8, 8)), backends, steps=20, batch_size=16, seed=3)
    assert report.ok, str(report)
    assert report.culprit is None
    assert set(report.losses) == set(backends) and all(len(v) == 20 for v in report.losses.values())
    for b in backends[1:]:   # well inside the tolerance, not just under it
        assert max(report.ratio[b]) < 0.2, str(report)
    # the layer pass ran and checked every leaf on every backend
    assert {r.layer for r in report.layers} >= {"0", "1", "6"}


def test_report_table_and_dict():
    report = compare_backends(_mlp(), _data((6,)), _backends("numpy", "array_api_strict:device1"),
                              steps=3, batch_size=8)
    assert isinstance(report, CompareReport) and report.ok
    text = str(report)
    assert text == report.table() and "loss (ref)" in text and "OK:" in text
    d = report.to_dict()
    import json
    json.dumps(d)
    assert d["ok"] is True and d["reference"] == "numpy" and len(d["losses"]["numpy"]) == 3
    assert set(d["params"]["array_api_strict:device1"][0]) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert d["params"]["array_api_strict:device1"][2]["0.weight"]["abs"] == 0.0


# -- planted bugs ----------------------------------------------------------------------------

def test_catches_backend_specific_offset():
    pytest.importorskip("torch")
    report = compare_backends(_mlp(OffsetOnTorch), _data((6,)), ["numpy", "torch"], steps=3, batch_size=8)
    assert not report.ok
    assert report.culprit is not None
    assert report.culprit.layer == "2" and report.culprit.kind == "OffsetOnTorch"
    assert report.culprit.backend == "torch" and report.culprit.problem == "forward"
    assert "culprit: layer '2' (OffsetOnTorch) on 'torch'" in str(report)


def test_catches_missing_device():
    report = compare_backends(_mlp(NoDeviceScale), _data((6,)), ["numpy", "array_api_strict:device1"],
                              steps=2, batch_size=8)
    assert not report.ok
    assert "array_api_strict:device1" in report.errors
    c = report.culprit
    assert (c.layer, c.kind, c.backend, c.problem) == ("2", "NoDeviceScale", "array_api_strict:device1", "error")
    assert "device" in c.detail.lower()


def test_catches_float64_temporary():
    report = compare_backends(_mlp(Float64Tanh), _data((6,)), _backends("numpy", "array_api_strict"),
                              steps=2, batch_size=8)
    assert not report.errors and not report.diverged   # the values alone look fine ...
    assert not report.ok                                 # ... the audit does not
    c = report.culprit
    assert (c.layer, c.kind, c.problem) == ("2", "Float64Tanh", "float64")
    assert "astype" in c.detail and "test_compare.py" in c.detail


def test_divergence_is_flagged_with_the_step():
    pytest.importorskip("torch")
    report = compare_backends(_mlp(OffsetOnTorch), _data((6,)), ["numpy", "torch"], steps=3, batch_size=8,
                              check_layers=False)
    assert report.diverged == {"torch": 0}
    assert "diverged: torch at step 0" in report.table()


@pytest.mark.parametrize("kw, match", [
    (dict(backends=["numpy"]), "at least 2 backends"),
    (dict(steps=0), "`steps` must be >= 1"),
])
def test_argument_errors(kw, match):
    args = dict(backends=["numpy", "array_api_strict"], steps=1)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        compare_backends(_mlp(), _data((6,)), **args)


def test_data_errors():
    x, y = _data((6,))
    with pytest.raises(ValueError, match="same non-zero length"):
        compare_backends(_mlp(), (x, y[:3]), ["numpy", "array_api_strict"], steps=1)


# -- python -m anyxp_nn check ------------------------------------------------------------------

def test_check_main_runs_and_passes(capsys, tmp_path):
    from anyxp_nn.testing import check
    out_json = tmp_path / "r.json"
    rc = check.main(["--steps", "2", "--batch-size", "16", "--backend", "array_api_strict:device1",
                     "--json", str(out_json)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "model: " in out and "OK: all backends agree" in out and "array_api_strict:device1" in out
    import json
    d = json.loads(out_json.read_text())
    assert d["ok"] and d["backends"] == ["numpy", "array_api_strict:device1"] and len(d["losses"]["numpy"]) == 2


def test_check_reference_model_mlp():
    from anyxp_nn.testing.check import reference_model
    build, augment, desc = reference_model("mlp")
    assert desc.startswith("MLP")
    model = build(backend="numpy", dtype="float32")
    x = nn.get_backend("numpy").asarray(np.zeros((2, 1, 8, 8), dtype=np.float32))
    assert tuple(model(x).shape) == (2, 10)
    with pytest.raises(ValueError, match="`--model` must be auto, cnn or mlp, got 'rnn'"):
        reference_model("rnn")


@pytest.mark.parametrize("argv, match", [
    (["--backend", "numpy"], "besides numpy"),
    (["--backend", "nosuch"], "unknown backend 'nosuch'"),
    (["--steps", "0"], "`--steps` must be >= 1"),
])
def test_check_main_bad_arguments(argv, match, capsys):
    from anyxp_nn.testing import check
    assert check.main(argv) == 2
    assert match in capsys.readouterr().err
