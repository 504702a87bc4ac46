"""anyxp_nn.interpret: each map equals the same quantity computed by PyTorch autograd on a torch
model holding the same weights, on every backend; eval mode, no side effects, no host syncs."""
import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.models import mnist_cnn, small_resnet
from anyxp_nn.testing import assert_close, sync_guard

torch = pytest.importorskip("torch")
from anyxp_nn.testing.torch_models import torch_concatenate, torch_mnist_cnn, torch_small_resnet  # noqa: E402

TOL = dict(rtol=1e-8, atol=1e-10)


def _digits(n=2, seed=0):
    """(n, 1, 28, 28) float64 images in [0, 1) with a bright blob, so gradients are not trivial."""
    rng = np.random.default_rng(seed)
    x = 0.2 * rng.random((n, 1, 28, 28))
    x[:, :, 8:20, 10:18] += 0.8
    return x


@pytest.fixture(scope="module")
def weights():
    return mnist_cnn(backend="numpy", dtype="float64", rng=nn.random.Generator(3)).state_dict()


def _pair(backend, weights):
    model = mnist_cnn(backend=backend, dtype="float64")
    model.load_state_dict(weights)
    tmodel = torch_mnist_cnn().double().eval()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    return model, tmodel


def _torch_input_grad(tmodel, x, t):
    tx = torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(True)
    logits = tmodel(tx)
    logits[torch.arange(len(t)), torch.as_tensor(t)].sum().backward()
    return tx.grad.numpy()


def test_input_gradient_and_saliency_match_torch(backend, weights):
    model, tmodel = _pair(backend, weights)
    x, t = _digits(3), np.array([1, 7, 3])
    ref = _torch_input_grad(tmodel, x, t)
    got = nn.interpret.input_gradient(model, backend.asarray(x), t)
    assert_close(backend.to_numpy(got), ref, **TOL)
    sal = nn.interpret.saliency(model, backend.asarray(x), backend.asarray(t))
    assert tuple(sal.shape) == (3, 28, 28) and sal.dtype == backend.xp.float64
    assert_close(backend.to_numpy(sal), np.abs(ref).max(axis=1), **TOL)
    one = nn.interpret.input_gradient(model, backend.asarray(x), 4)  # an int target: the same class for all
    assert_close(backend.to_numpy(one), _torch_input_grad(tmodel, x, [4, 4, 4]), **TOL)


@pytest.mark.parametrize("batch_size", [256, 2], ids=["one-pass", "chunked"])
def test_smoothgrad_matches_torch(backend, weights, batch_size):
    model, tmodel = _pair(backend, weights)
    x, t, samples, noise = _digits(2), np.array([2, 5]), 3, 0.2
    eps = nn.random.Generator(11).normal((samples, 2, 1, 28, 28), backend="numpy", dtype="float64")
    sigma = noise * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    noisy = (x[None] + sigma[None, :, None, None, None] * eps).reshape(samples * 2, 1, 28, 28)
    g = _torch_input_grad(tmodel, noisy, np.tile(t, samples))
    ref = np.abs(g).max(axis=1).reshape(samples, 2, 28, 28).mean(axis=0)
    got = nn.interpret.smoothgrad(model, backend.asarray(x), t, samples=samples, noise=noise,
                                  rng=nn.random.Generator(11), batch_size=batch_size)
    assert_close(backend.to_numpy(got), ref, **TOL)


def test_smoothgrad_noise_zero_is_saliency(backend, weights):
    model, _ = _pair(backend, weights)
    x = backend.asarray(_digits(2))
    assert_close(backend.to_numpy(nn.interpret.smoothgrad(model, x, 3, samples=4, noise=0.0)),
                 backend.to_numpy(nn.interpret.saliency(model, x, 3)), **TOL)


def _torch_grad_cam(tmodel, module, x, t):
    kept = {}
    handle = module.register_forward_hook(lambda m, i, out: kept.setdefault("A", out))
    tx = torch.from_numpy(np.ascontiguousarray(x))
    logits = tmodel(tx)
    handle.remove()
    A = kept["A"]
    (dA,) = torch.autograd.grad(logits[torch.arange(len(t)), torch.as_tensor(t)].sum(), A)
    return torch.relu((dA.mean(dim=(2, 3), keepdim=True) * A).sum(dim=1)).detach().numpy()


@pytest.mark.parametrize("layer", ["4", "0", "5"])  # conv2's ReLU (7x7 after pooling: "5"), the first conv
def test_grad_cam_matches_torch(backend, weights, layer):
    model, tmodel = _pair(backend, weights)
    x, t = _digits(2), np.array([0, 9])
    got = nn.interpret.grad_cam(model, backend.asarray(x), t, layer)
    ref = _torch_grad_cam(tmodel, tmodel[int(layer)], x, t)
    assert tuple(got.shape) == ref.shape
    assert np.abs(ref).max() > 0  # the comparison is not between two zero maps
    assert_close(backend.to_numpy(got), ref, **TOL)


def test_occlusion_matches_torch(backend, weights):
    model, tmodel = _pair(backend, weights)
    x, t, patch, stride = _digits(2), np.array([3, 8]), 8, 5
    ho = (28 - patch) // stride + 1
    with torch.no_grad():
        p0 = torch.softmax(tmodel(torch.from_numpy(x)), dim=1).numpy()[[0, 1], t]
        ref = np.empty((2, ho, ho))
        for i in range(ho):
            for j in range(ho):
                xo = x.copy()
                xo[:, :, i * stride:i * stride + patch, j * stride:j * stride + patch] = 0.5
                ref[:, i, j] = p0 - torch.softmax(tmodel(torch.from_numpy(xo)), dim=1).numpy()[[0, 1], t]
    for batch_size in (256, 3):  # 3: one position (2 images) per pass
        got = nn.interpret.occlusion(model, backend.asarray(x), t, patch=patch, stride=stride, value=0.5,
                                     batch_size=batch_size)
        assert_close(backend.to_numpy(got), ref, **TOL)


def test_class_model_matches_torch(backend, weights):
    model, tmodel = _pair(backend, weights)
    t, steps, lr, l2 = np.arange(3), 4, 0.5, 0.05
    x0 = 0.1 * np.random.default_rng(4).random((3, 1, 28, 28))  # no max-pool ties (a constant image has them)
    tx = torch.from_numpy(x0.copy())
    for _ in range(steps):
        tx.requires_grad_(True)
        (g,) = torch.autograd.grad(tmodel(tx)[torch.arange(3), torch.as_tensor(t)].sum(), tx)
        tx = (tx + lr * (g - 2 * l2 * tx)).detach()
    xb = backend.asarray(x0)
    got = nn.interpret.class_model(model, t, xb, steps=steps, lr=lr, l2=l2)
    assert_close(backend.to_numpy(got), tx.numpy(), **TOL)
    np.testing.assert_array_equal(backend.to_numpy(xb), x0)  # x0 is not modified


def _resnet_pair(backend):
    """small_resnet with non-trivial BatchNorm statistics, and its torch twin in eval mode."""
    model = small_resnet(width=4, backend=backend, dtype="float64", rng=nn.random.Generator(5))
    rng = np.random.default_rng(0)
    state = model.state_dict()
    for k in state:
        if k.endswith("running_mean"):
            state[k] = rng.standard_normal(state[k].shape) * 0.1
        elif k.endswith("running_var"):
            state[k] = rng.random(state[k].shape) + 0.5
    model.load_state_dict(state)
    tmodel = torch_small_resnet(width=4).double().eval()
    tmodel.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return model, tmodel


def test_nested_layer_eval_mode_and_no_side_effects(backend):
    """Grad-CAM inside a Residual block (BatchNorm in eval mode); nothing about the model changes."""
    model, tmodel = _resnet_pair(backend)
    x, t = _digits(2, seed=1), np.array([6, 2])
    model.zero_grad()
    _, bp = model.forward(backend.asarray(x), train=False)
    bp(backend.asarray(np.ones((2, 10))))  # some existing gradients, which interpret must not touch
    before = {n: backend.to_numpy(p.grad) for n, p in model.named_parameters()}
    frozen_name = "0.weight"
    dict(model.named_parameters())[frozen_name].requires_grad = False
    state = model.state_dict()
    model[3].eval()  # a mixed model: interpret must leave every layer's mode as it was
    modes = {n: layer.training for n, layer in model.named_layers()}
    assert not all(modes.values()) and any(modes.values())
    children = {n: list(layer._children.items()) for n, layer in model.named_layers()}

    got = nn.interpret.grad_cam(model, backend.asarray(x), t, "3.block.3")
    ref = _torch_grad_cam(tmodel, tmodel[3].block[3], x, t)
    assert_close(backend.to_numpy(got), ref, **TOL)
    assert_close(backend.to_numpy(nn.interpret.input_gradient(model, backend.asarray(x), t)),
                 _torch_input_grad(tmodel, x, t), **TOL)
    nn.interpret.smoothgrad(model, backend.asarray(x), t, samples=2)
    nn.interpret.occlusion(model, backend.asarray(x), t, patch=14, stride=14)
    nn.interpret.class_model(model, t, backend.asarray(x), steps=1)

    for n, p in model.named_parameters():
        np.testing.assert_array_equal(backend.to_numpy(p.grad), before[n], err_msg=n)
        assert p.requires_grad == (n != frozen_name), n
    for k, v in model.state_dict().items():  # BatchNorm statistics untouched: eval mode
        np.testing.assert_array_equal(v, state[k], err_msg=k)
    assert {n: layer.training for n, layer in model.named_layers()} == modes
    assert {n: list(layer._children.items()) for n, layer in model.named_layers()} == children


class _ListNet(nn.Layer):
    """A user-written model: a LayerList walked by hand in forward, then a Sequential head."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.blocks = nn.LayerList([nn.Conv2D(1, 2, 3, padding=1, **kw), nn.ReLU(**kw)])
        self.head = nn.Sequential(nn.Flatten(**kw), nn.Linear(2 * 6 * 6, 3, **kw))

    def forward(self, x, train=None):
        backs = []
        for block in self.blocks:
            x, back = block.forward(x, train)
            backs.append(back)
        y, back_head = self.head.forward(x, train)

        def backprop(dy, need_dx=True):
            d = back_head(dy)
            for back in reversed(backs):
                d = back(d, need_dx=need_dx)
            return d

        return y, backprop


def test_grad_cam_in_a_user_model_with_a_layer_list(backend):
    kw = dict(backend=backend, dtype="float64")
    nn.manual_seed(0)  # fixed weights: a map that is not all zero
    model = _ListNet(**kw)
    tnn = torch.nn

    class TorchListNet(tnn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = tnn.ModuleList([tnn.Conv2d(1, 2, 3, padding=1), tnn.ReLU()])
            self.head = tnn.Sequential(tnn.Flatten(), tnn.Linear(72, 3))

        def forward(self, x):
            for block in self.blocks:
                x = block(x)
            return self.head(x)

    tmodel = TorchListNet().double()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x, t = np.random.default_rng(3).standard_normal((2, 1, 6, 6)), np.array([0, 2])
    got = nn.interpret.grad_cam(model, backend.asarray(x), t, "blocks.1")
    ref = _torch_grad_cam(tmodel, tmodel.blocks[1], x, t)
    assert np.abs(ref).max() > 0
    assert_close(backend.to_numpy(got), ref, **TOL)
    assert model.blocks[1].__class__ is nn.ReLU  # the model itself still holds the plain layer


def test_no_host_round_trips(backend, weights):
    model, _ = _pair(backend, weights)
    x = backend.asarray(_digits(2))
    t = backend.asarray(np.array([1, 2]))
    with sync_guard(forbid=True):
        nn.interpret.input_gradient(model, x, t)
        nn.interpret.saliency(model, x, 3)
        nn.interpret.grad_cam(model, x, t, "4")
        nn.interpret.occlusion(model, x, t, patch=14, stride=14)
        nn.interpret.class_model(model, t, x, steps=2)
    with sync_guard(forbid=True, allow=("to_device",)) as syncs:  # the noise: drawn on the host, moved once
        nn.interpret.smoothgrad(model, x, t, samples=3, batch_size=4)
    assert syncs.counts["to_host"] == 0 and syncs.counts["to_device"] <= 2  # 3 samples of 2 images, 2 per pass


def test_errors():
    model = mnist_cnn(rng=nn.random.Generator(0))
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)
    I = nn.interpret
    with pytest.raises(ValueError, match=r"grad_cam: `layer` 'conv9' is not a layer of the model; expected one of "
                                         r"the named_layers\(\) names \['0', '1'"):
        I.grad_cam(model, x, 1, "conv9")
    with pytest.raises(ValueError, match=r"grad_cam: layer '8' outputs shape \(2, 128\); Grad-CAM needs a 4-D"):
        I.grad_cam(model, x, 1, "8")
    with pytest.raises(ValueError, match=r"saliency: `target` 10 is out of range for a model with 10 classes"):
        I.saliency(model, x, 10)
    with pytest.raises(ValueError, match=r"saliency: `target` must be a class id >= 0, got -1"):
        I.saliency(model, x, -1)
    with pytest.raises(ValueError, match=r"input_gradient: `target` must be an int or \(2,\) integer class ids, "
                                         r"got shape \(3,\)"):
        I.input_gradient(model, x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"input_gradient: expected `x` of shape \(N, C, H, W\), got shape "
                                         r"\(2, 784\)"):
        I.input_gradient(model, x.reshape(2, 784), 1)
    with pytest.raises(TypeError, match=r"occlusion: `model` must be an anyxp_nn Layer, got function"):
        I.occlusion(lambda a: a, x, 1)
    with pytest.raises(ValueError, match=r"occlusion: `patch` \(29, 29\) is larger than the image 28x28"):
        I.occlusion(model, x, 1, patch=29)
    with pytest.raises(ValueError, match=r"smoothgrad: `samples` must be a positive int, got 0"):
        I.smoothgrad(model, x, 1, samples=0)
    with pytest.raises(ValueError, match=r"smoothgrad: `noise` must be a number >= 0, got -0.1"):
        I.smoothgrad(model, x, 1, noise=-0.1)
    with pytest.raises(ValueError, match=r"class_model: `steps` must be a non-negative int, got 1.5"):
        I.class_model(model, 1, x, steps=1.5)
    with pytest.raises(ValueError, match=r"class_model: `l2` must be a number >= 0, got -1"):
        I.class_model(model, 1, x, l2=-1)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match=r"input_gradient: the model must return \(N, num_classes\) logits, got "
                                         r"shape \(2, 1, 28, 28\)"):
        I.input_gradient(nn.Sequential(nn.Identity()), x, 1)
    assert I.saliency(flat, x, 1).shape == (2, 28, 28)


def test_float32_model_stays_float32(backend):
    """A float32 model gets float32 maps, with no float64 temporaries on the way."""
    from anyxp_nn.testing import float64_audit
    model = mnist_cnn(backend=backend, rng=nn.random.Generator(0))
    x = backend.asarray(_digits(2), dtype="float32")
    I = nn.interpret
    with float64_audit(backend) as events:
        maps = [I.input_gradient(model, x, 1), I.saliency(model, x, 1), I.smoothgrad(model, x, 1, samples=2),
                I.grad_cam(model, x, 1, "4"), I.occlusion(model, x, 1, patch=14, stride=14),
                I.class_model(model, 1, x, steps=1)]
    assert not events, [str(e) for e in events[:3]]
    for m in maps:
        assert backend.owns(m) and m.dtype == backend.xp.float32


def test_grad_cam_inside_a_concatenate_branch(backend):
    """The probe reaches a layer inside a Concatenate (a U-Net-style skip) and the map equals torch's."""
    tnn = torch.nn

    class GAP(tnn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))

    kw = dict(backend=backend, dtype="float64")
    nn.manual_seed(0)
    model = nn.Sequential(nn.Conv2D(1, 3, 3, padding=1, **kw),
                          nn.Concatenate(nn.Identity(**kw), nn.Sequential(nn.Conv2D(3, 4, 3, padding=1, **kw),
                                                                          nn.ReLU(**kw))),
                          nn.GlobalAvgPool2D(**kw), nn.Linear(7, 3, **kw))
    tmodel = tnn.Sequential(tnn.Conv2d(1, 3, 3, padding=1),
                            torch_concatenate(tnn.Identity(),
                                              tnn.Sequential(tnn.Conv2d(3, 4, 3, padding=1), tnn.ReLU())),
                            GAP(), tnn.Linear(7, 3)).double()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    x, t = np.random.default_rng(5).standard_normal((2, 1, 5, 5)), np.array([0, 2])
    got = nn.interpret.grad_cam(model, backend.asarray(x), t, "1.1.1")
    ref = _torch_grad_cam(tmodel, tmodel[1]._modules["1"][1], x, t)
    assert np.abs(ref).max() > 0
    assert_close(backend.to_numpy(got), ref, **TOL)
