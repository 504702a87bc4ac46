"""evaluate: loss and metrics of a model in inference mode, read in one transfer."""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import numpy as np

from .. import losses as _losses
from ..data import DataLoader, as_loader
from .metrics import ConfusionMatrix, default_metrics, get_metrics

__all__ = ["evaluate", "check_labels", "fast_loss", "eval_loader", "LossFn"]

LossFn = Callable[[Any, Any], tuple[Any, Any]]


def eval_loader(data: Any, backend: Any, batch_size: int = 256, what: str = "val_data",
                owner: str = "fit") -> DataLoader:
    """A DataLoader as is, or an unshuffled one over an ``(x, y)`` host pair: class ids when
    ``y`` holds integers, float targets (``labels=False``, e.g. regression) otherwise."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and not _integral(data[1]):
        return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=False, backend=backend, labels=False)
    return as_loader(data, batch_size=batch_size, backend=backend, what=what, owner=owner)


def _integral(y: Any) -> bool:
    """Whether host targets ``y`` hold class ids.  Host-side only: a list is read by NumPy, an
    array by its dtype; anything else (e.g. a device array) goes on to the DataLoader, which
    refuses it by name without pulling it to the host."""
    if isinstance(y, (list, tuple)):
        return np.asarray(y).dtype.kind in "iub"
    kind = getattr(getattr(y, "dtype", None), "kind", None)
    return kind is None or kind in "iub"


def check_labels(loader: DataLoader, num_classes: int, what: str, owner: str = "fit") -> None:
    """Host-side range check of class ids against the model's output width (no device sync)."""
    if not loader.labels or loader.y.size == 0:
        return
    lo, hi = int(loader.y.min()), int(loader.y.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(f"{owner}: {what} labels are in [{lo}, {hi}] but the model outputs {num_classes} classes; "
                         f"labels must be in [0, {num_classes})")


def fast_loss(loss_fn: LossFn) -> LossFn:
    # Labels were range-checked on the host, so skip the per-step device check (a sync point).
    if loss_fn is _losses.softmax_cross_entropy:
        return functools.partial(_losses.softmax_cross_entropy, check_labels=False)
    return loss_fn


def evaluate(model: Any, data: Any, loss_fn: "LossFn | None" = None,
             metrics: "Sequence[Any] | str | None" = "auto", batch_size: int = 256) -> dict[str, Any]:
    """Loss and metrics of ``model`` (inference mode) on ``data`` = (x, y) host arrays or a DataLoader.

    ``metrics="auto"``: as :func:`~anyxp_nn.training.fit`'s (accuracy for class ids, none for regression).

    All batch results stay on the device and are read in one transfer at the end.
    """
    loader = eval_loader(data, model.backend, batch_size=batch_size, what="data", owner="evaluate")
    if loader.backend != model.backend:
        raise ValueError(f"evaluate: the data loader yields batches on {loader.backend.label!r} "
                         f"but the model is on {model.backend.label!r}")
    auto = isinstance(metrics, str) and metrics == "auto"
    ms = get_metrics(default_metrics(loss_fn, loader) if auto else metrics)
    xp = model.backend.xp
    loss_fn = fast_loss(loss_fn) if loss_fn is not None else None
    total, n, sizes = None, 0, None
    for xb, yb in loader:
        logits = model(xb)
        if sizes is None:
            if logits.ndim == 2:
                check_labels(loader, int(logits.shape[1]), "data", owner="evaluate")
            c = int(logits.shape[1]) if logits.ndim == 2 else 1
            sizes = [c * c if isinstance(m, ConfusionMatrix) else 1 for m in ms]
        parts = []
        if loss_fn is not None:
            loss, _ = loss_fn(logits, yb)
            parts.append(xp.reshape(xp.astype(loss, logits.dtype) * float(xb.shape[0]), (1,)))
        parts += [xp.reshape(m.batch(logits, yb), (-1,)) for m in ms]
        vec = xp.concat(parts)
        total = vec if total is None else total + vec
        n += int(xb.shape[0])
    host = model.backend.to_numpy(total).astype("float64")  # note: the one host sync of evaluate
    out: dict[str, Any] = {}
    i = 0
    if loss_fn is not None:
        out["loss"] = float(host[0]) / n
        i = 1
    for m, size in zip(ms, sizes):
        chunk = host[i:i + size]
        if isinstance(m, ConfusionMatrix):
            c = int(round(size ** 0.5))
            out[m.name] = m.reduce(chunk.reshape(c, c), n)
        else:
            out[m.name] = m.reduce(chunk[0], n)
        i += size
    return out
