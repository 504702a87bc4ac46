"""Optimizer base: parameter groups, learning-rate schedules, per-parameter state.

An optimizer holds ``param_groups`` (a list of dicts with ``"params"`` and the
hyper-parameters, PyTorch-style) and ``state`` (one dict of arrays per parameter,
living on the parameter's device and dtype).  ``lr`` may be a float or a
schedule ``step -> float``; the k-th ``step()`` (k from 0) uses ``schedule(k)``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from ..parameter import Parameter

__all__ = ["Optimizer"]


class Optimizer:
    """Base class.  Subclasses define ``defaults`` and ``_update(p, g, state, group, lr)``."""

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        groups = self._as_groups(params)
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for i, group in enumerate(groups):
            full = {**self.defaults, **group}
            unknown = set(group) - set(self.defaults) - {"params"}
            if unknown:
                raise ValueError(f"{type(self).__name__}: param group {i} has unknown options {sorted(unknown)}; "
                                 f"known: {sorted(self.defaults)}")
            ps = list(full["params"])
            if not ps:
                raise ValueError(f"{type(self).__name__}: param group {i} has an empty parameter list")
            for p in ps:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{type(self).__name__}: expected Parameters, got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError(f"{type(self).__name__}: a parameter {p!r} is listed twice")
                seen.add(id(p))
            full["params"] = ps
            self._validate(full)
            self.param_groups.append(full)
        self.state: dict[int, dict[str, Any]] = {}
        self.step_count = 0

    @staticmethod
    def _as_groups(params: Iterable[Any]) -> list[dict[str, Any]]:
        if hasattr(params, "parameters") and callable(params.parameters):
            params = params.parameters()
        items = list(params)
        if not items:
            raise ValueError("optimizer got an empty parameter list")
        if isinstance(items[0], dict):
            return [dict(g) for g in items]
        return [{"params": items}]

    def _validate(self, group: dict[str, Any]) -> None:
        lr = group["lr"]
        if not callable(lr) and (not isinstance(lr, (int, float)) or lr < 0):
            raise ValueError(f"{type(self).__name__}: lr must be a non-negative float or a schedule, got {lr!r}")

    def lr_at(self, group: dict[str, Any], step: int | None = None) -> float:
        """The group's learning rate for step ``step`` (default: the next step)."""
        lr = group["lr"]
        return float(lr(self.step_count if step is None else step)) if callable(lr) else float(lr)

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        """Update every parameter that requires grad and has a gradient."""
        for group in self.param_groups:
            lr = self.lr_at(group)
            for p in group["params"]:
                if not p.requires_grad or p.grad is None:
                    continue
                self._update(p, p.grad, self.state.setdefault(id(p), {}), group, lr)
        self.step_count += 1

    def _update(self, p: Parameter, g: Any, state: dict[str, Any], group: dict[str, Any], lr: float) -> None:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def __repr__(self) -> str:
        opts = {k: v for k, v in self.defaults.items()}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in opts.items())})"


Schedule = Callable[[int], float]
