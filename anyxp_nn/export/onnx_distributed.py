"""ONNX converters for :mod:`anyxp_nn.distributed`: an exported model runs on one process.

| layer | ONNX |
|---|---|
| SyncBatchNorm | BatchNormalization with the running statistics, as BatchNorm (no communication in evaluation) |
| DataParallel | the wrapped model (named as its state_dict names them: without a "module." prefix) |
"""
from __future__ import annotations

from ..distributed import DataParallel, SyncBatchNorm
from .onnx_graph import OnnxGraph, register_onnx_converter
from .onnx_layers import _batchnorm

__all__: list[str] = []  # converters register themselves; nothing to import from here

register_onnx_converter(SyncBatchNorm, _batchnorm)


@register_onnx_converter(DataParallel)
def _data_parallel(layer: DataParallel, g: OnnxGraph, x: str) -> str:
    return g.convert(layer.module, x)
