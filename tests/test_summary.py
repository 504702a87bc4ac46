"""nn.summary: counts and output shapes equal torch's for the same model, on every backend."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.models import mnist_cnn, small_resnet


def _torch_reference(tmodel, input_shape):
    """Per named module: (parameter count, output shape), from forward hooks."""
    import torch
    shapes = {}

    def hook(name):
        def record(mod, inp, out):
            shapes.setdefault(name, tuple(out.shape))  # returns None: the output stays
        return record

    hooks = [m.register_forward_hook(hook(n)) for n, m in tmodel.named_modules()]
    tmodel.eval()
    with torch.no_grad():
        tmodel(torch.zeros(input_shape))
    for h in hooks:
        h.remove()
    return {n: (sum(p.numel() for p in m.parameters()), shapes.get(n)) for n, m in tmodel.named_modules()}


@pytest.mark.parametrize("which", ["mnist_cnn", "small_resnet"])
def test_summary_counts_and_shapes_equal_torch(which, backend):
    pytest.importorskip("torch")
    from anyxp_nn.testing.torch_models import torch_mnist_cnn, torch_small_resnet
    if which == "mnist_cnn":
        model, tmodel = mnist_cnn(backend=backend), torch_mnist_cnn()
    else:
        model, tmodel = small_resnet(backend=backend, width=4), torch_small_resnet(width=4)
    model[0].freeze()
    for p in tmodel[0].parameters():
        p.requires_grad_(False)
    s = nn.summary(model, (2, 1, 28, 28))
    ref = _torch_reference(tmodel, (2, 1, 28, 28))
    assert [r.name for r in s.rows] == list(ref)
    for r in s.rows:
        assert (r.params, r.output_shape) == ref[r.name], f"row {r.name!r} ({r.type})"
    assert s.total_params == sum(p.numel() for p in tmodel.parameters())
    assert s.trainable_params == sum(p.numel() for p in tmodel.parameters() if p.requires_grad)
    assert s.frozen_params == tmodel[0].weight.numel() + (0 if tmodel[0].bias is None else tmodel[0].bias.numel())
    text = str(s)
    assert f"Total params: {s.total_params:,}" in text and f"Frozen params: {s.frozen_params:,}" in text
    assert "3.block.0" in text or which == "mnist_cnn"


def test_summary_memory_and_side_effects(backend):
    model = nn.Sequential(nn.Linear(4, 8, backend=backend), nn.BatchNorm1D(8, backend=backend), nn.Dropout(0.5),
                          nn.Linear(8, 2, backend=backend))
    state = model.state_dict()
    nn.manual_seed(3)
    expected_draw = nn.random.get_rng(None).normal((3,), backend="numpy")
    nn.manual_seed(3)
    s = nn.summary(model, (5, 4))
    assert all(np.array_equal(v, state[k]) for k, v in model.state_dict().items())  # no statistics moved
    np.testing.assert_array_equal(nn.random.get_rng(None).normal((3,), backend="numpy"), expected_draw)
    assert all("forward" not in layer.__dict__ for _, layer in model.named_layers())
    assert model.training  # the modes are left alone
    assert s.input_bytes_per_sample == 4 * 4
    assert s.activation_bytes_per_sample == (8 + 8 + 8 + 2) * 4  # leaf outputs, float32
    assert s.param_bytes == (4 * 8 + 8 + 8 + 8 + 8 * 2 + 2) * 4
    assert s.rows[0].output_shape == (5, 2) and s.dtype == "float32"
    assert nn.summary(model.to(dtype="float64"), (1, 4)).activation_bytes_per_sample == (8 + 8 + 8 + 2) * 8


def test_summary_errors(backend):
    model = nn.Sequential(nn.Linear(4, 2, backend=backend))
    with pytest.raises(ValueError, match=r"summary: `input_shape` must be a tuple of positive ints with the batch "
                                         r"size first, e.g. \(1, 3, 32, 32\), got \(0, 4\)"):
        nn.summary(model, (0, 4))
    with pytest.raises(TypeError, match="summary: `model` must be an anyxp_nn Layer, got list"):
        nn.summary([model], (1, 4))
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 4\), got \(1, 5\)") as info:
        nn.summary(model, (1, 5))
    assert "in nn.summary" in "".join(getattr(info.value, "__notes__", []))
    assert all("forward" not in layer.__dict__ for _, layer in model.named_layers())
