"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

As ``torch.optim.SGD`` (dampening 0):
    g = grad + wd * p
    buf = g                         (first step)
    buf = momentum * buf + g        (later steps)
    g = g + momentum * buf          (Nesterov) or g = buf
    p = p - lr * g
(Sutskever et al., 2013, in PyTorch's formulation.)
"""
from __future__ import annotations

from typing import Any, Iterable

from array_api_compat import array_namespace

from ..parameter import Parameter
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    def __init__(self, params: Iterable[Any], lr: Any = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        if group["momentum"] < 0:
            raise ValueError(f"SGD: momentum must be >= 0, got {group['momentum']}")
        if group["weight_decay"] < 0:
            raise ValueError(f"SGD: weight_decay must be >= 0, got {group['weight_decay']}")
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], lr: float) -> None:
        wd, mom = group["weight_decay"], group["momentum"]
        if wd:
            g = g + wd * p.data
        if mom:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = array_namespace(g).asarray(g, copy=True)
            else:
                buf *= mom
                buf += g
            g = g + mom * buf if group["nesterov"] else buf
        p.data -= lr * g
