"""Generated data sets for detection and segmentation: MNIST digits pasted on blank canvases.

Host NumPy, deterministic in ``seed``, nothing downloaded (digits come from
:func:`anyxp_nn.datasets.load_mnist_5k`, or pass ``source=(X, y)`` to draw only from one
split so a held-out set never shares a digit image with the training set).
Digits never overlap (their paste squares are disjoint), so their boxes are disjoint too.
"""
from __future__ import annotations

import numpy as np

from ..datasets import load_mnist_5k

__all__ = ["make_detection_canvases", "make_segmentation_canvases"]


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a square (H, H) image to (size, size), pixel centres aligned."""
    h = img.shape[0]
    pos = (np.arange(size) + 0.5) * (h / size) - 0.5
    lo = np.clip(np.floor(pos).astype(int), 0, h - 1)
    hi = np.clip(lo + 1, 0, h - 1)
    f = np.clip(pos - lo, 0.0, 1.0)
    rows = img[lo] * (1 - f)[:, None] + img[hi] * f[:, None]
    return rows[:, lo] * (1 - f)[None, :] + rows[:, hi] * f[None, :]


def _source(source: "tuple[np.ndarray, np.ndarray] | None") -> tuple[np.ndarray, np.ndarray]:
    X, y = load_mnist_5k(images=True) if source is None else source
    X = np.asarray(X, dtype=np.float32).reshape(len(X), 28, 28)
    return X, np.asarray(y, dtype=np.int64)


def _check_counts(fn: str, digits: tuple[int, int], digit_size: tuple[int, int], size: int) -> None:
    """ValueError naming ``fn`` unless 1 <= digits[0] <= digits[1] and the largest digit fits the canvas."""
    if not 1 <= digits[0] <= digits[1]:
        raise ValueError(f"{fn}: `digits` must be (lo, hi) with 1 <= lo <= hi, got {digits}")
    if digit_size[1] > size:
        raise ValueError(f"{fn}: `digit_size` {digit_size} does not fit a {size}px canvas")


def _place(rng: np.random.Generator, sizes: list[int], canvas: int) -> list[tuple[int, int, int]]:
    """``(row, col, side)`` of disjoint squares (rejection sampling; a square that finds no room is dropped)."""
    placed: list[tuple[int, int, int]] = []
    for s in sizes:
        for _ in range(50):
            r, c = (int(v) for v in rng.integers(0, canvas - s + 1, size=2))
            if all(r + s <= r2 or r2 + s2 <= r or c + s <= c2 or c2 + s2 <= c for r2, c2, s2 in placed):
                placed.append((r, c, s))
                break
    return placed


def make_detection_canvases(n: int, size: int = 48, digits: tuple[int, int] = (1, 4),
                            digit_size: tuple[int, int] = (16, 24), noise: float = 0.05, seed: int = 0,
                            source: "tuple[np.ndarray, np.ndarray] | None" = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Canvases with ``digits[0]..digits[1]`` MNIST digits, each rescaled to a random square of
    ``digit_size`` pixels, plus Gaussian noise (clipped to [0, 1]).

    Returns:
        ``X`` (n, 1, size, size) float32; ``boxes`` (n, K, 4) float32 xyxy tight boxes around each
        digit's ink (pixels > 0.25); ``labels`` (n, K) int64; ``valid`` (n, K) bool, K = digits[1].
    """
    _check_counts("make_detection_canvases", digits, digit_size, size)
    Xs, ys = _source(source)
    rng = np.random.default_rng(seed)
    k = digits[1]
    X = np.zeros((n, 1, size, size), dtype=np.float32)
    boxes = np.zeros((n, k, 4), dtype=np.float32)
    labels = np.zeros((n, k), dtype=np.int64)
    valid = np.zeros((n, k), dtype=bool)
    for i in range(n):
        count = int(rng.integers(digits[0], digits[1] + 1))
        sizes = [int(s) for s in rng.integers(digit_size[0], digit_size[1] + 1, size=count)]
        for j, (r, c, s) in enumerate(_place(rng, sizes, size)):
            pick = int(rng.integers(len(Xs)))
            patch = _resize(Xs[pick], s)
            X[i, 0, r:r + s, c:c + s] = np.maximum(X[i, 0, r:r + s, c:c + s], patch)
            rr, cc = np.nonzero(patch > 0.25)
            boxes[i, j] = (c + cc.min(), r + rr.min(), c + cc.max() + 1, r + rr.max() + 1)
            labels[i, j], valid[i, j] = ys[pick], True
    X += rng.normal(0.0, noise, X.shape).astype(np.float32)
    return np.clip(X, 0.0, 1.0), boxes, labels, valid


def make_segmentation_canvases(n: int, size: int = 64, digits: tuple[int, int] = (1, 3),
                               digit_size: tuple[int, int] = (24, 32), noise: float = 0.1, seed: int = 0,
                               source: "tuple[np.ndarray, np.ndarray] | None" = None
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Canvases with MNIST digits and per-pixel labels: 0 = background, ``1 + d`` = ink of digit d.

    A pixel is ink when the rescaled digit exceeds 0.5 there; the input gets Gaussian noise of std
    ``noise`` (clipped to [0, 1]) while the labels stay clean.

    Returns:
        ``X`` (n, 1, size, size) float32 and ``masks`` (n, size, size) int64 in [0, 10].
    """
    _check_counts("make_segmentation_canvases", digits, digit_size, size)
    Xs, ys = _source(source)
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 1, size, size), dtype=np.float32)
    masks = np.zeros((n, size, size), dtype=np.int64)
    for i in range(n):
        count = int(rng.integers(digits[0], digits[1] + 1))
        sizes = [int(s) for s in rng.integers(digit_size[0], digit_size[1] + 1, size=count)]
        for r, c, s in _place(rng, sizes, size):
            pick = int(rng.integers(len(Xs)))
            patch = _resize(Xs[pick], s)
            X[i, 0, r:r + s, c:c + s] = patch
            masks[i, r:r + s, c:c + s] = np.where(patch > 0.5, 1 + ys[pick], 0)
    X += rng.normal(0.0, noise, X.shape).astype(np.float32)
    return np.clip(X, 0.0, 1.0), masks
