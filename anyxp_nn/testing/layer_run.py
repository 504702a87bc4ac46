"""The one way the testing tools run a layer: forward, backward, and what to check of it.

Both the layer table (:func:`~anyxp_nn.testing.check_layer`) and the layer pass of
:func:`~anyxp_nn.testing.compare_backends` call :func:`run_layer` and judge the result
with :func:`dtype_device_problems`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backend import Backend
from ..random import manual_seed
from .assert_close import _label
from .dtype_audit import Float64Event, float64_audit

__all__ = ["LayerRun", "dtype_device_problems", "run_layer"]


@dataclass
class LayerRun:
    """One forward/backward of a layer: device arrays, and the float64 calls the audit saw."""
    y: Any
    dx: Any
    grads: dict[str, Any]                 # parameter name -> its gradient (None when it got none)
    float64_events: list[Float64Event] = field(default_factory=list)

    def host(self, b: Backend) -> tuple[np.ndarray, "np.ndarray | None", dict[str, "np.ndarray | None"]]:
        """``(y, dx, grads)`` copied to the host."""
        return (b.to_numpy(self.y), None if self.dx is None else b.to_numpy(self.dx),
                {n: None if g is None else b.to_numpy(g) for n, g in self.grads.items()})


def run_layer(layer: Any, b: Backend, x: Any, dY: Any = None, *, dy_host: Any = None, train: bool = True,
              seed: int = 1234, audit: bool = False, where: str = "") -> LayerRun:
    """Forward ``x`` through ``layer`` (default generator seeded with ``seed`` first, so dropout
    draws agree between runs), then backward from zeroed gradients.

    Args:
        b: the backend the layer and ``x`` live on.
        dY: the output gradient as an array on ``b`` (used as given, views included) ...
        dy_host: ... or as a host array, or a callable ``shape -> host array``, cast to the
            output's dtype on ``b``; neither: ones.
        audit: record every array-namespace call that touches float64 (forward and backward
            only) in ``float64_events``; ``where`` (when given) names the layer in them.
    """
    events: list[Float64Event] = []
    manual_seed(seed)
    with _audit(b, audit, where) as ev:
        y, backprop = layer.forward(x, train=train)
    events += ev
    if dY is None:
        shape = tuple(y.shape)
        host = np.ones(shape) if dy_host is None else dy_host(shape) if callable(dy_host) else dy_host
        dY = b.asarray(host, dtype=y.dtype)
    layer.zero_grad()
    with _audit(b, audit, where) as ev:
        dx = backprop(dY)
    events += ev
    return LayerRun(y, dx, {n: p.grad for n, p in layer.named_parameters()}, events)


def _audit(b: Backend, on: bool, where: str) -> Any:
    return float64_audit(b, context=lambda: where) if on else contextlib.nullcontext([])


def dtype_device_problems(run: LayerRun, b: Backend, layer: Any) -> list[tuple[str, str]]:
    """``(kind, detail)`` for each way ``run`` breaks the rules, kind one of "device", "dtype", "float64".

    The output and dX must be on ``b`` with the layer's dtype; every trainable parameter gets a
    gradient of its own dtype on ``b``; no namespace call touched float64 (when audited).
    """
    problems: list[tuple[str, str]] = []
    for what, a in (("output", run.y), ("dX", run.dx)):
        if a is None:
            continue
        if not b.owns(a):
            problems.append(("device", f"{what} is not on {b.label!r} (device {getattr(a, 'device', '?')})"))
        elif a.dtype != layer.dtype:
            problems.append(("dtype", f"{what} has dtype {a.dtype}, expected {layer.dtype}"))
    for n, p in layer.named_parameters():
        g = run.grads.get(n)
        if g is None:
            if p.requires_grad:
                problems.append(("dtype", f"parameter {n!r} got no gradient"))
        elif not b.owns(g) or g.dtype != p.data.dtype:
            problems.append(("dtype", f"gradient of {n!r} is {g.dtype} on {_label(g)!r}, "
                                      f"expected {p.data.dtype} on {b.label!r}"))
    if run.float64_events:
        seen = list(dict.fromkeys(str(e) for e in run.float64_events))
        problems.append(("float64", "float64 temporaries in float32 code: " + "; ".join(seen[:3])
                         + (f" (+{len(seen) - 3} more)" if len(seen) > 3 else "")))
    return problems
