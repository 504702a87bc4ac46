"""Classification metrics, computed on the device and read in one transfer.

A *metric* is an object with a ``name`` and ``batch(logits, labels) -> 0-d array``
returning the batch **sum** (e.g. the number of correct predictions) on the
logits' device; ``fit`` adds these sums up, reads them at the log points
together with the loss, and divides by the number of samples.  Nothing here
reads a value to the host.

The public helpers ``accuracy``, ``top_k_accuracy`` and ``confusion_matrix``
take logits (N, C) and integer labels (N,) of any backend and return host
Python floats / a NumPy matrix (one sync each; for evaluation, not hot loops).
"""
from __future__ import annotations

from typing import Any, Sequence

from array_api_compat import array_namespace, device as _device

from .._checks import positive_int
from .. import losses as _losses
from ..backend import backend_of

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "ConfusionMatrix", "get_metrics", "default_metrics",
           "accuracy", "top_k_accuracy", "confusion_matrix"]


class Metric:
    """Base class: ``batch`` returns a device sum; ``reduce`` turns the total into the value."""

    name = "metric"

    def batch(self, logits: Any, labels: Any) -> Any:
        raise NotImplementedError

    def check(self, logits: Any, labels: Any) -> None:
        """Raise a clear error when this metric cannot measure these outputs and targets
        (shapes and dtypes only: no host sync).  ``fit`` calls it before the first step."""

    def reduce(self, total: Any, count: int) -> Any:
        """``total``: the host (NumPy) sum over all batches."""
        return float(total) / max(count, 1)


class _Classification(Metric):
    """A metric of logits (N, C) against integer class ids (N,)."""

    def check(self, logits: Any, labels: Any) -> None:
        xp = array_namespace(logits)
        got = f"outputs of shape {tuple(logits.shape)} and targets of shape {tuple(labels.shape)} ({labels.dtype})"
        hint = ("; it measures classification (logits (N, C), class ids (N,)): for regression or "
                "multi-label targets pass metrics=() or a Metric of your own")
        if logits.ndim != 2 or tuple(labels.shape) != (logits.shape[0],):
            raise ValueError(f"{self.name}: expected outputs (N, C) and targets (N,), got {got}{hint}")
        if not xp.isdtype(labels.dtype, "integral"):
            raise TypeError(f"{self.name}: expected integer class ids as targets, got {got}{hint}")

    def batch(self, logits: Any, labels: Any) -> Any:
        self.check(logits, labels)
        return self._batch(logits, labels)

    def _batch(self, logits: Any, labels: Any) -> Any:
        raise NotImplementedError


class Accuracy(_Classification):
    """Fraction of samples whose arg-max logit is the label."""

    name = "accuracy"

    def _batch(self, logits: Any, labels: Any) -> Any:
        xp = array_namespace(logits)
        hit = xp.argmax(logits, axis=1) == xp.astype(labels, xp.int64)
        return xp.sum(xp.astype(hit, logits.dtype))


class TopKAccuracy(_Classification):
    """Fraction of samples whose label is among the ``k`` largest logits.

    rank(label) = #{classes with a strictly larger logit}; a hit when rank < k
    (ties count in the sample's favour, as ``torch.topk`` usually does).
    """

    def __init__(self, k: int = 5):
        self.k = positive_int(k, "k", "TopKAccuracy")
        self.name = f"top{k}_accuracy"

    def _batch(self, logits: Any, labels: Any) -> Any:
        xp = array_namespace(logits)
        c = logits.shape[1]
        classes = xp.arange(c, dtype=xp.int64, device=_device(logits))
        onehot = xp.astype(xp.astype(labels, xp.int64)[:, None] == classes[None, :], logits.dtype)
        true = xp.sum(logits * onehot, axis=1, keepdims=True)  # (N, 1) the label's logit
        rank = xp.sum(xp.astype(logits > true, xp.int64), axis=1)  # (N,)
        return xp.sum(xp.astype(rank < self.k, logits.dtype))


class ConfusionMatrix(_Classification):
    """C[i, j] = number of samples of class i predicted as j (rows: truth)."""

    name = "confusion_matrix"

    def _batch(self, logits: Any, labels: Any) -> Any:
        xp = array_namespace(logits)
        c = logits.shape[1]
        classes = xp.arange(c, dtype=xp.int64, device=_device(logits))
        truth = xp.astype(xp.astype(labels, xp.int64)[:, None] == classes[None, :], logits.dtype)
        pred = xp.astype(xp.argmax(logits, axis=1)[:, None] == classes[None, :], logits.dtype)
        return truth.T @ pred  # (C, C)

    def reduce(self, total: Any, count: int) -> Any:
        return total.round().astype("int64").tolist()


def get_metrics(specs: "Sequence[Any] | str | None") -> list[Metric]:
    """Metric objects from names: "accuracy", "top5_accuracy" / "top_k_accuracy" (k=5),
    "confusion_matrix", or Metric instances."""
    if specs is None:
        return []
    if isinstance(specs, (str, Metric)):
        specs = (specs,)
    out: list[Metric] = []
    for s in specs:
        if isinstance(s, Metric):
            out.append(s)
        elif s in ("accuracy", "acc"):
            out.append(Accuracy())
        elif s == "top_k_accuracy":
            out.append(TopKAccuracy(5))
        elif isinstance(s, str) and s.startswith("top") and s.endswith("_accuracy") and s[3:-9].isdigit():
            out.append(TopKAccuracy(int(s[3:-9])))
        elif s == "confusion_matrix":
            out.append(ConfusionMatrix())
        else:
            raise ValueError(f"metrics: unknown metric {s!r}; known: 'accuracy', 'top<k>_accuracy' (e.g. 'top5_accuracy'), "
                             "'top_k_accuracy', 'confusion_matrix', or a Metric instance")
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ValueError(f"metrics: listed twice: {names}")
    return out


def default_metrics(loss_fn: Any, loader: Any) -> tuple[str, ...]:
    """``fit``'s ``metrics="auto"``: ("accuracy",) when the loader holds class ids and the loss is
    not a regression or binary one (mse, binary cross-entropy), else ()."""
    fn = getattr(loss_fn, "func", loss_fn)  # functools.partial
    if fn in (_losses.mse, _losses.binary_cross_entropy_with_logits):
        return ()
    return ("accuracy",) if getattr(loader, "labels", False) else ()


def _read(logits: Any, labels: Any, metric: Metric) -> Any:
    return backend_of(logits).to_numpy(metric.batch(logits, labels))  # note: a host sync point


def accuracy(logits: Any, labels: Any) -> float:
    """Top-1 accuracy of ``logits`` (N, C) against class ids ``labels`` (N,)."""
    return float(_read(logits, labels, Accuracy())) / max(int(logits.shape[0]), 1)


def top_k_accuracy(logits: Any, labels: Any, k: int = 5) -> float:
    """Fraction of samples whose label is among the top-``k`` logits."""
    return float(_read(logits, labels, TopKAccuracy(k))) / max(int(logits.shape[0]), 1)


def confusion_matrix(logits: Any, labels: Any) -> Any:
    """(C, C) int64 host ``numpy.ndarray``, rows = true class, columns = predicted class."""
    return _read(logits, labels, ConfusionMatrix()).round().astype("int64")
