"""Adam and AdamW (Kingma & Ba, 2015; Loshchilov & Hutter, 2019).

As ``torch.optim.Adam`` / ``AdamW`` (amsgrad=False), for gradient g at the
parameter's t-th update (t from 1):

    g = g + wd * p                   (Adam: L2 penalty in the gradient)
    p = p * (1 - lr * wd)            (AdamW: decoupled weight decay instead)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The bias corrections are Python floats, so float32 state stays float32.  The
update uses in-place operators on the state and reuses its temporaries: four
fresh arrays per step, each pass over memory as few as the standard allows.
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

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], lr: float) -> None:
        b1, b2 = group["betas"]
        eps, wd = group["eps"], group["weight_decay"]
        state["step"] += 1
        t = state["step"]
        if wd and self._decoupled:
            p.data *= 1.0 - lr * wd
        elif wd:
            g = g + wd * p.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        xp = array_namespace(g)
        # m <- b1 m + (1 - b1) g ;  v <- b2 v + (1 - b2) g^2
        tmp = g * (1.0 - b1)
        m *= b1
        m += tmp
        sq = g * g
        sq *= 1.0 - b2
        v *= b2
        v += sq
        del tmp, sq  # free before the next two temporaries (peak memory = 2 extra arrays)
        step_size = lr / (1.0 - b1 ** t)
        denom = xp.sqrt(v)
        denom /= math.sqrt(1.0 - b2 ** t)
        denom += eps
        upd = m * step_size
        upd /= denom
        p.data -= upd


class AdamW(Adam):
    """AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2): decoupled
    weight decay, ``p <- p (1 - lr wd)`` before the Adam step (Loshchilov & Hutter, 2019)."""

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: Any = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
