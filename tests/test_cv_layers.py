"""ConvTranspose2D and Concatenate beyond the layer table: torch layouts and init, bad arguments, a U-Net."""
import math

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.testing import assert_close
from anyxp_nn.testing.torch_models import torch_concatenate


def _torch():
    return pytest.importorskip("torch")


def test_conv_transpose_loads_torch_state_dict(backend):
    torch = _torch()
    torch.manual_seed(0)
    t = torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 3), padding=1, output_padding=(1, 2), groups=2,
                                 dilation=(1, 2)).double()
    ours = nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 3), padding=1, output_padding=(1, 2), groups=2,
                              dilation=(1, 2), backend=backend, dtype="float64")
    ours.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    assert ours.weight.shape == (4, 3, 3, 2)  # (in, out/groups, kh, kw), PyTorch's layout
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 4))
    assert_close(backend.to_numpy(ours(backend.asarray(x))), t(torch.from_numpy(x)).detach().numpy(),
                 rtol=1e-10, atol=1e-12)


def test_conv_transpose_is_the_conv_adjoint(backend):
    """<ConvT(x), y> == <x, Conv(y)> when both hold the same weight tensor (6, 2, 3, 3)."""
    rng = np.random.default_rng(0)
    geom = dict(stride=2, padding=1, groups=2, bias=False, backend=backend, dtype="float64")
    convt = nn.ConvTranspose2D(6, 4, 3, output_padding=1, **geom)  # weight (C_in=6, C_out/g=2, 3, 3)
    conv = nn.Conv2D(4, 6, 3, **geom)                               # weight (O=6, C/g=2, 3, 3)
    w = rng.standard_normal((6, 2, 3, 3))
    convt.load_state_dict({"weight": w})
    conv.load_state_dict({"weight": w})
    x, y = rng.standard_normal((2, 6, 3, 4)), rng.standard_normal((2, 4, 6, 8))
    lhs = np.sum(backend.to_numpy(convt(backend.asarray(x))) * y)
    rhs = np.sum(x * backend.to_numpy(conv(backend.asarray(y))))
    assert abs(lhs - rhs) < 1e-9 * max(1.0, abs(lhs)), (lhs, rhs)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_transpose_init_fans_as_torch(groups):
    """torch's fan_in for ConvTranspose2d is weight.shape[1]*kh*kw = C_out/groups*kh*kw."""
    layer = nn.ConvTranspose2D(4, 8, 3, groups=groups, init="torch", rng=nn.random.Generator(0))
    bound = 1 / math.sqrt(8 // groups * 9)
    for p in (layer.weight, layer.bias):
        a = nn.to_numpy(p.data)
        assert np.abs(a).max() <= bound and np.abs(a).max() > 0.8 * bound
    he = nn.ConvTranspose2D(64, 32, 3, rng=nn.random.Generator(0))
    std = float(np.std(nn.to_numpy(he.weight.data)))
    assert abs(std - math.sqrt(2 / (32 * 9))) < 0.05 * math.sqrt(2 / (32 * 9))
    assert not np.any(nn.to_numpy(he.bias.data))


def test_conv_transpose_need_dx_false_and_frozen(backend):
    layer = nn.ConvTranspose2D(2, 3, 3, stride=2, backend=backend)
    x = backend.asarray(np.ones((1, 2, 4, 4)), dtype="float32")
    y, backprop = layer.forward(x)
    assert tuple(y.shape) == (1, 3, 9, 9)
    assert backprop(backend.xp.ones_like(y), need_dx=False) is None
    assert layer.weight.grad is not None and layer.bias.grad is not None
    layer.zero_grad()
    layer.freeze()
    dx = backprop(backend.xp.ones_like(y))
    assert tuple(dx.shape) == (1, 2, 4, 4) and layer.weight.grad is None and layer.bias.grad is None


@pytest.mark.parametrize("kwargs,match", [
    (dict(in_channels=3, out_channels=8, kernel_size=3, groups=2),
     r"ConvTranspose2D: `in_channels` \(=3\) must be divisible by `groups` \(=2\)"),
    (dict(in_channels=4, out_channels=6, kernel_size=3, groups=4),
     r"ConvTranspose2D: `out_channels` \(=6\) must be divisible by `groups` \(=4\)"),
    (dict(in_channels=2, out_channels=2, kernel_size=3, stride=2, output_padding=2),
     r"ConvTranspose2D: `output_padding` \(2, 2\) must be smaller than either `stride` \(2, 2\) or `dilation` "
     r"\(1, 1\) on each axis"),
    (dict(in_channels=2, out_channels=2, kernel_size=3, output_padding=(0, 1)),
     r"ConvTranspose2D: `output_padding` \(0, 1\) must be smaller"),
    (dict(in_channels=2, out_channels=2, kernel_size=3, output_padding=-1),
     r"ConvTranspose2D: `output_padding` must be an int >= 0 or a pair of them, got -1"),
    (dict(in_channels=0, out_channels=6, kernel_size=3), r"ConvTranspose2D: `in_channels` must be a positive int"),
    (dict(in_channels=2, out_channels=6, kernel_size=(3, 0)),
     r"ConvTranspose2D: `kernel_size` must be an int >= 1 or a pair of them, got \(3, 0\)"),
    (dict(in_channels=2, out_channels=6, kernel_size=3, init="bogus"), r"ConvTranspose2D: unknown init 'bogus'"),
])
def test_conv_transpose_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nn.ConvTranspose2D(**kwargs)


def test_concatenate_bad_arguments():
    with pytest.raises(ValueError, match="Concatenate: expected at least one branch, got none"):
        nn.Concatenate()
    with pytest.raises(TypeError, match="Concatenate: branch 1 is a int, expected a Layer"):
        nn.Concatenate(nn.Identity(), 3)
    with pytest.raises(TypeError, match="Concatenate: `axis` must be an int, got 1.0"):
        nn.Concatenate(nn.Identity(), axis=1.0)
    with pytest.raises(ValueError, match=r"Concatenate: `axis` 2 is out of range for the branches' 2-D outputs "
                                         r"\(shape \(3, 4\)\)"):
        nn.Concatenate(nn.Identity(), nn.Identity(), axis=2).forward(np.ones((3, 4), dtype=np.float32))


def test_concatenate_names_and_need_dx(backend):
    block = nn.Concatenate(nn.Identity(backend=backend), nn.Conv2D(2, 3, 3, padding=1, backend=backend))
    assert [n for n, _ in block.named_parameters()] == ["1.weight", "1.bias"]
    assert [n for n, _ in block.named_children()] == ["0", "1"]
    x = backend.asarray(np.ones((1, 2, 4, 4)), dtype="float32")
    y, backprop = block.forward(x)
    assert tuple(y.shape) == (1, 5, 4, 4)
    assert backprop(backend.xp.ones_like(y), need_dx=False) is None
    assert block._children["1"].weight.grad is not None


def test_tiny_unet_matches_torch(backend):
    """Conv down, ConvTranspose up, Concatenate skip: forward and every gradient equal torch's."""
    torch = _torch()
    tnn = torch.nn

    kw = dict(backend=backend, dtype="float64")
    inner = nn.Sequential(nn.Conv2D(3, 4, 3, stride=2, padding=1, **kw), nn.ReLU(**kw),
                          nn.ConvTranspose2D(4, 3, 3, stride=2, padding=1, output_padding=1, **kw))
    model = nn.Sequential(nn.Conv2D(1, 3, 3, padding=1, **kw), nn.Concatenate(nn.Identity(**kw), inner),
                          nn.Conv2D(6, 2, 1, **kw))
    tinner = tnn.Sequential(tnn.Conv2d(3, 4, 3, stride=2, padding=1), tnn.ReLU(),
                            tnn.ConvTranspose2d(4, 3, 3, stride=2, padding=1, output_padding=1))
    tmodel = tnn.Sequential(tnn.Conv2d(1, 3, 3, padding=1), torch_concatenate(tnn.Identity(), tinner),
                            tnn.Conv2d(6, 2, 1)).double()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 6))
    dy = np.random.default_rng(1).standard_normal((2, 2, 6, 6))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = tmodel(tx)
    ty.backward(torch.from_numpy(dy))
    y, backprop = model.forward(backend.asarray(x))
    dx = backprop(backend.asarray(dy))
    assert_close(backend.to_numpy(y), ty.detach().numpy(), rtol=1e-9, atol=1e-11)
    assert_close(backend.to_numpy(dx), tx.grad.numpy(), rtol=1e-9, atol=1e-11)
    grads = dict(model.named_parameters())
    for name, p in tmodel.named_parameters():
        assert_close(backend.to_numpy(grads[name].grad), p.grad.numpy(), rtol=1e-9, atol=1e-11, msg=name)
