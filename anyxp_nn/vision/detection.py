"""A single-stage grid detector's targets, loss and decoding (YOLO-style, Redmon et al. 2016).

The image is cut into an S x S grid of square cells of ``cell = image_size / S`` pixels.
The cell holding a box's centre is responsible for it.  The detector predicts, per cell,
``5 + C`` channels: an objectness logit ``o``, box logits ``(tx, ty, tw, th)`` and class
logits; its prediction is an (N, 5 + C, S, S) map (any conv net ending in a 1x1 conv).
A cell's box is

    cx = (col + sigmoid(tx)) * cell,  cy = (row + sigmoid(ty)) * cell,
    w  = sigmoid(tw) * image_size,    h  = sigmoid(th) * image_size.

Loss, summed over cells and averaged over the N images (``t`` = 1 for a responsible cell):

    L = sum BCE(o, t) * (t + l_noobj (1 - t))
      + l_box * sum_t [ sum_{k in x,y,w,h} (sigmoid(t_k) - target_k)^2 ]
      + sum_t CE(class logits, class).

Everything is written against the standard; :func:`encode_grid` scatters boxes into cells by
one-hot comparison (the standard has no scatter), and when two boxes share a cell the
first one listed keeps it.
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device as _device

__all__ = ["encode_grid", "detection_loss", "decode_grid"]


def _sigmoid(xp: Any, x: Any) -> Any:
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def encode_grid(boxes: Any, labels: Any, valid: Any, grid: int, image_size: int) -> Any:
    """Ground truth -> per-cell targets.

    Args:
        boxes: (N, K, 4) xyxy pixels; labels: (N, K) int; valid: (N, K) bool (padding False).
        grid: S; image_size: the (square) image's side in pixels.

    Returns:
        (N, 6, S, S) float targets: channels ``t`` (1 at a responsible cell), the centre's offset
        in its cell ``(x, y)`` in [0, 1), the size ``(w, h)`` as fractions of the image, the class.
    """
    xp = array_namespace(boxes, labels)
    fn = "encode_grid"
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: `boxes` must be (N, K, 4), got {tuple(boxes.shape)}")
    n, k = boxes.shape[0], boxes.shape[1]
    if tuple(labels.shape) != (n, k) or tuple(valid.shape) != (n, k):
        raise ValueError(f"{fn}: `labels` and `valid` must be (N, K) = {(n, k)}, got {tuple(labels.shape)} and "
                         f"{tuple(valid.shape)}")
    if grid < 1 or image_size % grid:
        raise ValueError(f"{fn}: `image_size` (={image_size}) must be a multiple of `grid` (={grid})")
    dev, dt = _device(boxes), boxes.dtype
    cell = image_size / grid
    cx = (boxes[..., 0] + boxes[..., 2]) * (0.5 / cell)  # (N, K) in cell units
    cy = (boxes[..., 1] + boxes[..., 3]) * (0.5 / cell)
    col = xp.clip(xp.floor(cx), min=0.0, max=grid - 1.0)
    row = xp.clip(xp.floor(cy), min=0.0, max=grid - 1.0)
    cell_id = xp.astype(row * grid + col, xp.int64)  # (N, K)
    idx = xp.arange(k, dtype=xp.int64, device=dev)
    earlier = (idx[:, None] < idx[None, :])[None, :, :] & valid[:, :, None]  # (N, K', K): k' listed before k
    taken = xp.any(earlier & (cell_id[:, :, None] == cell_id[:, None, :]), axis=1)
    owner = xp.astype(valid & ~taken, dt)  # (N, K)
    cells = xp.arange(grid * grid, dtype=xp.int64, device=dev)
    onehot = xp.astype(cell_id[:, :, None] == cells[None, None, :], dt) * owner[:, :, None]  # (N, K, S*S)
    values = xp.stack([xp.ones_like(cx), cx - col, cy - row, (boxes[..., 2] - boxes[..., 0]) / image_size,
                       (boxes[..., 3] - boxes[..., 1]) / image_size, xp.astype(labels, dt)], axis=1)  # (N, 6, K)
    out = values @ onehot  # (N, 6, S*S): each cell holds its owner's values (or zeros)
    return xp.reshape(out, (n, 6, grid, grid))


def detection_loss(pred: Any, targets: Any, *, box_weight: float = 5.0,
                   noobj_weight: float = 0.5) -> tuple[Any, Any]:
    """YOLO-style loss of (N, 5 + C, S, S) predictions against :func:`encode_grid` targets.

    Returns ``(loss, dpred)``: 0-d and (N, 5 + C, S, S) (the formula is in the module docstring).
    Gradients:  dL/do = (sigmoid(o) - t)(t + l_noobj (1 - t)) / N,
    dL/dt_k = 2 l_box t (sigmoid(t_k) - target_k) sigmoid'(t_k) / N,
    dL/dz_class = t (softmax(z) - onehot) / N.
    """
    xp = array_namespace(pred, targets)
    fn = "detection_loss"
    if pred.ndim != 4 or pred.shape[1] < 6:
        raise ValueError(f"{fn}: `pred` must be (N, 5 + C, S, S) with C >= 1, got {tuple(pred.shape)}")
    n, ch, s1, s2 = pred.shape
    if tuple(targets.shape) != (n, 6, s1, s2):
        raise ValueError(f"{fn}: `targets` must be (N, 6, S, S) = {(n, 6, s1, s2)} from encode_grid, got "
                         f"{tuple(targets.shape)}")
    c = ch - 5
    dev, dt = _device(pred), pred.dtype
    t = xp.astype(targets[:, 0:1, ...], dt)  # (N, 1, S, S)
    inv_n = 1.0 / n
    # objectness: binary cross-entropy on logits, stable for any o
    o = pred[:, 0:1, ...]
    e = xp.exp(-xp.abs(o))
    bce = xp.maximum(o, 0.0) - o * t + xp.log1p(e)
    w_obj = t + noobj_weight * (1.0 - t)
    l_obj = xp.sum(bce * w_obj)
    d_obj = (_sigmoid(xp, o) - t) * w_obj
    # box: squared error of the squashed offsets and sizes, responsible cells only
    sb = _sigmoid(xp, pred[:, 1:5, ...])
    diff = (sb - xp.astype(targets[:, 1:5, ...], dt)) * t
    l_box = box_weight * xp.sum(diff * diff)
    d_box = (2.0 * box_weight) * diff * sb * (1.0 - sb)
    # class: softmax cross-entropy over the C class channels, responsible cells only
    z = pred[:, 5:, ...]
    z = z - xp.max(z, axis=1, keepdims=True)
    ez = xp.exp(z)
    sz = xp.sum(ez, axis=1, keepdims=True)
    classes = xp.reshape(xp.arange(c, dtype=dt, device=dev), (1, c, 1, 1))
    onehot = xp.astype(targets[:, 5:6, ...] == classes, dt)  # (N, C, S, S)
    l_cls = -xp.sum(t * onehot * (z - xp.log(sz)))
    d_cls = t * (ez / sz - onehot)
    loss = (l_obj + l_box + l_cls) * inv_n
    return loss, xp.concat([d_obj, d_box, d_cls], axis=1) * inv_n


def decode_grid(pred: Any, image_size: int) -> tuple[Any, Any, Any]:
    """(N, 5 + C, S, S) predictions -> one box per cell.

    Returns:
        ``(boxes, scores, labels)``: (N, S*S, 4) xyxy pixels, (N, S*S) scores
        ``sigmoid(o) * max_c softmax(z)_c`` and (N, S*S) int64 classes (row-major cell order).
    """
    xp = array_namespace(pred)
    if pred.ndim != 4 or pred.shape[1] < 6:
        raise ValueError(f"decode_grid: `pred` must be (N, 5 + C, S, S) with C >= 1, got {tuple(pred.shape)}")
    n, _, s, s2 = pred.shape
    dev, dt = _device(pred), pred.dtype
    cell = image_size / s
    flat = xp.reshape(pred, (n, pred.shape[1], s * s2))  # (N, 5 + C, S*S)
    sb = _sigmoid(xp, flat[:, 1:5, :])
    col = xp.astype(xp.arange(s * s2, dtype=xp.int64, device=dev) % s2, dt)
    row = xp.astype(xp.arange(s * s2, dtype=xp.int64, device=dev) // s2, dt)
    cx = (col[None, :] + sb[:, 0, :]) * cell
    cy = (row[None, :] + sb[:, 1, :]) * cell
    w, h = sb[:, 2, :] * image_size, sb[:, 3, :] * image_size
    boxes = xp.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)
    z = flat[:, 5:, :]
    ez = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    prob = ez / xp.sum(ez, axis=1, keepdims=True)
    scores = _sigmoid(xp, flat[:, 0, :]) * xp.max(prob, axis=1)
    return boxes, scores, xp.argmax(prob, axis=1)
