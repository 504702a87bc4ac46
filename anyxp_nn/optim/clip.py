"""Gradient clipping, with PyTorch's semantics (``torch.nn.utils.clip_grad_norm_`` / ``_value_``).

``clip_grad_norm`` rescales every gradient by one factor so the global L2 norm
is at most ``max_norm`` (Pascanu, Mikolov & Bengio, "On the difficulty of training
recurrent neural networks", 2013):

    total = sqrt(sum_i ||g_i||^2) ;  g_i <- g_i * min(1, max_norm / (total + 1e-6))

The scaling happens on the device; the only host sync is reading ``total`` back
as the returned Python float.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from array_api_compat import array_namespace

from ..backend import backend_of
from ..parameter import Parameter

__all__ = ["clip_grad_norm", "clip_grad_norm_no_sync", "clip_grad_value"]


def _grads(params: Any, fn: str) -> list[Parameter]:
    if hasattr(params, "parameters") and callable(params.parameters):
        params = params.parameters()
    if isinstance(params, Parameter):
        params = [params]
    out = []
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"{fn}: expected Parameters (or a Layer), got {type(p).__name__}")
        if p.requires_grad and p.grad is not None:
            out.append(p)
    return out


def _norm(xp: Any, a: Any) -> Any:
    linalg = getattr(xp, "linalg", None)
    if linalg is not None and hasattr(linalg, "vector_norm"):
        return linalg.vector_norm(a)
    return xp.sqrt(xp.sum(a * a))


def _total_norm(ps: list[Parameter]) -> Any:
    """sqrt(sum_i ||g_i||^2) as a 0-d device array in the first gradient's dtype, as PyTorch computes it."""
    xp = array_namespace(ps[0].grad)
    dtype = ps[0].grad.dtype
    norms = [xp.astype(_norm(xp, p.grad), dtype) for p in ps]
    return _norm(xp, xp.stack(norms)) if len(norms) > 1 else norms[0]


def _scale(ps: list[Parameter], total: Any, max_norm: float) -> None:
    """g_i <- g_i * min(1, max_norm / (total + 1e-6)), on the device."""
    xp = array_namespace(total)
    coef = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for p in ps:
        p.grad *= coef if p.grad.dtype == coef.dtype else xp.astype(coef, p.grad.dtype)


def _check_max_norm(max_norm: Any, owner: str) -> None:
    if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not max_norm > 0:
        raise ValueError(f"{owner}: max_norm must be a float > 0, got {max_norm!r}")


def clip_grad_norm(params: Iterable[Any], max_norm: float, error_if_nonfinite: bool = False) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``.

    Args:
        params: a Layer or an iterable of Parameters (those without a gradient are ignored).
        max_norm: the largest allowed norm, > 0.
        error_if_nonfinite: raise ValueError (and change nothing) if the norm is nan or inf.

    Returns:
        the total norm before clipping, as a Python float (one host sync).
    """
    _check_max_norm(max_norm, "clip_grad_norm")
    ps = _grads(params, "clip_grad_norm")
    if not ps:
        return 0.0
    total = _total_norm(ps)
    value = backend_of(total).item(total)  # note: the one CPU-GPU sync point
    if error_if_nonfinite and not math.isfinite(value):
        raise ValueError(f"clip_grad_norm: the total gradient norm is {value}; not clipping "
                         "(pass error_if_nonfinite=False to scale anyway)")
    _scale(ps, total, max_norm)
    return value


def clip_grad_norm_no_sync(params: Iterable[Any], max_norm: float) -> Any:
    """:func:`clip_grad_norm` without its host read (what ``fit(clip_grad_norm=...)`` runs every
    step): returns the total norm before clipping as a 0-d device array, or None when no
    parameter has a gradient."""
    _check_max_norm(max_norm, "clip_grad_norm_no_sync")
    ps = _grads(params, "clip_grad_norm_no_sync")
    if not ps:
        return None
    total = _total_norm(ps)
    _scale(ps, total, max_norm)
    return total


def clip_grad_value(params: Iterable[Any], clip_value: float) -> None:
    """Clamp every gradient element to ``[-clip_value, clip_value]`` (no host sync)."""
    if isinstance(clip_value, bool) or not isinstance(clip_value, (int, float)) or not clip_value >= 0:
        raise ValueError(f"clip_grad_value: clip_value must be a float >= 0, got {clip_value!r}")
    for p in _grads(params, "clip_grad_value"):
        xp = array_namespace(p.grad)
        p.grad = xp.clip(p.grad, -float(clip_value), float(clip_value))
