"""The one tolerance table of anyxp_nn.testing: ``(rtol, atol)`` by comparison and dtype.

Every check reads it: :func:`~anyxp_nn.testing.assert_close` ("default"), the layer
table's checks (:func:`~anyxp_nn.testing.check_layer`, which users' ``LayerCase`` rows and
the library's own tests run through the pytest plugin), the layer pass of
:func:`~anyxp_nn.testing.compare_backends` ("layer") and its training comparison
("training").  A comparison passes elementwise when ``|a - ref| <= atol + rtol * |ref|``;
the layer pass and the training comparison apply it normwise
(``max|a - ref| <= atol + rtol * max|ref|``).
"""
from __future__ import annotations

from typing import Any

from .._checks import dtype_name

__all__ = ["TOLERANCES", "default_tolerance", "layer_tolerance", "tolerance", "training_tolerance"]

TOLERANCES: dict[str, dict[str, tuple[float, float]]] = {
    # assert_close's defaults: PyTorch's torch.testing.assert_close
    "default": {"float16": (1e-3, 1e-5), "float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)},
    # float64 central differences against the backward pass (gradcheck, LayerCase.gradcheck_tol)
    "gradcheck": {"float64": (1e-5, 1e-7)},
    # one layer in float64 against its PyTorch twin
    "torch": {"float64": (1e-7, 1e-9)},
    # one layer on two backends from the same seed: output and dX ...
    "layer": {"float16": (1e-2, 1e-3), "float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12)},
    # ... and its parameter gradients, sums over the batch (elementwise: a larger atol near zero)
    "layer_grad": {"float16": (1e-2, 1e-3), "float32": (1e-4, 1e-4), "float64": (1e-10, 1e-12)},
    # one layer on one backend, a strided or transposed view against a contiguous copy
    "view": {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)},
    "view_grad": {"float32": (1e-5, 1e-5), "float64": (1e-12, 1e-12)},
    # parameters after a few training steps on two backends (20 SGD steps of a small CNN or
    # MLP differ by ~5e-7 relative between numpy and torch in float32; a bug is far larger)
    "training": {"float16": (1e-2, 1e-3), "float32": (1e-4, 1e-6), "float64": (1e-10, 1e-13)},
}


def tolerance(kind: str, dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` of comparison ``kind`` (a key of :data:`TOLERANCES`) for ``dtype``.

    A dtype a row does not list gets the row's float32 entry ("default": exact, (0, 0)).
    """
    if kind not in TOLERANCES:
        raise ValueError(f"tolerance: unknown comparison {kind!r}; known: {sorted(TOLERANCES)}")
    row = TOLERANCES[kind]
    fallback = (0.0, 0.0) if kind == "default" else row.get("float32", next(iter(row.values())))
    return row.get(dtype_name(dtype), fallback)


def default_tolerance(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)`` per dtype, PyTorch's ``assert_close`` defaults."""
    return tolerance("default", dtype)


def layer_tolerance(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)``, normwise, for one layer's output/dX/grads across backends."""
    return tolerance("layer", dtype)


def training_tolerance(dtype: Any) -> tuple[float, float]:
    """``(rtol, atol)``, normwise, for parameters after a few training steps."""
    return tolerance("training", dtype)
