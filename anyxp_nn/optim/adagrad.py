"""Adagrad (Duchi, Hazan & Singer, 2011), as ``torch.optim.Adagrad``:

    g   = g + wd * p                       (if wd > 0)
    clr = lr / (1 + (t - 1) * lr_decay)    (t: the parameter's update count, from 1)
    G   = G + g^2                          (G starts at initial_accumulator_value)
    p   = p - clr * g / (sqrt(G) + eps)
"""
from __future__ import annotations

from typing import Any, Iterable

from array_api_compat import array_namespace

from ..parameter import Parameter
from .optimizer import Optimizer

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Adagrad(params, lr=1e-2, eps=1e-10, *, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0).

    Args:
        params: a Layer, an iterable of Parameters, or a list of param-group dicts.
        lr: float >= 0 or a schedule ``step -> float``.
        eps: added to the denominator, >= 0.
        lr_decay: the step size is lr / (1 + (t - 1) lr_decay).
        weight_decay: L2 penalty added to the gradient.
        initial_accumulator_value: starting value of the sum of squares G, >= 0.
    """

    _counters = ("step",)

    def __init__(self, params: Iterable[Any], lr: Any = 1e-2, eps: float = 1e-10, *, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0):
        super().__init__(params, dict(lr=lr, eps=eps, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        self._check_number(group, "eps", 0.0)
        self._check_number(group, "lr_decay", 0.0)
        self._check_number(group, "initial_accumulator_value", 0.0)

    def _slots(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any],
                lr: float) -> tuple[Any, dict[str, Any]]:
        xp = array_namespace(p.grad)
        t = state["step"] + 1
        G = state["sum"]
        if t == 1 and group["initial_accumulator_value"]:
            G = G + group["initial_accumulator_value"]
        g = p.grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        clr = lr / (1.0 + (t - 1) * group["lr_decay"])
        G = G + g * g
        std = xp.sqrt(G)
        std += group["eps"]
        upd = g * clr
        upd /= std
        return p.data - upd, {"step": t, "sum": G}
