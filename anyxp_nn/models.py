"""Model builders shared by demos, benchmarks and tests.

Each builder returns a :class:`~anyxp_nn.layers.Sequential` (or another layer)
with PyTorch-compatible ``state_dict`` keys, so the same weights load into the
equivalent ``torch.nn`` model.
"""
from __future__ import annotations

from typing import Any

from .layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential
from .random import Generator

__all__ = ["mnist_cnn"]


def mnist_cnn(backend: Any = None, dtype: Any = None, rng: "Generator | None" = None) -> Sequential:
    """The classic two-block MNIST CNN for (N, 1, 28, 28) input -> (N, 10) logits.

    Conv(1->32, 3x3, pad 1), ReLU, MaxPool 2; Conv(32->64, 3x3, pad 1), ReLU, MaxPool 2;
    Flatten (64*7*7 = 3136); Linear(3136->128), ReLU; Linear(128->10).  He initialisation.
    Keys match ``torch.nn.Sequential`` of the same modules: "0.weight", "3.weight", "7.weight", "9.weight".
    """
    kw = dict(backend=backend, dtype=dtype)
    return Sequential(
        Conv2D(1, 32, 3, padding=1, rng=rng, **kw), ReLU(**kw), MaxPool2D(2, **kw),
        Conv2D(32, 64, 3, padding=1, rng=rng, **kw), ReLU(**kw), MaxPool2D(2, **kw),
        Flatten(**kw),
        Linear(64 * 7 * 7, 128, rng=rng, **kw), ReLU(**kw),
        Linear(128, 10, rng=rng, **kw),
    )
