"""RMSprop (Tieleman & Hinton, 2012, lecture 6e), with momentum and the centered
variant of Graves (2013), as ``torch.optim.RMSprop``:

    g    = g + wd * p                                   (if wd > 0)
    s    = alpha * s + (1 - alpha) * g^2
    avg  = sqrt(s) + eps                                  or, centered:
    gbar = alpha * gbar + (1 - alpha) * g ;  avg = sqrt(max(s - gbar^2, 0)) + eps
    buf  = momentum * buf + g / avg ;  p = p - lr * buf   (momentum > 0)
    p    = p - lr * g / avg                               (otherwise)
"""
from __future__ import annotations

from typing import Any, Iterable

from array_api_compat import array_namespace

from ..parameter import Parameter
from .optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, momentum=0.0, *, centered=False, weight_decay=0.0).

    Args:
        params: a Layer, an iterable of Parameters, or a list of param-group dicts.
        lr: float >= 0 or a schedule ``step -> float``.
        alpha: decay of the running mean of g^2, in [0, 1].
        eps: added to the denominator, >= 0.
        momentum: momentum of the scaled step, >= 0.
        centered: divide by an estimate of the gradient's variance instead of its second moment.
        weight_decay: L2 penalty added to the gradient.
    """

    _counters = ("step",)

    def __init__(self, params: Iterable[Any], lr: Any = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, *, centered: bool = False, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, momentum=momentum, centered=centered,
                                      weight_decay=weight_decay))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        self._check_number(group, "alpha", 0.0, 1.0, high_open=False)
        self._check_number(group, "eps", 0.0)
        self._check_number(group, "momentum", 0.0)
        if not isinstance(group["centered"], bool):
            raise TypeError(f"RMSprop: centered must be a bool, got {group['centered']!r}")

    def _slots(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("square_avg",) + (("momentum_buffer",) if group["momentum"] else ()) + (
            ("grad_avg",) if group["centered"] else ())

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any],
                lr: float) -> tuple[Any, dict[str, Any]]:
        alpha, eps, wd, mom = group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
        xp = array_namespace(p.grad)
        new: dict[str, Any] = {"step": state["step"] + 1}
        g = p.grad
        if wd:
            g = g + wd * p.data
        sq = g * g
        sq *= 1.0 - alpha
        s = state["square_avg"] * alpha
        s += sq
        new["square_avg"] = s
        if group["centered"]:
            gbar = state["grad_avg"] * alpha
            gbar += (1.0 - alpha) * g
            new["grad_avg"] = gbar
            sq = gbar * gbar  # reuse the name: the old temporary is released
            # s >= gbar^2 in exact arithmetic; rounding can make it -1 ulp for a constant
            # gradient, where PyTorch returns NaN: clamp at 0 (the only deviation from torch)
            avg = xp.sqrt(xp.maximum(s - sq, 0.0))
        else:
            avg = xp.sqrt(s)
        avg += eps
        if mom:
            buf = state["momentum_buffer"] * mom
            buf += g / avg
            new["momentum_buffer"] = buf
            return p.data - lr * buf, new
        upd = g * lr
        upd /= avg
        return p.data - upd, new
