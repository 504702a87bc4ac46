"""Demo section "Object Detection": a single-stage grid detector on generated MNIST canvases.

48x48 canvases with 1-4 digits each (:func:`anyxp_nn.vision.make_detection_canvases`; training
and held-out canvases draw from disjoint digit images).  A small conv net maps a canvas to a
6x6 grid of cells, each predicting objectness, a box and a class (YOLO-style); it trains on
:func:`anyxp_nn.vision.detection_loss`.  At test time every cell's box is decoded, boxes under
a score threshold are dropped, greedy NMS (batched over images) removes duplicates, and the
PASCAL VOC mAP@0.5 is computed on the held-out canvases.  Figure: predicted and true boxes.

    python -c "import anyxp_nn.demos.detection as d, pathlib; d.run('numpy', pathlib.Path('out'), quick=True)"
"""
from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn import vision as V
from anyxp_nn.vision.models import grid_detector

from ._loop import EachEpoch
from ._vision import bare, rows_for, start

__all__ = ["run", "train", "detect", "evaluate"]

SECTION = "Object Detection"

# -- config (full / quick) -----------------------------------------------------------------------------
SIZE, GRID, CLASSES = 48, 6, 10
TRAIN, TEST, EPOCHS = 3000, 600, 10
QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS = 1200, 200, 5
BATCH, LR = 32, 2e-3
SCORE_MIN, NMS_IOU = 0.05, 0.45


def train(model: nn.Layer, X: np.ndarray, targets: Any, *, epochs: int, lr: float = LR, batch: int = BATCH,
          seed: int = 0, log: Any = print) -> list[float]:
    """``nn.fit`` with Adam and a cosine decay on the detection loss; ``targets`` from :func:`encode_grid`
    (float grid targets: ``labels=False``; the ragged last batch is dropped).  Returns each epoch's mean loss."""
    loader = nn.data.DataLoader(X, model.backend.to_numpy(targets), batch_size=batch, drop_last=True,
                                backend=model.backend, rng=nn.Generator(seed), labels=False, dtype=model.dtype)
    opt = nn.optim.Adam(model.parameters(), lr=nn.optim.cosine_annealing(lr, epochs * len(loader)))
    report = EachEpoch(lambda epoch, row: log(f"  epoch {epoch + 1}/{epochs}: detection loss {row['loss']:.4f}"))
    history = nn.fit(model, opt, V.detection_loss, loader, epochs=epochs, metrics=(), callbacks=[report],
                     progress=False)
    return list(history.epochs["loss"])


def detect(model: nn.Layer, X: np.ndarray, batch: int = 200) -> tuple[Any, Any, Any, Any]:
    """Boxes, scores, labels (one per grid cell) and the kept mask (score >= SCORE_MIN, then NMS)."""
    b = model.backend
    xp = b.xp
    parts = []
    for i in range(0, len(X), batch):
        boxes, scores, labels = V.decode_grid(model(b.asarray(X[i:i + batch], dtype=model.dtype)), SIZE)
        keep = V.batched_nms(boxes, scores, NMS_IOU, valid=scores >= SCORE_MIN)
        parts.append((boxes, scores, labels, keep))
    return tuple(xp.concat([p[k] for p in parts], axis=0) for k in range(4))


def evaluate(model: nn.Layer, X: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
             valid: np.ndarray) -> tuple[float, np.ndarray]:
    """Held-out mAP@0.5 (VOC all-point) and the per-class APs."""
    b = model.backend
    det = detect(model, X)
    m, ap = V.mean_average_precision(*det, b.asarray(boxes, dtype=model.dtype), b.asarray(labels),
                                     b.asarray(valid), num_classes=CLASSES, iou_threshold=0.5)
    return float(b.to_numpy(m)), b.to_numpy(ap)


def save_figure(model: nn.Layer, X: np.ndarray, boxes: np.ndarray, labels: np.ndarray, valid: np.ndarray,
                path: pathlib.Path, show: int = 8) -> pathlib.Path:
    """True boxes (green, dashed) and kept predictions (red, with class and score) on held-out canvases."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    b = model.backend
    pb, ps, pl, keep = (b.to_numpy(a) for a in detect(model, X[:show]))
    fig = Figure(figsize=(2.2 * show / 2, 4.6), layout="constrained")
    axes = fig.subplots(2, show // 2)
    for k, ax in enumerate(axes.flat):
        ax.imshow(X[k, 0], cmap="gray", vmin=0, vmax=1)
        for (x1, y1, x2, y2), c in zip(boxes[k][valid[k]], labels[k][valid[k]]):
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="lime", ls="--", lw=1))
        for (x1, y1, x2, y2), c, s in zip(pb[k][keep[k]], pl[k][keep[k]], ps[k][keep[k]]):
            if s < 0.3:
                continue
            ax.add_patch(Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, ec="red", lw=1))
            ax.text(x1, y1 - 1, f"{c} {s:.2f}", color="red", fontsize=6)
    bare(axes)
    fig.suptitle("Grid detector on held-out canvases: truth (green, dashed), predictions with score >= 0.3 (red)",
                 fontsize=8)
    fig.savefig(path, dpi=100)
    return path


def run(backend: str, out_dir: pathlib.Path, quick: bool) -> list[dict]:
    """Generate canvases, train, evaluate mAP@0.5 and draw the boxes; returns summary rows."""
    t0 = time.perf_counter()
    b, out_dir, (Xtr_d, Xte_d, ytr_d, yte_d) = start(backend, out_dir)
    n_train, n_test, epochs = (QUICK_TRAIN, QUICK_TEST, QUICK_EPOCHS) if quick else (TRAIN, TEST, EPOCHS)
    Xtr, btr, ltr, vtr = V.make_detection_canvases(n_train, SIZE, seed=1, source=(Xtr_d, ytr_d))
    Xte, bte, lte, vte = V.make_detection_canvases(n_test, SIZE, seed=2, source=(Xte_d, yte_d))
    model = grid_detector(CLASSES, backend=b, rng=nn.Generator(0))
    targets = V.encode_grid(b.asarray(btr), b.asarray(ltr), b.asarray(vtr), GRID, SIZE)
    print(f"[{SECTION}] grid detector ({GRID}x{GRID} cells) on {b.label}: {n_train} train / {n_test} held-out "
          f"canvases ({int(vtr.sum())} / {int(vte.sum())} digits), {epochs} epoch(s)")
    losses = train(model, Xtr, targets, epochs=epochs)
    m, ap = evaluate(model, Xte, bte, lte, vte)
    seconds = time.perf_counter() - t0
    print(f"[{SECTION}] held-out mAP@0.5 {m:.3f} (an untrained detector: ~0); per class "
          + " ".join(f"{c}:{a:.2f}" for c, a in enumerate(ap)) + f"; {seconds:.0f} s")
    fig = save_figure(model, Xte, bte, lte, vte, out_dir / "detection_boxes.png")
    return rows_for(SECTION, [
        ("held-out mAP@0.5 (VOC all-point)", round(m, 4), ""),
        ("first epoch's training loss", round(losses[0], 4), ""),
        ("final training loss", round(losses[-1], 4), ""),
        ("epochs", epochs, ""),
        ("seconds (data, training, evaluation)", round(seconds, 1), "s"),
        (f"figure {fig.stem}", str(fig), "png"),
    ])
