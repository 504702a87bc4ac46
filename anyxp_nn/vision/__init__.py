"""Computer-vision building blocks: boxes, non-maximum suppression, a grid detector's
loss and decoding, per-pixel cross-entropy, segmentation and detection metrics, and the
generated MNIST canvases the demos train on.  Everything numeric is written against the
Array API standard and runs on every backend."""
from .boxes import box_area, box_convert, box_iou
from .nms import batched_nms
from .metrics import (average_precision, confusion_matrix, match_detections, mean_average_precision,
                      mean_iou, pixel_accuracy)
from .losses import pixel_cross_entropy, segmentation_loss, soft_dice_loss
from .detection import decode_grid, detection_loss, encode_grid
from .canvases import make_detection_canvases, make_segmentation_canvases
from .models import grid_detector, unet

__all__ = [
    "average_precision", "batched_nms", "box_area", "box_convert", "box_iou", "confusion_matrix", "decode_grid",
    "detection_loss", "encode_grid", "grid_detector", "make_detection_canvases", "make_segmentation_canvases",
    "match_detections", "mean_average_precision", "mean_iou", "pixel_accuracy", "pixel_cross_entropy",
    "segmentation_loss", "soft_dice_loss", "unet"
]
