"""Host-sync guard: count or forbid host<->device transfers and scalar reads in a block.

Every transfer the library makes goes through :meth:`Backend.asarray`
(``"to_device"``), :meth:`Backend.to_numpy` (``"to_host"``) or
:meth:`Backend.item` (``"item"``), which call the hooks in
``anyxp_nn.backend.transfer_hooks``.  :func:`sync_guard` installs one such hook::

    with nn.sync_guard() as syncs:            # count
        train_step(x, y)
    print(syncs.counts)                       # {'to_device': 1, 'to_host': 0, 'item': 1}

    with nn.sync_guard(forbid=True):          # raise SyncError at the first one
        y = model(x)

What the hooks cannot see: Python's ``float(a)``, ``int(a)``, ``bool(a)`` and
``if a > 0:`` on a device array read the value straight from the array, bypassing
the backend.  Library code must read scalars with ``Backend.item`` (or
``Backend.to_numpy``) so they are counted; on CuPy, ``forbid=True`` additionally
enters ``cupyx.allow_synchronize(False)`` and on CUDA PyTorch it sets
``torch.cuda.set_sync_debug_mode("error")``, which catch those direct reads too.
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from . import backend as _backend

__all__ = ["SyncError", "SyncCounter", "SyncEvent", "sync_guard", "count_syncs", "syncs_per_step", "KINDS"]

KINDS = ("to_device", "to_host", "item")


class SyncError(RuntimeError):
    """A host<->device transfer or scalar read inside ``sync_guard(forbid=True)``."""


@dataclass
class SyncEvent:
    kind: str       # "to_device", "to_host" or "item"
    backend: str    # backend label
    nbytes: int
    where: str      # "file:line in function" of the first caller outside the backend module

    def __str__(self) -> str:
        return f"{self.kind} ({self.nbytes} bytes) on {self.backend!r} at {self.where}"


@dataclass
class SyncCounter:
    """What a :func:`sync_guard` block saw.  ``counts`` maps each kind to its number of events."""
    counts: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    events: list[SyncEvent] = field(default_factory=list)
    result: Any = None   # set by :func:`count_syncs`

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __repr__(self) -> str:
        return f"SyncCounter({', '.join(f'{k}={v}' for k, v in self.counts.items())})"


def _where() -> str:
    f = sys._getframe(1)
    skip = (_backend.__file__, __file__)
    while f is not None and (f.f_code.co_filename in skip or "contextlib" in f.f_code.co_filename):
        f = f.f_back
    return "?" if f is None else f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}"


@contextlib.contextmanager
def sync_guard(forbid: bool = False, *, allow: tuple[str, ...] = (),
               backends: "tuple[str, ...] | None" = None) -> Iterator[SyncCounter]:
    """Count (default) or forbid host<->device transfers inside the block.

    Args:
        forbid: raise :class:`SyncError` at the first transfer whose kind is not in ``allow``,
            naming the kind, the backend and the calling line.
        allow: kinds (``"to_device"``, ``"to_host"``, ``"item"``) still permitted when forbidding.
        backends: count only these backend names/labels (default: all).  On NumPy host and
            device arrays are the same objects: ``asarray`` of a NumPy array moves nothing and
            is not counted, while ``to_numpy`` (a copy) and ``item`` are.

    Yields a :class:`SyncCounter`.
    """
    unknown = [k for k in allow if k not in KINDS]
    if unknown:
        raise ValueError(f"sync_guard: unknown kinds in `allow` {unknown}; expected some of {list(KINDS)}")
    counter = SyncCounter()

    def hook(kind: str, b: Any, nbytes: int) -> None:
        if backends is not None and b.name not in backends and b.label not in backends:
            return
        event = SyncEvent(kind, b.label, int(nbytes), _where())
        counter.counts[kind] = counter.counts.get(kind, 0) + 1
        counter.events.append(event)
        if forbid and kind not in allow:
            raise SyncError(f"host sync inside sync_guard(forbid=True): {event}. Move the transfer out "
                            f"of the block, or allow it with sync_guard(forbid=True, allow=({kind!r},))")

    _backend.transfer_hooks.append(hook)
    with contextlib.ExitStack() as stack:
        if forbid:
            _backend.native_sync_guards(stack)
        try:
            yield counter
        finally:
            _backend.transfer_hooks.remove(hook)


def count_syncs(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> SyncCounter:
    """Run ``fn(*args, **kwargs)`` and return what it transferred; its return value is ``.result``."""
    with sync_guard() as counter:
        counter.result = fn(*args, **kwargs)
    return counter


def syncs_per_step(step_fn: Callable[[], Any], n: int = 5, warmup: int = 1) -> dict[str, float]:
    """Average transfers per call of ``step_fn()`` over ``n`` calls after ``warmup`` uncounted ones.

    Returns ``{"to_device": ..., "to_host": ..., "item": ..., "total": ..., "seconds": ...}``
    (per step; ``seconds`` is the mean wall time including the counting overhead).
    For ``bench``: a training step should show exactly the syncs it means to,
    e.g. one ``to_device`` per batch and one ``item`` per logged loss.
    """
    if n < 1:
        raise ValueError(f"syncs_per_step: `n` must be >= 1, got {n}")
    for _ in range(warmup):
        step_fn()
    with sync_guard() as counter:
        t0 = time.perf_counter()
        for _ in range(n):
            step_fn()
        dt = time.perf_counter() - t0
    out = {k: counter.counts[k] / n for k in KINDS}
    out["total"] = counter.total / n
    out["seconds"] = dt / n
    return out
