"""Per-pixel softmax cross-entropy for segmentation, returning ``(loss, dlogits)``.

With ``p = softmax(z)`` over the channel axis and class weights ``w``, the weighted mean
over the counted pixels (those whose label is not ``ignore_index``), as
``torch.nn.functional.cross_entropy(weight=w, ignore_index=...)``:

    L = sum_i w[y_i] * (-log p_i[y_i]) / sum_i w[y_i]
    dL/dz_i = w[y_i] * (p_i - onehot(y_i)) / sum_j w[y_j]
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device as _device

__all__ = ["pixel_cross_entropy", "segmentation_loss", "soft_dice_loss"]


def _check_logits_labels(xp: Any, logits: Any, labels: Any, fn: str) -> int:
    """The number of classes C of (N, C, ...) real logits and (N, ...) integer labels; errors name ``fn``."""
    if not xp.isdtype(logits.dtype, "real floating"):
        raise TypeError(f"{fn}: `logits` must be real floating, got dtype {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(f"{fn}: `logits` must be (N, C, H, W), got shape {tuple(logits.shape)}")
    want = (logits.shape[0],) + tuple(logits.shape[2:])
    if tuple(labels.shape) != want:
        raise ValueError(f"{fn}: `labels` must be {want} for logits {tuple(logits.shape)}, got {tuple(labels.shape)}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"{fn}: `labels` must be integer class ids, got dtype {labels.dtype}")
    return logits.shape[1]


def pixel_cross_entropy(logits: Any, labels: Any, weight: Any = None, *, ignore_index: int = -100) -> tuple[Any, Any]:
    """Softmax cross-entropy over axis 1 of (N, C, H, W) logits against (N, H, W) class ids.

    Args:
        logits: (N, C, H, W) real floating (any trailing spatial shape works: (N, C, ...)).
        labels: (N, H, W) integer class ids in [0, C), or ``ignore_index`` for pixels that count
            neither in the loss nor in the normaliser.
        weight: optional (C,) class weights (e.g. inverse class frequencies), on the logits' device.
        ignore_index: the label that marks ignored pixels (PyTorch's default, -100).

    Returns:
        ``(loss, dlogits)``: 0-d (NaN when no pixel counts, as PyTorch) and (N, C, H, W).
    """
    xp = array_namespace(logits, labels)
    fn = "pixel_cross_entropy"
    c = _check_logits_labels(xp, logits, labels, fn)
    dev = _device(logits)
    classes = xp.reshape(xp.arange(c, dtype=labels.dtype, device=dev), (1, c) + (1,) * (logits.ndim - 2))
    onehot = xp.astype(labels[:, None, ...] == classes, logits.dtype)  # (N, C, H, W); ignored pixels: all 0
    if weight is None:
        w_pix = xp.sum(onehot, axis=1)  # (N, H, W): 1 where counted
    else:
        if tuple(weight.shape) != (c,):
            raise ValueError(f"{fn}: `weight` must be ({c},) for {c} classes, got {tuple(weight.shape)}")
        w = xp.reshape(xp.astype(weight, logits.dtype), (1, c) + (1,) * (logits.ndim - 2))
        w_pix = xp.sum(onehot * w, axis=1)  # (N, H, W): w[y_i]
    z = logits - xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(z)
    s = xp.sum(e, axis=1, keepdims=True)
    nll = -xp.sum(onehot * (z - xp.log(s)), axis=1)  # (N, H, W): -log p_i[y_i]
    total = xp.sum(w_pix)
    loss = xp.sum(w_pix * nll) / total
    dlogits = (e / s - onehot) * (w_pix / total)[:, None, ...]
    return loss, dlogits


def soft_dice_loss(logits: Any, labels: Any, *, smooth: float = 1.0) -> tuple[Any, Any]:
    """Soft Dice loss over the classes (Milletari et al., 2016), on the whole batch, returning ``(loss, dlogits)``.

    With ``p = softmax(z)`` over axis 1 and one-hot targets ``g``, per class ``c`` (sums over
    every pixel of every image in the batch, the "batch Dice" of nnU-Net):

        I_c = sum_i p_ic g_ic,   S_c = sum_i p_ic + sum_i g_ic,   D_c = (2 I_c + s) / (S_c + s)
        L = 1 - mean_c D_c
        dL/dp_ic = -(2 g_ic (S_c + s) - (2 I_c + s)) / (C (S_c + s)^2),
        dL/dz_i = p_i * (dL/dp_i - sum_c p_ic dL/dp_ic)                        (softmax backward)

    It scores overlap per class, so a thin rare class counts as much as the background: the
    usual companion of the per-pixel cross-entropy in segmentation (``CE + Dice``).  ``smooth``
    (``s``) keeps a class absent from the batch (``S_c = 0``) at ``D_c = 1`` with zero gradient
    through the numerator.

    Args:
        logits: (N, C, H, W) real floating (any trailing spatial shape).
        labels: (N, H, W) integer class ids in [0, C).
        smooth: ``s >= 0``.

    Returns:
        ``(loss, dlogits)``: 0-d and (N, C, H, W).
    """
    xp = array_namespace(logits, labels)
    fn = "soft_dice_loss"
    c = _check_logits_labels(xp, logits, labels, fn)
    if not isinstance(smooth, (int, float)) or isinstance(smooth, bool) or smooth < 0:
        raise ValueError(f"{fn}: `smooth` must be a number >= 0, got {smooth!r}")
    dev = _device(logits)
    shape = (1, c) + (1,) * (logits.ndim - 2)
    g = xp.astype(labels[:, None, ...] == xp.reshape(xp.arange(c, dtype=labels.dtype, device=dev), shape),
                  logits.dtype)
    axes = (0,) + tuple(range(2, logits.ndim))
    z = logits - xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(z)
    p = e / xp.sum(e, axis=1, keepdims=True)
    inter = xp.sum(p * g, axis=axes, keepdims=True)  # (1, C, 1, 1)
    denom = xp.sum(p, axis=axes, keepdims=True) + xp.sum(g, axis=axes, keepdims=True) + smooth
    dice = (2.0 * inter + smooth) / denom
    loss = 1.0 - xp.mean(dice)
    dp = (dice - 2.0 * g) / (c * denom)  # = -(2 g (S + s) - (2 I + s)) / (C (S + s)^2)
    dlogits = p * (dp - xp.sum(p * dp, axis=1, keepdims=True))
    return loss, dlogits


def segmentation_loss(logits: Any, labels: Any, weight: Any = None, *, dice: float = 1.0,
                      smooth: float = 1.0) -> tuple[Any, Any]:
    """``pixel_cross_entropy(logits, labels, weight) + dice * soft_dice_loss(logits, labels, smooth=smooth)``
    and its gradient, from one softmax and one one-hot (the "CE + Dice" loss of segmentation practice).

    Every label must be a class id in [0, C) (no ``ignore_index``: the Dice term counts every pixel).
    Returns ``(loss, dlogits)``: 0-d and (N, C, H, W).
    """
    xp = array_namespace(logits, labels)
    fn = "segmentation_loss"
    c = _check_logits_labels(xp, logits, labels, fn)
    if not isinstance(dice, (int, float)) or isinstance(dice, bool) or dice < 0:
        raise ValueError(f"{fn}: `dice` must be a number >= 0, got {dice!r}")
    if not isinstance(smooth, (int, float)) or isinstance(smooth, bool) or smooth < 0:
        raise ValueError(f"{fn}: `smooth` must be a number >= 0, got {smooth!r}")
    if weight is not None and tuple(weight.shape) != (c,):
        raise ValueError(f"{fn}: `weight` must be ({c},) for {c} classes, got {tuple(weight.shape)}")
    dev = _device(logits)
    shape = (1, c) + (1,) * (logits.ndim - 2)
    g = xp.astype(labels[:, None, ...] == xp.reshape(xp.arange(c, dtype=labels.dtype, device=dev), shape),
                  logits.dtype)  # (N, C, H, W) one-hot
    m = xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(logits - m)
    s = xp.sum(e, axis=1, keepdims=True)
    p = e / s
    # cross-entropy: -log p_i[y_i] = log s_i + m_i - z_i[y_i]
    nll = (xp.log(s) + m)[:, 0, ...] - xp.sum(g * logits, axis=1)
    if weight is None:
        w_pix = xp.ones(nll.shape, dtype=logits.dtype, device=dev)
    else:
        flat = xp.take(xp.astype(weight, logits.dtype), xp.reshape(labels, (-1,)), axis=0)
        w_pix = xp.reshape(flat, nll.shape)  # w[y_i]
    w_pix = w_pix / xp.sum(w_pix)
    loss = xp.sum(w_pix * nll)
    grad = (p - g) * w_pix[:, None, ...]
    if dice:
        axes = (0,) + tuple(range(2, logits.ndim))
        denom = xp.sum(p, axis=axes, keepdims=True) + xp.sum(g, axis=axes, keepdims=True) + smooth
        score = (2.0 * xp.sum(p * g, axis=axes, keepdims=True) + smooth) / denom
        loss = loss + dice * (1.0 - xp.mean(score))
        dp = (score - 2.0 * g) / ((c / dice) * denom)
        grad = grad + p * (dp - xp.sum(p * dp, axis=1, keepdims=True))
    return loss, grad
