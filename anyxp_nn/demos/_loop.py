"""The mini-batch training epoch and the accuracy the demo sections share."""
from __future__ import annotations

from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.losses import softmax_cross_entropy
from anyxp_nn.training import evaluate

__all__ = ["accuracy", "train_epoch"]


def train_epoch(model: nn.Layer, opt: Any, X: np.ndarray, y: np.ndarray, *, batch_size: int,
                rng: nn.Generator, label_smoothing: float = 0.0) -> list[Any]:
    """One pass over host data in an order drawn from ``rng``; each batch moves to the
    model's backend once.  Returns the per-step losses as device scalars (not read:
    the caller reads what it needs in one transfer)."""
    b = model.backend
    perm = rng.permutation(len(X))
    losses = []
    for i in range(0, len(X), batch_size):
        idx = perm[i:i + batch_size]
        logits, backprop = model.forward(b.asarray(X[idx]), train=True)
        loss, dlogits = softmax_cross_entropy(logits, b.asarray(y[idx]), label_smoothing=label_smoothing,
                                              check_labels=False)
        model.zero_grad()
        backprop(dlogits, need_dx=False)  # the first layer skips its dX
        opt.step()
        losses.append(loss)
    return losses


def accuracy(model: nn.Layer, X: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """Fraction of correct argmax predictions on host data, in inference mode: ``nn.training.evaluate``."""
    return evaluate(model, (X, y), metrics=("accuracy",), batch_size=batch_size)["accuracy"]
