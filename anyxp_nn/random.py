"""Reproducible randomness: one seed, bitwise-identical draws on every backend.

Design: every draw is made on the host by NumPy's PCG64 bit generator in
float64, rounded on the host to the requested dtype and then moved to the
backend in one transfer.  The same seed therefore yields the very same bits on
NumPy, ``array_api_strict``, PyTorch and CuPy, with no per-backend random code.
A counter-based generator in integer Array API ops would draw on the device, but
PyTorch on the CPU implements neither ``arange`` nor ``>>`` for uint32, so it
would need per-backend code; the host draw costs little next to a training step
(the measurements are in benchmarks/README.md, "Random draws on the host").

Every random API in the library takes ``rng=None | Generator``; None means the
default generator, seeded by :func:`manual_seed`.

Threads: the default generator is **per thread**.  ``default_generator`` is one
object whose draws and state belong to the calling thread, so two threads never
share (or tear) one stream:

* the main thread's generator is ``Generator(seed)`` after ``manual_seed(seed)``
  (``Generator(0)`` before any call), exactly as a single-threaded program sees it;
* any other thread's generator is seeded, at its first use after the latest
  ``manual_seed``, from ``(seed, thread index)`` via NumPy's ``SeedSequence``, where
  the thread index is :func:`thread_index`: a stable number derived from the thread's
  *name* (name your threads, e.g. ``Thread(name="worker-1")``, for runs that replay);
* ``manual_seed(seed)`` called inside a thread seeds that thread's generator with
  ``seed`` itself (so a thread that seeds and then trains draws what the main thread
  would), and makes every other thread re-derive its generator from the new seed.

So models built in two threads at once after ``manual_seed(s)`` get the same weights
as when the same threads run one after the other, and dropout in concurrent runs
equals the sequential runs.  Explicit ``Generator`` objects are not locked: give each
thread its own.
"""
from __future__ import annotations

import json
import threading
import zlib
from typing import Any, Sequence

import numpy as np

from ._checks import non_negative_int
from .backend import Backend, get_backend

__all__ = ["Generator", "manual_seed", "default_generator", "get_rng", "thread_index"]

Shape = "int | Sequence[int]"


class Generator:
    """A seeded random source whose draws land on any backend bit-for-bit equal.

    Args:
        seed: a non-negative integer.
    """

    def __init__(self, seed: int = 0):
        self.seed(seed)

    def seed(self, seed: int) -> None:
        """Re-seed in place."""
        non_negative_int(seed, "seed", "Generator", types=(int, np.integer))
        self._np = np.random.Generator(np.random.PCG64(int(seed)))

    # -- state -----------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """The generator state as a JSON-serialisable dict."""
        return json.loads(json.dumps(self._np.bit_generator.state))

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`get_state`."""
        if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
            raise ValueError(f"Generator.set_state: expected a PCG64 generator state dict, got {str(state)[:80]!r}")
        self._np.bit_generator.state = state

    # -- host draws (used by the data loader) ----------------------------------
    @property
    def host(self) -> np.random.Generator:
        """The underlying NumPy generator (host-only draws, e.g. shuffles)."""
        return self._np

    # -- backend draws ---------------------------------------------------------
    def _out(self, host: np.ndarray, dtype: Any, backend: "str | Backend | None") -> Any:
        b = get_backend(backend)
        dt = b.dtype(dtype)
        return b.asarray(host, dtype=dt)

    def uniform(self, shape: Shape, low: float = 0.0, high: float = 1.0, *,
                dtype: Any = None, backend: "str | Backend | None" = None) -> Any:
        """Uniform draws in [low, high), shape ``shape``, on ``backend``."""
        h = self._np.random(_shape(shape))
        if low != 0.0 or high != 1.0:
            h = low + (high - low) * h
        return self._out(h, dtype, backend)

    def normal(self, shape: Shape, mean: float = 0.0, std: float = 1.0, *,
               dtype: Any = None, backend: "str | Backend | None" = None) -> Any:
        """Gaussian draws N(mean, std^2)."""
        h = self._np.standard_normal(_shape(shape))
        if std != 1.0 or mean != 0.0:
            h = mean + std * h
        return self._out(h, dtype, backend)

    def bernoulli(self, shape: Shape, p: float, *, backend: "str | Backend | None" = None) -> Any:
        """Boolean array, True with probability ``p``."""
        return get_backend(backend).asarray(self._np.random(_shape(shape)) < p)

    def integers(self, low: int, high: int, shape: Shape = (), *,
                 backend: "str | Backend | None" = None, dtype: Any = "int64") -> Any:
        """Integers in [low, high)."""
        h = self._np.integers(low, high, size=_shape(shape), dtype=np.int64)
        return self._out(h, dtype, backend)

    def permutation(self, n: int) -> np.ndarray:
        """A host permutation of ``range(n)`` (shuffles happen where the data is: the host)."""
        return self._np.permutation(n)

    def host_uniform(self, shape: Shape, low: float = 0.0, high: float = 1.0) -> np.ndarray:
        """Float64 uniform draws kept on the host (augmentation parameters)."""
        return self._np.uniform(low, high, size=_shape(shape))

    def host_normal(self, shape: Shape, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
        """Float64 Gaussian draws kept on the host."""
        return self._np.normal(mean, std, size=_shape(shape))

    def __repr__(self) -> str:
        return f"Generator(pcg64 state={self.get_state()['state']['state']})"


def _shape(shape: Shape) -> tuple[int, ...]:
    return (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)


def thread_index(thread: "threading.Thread | None" = None) -> int:
    """The index mixed into a non-main thread's default seed: 0 for the main thread,
    else a CRC-32 of the thread's name plus 1 (stable across runs and processes)."""
    thread = thread or threading.current_thread()
    if thread is threading.main_thread():
        return 0
    return zlib.crc32(thread.name.encode("utf-8")) + 1


_seed = 0          # the process seed: the latest manual_seed's argument
_generation = 0    # bumped by every manual_seed; threads re-derive their generator when it changed
_local = threading.local()


def _thread_numpy_generator() -> np.random.Generator:
    gen = getattr(_local, "np", None)
    if gen is None or _local.generation != _generation:
        index = thread_index()
        bits = np.random.PCG64(_seed if index == 0 else np.random.SeedSequence([_seed, index]))
        gen = _local.np = np.random.Generator(bits)
        _local.generation = _generation
    return gen


class _ThreadDefault(Generator):
    """The default generator: each thread draws from (and saves/restores) its own stream."""

    def __init__(self) -> None:
        pass

    @property
    def _np(self) -> np.random.Generator:  # type: ignore[override]
        return _thread_numpy_generator()

    @_np.setter
    def _np(self, gen: np.random.Generator) -> None:
        _local.np, _local.generation = gen, _generation

    def __repr__(self) -> str:
        return f"default_generator(thread {threading.current_thread().name!r}: {super().__repr__()})"


default_generator: Generator = _ThreadDefault()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (used wherever ``rng=None``); returns it.

    Sets the process seed: the calling thread draws from ``Generator(seed)``, every other
    thread from a generator derived from ``(seed, thread_index())`` (see the module docstring).
    """
    global _seed, _generation
    Generator(seed)  # validates the seed
    _seed, _generation = int(seed), _generation + 1
    default_generator.seed(seed)
    return default_generator


def get_rng(rng: "Generator | int | None") -> Generator:
    """``rng`` itself, a new Generator for an int seed, or the default generator."""
    if rng is None:
        return default_generator
    if isinstance(rng, Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return Generator(int(rng))
    raise TypeError(f"get_rng: `rng` must be None, an int seed or an anyxp_nn.random.Generator, got {type(rng).__name__}")
