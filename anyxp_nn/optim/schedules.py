"""Learning-rate schedules: plain ``step -> float`` callables (Python floats).

Pass one wherever a learning rate goes: ``Adam(model, lr=cosine_annealing(1e-3, 1000))``.
The optimizer's k-th ``step()`` (k from 0) uses ``schedule(k)``, which matches
PyTorch when ``scheduler.step()`` follows ``optimizer.step()``.  A schedule keeps
no state, so a checkpoint only needs the optimizer's step count.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Union

from .._checks import non_negative_int, positive_int

__all__ = ["Schedule", "constant", "cosine_annealing", "exponential_decay", "linear_warmup", "sequential",
           "step_decay", "warmup_cosine"]

Schedule = Callable[[int], float]
"""A learning-rate schedule: the optimizer's step number k (from 0) -> a Python float."""


def _nonneg(v: object, name: str, owner: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{owner}: `{name}` must be a finite float >= 0, got {v!r}")
    return float(v)


def _check_step(k: int, owner: str) -> int:
    if k < 0:
        raise ValueError(f"{owner}: a schedule's step must be >= 0, got {k!r}")
    return int(k)


def _named(fn: Schedule, text: str) -> Schedule:
    fn.__name__ = fn.__qualname__ = text
    return fn


def constant(lr: float) -> Schedule:
    """lr_k = lr."""
    lr = _nonneg(lr, "lr", "constant")

    def schedule(k: int) -> float:
        _check_step(k, "constant")
        return lr

    return _named(schedule, f"constant({lr})")


def step_decay(lr: float, step_size: int, gamma: float = 0.1) -> Schedule:
    """lr_k = lr * gamma^floor(k / step_size)  (PyTorch ``StepLR``)."""
    lr, gamma = _nonneg(lr, "lr", "step_decay"), _nonneg(gamma, "gamma", "step_decay")
    step_size = positive_int(step_size, "step_size", "step_decay")

    def schedule(k: int) -> float:
        return lr * gamma ** (_check_step(k, "step_decay") // step_size)

    return _named(schedule, f"step_decay({lr}, {step_size}, {gamma})")


def exponential_decay(lr: float, gamma: float) -> Schedule:
    """lr_k = lr * gamma^k  (PyTorch ``ExponentialLR``)."""
    lr, gamma = _nonneg(lr, "lr", "exponential_decay"), _nonneg(gamma, "gamma", "exponential_decay")

    def schedule(k: int) -> float:
        return lr * gamma ** _check_step(k, "exponential_decay")

    return _named(schedule, f"exponential_decay({lr}, {gamma})")


def cosine_annealing(lr: float, total_steps: int, min_lr: float = 0.0) -> Schedule:
    """Half a cosine from ``lr`` down to ``min_lr`` over ``total_steps``, then ``min_lr``:

        lr_k = min_lr + (lr - min_lr) * (1 + cos(pi * k / total_steps)) / 2   for k <= total_steps

    SGDR without restarts (Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with
    Warm Restarts", ICLR 2017); PyTorch's ``CosineAnnealingLR(T_max=total_steps, eta_min=min_lr)``
    up to ``total_steps`` (PyTorch's keeps oscillating afterwards; this one stays at ``min_lr``).
    """
    lr, min_lr = _nonneg(lr, "lr", "cosine_annealing"), _nonneg(min_lr, "min_lr", "cosine_annealing")
    total_steps = positive_int(total_steps, "total_steps", "cosine_annealing")

    def schedule(k: int) -> float:
        k = _check_step(k, "cosine_annealing")
        if k >= total_steps:
            return min_lr
        return min_lr + (lr - min_lr) * (1.0 + math.cos(math.pi * k / total_steps)) / 2.0

    return _named(schedule, f"cosine_annealing({lr}, {total_steps}, {min_lr})")


def linear_warmup(schedule_or_lr: Union[Schedule, float], warmup_steps: int,
                  start_factor: float = 0.0) -> Schedule:
    """Ramp linearly up to a base schedule, then follow it (shifted by ``warmup_steps``):

        lr_k = base(0) * (start_factor + (1 - start_factor) * k / warmup_steps)   for k < warmup_steps
        lr_k = base(k - warmup_steps)                                             afterwards

    The ramp is PyTorch's ``LinearLR(start_factor, 1.0, total_iters=warmup_steps)``; with a
    cosine base this is ``SequentialLR([LinearLR, CosineAnnealingLR], milestones=[warmup_steps])``,
    so the cosine starts at its top.  Gradual warmup: Goyal et al., "Accurate, Large Minibatch
    SGD: Training ImageNet in 1 Hour", 2017.
    """
    base = schedule_or_lr if callable(schedule_or_lr) else constant(schedule_or_lr)
    warmup_steps = non_negative_int(warmup_steps, "warmup_steps", "linear_warmup")
    start_factor = _nonneg(start_factor, "start_factor", "linear_warmup")
    if start_factor > 1.0:
        raise ValueError(f"linear_warmup: `start_factor` must be in [0, 1], got {start_factor!r}")

    def schedule(k: int) -> float:
        k = _check_step(k, "linear_warmup")
        if k < warmup_steps:
            return float(base(0)) * (start_factor + (1.0 - start_factor) * k / warmup_steps)
        return float(base(k - warmup_steps))

    return _named(schedule, f"linear_warmup({getattr(base, '__name__', 'schedule')}, {warmup_steps})")


def sequential(schedules: Sequence[Union[Schedule, float]], boundaries: Sequence[int]) -> Schedule:
    """Run ``schedules[i]`` from step ``boundaries[i-1]`` (each restarted at its own step 0):

        lr_k = schedules[i](k - b_{i-1})   for b_{i-1} <= k < b_i   (b_{-1} = 0)

    As PyTorch's ``SequentialLR(schedulers, milestones=boundaries)``.
    """
    scheds = [s if callable(s) else constant(s) for s in schedules]
    bounds = [positive_int(b, "boundaries[i]", "sequential") for b in boundaries]
    if len(bounds) != len(scheds) - 1:
        raise ValueError(f"sequential: {len(scheds)} schedules need {len(scheds) - 1} boundaries, "
                         f"got {len(bounds)}")
    if any(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:])):
        raise ValueError(f"sequential: boundaries must be strictly increasing, got {list(boundaries)}")
    starts = [0] + bounds

    def schedule(k: int) -> float:
        k = _check_step(k, "sequential")
        i = sum(1 for b in bounds if k >= b)
        return float(scheds[i](k - starts[i]))

    return _named(schedule, f"sequential({len(scheds)} schedules, {bounds})")


def warmup_cosine(lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0,
                  start_factor: float = 0.0) -> Schedule:
    """Linear warmup for ``warmup_steps`` then a cosine to ``min_lr`` at ``total_steps`` (in all):
    ``linear_warmup(cosine_annealing(lr, total_steps - warmup_steps, min_lr), warmup_steps)``."""
    total_steps = positive_int(total_steps, "total_steps", "warmup_cosine")
    if not isinstance(warmup_steps, int) or not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_cosine: `warmup_steps` (={warmup_steps!r}) must be an int in [0, total_steps={total_steps})")
    return linear_warmup(cosine_annealing(lr, total_steps - warmup_steps, min_lr), warmup_steps, start_factor)
