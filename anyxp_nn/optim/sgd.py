"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay.

As ``torch.optim.SGD`` (dampening 0), for gradient g of parameter p:

    g   = g + wd * p                 (L2 weight decay, if wd > 0)
    buf = momentum * buf + g         (buf starts at 0, so the first step sets buf = g)
    g   = g + momentum * buf         (Nesterov, Sutskever et al. 2013)   or   g = buf
    p   = p - lr * g

Polyak's heavy ball (1964) is the plain momentum form; the Nesterov variant
evaluates the momentum "look-ahead" in PyTorch's reformulation.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..parameter import Parameter
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    """SGD(params, lr, momentum=0.0, nesterov=False, weight_decay=0.0).

    Args:
        params: a Layer, an iterable of Parameters, or a list of param-group dicts.
        lr: float >= 0 or a schedule ``step -> float``.
        momentum: heavy-ball coefficient in [0, 1) (1 or more never forgets a gradient and diverges).
        nesterov: use Nesterov momentum (needs momentum > 0).
        weight_decay: L2 penalty coefficient (added to the gradient).
    """

    def __init__(self, params: Iterable[Any], lr: Any = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        self._check_number(group, "momentum", 0.0, 1.0)
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError(f"SGD: nesterov=True needs momentum > 0, got momentum={group['momentum']!r}")

    def _slots(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("momentum_buffer",) if group["momentum"] else ()

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any],
                lr: float) -> tuple[Any, dict[str, Any]]:
        wd, mom = group["weight_decay"], group["momentum"]
        g = p.grad
        if wd:
            g = g + wd * p.data
        if not mom:
            return p.data - lr * g, {}
        buf = state["momentum_buffer"] * mom
        buf += g
        g = g + mom * buf if group["nesterov"] else buf
        return p.data - lr * g, {"momentum_buffer": buf}
