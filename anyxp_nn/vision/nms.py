"""Greedy non-maximum suppression, batched over images, written against the standard.

Greedy NMS (as torchvision.ops.nms) visits boxes by falling score and keeps a box unless a
box already kept overlaps it with IoU > threshold.  Written as a fixed point instead of a
loop over boxes: with ``P[i, j]`` = "box i ranks above box j, overlaps it above the
threshold (and has its class, when class-aware)",

    keep_j = valid_j  and  not any_i (keep_i and P[i, j])

Starting from ``keep = valid``, one sweep of this rule fixes the top-ranked undecided box
of every image, so at most N sweeps (in practice 2-4) reach greedy NMS's answer exactly.
Each sweep is one batched (B, N, N) reduction; there is no Python loop over boxes or images.
The loop ends when a sweep changes nothing: one host read per sweep (a sync point).
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device as _device

from ..backend import backend_of
from .boxes import box_iou

__all__ = ["batched_nms"]


def batched_nms(boxes: Any, scores: Any, iou_threshold: float = 0.5, *, labels: Any = None,
                valid: Any = None) -> Any:
    """Greedy NMS for each image of a padded batch.

    Args:
        boxes: (B, N, 4) xyxy.
        scores: (B, N) real; ties rank the lower index first (as a stable sort).
        iou_threshold: suppress a box whose IoU with a kept higher-scoring box is > this.
        labels: optional (B, N) integer classes: only boxes of one class suppress each other.
        valid: optional (B, N) bool: padding / below-threshold boxes (False) are never kept
            and suppress nothing.

    Returns:
        keep: (B, N) bool mask in the input order.
    """
    xp = array_namespace(boxes, scores)
    fn = "batched_nms"
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: `boxes` must be (B, N, 4), got {tuple(boxes.shape)}")
    b, n = boxes.shape[0], boxes.shape[1]
    if tuple(scores.shape) != (b, n):
        raise ValueError(f"{fn}: `scores` must be (B, N) = {(b, n)}, got {tuple(scores.shape)}")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(f"{fn}: `iou_threshold` must be in [0, 1], got {iou_threshold}")
    dev = _device(boxes)
    if valid is None:
        valid = xp.ones((b, n), dtype=xp.bool, device=dev)
    elif tuple(valid.shape) != (b, n) or valid.dtype != xp.bool:
        raise ValueError(f"{fn}: `valid` must be a (B, N) = {(b, n)} bool array, got {tuple(valid.shape)} "
                         f"{valid.dtype}")
    idx = xp.arange(n, dtype=xp.int64, device=dev)
    s_i, s_j = scores[:, :, None], scores[:, None, :]
    ranks_above = (s_i > s_j) | ((s_i == s_j) & (idx[:, None] < idx[None, :])[None, :, :])  # (B, N, N)
    can_suppress = ranks_above & (box_iou(boxes, boxes) > iou_threshold) & valid[:, :, None]
    if labels is not None:
        if tuple(labels.shape) != (b, n):
            raise ValueError(f"{fn}: `labels` must be (B, N) = {(b, n)}, got {tuple(labels.shape)}")
        can_suppress = can_suppress & (labels[:, :, None] == labels[:, None, :])
    keep = valid
    sync = backend_of(boxes)
    for _ in range(n + 1):
        new = valid & ~xp.any(can_suppress & keep[:, :, None], axis=1)
        # note: a host sync point per sweep
        if sync.item(xp.all(new == keep)):
            break
        keep = new
    return keep
