"""Losses: each returns ``(loss, dLoss/dInput)`` with mean reduction.

``loss`` is a 0-d array on the inputs' backend (reading it with ``float()`` is a
host sync point; do it once per log interval).
"""
from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace, device as _device

from .backend import backend_of

__all__ = ["softmax_cross_entropy", "mse", "binary_cross_entropy_with_logits", "one_hot"]


def _floating(xp: Any, a: Any, what: str) -> None:
    if not xp.isdtype(a.dtype, "real floating"):
        raise TypeError(f"{what} must be a real floating array, got dtype {a.dtype}")


def _same_place(a: Any, b: Any, fn: str, names: tuple[str, str]) -> None:
    try:
        same = array_namespace(a) is array_namespace(b) and _device(a) == _device(b)
    except TypeError:
        same = False
    if not same:
        raise ValueError(f"{fn}: `{names[1]}` is on {_where(b)}, expected {_where(a)} like `{names[0]}`")


def _where(a: Any) -> str:
    try:
        return repr(backend_of(a).label)
    except (TypeError, ValueError):
        return type(a).__name__


def one_hot(labels: Any, num_classes: int, dtype: Any) -> Any:
    """(N,) int class ids -> (N, C) one-hot of ``dtype`` on the labels' device."""
    xp = array_namespace(labels)
    classes = xp.arange(num_classes, dtype=labels.dtype, device=_device(labels))
    return xp.astype(labels[:, None] == classes[None, :], dtype)


def _tolerance(xp: Any, dtype: Any) -> float:
    """How far a float row sum may stray from 1: 10 * sqrt(machine epsilon)."""
    return 10.0 * float(xp.finfo(dtype).eps) ** 0.5


def softmax_cross_entropy(logits: Any, labels: Any, label_smoothing: float = 0.0,
                          check_labels: bool = True) -> tuple[Any, Any]:
    """Mean cross-entropy of softmax(logits) against class ids or soft targets.

    Args:
        logits: (N, C) real floating, N >= 1.
        labels: (N,) integer class ids in [0, C), or (N, C) soft targets (e.g. from MixUp):
            non-negative, each row summing to 1.
        label_smoothing: eps in [0, 1): targets become (1 - eps) * onehot + eps / C
            (Szegedy et al., 2016), as ``torch.nn.functional.cross_entropy``.
        check_labels: verify class ids are in range, or soft targets non-negative with rows
            summing to 1 (one host sync; pass False in hot loops on a GPU once the data is
            known good).

    Returns:
        loss (0-d), dlogits (N, C) = (softmax(logits) - targets) / N.

    Stable for any finite logits, up to the dtype's largest value: log-softmax is
    computed as z - logsumexp(z) with z = logits - max(logits), so exp never overflows;
    logits more than finfo.max below a row's maximum are raised to that distance (their
    probability is 0 either way), so z never overflows, and each row's loss is divided by N
    before the sum, so the loss stays finite.
    """
    xp = array_namespace(logits)
    fn = "softmax_cross_entropy"
    _floating(xp, logits, f"{fn}: logits")
    if logits.ndim != 2:
        raise ValueError(f"{fn}: logits must be (N, C), got shape {tuple(logits.shape)}")
    _same_place(logits, labels, fn, ("logits", "labels"))
    n, c = logits.shape
    if n == 0:
        raise ValueError(f"{fn}: the batch is empty (logits of shape {tuple(logits.shape)}); the mean "
                         "over no samples is undefined")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
            or not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if labels.ndim == 2:
        if tuple(labels.shape) != (n, c):
            raise ValueError(f"{fn}: soft targets must have the logits' shape {(n, c)}, got {tuple(labels.shape)}")
        _floating(xp, labels, f"{fn}: soft targets")
        target = xp.astype(labels, logits.dtype)
        if check_labels:
            # note: a host sync point (one read per call)
            b = backend_of(labels)
            sums = xp.sum(target, axis=1)
            lo, dev = b.item(xp.min(target)), b.item(xp.max(xp.abs(sums - 1.0)))
            if not lo >= 0.0:
                raise ValueError(f"{fn}: soft targets must be non-negative probabilities, got a minimum of {lo}")
            if not dev <= _tolerance(xp, target.dtype):
                raise ValueError(f"{fn}: each row of soft targets must sum to 1, got a row sum off by {dev:.3g} "
                                 "(normalise them, or pass integer class ids)")
    else:
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"{fn}: labels must be (N,) = ({n},) class ids, got shape {tuple(labels.shape)}")
        if not xp.isdtype(labels.dtype, "integral"):
            raise TypeError(f"{fn}: labels must be integer class ids, got dtype {labels.dtype}")
        if check_labels:
            # note: a host sync point (one scalar read per call, counted by the sync guard)
            b = backend_of(labels)
            if b.item(xp.any((labels < 0) | (labels >= c))):
                lo, hi = int(b.item(xp.min(labels))), int(b.item(xp.max(labels)))
                raise ValueError(f"{fn}: labels must be in [0, {c}) for {c} classes, got values in [{lo}, {hi}]")
        target = one_hot(labels, c, logits.dtype)
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / c
    m = xp.max(logits, axis=1, keepdims=True)  # (N, 1)
    big = float(xp.finfo(logits.dtype).max)
    # z = logits - m, with logits first raised to max(m, 0) - big: exp(z) is 0 for them either way,
    # and the subtraction can no longer overflow (logits of +-3e38 in float32 would give -inf)
    z = xp.maximum(logits, xp.maximum(m, 0.0) - big) - m  # (N, C), in [-big, 0]
    e = xp.exp(z)
    s = xp.sum(e, axis=1, keepdims=True)
    logp = z - xp.log(s)  # (N, C) log-softmax
    terms = xp.where(target != 0, target * logp, xp.zeros_like(logp))  # 0 * -big stays 0
    loss = -xp.sum(xp.sum(terms, axis=1) * (1.0 / n))
    dlogits = (e / s - target) * (1.0 / n)
    return loss, dlogits


def mse(pred: Any, target: Any) -> tuple[Any, Any]:
    """Mean squared error over all elements; grad 2 (pred - target) / size."""
    xp = array_namespace(pred)
    _floating(xp, pred, "mse: pred")
    _same_place(pred, target, "mse", ("pred", "target"))
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"mse: target shape {tuple(target.shape)} does not match pred shape {tuple(pred.shape)}")
    d = pred - xp.astype(target, pred.dtype)
    size = max(1, math.prod(d.shape))
    return xp.sum(d * d) / size, d * (2.0 / size)


def binary_cross_entropy_with_logits(logits: Any, targets: Any, check_targets: bool = True) -> tuple[Any, Any]:
    """Mean BCE of sigmoid(logits) vs targets in [0, 1], never overflowing.

    loss = max(x, 0) - x t + log(1 + e^-|x|);   dloss/dx = (sigmoid(x) - t) / size.

    Each term is divided by the size before the sum, so logits up to the dtype's
    largest value give a finite loss.  ``check_targets`` verifies 0 <= t <= 1
    (one host sync; pass False in hot loops on a GPU once the data is known good).
    """
    xp = array_namespace(logits)
    fn = "binary_cross_entropy_with_logits"
    _floating(xp, logits, f"{fn}: logits")
    _same_place(logits, targets, fn, ("logits", "targets"))
    if tuple(logits.shape) != tuple(targets.shape):
        raise ValueError(f"{fn}: targets shape {tuple(targets.shape)} does not match logits {tuple(logits.shape)}")
    t = xp.astype(targets, logits.dtype)
    size = max(1, math.prod(logits.shape))
    if check_targets and math.prod(logits.shape):
        # note: a host sync point (one read per call)
        b = backend_of(t)
        lo, hi = b.item(xp.min(t)), b.item(xp.max(t))
        if not (lo >= 0.0 and hi <= 1.0):
            raise ValueError(f"{fn}: targets must be probabilities in [0, 1], got values in [{lo}, {hi}]")
    e = xp.exp(-xp.abs(logits))
    loss = xp.sum((xp.maximum(logits, 0.0) - logits * t + xp.log1p(e)) * (1.0 / size))
    sig = xp.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return loss, (sig - t) * (1.0 / size)
