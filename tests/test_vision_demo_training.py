"""The vision demos train with ``nn.fit``: each one's ``train`` matches the hand-written loop it
replaced (same batches in the same order, ragged last batch dropped, same optimizer steps), so
the printed numbers stayed the same.  Tiny models; every backend."""
import numpy as np

import anyxp_nn as nn
from anyxp_nn import vision as V
from anyxp_nn.demos import detection, segmentation, transfer


def _params(model):
    return [model.backend.to_numpy(p.data) for p in model.parameters()]


def _same_params(a, b):
    for x, y in zip(_params(a), _params(b)):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


def _conv(backend, c_out, seed=0):
    return nn.Sequential(nn.Conv2D(1, 4, 3, padding=1, backend=backend, rng=nn.Generator(seed)),
                         nn.ReLU(backend=backend),
                         nn.Conv2D(4, c_out, 3, padding=1, backend=backend, rng=nn.Generator(seed + 1)))


# -- the loops the demos used to write by hand -----------------------------------------------------

def _hand_epochs(model, opt, epochs, draw, loss_fn, batch, seed):
    b, xp = model.backend, model.backend.xp
    rng, means = nn.Generator(seed), []
    for epoch in range(epochs):
        X, Y = draw(epoch)
        Xd, Yd = b.asarray(X, dtype=model.dtype), b.asarray(Y)
        perm = rng.permutation(len(X))
        losses = []
        for i in range(0, len(X) - batch + 1, batch):
            idx = b.asarray(perm[i:i + batch])
            out, backprop = model.forward(xp.take(Xd, idx, axis=0), train=True)
            loss, dout = loss_fn(out, xp.take(Yd, idx, axis=0))
            model.zero_grad()
            backprop(dout, need_dx=False)
            opt.step()
            losses.append(float(b.to_numpy(loss)))
        means.append(float(np.mean(losses)))
    return means


def _hand_steps(trunk, head, opt, X, y, steps, batch, seed):
    b, xp = head.backend, head.backend.xp
    X, y = b.asarray(X), b.asarray(y)
    rng, n = nn.Generator(seed), X.shape[0]
    train_trunk = any(p.requires_grad for p in trunk.parameters())
    perm, pos, loss = rng.permutation(n), 0, None
    for _ in range(steps):
        if pos + min(batch, n) > n:
            perm, pos = rng.permutation(n), 0
        idx = b.asarray(perm[pos:pos + batch])
        pos += batch
        feats, back_trunk = trunk.forward(xp.take(X, idx, axis=0))
        logits, back_head = head.forward(feats)
        loss, dlogits = nn.losses.softmax_cross_entropy(logits, xp.take(y, idx, axis=0))
        trunk.zero_grad()
        head.zero_grad()
        dfeats = back_head(dlogits, need_dx=train_trunk)
        if train_trunk:
            back_trunk(dfeats, need_dx=False)
        opt.step()
    return float(b.to_numpy(loss))


# -- the demos' fit-based training -----------------------------------------------------------------

def test_segmentation_train_matches_the_hand_loop(backend):
    host = np.random.default_rng(0)
    data = {e: (host.uniform(size=(10, 1, 6, 6)).astype(np.float32), host.integers(0, 3, size=(10, 6, 6)))
            for e in range(3)}
    weight = np.array([0.5, 1.2, 1.3], dtype=np.float32)
    logs = []
    model = _conv(backend, 3)
    got = segmentation.train(model, data.__getitem__, weight, epochs=3, lr=1e-2, batch=4, seed=5, log=logs.append)

    ref = _conv(backend, 3)
    opt = nn.optim.Adam(ref.parameters(), lr=nn.optim.cosine_annealing(1e-2, 3 * (10 // 4)))
    wd = backend.asarray(weight, dtype=ref.dtype)
    want = _hand_epochs(ref, opt, 3, data.__getitem__, lambda z, m: V.segmentation_loss(z, m, wd, dice=1.0), 4, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    _same_params(model, ref)
    assert len(logs) == 3 and logs[-1].startswith("  epoch 3/3: loss (cross-entropy + 1 Dice) ")


def test_detection_train_matches_the_hand_loop(backend):
    host = np.random.default_rng(1)
    X = host.uniform(size=(9, 1, 4, 4)).astype(np.float32)
    xy = host.uniform(0, 5, size=(9, 2, 2))
    boxes = np.concatenate([xy, xy + host.uniform(1, 3, size=(9, 2, 2))], axis=-1).astype(np.float32)
    labels, valid = host.integers(0, 2, size=(9, 2)), host.uniform(size=(9, 2)) < 0.7
    targets = V.encode_grid(backend.asarray(boxes), backend.asarray(labels), backend.asarray(valid), 4, 8)
    logs = []
    model = _conv(backend, 7)
    got = detection.train(model, X, targets, epochs=2, lr=1e-2, batch=4, seed=3, log=logs.append)

    ref = _conv(backend, 7)
    opt = nn.optim.Adam(ref.parameters(), lr=nn.optim.cosine_annealing(1e-2, 2 * (9 // 4)))
    want = _hand_epochs(ref, opt, 2, lambda e: (X, backend.to_numpy(targets)), V.detection_loss, 4, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    _same_params(model, ref)
    assert logs == [f"  epoch {e + 1}/2: detection loss {v:.4f}" for e, v in enumerate(got)]


def _mlp(backend, seed):
    rng = nn.Generator(seed)
    trunk = nn.Sequential(nn.Linear(6, 5, backend=backend, rng=rng), nn.ReLU(backend=backend))
    head = nn.Sequential(nn.Linear(5, 5, backend=backend, rng=rng), nn.ReLU(backend=backend),
                         nn.Linear(5, 3, backend=backend, rng=rng))
    return nn.Sequential(trunk, head), trunk, head


def test_transfer_train_steps_matches_the_hand_loop(backend):
    host = np.random.default_rng(2)
    X, y = host.normal(size=(10, 6)).astype(np.float32), host.integers(0, 3, size=10)
    # 7 steps of 4 of 10 samples: 3 epochs of 2 batches, then 1 batch of a 4th permutation;
    # 5 steps of 3 samples with batch 4: every step is a whole permutation
    for n, steps, frozen in ((10, 7, False), (10, 7, True), (3, 5, False)):
        model, trunk, head = _mlp(backend, 0)
        ref, r_trunk, r_head = _mlp(backend, 0)
        if frozen:
            trunk.freeze()
            r_trunk.freeze()
        opt = nn.optim.Adam((head if frozen else model).parameters(), lr=1e-2)
        r_opt = nn.optim.Adam((r_head if frozen else ref).parameters(), lr=1e-2)
        got = transfer.train_steps(model, opt, X[:n], y[:n], steps=steps, batch=4, seed=4)
        want = _hand_steps(r_trunk, r_head, r_opt, X[:n], y[:n], steps, 4, 4)
        assert opt.step_count == steps
        np.testing.assert_allclose(got, want, rtol=1e-5)
        _same_params(model, ref)
