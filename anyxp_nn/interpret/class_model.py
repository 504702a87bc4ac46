"""Class-model visualisation by activation maximisation (Simonyan, Vedaldi & Zisserman, 2014, sec. 2).

Find the image that the network scores highest for a class ``c``, kept small by an L2 penalty:

    I* = argmax_I  S_c(I) - lambda ||I||^2

by plain gradient ascent from ``x0`` (zeros by default):

    I <- I + lr * (dS_c/dI - 2 lambda I)

``S_c`` is the unnormalised class score (the logit): maximising the softmax probability could
also be achieved by lowering the other classes' scores.  Each step is one forward and one
backward pass of the whole batch of images (one image per requested class).
"""
from __future__ import annotations

from typing import Any

from .._checks import non_negative_int
from ..layers.base import Layer
from ._common import check_model_input, frozen, logits_of, one_hot, targets

__all__ = ["class_model"]


def class_model(model: Layer, target: Any, x0: Any, *, steps: int = 100, lr: float = 1.0,
                l2: float = 1e-2) -> Any:
    """Images that maximise ``logit[target] - l2 * ||x||^2``: (N, C, H, W).

    Args:
        model: a classifier, (N, C, H, W) -> (N, num_classes) logits.
        target: an int class id or (N,) class ids (host or backend), one per image.
        x0: (N, C, H, W) starting images on the model's backend (e.g. zeros, or the data mean);
            not modified.
        steps: gradient-ascent steps.
        lr: step size.
        l2: the L2 decay lambda.
    """
    b = check_model_input("class_model", model, x0)
    non_negative_int(steps, "steps", "class_model")
    for name, v in (("lr", lr), ("l2", l2)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"class_model: `{name}` must be a number >= 0, got {v!r}")
    t = targets("class_model", target, x0.shape[0], b)
    x = x0
    with frozen(model):
        for _ in range(steps):
            logits, backprop = logits_of("class_model", model, x)
            g = backprop(one_hot("class_model", t, target, logits))  # dS_c / dx
            x = x + lr * (g - (2.0 * l2) * x)
    return x
