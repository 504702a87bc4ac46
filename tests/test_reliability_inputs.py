"""Issue 13, items 5, 6 and 8: empty batches work or fail clearly; every silently accepted bad
input of the issue is refused with an error naming the argument, the expectation and the value."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.data import DataLoader
from anyxp_nn.parameter import Parameter

CE = nn.losses.softmax_cross_entropy
BCE = nn.losses.binary_cross_entropy_with_logits


def arr(backend, a, dtype="float32"):
    return backend.asarray(np.asarray(a), dtype=dtype)


# -- item 5: empty batches -------------------------------------------------------------
def test_flatten_with_an_empty_batch(backend):
    x = arr(backend, np.zeros((0, 3, 4, 4)))
    y, backprop = nn.Flatten(backend=backend).forward(x)
    assert tuple(y.shape) == (0, 48)
    assert tuple(backprop(y).shape) == (0, 3, 4, 4)


def test_softmax_cross_entropy_with_an_empty_batch_is_a_clear_error(backend):
    logits = arr(backend, np.zeros((0, 3)))
    labels = backend.asarray(np.zeros((0,), np.int64))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: the batch is empty \(logits of shape \(0, 3\)\)"):
        CE(logits, labels)


def test_global_avg_pool_with_no_pixels_is_a_clear_error(backend):
    """The issue's reproducer: H = 0 returned NaN."""
    with pytest.raises(ValueError, match=r"GlobalAvgPool2D\(\): the input has no pixels to average "
                                         r"\(shape \(2, 3, 0, 4\)"):
        nn.GlobalAvgPool2D(backend=backend).forward(arr(backend, np.zeros((2, 3, 0, 4))))
    y, _ = nn.GlobalAvgPool2D(backend=backend).forward(arr(backend, np.zeros((0, 3, 2, 2))))
    assert tuple(y.shape) == (0, 3)


def test_conv2d_with_an_empty_batch(backend):
    """The issue's reproducer: "range() arg 3 must not be zero"."""
    conv = nn.Conv2D(3, 4, 3, padding=1, backend=backend)
    x = arr(backend, np.zeros((0, 3, 5, 5)))
    y, backprop = conv.forward(x)
    assert tuple(y.shape) == (0, 4, 5, 5)
    assert tuple(backprop(y).shape) == (0, 3, 5, 5)


# -- item 6: silently accepted before ---------------------------------------------------
def test_a_broadcastable_gradient_is_refused(backend):
    """The issue's reproducer: a (1,) gradient was broadcast onto a (3, 4) weight."""
    w = Parameter(arr(backend, np.ones((3, 4))))
    opt = nn.optim.SGD([w], lr=0.1)
    for shape in [(1,), (4,), (1, 4), (3, 1)]:
        w.grad = arr(backend, np.ones(shape))
        with pytest.raises(ValueError, match=rf"SGD.step: .* has shape \({shape[0]},{' ' + str(shape[1]) if len(shape) > 1 else ''}\), "
                                             r"expected \(3, 4\) .*never broadcast"):
            opt.step()
    w.grad = arr(backend, np.ones((3, 4)), dtype="float64")
    with pytest.raises(TypeError, match=r"SGD.step: the gradient .* has dtype .*float64, expected .*float32"):
        opt.step()
    np.testing.assert_array_equal(nn.to_numpy(w.data), np.ones((3, 4)))


def test_soft_targets_must_be_probabilities(backend):
    logits = arr(backend, [[1.0, 2.0, 3.0], [0.5, 0.1, -1.0]])
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: each row of soft targets must sum to 1, "
                                         r"got a row sum off by 1"):
        CE(logits, arr(backend, [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))  # was a loss of 18.55-like nonsense
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: soft targets must be non-negative "
                                         r"probabilities, got a minimum of -1"):
        CE(logits, arr(backend, [[2.0, -1.0, 0.0], [0.0, 0.0, 1.0]]))  # was a negative loss
    loss, _ = CE(logits, arr(backend, [[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]))  # fine
    assert float(loss) > 0


@pytest.mark.parametrize("bad", [2.0, -1.0])
def test_bce_targets_must_be_in_0_1(backend, bad):
    with pytest.raises(ValueError, match=r"binary_cross_entropy_with_logits: targets must be probabilities in "
                                         r"\[0, 1\], got values in"):
        BCE(arr(backend, [0.5, -0.5]), arr(backend, [bad, 0.0]))


@pytest.mark.parametrize("momentum", [5, 1.0, -0.1, float("nan")])
def test_sgd_momentum_must_be_in_0_1(momentum):
    with pytest.raises(ValueError, match=r"SGD: momentum must be a real number in \[0.0, 1.0\), got"):
        nn.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1, momentum=momentum)


def test_dataloader_refuses_values_that_overflow_the_batch_dtype():
    """The issue's reproducer: float64 values of 1e39 passed the finiteness check and became inf."""
    x = np.ones((4, 2))
    x[2, 1] = 1e39
    with pytest.raises(ValueError, match=r"DataLoader: `x` holds values up to 1e\+39 in magnitude, which overflow "
                                         r"float32 \(largest 3.403e\+38\)"):
        DataLoader(x, np.zeros(4, np.int64))
    DataLoader(x, np.zeros(4, np.int64), dtype="float64")  # fits there
    with pytest.raises(ValueError, match=r"DataLoader: `y` holds values up to 1e\+39"):
        DataLoader(np.ones((4, 2)), x[:, 1].copy(), labels=False)


def test_dataloader_refuses_labels_beyond_int64():
    """The issue's reproducer: a uint64 label 2**63+5 became negative."""
    y = np.array([0, 1, 2, 2**63 + 5], dtype=np.uint64)
    with pytest.raises(ValueError, match=r"DataLoader: labels must fit in int64 \(class ids\), got a maximum of "
                                         r"9223372036854775813"):
        DataLoader(np.zeros((4, 2)), y)


@pytest.mark.parametrize("flag", ["shuffle", "drop_last", "prefetch", "labels"])
def test_dataloader_flags_must_be_bool(flag):
    """The issue's reproducer: shuffle="no" shuffled."""
    with pytest.raises(TypeError, match=rf"DataLoader: `{flag}` must be True or False, got 'no'"):
        DataLoader(np.zeros((4, 2)), np.zeros(4, np.int64), **{flag: "no"})


def test_softmax_cross_entropy_is_finite_for_huge_logits(backend):
    """The issue's reproducer: logits of +-3e38 gave NaN, although the docstring promised stability."""
    logits = arr(backend, [[3e38, -3e38, 0.0], [-3e38, 3e38, 1.0]])
    labels = backend.asarray(np.array([0, 0], np.int64))
    loss, d = CE(logits, labels)
    loss, d = float(loss), nn.to_numpy(d)
    assert np.isfinite(loss) and np.isfinite(d).all()
    assert loss > 1e38  # the second row is as wrong as float32 can say
    np.testing.assert_allclose(d, [[0, 0, 0], [-0.5, 0.5, 0]], atol=1e-6)
    loss, _ = CE(arr(backend, [[3e38, -3e38, 0.0]]), labels[:1])
    assert float(loss) == 0.0


def test_bce_is_finite_for_huge_logits(backend):
    logits = arr(backend, [3e38, -3e38, 3e38, -3e38])
    targets = arr(backend, [0.0, 1.0, 1.0, 0.0])
    loss, d = BCE(logits, targets)
    assert np.isfinite(float(loss)) and float(loss) > 1e38
    np.testing.assert_allclose(nn.to_numpy(d), [0.25, -0.25, 0, 0], atol=1e-6)


def test_losses_match_torch_after_the_stability_changes(backend):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)) * 5
    y = rng.integers(0, 4, 6)
    t = rng.dirichlet(np.ones(4), 6)
    ce = float(CE(arr(backend, x, "float64"), backend.asarray(y))[0])
    soft = float(CE(arr(backend, x, "float64"), arr(backend, t, "float64"))[0])
    tx = torch.tensor(x)
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(tx, torch.tensor(y)).item(), rel=1e-12)
    assert soft == pytest.approx(torch.nn.functional.cross_entropy(tx, torch.tensor(t)).item(), rel=1e-12)
    b = rng.uniform(size=(6, 4))
    bce = float(BCE(arr(backend, x, "float64"), arr(backend, b, "float64"))[0])
    ref = torch.nn.functional.binary_cross_entropy_with_logits(tx, torch.tensor(b)).item()
    assert bce == pytest.approx(ref, rel=1e-12)


# -- item 8: dtype advice --------------------------------------------------------------
def test_dtype_advice_never_suggests_a_non_floating_layer_dtype(backend):
    layer = nn.Linear(3, 2, backend=backend)
    with pytest.raises(TypeError) as e:
        layer(backend.asarray(np.zeros((2, 3), np.int64)))
    assert "int64" in str(e.value) and ".to(dtype" not in str(e.value)
    assert "astype(x, xp.float32)" in str(e.value)
    with pytest.raises(TypeError, match=r"or the layer with \.to\(dtype='float64'\)"):
        layer(arr(backend, np.zeros((2, 3)), "float64"))
