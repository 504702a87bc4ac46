"""anyxp_nn: deep learning from scratch, written once against the Python Array API.

    import anyxp_nn as nn
    nn.set_backend("torch")          # or "numpy", "array_api_strict", "cupy"
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
"""
from . import backend, init, losses, optim, random
from .backend import Backend, available_backends, get_backend, set_backend, to_numpy
from .layers import *  # noqa: F401,F403
from .layers import __all__ as _layer_names
from .parameter import Parameter
from .random import Generator, manual_seed

__version__ = "0.1.0"

__all__ = ["backend", "init", "losses", "optim", "random", "Backend", "available_backends",
           "get_backend", "set_backend", "to_numpy", "Parameter", "Generator", "manual_seed",
           *_layer_names]
from . import augment  # noqa: E402,F401
from . import checkpoint, data, training  # noqa: E402
from .checkpoint import load, save  # noqa: E402
from .training import History, callbacks, fit, metrics  # noqa: E402

__all__ += ["data", "training", "checkpoint", "fit", "History", "save", "load", "metrics", "callbacks"]
from .testing.sync import count_syncs, sync_guard  # noqa: E402

__all__ += ["sync_guard", "count_syncs"]
from . import monitor  # noqa: E402

__all__ += ["monitor"]
