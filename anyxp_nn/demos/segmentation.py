"""Demo section "Semantic Segmentation": a small U-Net labels every pixel of MNIST canvases.

64x64 canvases with 1-3 noisy digits (:func:`anyxp_nn.vision.make_segmentation_canvases`; fresh
training canvases every epoch, from the training digits only);
each pixel is background (0) or the ink of digit d (1 + d), 11 classes.  The U-Net
(Ronneberger et al., 2015) has a four-level encoder (conv-conv, max-pool), a decoder that
upsamples (2x2 stride-2 ``ConvTranspose2D``), concatenates the encoder's features at the same
resolution (skip connections, ``Concatenate(Identity(), inner)``) and convolves, and a 1x1 conv to
the class logits.
It trains on the class-weighted per-pixel cross-entropy plus the soft Dice loss
(:func:`anyxp_nn.vision.segmentation_loss`, the usual "CE + Dice" of segmentation practice: Dice
scores each class's overlap, so the thin, rare digit classes weigh as much as the background);
the held-out mean IoU and pixel accuracy are reported and a figure shows input, truth and
prediction.

    python -c "import anyxp_nn.demos.segmentation as d, pathlib; d.run('numpy', pathlib.Path('out'), quick=True)"
"""
from __future__ import annotations

import functools
import pathlib
import time
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn import vision as V
from anyxp_nn.vision.models import unet

from ._loop import EachEpoch
from ._vision import bare, rows_for, start

__all__ = ["run", "train", "predict", "evaluate", "class_weights"]

SECTION = "Semantic Segmentation"

# -- config (full / quick) -----------------------------------------------------------------------------
SIZE, CLASSES = 64, 11
TRAIN, TEST, EPOCHS = 1500, 300, 36
QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS = 500, 100, 8
BATCH, LR, WIDTH = 8, 3e-3, 8
WEIGHT_POWER = 0.2  # class weights ~ pixel frequency ** -WEIGHT_POWER
DICE = 1.0          # loss = weighted cross-entropy + DICE * soft Dice


def class_weights(masks: np.ndarray, num_classes: int = CLASSES, power: "float | None" = None) -> np.ndarray:
    """``w_c ~ f_c^(-power)`` (f: pixel frequency), normalised to mean 1; ``power`` defaults to
    ``WEIGHT_POWER`` (1/5: much milder than the inverse frequency, which over-paints digit
    borders; the Dice term already keeps the rare classes from being drowned out)."""
    p = WEIGHT_POWER if power is None else power
    freq = np.bincount(masks.ravel(), minlength=num_classes).astype(np.float64) / masks.size
    w = np.maximum(freq, 1e-6) ** -p
    return (w / w.mean()).astype(np.float32)


def train(model: nn.Layer, data: Any, weight: np.ndarray, *, epochs: int, lr: float = LR, batch: int = BATCH,
          dice: float = DICE, seed: int = 0, log: Any = print) -> list[float]:
    """``nn.fit`` with Adam and a cosine decay on the weighted per-pixel cross-entropy plus ``dice``
    times the soft Dice loss (:func:`anyxp_nn.vision.segmentation_loss`); each epoch's mean loss.

    ``data``: ``(X, masks)`` host arrays, or a function ``epoch -> (X, masks)`` that draws fresh
    canvases for every epoch (a generated data set never has to repeat an image; each epoch's
    canvases move to the device once).  Every epoch must hold the same number of canvases.
    One ``fit`` call per epoch, each over a DataLoader of that epoch's canvases; the loaders share
    one generator (the shuffles continue one stream) and the optimizer (its cosine schedule counts
    steps), and the History continues.  The ragged last batch is dropped.
    """
    draw = data if callable(data) else (lambda epoch: data)
    wd = model.backend.asarray(weight, dtype=model.dtype)
    rng = nn.Generator(seed)

    def loss_fn(logits: Any, masks: Any) -> tuple[Any, Any]:
        return V.segmentation_loss(logits, masks, wd, dice=dice)

    report = EachEpoch(lambda epoch, row: log(f"  epoch {epoch + 1}/{epochs}: loss (cross-entropy + {dice:g} Dice) "
                                              f"{row['loss']:.4f}"))
    opt, history = None, None
    for epoch in range(epochs):
        X, masks = draw(epoch)
        loader = nn.data.DataLoader(X, masks, batch_size=batch, drop_last=True, backend=model.backend, rng=rng,
                                    labels=False, dtype=model.dtype)
        if opt is None:
            opt = nn.optim.Adam(model.parameters(), lr=nn.optim.cosine_annealing(lr, epochs * len(loader)))
        history = nn.fit(model, opt, loss_fn, loader, epochs=epoch + 1, initial_epoch=epoch, history=history,
                         metrics=(), callbacks=[report], progress=False)
    return list(history.epochs["loss"]) if history is not None else []


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
    bare(axes)
    for r, name in enumerate(("input", "truth", "U-Net")):
        axes[r, 0].set_ylabel(name)
    fig.suptitle("Semantic segmentation: colour = digit class (" + ", ".join(
        f"{d}: {colours[d + 1][4:]}" for d in range(10)) + ")", fontsize=7)
    fig.savefig(path, dpi=90)
    return path


def run(backend: str, out_dir: pathlib.Path, quick: bool) -> list[dict]:
    """Generate canvases, train the U-Net, evaluate mIoU / pixel accuracy, draw; returns summary rows."""
    t0 = time.perf_counter()
    b, out_dir, (Xtr_d, Xte_d, ytr_d, yte_d) = start(backend, out_dir)
    n_train, n_test, epochs = (QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS) if quick else (TRAIN, TEST, EPOCHS)

    @functools.lru_cache(maxsize=1)
    def canvases(epoch: int) -> tuple[np.ndarray, np.ndarray]:  # fresh training canvases every epoch
        return V.make_segmentation_canvases(n_train, SIZE, seed=1000 + epoch, source=(Xtr_d, ytr_d))

    Xtr, Mtr = canvases(0)
    Xte, Mte = V.make_segmentation_canvases(n_test, SIZE, seed=2, source=(Xte_d, yte_d))
    model = unet(backend=b, rng=nn.Generator(0), width=WIDTH)
    weight = class_weights(Mtr)
    print(f"[{SECTION}] U-Net on {b.label}: {n_train} fresh training canvases per epoch / {n_test} held-out "
          f"{SIZE}x{SIZE} canvases, {CLASSES} classes, {epochs} epoch(s)")
    losses = train(model, canvases, weight, epochs=epochs)
    miou, acc, iou, fg_miou = evaluate(model, Xte, Mte)
    base_miou = float(np.mean(Mte == 0)) / len(np.unique(Mte))  # predicting background everywhere
    seconds = time.perf_counter() - t0
    print(f"[{SECTION}] held-out mean IoU {miou:.3f} (11 classes; all-background {base_miou:.3f}), {fg_miou:.3f} "
          f"(ink vs background); pixel accuracy {100 * acc:.2f}% (all-background {100 * np.mean(Mte == 0):.2f}%); "
          f"{seconds:.0f} s")
    print(f"[{SECTION}] IoU per class " + " ".join(f"{c}:{v:.2f}" for c, v in enumerate(iou)))
    fig = save_figure(model, Xte, Mte, out_dir / "segmentation_unet.png")
    return rows_for(SECTION, [
        ("held-out mean IoU (11 classes)", round(miou, 4), ""),
        ("held-out mean IoU if all background", round(base_miou, 4), ""),
        ("held-out mean IoU (ink vs background)", round(fg_miou, 4), ""),
        ("held-out pixel accuracy", round(100 * acc, 2), "%"),
        ("final training loss", round(losses[-1], 4), ""),
        ("epochs", epochs, ""),
        ("seconds (data, training, evaluation)", round(seconds, 1), "s"),
        (f"figure {fig.stem}", str(fig), "png"),
    ])
