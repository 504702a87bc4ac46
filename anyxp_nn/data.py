"""DataLoader: host NumPy data -> shuffled device batches, moved in one place.

The loader is the only place where training data crosses from the host to the
backend.  Two modes:

* ``on_device=True``: the whole dataset is moved once; each epoch moves one
  permutation (``n`` int64) and batches are gathered on the device with
  ``xp.take``.
* ``on_device=False``: each batch is gathered on the host (NumPy fancy
  indexing) and moved as one array per tensor; with ``prefetch=True`` a
  background thread prepares batch ``k+1`` while the model works on batch ``k``.

``on_device="auto"`` keeps the dataset on the device when it is smaller than
``device_budget_bytes`` (default 512 MiB); on NumPy that costs nothing, host and
device being the same memory.

Shuffles come from ``anyxp_nn.random.get_rng(rng).permutation(n)`` on the host,
so the same seed gives the same batches on every backend.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import numpy as np

from ._checks import dtype_name, positive_int
from .backend import Backend, get_backend
from .random import Generator, get_rng

__all__ = ["DataLoader", "as_loader"]

Augment = Callable[..., Any]


def _host(a: Any, what: str) -> np.ndarray:
    if isinstance(a, np.ndarray):
        return a
    if isinstance(a, (list, tuple)):
        return np.asarray(a)
    raise TypeError(f"DataLoader: `{what}` must be a host numpy.ndarray, got {type(a).__name__} "
                    "(the loader moves data to the backend itself; pass nn.to_numpy(a))")


class DataLoader:
    """Iterate over ``(xb, yb)`` batches on a backend.

    Args:
        x: (N, ...) host array of inputs; cast to ``dtype`` (float32 by default).
        y: (N,) integer class ids (``labels=True``), or (N, ...) float targets
            (``labels=False``).
        batch_size: samples per batch.
        shuffle: draw a fresh permutation each epoch from ``rng``.
        drop_last: drop the last, smaller batch.
        augment: ``augment(xb, rng=...)`` applied to every device batch (e.g. an
            ``anyxp_nn.augment`` transform); gets this loader's generator.
        backend: where batches go (default: the process default backend).
        rng: ``None`` (the default generator), an int seed or a Generator.
        on_device: ``"auto"`` | ``True`` | ``False`` (see the module docstring).
        prefetch: prepare the next batch in a background thread (``on_device=False`` only).
        labels: y holds class ids (checked to be integers, and < ``num_classes`` if given).
        num_classes: optional number of classes; labels outside ``[0, num_classes)`` raise.
        dtype: dtype of the x batches.
        shard: ``(rank, size)`` for data-parallel training: this loader takes positions
            rank, rank + size, ... of each epoch's order (the same seed on every rank gives
            the same order), after padding the order to a multiple of ``size`` by repeating
            its start (torch's ``DistributedSampler``), so every rank has ceil(k / size)
            samples (k = ``samples_per_epoch``, N by default) and the same number of batches.
        replacement: draw each epoch's indices uniformly *with* replacement (needs ``shuffle=True``;
            torch's ``RandomSampler(replacement=True)``): a sample may appear twice in an epoch,
            another not at all.
        samples_per_epoch: indices per epoch (default: N, the dataset size), what torch's
            ``RandomSampler(num_samples=)`` sets (needs ``shuffle=True``; ``loader.num_samples``
            stays N, the dataset size).  Without replacement the epoch is
            ``samples_per_epoch // N`` whole permutations followed by the start of one more, as torch's.
    """

    def __init__(self, x: Any, y: Any, batch_size: int = 64, shuffle: bool = True,
                 drop_last: bool = False, augment: "Augment | None" = None,
                 backend: "str | Backend | None" = None, rng: "Generator | int | None" = None, *,
                 on_device: "str | bool" = "auto", prefetch: bool = False, labels: bool = True,
                 num_classes: "int | None" = None, dtype: Any = "float32",
                 device_budget_bytes: int = 512 * 2**20, shard: "tuple[int, int] | None" = None,
                 replacement: bool = False, samples_per_epoch: "int | None" = None):
        x, y = _host(x, "x"), _host(y, "y")
        self.shard = _check_shard(shard)
        positive_int(batch_size, "batch_size", "DataLoader", types=(int, np.integer))
        if samples_per_epoch is not None:
            positive_int(samples_per_epoch, "samples_per_epoch", "DataLoader", types=(int, np.integer))
        if x.ndim < 1 or y.ndim < 1:
            raise ValueError(f"DataLoader: x and y need a sample axis, got shapes {x.shape} and {y.shape}")
        if len(x) != len(y):
            raise ValueError(f"DataLoader: x has {len(x)} samples but y has {len(y)}; "
                             "they must have the same length")
        if len(x) == 0:
            raise ValueError("DataLoader: the dataset is empty (0 samples)")
        for flag, value in (("shuffle", shuffle), ("drop_last", drop_last), ("prefetch", prefetch),
                            ("labels", labels), ("replacement", replacement)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"DataLoader: `{flag}` must be True or False, got {value!r}")
        if x.dtype.kind not in "fiub":
            raise TypeError(f"DataLoader: x must be numeric, got dtype {x.dtype}")
        if x.dtype.kind == "f":
            bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise ValueError(f"DataLoader: x contains non-finite values (NaN or inf) in "
                                 f"{int(bad.sum())} sample(s), first at index {first}")
        if labels:
            if y.dtype.kind not in "iu":
                raise TypeError(f"DataLoader: labels y must be integers (class ids), got dtype {y.dtype}; "
                                "cast with y.astype(np.int64), or pass labels=False for float targets")
            if y.ndim != 1:
                raise ValueError(f"DataLoader: labels y must be 1-D (N,), got shape {y.shape}")
            lo, hi = int(y.min()), int(y.max())
            if hi > np.iinfo(np.int64).max:
                raise ValueError(f"DataLoader: labels must fit in int64 (class ids), got a maximum of {hi}")
            if lo < 0 or (num_classes is not None and hi >= num_classes):
                top = f"{num_classes}" if num_classes is not None else "num_classes"
                raise ValueError(f"DataLoader: labels must be in [0, {top}), got values in [{lo}, {hi}]")
            y = y.astype(np.int64, copy=False)
        else:
            if y.dtype.kind not in "fiub":
                raise TypeError(f"DataLoader: y must be numeric, got dtype {y.dtype}")
            if y.dtype.kind == "f" and not np.isfinite(y).all():
                raise ValueError("DataLoader: y contains non-finite values (NaN or inf)")
            y = _cast(y, np.dtype(np.float32), "y") if y.dtype.kind == "f" else y
        if (replacement or samples_per_epoch is not None) and not shuffle:
            what = "`replacement=True`" if replacement else f"`samples_per_epoch={samples_per_epoch}`"
            raise ValueError(f"DataLoader: {what} draws a random order, so it needs shuffle=True "
                             "(torch: RandomSampler); got shuffle=False")
        if on_device not in ("auto", True, False):
            raise ValueError(f"DataLoader: `on_device` must be 'auto', True or False, got {on_device!r}")
        if augment is not None and not callable(augment):
            raise TypeError(f"DataLoader: `augment` must be callable augment(xb, rng=...), "
                            f"got {type(augment).__name__}")

        self.backend = get_backend(backend)
        self.rng = get_rng(rng)
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self.augment, self.prefetch = augment, prefetch
        self.labels, self.num_classes = labels, num_classes
        self.replacement = bool(replacement)
        self.samples_per_epoch = int(samples_per_epoch) if samples_per_epoch is not None else len(x)
        self.dtype = self.backend.dtype(dtype)
        self.x = _cast(x, _host_dtype(self.dtype), "x")
        self.y = _cast(y, y.dtype, "y") if y.dtype.kind == "f" else y
        self.epoch = 0
        if on_device == "auto":
            on_device = self.x.nbytes + self.y.nbytes <= device_budget_bytes
        self.on_device = bool(on_device)
        self._xd = self._yd = None
        if self.on_device:  # one transfer for the whole dataset
            self._xd = self.backend.asarray(self.x, dtype=self.dtype)
            self._yd = self.backend.asarray(self.y)

    # -- sizes -------------------------------------------------------------------
    @property
    def num_samples(self) -> int:
        return len(self.x)

    def __len__(self) -> int:
        n, b = self.samples_per_epoch, self.batch_size
        if self.shard is not None:
            n = -(-n // self.shard[1])  # samples per rank
        return n // b if self.drop_last else -(-n // b)

    def __repr__(self) -> str:
        extra = "" if self.samples_per_epoch == len(self.x) else f", samples_per_epoch={self.samples_per_epoch}"
        extra += ", replacement=True" if self.replacement else ""
        return (f"DataLoader(n={len(self.x)}, batch_size={self.batch_size}, shuffle={self.shuffle}{extra}, "
                f"backend={self.backend.label!r}, on_device={self.on_device})")

    # -- iteration ---------------------------------------------------------------
    def _order(self) -> np.ndarray:
        """This epoch's sample indices (this rank's share of them under ``shard``)."""
        n, k = len(self.x), self.samples_per_epoch
        if not self.shuffle:
            order = np.arange(n)
        elif self.replacement:  # k uniform draws from [0, n): torch's RandomSampler(replacement=True)
            order = self.rng.host.integers(0, n, size=k, dtype=np.int64)
        elif k == n:
            order = self.rng.permutation(n)
        else:  # k // n whole permutations, then the start of one more (torch's RandomSampler)
            perms = [self.rng.permutation(n) for _ in range(-(-k // n))]
            order = np.concatenate(perms)[:k]
        if self.shard is None:
            return order
        rank, size = self.shard
        padded = np.resize(order, -(-len(order) // size) * size)  # repeats the start: DistributedSampler's padding
        return padded[rank::size]

    def _slices(self, n: int) -> list[tuple[int, int]]:
        b = self.batch_size
        stop = n - n % b if self.drop_last else n
        return [(i, min(i + b, n)) for i in range(0, stop, b)]

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        order = self._order()
        self.epoch += 1
        spans = self._slices(len(order))
        if self.on_device:
            batches = self._device_batches(order, spans)
        elif self.prefetch:
            batches = _prefetched(self._host_batches(order, spans))
        else:
            batches = self._host_batches(order, spans)
        for xb, yb in batches:
            if self.augment is not None:
                xb = self.augment(xb, rng=self.rng)
            yield xb, yb

    def _device_batches(self, order: np.ndarray, spans: list) -> Iterator[tuple[Any, Any]]:
        xp, b = self.backend.xp, self.backend
        if not self.shuffle and self.shard is None:
            for i, j in spans:
                yield self._xd[i:j, ...], self._yd[i:j, ...]  # y may be (N, k) float targets
            return
        perm = b.asarray(order.astype(np.int64))  # one (N,) transfer per epoch
        for i, j in spans:
            idx = perm[i:j]
            yield xp.take(self._xd, idx, axis=0), xp.take(self._yd, idx, axis=0)

    def _host_batches(self, order: np.ndarray, spans: list) -> Iterator[tuple[Any, Any]]:
        b = self.backend
        for i, j in spans:
            idx = order[i:j]
            yield b.asarray(self.x[idx], dtype=self.dtype), b.asarray(self.y[idx])

    # -- state (for checkpoints) -------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state: epoch counter and the generator state."""
        return {"epoch": self.epoch, "rng": self.rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or "rng" not in state:
            raise ValueError(f"DataLoader.load_state_dict: expected a dict with 'epoch' and 'rng', got {state!r:.80}")
        self.rng.set_state(state["rng"])
        self.epoch = int(state.get("epoch", 0))


def _cast(a: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """``a`` as ``dtype``, refusing values the dtype cannot hold (1e39 -> inf in float32, 300 -> 44 in uint8)."""
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, by name
        out = a.astype(dtype, copy=False)
    if out is a or a.size == 0:
        return out
    if dtype.kind == "f":
        ok = bool(np.isfinite(out).all())
        top = np.finfo(dtype).max
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        ok, top = bool(a.min() >= info.min and a.max() <= info.max), info.max
    else:
        ok, top = True, None
    if not ok:
        big = float(np.max(np.abs(a.astype(np.float64)))) if a.dtype.kind in "fiu" else None
        raise ValueError(f"DataLoader: `{what}` holds values up to {big:.4g} in magnitude, which overflow "
                         f"{dtype} (largest {top:.4g}); rescale the data or pass dtype='float64'")
    return out


def _check_shard(shard: Any) -> "tuple[int, int] | None":
    if shard is None:
        return None
    ok = isinstance(shard, (tuple, list)) and len(shard) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard)
    if not ok or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"DataLoader: `shard` must be (rank, size) with 0 <= rank < size, got {shard!r}")
    return int(shard[0]), int(shard[1])


def _host_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype matching a backend dtype object (torch.float32, array_api_strict.float32, ...)."""
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.dtype(dtype_name(dtype))


def _prefetched(gen: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Run ``gen`` one item ahead in a daemon thread (the host->device copy overlaps compute)."""
    q: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in gen:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    t = threading.Thread(target=work, daemon=True, name="anyxp-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock the producer so it can exit
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.01)


def as_loader(data: Any, batch_size: int = 256, backend: "str | Backend | None" = None,
              what: str = "val_data", owner: str = "fit") -> DataLoader:
    """A DataLoader as is, or an ``(x, y)`` host pair wrapped in an unshuffled one."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return DataLoader(data[0], data[1], batch_size=batch_size, shuffle=False, backend=backend)
    raise TypeError(f"{owner}: `{what}` must be an (x, y) pair of host arrays or a DataLoader, got {type(data).__name__}")
