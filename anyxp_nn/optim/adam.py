"""Adam and AdamW (Kingma & Ba, 2015; Loshchilov & Hutter, 2019).

As ``torch.optim.Adam`` / ``AdamW`` (amsgrad=False), for gradient g at the
parameter's t-th update (t from 1):

    g = g + wd * p                   (Adam: L2 penalty in the gradient)
    p = p * (1 - lr * wd)            (AdamW: decoupled weight decay instead)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The bias corrections are Python floats, so float32 state stays float32.  The
new moments are fresh arrays updated in place (the old ones stay intact until
the optimizer commits the step) and share one temporary; the bias corrections
are folded into scalars.  The algebra is regrouped, so results equal PyTorch's
to float32 rounding, not bitwise.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from array_api_compat import array_namespace

from ..parameter import Parameter
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    """Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0).

    Args:
        params: a Layer, an iterable of Parameters, or a list of param-group dicts.
        lr: float >= 0 or a schedule ``step -> float``.
        betas: decay rates (beta1, beta2) of the first and second moment, each in [0, 1).
        eps: added to the denominator, >= 0.
        weight_decay: L2 penalty added to the gradient (AdamW decouples it instead).
    """

    _counters = ("step",)
    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def _validate(self, group: dict[str, Any]) -> None:
        super()._validate(group)
        self._check_betas(group)
        self._check_number(group, "eps", 0.0)

    def _slots(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq")

    def _update(self, p: Parameter, state: dict[str, Any], group: dict[str, Any],
                lr: float) -> tuple[Any, dict[str, Any]]:
        b1, b2 = group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        t = state["step"] + 1
        g, w = p.grad, p.data
        if wd and self._decoupled:
            w = w * (1.0 - lr * wd)
        elif wd:
            g = g + wd * w
        xp = array_namespace(g)
        # m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2, sharing one temporary:
        # tmp = (1 - b1) g, then tmp * g * (1 - b2) / (1 - b1) = (1 - b2) g^2
        tmp = g * (1.0 - b1)
        m = state["exp_avg"] * b1
        m += tmp
        tmp *= g
        tmp *= (1.0 - b2) / (1.0 - b1)
        v = state["exp_avg_sq"] * b2
        v += tmp
        del tmp
        # p <- p - lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps)
        #    = p - (lr sqrt(bc2)/bc1) * m / (sqrt(v) + eps sqrt(bc2))   (one pass fewer)
        bc2_sqrt = math.sqrt(1.0 - b2 ** t)
        denom = xp.sqrt(v)
        denom += eps * bc2_sqrt
        upd = m / denom
        upd *= lr * bc2_sqrt / (1.0 - b1 ** t)
        return w - upd, {"step": t, "exp_avg": m, "exp_avg_sq": v}


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2): decoupled
    weight decay, ``p <- p (1 - lr wd)`` before the Adam step (Loshchilov & Hutter, 2019)."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
