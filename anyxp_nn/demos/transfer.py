"""Demo section "Transfer Learning": pretrain on digits 0-4, reuse the trunk for digits 5-9.

The workflow a practitioner follows with a pretrained backbone:

1. pretrain the MNIST CNN with BatchNorm after each conv (:func:`cnn_bn`: a conv + BatchNorm
   trunk and a two-layer classifier head) on digits 0-4 and save it with :func:`anyxp_nn.save`;
2. load the checkpoint on another backend (same predictions) and on the run's backend;
3. replace the head by a fresh classifier for digits 5-9, freeze the trunk and put it in
   eval mode (its BatchNorm running statistics stay put), and fine-tune the head on 1 / 3 / 10 /
   50 / 200 labelled images per class; the same model trained from scratch on the same images is the
   baseline (3 seeds each: a table and a learning-curve figure);
4. unfreeze and fine-tune everything with a 10x smaller learning rate for the trunk (two
   optimizer parameter groups);
5. load a torchvision-style ``state_dict`` (keys ``conv1``, ``bn1``, ``layer1.0.conv1``,
   ``layer2.0.downsample.0``, ``fc``) into :func:`anyxp_nn.models.small_resnet` by renaming its keys.

    python -c "import anyxp_nn.demos.transfer as d, pathlib; d.run('numpy', pathlib.Path('out'), quick=True)"
"""
from __future__ import annotations

import pathlib
import re
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.keymap import map_state_dict_keys
from anyxp_nn.models import small_resnet

from ._loop import accuracy
from ._vision import rows_for, start

__all__ = ["run", "cnn_bn", "split_model", "new_head", "train_steps", "accuracy", "FROM_TORCHVISION", "TO_TORCHVISION"]

SECTION = "Transfer Learning"

# -- config (full / quick) -----------------------------------------------------------------------------
WIDTH = 8                                       # small_resnet's width (the key-mapping step)
PRETRAIN_EPOCHS, QUICK_PRETRAIN_EPOCHS, QUICK_PRETRAIN = 4, 2, 1000
SHOTS, QUICK_SHOTS = (1, 3, 10, 50, 200), (3,)  # labelled images per class of digits 5-9
SEEDS, QUICK_SEEDS = (0, 1, 2), (0,)
STEPS, QUICK_STEPS = 150, 60                    # optimizer steps of every fine-tuning run
BATCH, LR = 32, 3e-3                            # pretraining and the from-scratch arm
HEAD_LR = 3e-4                                  # a new head on frozen features (Adam 3e-3 overfits it)
QUICK_TEST = 100                                # held-out images per task in quick mode

# torchvision's ResNet key names -> small_resnet's (rules for ``load_state_dict(key_map=...)``, applied in
# order with re.sub), and the reverse (to write the torchvision-style file the demo then loads)
FROM_TORCHVISION = [
    (r"^conv1\.", "0."), (r"^bn1\.", "1."),
    (r"^layer1\.0\.conv1\.", "3.block.0."), (r"^layer1\.0\.bn1\.", "3.block.1."),
    (r"^layer1\.0\.conv2\.", "3.block.3."), (r"^layer1\.0\.bn2\.", "3.block.4."),
    (r"^layer2\.0\.conv1\.", "5.block.0."), (r"^layer2\.0\.bn1\.", "5.block.1."),
    (r"^layer2\.0\.conv2\.", "5.block.3."), (r"^layer2\.0\.bn2\.", "5.block.4."),
    (r"^layer2\.0\.downsample\.", "5.shortcut."), (r"^fc\.", "8."),
]
TO_TORCHVISION = [("^" + re.escape(new), old[1:].replace("\\.", ".")) for old, new in FROM_TORCHVISION]


def cnn_bn(num_classes: int = 5, backend: Any = None, rng: "nn.Generator | None" = None) -> nn.Sequential:
    """:func:`anyxp_nn.models.mnist_cnn` with a BatchNorm2D after each conv (its bias dropped):
    Conv-BN-ReLU-MaxPool (32, then 64 channels), Flatten, Linear(3136, 128), ReLU, Linear(128, classes)."""
    kw = dict(backend=backend)
    return nn.Sequential(
        nn.Conv2D(1, 32, 3, padding=1, bias=False, rng=rng, **kw), nn.BatchNorm2D(32, **kw), nn.ReLU(**kw),
        nn.MaxPool2D(2, **kw),
        nn.Conv2D(32, 64, 3, padding=1, bias=False, rng=rng, **kw), nn.BatchNorm2D(64, **kw), nn.ReLU(**kw),
        nn.MaxPool2D(2, **kw),
        nn.Flatten(**kw), nn.Linear(64 * 7 * 7, 128, rng=rng, **kw), nn.ReLU(**kw),
        nn.Linear(128, num_classes, rng=rng, **kw),
    )


def split_model(model: nn.Sequential) -> tuple[nn.Sequential, nn.Sequential]:
    """:func:`cnn_bn` -> (trunk: the conv blocks and Flatten, 3136 features; head: the classifier
    Linear(3136, 128), ReLU, Linear(128, classes)).  The conv features are generic strokes; the
    classifier's 128 units were fitted to the old classes, so transfer reuses the trunk only."""
    return model[:9], model[9:]


def new_head(num_classes: int, backend: Any, rng: "nn.Generator | None" = None) -> nn.Sequential:
    """A fresh classifier for the trunk's 3136 features (the architecture of :func:`cnn_bn`'s head)."""
    return nn.Sequential(nn.Linear(64 * 7 * 7, 128, backend=backend, rng=rng), nn.ReLU(backend=backend),
                         nn.Linear(128, num_classes, backend=backend, rng=rng))


def train_steps(model: nn.Layer, opt: Any, X: np.ndarray, y: np.ndarray, *, steps: int, batch: int = BATCH,
                seed: int = 0) -> float:
    """``steps`` optimizer steps of ``nn.fit`` on host data ``X, y``; returns the last step's loss.

    Each epoch is a fresh permutation (drawn from ``seed``) cut into whole batches of ``min(batch, N)``
    (the ragged rest is dropped); when ``steps`` ends inside an epoch, a last ``fit`` call takes the
    first batches of one more permutation (``samples_per_epoch``).  Each layer runs in its own mode: a
    trunk put in ``eval()`` normalises with its BatchNorm running statistics and leaves them as they
    are.  When every trunk parameter is frozen, ``Sequential``'s backprop stops at the head (no input
    gradient is asked for below the lowest trainable layer): the frozen trunk costs one forward pass.
    """
    size = min(batch, len(X))
    per_epoch, rest = divmod(steps, len(X) // size)
    rng = nn.Generator(seed)  # one shuffle stream for both loaders
    kw = dict(batch_size=size, drop_last=True, backend=model.backend, rng=rng)
    loss_fn = nn.losses.softmax_cross_entropy  # fit range-checks the labels once, on the host
    history = None
    if per_epoch:
        history = nn.fit(model, opt, loss_fn, nn.data.DataLoader(X, y, **kw), epochs=per_epoch, metrics=(),
                         progress=False)
    if rest:  # the first `rest` batches of one more permutation
        history = nn.fit(model, opt, loss_fn, nn.data.DataLoader(X, y, samples_per_epoch=rest * size, **kw),
                         epochs=per_epoch + 1, initial_epoch=per_epoch, history=history, metrics=(), progress=False)
    return float(history.steps["loss"][-1]) if history is not None else float("nan")


def _few_shot(X: np.ndarray, y: np.ndarray, shots: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 + seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), shots, replace=False) for c in np.unique(y)])
    return X[idx], y[idx]


def _other_backend(label: str) -> str:
    usable = nn.available_backends()
    for name in ("numpy", "array_api_strict", "torch"):
        if name in usable and name != label.split(":")[0]:
            return name
    return label


def _torchvision_state(model: nn.Layer) -> dict[str, np.ndarray]:
    """The checkpoint a torchvision-style ResNet with these weights would save: its keys, numpy arrays
    (written and read back with torch.save / torch.load when PyTorch is installed)."""
    state = map_state_dict_keys(model.state_dict(), TO_TORCHVISION)
    try:
        import io

        import torch
    except ImportError:
        return state
    buf = io.BytesIO()
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in state.items()}, buf)
    buf.seek(0)
    return {k: v.numpy() for k, v in torch.load(buf, weights_only=True).items()}


def save_figure(curves: dict[str, np.ndarray], shots: tuple[int, ...], path: pathlib.Path) -> pathlib.Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 3.6))
    ax = fig.subplots()
    for name, acc in curves.items():  # acc: (len(shots), seeds)
        m, s = 100 * acc.mean(axis=1), 100 * acc.std(axis=1)
        ax.errorbar(shots, m, yerr=s, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xticks(shots, [str(s) for s in shots])
    ax.set_xlabel("labelled images per class (digits 5-9)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("Transfer from digits 0-4 vs training from scratch", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def run(backend: str, out_dir: pathlib.Path, quick: bool) -> list[dict]:
    """Pretrain, transfer, compare with scratch, unfreeze, load torchvision keys; returns summary rows."""
    b, out_dir, (Xtr, Xte, ytr, yte) = start(backend, out_dir)
    low_tr, low_te, high_tr, high_te = ytr < 5, yte < 5, ytr >= 5, yte >= 5
    shots, seeds, steps = (QUICK_SHOTS, QUICK_SEEDS, QUICK_STEPS) if quick else (SHOTS, SEEDS, STEPS)
    epochs = QUICK_PRETRAIN_EPOCHS if quick else PRETRAIN_EPOCHS
    Xa, ya = Xtr[low_tr], ytr[low_tr]
    if quick:
        Xa, ya = Xa[:QUICK_PRETRAIN], ya[:QUICK_PRETRAIN]
    n_test = QUICK_TEST if quick else len(Xte)
    Xa_te, ya_te = Xte[low_te][:n_test], yte[low_te][:n_test]
    Xb_te, yb_te = Xte[high_te][:n_test], yte[high_te][:n_test] - 5
    items: list[tuple[str, Any, str]] = []  # (item, value, unit) of the summary rows

    # 1. pretrain on digits 0-4 and save
    source = cnn_bn(5, backend=b, rng=nn.Generator(0))
    opt = nn.optim.Adam(source.parameters(), lr=nn.optim.cosine_annealing(LR, epochs * len(Xa) // BATCH))
    train_steps(source, opt, Xa, ya, steps=epochs * len(Xa) // BATCH)
    acc_a = accuracy(source, Xa_te, ya_te)
    ckpt = nn.save(out_dir / "transfer_pretrained_0-4.npz", source)
    print(f"[{SECTION}] pretrained the MNIST CNN with BatchNorm on digits 0-4 ({len(Xa)} images, {epochs} epochs) "
          f"on {b.label}: held-out accuracy {100 * acc_a:.2f}%; saved {ckpt.name}")
    items.append(("pretrain accuracy, digits 0-4", round(100 * acc_a, 2), "%"))

    # 2. load on another backend: the same predictions
    other = _other_backend(b.label)
    copy = cnn_bn(5, backend=other)
    nn.load(ckpt, copy)
    probe = Xa_te[:64]
    gap = float(np.max(np.abs(b.to_numpy(source(b.asarray(probe))) - nn.to_numpy(copy(nn.get_backend(other)
                                                                                     .asarray(probe))))))
    print(f"[{SECTION}] checkpoint loaded on {other}: max |logit difference| {gap:.2e}")
    items.append((f"max logit gap after loading on {other}", gap, ""))

    def pretrained() -> tuple[nn.Sequential, nn.Sequential, nn.Layer]:
        model = cnn_bn(5, backend=b)
        nn.load(ckpt, model)
        trunk, _ = split_model(model)
        head = new_head(5, b, nn.Generator(7))  # a new head for digits 5-9
        return nn.Sequential(trunk, head), trunk, head

    # 3. frozen trunk + new head vs scratch, for each budget of labelled images
    curves = {"transfer (frozen trunk, new head)": np.zeros((len(shots), len(seeds))),
              "from scratch": np.zeros((len(shots), len(seeds)))}
    for i, k in enumerate(shots):
        for j, seed in enumerate(seeds):
            Xk, yk = _few_shot(Xtr[high_tr], ytr[high_tr] - 5, k, seed)
            model, trunk, head = pretrained()
            trunk.freeze().eval()  # weights and BatchNorm statistics stay as pretrained
            opt = nn.optim.Adam(head.parameters(), lr=HEAD_LR)
            train_steps(model, opt, Xk, yk, steps=steps, seed=seed)
            curves["transfer (frozen trunk, new head)"][i, j] = accuracy(model, Xb_te, yb_te)
            scratch = cnn_bn(5, backend=b, rng=nn.Generator(100 + seed))
            opt = nn.optim.Adam(scratch.parameters(), lr=LR)
            train_steps(scratch, opt, Xk, yk, steps=steps, seed=seed)
            curves["from scratch"][i, j] = accuracy(scratch, Xb_te, yb_te)
        transfer_acc = curves["transfer (frozen trunk, new head)"][i].mean()
        print(f"[{SECTION}] {k:4d} images/class: transfer {100 * transfer_acc:.1f}% "
              f"vs scratch {100 * curves['from scratch'][i].mean():.1f}% (mean of {len(seeds)} seeds)")
    print(f"[{SECTION}] digits 5-9, held-out accuracy (%), mean +- std over seeds {list(seeds)}:")
    print(f"  {'images/class':>12s}  {'transfer':>14s}  {'scratch':>14s}")
    for i, k in enumerate(shots):
        cells = [f"{100 * c[i].mean():6.2f} +- {100 * c[i].std():4.2f}" for c in curves.values()]
        print(f"  {k:12d}  {cells[0]:>14s}  {cells[1]:>14s}")
        for name, c in curves.items():
            items.append((f"{name.split(' (')[0]}, {k}/class", round(100 * float(c[i].mean()), 2), "%"))
    fig = save_figure(curves, shots, out_dir / "transfer_learning_curve.png")

    # 4. unfreeze: the trunk at a tenth of the head's learning rate (two parameter groups)
    k = shots[len(shots) // 2]
    Xk, yk = _few_shot(Xtr[high_tr], ytr[high_tr] - 5, k, 0)
    model, trunk, head = pretrained()
    trunk.freeze().eval()
    train_steps(model, nn.optim.Adam(head.parameters(), lr=HEAD_LR), Xk, yk, steps=steps)
    frozen_acc = accuracy(model, Xb_te, yb_te)
    trunk.unfreeze()  # BatchNorm stays in eval: a few hundred images give noisier statistics than pretraining
    opt = nn.optim.Adam([{"params": trunk.parameters(), "lr": HEAD_LR / 10},
                         {"params": head.parameters(), "lr": HEAD_LR}])
    train_steps(model, opt, Xk, yk, steps=steps, seed=1)
    tuned_acc = accuracy(model, Xb_te, yb_te)
    print(f"[{SECTION}] {k} images/class: frozen trunk {100 * frozen_acc:.2f}% -> unfrozen (trunk lr "
          f"{HEAD_LR / 10:g}, head lr {HEAD_LR:g}) {100 * tuned_acc:.2f}%")
    items += [(f"frozen trunk, {k}/class (seed 0)", round(100 * frozen_acc, 2), "%"),
              (f"then unfrozen at lr/10, {k}/class", round(100 * tuned_acc, 2), "%")]

    # 5. a torchvision-style state_dict (conv1 / bn1 / layer1.0... / layer2.0.downsample.0 / fc)
    resnet = small_resnet(5, backend=b, rng=nn.Generator(3), width=WIDTH)
    tv = _torchvision_state(resnet)
    loaded = small_resnet(5, backend=b, width=WIDTH)
    loaded.load_state_dict(tv, key_map=FROM_TORCHVISION)
    probe = b.asarray(Xa_te[:64])
    tv_gap = float(np.max(np.abs(b.to_numpy(loaded(probe)) - b.to_numpy(resnet(probe)))))
    print(f"[{SECTION}] torchvision-style state_dict ({len(tv)} keys: {', '.join(sorted(tv)[:2])}, ..., "
          f"layer2.0.downsample.0.weight, ...) loaded into small_resnet by renaming keys: max |logit difference| "
          f"{tv_gap:.1e}")
    items += [("torchvision-keyed state_dict: max logit gap", tv_gap, ""), (f"figure {fig.stem}", str(fig), "png")]
    return rows_for(SECTION, items)
