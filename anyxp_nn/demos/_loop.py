"""What the demo sections share: a callback that runs a function after every epoch of
``nn.fit``, hold-out accuracy through ``nn.training.evaluate``, and figures without pyplot.

The sections train with ``nn.fit`` over an ``nn.data.DataLoader``; the one hand-written
loop is ``demos/mlp.py``'s ``SimpleNeuralNetwork.fit``, the from-scratch teaching version.
"""
from __future__ import annotations

from typing import Any, Callable

import anyxp_nn as nn
from anyxp_nn.training import Callback, FitState, evaluate

__all__ = ["EachEpoch", "accuracy", "subplots"]


class EachEpoch(Callback):
    """Call ``fn(epoch, logs)`` at the end of every epoch of ``nn.fit`` (as Keras'
    ``LambdaCallback(on_epoch_end=...)``): ``epoch`` 0-based, ``logs`` the epoch's history row."""

    def __init__(self, fn: Callable[[int, dict], Any]):
        self.fn = fn

    def on_epoch_end(self, state: FitState) -> None:
        self.fn(state.epoch, state.logs)


def accuracy(model: nn.Layer, X: Any, y: Any, batch_size: int = 500) -> float:
    """Fraction of correct argmax predictions on host data, in inference mode: ``nn.training.evaluate``."""
    return evaluate(model, (X, y), metrics=("accuracy",), batch_size=batch_size)["accuracy"]


def subplots(*grid: int, figsize: tuple[float, float], **kw: Any) -> tuple[Any, Any]:
    """``plt.subplots(*grid, figsize=...)`` through matplotlib's Figure API: no pyplot, so no
    global backend choice and no figure registry to close (``fig.savefig`` renders with Agg)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kw)
