"""Axis-aligned boxes: areas, format conversion and pairwise intersection-over-union.

Boxes are ``(..., 4)`` arrays in ``xyxy`` format ``(x1, y1, x2, y2)`` with ``x1 <= x2`` and
``y1 <= y2`` (pixel coordinates, x to the right, y down), as torchvision.ops uses.
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

__all__ = ["box_area", "box_convert", "box_iou"]

_FORMATS = ("xyxy", "cxcywh")


def _check_boxes(xp: Any, boxes: Any, fn: str, name: str = "boxes") -> None:
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{fn}: `{name}` must have shape (..., 4), got {tuple(boxes.shape)}")
    if not xp.isdtype(boxes.dtype, "real floating"):
        raise TypeError(f"{fn}: `{name}` must be a real floating array, got dtype {boxes.dtype}")


def box_area(boxes: Any) -> Any:
    """(..., 4) xyxy -> (...) areas ``(x2 - x1) * (y2 - y1)``."""
    xp = array_namespace(boxes)
    _check_boxes(xp, boxes, "box_area")
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_convert(boxes: Any, in_fmt: str, out_fmt: str) -> Any:
    """Convert (..., 4) boxes between ``"xyxy"`` and ``"cxcywh"`` (centre, width, height)."""
    xp = array_namespace(boxes)
    _check_boxes(xp, boxes, "box_convert")
    for name, fmt in (("in_fmt", in_fmt), ("out_fmt", out_fmt)):
        if fmt not in _FORMATS:
            raise ValueError(f"box_convert: `{name}` must be one of {_FORMATS}, got {fmt!r}")
    if in_fmt == out_fmt:
        return boxes
    a, b, c, d = (boxes[..., i] for i in range(4))
    if in_fmt == "xyxy":  # -> centre and size
        return xp.stack([(a + c) * 0.5, (b + d) * 0.5, c - a, d - b], axis=-1)
    return xp.stack([a - c * 0.5, b - d * 0.5, a + c * 0.5, b + d * 0.5], axis=-1)


def box_iou(boxes1: Any, boxes2: Any) -> Any:
    """Pairwise intersection over union, batched over leading axes.

    Args:
        boxes1: (..., N, 4) xyxy.
        boxes2: (..., M, 4) xyxy, same leading axes (or broadcastable).

    Returns:
        (..., N, M): ``|A ∩ B| / |A ∪ B|``; 0 where the union is empty.
    """
    xp = array_namespace(boxes1, boxes2)
    _check_boxes(xp, boxes1, "box_iou", "boxes1")
    _check_boxes(xp, boxes2, "box_iou", "boxes2")
    if boxes1.ndim < 2 or boxes2.ndim < 2:
        raise ValueError(f"box_iou: boxes must be (..., N, 4), got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}")
    a = boxes1[..., :, None, :]  # (..., N, 1, 4)
    b = boxes2[..., None, :, :]  # (..., 1, M, 4)
    w = xp.clip(xp.minimum(a[..., 2], b[..., 2]) - xp.maximum(a[..., 0], b[..., 0]), min=0.0)
    h = xp.clip(xp.minimum(a[..., 3], b[..., 3]) - xp.maximum(a[..., 1], b[..., 1]), min=0.0)
    inter = w * h  # (..., N, M)
    union = box_area(boxes1)[..., :, None] + box_area(boxes2)[..., None, :] - inter
    safe = xp.where(union > 0.0, union, xp.ones_like(union))
    return xp.where(union > 0.0, inter / safe, xp.zeros_like(inter))
