"""anyxp_nn: deep learning from scratch, written once against the Python Array API.

    import anyxp_nn as nn
    nn.set_backend("torch")          # or "numpy", "array_api_strict", "cupy"
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
"""
from . import (augment, backend, checkpoint, data, distributed, export, init, interpret, layers, losses, monitor,
               optim, random, training)
from ._version import __version__
from .backend import Backend, available_backends, get_backend, set_backend, to_numpy
from .checkpoint import load, save
from .layers import *  # noqa: F401,F403  (every layer, under the names in layers.__all__)
from .parameter import Parameter
from .random import Generator, manual_seed
from .summary import Summary, summary
from .sync import count_syncs, sync_guard
from .training import History, callbacks, fit, metrics

__all__ = sorted([
    "Backend", "Generator", "History", "Parameter", "Summary", "augment", "available_backends", "backend",
    "callbacks", "checkpoint", "count_syncs", "data", "distributed", "export", "fit", "get_backend", "init",
    "interpret", "load", "losses", "manual_seed", "metrics", "monitor", "optim", "random", "save", "set_backend",
    "summary", "sync_guard", "to_numpy", "training",
    *layers.__all__,
])
