"""fit: clipping and accumulation equal a torch loop, no per-step sync, modes, metrics by loss."""
import math

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.data import DataLoader

CE = nn.losses.softmax_cross_entropy


def _data(n=40, d=6, c=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x, (np.arange(n) % c).astype(np.int64)


def _model(backend, dtype="float32"):
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8, backend=backend, dtype=dtype), nn.Tanh(),
                         nn.Linear(8, 3, backend=backend, dtype=dtype))


def _torch_run(model, x, y, order, batch_size, epochs, lr, clip, k):
    """The torch loop a user would write: loss / k, backward, every k batches (or at the epoch's
    end) clip_grad_norm_ and step.  Returns (final state_dict, total norms per step)."""
    import torch
    t = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    t.load_state_dict({k_: torch.from_numpy(v.astype(np.float64)) for k_, v in model.state_dict().items()})
    opt = torch.optim.SGD(t.parameters(), lr=lr, momentum=0.9)
    norms = []
    for e in range(epochs):
        idx = order[e]
        batches = [idx[i:i + batch_size] for i in range(0, len(idx), batch_size)]
        for i, b in enumerate(batches):
            out = t(torch.from_numpy(x[b].astype(np.float64)))
            loss = torch.nn.functional.cross_entropy(out, torch.from_numpy(y[b]))
            (loss / k).backward()
            if (i + 1) % k == 0 or i + 1 == len(batches):
                if clip is not None:
                    norms.append(float(torch.nn.utils.clip_grad_norm_(t.parameters(), clip)))
                opt.step()
                opt.zero_grad()
    return {k_: v.detach().numpy() for k_, v in t.state_dict().items()}, norms


@pytest.mark.parametrize("clip,k", [(0.5, 1), (None, 3), (0.3, 2)])
def test_clip_and_accumulate_equal_the_torch_loop(clip, k, backend):
    pytest.importorskip("torch")
    x, y = _data()
    x = x.astype(np.float64)
    model = _model(backend, "float64")
    opt = nn.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    loader = DataLoader(x, y, batch_size=8, backend=backend, rng=5, dtype="float64")
    g = nn.random.Generator(5)
    order = [g.permutation(len(x)) for _ in range(2)]
    want, norms = _torch_run(model, x, y, order, 8, 2, 0.2, clip, k)
    h = nn.fit(model, opt, CE, loader, epochs=2, progress=False, clip_grad_norm=clip, accumulate_steps=k, log_every=1)
    steps_per_epoch = math.ceil(5 / k)
    assert h.num_steps == 2 * steps_per_epoch and opt.step_count == 2 * steps_per_epoch
    for key, v in model.state_dict().items():
        np.testing.assert_allclose(v, want[key], rtol=1e-9, atol=1e-12, err_msg=f"{key} (clip={clip}, k={k})")
    if clip is not None:
        np.testing.assert_allclose(h.steps["grad_norm"], norms, rtol=1e-9)
        assert max(norms) > clip  # the clipping did act
    else:
        assert "grad_norm" not in h.steps


def test_clipping_adds_no_host_sync_per_step(backend):
    x, y = _data(n=64)
    model = _model(backend)
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(x, y, batch_size=8, backend=backend, rng=1, on_device=True)
    with nn.sync_guard() as syncs:
        nn.fit(model, opt, CE, loader, epochs=1, progress=False, clip_grad_norm=1.0, accumulate_steps=2,
               log_every=4)
    # 8 batches -> 4 optimizer steps -> one read at step 4, none at the epoch's end (nothing pending)
    assert syncs.counts["item"] == 0
    assert syncs.counts["to_host"] == 1, [str(e) for e in syncs.events if e.kind == "to_host"]


def test_fit_option_errors():
    x, y = _data()
    model = _model("numpy")
    opt = nn.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(x, y, batch_size=8)
    with pytest.raises(ValueError, match=r"fit: `clip_grad_norm` must be None or a float > 0 \(the max gradient "
                                         r"norm\), got 0"):
        nn.fit(model, opt, CE, loader, progress=False, clip_grad_norm=0)
    with pytest.raises(ValueError, match=r"fit: `accumulate_steps` must be a positive int, got 1.5"):
        nn.fit(model, opt, CE, loader, progress=False, accumulate_steps=1.5)


# -- modes -------------------------------------------------------------------------------------
def _bn_model(backend):
    nn.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(6, 8, backend=backend), nn.BatchNorm1D(8, backend=backend), nn.ReLU())
    return nn.Sequential(trunk, nn.Dropout(0.2), nn.Linear(8, 3, backend=backend))


def test_fit_uses_the_modes_it_finds(backend):
    x, y = _data()
    model = _bn_model(backend)
    trunk = model[0]
    trunk.freeze().eval()
    before = trunk.state_dict()
    loader = DataLoader(x, y, batch_size=8, backend=backend, rng=0)
    head_w = model[2].state_dict()["weight"]
    nn.fit(model, nn.optim.SGD(model.parameters(), lr=0.1), CE, loader, val_data=(x, y), epochs=2, progress=False)
    for k, v in trunk.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=f"frozen eval trunk: {k} changed")
    assert not np.array_equal(model[2].state_dict()["weight"], head_w)
    assert [layer.training for _, layer in model.named_layers()] == [True, False, False, False, False, True, True]


def test_fit_trains_batchnorm_in_train_mode_and_validates_without_touching_it(backend):
    x, y = _data()
    model = _bn_model(backend)
    loader = DataLoader(x, y, batch_size=8, backend=backend, rng=0)
    nn.fit(model, nn.optim.SGD(model.parameters(), lr=0.1), CE, loader, val_data=(x, y), epochs=2, progress=False)
    assert int(backend.to_numpy(model[0][1].num_batches_tracked)) == 2 * 5  # validation added nothing
    assert all(layer.training for _, layer in model.named_layers())


def test_fit_warns_when_the_whole_model_is_in_eval_mode(backend):
    x, y = _data()
    model = _bn_model(backend).eval()
    loader = DataLoader(x, y, batch_size=8, backend=backend)
    with pytest.warns(UserWarning, match=r"fit: every layer of the model is in eval mode \(model.eval\(\) was "
                                         r"called\).*call model.train\(\) first"):
        nn.fit(model, nn.optim.SGD(model.parameters(), lr=0.1), CE, loader, progress=False)
    assert not model.training and int(backend.to_numpy(model[0][1].num_batches_tracked)) == 0


# -- metrics that depend on the loss ---------------------------------------------------------------
def test_regression_gets_no_accuracy_and_validates_float_targets(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype(np.float32)
    t = (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)).astype(np.float32)  # (N, 1) targets
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 1, backend=backend))
    loader = DataLoader(x, t, batch_size=8, backend=backend, labels=False)
    h = nn.fit(model, nn.optim.SGD(model.parameters(), lr=0.05), nn.losses.mse, loader, val_data=(x, t),
               epochs=3, progress=False)
    assert "accuracy" not in h.steps and "val_accuracy" not in h.epochs
    assert h["val_loss"][-1] < h["val_loss"][0]
    out = nn.training.evaluate(model, (x, t), nn.losses.mse)
    assert set(out) == {"loss"}


def test_accuracy_refuses_float_targets_before_any_step(backend):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    t = rng.standard_normal((16, 1)).astype(np.float32)
    model = nn.Sequential(nn.Linear(3, 1, backend=backend))
    before = model.state_dict()
    loader = DataLoader(x, t, batch_size=8, backend=backend, labels=False)
    with pytest.raises(ValueError, match=r"accuracy: expected outputs \(N, C\) and targets \(N,\), got outputs of "
                                         r"shape \(8, 1\) and targets of shape \(8, 1\) .*pass metrics=\(\)"):
        nn.fit(model, nn.optim.SGD(model.parameters(), lr=0.1), nn.losses.mse, loader, metrics=("accuracy",),
               progress=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    logits = backend.asarray(np.zeros((4, 3)), dtype="float32")
    with pytest.raises(TypeError, match=r"accuracy: expected integer class ids as targets, got outputs of shape "
                                        r"\(4, 3\) and targets of shape \(4,\) \(.*float32\)"):
        nn.metrics.accuracy(logits, backend.asarray(np.zeros(4), dtype="float32"))


def test_default_metrics_follow_the_loss():
    from anyxp_nn.training.metrics import default_metrics
    x, y = _data()
    labels = DataLoader(x, y)
    floats = DataLoader(x, x[:, :1], labels=False)
    assert default_metrics(CE, labels) == ("accuracy",)
    assert default_metrics(nn.losses.mse, floats) == ()
    assert default_metrics(nn.losses.binary_cross_entropy_with_logits, floats) == ()
    assert default_metrics(lambda a, b: None, floats) == ()
