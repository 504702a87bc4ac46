"""ONNX converters for the CNN layers (opset 17, NCHW as the library).

| layer | ONNX |
|---|---|
| Conv2D | Conv, pads (ph, pw, ph + eh, pw + ew): "same" with an even kernel pads one more at the end |
| ConvTranspose2D | ConvTranspose, the same attributes and output_padding; weight (C_in, C_out/g, kh, kw) |
| MaxPool2D | MaxPool (the padding never wins, as the library's -inf padding) |
| AvgPool2D | AveragePool with count_include_pad=1 (zero padding counts, as the library) |
| GlobalAvgPool2D, GlobalMaxPool2D | GlobalAveragePool / GlobalMaxPool, then Flatten to (N, C) |
| Flatten | Flatten(axis=1) |
| Upsample2D | Resize, nearest, asymmetric coordinates, floor: y[p, q] = x[p // sh, q // sw] |
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..layers import (AvgPool2D, Conv2D, ConvTranspose2D, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D,
                      Upsample2D)
from .onnx_graph import OnnxGraph, register_onnx_converter

__all__: list[str] = []  # converters register themselves; nothing to import from here


def _pads(padding: Any) -> list[int]:
    """ONNX pads (top, left, bottom, right) from the layer's symmetric (ph, pw)."""
    ph, pw = padding
    return [ph, pw, ph, pw]


@register_onnx_converter(Conv2D)
def _conv2d(layer: Conv2D, g: OnnxGraph, x: str) -> str:
    (ph, pw), (eh, ew) = layer.padding, layer.geometry.pad_end
    inputs = [x, g.param(layer.weight.data, "weight")]
    if layer.bias is not None:
        inputs.append(g.param(layer.bias.data, "bias"))
    return g.node("Conv", inputs, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=[ph, pw, ph + eh, pw + ew], dilations=list(layer.dilation), group=layer.groups)


@register_onnx_converter(ConvTranspose2D)
def _conv_transpose2d(layer: ConvTranspose2D, g: OnnxGraph, x: str) -> str:
    """``output_padding`` rows (bottom/right) are first the rows ``padding`` would crop, then zeros
    (+ bias) beyond the full output.  ONNX Runtime takes output_padding < stride only, while PyTorch
    also allows output_padding < dilation: then the zero rows come from a Pad and the bias after it."""
    (ph, pw), (oh, ow) = layer.padding, layer.output_padding
    extra = [max(oh - ph, 0), max(ow - pw, 0)]  # rows/columns beyond the full output
    attrs = dict(kernel_shape=list(layer.kernel_size), strides=list(layer.stride), dilations=list(layer.dilation),
                 group=layer.groups, pads=[ph, pw, max(ph - oh, 0), max(pw - ow, 0)])
    inputs = [x, g.param(layer.weight.data, "weight")]
    bias = g.param(layer.bias.data, "bias") if layer.bias is not None else None
    if all(e < s for e, s in zip(extra, layer.stride)):
        return g.node("ConvTranspose", inputs + ([bias] if bias else []), output_padding=extra, **attrs)
    y = g.node("ConvTranspose", inputs, **attrs)
    y = g.node("Pad", [y, g.constant([0, 0, 0, 0, 0, 0, *extra], dtype=np.int64)])  # zeros at the bottom/right
    if bias is not None:
        y = g.node("Add", [y, g.node("Unsqueeze", [bias, g.constant([1, 2], dtype=np.int64)])])  # (C, 1, 1)
    return y


@register_onnx_converter(MaxPool2D)
def _maxpool(layer: MaxPool2D, g: OnnxGraph, x: str) -> str:
    return g.node("MaxPool", [x], kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=_pads(layer.padding))


@register_onnx_converter(AvgPool2D)
def _avgpool(layer: AvgPool2D, g: OnnxGraph, x: str) -> str:
    return g.node("AveragePool", [x], kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=_pads(layer.padding), count_include_pad=1)


register_onnx_converter(GlobalAvgPool2D,
                        lambda layer, g, x: g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1))
register_onnx_converter(GlobalMaxPool2D,
                        lambda layer, g, x: g.node("Flatten", [g.node("GlobalMaxPool", [x])], axis=1))
register_onnx_converter(Flatten, lambda layer, g, x: g.node("Flatten", [x], axis=1))


@register_onnx_converter(Upsample2D)
def _upsample(layer: Upsample2D, g: OnnxGraph, x: str) -> str:
    sh, sw = layer.scale_factor
    scales = g.constant([1.0, 1.0, float(sh), float(sw)], dtype=np.float32)  # Resize wants float32 scales
    return g.node("Resize", [x, "", scales], mode="nearest", coordinate_transformation_mode="asymmetric",
                  nearest_mode="floor")
