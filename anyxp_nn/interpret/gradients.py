"""Gradient maps: the input gradient, saliency (Simonyan et al., 2014), SmoothGrad (Smilkov et al., 2017).

For a classifier with logits ``S(x)`` and a target class ``c``:

* ``input_gradient``: ``G = dS_c / dx`` (N, C, H, W), one forward and one backward pass with
  ``dS = e_c`` (the one-hot row) and no parameter gradients;
* ``saliency``: ``M[n, h, w] = max_k |G[n, k, h, w]|``, how much a small change of each pixel moves
  the class score (Simonyan, Vedaldi & Zisserman, "Deep Inside Convolutional Networks", 2014);
* ``smoothgrad``: ``M_hat(x) = 1/S sum_s M(x + eps_s)``, ``eps_s ~ N(0, sigma^2)`` with
  ``sigma = noise * (max x - min x)`` per image; averaging over nearby points removes the
  high-frequency jitter of the raw gradient (Smilkov et al., "SmoothGrad", 2017).  The noisy
  copies run through the model as batches of ``batch_size`` images, not one by one.

Every call runs the model with ``train=False`` (eval mode: BatchNorm uses its running
statistics, Dropout is the identity) and changes neither ``.training`` nor any ``Parameter.grad``.
"""
from __future__ import annotations

from typing import Any

from .._checks import positive_int
from ..layers.base import Layer
from ..random import Generator, get_rng
from ._common import check_model_input, frozen, logits_of, one_hot, targets

__all__ = ["input_gradient", "saliency", "smoothgrad"]


def _gradient(owner: str, model: Layer, x: Any, t: Any, target: Any) -> Any:
    """d logit[n, t_n] / d x for every row of ``x`` (the rows are independent in eval mode)."""
    logits, backprop = logits_of(owner, model, x)
    return backprop(one_hot(owner, t, target, logits))


def input_gradient(model: Layer, x: Any, target: Any) -> Any:
    """``d logit[target] / d x``.

    Args:
        model: a classifier, (N, C, H, W) -> (N, num_classes) logits.
        x: (N, C, H, W) input on the model's backend.
        target: an int class id or (N,) class ids (host or backend).

    Returns: (N, C, H, W), x's backend and dtype.
    """
    b = check_model_input("input_gradient", model, x)
    t = targets("input_gradient", target, x.shape[0], b)
    with frozen(model):
        return _gradient("input_gradient", model, x, t, target)


def saliency(model: Layer, x: Any, target: Any) -> Any:
    """Saliency map ``max_k |d logit[target] / d x_k|`` over the channels k: (N, H, W)."""
    b = check_model_input("saliency", model, x)
    t = targets("saliency", target, x.shape[0], b)
    with frozen(model):
        return b.xp.max(b.xp.abs(_gradient("saliency", model, x, t, target)), axis=1)


def smoothgrad(model: Layer, x: Any, target: Any, samples: int = 25, noise: float = 0.15,
               rng: "Generator | None" = None, *, batch_size: int = 256) -> Any:
    """SmoothGrad: the mean saliency map of ``samples`` noisy copies of each image, (N, H, W).

    Args:
        model, x, target: as :func:`saliency`.
        samples: noisy copies per image (S).
        noise: the noise level ``sigma / (max x_n - min x_n)`` (Smilkov et al. recommend 0.1-0.2);
            0 gives :func:`saliency`.
        rng: generator for the noise (default: the library's default generator); the draws are
            the same on every backend, in the order (sample, image, channel, row, column).
        batch_size: at most this many noisy images per forward/backward pass (whole samples at
            a time, at least one: N*S images take ceil(S / (batch_size // N)) passes).
    """
    b = check_model_input("smoothgrad", model, x)
    positive_int(samples, "samples", "smoothgrad")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or noise < 0:
        raise ValueError(f"smoothgrad: `noise` must be a number >= 0, got {noise!r}")
    positive_int(batch_size, "batch_size", "smoothgrad")
    xp, gen = b.xp, get_rng(rng)
    n, c, h, w = x.shape
    t = targets("smoothgrad", target, n, b)
    sigma = noise * (xp.max(x, axis=(1, 2, 3)) - xp.min(x, axis=(1, 2, 3)))  # (N,)
    sigma = xp.reshape(sigma, (1, n, 1, 1, 1))
    per_pass = max(1, batch_size // max(n, 1))  # whole samples per pass
    total = xp.zeros((n, h, w), dtype=x.dtype, device=b.device)
    with frozen(model):
        for start in range(0, samples, per_pass):
            k = min(per_pass, samples - start)
            eps = gen.normal((k, n, c, h, w), dtype=x.dtype, backend=b)  # drawn on the host, moved once
            noisy = xp.reshape(xp.expand_dims(x, axis=0) + sigma * eps, (k * n, c, h, w))  # sample-major
            tk = xp.reshape(xp.broadcast_to(xp.expand_dims(t, axis=0), (k, n)), (k * n,))
            g = _gradient("smoothgrad", model, noisy, tk, target)  # (k*N, C, H, W)
            total = total + xp.sum(xp.reshape(xp.max(xp.abs(g), axis=1), (k, n, h, w)), axis=0)
    return total / samples
