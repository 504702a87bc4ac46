"""Demo section "Interpretability": what the MNIST CNN looks at, and what it thinks a digit is.

Trains :func:`anyxp_nn.models.mnist_cnn` briefly, then for a grid of hold-out digits computes the
saliency map, SmoothGrad, Grad-CAM at the second convolution block and occlusion sensitivity
(:mod:`anyxp_nn.interpret`), and the class models of the ten digits by activation maximisation.
Numbers printed: the share of each map's mass that falls on the digit's strokes (the strokes
cover about 16% of these digits' pixels, so a map that ignores the digit scores about that), the
class models' softmax confidence, and the seconds each method takes for the grid.

    python examples/neural_networks_examples.py --sections interpretability --quick
"""
from __future__ import annotations

import pathlib
import time
from typing import Any

import numpy as np
from matplotlib.figure import Figure

import anyxp_nn as nn
from anyxp_nn.models import mnist_cnn

from ._loop import accuracy
from ._vision import bare, rows_for, start
from .cnn import train

__all__ = ["run", "compute_maps", "stroke_share"]

SECTION = "Interpretability"

# -- config (full / quick) -----------------------------------------------------------------------------
EPOCHS, QUICK_EPOCHS = 3, 1
TRAIN, QUICK_TRAIN = 4000, 1200    # training digits
DIGITS = 8                         # rows of the map grid (one hold-out digit of each of 8 classes)
CAM_LAYER = "4"                    # mnist_cnn: the ReLU after the second conv, 64 x 14x14
SMOOTH_SAMPLES, QUICK_SMOOTH = 25, 8
SMOOTH_NOISE = 0.15
OCCLUSION, QUICK_OCCLUSION = (6, 2), (8, 4)  # (patch, stride): a 6x6 black square every 2 pixels, 12x12 map
CLASS_STEPS, QUICK_CLASS_STEPS = 150, 30
CLASS_LR, CLASS_L2 = 0.1, 0.5
STROKE = 0.3                       # a pixel brighter than this belongs to the digit's stroke


def stroke_share(maps: np.ndarray, digits: np.ndarray) -> float:
    """Mean over images of (map mass on stroke pixels) / (total map mass); maps (N, 28, 28) >= 0."""
    on = digits[:, 0] > STROKE
    mass = maps.sum(axis=(1, 2))
    return float(np.mean((maps * on).sum(axis=(1, 2)) / np.maximum(mass, 1e-30)))


def _upsample(maps: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour (N, h, w) -> (N, size, size) for h dividing size (Grad-CAM overlays)."""
    f = size // maps.shape[1]
    return np.repeat(np.repeat(maps, f, axis=1), f, axis=2)


def _occlusion_to_pixels(occ: np.ndarray, size: int, patch: int, stride: int) -> np.ndarray:
    """Spread each patch position's probability drop over the pixels it covered, averaged."""
    n, ho, wo = occ.shape
    total, count = np.zeros((n, size, size)), np.zeros((size, size))
    for i in range(ho):
        for j in range(wo):
            total[:, i * stride:i * stride + patch, j * stride:j * stride + patch] += occ[:, i:i + 1, j:j + 1]
            count[i * stride:i * stride + patch, j * stride:j * stride + patch] += 1
    return total / np.maximum(count, 1)


def compute_maps(model: nn.Layer, x: Any, target: Any, samples: int,
                 occlusion: tuple[int, int]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Every map of :mod:`anyxp_nn.interpret` for one batch, as host arrays, with the seconds each took."""
    b = model.backend
    calls = {
        "saliency": lambda: nn.interpret.saliency(model, x, target),
        "SmoothGrad": lambda: nn.interpret.smoothgrad(model, x, target, samples=samples, noise=SMOOTH_NOISE,
                                                      rng=nn.random.Generator(0)),
        "Grad-CAM": lambda: nn.interpret.grad_cam(model, x, target, CAM_LAYER),
        "occlusion": lambda: nn.interpret.occlusion(model, x, target, patch=occlusion[0], stride=occlusion[1]),
    }
    maps, seconds = {}, {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        m = call()
        b.synchronize()
        seconds[name] = time.perf_counter() - t0
        maps[name] = b.to_numpy(m)  # one read per method, for the figure
    return maps, seconds


def _maps_figure(digits: np.ndarray, labels: np.ndarray, maps: dict[str, np.ndarray], occlusion: tuple[int, int],
                 path: pathlib.Path) -> None:
    size = digits.shape[-1]
    cam = _upsample(maps["Grad-CAM"], size)
    occ = _occlusion_to_pixels(np.maximum(maps["occlusion"], 0.0), size, *occlusion)
    cols = [("input", None), ("saliency", maps["saliency"]), ("SmoothGrad", maps["SmoothGrad"]),
            (f"Grad-CAM (layer {CAM_LAYER})", cam), (f"occlusion {occlusion[0]}x{occlusion[0]}", occ)]
    fig = Figure(figsize=(1.6 * len(cols), 1.6 * len(digits) + 0.6))
    axes = fig.subplots(len(digits), len(cols), squeeze=False)
    bare(axes)
    for r, (digit, label) in enumerate(zip(digits[:, 0], labels)):
        for c, (title, m) in enumerate(cols):
            ax = axes[r, c]
            if m is None:
                ax.imshow(digit, cmap="gray")
                ax.set_ylabel(f"{label}", rotation=0, labelpad=10)
            elif c >= 3:  # coarse maps: overlaid on the digit
                ax.imshow(digit, cmap="gray")
                ax.imshow(m[r], cmap="jet", alpha=0.5)
            else:
                ax.imshow(m[r], cmap="hot")
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle("Where the MNIST CNN looks (target: the true class)", fontsize=10)
    fig.savefig(path, dpi=80, bbox_inches="tight")


def _class_models_figure(images: np.ndarray, probs: np.ndarray, path: pathlib.Path) -> None:
    fig = Figure(figsize=(12, 1.9))
    axes = fig.subplots(1, len(images))
    for k, ax in enumerate(axes):
        v = max(float(np.abs(images[k, 0]).max()), 1e-12)
        ax.imshow(images[k, 0], cmap="bwr", vmin=-v, vmax=v)
        ax.set_title(f"{k}: p={probs[k]:.2f}", fontsize=8)
    bare(axes)
    fig.suptitle("Class models: argmax_x logit_k(x) - lambda ||x||^2 by gradient ascent from a blank image "
                 "(red: ink raises the score, blue: ink lowers it); p = softmax probability of k", fontsize=9)
    fig.savefig(path, dpi=80, bbox_inches="tight")


def run(backend: str, out_dir: pathlib.Path, quick: bool) -> list[dict]:
    """Train the CNN, compute and draw every map and the class models; returns summary rows."""
    b, out_dir, (Xtr, Xte, ytr, yte) = start(backend, out_dir)
    epochs, n_train = (QUICK_EPOCHS, QUICK_TRAIN) if quick else (EPOCHS, TRAIN)
    model = mnist_cnn(backend=b, rng=nn.random.Generator(0))
    print(f"[{SECTION}] mnist_cnn on {b.label}: {n_train} training digits, {epochs} epoch(s)")
    train(model, Xtr[:n_train], ytr[:n_train], epochs, log=lambda s: None)
    acc = accuracy(model, Xte, yte)
    print(f"[{SECTION}] hold-out accuracy {100 * acc:.2f}%")

    pick = np.array([np.flatnonzero(yte == k)[0] for k in range(DIGITS)])  # one digit of each class 0..7
    digits, labels = Xte[pick], yte[pick]
    occlusion = QUICK_OCCLUSION if quick else OCCLUSION
    maps, seconds = compute_maps(model, b.asarray(digits), labels, QUICK_SMOOTH if quick else SMOOTH_SAMPLES,
                                 occlusion)
    shares = {name: stroke_share(np.maximum(m, 0.0) if name != "Grad-CAM" else _upsample(m, 28), digits)
              for name, m in maps.items() if name != "occlusion"}
    shares["occlusion"] = stroke_share(_occlusion_to_pixels(np.maximum(maps["occlusion"], 0.0), 28, *occlusion),
                                       digits)
    baseline = float(np.mean(digits[:, 0] > STROKE))
    for name in maps:
        print(f"[{SECTION}] {name:10s}: {100 * shares[name]:5.1f}% of the map on the strokes "
              f"({100 * baseline:.1f}% of the pixels), {seconds[name]:.3f} s for {DIGITS} digits")

    steps = QUICK_CLASS_STEPS if quick else CLASS_STEPS
    t0 = time.perf_counter()
    x0 = b.xp.zeros((10, 1, 28, 28), dtype=model.dtype, device=b.device)
    cm = nn.interpret.class_model(model, b.xp.arange(10, dtype=b.xp.int64, device=b.device), x0, steps=steps,
                                  lr=CLASS_LR, l2=CLASS_L2)
    logits = model(cm)
    e = b.xp.exp(logits - b.xp.max(logits, axis=1, keepdims=True))
    probs = b.to_numpy(e / b.xp.sum(e, axis=1, keepdims=True))  # one read
    class_seconds = time.perf_counter() - t0
    own = probs[np.arange(10), np.arange(10)]
    print(f"[{SECTION}] class models ({steps} steps): mean p(own class) {own.mean():.3f}, "
          f"{int(np.sum(probs.argmax(axis=1) == np.arange(10)))}/10 classified as their class, {class_seconds:.2f} s")

    paths = [out_dir / "interpret_maps.png", out_dir / "interpret_class_models.png"]
    _maps_figure(digits, labels, maps, occlusion, paths[0])
    _class_models_figure(b.to_numpy(cm), own, paths[1])
    return rows_for(SECTION, [
        ("hold-out accuracy", round(100 * acc, 2), "%"),
        ("stroke pixels (baseline share)", round(100 * baseline, 1), "%"),
        *[(f"{name} mass on strokes", round(100 * shares[name], 1), "%") for name in maps],
        *[(f"{name} seconds ({DIGITS} digits)", round(seconds[name], 3), "s") for name in maps],
        ("class models: mean p(own class)", round(float(own.mean()), 3), ""),
        ("class models classified as their class", int(np.sum(probs.argmax(axis=1) == np.arange(10))), "of 10"),
        *[(f"figure {p.stem}", str(p), "png") for p in paths],
    ])
