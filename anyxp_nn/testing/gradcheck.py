"""Numerical gradient check: float64 central differences over inputs and parameters.

For a layer, the scalar probed is ``L = sum(y * dY)`` with a fixed random ``dY``,
so ``backprop(dY)`` must equal the numerical dL/dx and every ``Parameter.grad``
must equal dL/dp.  Random layers (dropout, augmentation) replay the same draws:
every :class:`~anyxp_nn.random.Generator` reachable from the layer, and the
default one, is rewound before each evaluation.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..backend import Backend, backend_of
from ..layers.base import Layer
from ..random import Generator, default_generator

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    pass


def _generators(layer: Any) -> list[Generator]:
    gens = [default_generator]
    if isinstance(layer, Layer):
        for _, sub in layer.named_layers():
            for v in vars(sub).values():
                if isinstance(v, Generator) and all(v is not g for g in gens):
                    gens.append(v)
    return gens


def gradcheck(layer_or_fn: "Layer | Callable[..., Any]", *inputs: Any, eps: float = 1e-6,
              rtol: float = 1e-5, atol: float = 1e-7, train: bool = True, seed: int = 0,
              check_params: bool = True) -> bool:
    """Compare analytic and central-difference gradients; raise :class:`GradcheckError` on mismatch.

    Args:
        layer_or_fn: a float64 :class:`Layer`, or a function ``f(*inputs) -> (y, backprop)``
            (``backprop(dY)`` returns one dX or a tuple, one per input), or a loss
            ``f(*inputs) -> (loss, dInput0)`` (only input 0 is checked; targets stay fixed).
        inputs: float64 arrays on the layer's backend (non-floating inputs, e.g. labels, are held fixed).
        eps, rtol, atol: step and tolerances: |analytic - numeric| <= atol + rtol * |numeric|.

    Returns True when every gradient matches.
    """
    if not inputs:
        raise ValueError("gradcheck: needs at least one input")
    b: Backend = layer_or_fn.backend if isinstance(layer_or_fn, Layer) else backend_of(inputs[0])
    xp = b.xp
    for i, x in enumerate(inputs):
        if xp.isdtype(x.dtype, "real floating") and x.dtype != xp.float64:
            raise TypeError(f"gradcheck: input {i} is {x.dtype}; gradcheck needs float64 (use .to(dtype='float64'))")
    gens = _generators(layer_or_fn)
    states = [g.get_state() for g in gens]

    def rewind() -> None:
        for g, s in zip(gens, states):
            g.set_state(s)

    is_layer = isinstance(layer_or_fn, Layer)
    params = [(n, p) for n, p in layer_or_fn.named_parameters() if p.requires_grad] if is_layer and check_params else []

    def run(*xs: Any) -> tuple[Any, Any]:
        rewind()
        if is_layer:
            return layer_or_fn.forward(xs[0], train=train)
        return layer_or_fn(*xs)

    y, second = run(*inputs)
    loss_mode = not callable(second)
    rng = np.random.default_rng(seed)
    dY = None if loss_mode else b.asarray(rng.standard_normal(tuple(y.shape)), dtype=y.dtype)
    if is_layer:
        layer_or_fn.zero_grad()
    if loss_mode:
        analytic_inputs = [second] + [None] * (len(inputs) - 1)
    else:
        dx = second(dY)
        analytic_inputs = list(dx) if isinstance(dx, (tuple, list)) else [dx] + [None] * (len(inputs) - 1)
    analytic_params = {n: (b.to_numpy(p.grad) if p.grad is not None else None) for n, p in params}
    dY_host = None if loss_mode else b.to_numpy(dY)

    def scalar(*xs: Any) -> float:
        out = run(*xs)[0]
        if loss_mode:
            return float(b.to_numpy(out))
        return float(np.sum(b.to_numpy(out) * dY_host))

    failures: list[str] = []

    def compare(label: str, analytic: Any, numeric: np.ndarray) -> None:
        if analytic is None:
            if np.any(numeric != 0):
                failures.append(f"{label}: no analytic gradient but numeric max |g| = {np.abs(numeric).max():.3g}")
            return
        a = b.to_numpy(analytic) if not isinstance(analytic, np.ndarray) else analytic
        if a.shape != numeric.shape:
            failures.append(f"{label}: analytic gradient shape {a.shape} != input shape {numeric.shape}")
            return
        bad = np.abs(a - numeric) > atol + rtol * np.abs(numeric)
        if np.any(bad):
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            failures.append(f"{label}[{idx}]: analytic {a[idx]:.10g} vs numeric {numeric[idx]:.10g} "
                            f"({int(bad.sum())} of {bad.size} elements differ)")

    for i, x in enumerate(inputs):
        if not xp.isdtype(x.dtype, "real floating") or (loss_mode and i > 0):
            continue  # labels / targets of a loss are held fixed
        host = b.to_numpy(x)
        num = np.zeros(host.shape)
        flat, nflat = host.reshape(-1), num.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            args = list(inputs)
            flat[j] = old + eps
            args[i] = b.asarray(host.copy())
            fp = scalar(*args)
            flat[j] = old - eps
            args[i] = b.asarray(host.copy())
            fm = scalar(*args)
            flat[j] = old
            nflat[j] = (fp - fm) / (2 * eps)
        compare(f"input {i}", analytic_inputs[i] if i < len(analytic_inputs) else None, num)

    for name, p in params:
        original = p.data
        host = b.to_numpy(original)
        num = np.zeros(host.shape)
        flat, nflat = host.reshape(-1), num.reshape(-1)
        try:
            for j in range(flat.size):
                old = flat[j]
                flat[j] = old + eps
                p.data = b.asarray(host.copy())
                fp = scalar(*inputs)
                flat[j] = old - eps
                p.data = b.asarray(host.copy())
                fm = scalar(*inputs)
                flat[j] = old
                nflat[j] = (fp - fm) / (2 * eps)
        finally:
            p.data = original
        compare(f"parameter {name!r}", analytic_params[name], num)
    rewind()
    if failures:
        what = type(layer_or_fn).__name__ if is_layer else getattr(layer_or_fn, "__name__", "function")
        raise GradcheckError(f"gradcheck failed for {what} on {b.label}:\n  " + "\n  ".join(failures))
    return True
