"""Checkpoints: whole training state, atomic, checksummed, validated, portable across backends."""
import os

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.checkpoint import CheckpointError
from anyxp_nn.data import DataLoader
from anyxp_nn.training import History, ModelCheckpoint, fit

CE = nn.losses.softmax_cross_entropy


def blobs(n=192, d=8, c=3):
    rng = np.random.default_rng(0)
    y = np.arange(n) % c
    x = rng.normal(0, 3, (c, d))[y] + rng.normal(0, 1, (n, d))
    return x.astype(np.float32), y.astype(np.int64)


def make(backend="numpy", hidden=16, dtype=None, opt="adam"):
    nn.manual_seed(0)
    kw = dict(backend=backend, dtype=dtype)
    model = nn.Sequential(nn.Linear(8, hidden, **kw), nn.ReLU(**kw), nn.Dropout(0.2, **kw), nn.Linear(hidden, 3, **kw))
    if opt == "adam":
        sched = nn.optim.cosine_annealing(0.02, total_steps=40)
        optimizer = nn.optim.Adam(model.parameters(), lr=sched)
    else:
        optimizer = nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = blobs()
    return model, optimizer, DataLoader(x, y, batch_size=32, backend=backend, rng=nn.random.Generator(1))


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_round_trip_restores_everything(tmp_path):
    model, opt, ld = make()
    h = fit(model, opt, CE, ld, epochs=1, progress=False)
    p = nn.save(tmp_path / "ck.npz", model, opt, epoch=1, step=6, history=h, loader=ld, note="hello")
    rng_state = nn.random.default_generator.get_state()
    model2, opt2, ld2 = make()
    nn.manual_seed(123)
    info = nn.load(p, model2, opt2, loader=ld2, restore_rng=True)
    _same_state(model.state_dict(), model2.state_dict())
    assert opt2.step_count == opt.step_count == 6
    o1, o2 = opt.state_dict(), opt2.state_dict()
    for i in o1["state"]:
        for k, v in o1["state"][i].items():
            np.testing.assert_array_equal(v, o2["state"][i][k])
    assert nn.random.default_generator.get_state() == rng_state
    assert ld2.rng.get_state() == ld.rng.get_state() and ld2.epoch == 1
    assert info["epoch"] == 1 and info["step"] == 6 and info["note"] == "hello"
    assert History.from_dict(info["history"]).epochs == h.epochs and info["backend"] == "numpy"
    with np.load(p, allow_pickle=False) as f:  # no pickled objects anywhere
        assert all(f[n].dtype != object for n in f.files)


@pytest.mark.parametrize("target", ["numpy", "array_api_strict", "torch"])
def test_resume_on_another_backend_continues_the_trajectory(tmp_path, target):
    if target == "torch":
        pytest.importorskip("torch")
    model, opt, ld = make("numpy")
    ref = fit(model, opt, CE, ld, epochs=3, progress=False,
              callbacks=[ModelCheckpoint(tmp_path / "ck{epoch}.npz")])
    model2, opt2, ld2 = make(target)  # fresh weights, generators elsewhere: load must restore all
    nn.manual_seed(99)
    h = fit(model2, opt2, CE, ld2, epochs=3, progress=False, resume=str(tmp_path / "ck1.npz"))
    assert h.num_epochs == 3 and h["epoch"] == [1, 2, 3]
    assert h.steps["step"] == ref.steps["step"]
    tol = dict(rtol=1e-6, atol=0) if target != "torch" else dict(rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(h.steps["loss"], ref.steps["loss"], **tol)
    np.testing.assert_allclose(h.steps["lr"], ref.steps["lr"], rtol=1e-12)


# -- bad input: clear messages, nothing changed ------------------------------------------
def test_checkpoint_from_another_model(tmp_path):
    model, opt, _ = make(hidden=16)
    p = nn.save(tmp_path / "ck.npz", model, opt)
    other, opt2, _ = make(hidden=32)
    before = other.state_dict()
    with pytest.raises(CheckpointError, match=r"does not match the model .*'0.weight' has shape \(16, 8\) in the "
                                              r"file, \(32, 8\) in the model; '0.bias' has shape"):
        nn.load(p, other, opt2)
    _same_state(before, other.state_dict())
    assert opt2.step_count == 0 and not opt2.state
    small = nn.Sequential(nn.Linear(8, 16))
    with pytest.raises(CheckpointError, match=r"unexpected keys \['3.weight', '3.bias'\]"):
        nn.load(p, small)
    model64, _, _ = make(dtype="float64")
    with pytest.raises(CheckpointError, match="'0.weight' has dtype float32 in the file, float64 in the model"):
        nn.load(p, model64)


def test_optimizer_mismatch_changes_nothing(tmp_path):
    model, opt, ld = make(opt="sgd")
    fit(model, opt, CE, ld, epochs=1, progress=False)
    p = nn.save(tmp_path / "ck.npz", model, opt)
    model2, adam, _ = make(opt="adam")
    before = model2.state_dict()
    with pytest.raises(CheckpointError, match="holds a SGD optimizer state, expected Adam"):
        nn.load(p, model2, adam)
    _same_state(before, model2.state_dict())
    p2 = nn.save(tmp_path / "model_only.npz", model)
    with pytest.raises(CheckpointError, match=r"holds no optimizer state \(saved with optimizer=None\)"):
        nn.load(p2, model2, adam)
    with pytest.raises(CheckpointError, match="holds no data loader state"):
        nn.load(p2, model2, loader=ld)
    _same_state(before, model2.state_dict())


def test_truncated_file(tmp_path):
    model, opt, _ = make()
    p = nn.save(tmp_path / "ck.npz", model, opt)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    model2, opt2, _ = make(hidden=16)
    before = model2.state_dict()
    with pytest.raises(CheckpointError, match="is truncated or corrupted and cannot be read"):
        nn.load(p, model2, opt2)
    _same_state(before, model2.state_dict())


def test_tampered_file(tmp_path):
    model, opt, _ = make()
    p = nn.save(tmp_path / "ck.npz", model, opt)
    with np.load(p, allow_pickle=False) as f:
        entries = {n: f[n] for n in f.files}
    entries["a0"] = entries["a0"] + 1.0  # rewritten consistently: the zip CRCs are fine
    np.savez(p, **entries)
    model2, _, _ = make()
    before = model2.state_dict()
    with pytest.raises(CheckpointError, match="checksum mismatch .* modified or damaged"):
        nn.load(p, model2)
    _same_state(before, model2.state_dict())
    raw = bytearray(nn.save(tmp_path / "ck2.npz", model, opt).read_bytes())
    raw[len(raw) // 3] ^= 0xFF  # a flipped byte inside the archive
    (tmp_path / "ck2.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="truncated or corrupted|checksum mismatch|not an anyxp_nn"):
        nn.load(tmp_path / "ck2.npz", model2)


def test_not_a_checkpoint_and_missing_file(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="is not an anyxp_nn checkpoint"):
        nn.load(tmp_path / "plain.npz", make()[0])
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        nn.load(tmp_path / "nope.npz", make()[0])


def test_save_refuses_non_json_extras(tmp_path):
    model, _, _ = make()
    with pytest.raises(TypeError, match="extra.note is a set, which a checkpoint cannot store"):
        nn.save(tmp_path / "ck.npz", model, note={1, 2})
    assert not list(tmp_path.iterdir())


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model, opt, _ = make()
    p = nn.save(tmp_path / "ck.npz", model, opt, epoch=1)
    good = p.read_bytes()

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        nn.save(p, model, opt, epoch=2)
    assert p.read_bytes() == good and os.listdir(tmp_path) == ["ck.npz"]
    monkeypatch.undo()
    assert nn.load(p, make()[0])["epoch"] == 1


def test_batchnorm_model_round_trips(tmp_path):
    """0-d buffers (BatchNorm's num_batches_tracked) keep their shape through save/load."""
    from anyxp_nn.models import small_resnet
    m = small_resnet(3, backend="numpy", width=4, rng=nn.random.Generator(0))
    path = nn.save(tmp_path / "bn.npz", m)
    other = small_resnet(3, backend="numpy", width=4, rng=nn.random.Generator(1))
    nn.load(path, other)
    assert other.state_dict()["1.num_batches_tracked"].shape == ()
    np.testing.assert_array_equal(other.state_dict()["0.weight"], m.state_dict()["0.weight"])
