"""What every interpretability method shares: targets as one-hot rows, inference without
parameter gradients, the model's logits, and a stable softmax.

``frozen(model)`` turns ``requires_grad`` off for the duration of the call, so a backward
pass through the model computes dX only (no dW: Conv2D and Linear skip that GEMM) and leaves
every ``Parameter.grad`` untouched; the flags are restored afterwards, even on error.
``.training`` is never touched: every forward here passes ``train=False``.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np
from array_api_compat import array_namespace, device as _device

from ..backend import Backend, backend_of
from ..layers.base import Layer

__all__ = ["frozen", "check_model_input", "targets", "one_hot", "logits_of", "softmax"]


@contextlib.contextmanager
def frozen(model: Layer) -> Iterator[None]:
    """Parameters without gradients inside the block; their flags and grads as before after it."""
    params = model.parameters()
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad = False
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad = f


def check_model_input(owner: str, model: Any, x: Any) -> Backend:
    """The backend of ``x``; TypeError for a non-Layer model, ValueError for a non-4-D input."""
    if not isinstance(model, Layer):
        raise TypeError(f"{owner}: `model` must be an anyxp_nn Layer, got {type(model).__name__}")
    try:
        b = backend_of(x)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: `x` must be a backend array of shape (N, C, H, W), got {type(x).__name__}") from None
    if x.ndim != 4:
        raise ValueError(f"{owner}: expected `x` of shape (N, C, H, W), got shape {tuple(x.shape)}")
    return b


def targets(owner: str, target: Any, n: int, b: Backend) -> Any:
    """``target`` (an int, or (N,) class ids on the host or on ``b``) -> an (N,) int64 array on ``b``.

    Host ids are range-checked against 0 here (and against the class count in :func:`one_hot`
    for ints and host arrays); ids already on the device are used as they are (checking them
    would read them back to the host).
    """
    xp = b.xp
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if target < 0:
            raise ValueError(f"{owner}: `target` must be a class id >= 0, got {target}")
        return xp.full((n,), int(target), dtype=xp.int64, device=b.device)
    if isinstance(target, (list, tuple, np.ndarray)):
        host = np.asarray(target)
        if host.shape != (n,) or host.dtype.kind not in "iu":
            raise ValueError(f"{owner}: `target` must be an int or ({n},) integer class ids, got "
                             f"shape {host.shape} dtype {host.dtype}")
        if n and host.min() < 0:
            raise ValueError(f"{owner}: `target` must hold class ids >= 0, got {host.min()}")
        return b.asarray(host, dtype="int64")
    if not b.owns(target):
        raise TypeError(f"{owner}: `target` must be an int or (N,) class ids on the host or on {b.label!r}, "
                        f"got {type(target).__name__}")
    if tuple(target.shape) != (n,) or not xp.isdtype(target.dtype, "integral"):
        raise ValueError(f"{owner}: `target` must be an int or ({n},) integer class ids, got "
                         f"shape {tuple(target.shape)} dtype {target.dtype}")
    return xp.astype(target, xp.int64)


def one_hot(owner: str, t: Any, target: Any, logits: Any) -> Any:
    """(N, K) rows e_{t_n} in the logits' dtype: d logit[n, t_n] / d logits."""
    xp = array_namespace(logits)
    if logits.ndim != 2:
        raise ValueError(f"{owner}: the model must return (N, num_classes) logits, got shape {tuple(logits.shape)}")
    k = logits.shape[1]
    host_max = (int(target) if isinstance(target, (int, np.integer)) else
                int(np.max(target)) if isinstance(target, (list, tuple, np.ndarray)) and len(target) else None)
    if host_max is not None and host_max >= k:
        raise ValueError(f"{owner}: `target` {host_max} is out of range for a model with {k} classes")
    classes = xp.arange(k, dtype=xp.int64, device=_device(logits))
    return xp.astype(xp.expand_dims(t, axis=1) == xp.expand_dims(classes, axis=0), logits.dtype)  # (N, K)


def logits_of(owner: str, model: Layer, x: Any) -> tuple[Any, Any]:
    """``model.forward(x, train=False)``: (logits, backprop) in inference mode."""
    logits, backprop = model.forward(x, train=False)
    if logits.ndim != 2:
        raise ValueError(f"{owner}: the model must return (N, num_classes) logits, got shape {tuple(logits.shape)}")
    return logits, backprop


def softmax(logits: Any) -> Any:
    """Row-wise softmax of (M, K) logits, shifted by the row max (no overflow)."""
    xp = array_namespace(logits)
    e = xp.exp(logits - xp.max(logits, axis=1, keepdims=True))
    return e / xp.sum(e, axis=1, keepdims=True)
