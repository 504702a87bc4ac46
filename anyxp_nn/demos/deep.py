"""Demo section "Deep Learning Optimization": batch norm, dropout, residual connections,
data augmentation and a small ResNet on MNIST-5k.

``run(backend, out_dir, quick)`` saves one figure per experiment into ``out_dir`` and
returns summary rows.  Every experiment trains with ``nn.fit`` and minibatch SGD
(:func:`train`).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

import anyxp_nn as nn
from anyxp_nn import augment as A
from anyxp_nn.datasets import load_mnist_5k, train_test_split

from ._loop import EachEpoch, accuracy, subplots

SECTION = "Deep Learning Optimization"


# -- the training call shared by every experiment ------------------------------------------------

def train(model: nn.Layer, X: np.ndarray, y: np.ndarray, *, epochs: int, lr: Any, batch_size: int = 64,
          momentum: float = 0.9, augment: "Callable[..., Any] | None" = None, seed: int = 0,
          on_epoch: "Callable[[int], None] | None" = None) -> list[float]:
    """``nn.fit`` with minibatch SGD on host data (the ragged last batch dropped); returns the
    loss of every step.

    ``lr`` is a float or a schedule ``step -> float`` (``"cosine"``: cosine annealing to 0 over the run).
    ``augment(xb, rng=...)`` transforms each device batch, drawing from the loader's generator.
    """
    loader = nn.data.DataLoader(X, y, batch_size=batch_size, drop_last=True, augment=augment,
                                backend=model.backend, rng=nn.Generator(seed), dtype=model.dtype)
    if lr == "cosine":
        lr = nn.optim.cosine_annealing(0.1, epochs * len(loader))
    opt = nn.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    each = [EachEpoch(lambda epoch, row: on_epoch(epoch))] if on_epoch is not None else []
    history = nn.fit(model, opt, nn.losses.softmax_cross_entropy, loader, epochs=epochs, metrics=(),
                     callbacks=each, progress=False)
    return list(history.steps["loss"])


def evaluate(model: nn.Layer, X: np.ndarray, y: np.ndarray, batch_size: int = 500) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in inference mode, from ``nn.training.evaluate``."""
    r = nn.training.evaluate(model, (X, y), nn.losses.softmax_cross_entropy, ("accuracy",), batch_size=batch_size)
    return r["loss"], r["accuracy"]


def _row(item: str, value: float, unit: str) -> dict:
    return {"section": SECTION, "item": item, "value": float(f"{float(value):.4g}"), "unit": unit}


def _smooth(v: list[float], k: int = 10) -> np.ndarray:
    v = np.asarray(v)
    k = max(1, min(k, len(v)))
    return np.convolve(v, np.ones(k) / k, mode="valid")


# -- 1. batch norm ------------------------------------------------------------------------------

def _mlp(depth: int, width: int, bn: bool, dropout: float, kw: dict) -> nn.Sequential:
    layers: list[nn.Layer] = []
    fan_in = 784
    for _ in range(depth):
        layers.append(nn.Linear(fan_in, width, **kw))
        if bn:
            layers.append(nn.BatchNorm1D(width, **kw))
        layers.append(nn.ReLU(**kw))
        if dropout:
            layers.append(nn.Dropout(dropout, **kw))
        fan_in = width
    layers.append(nn.Linear(fan_in, 10, **kw))
    return nn.Sequential(*layers)


def batchnorm_experiment(data: tuple, kw: dict, out: Path, quick: bool) -> list[dict]:
    Xtr, Xte, ytr, yte = data
    epochs = 1 if quick else 4
    curves, rows = {}, []
    for bn in (False, True):
        nn.manual_seed(1)
        model = _mlp(4, 128, bn, 0.0, kw)
        # a small learning rate and no momentum: the regime where normalisation helps most
        curves[bn] = train(model, Xtr, ytr, epochs=epochs, lr=0.02, momentum=0.0, seed=1)
        name = "with BatchNorm" if bn else "without BatchNorm"
        rows.append(_row(f"MLP 4x128 {name}: hold-out accuracy", accuracy(model, Xte, yte), "fraction"))
        rows.append(_row(f"MLP 4x128 {name}: final training loss", np.mean(curves[bn][-10:]), "nats"))
    fig, ax = subplots(figsize=(6, 4))
    for bn, c in curves.items():
        ax.plot(_smooth(c), label="with BatchNorm1D" if bn else "plain")
    ax.set(xlabel="SGD step", ylabel="training loss (10-step mean)", yscale="log",
           title="4-layer MLP on MNIST, SGD lr=0.02")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "deep_batchnorm.png", dpi=110)
    return rows


# -- 2. dropout ---------------------------------------------------------------------------------

def dropout_experiment(data: tuple, kw: dict, out: Path, quick: bool) -> list[dict]:
    Xtr, Xte, ytr, yte = data
    n = 500  # a small training set with 30% of its labels replaced by random ones invites memorising
    epochs = 10 if quick else 40
    X, y = Xtr[:n], ytr[:n].copy()
    noise = np.random.default_rng(0)
    flip = noise.random(n) < 0.3
    y[flip] = noise.integers(0, 10, int(flip.sum()))
    rows, hist = [], {}
    for p in (0.0, 0.5):
        nn.manual_seed(2)
        model = _mlp(2, 512, False, p, kw)
        tr: list[tuple[float, float]] = []
        va: list[tuple[float, float]] = []

        def log(epoch: int, model: nn.Layer = model, tr: list = tr, va: list = va) -> None:
            tr.append(evaluate(model, X, y))
            va.append(evaluate(model, Xte, yte))

        train(model, X, y, epochs=epochs, lr=0.05, batch_size=50, seed=2, on_epoch=log)
        hist[p] = (tr, va)
        label = f"Dropout({p})" if p else "no dropout"
        (_, ta), (_, vacc) = tr[-1], va[-1]  # (loss, accuracy) pairs
        what = f"MLP 2x512, 500 images with 30% noisy labels, {label}"
        rows.append(_row(f"{what}: train accuracy", ta, "fraction"))
        rows.append(_row(f"{what}: hold-out accuracy", vacc, "fraction"))
        rows.append(_row(f"{what}: train - hold-out accuracy gap", ta - vacc, "fraction"))
    fig, (a1, a2) = subplots(1, 2, figsize=(11, 4))
    ep = range(1, epochs + 1)
    for p, (tr, va) in hist.items():
        label = f"Dropout({p})" if p else "no dropout"
        line, = a1.plot(ep, [t[0] for t in tr], label=f"{label}: train")
        a1.plot(ep, [v[0] for v in va], "--", color=line.get_color(), label=f"{label}: hold-out")
        line, = a2.plot(ep, [t[1] for t in tr], label=f"{label}: train")
        a2.plot(ep, [v[1] for v in va], "--", color=line.get_color(), label=f"{label}: hold-out")
    a1.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="Loss: the gap is the overfitting")
    a2.set(xlabel="epoch", ylabel="accuracy (against the noisy training labels)",
           title="500 training images, 30% of labels random")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "deep_dropout.png", dpi=110)
    return rows


# -- 3. plain vs residual at depth 20 -----------------------------------------------------------

def _deep_net(residual: bool, width: int, kw: dict) -> nn.Sequential:
    """20 hidden Linear layers; residual: the same 20 layers paired into 10 blocks with identity shortcuts."""
    init = dict(init="torch", **kw)  # PyTorch's default init (gain 1/sqrt(3)): the signal shrinks per layer
    layers: list[nn.Layer] = [nn.Linear(784, width, **init), nn.ReLU(**kw)]
    for _ in range(10):
        pair = [nn.Linear(width, width, **init), nn.ReLU(**kw), nn.Linear(width, width, **init)]
        layers += ([nn.Residual(nn.Sequential(*pair)), nn.ReLU(**kw)] if residual
                   else pair + [nn.ReLU(**kw)])
    layers.append(nn.Linear(width, 10, **init))
    return nn.Sequential(*layers)


def _hidden_grad_norms(model: nn.Layer) -> list[float]:
    """Norm of dL/dW for each of the 20 hidden width x width layers, input side first."""
    return [float(np.linalg.norm(nn.to_numpy(p.grad))) for name, p in model.named_parameters()
            if name.endswith("weight") and p.shape[0] == p.shape[1] and p.grad is not None]


def residual_experiment(data: tuple, kw: dict, out: Path, quick: bool) -> list[dict]:
    Xtr, _, ytr, _ = data
    width = 64
    epochs = 1 if quick else 3
    rows, norms, curves = [], {}, {}
    b = nn.get_backend(kw["backend"])
    for residual in (False, True):
        nn.manual_seed(3)
        model = _deep_net(residual, width, kw)
        logits, back = model.forward(b.asarray(Xtr[:256], dtype=model.dtype))
        _, d = nn.losses.softmax_cross_entropy(logits, b.asarray(ytr[:256]))
        model.zero_grad()
        back(d)
        norms[residual] = _hidden_grad_norms(model)
        curves[residual] = train(model, Xtr, ytr, epochs=epochs, lr=0.02, seed=3)
        name = "residual" if residual else "plain"
        rows.append(_row(f"20-layer {name} MLP: |dL/dW| first/last hidden layer at init",
                         norms[residual][0] / norms[residual][-1], "ratio"))
        rows.append(_row(f"20-layer {name} MLP: final training loss", np.mean(curves[residual][-10:]), "nats"))
    fig, (a1, a2) = subplots(1, 2, figsize=(11, 4))
    for residual in (False, True):
        label = "residual (10 blocks of 2)" if residual else "plain"
        a1.semilogy(range(1, 21), norms[residual], "o-", label=label)
        a2.plot(_smooth(curves[residual]), label=label)
    a1.set(xlabel="hidden layer (input side = 1)", ylabel="||dL/dW|| at initialisation",
           title="Gradient norm per layer, depth 20")
    a2.set(xlabel="SGD step", ylabel="training loss (10-step mean)", title="Training loss")
    a1.legend()
    a2.legend()
    fig.tight_layout()
    fig.savefig(out / "deep_residual.png", dpi=110)
    return rows


# -- 4. augmentation gallery ----------------------------------------------------------------------

def augmentation_grid(data: tuple, kw: dict, out: Path) -> list[dict]:
    Xtr, _, ytr, _ = data
    b = nn.get_backend(kw["backend"])
    x = b.asarray(Xtr[:6])
    transforms = {
        "original": None,
        "flip": A.RandomFlip(p=1.0),
        "crop (pad 4)": A.RandomCrop(28, padding=4),
        "translate 4": A.RandomTranslate(4),
        "rotate 30": A.RandomRotation(30),
        "noise 0.2": A.GaussianNoise(0.2, clip=(0.0, 1.0)),
        "cutout 10": A.Cutout(10),
        "jitter": A.ColorJitter(0.5, 0.5),
    }
    cols = {name: (x if t is None else t(x, rng=4)) for name, t in transforms.items()}
    mixed, soft = A.MixUp(1.0)(x, b.asarray(ytr[:6]), 10, rng=4)
    cols["mixup"] = mixed
    fig, axes = subplots(6, len(cols), figsize=(1.3 * len(cols), 8))
    for j, (name, imgs) in enumerate(cols.items()):
        host = b.to_numpy(imgs)
        for i in range(6):
            ax = axes[i, j]
            ax.imshow(host[i, 0], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
    soft = b.to_numpy(soft)
    for i in range(6):
        top = np.argsort(soft[i])[::-1][:2]
        axes[i, -1].set_xlabel(" ".join(f"{c}:{soft[i, c]:.2f}" for c in top if soft[i, c] > 0), fontsize=7)
    fig.suptitle("Per-sample augmentations of one batch (seed 4)")
    fig.tight_layout()
    fig.savefig(out / "deep_augmentations.png", dpi=110)
    # cost of a typical pipeline on a batch of 64 (best of 5 after one warm-up)
    pipe = A.Compose([A.RandomCrop(28, padding=2), A.RandomRotation(10)])
    x64 = b.asarray(Xtr[:64])
    pipe(x64, rng=0)
    times = []
    for k in range(5):
        t = time.perf_counter()
        y = pipe(x64, rng=k)
        b.synchronize()
        times.append(time.perf_counter() - t)
    del y
    return [_row("crop+rotation augmentation of 64 MNIST images", 1e3 * min(times), "ms")]


def _half(X: np.ndarray) -> np.ndarray:
    """(N, C, 28, 28) -> (N, C, 14, 14) by 2x2 means (host)."""
    n, c, h, w = X.shape
    return X.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


# -- 5. a small ResNet with and without augmentation ---------------------------------------------

def resnet_experiment(data: tuple, kw: dict, out: Path, quick: bool) -> list[dict]:
    from anyxp_nn.models import small_resnet
    Xtr, Xte, ytr, yte = data
    if quick:  # 14x14 images (2x2 means): a quarter of the convolution work
        n, epochs, width, n_test = 1536, 4, 8, 500
        Xtr, Xte = _half(Xtr[:n]), _half(Xte[:n_test])
    else:
        n, epochs, width, n_test = len(Xtr), 8, 16, len(Xte)
    X, y = Xtr[:n], ytr[:n]
    size = X.shape[-1]
    aug = A.Compose([A.RandomCrop(size, padding=max(1, size // 14)), A.RandomRotation(12)])
    rows, hist = [], {}
    for use_aug in (False, True):
        nn.manual_seed(5)
        model = small_resnet(10, rng=nn.Generator(5), width=width, **kw)
        acc: list[float] = []
        t = time.perf_counter()
        losses = train(model, X, y, epochs=epochs, lr="cosine", batch_size=32, augment=aug if use_aug else None, seed=5,
                       on_epoch=lambda e, model=model, acc=acc: acc.append(accuracy(model, Xte[:n_test], yte[:n_test])))
        seconds = time.perf_counter() - t
        hist[use_aug] = (losses, acc)
        name = "with augmentation" if use_aug else "without augmentation"
        rows.append(_row(f"small ResNet (width {width}, {n} images {size}x{size}, {epochs} epochs) {name}: "
                         "hold-out accuracy",
                         acc[-1], "fraction"))
        rows.append(_row(f"small ResNet {name}: training time", seconds, "s"))
    fig, (a1, a2) = subplots(1, 2, figsize=(11, 4))
    for use_aug, (losses, acc) in hist.items():
        label = "crop+rotation" if use_aug else "no augmentation"
        a1.plot(_smooth(losses), label=label)
        a2.plot(range(1, epochs + 1), acc, "o-", label=label)
    a1.set(xlabel="SGD step", ylabel="training loss (10-step mean)", title="small ResNet on MNIST-5k")
    a2.set(xlabel="epoch", ylabel="hold-out accuracy", title=f"hold-out accuracy ({n_test} images)")
    a1.legend()
    a2.legend()
    fig.tight_layout()
    fig.savefig(out / "deep_resnet.png", dpi=110)
    return rows


def run(backend: str, out_dir: Path, quick: bool) -> list[dict]:
    """Run every experiment of the section on ``backend``; figures go to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    b = nn.get_backend(backend)
    kw = dict(backend=b)
    Xi, y = load_mnist_5k(images=True)
    Xtr, Xte, ytr, yte = train_test_split(Xi, y, test_fraction=0.2, seed=0)
    flat = (Xtr.reshape(len(Xtr), -1), Xte.reshape(len(Xte), -1), ytr, yte)
    if quick:
        flat = (flat[0][:2000], flat[1][:500], flat[2][:2000], flat[3][:500])
    rows = []
    rows += batchnorm_experiment(flat, kw, out, quick)
    rows += dropout_experiment(flat, kw, out, quick)
    rows += residual_experiment(flat, kw, out, quick)
    rows += augmentation_grid((Xtr, Xte, ytr, yte), kw, out)
    if hasattr(nn, "Conv2D"):
        rows += resnet_experiment((Xtr, Xte, ytr, yte), kw, out, quick)
    return rows
