"""Models for the vision demos and benchmarks: a small U-Net and a single-stage grid detector.

Built from library layers only, so ``state_dict`` keys follow the containers' child names and
a ``torch.nn`` model with the same children loads the same weights.
"""
from __future__ import annotations

import math
from typing import Any

from ..backend import to_numpy
from ..layers import BatchNorm2D, Concatenate, Conv2D, ConvTranspose2D, Identity, MaxPool2D, ReLU, Sequential
from ..random import Generator

__all__ = ["unet", "grid_detector"]


def _conv_bn_relu(cin: int, cout: int, k: int, rng: Any, kw: dict) -> list:
    """Conv (no bias: the BatchNorm's shift replaces it), BatchNorm2D, ReLU."""
    return [Conv2D(cin, cout, k, padding=k // 2, bias=False, rng=rng, **kw), BatchNorm2D(cout, **kw),
            ReLU(**kw)]


def _up(cin: int, cout: int, rng: Any, kw: dict) -> list:
    """2x learned upsampling: the U-Net's "up-conv", a 2x2 stride-2 transposed convolution, BN, ReLU."""
    return [ConvTranspose2D(cin, cout, 2, stride=2, bias=False, rng=rng, **kw), BatchNorm2D(cout, **kw),
            ReLU(**kw)]


def _skip(inner: Sequential, kw: dict) -> Concatenate:
    """The U-Net skip: ``inner``'s output next to its input, on the channel axis."""
    return Concatenate(Identity(**kw), inner)


def unet(num_classes: int = 11, backend: Any = None, dtype: Any = None, rng: "Generator | None" = None, *,
         width: int = 8, widths: "tuple[int, int, int, int] | None" = None) -> Sequential:
    """(N, 1, H, W) -> (N, num_classes, H, W) logits; H and W divisible by 8.

    Encoder levels at H, H/2, H/4, H/8 with ``widths`` channels (default ``width`` times 1, 2, 4,
    8; two 3x3 conv-BN-ReLU each, max-pooling between); the decoder upsamples (a 2x2 stride-2
    ``ConvTranspose2D`` to the next level's width), concatenates the encoder's features of the same
    resolution (the skip, ``Concatenate(Identity(), inner)``: channels add up) and fuses them with
    one 3x3 conv.
    """
    kw = dict(backend=backend, dtype=dtype)
    if widths is None:
        widths = (width, 2 * width, 4 * width, 8 * width)
    elif len(tuple(widths)) != 4 or not all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in widths):
        raise ValueError(f"unet: `widths` must be 4 positive ints (channels at H, H/2, H/4, H/8), got {widths!r}")
    c1, c2, c3, c4 = widths
    level4 = Sequential(MaxPool2D(2, **kw), *_conv_bn_relu(c3, c4, 3, rng, kw),
                        *_conv_bn_relu(c4, c4, 3, rng, kw), *_up(c4, c3, rng, kw))
    level3 = Sequential(MaxPool2D(2, **kw), *_conv_bn_relu(c2, c3, 3, rng, kw),
                        *_conv_bn_relu(c3, c3, 3, rng, kw), _skip(level4, kw),
                        *_conv_bn_relu(2 * c3, c3, 3, rng, kw), *_up(c3, c2, rng, kw))
    level2 = Sequential(MaxPool2D(2, **kw), *_conv_bn_relu(c1, c2, 3, rng, kw),
                        *_conv_bn_relu(c2, c2, 3, rng, kw), _skip(level3, kw),
                        *_conv_bn_relu(2 * c2, c2, 3, rng, kw), *_up(c2, c1, rng, kw))
    return Sequential(*_conv_bn_relu(1, c1, 3, rng, kw), *_conv_bn_relu(c1, c1, 3, rng, kw), _skip(level2, kw),
                      *_conv_bn_relu(2 * c1, c1, 3, rng, kw), Conv2D(c1, num_classes, 1, rng=rng, **kw))


def grid_detector(num_classes: int = 10, backend: Any = None, dtype: Any = None, rng: "Generator | None" = None, *,
                  width: int = 16) -> Sequential:
    """(N, 1, H, W) -> (N, 5 + num_classes, H/8, W/8) per-cell predictions for
    :func:`anyxp_nn.vision.detection_loss` (48x48 -> a 6x6 grid).

    Three conv-ReLU-max-pool stages (``width`` times 1, 2, 4 channels), a 3x3 conv at the grid's
    resolution and a 1x1 conv to objectness, box and class logits.  The objectness bias starts at
    log(0.05 / 0.95): most cells are empty, and starting at that prior (as RetinaNet does) keeps the
    early loss from being all "no object".
    """
    kw = dict(backend=backend, dtype=dtype)
    w = width
    model = Sequential(
        Conv2D(1, w, 3, padding=1, rng=rng, **kw), ReLU(**kw), MaxPool2D(2, **kw),
        Conv2D(w, 2 * w, 3, padding=1, rng=rng, **kw), ReLU(**kw), MaxPool2D(2, **kw),
        Conv2D(2 * w, 4 * w, 3, padding=1, rng=rng, **kw), ReLU(**kw), MaxPool2D(2, **kw),
        Conv2D(4 * w, 4 * w, 3, padding=1, rng=rng, **kw), ReLU(**kw),
        Conv2D(4 * w, 5 + num_classes, 1, rng=rng, **kw),
    )
    head = model[len(model) - 1]
    bias = to_numpy(head.bias.data)
    bias[0] = -math.log(19.0)
    head.bias.data = model.backend.asarray(bias, dtype=head.bias.data.dtype)
    return model
