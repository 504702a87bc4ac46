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

__all__ = ["pixel_cross_entropy"]


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
    if not xp.isdtype(logits.dtype, "real floating"):
        raise TypeError(f"{fn}: `logits` must be real floating, got dtype {logits.dtype}")
    if logits.ndim < 2:
        raise ValueError(f"{fn}: `logits` must be (N, C, H, W), got shape {tuple(logits.shape)}")
    n, c = logits.shape[0], logits.shape[1]
    want = (n,) + tuple(logits.shape[2:])
    if tuple(labels.shape) != want:
        raise ValueError(f"{fn}: `labels` must be {want} for logits {tuple(logits.shape)}, got {tuple(labels.shape)}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"{fn}: `labels` must be integer class ids, got dtype {labels.dtype}")
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
