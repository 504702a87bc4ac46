"""safetensors both ways with PyTorch: files saved here load with ``safetensors.torch`` into the torch
twins, files from ``safetensors.torch.save_file`` load here on every backend; loads are all or nothing."""
from __future__ import annotations

import numpy as np
import pytest
from export_deps import need

import anyxp_nn as nn
from anyxp_nn import models
from anyxp_nn.testing import assert_close
from anyxp_nn.testing.torch_models import torch_mnist_cnn, torch_small_resnet

need("safetensors")
need("ml_dtypes")  # bfloat16 for NumPy
torch = need("torch")
st_torch = need("safetensors.torch")

RTOL, ATOL = 1e-5, 2e-5


def _resnet(backend):
    """small_resnet (width 4) with running statistics away from (0, 1)."""
    model = models.small_resnet(width=4, backend=backend, rng=nn.random.Generator(0))
    x = np.random.default_rng(5).standard_normal((4, 1, 28, 28)).astype(np.float32)
    model.forward(model.backend.asarray(x), train=True)
    return model


def _x(n=3):
    return np.random.default_rng(6).standard_normal((n, 1, 28, 28)).astype(np.float32)


def _torch_out(twin, x):
    with torch.no_grad():
        return twin.eval()(torch.from_numpy(x)).numpy()


def test_saved_here_loads_in_pytorch(backend, tmp_path):
    model = _resnet(backend)
    path = nn.export.save_safetensors(model, tmp_path / "m.safetensors")
    state = st_torch.load_file(str(path))
    assert sorted(state) == sorted(model.state_dict())  # PyTorch's key names (the file sorts them)
    assert state["1.num_batches_tracked"].shape == () and state["1.num_batches_tracked"].dtype == torch.int64
    twin = torch_small_resnet(width=4)
    twin.load_state_dict(state, strict=True)
    x = _x()
    assert_close(_torch_out(twin, x), nn.to_numpy(model(model.backend.asarray(x))), rtol=RTOL, atol=ATOL)
    meta = nn.export.read_safetensors_metadata(path)
    assert meta["anyxp_nn.version"] == nn.__version__ and meta["anyxp_nn.model"] == repr(model)
    assert meta["format"] == "pt"


@pytest.mark.parametrize("name", ["mnist_cnn", "small_resnet"])
def test_saved_by_pytorch_loads_here(name, backend, tmp_path):
    torch.manual_seed(0)
    twin = torch_mnist_cnn() if name == "mnist_cnn" else torch_small_resnet(width=4)
    if name == "small_resnet":  # non-trivial running statistics
        twin.train()(torch.randn(4, 1, 28, 28))
    path = tmp_path / "torch.safetensors"
    st_torch.save_file(twin.state_dict(), str(path))
    model = models.mnist_cnn(backend=backend) if name == "mnist_cnn" else models.small_resnet(width=4, backend=backend)
    nn.export.load_safetensors(model, path)
    x = _x()
    assert_close(nn.to_numpy(model(model.backend.asarray(x))), _torch_out(twin, x), rtol=RTOL, atol=ATOL)
    for key, value in twin.state_dict().items():  # buffers too (running statistics, the 0-d counter)
        np.testing.assert_array_equal(model.state_dict()[key], value.numpy(), err_msg=key)


def test_round_trip_here_on_another_backend(tmp_path):
    model = _resnet("numpy")
    path = nn.export.save_safetensors(model, tmp_path / "m.safetensors", metadata={"note": "hi"})
    assert nn.export.read_safetensors_metadata(path)["note"] == "hi"
    other = models.small_resnet(width=4, backend="torch")
    nn.export.load_safetensors(other, path)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(other.state_dict()[k], v, err_msg=k)


def test_float64_file_loads_into_float32_model(tmp_path):
    torch.manual_seed(1)
    twin = torch.nn.Linear(3, 2).double()
    st_torch.save_file(twin.state_dict(), str(tmp_path / "d.safetensors"))
    model = nn.Linear(3, 2, backend="numpy")
    nn.export.load_safetensors(model, tmp_path / "d.safetensors")
    assert model.state_dict()["weight"].dtype == np.float32
    np.testing.assert_allclose(model.state_dict()["weight"], twin.weight.detach().numpy(), rtol=1e-6)


# -- all or nothing, and clear errors ------------------------------------------------------------
def _snapshot(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _unchanged(model, before):
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


@pytest.mark.parametrize("edit, exc, match", [
    (lambda s: s.update({"8.weight": torch.zeros(3, 8)}), ValueError,
     r"'8\.weight' has shape \(3, 8\), expected \(10, 8\)"),
    (lambda s: s.pop("8.bias"), KeyError, r"missing keys \['8\.bias'\]"),
    (lambda s: s.update({"head.weight": torch.zeros(2)}), KeyError, r"unexpected keys \['head\.weight'\]"),
    (lambda s: s.update({"1.weight": torch.full((4,), float("nan"))}), ValueError, r"'1\.weight' holds non-finite"),
])
def test_bad_content_changes_nothing(edit, exc, match, backend, tmp_path):
    state = {k: torch.from_numpy(v) for k, v in _resnet("numpy").state_dict().items()}
    edit(state)
    st_torch.save_file(state, str(tmp_path / "bad.safetensors"))
    model = models.small_resnet(width=4, backend=backend)
    before = _snapshot(model)
    with pytest.raises(exc, match=match):
        nn.export.load_safetensors(model, tmp_path / "bad.safetensors")
    _unchanged(model, before)


def test_strict_false_loads_a_subset(tmp_path):
    state = {k: torch.from_numpy(v) for k, v in _resnet("numpy").state_dict().items() if not k.startswith("8.")}
    st_torch.save_file(state, str(tmp_path / "body.safetensors"))
    model = models.small_resnet(width=4, backend="numpy")
    head = model.state_dict()["8.weight"].copy()
    nn.export.load_safetensors(model, tmp_path / "body.safetensors", strict=False)
    np.testing.assert_array_equal(model.state_dict()["8.weight"], head)
    np.testing.assert_array_equal(model.state_dict()["0.weight"], state["0.weight"].numpy())


@pytest.mark.parametrize("content, match", [
    (b"not a safetensors file at all", r"load_safetensors: cannot read '.*bad\.safetensors' \(SafetensorError"),
    (b"", r"load_safetensors: cannot read"),
])
def test_damaged_file_is_refused(content, match, tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(content)
    model = nn.Linear(3, 2, backend="numpy")
    before = _snapshot(model)
    with pytest.raises(nn.export.SafetensorsFileError, match=match):
        nn.export.load_safetensors(model, tmp_path / "bad.safetensors")
    _unchanged(model, before)


def test_truncated_file_is_refused(tmp_path):
    path = nn.export.save_safetensors(nn.Linear(30, 20, backend="numpy"), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(nn.export.SafetensorsFileError, match=r"cannot read .*m\.safetensors"):
        nn.export.load_safetensors(nn.Linear(30, 20, backend="numpy"), path)
    with pytest.raises(nn.export.SafetensorsFileError, match=r"read_safetensors_metadata: .* is not a readable"):
        nn.export.read_safetensors_metadata(path)


def test_bfloat16_file_loads_exactly(tmp_path):
    torch.manual_seed(2)
    state = {"weight": torch.randn(2, 3, dtype=torch.bfloat16), "bias": torch.randn(2, dtype=torch.bfloat16)}
    st_torch.save_file(state, str(tmp_path / "bf16.safetensors"))
    model = nn.Linear(3, 2, backend="numpy")
    nn.export.load_safetensors(model, tmp_path / "bf16.safetensors")
    for key, value in state.items():
        np.testing.assert_array_equal(model.state_dict()[key], value.float().numpy(), err_msg=key)


def test_float8_file_is_refused_with_the_fix(tmp_path):
    st_torch.save_file({"weight": torch.zeros(2, 3).to(torch.float8_e4m3fn), "bias": torch.zeros(2)},
                       str(tmp_path / "f8.safetensors"))
    model = nn.Linear(3, 2, backend="numpy")
    before = _snapshot(model)
    with pytest.raises(nn.export.SafetensorsFileError, match=r"convert float8 ones with tensor\.float\(\) in PyTorch"):
        nn.export.load_safetensors(model, tmp_path / "f8.safetensors")
    _unchanged(model, before)


def test_missing_file_and_bad_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"load_safetensors: no file at '.*nope\.safetensors'"):
        nn.export.load_safetensors(nn.Linear(3, 2, backend="numpy"), tmp_path / "nope.safetensors")
    with pytest.raises(TypeError, match=r"save_safetensors: `metadata` must map str to str, got 'n': int"):
        nn.export.save_safetensors(nn.Linear(3, 2, backend="numpy"), tmp_path / "m.safetensors", metadata={"n": 1})
    assert not (tmp_path / "m.safetensors").exists()
