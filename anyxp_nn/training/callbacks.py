"""Callbacks: small objects ``fit`` calls at fixed points of training.

Hooks (all optional), each receiving the :class:`FitState`:
``on_train_begin``, ``on_epoch_begin``, ``on_before_step`` (every optimizer step, after
backward (and all ``accumulate_steps`` batches) and before clipping and ``optimizer.step()``:
the gradients are the step's, as Lightning's ``on_before_optimizer_step``; keep what you
record on the device, since a host read here is a sync point every step), ``on_log`` (after the loss values of the
last few steps were read to the host, with those step rows), ``on_epoch_end``
(after validation, with ``state.logs`` = the epoch row), ``on_train_end``.
A callback stops training by calling ``state.stop(reason, message)``; called in
``on_before_step``, it also skips that step's update (the gradients never reach the weights).
"""
from __future__ import annotations

import csv
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable

from .._atomic import atomic_write
from ..checkpoint import load, save

__all__ = ["Callback", "FitState", "EarlyStopping", "ModelCheckpoint", "LRSchedule", "NonFiniteGuard",
           "TerminateOnNaN", "NonFiniteLossError", "CSVLogger", "JSONLogger"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite (raised by ``NonFiniteGuard(mode="raise")``)."""


class FitState:
    """What callbacks see: the objects being trained and where training is."""

    def __init__(self, model: Any, optimizer: Any, loader: Any, history: Any, epochs: int):
        self.model, self.optimizer, self.loader, self.history = model, optimizer, loader, history
        self.epochs = epochs
        self.epoch = 0          # index of the current epoch (0-based); after it ends, epochs done = epoch + 1
        self.step = 0           # optimizer steps taken so far, over all epochs
        self.logs: dict[str, Any] = {}
        self.stop_training = False
        self.stop_reason: str | None = None
        self.message: str | None = None
        self.last_checkpoint: str | None = None
        self.is_main = True     # False on ranks other than 0 of a data-parallel run: they write no files

    def stop(self, reason: str, message: str | None = None) -> None:
        self.stop_training = True
        self.stop_reason, self.message = reason, message


class Callback:
    def on_train_begin(self, state: FitState) -> None: ...
    def on_epoch_begin(self, state: FitState) -> None: ...
    def on_before_step(self, state: FitState) -> None: ...
    def on_log(self, state: FitState, rows: list[dict[str, Any]]) -> None: ...
    def on_epoch_end(self, state: FitState) -> None: ...
    def on_train_end(self, state: FitState) -> None: ...


def _better(mode: str, monitor: str, owner: str) -> Callable[[float, float, float], bool]:
    if mode == "auto":
        mode = "min" if "loss" in monitor else "max"
    if mode not in ("min", "max"):
        raise ValueError(f"{owner}: `mode` must be 'min', 'max' or 'auto', got {mode!r}")
    if mode == "min":
        return lambda new, best, delta: new < best - delta
    return lambda new, best, delta: new > best + delta


def _monitored(state: FitState, monitor: str, who: str) -> float | None:
    if monitor not in state.logs:
        raise KeyError(f"{who}: monitored value {monitor!r} is not logged; available: {sorted(state.logs)} "
                       "(val_* values need val_data)")
    v = state.logs[monitor]
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    With ``restore_best=True`` the model's parameters and buffers are set back to
    the best epoch's at the end of training (a host copy is kept).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.better = _better(mode, monitor, type(self).__name__)
        self.restore_best = restore_best

    def on_train_begin(self, state: FitState) -> None:
        self.best, self.best_epoch, self.wait, self.best_state = None, None, 0, None

    def on_epoch_end(self, state: FitState) -> None:
        v = _monitored(state, self.monitor, "EarlyStopping")
        if v is not None and (self.best is None or self.better(v, self.best, self.min_delta)):
            self.best, self.best_epoch, self.wait = v, state.epoch + 1, 0
            if self.restore_best:
                self.best_state = state.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            state.stop("early_stopping", f"EarlyStopping: {self.monitor} did not improve for {self.patience} "
                                         f"epoch(s); best {self.best} at epoch {self.best_epoch}")

    def on_train_end(self, state: FitState) -> None:
        if self.restore_best and self.best_state is not None and state.stop_reason == "early_stopping":
            state.model.load_state_dict(self.best_state)


class ModelCheckpoint(Callback):
    """Save the whole training state (``nn.save``) at the end of every epoch.

    Args:
        path: file path; may contain ``{epoch}`` (e.g. ``"ckpt-{epoch:03d}.npz"``).
        monitor: with ``save_best_only``, the value deciding what "best" is.
        save_best_only: write only when ``monitor`` improves.
        extra: JSON values stored in every checkpoint (``nn.save``'s extras), e.g. the
            ``builder`` record that lets ``anyxp-nn export`` rebuild the model.

    A non-finite epoch loss is never saved, so the last file stays the last good state.
    Writes are atomic: an interrupted save leaves the previous file intact.
    """

    def __init__(self, path: "str | os.PathLike", monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", *, extra: "dict[str, Any] | None" = None):
        self.path = str(path)
        self.extra = dict(extra or {})
        self.monitor, self.save_best_only = monitor, save_best_only
        self.better = _better(mode, monitor, type(self).__name__)
        self.best: float | None = None

    def on_epoch_end(self, state: FitState) -> None:
        loss = state.logs.get("loss")
        if not isinstance(loss, (int, float)) or not math.isfinite(loss):
            warnings.warn(f"ModelCheckpoint: epoch {state.epoch + 1} loss is {loss}; not saving "
                          f"(keeping {state.last_checkpoint!r})", RuntimeWarning, stacklevel=2)
            return
        if self.save_best_only:
            v = _monitored(state, self.monitor, "ModelCheckpoint")
            if v is None or (self.best is not None and not self.better(v, self.best, 0.0)):
                return
            self.best = v
        path = self.path.format(epoch=state.epoch + 1)
        if state.is_main:
            save(path, state.model, state.optimizer, epoch=state.epoch + 1, step=state.step,
                 history=state.history, loader=state.loader, **self.extra)
        state.last_checkpoint = path


class LRSchedule(Callback):
    """Set the learning rate from a per-epoch schedule ``epoch -> float`` at each epoch start.

    Per-step schedules need no callback: pass them as the optimizer's ``lr`` and the
    optimizer steps them itself (``schedule(step_count)``); combining both raises.
    The schedule position is the epoch number, which checkpoints store.
    """

    def __init__(self, schedule: Callable[[int], float]):
        if not callable(schedule):
            raise TypeError(f"LRSchedule: expected a callable epoch -> lr, got {type(schedule).__name__}")
        self.schedule = schedule

    def on_train_begin(self, state: FitState) -> None:
        for group in state.optimizer.param_groups:
            if callable(group["lr"]):
                raise ValueError("LRSchedule: the optimizer's lr is already a schedule, which steps itself "
                                 "every optimizer step; use one or the other")

    def on_epoch_begin(self, state: FitState) -> None:
        lr = float(self.schedule(state.epoch))
        for group in state.optimizer.param_groups:
            group["lr"] = lr
        state.logs["lr"] = lr


class NonFiniteGuard(Callback):
    """Stop as soon as a logged training loss is NaN or infinite.

    The check runs when ``fit`` reads the loss values (every ``log_every`` steps), so
    it adds no host syncs.  Checkpoints written before stay untouched
    (``ModelCheckpoint`` never saves a non-finite epoch), and with ``restore=True``
    the model and optimizer are reloaded from the last checkpoint of this run.

    Args:
        mode: "stop" (warn, return the history) or "raise" (:class:`NonFiniteLossError`).
        restore: reload the last good checkpoint into the model/optimizer.
    """

    def __init__(self, mode: str = "stop", restore: bool = True):
        if mode not in ("stop", "raise"):
            raise ValueError(f"NonFiniteGuard: `mode` must be 'stop' or 'raise', got {mode!r}")
        self.mode, self.restore = mode, restore

    def on_log(self, state: FitState, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            loss = row.get("loss")
            if isinstance(loss, float) and not math.isfinite(loss):
                break
        else:
            return
        msg = (f"NonFiniteGuard: training loss became {loss} at epoch {row['epoch']} step {row['step']} "
               f"(lr={row.get('lr')}); training stopped")
        if state.last_checkpoint:
            msg += f"; last good checkpoint {state.last_checkpoint!r} kept"
            if self.restore:
                load(state.last_checkpoint, state.model, state.optimizer)
                msg += " and restored into the model"
        else:
            msg += "; no checkpoint was written in this run"
        msg += ". Try a smaller learning rate or gradient clipping."
        state.stop("non_finite_loss", msg)
        if self.mode == "raise":
            raise NonFiniteLossError(msg)


TerminateOnNaN = NonFiniteGuard


class CSVLogger(Callback):
    """Append one row per epoch to a CSV file (header written when the file is new)."""

    def __init__(self, path: "str | os.PathLike", keys: "list[str] | None" = None):
        self.path, self.keys = Path(path), keys

    def on_epoch_end(self, state: FitState) -> None:
        if not state.is_main:
            return
        row = {k: v for k, v in state.logs.items() if not isinstance(v, (list, dict))}
        keys = self.keys or list(row)
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


class JSONLogger(Callback):
    """Rewrite a JSON file with the whole history after each epoch (atomically: through a
    temporary file that is removed if the write fails, e.g. on a full disk)."""

    def __init__(self, path: "str | os.PathLike"):
        self.path = Path(path)

    def _write(self, state: FitState) -> None:
        if not state.is_main:
            return
        text = json.dumps(state.history.to_dict(), indent=1).encode("utf-8")
        atomic_write(self.path, lambda f: f.write(text))  # a full disk leaves the old file and no temp

    def on_epoch_end(self, state: FitState) -> None:
        self._write(state)

    def on_train_end(self, state: FitState) -> None:
        self._write(state)
