"""ONNX converters for the dense, normalisation, activation and container layers (opset 17).

| layer | ONNX |
|---|---|
| Linear | MatMul(x, Transpose(W)) + b (any rank, like the layer) |
| BatchNorm1D/2D | BatchNormalization with the running statistics (evaluation mode) |
| LayerNorm | LayerNormalization(axis = -len(normalized_shape)) |
| Dropout, Identity | nothing: the input passes through |
| ReLU, LeakyReLU, Sigmoid, Tanh, Softmax | Relu, LeakyRelu, Sigmoid, Tanh, Softmax(axis) |
| GELU("none") | x * 0.5 * (1 + Erf(x / sqrt 2)), the exact form |
| GELU("tanh") | 0.5 x (1 + Tanh(sqrt(2/pi) (x + 0.044715 x^3))) |
| Sequential | its children in order |
| LayerList | its entries in order, as a Sequential (the way a model that loops over it calls them) |
| Residual | Add(block(x), shortcut(x) or x) |
| Concatenate | Concat(branch_0(x), branch_1(x), ..., axis) |
"""
from __future__ import annotations

import math
from typing import Any

from ..layers import (GELU, BatchNorm1D, BatchNorm2D, Concatenate, Dropout, Identity, LayerList, LayerNorm, LeakyReLU,
                      Linear, ReLU, Residual, Sequential, Sigmoid, Softmax, Tanh)
from .onnx_graph import OnnxGraph, register_onnx_converter

__all__: list[str] = []  # converters register themselves; nothing to import from here


@register_onnx_converter(Linear)
def _linear(layer: Linear, g: OnnxGraph, x: str) -> str:
    wt = g.node("Transpose", [g.param(layer.weight.data, "weight")], perm=[1, 0])  # (in, out)
    y = g.node("MatMul", [x, wt])  # (..., out)
    if layer.bias is not None:
        y = g.node("Add", [y, g.param(layer.bias.data, "bias")])
    return y


def _batchnorm(layer: Any, g: OnnxGraph, x: str) -> str:
    inputs = [g.param(layer.weight.data, "weight"), g.param(layer.bias.data, "bias"),
              g.param(layer.running_mean, "running_mean"), g.param(layer.running_var, "running_var")]
    return g.node("BatchNormalization", [x, *inputs], epsilon=layer.eps)


register_onnx_converter(BatchNorm1D, _batchnorm)
register_onnx_converter(BatchNorm2D, _batchnorm)


@register_onnx_converter(LayerNorm)
def _layernorm(layer: LayerNorm, g: OnnxGraph, x: str) -> str:
    return g.node("LayerNormalization", [x, g.param(layer.weight.data, "weight"), g.param(layer.bias.data, "bias")],
                  axis=-len(layer.normalized_shape), epsilon=layer.eps)


def _passthrough(layer: Any, g: OnnxGraph, x: str) -> str:
    return x


register_onnx_converter(Dropout, _passthrough)  # an exported model runs inference only
register_onnx_converter(Identity, _passthrough)
register_onnx_converter(ReLU, lambda layer, g, x: g.node("Relu", [x]))
register_onnx_converter(Sigmoid, lambda layer, g, x: g.node("Sigmoid", [x]))
register_onnx_converter(Tanh, lambda layer, g, x: g.node("Tanh", [x]))
register_onnx_converter(LeakyReLU, lambda layer, g, x: g.node("LeakyRelu", [x], alpha=layer.negative_slope))
register_onnx_converter(Softmax, lambda layer, g, x: g.node("Softmax", [x], axis=layer.axis))


@register_onnx_converter(GELU)
def _gelu(layer: GELU, g: OnnxGraph, x: str) -> str:
    if layer.approximate == "none":  # x Phi(x) = x * 0.5 * (1 + erf(x / sqrt 2))
        erf = g.node("Erf", [g.node("Mul", [x, g.constant(1.0 / math.sqrt(2.0))])])
    else:  # x * 0.5 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [g.node("Mul", [x, x]), x])
        inner = g.node("Add", [x, g.node("Mul", [cube, g.constant(0.044715)])])
        erf = g.node("Tanh", [g.node("Mul", [inner, g.constant(math.sqrt(2.0 / math.pi))])])
    half = g.node("Mul", [g.node("Add", [erf, g.constant(1.0)]), g.constant(0.5)])
    return g.node("Mul", [x, half])


def _in_order(layer: Any, g: OnnxGraph, x: str) -> str:
    for name, child in layer.named_children():
        x = g.convert(child, x, name)
    return x


register_onnx_converter(Sequential, _in_order)
register_onnx_converter(LayerList, _in_order)  # LayerList has no forward: this is the Sequential reading


@register_onnx_converter(Concatenate)
def _concatenate(layer: Concatenate, g: OnnxGraph, x: str) -> str:
    return g.node("Concat", [g.convert(branch, x, name) for name, branch in layer.named_children()], axis=layer.axis)


@register_onnx_converter(Residual)
def _residual(layer: Residual, g: OnnxGraph, x: str) -> str:
    yb = g.convert(layer.block, x, "block")
    ys = x if layer.shortcut is None else g.convert(layer.shortcut, x, "shortcut")
    return g.node("Add", [yb, ys])
