"""``anyxp-nn export CHECKPOINT --format onnx|safetensors --out PATH``: the model rebuilt from the
checkpoint's recorded builder, exported, and the file checked in ONNX Runtime / safetensors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_deps import need

import anyxp_nn as nn
from anyxp_nn import models
from anyxp_nn.cli import main

ort = need("onnxruntime")
need("onnx")
st_numpy = need("safetensors.numpy")

ROOT = Path(__file__).resolve().parent.parent


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("anyxp-nn: error: "), err  # one line, no traceback
    return err[0]


@pytest.fixture
def checkpoint(tmp_path):
    model = models.mlp(12, hidden=(8,), num_classes=3, backend="numpy", rng=nn.random.Generator(0))
    record = nn.export.builder_record("mlp", input_shape=(1, 12), in_features=12, hidden=[8], num_classes=3)
    path = nn.save(tmp_path / "mlp.npz", model, builder=record)
    return path, model


def test_export_onnx_end_to_end(checkpoint, tmp_path):
    """A separate process, as a user runs it; the ONNX file runs any batch size in ONNX Runtime."""
    ckpt, model = checkpoint
    out = tmp_path / "mlp.onnx"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "anyxp_nn", "export", str(ckpt), "--format", "onnx", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote {out} (onnx; anyxp_nn.models.mlp" in proc.stdout
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((3, 12)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], nn.to_numpy(model(model.backend.asarray(x))),
                               rtol=1e-5, atol=2e-5)


def test_train_then_export(tmp_path, capsys):
    """`train --checkpoint` records the builder, so `export` rebuilds the model (a ResNet with BatchNorm)."""
    ckpt, out = tmp_path / "rn.npz", tmp_path / "rn.onnx"
    assert main(["train", "--model", "resnet", "--dataset", "digits", "--epochs", "1", "--batch-size", "256",
                 "--checkpoint", str(ckpt), "--out", str(tmp_path / "train"), "--no-progress"]) == 0
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out)]) == 0
    model, record = nn.export.model_from_checkpoint(ckpt)
    assert record == {"name": "small_resnet", "kwargs": {"in_channels": 1, "num_classes": 10},
                      "input_shape": [1, 1, 8, 8]}
    assert not np.allclose(model.state_dict()["1.running_mean"], 0.0)  # trained statistics came back
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).random((4, 1, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {"input": x})[0], nn.to_numpy(model(model.backend.asarray(x))),
                               rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("backend_name", ["numpy", "torch"])
def test_export_safetensors(backend_name, checkpoint, tmp_path, capsys):
    if backend_name not in nn.available_backends():
        pytest.skip(f"backend {backend_name!r} is not installed")
    ckpt, model = checkpoint
    out = tmp_path / "mlp.safetensors"
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(out), "--backend", backend_name]) == 0
    assert "wrote" in capsys.readouterr().out
    state = st_numpy.load_file(str(out))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key], value, err_msg=key)


def test_export_onnx_with_input_shape_and_opset(checkpoint, tmp_path, capsys):
    ckpt, _ = checkpoint
    out = tmp_path / "mlp.onnx"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(out), "--input-shape", "2,12",
                 "--opset", "18"]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 12]


def test_export_errors(checkpoint, tmp_path, capsys):
    """Usage errors exit 2, a checkpoint that cannot be exported is a runtime error (exit 1); one line each."""
    ckpt, model = checkpoint
    assert main(["export", str(tmp_path / "nope.npz"), "--format", "onnx", "--out", "x.onnx"]) == 2
    assert _err(capsys) == f"anyxp-nn: error: CHECKPOINT: no file at {str(tmp_path / 'nope.npz')!r}"
    assert main(["export", str(ckpt), "--format", "tflite", "--out", "x"]) == 2
    assert "invalid choice: 'tflite'" in _err(capsys)
    assert main(["export", str(ckpt), "--format", "onnx", "--out", "x.onnx", "--input-shape", "1,a"]) == 2
    assert "--input-shape must be comma-separated ints" in _err(capsys)
    bare = nn.save(tmp_path / "bare.npz", model)
    assert main(["export", str(bare), "--format", "onnx", "--out", str(tmp_path / "b.onnx")]) == 1
    assert "records no model builder, so the model cannot be rebuilt" in _err(capsys)
    odd = nn.save(tmp_path / "odd.npz", model, builder={"name": "os.system", "kwargs": {}})
    assert main(["export", str(odd), "--format", "safetensors", "--out", str(tmp_path / "o.st")]) == 1
    assert "the recorded builder {'name': 'os.system', 'kwargs': {}} is not one of anyxp_nn.models' builders" \
        in _err(capsys)
    wrong = nn.save(tmp_path / "wrong.npz", model, builder=nn.export.builder_record("mlp", in_features=5))
    assert main(["export", str(wrong), "--format", "safetensors", "--out", str(tmp_path / "w.st")]) == 1
    assert "does not match the model" in _err(capsys)
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob("*.st"))


def test_builder_record_errors():
    with pytest.raises(ValueError, match=r"builder_record: `name` must be one of anyxp_nn.models' builders .*"
                                         r"got 'resnet50'"):
        nn.export.builder_record("resnet50")


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["export", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--format {onnx,safetensors}" in out and "--input-shape" in out
