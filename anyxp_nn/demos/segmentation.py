"""Demo section "Semantic Segmentation": a small U-Net labels every pixel of MNIST canvases.

64x64 canvases with 1-3 noisy digits (:func:`anyxp_nn.vision.make_segmentation_canvases`; fresh
training canvases every epoch, from the training digits only);
each pixel is background (0) or the ink of digit d (1 + d), 11 classes.  The U-Net
(Ronneberger et al., 2015) has a four-level encoder (conv-conv, max-pool), a decoder that
upsamples (2x2 stride-2 ``ConvTranspose2D``), concatenates the encoder's features at the same resolution (skip connections,
``Concatenate(Identity(), inner)``) and convolves, and a 1x1 conv to the class logits.
It trains on the class-weighted per-pixel cross-entropy
(:func:`anyxp_nn.vision.pixel_cross_entropy`); the held-out mean IoU and pixel accuracy are
reported and a figure shows input, truth and prediction.

    python -c "import anyxp_nn.demos.segmentation as d, pathlib; d.run('numpy', pathlib.Path('out'), quick=True)"
"""
from __future__ import annotations

import functools
import pathlib
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn import vision as V
from anyxp_nn.datasets import load_mnist_5k, train_test_split
from anyxp_nn.vision.models import unet

__all__ = ["run", "train", "predict", "evaluate", "class_weights"]

SECTION = "Semantic Segmentation"

# -- config (full / quick) -----------------------------------------------------------------------------
SIZE, CLASSES = 64, 11
TRAIN, TEST, EPOCHS = 1500, 300, 30
QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS = 32, 16, 1
BATCH, LR, WIDTH = 8, 3e-3, 8
WEIGHT_POWER = 0.5  # class weights ~ pixel frequency ** -WEIGHT_POWER


def class_weights(masks: np.ndarray, num_classes: int = CLASSES, power: "float | None" = None) -> np.ndarray:
    """``w_c ~ f_c^(-power)`` (f: pixel frequency), normalised to mean 1; ``power`` defaults to
    ``WEIGHT_POWER`` (1/2: milder than the inverse frequency, which over-paints digit borders;
    smaller powers give thinner strokes but learn the digit classes more slowly)."""
    p = WEIGHT_POWER if power is None else power
    freq = np.bincount(masks.ravel(), minlength=num_classes).astype(np.float64) / masks.size
    w = np.maximum(freq, 1e-6) ** -p
    return (w / w.mean()).astype(np.float32)


def train(model: nn.Layer, data: Any, weight: np.ndarray, *, epochs: int, lr: float = LR, batch: int = BATCH,
          seed: int = 0, log: Any = print) -> list[float]:
    """Adam with a cosine decay on the weighted per-pixel cross-entropy; each epoch's mean loss.

    ``data``: ``(X, masks)`` host arrays, or a function ``epoch -> (X, masks)`` that draws fresh
    canvases for every epoch (a generated data set never has to repeat an image; each epoch's
    canvases move to the device once).  Every epoch must hold the same number of canvases.
    """
    b = model.backend
    xp = b.xp
    draw = data if callable(data) else (lambda epoch: data)
    X, masks = draw(0)
    n = len(X)
    opt = nn.optim.Adam(model.parameters(), lr=nn.optim.cosine_annealing(lr, epochs * (n // batch)))
    wd = b.asarray(weight, dtype=model.dtype)
    rng = nn.Generator(seed)
    means = []
    for epoch in range(epochs):
        if epoch:
            X, masks = draw(epoch)
        Xd, Md = b.asarray(X, dtype=model.dtype), b.asarray(masks)  # one transfer per epoch
        perm = rng.permutation(n)
        losses = []
        for i in range(0, n - batch + 1, batch):
            idx = b.asarray(perm[i:i + batch])
            logits, backprop = model.forward(xp.take(Xd, idx, axis=0), train=True)
            loss, dlogits = V.pixel_cross_entropy(logits, xp.take(Md, idx, axis=0), wd)
            model.zero_grad()
            backprop(dlogits, need_dx=False)
            opt.step()
            losses.append(loss)
        means.append(float(np.mean(b.to_numpy(xp.stack(losses)))))  # note: one host read per epoch
        log(f"  epoch {epoch + 1}/{epochs}: pixel cross-entropy {means[-1]:.4f}")
    return means


def predict(model: nn.Layer, X: np.ndarray, batch: int = 100) -> Any:
    """(N, H, W) int64 class of every pixel (argmax over the channel axis), on the model's backend."""
    b = model.backend
    xp = b.xp
    return xp.concat([xp.argmax(model(b.asarray(X[i:i + batch], dtype=model.dtype)), axis=1)
                      for i in range(0, len(X), batch)], axis=0)


def evaluate(model: nn.Layer, X: np.ndarray, masks: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """Held-out mean IoU, pixel accuracy, per-class IoU, and the mean IoU of ink vs background
    (the 2-class view: where the digits are, whatever their class)."""
    b = model.backend
    xp = b.xp
    pred, truth = predict(model, X), b.asarray(masks)
    miou, iou = V.mean_iou(pred, truth, CLASSES)
    acc = V.pixel_accuracy(pred, truth)
    fg_miou, _ = V.mean_iou(xp.astype(pred > 0, xp.int64), xp.astype(truth > 0, xp.int64), 2)
    return float(b.to_numpy(miou)), float(b.to_numpy(acc)), b.to_numpy(iou), float(b.to_numpy(fg_miou))


def save_figure(model: nn.Layer, X: np.ndarray, masks: np.ndarray, path: pathlib.Path,
                show: int = 5) -> pathlib.Path:
    """Rows: input, truth, prediction for ``show`` held-out canvases (colour = class, black = background)."""
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    pred = model.backend.to_numpy(predict(model, X[:show]))
    colours = ["black", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
               "tab:gray", "tab:olive", "tab:cyan"]
    cmap = ListedColormap(colours)
    fig = Figure(figsize=(2 * show, 6.4), layout="constrained")
    axes = fig.subplots(3, show)
    for k in range(show):
        axes[0, k].imshow(X[k, 0], cmap="gray", vmin=0, vmax=1)
        axes[1, k].imshow(masks[k], cmap=cmap, vmin=-0.5, vmax=10.5, interpolation="nearest")
        axes[2, k].imshow(pred[k], cmap=cmap, vmin=-0.5, vmax=10.5, interpolation="nearest")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r, name in enumerate(("input", "truth", "U-Net")):
        axes[r, 0].set_ylabel(name)
    fig.suptitle("Semantic segmentation: colour = digit class (" + ", ".join(
        f"{d}: {colours[d + 1][4:]}" for d in range(10)) + ")", fontsize=7)
    fig.savefig(path, dpi=90)
    return path


def run(backend: str, out_dir: pathlib.Path, quick: bool) -> list[dict]:
    """Generate canvases, train the U-Net, evaluate mIoU / pixel accuracy, draw; returns summary rows."""
    b = nn.get_backend(backend)
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X, y = load_mnist_5k(images=True)
    Xtr_d, Xte_d, ytr_d, yte_d = train_test_split(X, y, test_fraction=0.2, seed=0)
    n_train, n_test, epochs = (QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS) if quick else (TRAIN, TEST, EPOCHS)

    @functools.lru_cache(maxsize=1)
    def canvases(epoch: int) -> tuple[np.ndarray, np.ndarray]:  # fresh training canvases every epoch
        return V.make_segmentation_canvases(n_train, SIZE, seed=1000 + epoch, source=(Xtr_d, ytr_d))

    Xtr, Mtr = canvases(0)
    Xte, Mte = V.make_segmentation_canvases(n_test, SIZE, seed=2, source=(Xte_d, yte_d))
    model = unet(backend=b, rng=nn.Generator(0))
    weight = class_weights(Mtr)
    print(f"[{SECTION}] U-Net on {b.label}: {n_train} fresh training canvases per epoch / {n_test} held-out "
          f"{SIZE}x{SIZE} canvases, "
          f"{CLASSES} classes, {epochs} epoch(s)")
    losses = train(model, canvases, weight, epochs=epochs)
    miou, acc, iou, fg_miou = evaluate(model, Xte, Mte)
    print(f"[{SECTION}] held-out mean IoU {miou:.3f} (11 classes), {fg_miou:.3f} (ink vs background); pixel "
          f"accuracy {100 * acc:.2f}%; IoU per class " + " ".join(f"{c}:{v:.2f}" for c, v in enumerate(iou)))
    fig = save_figure(model, Xte, Mte, out_dir / "segmentation_unet.png")
    return [
        {"section": SECTION, "item": "held-out mean IoU (11 classes)", "value": round(miou, 4), "unit": ""},
        {"section": SECTION, "item": "held-out mean IoU (ink vs background)", "value": round(fg_miou, 4), "unit": ""},
        {"section": SECTION, "item": "held-out pixel accuracy", "value": round(100 * acc, 2), "unit": "%"},
        {"section": SECTION, "item": "final training loss", "value": round(losses[-1], 4), "unit": ""},
        {"section": SECTION, "item": "epochs", "value": epochs, "unit": ""},
        {"section": SECTION, "item": f"figure {fig.stem}", "value": str(fig), "unit": "png"},
    ]
