"""Per-pixel softmax cross-entropy for segmentation, returning ``(loss, dlogits)``.

With ``p = softmax(z)`` over the channel axis and class weights ``w``, the weighted mean
over the counted pixels (those whose label is not ``ignore_index``), as
``torch.nn.functional.cross_entropy(weight=w, ignore_index=...)``:

    L = sum_i w[y_i] * (-log p_i[y_i]) / sum_i w[y_i]
    dL/dz_i = w[y_i] * (p_i - onehot(y_i)) / sum_j w[y_j]
"""
from __future__ import annotations

import math
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


def soft_dice_loss(logits: Any, labels: Any, *, smooth: float = 1.0, ignore_index: int = -100) -> tuple[Any, Any]:
    """Soft Dice loss over the classes (Milletari et al., 2016), on the whole batch, returning ``(loss, dlogits)``.

    With ``p = softmax(z)`` over axis 1 and one-hot targets ``g``, per class ``c`` (sums over
    every pixel of every image in the batch, the "batch Dice" of nnU-Net):

        I_c = sum_i p_ic g_ic,   S_c = sum_i p_ic + sum_i g_ic,   D_c = (2 I_c + s) / (S_c + s)
        L = 1 - mean_c D_c
        dL/dp_ic = -(2 g_ic (S_c + s) - (2 I_c + s)) / (C (S_c + s)^2),
        dL/dz_i = p_i * (dL/dp_i - sum_c p_ic dL/dp_ic)                        (softmax backward)

    It scores overlap per class, so a thin rare class counts as much as the background: the
    usual companion of the per-pixel cross-entropy in segmentation (``CE + Dice``).  Every class
    takes part, the background too.  A class absent from the batch (``g_c = 0``) scores
    ``D_c = s / (sum_i p_ic + s)``, so its term pushes the predicted ``p_c`` towards 0;
    ``smooth`` (``s``) keeps that ratio finite and gentle (``D_c = 1`` only if ``p_c`` is 0 too).
    Pixels labelled ``ignore_index`` (or with any label outside [0, C)) take no part: their
    ``p`` and ``g`` leave every sum, and their gradient is 0.

    Args:
        logits: (N, C, H, W) real floating (any trailing spatial shape).
        labels: (N, H, W) integer class ids in [0, C), or ``ignore_index``.
        smooth: ``s >= 0``, finite.
        ignore_index: the label of pixels to leave out (PyTorch's default, -100).

    Returns:
        ``(loss, dlogits)``: 0-d and (N, C, H, W).
    """
    xp = array_namespace(logits, labels)
    fn = "soft_dice_loss"
    c = _check_logits_labels(xp, logits, labels, fn)
    _check_number(smooth, "smooth", fn)
    g = _one_hot(xp, logits, labels, c)  # ignored pixels: all 0
    counted = xp.sum(g, axis=1, keepdims=True)  # (N, 1, H, W): 1 where the pixel takes part
    z = logits - xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(z)
    p = e / xp.sum(e, axis=1, keepdims=True)
    dice, dp = _dice_terms(xp, p, g, counted, smooth)
    loss = 1.0 - xp.mean(dice)
    dlogits = p * (dp - xp.sum(p * dp, axis=1, keepdims=True))
    return loss, dlogits


def _check_number(v: Any, name: str, fn: str) -> None:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{fn}: `{name}` must be a finite number >= 0, got {v!r}")


def _one_hot(xp: Any, logits: Any, labels: Any, c: int) -> Any:
    """(N, C, H, W) one-hot of (N, H, W) labels in the logits' dtype; a label outside [0, C) gives all 0."""
    shape = (1, c) + (1,) * (logits.ndim - 2)
    classes = xp.reshape(xp.arange(c, dtype=labels.dtype, device=_device(logits)), shape)
    return xp.astype(labels[:, None, ...] == classes, logits.dtype)


def _dice_terms(xp: Any, p: Any, g: Any, counted: Any, smooth: float) -> tuple[Any, Any]:
    """Per-class batch Dice scores ``D`` (1, C, 1, 1) over the counted pixels, and dL/dp of
    ``L = 1 - mean_c D_c`` (zero on pixels that are not counted)."""
    c = p.shape[1]
    axes = (0,) + tuple(range(2, p.ndim))
    pc = p * counted
    inter = xp.sum(pc * g, axis=axes, keepdims=True)  # (1, C, 1, 1)
    denom = xp.sum(pc, axis=axes, keepdims=True) + xp.sum(g, axis=axes, keepdims=True) + smooth
    dice = (2.0 * inter + smooth) / denom
    dp = (dice - 2.0 * g) * counted / (c * denom)  # = -(2 g (S + s) - (2 I + s)) / (C (S + s)^2)
    return dice, dp


def segmentation_loss(logits: Any, labels: Any, weight: Any = None, *, dice: float = 1.0,
                      smooth: float = 1.0, ignore_index: int = -100) -> tuple[Any, Any]:
    """``pixel_cross_entropy(logits, labels, weight, ignore_index=) + dice * soft_dice_loss(logits, labels,
    smooth=, ignore_index=)`` and its gradient, from one softmax and one one-hot (the "CE + Dice"
    loss of segmentation practice).

    Pixels labelled ``ignore_index`` (or any label outside [0, C)) count in neither term.
    Returns ``(loss, dlogits)``: 0-d (NaN when no pixel counts, as PyTorch) and (N, C, H, W).
    """
    xp = array_namespace(logits, labels)
    fn = "segmentation_loss"
    c = _check_logits_labels(xp, logits, labels, fn)
    _check_number(dice, "dice", fn)
    _check_number(smooth, "smooth", fn)
    if weight is not None and tuple(weight.shape) != (c,):
        raise ValueError(f"{fn}: `weight` must be ({c},) for {c} classes, got {tuple(weight.shape)}")
    g = _one_hot(xp, logits, labels, c)  # (N, C, H, W); ignored pixels: all 0
    m = xp.max(logits, axis=1, keepdims=True)
    e = xp.exp(logits - m)
    s = xp.sum(e, axis=1, keepdims=True)
    p = e / s
    # cross-entropy: -log p_i[y_i] = log s_i + m_i - z_i[y_i]
    nll = (xp.log(s) + m)[:, 0, ...] - xp.sum(g * logits, axis=1)
    if weight is None:
        w_pix = xp.sum(g, axis=1)  # 1 where counted
    else:
        w_pix = xp.sum(g * xp.reshape(xp.astype(weight, logits.dtype), (1, c) + (1,) * (logits.ndim - 2)),
                       axis=1)  # w[y_i], 0 where ignored
    w_pix = w_pix / xp.sum(w_pix)
    loss = xp.sum(w_pix * nll)
    grad = (p - g) * w_pix[:, None, ...]
    if dice:
        score, dp = _dice_terms(xp, p, g, xp.sum(g, axis=1, keepdims=True), smooth)
        loss = loss + dice * (1.0 - xp.mean(score))
        grad = grad + dice * (p * (dp - xp.sum(p * dp, axis=1, keepdims=True)))
    return loss, grad
