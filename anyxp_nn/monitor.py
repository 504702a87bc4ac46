"""Gradient-flow monitoring during training: no extra forward passes, one host read per logged step.

``GradientMonitor(model, optimizer, every=k)`` wraps the model's leaf layers and the
optimizer's ``step``.  On every k-th optimizer step (counting from 0) it records,
per layer:

* ``grad_norm``: ||g|| over the layer's own parameters (just before the update);
* ``update_ratio``: ||theta_after - theta_before|| / ||theta_before|| of that update
  (around 1e-3 is the classic healthy value; much smaller: learning stalls, much larger: unstable);
* ``act_mean``, ``act_std``: mean and standard deviation of the layer's output in the
  training forward pass that produced the gradients;
* ``dead_frac`` (ReLU layers): the fraction of units that output 0 for every sample
  of the batch ("dead ReLUs").

Every statistic is a 0-d array on the device.  When the step is done they are
stacked into one array and copied to the host in a single transfer (the only sync
point; nothing is read on the steps in between).  Without an optimizer, call
:meth:`GradientMonitor.record` after ``backprop`` yourself.

    mon = GradientMonitor(model, opt, every=10)
    ... train as usual ...
    mon.plot("gradient_flow.png")
    mon.detach()
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from array_api_compat import array_namespace

from ._checks import positive_int
from .backend import backend_of
from .layers.activations import ReLU

__all__ = ["GradientMonitor", "METRICS"]

METRICS = ("grad_norm", "update_ratio", "act_mean", "act_std", "dead_frac")


def _label(name: str, layer: Any) -> str:
    return f"{name}:{type(layer).__name__}" if name else type(layer).__name__


class GradientMonitor:
    """Per-layer gradient norms, update/parameter ratios and activation statistics.

    Args:
        model: the Layer to watch (its leaf layers' forwards are wrapped).
        optimizer: optional; its ``step`` is wrapped so logging happens by itself.
        every: log every ``every``-th step (step 0 included).
        activations: also record activation statistics (output mean/std, dead ReLUs).

    Attributes:
        steps: the logged step numbers.
        history: ``history[metric][layer label]`` -> list of floats aligned with ``steps``
            (nan where a layer had no value at that step).
    """

    def __init__(self, model: Any, optimizer: Any = None, every: int = 1, activations: bool = True):
        positive_int(every, "every", "GradientMonitor")
        self.model, self.optimizer, self.every = model, optimizer, every
        named = list(model.named_layers())
        self.param_layers = [(_label(n, l), l) for n, l in named if l._params]
        self.leaf_layers = [(_label(n, l), l) for n, l in named if not l._children] if activations else []
        self.step = 0  # optimizer steps seen so far
        self.steps: list[int] = []
        self.history: dict[str, dict[str, list[float]]] = {m: {} for m in METRICS}
        self._pending: dict[tuple[str, str], Any] = {}
        self._wrapped: list[tuple[Any, bool, Any]] = []
        self._orig_step = None
        for label, layer in self.leaf_layers:
            self._wrap_layer(label, layer)
        if optimizer is not None:
            self._wrap_optimizer(optimizer)

    # -- wiring ------------------------------------------------------------------------
    @property
    def logging(self) -> bool:
        """Whether the current step (the next optimizer step) is logged."""
        return self.step % self.every == 0

    def _wrap_layer(self, label: str, layer: Any) -> None:
        had_own = "forward" in layer.__dict__
        orig = layer.forward
        dead = isinstance(layer, ReLU)

        def forward(x: Any, train: "bool | None" = None) -> Any:
            y, backprop = orig(x, train)
            if layer._mode(train) and self.logging:
                self._activation_stats(label, y, dead)
            return y, backprop

        object.__setattr__(layer, "forward", forward)
        self._wrapped.append((layer, had_own, orig))

    def _wrap_optimizer(self, optimizer: Any) -> None:
        self._orig_step = optimizer.step

        def step() -> None:
            if not self.logging:
                self._orig_step()
                self.step += 1
                return
            self._grad_stats()
            before = self._snapshot()
            self._orig_step()
            self._update_stats(before)
            self._flush()
            self.step += 1

        object.__setattr__(optimizer, "step", step)

    def detach(self) -> None:
        """Restore the model's forwards and the optimizer's step."""
        for layer, had_own, orig in reversed(self._wrapped):
            if had_own:
                object.__setattr__(layer, "forward", orig)
            else:
                layer.__dict__.pop("forward", None)
        self._wrapped.clear()
        if self._orig_step is not None:
            self.optimizer.__dict__.pop("step", None)
            self._orig_step = None

    def __enter__(self) -> "GradientMonitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    # -- statistics (all stay on the device) ----------------------------------------------
    def _activation_stats(self, label: str, y: Any, dead: bool) -> None:
        xp = array_namespace(y)
        self._pending[("act_mean", label)] = xp.mean(y)
        self._pending[("act_std", label)] = xp.std(y)
        if dead and y.ndim >= 1 and y.shape[0] > 0:
            alive = xp.any(y > 0.0, axis=0)  # per unit: active for some sample of the batch
            self._pending[("dead_frac", label)] = 1.0 - xp.mean(xp.astype(alive, y.dtype))

    @staticmethod
    def _sq_norm(arrays: list[Any]) -> Any:
        xp = array_namespace(arrays[0])
        total = xp.sum(arrays[0] * arrays[0])
        for a in arrays[1:]:
            total = total + xp.sum(a * a)
        return total

    def _grad_stats(self) -> None:
        for label, layer in self.param_layers:
            grads = [p.grad for p in layer._params.values() if p is not None and p.grad is not None]
            if grads:
                self._pending[("grad_norm", label)] = array_namespace(grads[0]).sqrt(self._sq_norm(grads))

    def _snapshot(self) -> dict[str, list[tuple[Any, Any]]]:
        snap = {}
        for label, layer in self.param_layers:
            ps = [p for p in layer._params.values() if p is not None and p.requires_grad]
            if ps:
                xp = array_namespace(ps[0].data)
                snap[label] = [(p, xp.asarray(p.data, copy=True)) for p in ps]  # device copies
        return snap

    def _update_stats(self, before: dict[str, list[tuple[Any, Any]]]) -> None:
        for label, pairs in before.items():
            xp = array_namespace(pairs[0][1])
            delta = self._sq_norm([p.data - old for p, old in pairs])
            base = self._sq_norm([old for _, old in pairs])
            self._pending[("update_ratio", label)] = xp.sqrt(delta) / (xp.sqrt(base) + 1e-12)

    # -- the one host transfer per logged step ----------------------------------------------
    def record(self) -> None:
        """Log the current step by hand (after ``backprop``): gradient norms and the
        activation statistics of the last training forward; counts one step."""
        if self.logging:
            self._grad_stats()
            self._flush()
        self.step += 1

    def _flush(self) -> None:
        if not self._pending:
            return
        keys = list(self._pending)
        first = self._pending[keys[0]]
        xp, dtype = array_namespace(first), first.dtype
        stacked = xp.stack([xp.astype(self._pending[k], dtype) for k in keys])
        values = backend_of(stacked).to_numpy(stacked)  # note: the one CPU-GPU sync point per logged step
        self._pending = {}
        n = len(self.steps)
        self.steps.append(self.step)
        for (metric, label), v in zip(keys, values):
            series = self.history[metric].setdefault(label, [math.nan] * n)
            series.append(float(v))
        for metric in METRICS:
            for series in self.history[metric].values():
                if len(series) < n + 1:
                    series.append(math.nan)

    # -- reporting ----------------------------------------------------------------------------
    def last(self, metric: str) -> dict[str, float]:
        """The latest logged value of ``metric`` per layer."""
        if metric not in METRICS:
            raise ValueError(f"GradientMonitor: unknown metric {metric!r}; expected one of {METRICS}")
        return {label: s[-1] for label, s in self.history[metric].items() if s}

    def plot(self, path: "str | Path | None" = None, title: str = "Gradient flow") -> Any:
        """A 2x2 figure of the metrics per layer over the logged steps; saved to ``path`` if given.

        Made with the object API, never through pyplot: the user's matplotlib backend is untouched."""
        from matplotlib import colormaps
        from matplotlib.figure import Figure
        fig = Figure(figsize=(11, 7.5))
        axes = fig.subplots(2, 2)
        panels = [("grad_norm", "gradient norm ||g||", True), ("update_ratio", "update / parameter norm", True),
                  ("act_std", "activation std (dashed: |mean|)", False), ("dead_frac", "dead ReLU fraction", False)]
        steps = np.asarray(self.steps)
        for ax, (metric, name, log) in zip(axes.ravel(), panels):
            items = list(self.history[metric].items())
            colors = colormaps["viridis"](np.linspace(0.0, 0.9, max(len(items), 1)))  # input -> output
            for (label, series), color in zip(items, colors):
                ax.plot(steps, series, label=label, color=color)
                if metric == "act_std" and label in self.history["act_mean"]:
                    ax.plot(steps, np.abs(self.history["act_mean"][label]), ls="--", color=color)
            if not items:
                ax.text(0.5, 0.5, "no data (no such layers)", ha="center", va="center", transform=ax.transAxes)
            if log and any(np.nanmax(np.asarray(s, dtype=float), initial=0.0) > 0
                           for s in self.history[metric].values()):
                ax.set_yscale("log")
            ax.set_title(name)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
            if self.history[metric]:
                ax.legend(fontsize=7, ncol=2)
        fig.suptitle(title)
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=100, bbox_inches="tight")
        return fig
