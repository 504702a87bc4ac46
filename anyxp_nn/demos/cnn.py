"""Demo section "Convolutional Neural Networks": the MNIST CNN on the 5,000-digit subset.

Trains :func:`anyxp_nn.models.mnist_cnn` with Adam through ``nn.fit``, reports the
hold-out accuracy and seconds per epoch, and saves three figures: the learned first-layer
filters and the (post-ReLU) feature maps of both conv layers for one test digit.

    python -c "import anyxp_nn.demos.cnn as d, pathlib; d.run('numpy', pathlib.Path('out'), quick=True)"
"""
from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.datasets import load_mnist_5k, train_test_split
from anyxp_nn.models import mnist_cnn

from ._loop import EachEpoch, accuracy, subplots

__all__ = ["run", "train", "accuracy"]

SECTION = "Convolutional Neural Networks"

# -- config (full / quick) -----------------------------------------------------------------------------
BATCH = 64
LR = 1e-3
EPOCHS = 8          # full mode; the learning rate follows a cosine from LR down to 0
QUICK_EPOCHS = 1    # quick mode: one epoch on QUICK_TRAIN digits
QUICK_TRAIN = 1200
QUICK_TEST = 400


def train(model: nn.Layer, X: np.ndarray, y: np.ndarray, epochs: int, *, lr: float = LR, batch: int = BATCH,
          seed: int = 0, log: Any = print) -> list[float]:
    """``nn.fit`` with Adam and a cosine learning-rate decay
    ``lr_k = lr/2 * (1 + cos(pi k / total_steps))``; returns the seconds of each epoch."""
    loader = nn.data.DataLoader(X, y, batch_size=batch, backend=model.backend, rng=nn.random.Generator(seed))
    opt = nn.optim.Adam(model.parameters(), lr=nn.optim.cosine_annealing(lr, epochs * len(loader)))
    history = nn.fit(model, opt, nn.losses.softmax_cross_entropy, loader, epochs=epochs, metrics=(), progress=False,
                     callbacks=[EachEpoch(lambda e, row: log(f"  epoch {e + 1}/{epochs}: loss {row['loss']:.4f} "
                                                             f"({row['time_s']:.2f} s)"))])
    return list(history.epochs["time_s"])


def _grid(ax_grid: Any, images: np.ndarray, cmap: str = "gray") -> None:
    for ax, img in zip(ax_grid.flat, images):
        ax.imshow(img, cmap=cmap)
    for ax in ax_grid.flat:
        ax.set_xticks([])
        ax.set_yticks([])


def save_figures(model: nn.Layer, digit: np.ndarray, out_dir: pathlib.Path) -> list[pathlib.Path]:
    """First-layer filters and the feature maps of each conv block for one digit (1, 1, 28, 28)."""
    b = model.backend
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    w = nn.to_numpy(model[0].weight.data)[:, 0]  # (32, 3, 3)
    fig, axes = subplots(4, 8, figsize=(8, 4.4))
    _grid(axes, w, cmap="bwr")
    fig.suptitle("Conv2D(1, 32, 3x3): learned filters (blue < 0 < red)")
    paths.append(out_dir / "cnn_filters.png")
    fig.savefig(paths[-1], dpi=90)

    h = b.asarray(digit)
    for name, stop, cols in (("conv1", 2, 8), ("conv2", 5, 8)):
        h_maps = model[:stop](h)  # Conv -> ReLU of block 1 (layers 0-1) or through block 2 (0-4)
        maps = nn.to_numpy(h_maps)[0]
        rows = len(maps) // cols
        fig, axes = subplots(rows, cols + 1, figsize=(cols + 1, rows * 1.05 + 0.4))
        for r in range(rows):
            axes[r, 0].imshow(digit[0, 0], cmap="gray") if r == 0 else None
            axes[r, 0].axis("off")
        _grid(axes[:, 1:], maps, cmap="viridis")
        fig.suptitle(f"{name} feature maps after ReLU ({maps.shape[0]} x {maps.shape[1]}x{maps.shape[2]}); "
                     "input digit at left")
        paths.append(out_dir / f"cnn_feature_maps_{name}.png")
        fig.savefig(paths[-1], dpi=80)
    return paths


def run(backend: str, out_dir: pathlib.Path, quick: bool) -> list[dict]:
    """Train, evaluate and visualise; returns summary rows for the demo report."""
    b = nn.get_backend(backend)
    X, y = load_mnist_5k(images=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_fraction=0.2, seed=0)
    epochs = QUICK_EPOCHS if quick else EPOCHS
    if quick:
        Xtr, ytr, Xte, yte = Xtr[:QUICK_TRAIN], ytr[:QUICK_TRAIN], Xte[:QUICK_TEST], yte[:QUICK_TEST]
    model = mnist_cnn(backend=b, rng=nn.random.Generator(0))
    print(f"[{SECTION}] mnist_cnn on {b.label}: {len(Xtr)} train / {len(Xte)} hold-out digits, "
          f"{epochs} epoch(s), batch {BATCH}")
    seconds = train(model, Xtr, ytr, epochs)
    acc = accuracy(model, Xte, yte)
    per_epoch = float(np.mean(seconds))
    print(f"[{SECTION}] hold-out accuracy {100 * acc:.2f}%, {per_epoch:.2f} s per epoch")
    paths = save_figures(model, Xte[:1], pathlib.Path(out_dir))
    rows = [
        {"section": SECTION, "item": "hold-out accuracy", "value": round(100 * acc, 2), "unit": "%"},
        {"section": SECTION, "item": "seconds per epoch", "value": round(per_epoch, 3), "unit": "s"},
        {"section": SECTION, "item": "epochs", "value": epochs, "unit": ""},
    ]
    rows += [{"section": SECTION, "item": f"figure {p.stem}", "value": str(p), "unit": "png"} for p in paths]
    return rows
