"""``to_onnx``: a model as an ONNX file that ONNX Runtime (or any ONNX consumer) runs without anyxp_nn.

The graph is built by the converters (:mod:`.onnx_layers`, :mod:`.onnx_cnn`, or a layer's own
``onnx_nodes`` hook) as plain data, then turned into protobuf with ``onnx.helper.make_node`` /
``make_graph`` / ``make_model_gen_version`` and ``onnx.numpy_helper.from_array``, and checked
with ``onnx.checker.check_model(full_check=True)`` before anything is written.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._version import __version__
from ..backend import to_numpy
from . import onnx_cnn, onnx_distributed, onnx_layers  # noqa: F401  (register the library's converters)
from ._files import write_atomic
from ._optional import require
from .onnx_graph import OnnxGraph

__all__ = ["to_onnx", "MIN_OPSET"]

MIN_OPSET = 17  # LayerNormalization
INPUT, OUTPUT, BATCH = "input", "output", "batch"
_PROTOBUF_LIMIT = 2**31 - 1


def to_onnx(model: Any, path: "str | os.PathLike", input_shape: Sequence[int], opset: int = 17) -> Path:
    """Export ``model`` (inference: Dropout is the identity, BatchNorm uses its running statistics).

    Args:
        model: any Layer whose layers all have a converter.  ONNX support is per layer: a layer's
            own ``onnx_nodes(graph, x)`` method (in its file), or a converter registered here;
            the library's layers have one, and exporting a model that holds a layer without one
            raises OnnxExportError naming that layer and its path.
        path: the ``.onnx`` file to write (atomically: a failed export leaves no file behind).
        input_shape: the input's shape with a batch size, e.g. ``(1, 1, 28, 28)``, as
            ``torch.onnx.export``'s example input.  Axis 0 is exported as the dynamic axis
            ``"batch"``: the file runs with any batch size.
        opset: the ONNX opset, at least 17.

    The graph has one input ``"input"`` and one output ``"output"`` in the model's dtype; the
    weights are initialisers named by their ``state_dict`` keys (``"0.weight"``).

    Raises:
        OnnxExportError (a TypeError) naming any layer without a converter; ValueError for a
        bad ``input_shape`` or ``opset``; ImportError when ``onnx`` is not installed.
    """
    onnx = require("onnx", "anyxp_nn.export.to_onnx")
    shape = _check_shape(input_shape)
    highest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= highest:
        raise ValueError(f"to_onnx: `opset` must be an int from {MIN_OPSET} (LayerNormalization) to {highest} "
                         f"(this onnx package's newest), got {opset!r}")
    example = model.backend.asarray(np.zeros(shape), dtype=model.dtype)
    out_shape = tuple(to_numpy(model(example)).shape)  # checks input_shape against the model's layers
    graph = OnnxGraph(to_numpy(example).dtype, opset)
    out = graph.convert(model, INPUT)
    proto = _to_proto(onnx, graph, out, shape, out_shape)
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    if len(data) > _PROTOBUF_LIMIT:
        raise ValueError(f"to_onnx: the model is {len(data) / 2**30:.1f} GiB, above protobuf's 2 GiB limit "
                         "for one ONNX file")
    return write_atomic(Path(path), data)


def _check_shape(input_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if (not shape or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1 for s in shape)):
        raise ValueError(f"to_onnx: `input_shape` must be a non-empty tuple of positive ints with the batch "
                         f"size first, e.g. (1, 1, 28, 28), got {input_shape!r}")
    return tuple(int(s) for s in shape)


def _to_proto(onnx: Any, graph: OnnxGraph, out: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Any:
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes = graph.nodes
    if out == INPUT or out in graph.initializers:  # nothing computed the output: name it with an Identity
        out = graph.node("Identity", [out])
    for node in nodes:  # the final value is called "output"
        node.outputs = [OUTPUT if o == out else o for o in node.outputs]
        node.inputs = [OUTPUT if i == out else i for i in node.inputs]
    elem = helper.np_dtype_to_tensor_dtype(graph.dtype)
    batch = in_shape[0]
    inp = helper.make_tensor_value_info(INPUT, elem, [BATCH, *in_shape[1:]])
    out_dims = [BATCH if i == 0 and d == batch else d for i, d in enumerate(out_shape)]
    outp = helper.make_tensor_value_info(OUTPUT, elem, out_dims)
    protos = [helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name, **n.attrs) for n in nodes]
    inits = [numpy_helper.from_array(np.ascontiguousarray(a) if a.ndim else a, name)
             for name, a in graph.initializers.items()]
    g = helper.make_graph(protos, "anyxp_nn", [inp], [outp], inits)
    model = helper.make_model_gen_version(g, opset_imports=[helper.make_opsetid("", graph.opset)],
                                          producer_name="anyxp_nn", producer_version=__version__)
    return model
