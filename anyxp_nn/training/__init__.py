"""Training: the ``fit`` loop, its ``History``, metrics and callbacks (one idea per file)."""
from . import callbacks, metrics
from .callbacks import (Callback, CSVLogger, EarlyStopping, FitState, JSONLogger, LRSchedule, ModelCheckpoint,
                        NonFiniteGuard, NonFiniteLossError, TerminateOnNaN)
from .evaluate import evaluate
from .fit import fit
from .history import History

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "FitState", "History", "JSONLogger", "LRSchedule", "ModelCheckpoint",
    "NonFiniteGuard", "NonFiniteLossError", "TerminateOnNaN", "callbacks", "evaluate", "fit", "metrics"
]
