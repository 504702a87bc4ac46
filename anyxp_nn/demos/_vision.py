"""What the computer-vision demo sections (transfer, segmentation, detection, interpretability) share:
the MNIST split they start from, summary rows, and bare image axes."""
from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.datasets import load_mnist_5k, train_test_split

__all__ = ["start", "rows_for", "bare"]


def start(backend: str, out_dir: "str | pathlib.Path") -> tuple[Any, pathlib.Path, tuple[np.ndarray, ...]]:
    """``(backend, out_dir, (Xtr, Xte, ytr, yte))``: the backend object, the created output folder and
    the 80/20 split (seed 0) of the bundled 5,000 MNIST images, (N, 1, 28, 28) in [0, 1]."""
    b = nn.get_backend(backend)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    X, y = load_mnist_5k(images=True)
    return b, out, tuple(train_test_split(X, y, test_fraction=0.2, seed=0))


def rows_for(section: str, items: list[tuple[str, Any, str]]) -> list[dict]:
    """Summary rows ``{"section", "item", "value", "unit"}`` of ``(item, value, unit)`` triples."""
    return [{"section": section, "item": item, "value": value, "unit": unit} for item, value, unit in items]


def bare(axes: Any) -> None:
    """No ticks on any of ``axes`` (image panels)."""
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
