"""Segmentation and detection metrics, written against the standard.

Segmentation: a confusion matrix over pixels gives the pixel accuracy and the per-class
intersection over union ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``; mean IoU averages it over
the classes present in the truth or the prediction (a class absent from both is left out).

Detection: PASCAL VOC's protocol (Everingham et al., 2010).  :func:`match_detections` marks
each detection a true positive when its best-overlapping ground truth of its class has
IoU > threshold and no higher-scoring detection took it; :func:`average_precision` is the
area under the interpolated precision-recall curve over every recall point ("all-point",
VOC 2010 onwards),

    AP = sum_k (r_k - r_{k-1}) * p_interp(r_k),    p_interp(r) = max_{r' >= r} p(r'),

with detections ranked by falling score and ``r_0 = 0``; mAP is its mean over the classes
that have ground truth.
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device as _device

from .boxes import box_iou

__all__ = ["confusion_matrix", "pixel_accuracy", "mean_iou", "average_precision", "match_detections",
           "mean_average_precision"]

_CHUNK = 1 << 20  # pixels per one-hot block: counts stay exact in float32 (< 2**24)


def _check_labels(xp: Any, pred: Any, target: Any, fn: str) -> None:
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(f"{fn}: `pred` {tuple(pred.shape)} and `target` {tuple(target.shape)} must have one shape")
    for name, a in (("pred", pred), ("target", target)):
        if not xp.isdtype(a.dtype, "integral"):
            raise TypeError(f"{fn}: `{name}` must hold integer class ids, got dtype {a.dtype}")


def confusion_matrix(pred: Any, target: Any, num_classes: int) -> Any:
    """(C, C) int64 counts: row = true class, column = predicted class.

    Args:
        pred, target: integer class ids of one shape (e.g. (N, H, W)); ids outside
            [0, num_classes) are not counted.
    """
    xp = array_namespace(pred, target)
    _check_labels(xp, pred, target, "confusion_matrix")
    if num_classes < 1:
        raise ValueError(f"confusion_matrix: `num_classes` must be >= 1, got {num_classes}")
    dev = _device(pred)
    p, t = xp.reshape(pred, (-1,)), xp.reshape(target, (-1,))
    classes = xp.arange(num_classes, dtype=p.dtype, device=dev)
    counts = xp.zeros((num_classes, num_classes), dtype=xp.int64, device=dev)
    total = p.shape[0]
    for i in range(0, total, _CHUNK):
        j = min(i + _CHUNK, total)
        tp = xp.astype(t[i:j, None] == xp.astype(classes, t.dtype)[None, :], xp.float32)  # (P, C)
        pp = xp.astype(p[i:j, None] == classes[None, :], xp.float32)  # (P, C)
        counts = counts + xp.astype(xp.round(tp.T @ pp), xp.int64)
    return counts


def pixel_accuracy(pred: Any, target: Any) -> Any:
    """0-d float32: the fraction of positions where ``pred == target``."""
    xp = array_namespace(pred, target)
    _check_labels(xp, pred, target, "pixel_accuracy")
    return xp.mean(xp.astype(pred == target, xp.float32))


def mean_iou(pred: Any, target: Any, num_classes: int) -> tuple[Any, Any]:
    """Mean and per-class intersection over union from the confusion matrix.

    Returns:
        ``(miou, iou)``: 0-d float32 and (C,) float32; ``iou[c]`` is NaN for a class in
        neither ``pred`` nor ``target``, and such classes are left out of the mean.
    """
    xp = array_namespace(pred, target)
    cm = xp.astype(confusion_matrix(pred, target, num_classes), xp.float32)
    tp = xp.linalg.diagonal(cm)
    union = xp.sum(cm, axis=0) + xp.sum(cm, axis=1) - tp
    present = union > 0.0
    iou = xp.where(present, tp / xp.where(present, union, xp.ones_like(union)), xp.full_like(union, float("nan")))
    miou = xp.sum(xp.where(present, iou, xp.zeros_like(iou))) / xp.astype(xp.sum(xp.astype(present, xp.int64)),
                                                                          xp.float32)
    return miou, iou


def _suffix_max(xp: Any, p: Any) -> Any:
    """``out[i] = max(p[i:])`` in log2(R) shifted maxima (the standard has no cumulative max)."""
    n, shift = p.shape[0], 1
    while shift < n:
        tail = xp.concat([p[shift:], xp.full((shift,), -float("inf"), dtype=p.dtype, device=_device(p))])
        p = xp.maximum(p, tail)
        shift *= 2
    return p


def average_precision(scores: Any, is_tp: Any, num_gt: Any) -> Any:
    """PASCAL VOC all-point interpolated average precision of one class.

    Args:
        scores: (R,) detection confidences (ties keep their order: a stable sort).
        is_tp: (R,) bool, from :func:`match_detections`.
        num_gt: number of ground-truth objects (int or 0-d array); must be > 0 for a
            meaningful AP (0 gives NaN, as VOC's code).

    Returns:
        0-d float: ``sum_k (r_k - r_{k-1}) max_{j >= k} p_j``.
    """
    xp = array_namespace(scores, is_tp)
    if scores.ndim != 1 or tuple(is_tp.shape) != tuple(scores.shape):
        raise ValueError(f"average_precision: `scores` and `is_tp` must be (R,) of one length, got "
                         f"{tuple(scores.shape)} and {tuple(is_tp.shape)}")
    if is_tp.dtype != xp.bool:
        raise TypeError(f"average_precision: `is_tp` must be bool, got dtype {is_tp.dtype}")
    dt = scores.dtype if xp.isdtype(scores.dtype, "real floating") else xp.float32
    order = xp.argsort(scores, descending=True, stable=True)
    tp = xp.astype(xp.take(is_tp, order), dt)  # (R,) in ranking order
    ctp = xp.cumulative_sum(tp)
    cfp = xp.cumulative_sum(1.0 - tp)
    recall = ctp / xp.astype(xp.asarray(num_gt, device=_device(scores)), dt)
    precision = ctp / xp.maximum(ctp + cfp, xp.ones_like(ctp))
    prev = xp.concat([xp.zeros((1,), dtype=dt, device=_device(scores)), recall[:-1]])
    return xp.sum((recall - prev) * _suffix_max(xp, precision))


def match_detections(det_boxes: Any, det_scores: Any, det_labels: Any, det_valid: Any, gt_boxes: Any,
                     gt_labels: Any, gt_valid: Any, iou_threshold: float = 0.5) -> Any:
    """VOC matching of padded per-image detections to ground truth.

    Args:
        det_boxes (B, K, 4), det_scores (B, K), det_labels (B, K) int, det_valid (B, K) bool.
        gt_boxes (B, G, 4), gt_labels (B, G) int, gt_valid (B, G) bool.

    Returns:
        (B, K) bool: true positive.  Detections are visited by falling score; each takes the
        ground truth of its class with the highest IoU, and is a true positive when that IoU
        exceeds ``iou_threshold`` and no earlier detection took it (else a false positive).
        The loop runs over the K ranks, each step batched over the B images.
    """
    xp = array_namespace(det_boxes, gt_boxes)
    b, k = det_scores.shape
    g = gt_labels.shape[1]
    dev = _device(det_boxes)
    order = xp.argsort(det_scores, axis=1, descending=True, stable=True)  # (B, K)
    boxes = xp.take_along_axis(det_boxes, xp.broadcast_to(order[:, :, None], (b, k, 4)), axis=1)
    labels = xp.take_along_axis(det_labels, order, axis=1)
    valid = xp.take_along_axis(det_valid, order, axis=1)
    iou = box_iou(boxes, gt_boxes)  # (B, K, G)
    same = (labels[:, :, None] == gt_labels[:, None, :]) & gt_valid[:, None, :]
    iou = xp.where(same, iou, xp.full_like(iou, -1.0))
    best = xp.argmax(iou, axis=2)  # (B, K)
    overlap = xp.max(iou, axis=2)
    gt_idx = xp.arange(g, dtype=best.dtype, device=dev)
    matched = xp.zeros((b, g), dtype=xp.bool, device=dev)
    tps = []
    for r in range(k):
        pick = gt_idx[None, :] == best[:, r:r + 1]  # (B, G) the ground truth this rank points at
        tp = valid[:, r] & (overlap[:, r] > iou_threshold) & ~xp.any(pick & matched, axis=1)
        matched = matched | (pick & tp[:, None])
        tps.append(tp)
    tp_sorted = xp.stack(tps, axis=1) if tps else xp.zeros((b, 0), dtype=xp.bool, device=dev)
    return xp.take_along_axis(tp_sorted, xp.argsort(order, axis=1), axis=1)  # back to the input order


def mean_average_precision(det_boxes: Any, det_scores: Any, det_labels: Any, det_valid: Any, gt_boxes: Any,
                           gt_labels: Any, gt_valid: Any, num_classes: int,
                           iou_threshold: float = 0.5) -> tuple[Any, Any]:
    """mAP@iou_threshold over a held-out set (VOC all-point AP per class, then the mean).

    Arguments as :func:`match_detections`.  Returns ``(map, ap)``: 0-d and (C,) float32,
    ``ap[c]`` NaN for a class without ground truth (left out of the mean).
    """
    xp = array_namespace(det_boxes, gt_boxes)
    tp = match_detections(det_boxes, det_scores, det_labels, det_valid, gt_boxes, gt_labels, gt_valid,
                          iou_threshold)
    scores = xp.reshape(xp.astype(det_scores, xp.float32), (-1,))
    aps = []
    for c in range(num_classes):
        mine = xp.reshape(det_valid & (det_labels == c), (-1,))
        # other classes' detections rank last as false positives: recall does not move there,
        # so they add nothing to the sum
        s = xp.where(mine, scores, xp.full_like(scores, -float("inf")))
        n_gt = xp.sum(xp.astype(gt_valid & (gt_labels == c), xp.float32))
        ap = average_precision(s, xp.reshape(tp, (-1,)) & mine, xp.maximum(n_gt, xp.ones_like(n_gt)))
        aps.append(xp.where(n_gt > 0.0, ap, xp.asarray(float("nan"), dtype=xp.float32, device=_device(scores))))
    ap = xp.stack(aps)
    has = ~xp.isnan(ap)
    total = xp.sum(xp.where(has, ap, xp.zeros_like(ap)))
    return total / xp.maximum(xp.sum(xp.astype(has, xp.float32)), xp.ones((), dtype=xp.float32, device=_device(ap))), ap
