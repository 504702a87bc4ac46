"""anyxp_nn: deep learning from scratch, written once against the Python Array API.

    import anyxp_nn as nn
    nn.set_backend("torch")          # or "numpy", "array_api_strict", "cupy"
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
"""
from . import augment, backend, checkpoint, data, distributed, init, interpret, losses, monitor, optim, random, training
from .backend import Backend, available_backends, get_backend, set_backend, to_numpy
from .checkpoint import load, save
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layer_names
from .parameter import Parameter
from .random import Generator, manual_seed
from .summary import Summary, summary
from .testing.sync import count_syncs, sync_guard
from .training import History, callbacks, fit, metrics


__version__ = "0.1.0"

__all__ = ["augment", "backend", "checkpoint", "data", "init", "losses", "monitor", "optim", "random",
           "training", "Backend", "available_backends", "get_backend", "set_backend", "to_numpy",
           "load", "save", "Parameter", "Generator", "manual_seed", "count_syncs", "sync_guard",
           "History", "callbacks", "fit", "metrics", "summary", "Summary", "interpret", "distributed",
           *_layer_names]

from . import export  # noqa: E402  (after __version__, which export records in its files)
__all__ += ["export"]
