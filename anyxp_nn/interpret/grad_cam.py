"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks", 2017).

For a layer with output activations ``A`` (N, K, h, w) and the class score ``S_c``:

    alpha_k = 1/(h w) sum_{i,j} dS_c / dA^k_{ij}         (N, K)   global-average-pooled gradients
    L       = ReLU(sum_k alpha_k A^k)                    (N, h, w) at the layer's resolution

How the activation and its gradient are reached without modifying any layer: the layer
protocol already hands both over.  ``forward`` returns the layer's output ``y`` and a
``backprop`` closure that receives ``dY``.  So we wrap the chosen layer in a *probe*, a Layer
whose forward calls the real layer's forward, keeps ``y``, and returns a backprop that keeps
``dY`` before calling the real backprop.  The probe is put into a *shallow copy* of each
container on the path from the model to the layer (each copy with its own children dict);
the copies share every parameter and child with the model, which itself is never changed.
One forward (``train=False``) and one backward of the copied model then give ``A`` and
``dS_c/dA``.  This works for every container that calls its children through the attributes
and children dict that ``Layer`` registers (Sequential, Residual, Concatenate, ...).
"""
from __future__ import annotations

import copy
from typing import Any

from ..layers.base import Backprop, Layer
from ._common import check_model_input, frozen, logits_of, one_hot, targets

__all__ = ["grad_cam", "probe_layer"]


class _Probe(Layer):
    """Runs ``inner`` unchanged and records its output and the gradient arriving at it."""

    def __init__(self, inner: Layer, record: dict):
        super().__init__(backend=inner.backend, dtype=inner.dtype)
        self.inner = inner
        object.__setattr__(self, "record", record)

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        y, back = self.inner.forward(x, train)
        self.record["calls"] = self.record.get("calls", 0) + 1
        self.record["activation"] = y

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            self.record["gradient"] = dY
            return back(dY, need_dx=need_dx)

        return y, backprop


def _names(model: Layer) -> list[str]:
    return [name.rstrip(".") for name, _ in model.named_layers()]


def probe_layer(model: Layer, layer: str, record: dict) -> Layer:
    """A copy of ``model`` whose sublayer named ``layer`` (from ``named_layers()``) records into
    ``record`` its output (``"activation"``) and the gradient arriving at it (``"gradient"``).

    Only the containers on the path to the layer are copied (shallowly); ``model`` is unchanged.
    """
    if not isinstance(layer, str) or layer.rstrip(".") not in _names(model):
        names = [n for n in _names(model) if n]
        raise ValueError(f"grad_cam: `layer` {layer!r} is not a layer of the model; expected one of the "
                         f"named_layers() names {names}")

    def rebuild(node: Layer, path: list[str]) -> Layer:
        if not path:
            return _Probe(node, record)
        head, rest = path[0], path[1:]
        twin = copy.copy(node)
        object.__setattr__(twin, "_children", dict(node._children))
        setattr(twin, head, rebuild(node._children[head], rest))  # registers the child in twin only
        return twin

    name = layer.rstrip(".")
    return rebuild(model, name.split(".") if name else [])


def grad_cam(model: Layer, x: Any, target: Any, layer: str) -> Any:
    """Grad-CAM map of ``target`` at the output of ``layer``: (N, h, w), x's backend and dtype.

    Args:
        model: a classifier, (N, C, H, W) -> (N, num_classes) logits.
        x: (N, C, H, W) input on the model's backend.
        target: an int class id or (N,) class ids (host or backend).
        layer: a name from ``model.named_layers()`` whose output is 4-D (N, K, h, w), usually the
            last convolutional block ("4", the second conv's ReLU, in ``models.mnist_cnn``).

    Upsample the map to (H, W) to overlay it on the input (the demo uses nearest neighbours).
    """
    b = check_model_input("grad_cam", model, x)
    t = targets("grad_cam", target, x.shape[0], b)
    record: dict = {}
    probed = probe_layer(model, layer, record)
    with frozen(model):
        logits, backprop = logits_of("grad_cam", probed, x)
        # need_dx=True: the model is frozen, and Sequential's backprop without dx stops at the lowest
        # trainable layer (none here), so it would never reach the probed layer
        backprop(one_hot("grad_cam", t, target, logits), need_dx=True)
    if record.get("calls", 0) != 1 or "gradient" not in record:
        raise ValueError(f"grad_cam: layer {layer!r} ran {record.get('calls', 0)} times in the forward pass, "
                         "expected once")
    A, dA = record["activation"], record["gradient"]
    if A.ndim != 4:
        raise ValueError(f"grad_cam: layer {layer!r} outputs shape {tuple(A.shape)}; Grad-CAM needs a "
                         "4-D (N, K, h, w) feature map: pick a convolutional layer")
    xp = b.xp
    alpha = xp.mean(dA, axis=(2, 3), keepdims=True)  # (N, K, 1, 1)
    return xp.maximum(xp.sum(alpha * A, axis=1), 0.0)  # (N, h, w)
