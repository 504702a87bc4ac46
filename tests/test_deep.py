"""BatchNorm running statistics vs PyTorch, Dropout masks, Residual, and their error messages."""
import numpy as np
import pytest

import anyxp_nn as nn


def _mlp_bn(**kw):
    return nn.Sequential(nn.Linear(5, 8, **kw), nn.BatchNorm1D(8, **kw), nn.ReLU(**kw), nn.Linear(8, 3, **kw))


def test_batchnorm_running_stats_after_sgd_steps_equal_torch(backend):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    nn.manual_seed(0)
    model = _mlp_bn(backend=backend, dtype="float64")
    tmodel = tnn.Sequential(tnn.Linear(5, 8), tnn.BatchNorm1d(8), tnn.ReLU(), tnn.Linear(8, 3)).double()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    opt = nn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(1)
    for _ in range(6):
        x, y = rng.standard_normal((16, 5)) * 2 + 1, rng.integers(0, 3, 16)
        logits, back = model.forward(backend.asarray(x))
        _, dlogits = nn.losses.softmax_cross_entropy(logits, backend.asarray(y))
        model.zero_grad()
        back(dlogits)
        opt.step()
        topt.zero_grad()
        tnn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    ours, theirs = model.state_dict(), tmodel.state_dict()
    assert list(ours) == list(theirs)
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k].numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    assert ours["1.num_batches_tracked"].dtype == np.int64 and int(ours["1.num_batches_tracked"]) == 6
    tmodel.eval()
    x = rng.standard_normal((4, 5))
    np.testing.assert_allclose(backend.to_numpy(model(backend.asarray(x))), tmodel(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-12)


def test_batchnorm2d_torch_state_dict_loads_unchanged(backend):
    torch = pytest.importorskip("torch")
    tbn = torch.nn.BatchNorm2d(3, momentum=0.2)
    with torch.no_grad():
        tbn.weight.uniform_(0.5, 1.5)
        tbn.bias.uniform_(-0.5, 0.5)
    rng = np.random.default_rng(2)
    for _ in range(4):
        tbn(torch.from_numpy(rng.standard_normal((5, 3, 4, 4)).astype(np.float32)) * 3 + 1)
    bn = nn.BatchNorm2D(3, momentum=0.2, backend=backend)
    bn.load_state_dict({k: v.numpy() for k, v in tbn.state_dict().items()})  # int64 num_batches_tracked too
    assert int(bn.state_dict()["num_batches_tracked"]) == 4
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    tbn.eval()
    np.testing.assert_allclose(backend.to_numpy(bn(backend.asarray(x))), tbn(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    # and one more training batch moves both the same way
    tbn.train()
    bn.forward(backend.asarray(x))
    tbn(torch.from_numpy(x))
    for k, v in tbn.state_dict().items():
        np.testing.assert_allclose(bn.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_batchnorm_eval_accepts_a_batch_of_one_and_frozen_gets_no_grad(backend):
    bn = nn.BatchNorm2D(2, backend=backend)
    y = bn(backend.asarray(np.ones((1, 2, 1, 1)), dtype="float32"))
    assert tuple(y.shape) == (1, 2, 1, 1)
    bn.freeze()
    _, back = bn.forward(backend.asarray(np.random.default_rng(0).standard_normal((3, 2, 2, 2)), dtype="float32"))
    dx = back(backend.asarray(np.ones((3, 2, 2, 2)), dtype="float32"))
    assert bn.weight.grad is None and bn.bias.grad is None and tuple(dx.shape) == (3, 2, 2, 2)


def test_dropout_mask_statistics_and_eval_identity(backend):
    d = nn.Dropout(0.25, backend=backend)
    x = backend.asarray(np.ones((200, 100)), dtype="float32")
    y, back = d.forward(x, train=True)
    h = backend.to_numpy(y)
    kept = h != 0
    assert abs(kept.mean() - 0.75) < 0.01
    np.testing.assert_allclose(h[kept], 1 / 0.75, rtol=1e-6)
    dx = backend.to_numpy(back(backend.asarray(np.full((200, 100), 2.0), dtype="float32")))
    np.testing.assert_allclose(dx, np.where(kept, 2 / 0.75, 0.0), rtol=1e-6)
    assert d.forward(x, train=False)[0] is x and d(x) is x


def test_dropout_same_seed_same_mask_on_every_backend(backend):
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    ref = nn.Dropout(0.5, rng=nn.Generator(3), backend="numpy").forward(nn.get_backend("numpy").asarray(x))[0]
    d = nn.Dropout(0.5, rng=nn.Generator(3), backend=backend)
    assert isinstance(d.rng, nn.Generator)
    np.testing.assert_array_equal(backend.to_numpy(d.forward(backend.asarray(x))[0]), ref)


def test_residual_gradient_is_block_plus_shortcut(backend):
    nn.manual_seed(0)
    block = nn.Sequential(nn.Linear(4, 4, backend=backend, dtype="float64"), nn.Tanh(backend=backend, dtype="float64"))
    res = nn.Residual(block)
    x = backend.asarray(np.random.default_rng(0).standard_normal((3, 4)))
    dy = backend.asarray(np.random.default_rng(1).standard_normal((3, 4)))
    y, back = res.forward(x)
    _, back_block = block.forward(x)
    np.testing.assert_allclose(backend.to_numpy(y), backend.to_numpy(block(x) + x))
    np.testing.assert_allclose(backend.to_numpy(back(dy)), backend.to_numpy(back_block(dy) + dy))
    assert back(dy, need_dx=False) is None
    proj = nn.Residual(nn.Linear(4, 6, backend=backend), shortcut=nn.Linear(4, 6, bias=False, backend=backend))
    assert list(proj.state_dict()) == ["block.weight", "block.bias", "shortcut.weight"]
    assert [n for n, _ in proj.named_children()] == ["block", "shortcut"]


def test_errors(backend):
    f32 = dict(dtype="float32")
    with pytest.raises(ValueError, match=r"BatchNorm2D\(3.*Expected more than 1 value per channel when training, "
                                         r"got input of shape \(1, 3, 1, 1\)"):
        nn.BatchNorm2D(3, backend=backend).forward(backend.asarray(np.ones((1, 3, 1, 1)), **f32))
    with pytest.raises(ValueError, match=r"BatchNorm1D\(4.*Expected more than 1 value per channel when training"):
        nn.BatchNorm1D(4, backend=backend).forward(backend.asarray(np.ones((1, 4)), **f32))
    with pytest.raises(ValueError, match=r"BatchNorm2D\(4.*expected 4 channels on axis 1 \(`num_features`\), "
                                         r"got input of shape \(2, 3, 5, 5\)"):
        nn.BatchNorm2D(4, backend=backend).forward(backend.asarray(np.ones((2, 3, 5, 5)), **f32))
    with pytest.raises(ValueError, match=r"BatchNorm1D: `num_features` must be a positive int, got 0"):
        nn.BatchNorm1D(0)
    with pytest.raises(ValueError, match=r"BatchNorm2D: `momentum` must be a float in \[0, 1\], got 1.5"):
        nn.BatchNorm2D(3, momentum=1.5)
    with pytest.raises(ValueError, match=r"got None \(PyTorch's momentum=None cumulative average is not supported\)"):
        nn.BatchNorm1D(3, momentum=None)
    with pytest.raises(ValueError, match=r"BatchNorm2D: `eps` must be > 0, got 0"):
        nn.BatchNorm2D(3, eps=0)
    for p in (1.0, -0.1, 2):
        with pytest.raises(ValueError, match=r"Dropout: `p` must be a float in \[0, 1\), got"):
            nn.Dropout(p)
    with pytest.raises(ValueError, match=r"LayerNorm: `normalized_shape` must be a positive int or a tuple"):
        nn.LayerNorm((3, 0))
    with pytest.raises(ValueError, match=r"Residual: the block's output shape \(2, 5\) differs from the input shape "
                                         r"\(2, 4\); pass a projection `shortcut`"):
        nn.Residual(nn.Linear(4, 5, backend=backend)).forward(backend.asarray(np.ones((2, 4)), **f32))
    with pytest.raises(TypeError, match="Residual: `block` must be a Layer, got function"):
        nn.Residual(lambda x: x)


def test_small_resnet_matches_torch_train_step(backend):
    torch = pytest.importorskip("torch")
    from anyxp_nn.models import small_resnet
    model = small_resnet(10, backend=backend, dtype="float64", rng=nn.Generator(0), width=4)
    from anyxp_nn.testing.torch_models import torch_small_resnet
    tmodel = torch_small_resnet(4).double()
    tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(0)
    x, y = rng.random((4, 1, 10, 10)), rng.integers(0, 10, 4)
    logits, back = model.forward(backend.asarray(x))
    loss, dlogits = nn.losses.softmax_cross_entropy(logits, backend.asarray(y))
    dx = back(dlogits)
    tx = torch.from_numpy(x).requires_grad_(True)
    tloss = torch.nn.functional.cross_entropy(tmodel(tx), torch.from_numpy(y))
    tloss.backward()
    np.testing.assert_allclose(float(backend.to_numpy(loss)), tloss.item(), rtol=1e-10)
    np.testing.assert_allclose(backend.to_numpy(dx), tx.grad.numpy(), rtol=1e-7, atol=1e-12)
    grads = dict(model.named_parameters())
    for k, p in tmodel.named_parameters():
        np.testing.assert_allclose(backend.to_numpy(grads[k].grad), p.grad.numpy(), rtol=1e-7, atol=1e-12, err_msg=k)
    for k, v in tmodel.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[k], v.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    tmodel.eval()
    np.testing.assert_allclose(backend.to_numpy(model(backend.asarray(x))), tmodel(tx).detach().numpy(),
                               rtol=1e-9, atol=1e-12)
