"""Occlusion sensitivity (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", 2014).

Slide a ``patch`` x ``patch`` square (all channels set to ``value``) over the image with step
``stride`` and record how much the target class probability drops:

    D[n, i, j] = p_c(x_n) - p_c(x_n with rows i*s .. i*s+patch-1, columns j*s .. j*s+patch-1 set to value)

for i < Ho = (H - patch) // stride + 1 (and j likewise).  A large drop marks a region the
prediction depends on.  The Ho*Wo occluded copies of every image are built with masks and
run through the model in batches of ``batch_size`` images; no Python loop over pixels.
"""
from __future__ import annotations

from typing import Any

from ..layers.base import Layer
from .._checks import pair, positive_int
from ._common import check_model_input, frozen, logits_of, one_hot, softmax, targets

__all__ = ["occlusion"]


def _patch_masks(xp: Any, device: Any, hw: tuple[int, int], patch: tuple[int, int],
                 stride: tuple[int, int]) -> Any:
    """(Ho*Wo, H, W) booleans, True inside the patch at each position (row-major)."""
    masks = []
    for size, p, s in zip(hw, patch, stride):
        out = (size - p) // s + 1
        pos = xp.expand_dims(xp.arange(size, dtype=xp.int64, device=device), axis=0)  # (1, size)
        first = xp.expand_dims(xp.arange(out, dtype=xp.int64, device=device) * s, axis=1)  # (out, 1)
        masks.append((pos >= first) & (pos < first + p))  # (out, size)
    rows, cols = masks
    m = xp.expand_dims(xp.expand_dims(rows, axis=1), axis=3) & xp.expand_dims(xp.expand_dims(cols, axis=0), axis=2)
    return xp.reshape(m, (rows.shape[0] * cols.shape[0], hw[0], hw[1]))  # (Ho, Wo, H, W) -> (Ho*Wo, H, W)


def occlusion(model: Layer, x: Any, target: Any, patch: Any = 4, stride: Any = 4, value: float = 0.0, *,
              batch_size: int = 256) -> Any:
    """Occlusion map ``p_target(x) - p_target(x occluded)``: (N, Ho, Wo), Ho = (H - patch) // stride + 1.

    Args:
        model: a classifier, (N, C, H, W) -> (N, num_classes) logits (probabilities by softmax).
        x: (N, C, H, W) input on the model's backend.
        target: an int class id or (N,) class ids (host or backend).
        patch, stride: int or (h, w) patch size and step.
        value: what the occluded pixels are set to (0: black for MNIST; the data mean is common too).
        batch_size: at most this many occluded images per forward pass (whole positions at a time).
    """
    b = check_model_input("occlusion", model, x)
    xp = b.xp
    n, c, h, w = x.shape
    patch, stride = pair(patch, "patch", "occlusion"), pair(stride, "stride", "occlusion")
    if patch[0] > h or patch[1] > w:
        raise ValueError(f"occlusion: `patch` {patch} is larger than the image {h}x{w}")
    positive_int(batch_size, "batch_size", "occlusion")
    ho, wo = (h - patch[0]) // stride[0] + 1, (w - patch[1]) // stride[1] + 1
    t = targets("occlusion", target, n, b)
    masks = _patch_masks(xp, b.device, (h, w), patch, stride)  # (P, H, W)
    fill = xp.full((1, 1, 1, 1, 1), value, dtype=x.dtype, device=b.device)
    per_pass = max(1, batch_size // max(n, 1))  # positions per forward pass
    with frozen(model):
        logits, _ = logits_of("occlusion", model, x)
        onehot = one_hot("occlusion", t, target, logits)  # (N, K)
        base = xp.sum(softmax(logits) * onehot, axis=1)  # (N,)
        drops = []
        for start in range(0, ho * wo, per_pass):
            m = masks[start:min(start + per_pass, ho * wo), ...]
            k = m.shape[0]
            m = xp.reshape(m, (k, 1, 1, h, w))
            occluded = xp.where(m, fill, xp.expand_dims(x, axis=0))  # (k, N, C, H, W)
            lk, _ = logits_of("occlusion", model, xp.reshape(occluded, (k * n, c, h, w)))
            p = xp.sum(xp.reshape(softmax(lk), (k, n, -1)) * xp.expand_dims(onehot, axis=0), axis=2)  # (k, N)
            drops.append(xp.expand_dims(base, axis=0) - p)
    d = xp.concat(drops, axis=0) if len(drops) > 1 else drops[0]  # (Ho*Wo, N)
    return xp.reshape(xp.permute_dims(d, (1, 0)), (n, ho, wo))
