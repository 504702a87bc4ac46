"""``torch.nn`` twins of :mod:`anyxp_nn.models` and of the containers, for equivalence tests and benchmarks.

Each twin has the same children in the same order, so ``state_dict`` keys and layouts
match and ``twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})``
gives both frameworks the same weights.  Needs PyTorch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["torch_concatenate", "torch_mnist_cnn", "torch_residual", "torch_small_resnet"]


def torch_residual(block: Any, shortcut: Any = None) -> Any:
    """Twin of :class:`anyxp_nn.layers.Residual`: ``block(x) + shortcut(x)``, children "block"/"shortcut"."""
    import torch.nn as t

    class Residual(t.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block, self.shortcut = block, shortcut

        def forward(self, x: Any) -> Any:
            return self.block(x) + (x if self.shortcut is None else self.shortcut(x))

    return Residual()


def torch_concatenate(*branches: Any, axis: int = 1) -> Any:
    """Twin of :class:`anyxp_nn.layers.Concatenate`: children "0", "1", ... concatenated along ``axis``."""
    import torch
    import torch.nn as t

    class Concatenate(t.Module):
        def __init__(self) -> None:
            super().__init__()
            for i, b in enumerate(branches):
                self.add_module(str(i), b)

        def forward(self, x: Any) -> Any:
            return torch.cat([b(x) for b in self.children()], dim=axis)

    return Concatenate()


def torch_mnist_cnn() -> Any:
    """Twin of :func:`anyxp_nn.models.mnist_cnn`."""
    import torch.nn as t
    return t.Sequential(t.Conv2d(1, 32, 3, padding=1), t.ReLU(), t.MaxPool2d(2),
                        t.Conv2d(32, 64, 3, padding=1), t.ReLU(), t.MaxPool2d(2), t.Flatten(),
                        t.Linear(3136, 128), t.ReLU(), t.Linear(128, 10))


def torch_small_resnet(width: int = 16, num_classes: int = 10) -> Any:
    """Twin of :func:`anyxp_nn.models.small_resnet` (``Residual`` children "block"/"shortcut")."""
    import torch.nn as t

    class GlobalAvgPool(t.Module):  # (N, C, H, W) -> (N, C), one module as in anyxp_nn
        def forward(self, x: Any) -> Any:
            return x.mean(dim=(2, 3))

    def conv_bn(cin: int, cout: int, k: int, s: int) -> list:
        return [t.Conv2d(cin, cout, k, stride=s, padding=k // 2, bias=False), t.BatchNorm2d(cout)]

    def block(cin: int, cout: int, s: int) -> Any:
        body = t.Sequential(*conv_bn(cin, cout, 3, s), t.ReLU(), *conv_bn(cout, cout, 3, 1))
        return torch_residual(body, t.Sequential(*conv_bn(cin, cout, 1, s)) if s != 1 or cin != cout else None)

    w = width
    return t.Sequential(*conv_bn(1, w, 3, 1), t.ReLU(), block(w, w, 1), t.ReLU(), block(w, 2 * w, 2), t.ReLU(),
                        GlobalAvgPool(), t.Linear(2 * w, num_classes))
