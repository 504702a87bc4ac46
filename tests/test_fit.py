"""fit, History, metrics and callbacks."""
import contextlib
import csv
import json
import math

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.backend import transfer_hooks
from anyxp_nn.data import DataLoader
from anyxp_nn.training import (Callback, CSVLogger, EarlyStopping, History, JSONLogger, LRSchedule,
                               ModelCheckpoint, NonFiniteGuard, NonFiniteLossError, evaluate, fit, metrics)

CE = nn.losses.softmax_cross_entropy


def blobs(n=240, d=8, c=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (c, d))
    y = np.arange(n) % c
    x = centers[y] + rng.normal(0, 1, (n, d))
    return x.astype(np.float32), y.astype(np.int64)


def mlp(backend="numpy", d=8, c=3, seed=0):
    nn.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 16, backend=backend), nn.ReLU(backend=backend),
                         nn.Linear(16, c, backend=backend))


def setup(backend="numpy", lr=0.1, batch_size=32, **kw):
    x, y = blobs()
    model = mlp(backend)
    opt = nn.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, opt, DataLoader(x, y, batch_size=batch_size, backend=backend, rng=1, **kw), (x, y)


def test_fit_learns_on_every_backend(backend):
    model, opt, ld, (x, y) = setup(backend)
    h = fit(model, opt, CE, ld, val_data=(x, y), epochs=3, progress=False)
    assert h.num_epochs == 3 and h.num_steps == 3 * 8
    assert h["loss"][-1] < h["loss"][0] and h.last("val_accuracy") > 0.9
    assert set(h.steps) >= {"step", "epoch", "loss", "lr", "accuracy"}
    assert h.steps["step"] == list(range(1, 25))


def test_fit_matches_a_hand_written_loop():
    model, opt, ld, _ = setup()
    h = fit(model, opt, CE, ld, epochs=2, progress=False)
    model2, opt2, ld2, _ = setup()
    losses = []
    for _ in range(2):
        for xb, yb in ld2:
            opt2.zero_grad()
            logits, bp = model2.forward(xb)
            loss, d = CE(logits, yb)
            bp(d)
            opt2.step()
            losses.append(float(loss))
    np.testing.assert_allclose(h.steps["loss"], losses, rtol=1e-6)


@pytest.mark.parametrize("log_every", [1, 3, 100])
def test_loss_read_once_per_log_interval(log_every):
    model, opt, ld, (x, y) = setup()  # numpy: dataset on device, no per-batch transfers
    events = []
    transfer_hooks.append(lambda kind, b, n: events.append(kind))
    try:
        fit(model, opt, CE, ld, val_data=DataLoader(x, y, shuffle=False), epochs=2, progress=False,
            log_every=log_every)
    finally:
        transfer_hooks.pop()
    steps = len(ld)
    reads = 2 * (math.ceil(steps / log_every) + 1)  # log points per epoch + one validation read
    assert events.count("to_host") == reads and events.count("item") == 0


def test_progress_bar_runs(capsys):
    model, opt, ld, _ = setup()
    fit(model, opt, CE, ld, epochs=1, progress=True, metrics=("accuracy", "top2_accuracy"))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "samples/s" in err and "loss=" in err


def test_history_round_trip_and_plot(tmp_path):
    model, opt, ld, (x, y) = setup()
    h = fit(model, opt, CE, ld, val_data=(x, y), epochs=2, progress=False,
            metrics=("accuracy", "top2_accuracy", "confusion_matrix"))
    cm = np.array(h.last("val_confusion_matrix"))
    assert cm.shape == (3, 3) and cm.sum() == len(y)
    h2 = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert h2.epochs == h.epochs and h2.steps == h.steps
    h.plot(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 1000
    with pytest.raises(KeyError, match="History: no 'nope' was logged"):
        h["nope"]


def test_metrics_against_numpy(backend):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 50)
    L, Y = backend.asarray(logits), backend.asarray(labels)
    assert metrics.accuracy(L, Y) == pytest.approx(np.mean(logits.argmax(1) == labels))
    top3 = np.argsort(-logits, axis=1)[:, :3]
    assert metrics.top_k_accuracy(L, Y, k=3) == pytest.approx(np.mean((top3 == labels[:, None]).any(1)))
    cm = np.zeros((6, 6), np.int64)
    for t, q in zip(labels, logits.argmax(1)):
        cm[t, q] += 1
    np.testing.assert_array_equal(metrics.confusion_matrix(L, Y), cm)


def test_metric_errors():
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get_metrics(["f1"])
    with pytest.raises(ValueError, match="`k` must be a positive int, got 0"):
        metrics.TopKAccuracy(0)
    L = nn.get_backend("numpy").asarray(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"accuracy: expected outputs \(N, C\) and targets \(N,\), got outputs of "
                                         r"shape \(4, 3\) and targets of shape \(3,\)"):
        metrics.accuracy(L, np.zeros(3, np.int64))


def test_evaluate():
    model, opt, ld, (x, y) = setup()
    out = evaluate(model, (x, y), CE, ("accuracy", "confusion_matrix"))
    assert set(out) == {"loss", "accuracy", "confusion_matrix"} and out["loss"] > 0


def test_early_stopping_restores_best():
    model, opt, ld, (x, y) = setup()
    seen = []

    class Worse(Callback):  # make validation loss look worse after epoch 1
        def on_epoch_end(self, state):
            state.logs["val_loss"] = float(state.epoch)
            seen.append(model.state_dict())

    h = fit(model, opt, CE, ld, val_data=(x, y), epochs=10, progress=False,
            callbacks=[Worse(), EarlyStopping(patience=2)])
    assert h.num_epochs == 3 and h.stop_reason == "early_stopping"
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, seen[0][k])
    with pytest.raises(KeyError, match="monitored value 'val_loss' is not logged"):
        fit(model, opt, CE, ld, epochs=1, progress=False, callbacks=[EarlyStopping()])


def test_lr_schedule_per_epoch():
    model, opt, ld, _ = setup()
    h = fit(model, opt, CE, ld, epochs=3, progress=False, callbacks=[LRSchedule(lambda e: 0.1 * 0.5 ** e)])
    assert h["lr"] == [0.1, 0.05, 0.025]
    assert set(h.steps["lr"]) == {0.1, 0.05, 0.025}
    opt2 = nn.optim.SGD(model.parameters(), lr=lambda k: 0.1)
    with pytest.raises(ValueError, match="the optimizer's lr is already a schedule"):
        fit(model, opt2, CE, ld, epochs=1, progress=False, callbacks=[LRSchedule(lambda e: 0.1)])


def test_loggers(tmp_path):
    model, opt, ld, (x, y) = setup()
    fit(model, opt, CE, ld, val_data=(x, y), epochs=2, progress=False,
        callbacks=[CSVLogger(tmp_path / "log.csv"), JSONLogger(tmp_path / "log.json")])
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"] and "val_accuracy" in rows[0]
    data = json.loads((tmp_path / "log.json").read_text())
    assert data["epochs"]["epoch"] == [1, 2] and len(data["steps"]["loss"]) == 16


@pytest.mark.filterwarnings("ignore:overflow", "ignore:invalid value")
def test_non_finite_guard_stops_keeps_and_restores_checkpoint(tmp_path):
    model, opt, ld, _ = setup()
    ck = tmp_path / "ck.npz"

    class Explode(Callback):  # after epoch 1 the learning rate blows up
        def on_epoch_end(self, state):
            opt.param_groups[0]["lr"] = 1e30

    with pytest.warns(RuntimeWarning, match=r"NonFiniteGuard: training loss became (nan|inf) at epoch 2 .* "
                                            r"last good checkpoint .* kept and restored"):
        h = fit(model, opt, CE, ld, epochs=5, progress=False, log_every=1,
                callbacks=[ModelCheckpoint(ck), Explode(), NonFiniteGuard()])
    assert h.stop_reason == "non_finite_loss" and h.num_epochs == 1
    saved = ck.read_bytes()
    assert nn.load(ck, mlp(), None)["epoch"] == 1 and ck.read_bytes() == saved
    for v in model.state_dict().values():
        assert np.isfinite(v).all()  # restored from the last good checkpoint


@pytest.mark.filterwarnings("ignore:overflow", "ignore:invalid value")
def test_non_finite_guard_raise_mode():
    model, _, ld, _ = setup()
    opt = nn.optim.SGD(model.parameters(), lr=1e30)
    with pytest.raises(NonFiniteLossError, match="training loss became .* no checkpoint was written"):
        fit(model, opt, CE, ld, epochs=2, progress=False, log_every=1, callbacks=[NonFiniteGuard(mode="raise")])


def test_keyboard_interrupt_returns_history_and_keeps_checkpoint(tmp_path):
    model, opt, ld, _ = setup()
    ck = tmp_path / "ck.npz"

    class CtrlC(Callback):
        def on_log(self, state, rows):
            if state.epoch == 1 and state.step >= 11:
                raise KeyboardInterrupt

    with pytest.warns(RuntimeWarning, match=r"interrupted \(KeyboardInterrupt\) in epoch 2 after 11 steps; "
                                            r"returning the history so far; last checkpoint .* is intact"):
        h = fit(model, opt, CE, ld, epochs=3, progress=False, log_every=1,
                callbacks=[ModelCheckpoint(ck), CtrlC()])
    assert h.stop_reason == "interrupted" and h.num_epochs == 1 and h.num_steps == 11
    info = nn.load(ck, mlp(), nn.optim.SGD(mlp().parameters(), lr=0.1, momentum=0.9))
    assert info["epoch"] == 1 and info["step"] == 8


def test_fit_argument_errors():
    model, opt, ld, (x, y) = setup()
    with pytest.raises(TypeError, match="`loader` must be an anyxp_nn.data.DataLoader"):
        fit(model, opt, CE, (x, y))
    strict = DataLoader(x, y, backend="array_api_strict")
    with pytest.raises(ValueError, match="the loader yields batches on 'array_api_strict' but the model is on "
                                         "'numpy'"):
        fit(model, opt, CE, strict)
    bad = DataLoader(x, (y + 1).astype(np.int64))
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"training labels are in \[1, 3\] but the model outputs 3 classes"):
        fit(model, opt, CE, bad, progress=False)
    with pytest.raises(ValueError, match=r"fit: validation labels are in \[0, 5\]"):
        fit(model, opt, CE, ld, val_data=(x, y + 3 * (y == 2)), progress=False)
    with pytest.raises(ValueError, match=r"evaluate: data labels are in \[0, 5\] but the model outputs 3 classes"):
        evaluate(model, (x, y + 3 * (y == 2)), CE)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])  # nothing was trained
    with pytest.raises(ValueError, match="`epochs` must be a non-negative int"):
        fit(model, opt, CE, ld, epochs=-1)
    with pytest.raises(ValueError, match=r"the loader yields no batches \(240 samples, batch_size=256"):
        fit(model, opt, CE, DataLoader(x, y, batch_size=256, drop_last=True))
    with pytest.raises(TypeError, match="callbacks must be Callback instances"):
        fit(model, opt, CE, ld, callbacks=[print])


class _GradRecorder(Callback):
    """What on_before_step sees: the step counter and the step's gradients, before clipping."""

    def __init__(self):
        self.steps, self.norms = [], []

    def on_before_step(self, state):
        xp = state.model.backend.xp
        self.steps.append(state.step)
        self.norms.append(float(state.model.backend.to_numpy(
            xp.sqrt(sum(xp.sum(p.grad * p.grad) for p in state.model.parameters())))))


@pytest.mark.parametrize("k", [1, 3])
def test_on_before_step_sees_each_steps_gradients_before_clipping(k, backend):
    model, opt, ld, _ = setup(backend, batch_size=40)          # 240 samples: 6 batches
    rec = _GradRecorder()
    h = fit(model, opt, CE, ld, epochs=2, progress=False, callbacks=[rec], clip_grad_norm=1e-3, accumulate_steps=k)
    assert rec.steps == list(range(len(h.steps["step"])))       # once per optimizer step, before it counts
    assert len(rec.steps) == 2 * 6 // k
    np.testing.assert_allclose(rec.norms, h.steps["grad_norm"], rtol=1e-5)  # fit logs the norm before clipping
    assert min(rec.norms) > 1e-3                                # so these are unclipped gradients


def test_on_before_step_runs_before_the_update():
    model, opt, ld, _ = setup()
    seen = []

    class Snapshot(Callback):
        def on_before_step(self, state):
            seen.append(nn.to_numpy(state.model.parameters()[0].data).copy())

    fit(model, opt, CE, ld, epochs=1, progress=False, callbacks=[Snapshot()])
    assert not np.array_equal(seen[0], seen[1])                 # the first step updated the weights in between
    first = nn.to_numpy(mlp("numpy").parameters()[0].data)      # the same seed: the initial weights
    np.testing.assert_array_equal(seen[0], first)


def test_stop_in_on_before_step_skips_that_update():
    model, opt, ld, _ = setup()
    before = [nn.to_numpy(p.data).copy() for p in model.parameters()]

    class Guard(Callback):
        calls = 0

        def on_before_step(self, state):
            Guard.calls += 1
            state.stop("bad_grads", "Guard: refused the step's gradients")

    h = fit(model, opt, CE, ld, epochs=2, progress=False, callbacks=[Guard()])
    assert Guard.calls == 1 and h.stop_reason == "bad_grads"
    assert h.steps.get("step", []) == []                        # no step was taken or recorded
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(nn.to_numpy(p.data), b)   # the weights never saw the gradients


class _CountingSyncModel(nn.Sequential):
    """A model with DDP's ``no_sync()``: records, per forward, whether gradients would be averaged."""

    def __init__(self, *layers):
        super().__init__(*layers)
        object.__setattr__(self, "local", False)
        object.__setattr__(self, "syncs", [])

    @contextlib.contextmanager
    def no_sync(self):
        object.__setattr__(self, "local", True)
        try:
            yield
        finally:
            object.__setattr__(self, "local", False)

    def forward(self, x, train=None):
        self.syncs.append(not self.local)
        return super().forward(x, train)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_accumulated_batches_before_the_last_run_in_no_sync(k):
    nn.manual_seed(0)
    model = _CountingSyncModel(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    _, opt, ld, _ = setup(batch_size=40)                        # 6 batches per epoch
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    fit(model, opt, CE, ld, epochs=1, progress=False, accumulate_steps=k)
    # DDP semantics: one gradient average per optimizer step, on the step's last batch
    expected = [(i + 1) % k == 0 or i + 1 == 6 for i in range(6)]
    assert model.syncs == expected
