"""What ``fit`` does differently when the model is a DataParallel on several ranks.

``fit`` asks ``fit_hooks(model)`` once; for a plain model (or one rank) every hook is
the identity, so single-process training is untouched.  On P ranks:

* ``is_main``: only rank 0 shows progress and writes logs and checkpoints;
* ``mean_rows``: the per-step loss/metric values read at each log interval are averaged
  over ranks (one small all-reduce, on values already on the host), so every rank
  records the same history and ``NonFiniteGuard`` sees a NaN from any rank on all of
  them: every rank stops at the same step, none waits for a rank that left;
* ``average_logs``: the epoch row (training and validation loss and metrics) is
  averaged too, so ``EarlyStopping`` and ``ModelCheckpoint(save_best_only=True)``
  decide the same everywhere;
* ``barrier``: after the epoch-end callbacks, so a checkpoint rank 0 just wrote is on
  disk before any rank may read it.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .parallel import DataParallel

__all__ = ["FitHooks", "fit_hooks"]


class FitHooks:
    """The hooks of one process (``comm=None``) or of a DataParallel's communicator."""

    def __init__(self, comm: Any = None):
        self.comm = comm if comm is not None and comm.size > 1 else None

    @property
    def is_main(self) -> bool:
        return self.comm is None or self.comm.rank == 0

    def check_loader(self, loader: Any) -> None:
        """Warn when every rank would train on the same batches; refuse shards of another size."""
        if self.comm is None:
            return
        shard = getattr(loader, "shard", None)
        if shard is None:
            warnings.warn(f"fit: the model is a DataParallel on {self.comm.size} ranks but the loader is not "
                          "sharded, so every rank trains on the same batches; create it with "
                          "shard=(comm.rank, comm.size)", RuntimeWarning, stacklevel=3)
        elif shard[1] != self.comm.size:
            raise ValueError(f"fit: the loader is sharded over {shard[1]} ranks (shard={shard}) but the "
                             f"DataParallel model runs on {self.comm.size}; use shard=(comm.rank, comm.size)")

    def mean_rows(self, values: np.ndarray) -> np.ndarray:
        """(steps, k) host float64 values -> their mean over ranks."""
        return values if self.comm is None else self.comm.mean(values)

    def average_logs(self, row: dict[str, Any]) -> dict[str, Any]:
        """The epoch row with every float value averaged over ranks (counters and None kept)."""
        if self.comm is None:
            return row
        keys = [k for k, v in row.items() if isinstance(v, float)]
        means = self.comm.mean(np.array([row[k] for k in keys], dtype=np.float64))
        return {**row, **{k: float(v) for k, v in zip(keys, means)}}

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.barrier()


def fit_hooks(model: Any) -> FitHooks:
    """The hooks for ``model``: distributed ones for a DataParallel on several ranks, else identities."""
    return FitHooks(model.comm if isinstance(model, DataParallel) else None)
