"""Losses: values and gradients vs PyTorch, stability, label checks, gradchecks."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.losses import binary_cross_entropy_with_logits, mse, softmax_cross_entropy
from anyxp_nn.testing import assert_close, gradcheck

rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((6, 4))
LABELS = np.array([0, 3, 1, 2, 3, 0])


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_vs_torch(backend, smoothing):
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(LOGITS.copy()).requires_grad_(True)
    tl = torch.nn.functional.cross_entropy(t, torch.from_numpy(LABELS), label_smoothing=smoothing)
    tl.backward()
    loss, d = softmax_cross_entropy(backend.asarray(LOGITS), backend.asarray(LABELS), label_smoothing=smoothing)
    assert loss.ndim == 0 and backend.owns(loss)
    assert_close(backend.to_numpy(loss), tl.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_close(backend.to_numpy(d), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_cross_entropy_soft_targets_vs_torch(backend):
    torch = pytest.importorskip("torch")
    soft = rng.dirichlet(np.ones(4), size=6)
    t = torch.from_numpy(LOGITS.copy()).requires_grad_(True)
    torch.nn.functional.cross_entropy(t, torch.from_numpy(soft)).backward()
    _, d = softmax_cross_entropy(backend.asarray(LOGITS), backend.asarray(soft))
    assert_close(backend.to_numpy(d), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_cross_entropy_stable_for_huge_logits(backend):
    logits = backend.asarray(np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5e3]]), dtype="float32")
    labels = backend.asarray(np.array([1, 1]))
    loss, d = softmax_cross_entropy(logits, labels)
    assert np.isfinite(backend.item(loss))
    assert np.isclose(backend.item(loss), 1e4, rtol=1e-6)
    assert np.all(np.isfinite(backend.to_numpy(d)))


@pytest.mark.parametrize("fn,target", [
    (lambda x, t: softmax_cross_entropy(x, t, label_smoothing=0.2), LABELS),
    (mse, rng.standard_normal((6, 4))),
    (binary_cross_entropy_with_logits, rng.uniform(size=(6, 4))),
])
def test_loss_gradcheck(backend, fn, target):
    gradcheck(fn, backend.asarray(LOGITS), backend.asarray(target))


def test_mse_and_bce_vs_torch(backend):
    torch = pytest.importorskip("torch")
    tgt = rng.uniform(size=(6, 4))
    for ours, theirs in [(mse, torch.nn.functional.mse_loss),
                         (binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits)]:
        t = torch.from_numpy(LOGITS.copy() * 30).requires_grad_(True)
        tl = theirs(t, torch.from_numpy(tgt))
        tl.backward()
        loss, d = ours(backend.asarray(LOGITS * 30), backend.asarray(tgt))
        assert_close(backend.to_numpy(loss), tl.detach().numpy(), rtol=1e-12, atol=1e-12)
        assert_close(backend.to_numpy(d), t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_bce_stable_extremes(backend):
    x = backend.asarray(np.array([1e4, -1e4, 0.0]), dtype="float32")
    t = backend.asarray(np.array([0.0, 1.0, 1.0]), dtype="float32")
    loss, d = binary_cross_entropy_with_logits(x, t)
    assert np.isfinite(backend.item(loss))
    np.testing.assert_allclose(backend.item(loss), (1e4 + 1e4 + np.log(2)) / 3, rtol=1e-6)


def test_loss_errors(backend):
    x = backend.asarray(LOGITS, dtype="float32")
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\) for 4 classes, got values in \[0, 7\]"):
        softmax_cross_entropy(x, backend.asarray(np.array([0, 1, 7, 0, 0, 0])))
    with pytest.raises(ValueError, match=r"labels must be \(N,\) = \(6,\) class ids, got shape \(5,\)"):
        softmax_cross_entropy(x, backend.asarray(np.zeros(5, dtype=np.int64)))
    with pytest.raises(TypeError, match="labels must be integer class ids"):
        softmax_cross_entropy(x, backend.asarray(np.zeros(6), dtype="float32"))
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        softmax_cross_entropy(x, backend.asarray(LABELS), label_smoothing=1.5)
    other = nn.get_backend("array_api_strict" if backend.name == "numpy" else "numpy")
    with pytest.raises(ValueError, match="`labels` is on"):
        softmax_cross_entropy(x, other.asarray(LABELS))
    with pytest.raises(ValueError, match=r"mse: target shape \(3,\) does not match pred shape \(6, 4\)"):
        mse(x, backend.asarray(np.zeros(3), dtype="float32"))
