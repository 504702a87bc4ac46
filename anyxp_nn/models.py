"""Model builders shared by demos, benchmarks and tests.

Each builder returns a :class:`~anyxp_nn.layers.Sequential` (or another layer)
with PyTorch-compatible ``state_dict`` keys, so the same weights load into the
equivalent ``torch.nn`` model.
"""
from __future__ import annotations

from typing import Any

from .layers import Conv2D, Flatten, Linear, MaxPool2D, ReLU, Sequential
from .layers import BatchNorm2D, GlobalAvgPool2D, Residual  # small_resnet
from .random import Generator

__all__ = ["mnist_cnn", "small_resnet", "mlp"]


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


def _conv_bn(cin: int, cout: int, k: int, stride: int, rng: Any, kw: dict) -> list:
    """Conv (no bias: the BatchNorm's shift replaces it) followed by BatchNorm2D."""
    return [Conv2D(cin, cout, k, stride=stride, padding=k // 2, bias=False, rng=rng, **kw), BatchNorm2D(cout, **kw)]


def _basic_block(cin: int, cout: int, stride: int, rng: Any, kw: dict) -> Residual:
    """He et al. (2016)'s basic block: conv-BN-ReLU-conv-BN plus a shortcut (a strided 1x1 conv + BN
    projection when the block changes the resolution or the width, else the identity)."""
    block = Sequential(*_conv_bn(cin, cout, 3, stride, rng, kw), ReLU(**kw), *_conv_bn(cout, cout, 3, 1, rng, kw))
    shortcut = Sequential(*_conv_bn(cin, cout, 1, stride, rng, kw)) if stride != 1 or cin != cout else None
    return Residual(block, shortcut)


def small_resnet(num_classes: int = 10, backend: Any = None, dtype: Any = None, rng: "Generator | None" = None, *,
                 width: int = 16, in_channels: int = 1) -> Sequential:
    """A small ResNet for (N, in_channels, 28, 28) input -> (N, num_classes) logits.

    Stem conv 3x3 (in -> w) + BN + ReLU at 28x28; a basic block (w -> w) + ReLU; a strided
    downsampling block (w -> 2w, stride 2, projection shortcut) + ReLU at 14x14; global average
    pooling; Linear(2w -> num_classes).  Keys match the same ``torch.nn`` modules with a
    residual wrapper holding children ``block`` and ``shortcut`` ("3.block.0.weight", "5.shortcut.1.running_mean").
    """
    kw = dict(backend=backend, dtype=dtype)
    return Sequential(
        *_conv_bn(in_channels, width, 3, 1, rng, kw), ReLU(**kw),
        _basic_block(width, width, 1, rng, kw), ReLU(**kw),
        _basic_block(width, 2 * width, 2, rng, kw), ReLU(**kw),
        GlobalAvgPool2D(**kw),
        Linear(2 * width, num_classes, rng=rng, **kw),
    )


def mlp(in_features: int, hidden: "tuple[int, ...]" = (256, 128), num_classes: int = 10, *,
        backend: Any = None, dtype: Any = None, rng: "Generator | None" = None) -> Sequential:
    """Multilayer perceptron (N, in_features) -> (N, num_classes) logits.

    Linear + ReLU for each width in ``hidden``, then a Linear to the classes (He init).
    Keys: "0.weight", "2.weight", ... as ``torch.nn.Sequential`` of the same modules.
    """
    kw = dict(backend=backend, dtype=dtype)
    layers: list[Any] = []
    width = in_features
    for h in hidden:
        layers += [Linear(width, h, rng=rng, **kw), ReLU(**kw)]
        width = h
    layers.append(Linear(width, num_classes, rng=rng, **kw))
    return Sequential(*layers)
