"""The ONNX graph under construction, as plain data, and the converter registry.

A converter turns one layer into ONNX nodes::

    def convert(layer, graph: OnnxGraph, x: str) -> str     # x: name of the input value

It adds nodes with :meth:`OnnxGraph.node`, the layer's weights with :meth:`OnnxGraph.param`
(named by their ``state_dict`` key, so the ONNX initialisers carry PyTorch's names), other
constants with :meth:`OnnxGraph.constant`, and converts children with :meth:`OnnxGraph.convert`.
It returns the name of the output value.  No ``onnx`` import here: :func:`~anyxp_nn.export.to_onnx`
turns this plain data into protobuf with ``onnx.helper``, so converters never touch protobuf.

Which converter a layer gets, in this order:

1. the layer's own ``onnx_nodes(graph, x) -> str`` method, written in the layer's file (duck-typed:
   the layer does not import this package), unless a subclass overrides ``forward`` below the
   class that defines the method (it inherits the nodes, not the maths: rule 3);
2. the converter registered for its class with :func:`register_onnx_converter`, or for a base
   class, as long as the layer's class does not override ``forward`` (a subclass that only
   changes ``__init__`` exports as its base; one with its own ``forward`` needs a hook);
3. otherwise :class:`OnnxExportError` names the layer, its path in the model and the fixes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..backend import to_numpy

__all__ = ["OnnxGraph", "OnnxExportError", "register_onnx_converter", "find_converter"]

Converter = Callable[[Any, "OnnxGraph", str], str]
_CONVERTERS: dict[type, Converter] = {}


class OnnxExportError(TypeError):
    """A layer that cannot be exported to ONNX (no hook, no registered converter)."""


def register_onnx_converter(layer_type: type, fn: "Converter | None" = None) -> Any:
    """Register ``fn(layer, graph, x) -> output name`` for ``layer_type``; usable as a decorator."""
    if not isinstance(layer_type, type):
        raise TypeError(f"register_onnx_converter: `layer_type` must be a class, got {layer_type!r}")

    def register(f: Converter) -> Converter:
        if not callable(f):
            raise TypeError(f"register_onnx_converter: the converter for {layer_type.__name__} must be "
                            f"callable, got {type(f).__name__}")
        _CONVERTERS[layer_type] = f
        return f

    return register if fn is None else register(fn)


def find_converter(layer: Any) -> "Converter | None":
    """The converter for ``layer`` (see the module docstring for the order), or None."""
    cls = type(layer)
    hook = getattr(layer, "onnx_nodes", None)
    if callable(hook):
        # the class that wrote the method must also be the one whose forward runs: a subclass
        # with its own forward inherits the method but not its maths
        owner = next((base for base in cls.__mro__ if "onnx_nodes" in vars(base)), None)
        if owner is None or getattr(cls, "forward", None) is getattr(owner, "forward", None):
            return lambda _layer, graph, x: hook(graph, x)
        return None
    for base in cls.__mro__:
        fn = _CONVERTERS.get(base)
        if fn is not None:
            same_math = getattr(cls, "forward", None) is getattr(base, "forward", None)
            return fn if same_math else None
    return None


@dataclass
class _Node:
    op_type: str
    inputs: list[str]
    outputs: list[str]
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


class OnnxGraph:
    """Nodes and initialisers of the graph being exported.

    Attributes:
        dtype: the NumPy dtype of the exported values (the model's, e.g. float32).
        opset: the ONNX opset of the default domain the graph targets.
        nodes: the :class:`_Node` records in execution order.
        initializers: ``{name: numpy.ndarray}``.
    """

    def __init__(self, dtype: Any, opset: int):
        self.dtype = np.dtype(dtype)
        self.opset = int(opset)
        self.nodes: list[_Node] = []
        self.initializers: dict[str, np.ndarray] = {}
        self._scope: list[str] = []
        self._count = 0

    # -- building blocks ---------------------------------------------------------------
    @property
    def scope(self) -> str:
        """The dotted path of the layer being converted ("" for the model itself)."""
        return ".".join(self._scope)

    def node(self, op_type: str, inputs: "list[str]", outputs: int = 1, **attrs: Any) -> Any:
        """Add one node; returns its output name (a list of names when ``outputs > 1``).

        Attribute values are Python ints, floats, strings or lists of them (``onnx.helper``
        infers their types).  An input name ``""`` is an omitted optional input.
        """
        name = self._unique(op_type)
        outs = [f"{name}:{i}" for i in range(outputs)]
        self.nodes.append(_Node(op_type, list(inputs), outs, name, attrs))
        return outs[0] if outputs == 1 else outs

    def param(self, array: Any, key: str) -> str:
        """A weight of the layer being converted, named by its ``state_dict`` key (``"0.weight"``)."""
        name = f"{self.scope}.{key}" if self._scope else key
        host = np.asarray(to_numpy(array))
        self.initializers[name] = host.astype(self.dtype) if host.dtype.kind == "f" else host
        return name

    def constant(self, value: Any, dtype: Any = None) -> str:
        """A constant (scalar or array) in ``dtype`` (default: the graph's float dtype)."""
        name = self._unique("const")
        self.initializers[name] = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        return name

    def _unique(self, what: str) -> str:
        """A fresh name under the current scope, as PyTorch's exporter names nodes: "/3/block/0/Conv_7"."""
        self._count += 1
        return "/".join(["", *self._scope, f"{what}_{self._count}"])

    def convert(self, layer: Any, x: str, name: str = "") -> str:
        """Convert ``layer`` (the child called ``name`` of the current layer) applied to ``x``."""
        if name:
            self._scope.append(name)
        try:
            fn = find_converter(layer)
            if fn is None:
                raise OnnxExportError(_cannot_export(layer, self.scope))
            out = fn(layer, self, x)
            if not isinstance(out, str):
                raise OnnxExportError(f"to_onnx: the converter of {type(layer).__name__} at "
                                      f"{self.scope or '<model>'!r} returned {type(out).__name__}, expected the "
                                      "name (str) of its output value")
            return out
        finally:
            if name:
                self._scope.pop()


def _cannot_export(layer: Any, path: str) -> str:
    cls = type(layer).__name__
    where = f"layer {path!r}" if path else "the model itself"
    overridden = any(base in _CONVERTERS or "onnx_nodes" in vars(base) for base in type(layer).__mro__[1:])
    why = (f"it overrides forward() of an exportable base class" if overridden
           else "no ONNX converter is registered for it")
    return (f"to_onnx: cannot export {where} of type {cls} ({why}); give {cls} a method "
            f"`onnx_nodes(self, graph, x) -> str` that adds its nodes, or register one with "
            f"anyxp_nn.export.register_onnx_converter({cls}, fn) (see docs/deploy.md)")
