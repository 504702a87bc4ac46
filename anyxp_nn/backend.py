"""Backends: the one module that imports array libraries directly.

A :class:`Backend` pairs an array-api-compat namespace (``xp``) with a device.
Everything else in anyxp_nn reaches arrays only through ``backend.xp`` or
``array_namespace(x)``, so the same code runs on NumPy, ``array_api_strict``,
PyTorch, CuPy and JAX.

Names: ``"numpy"``, ``"array_api_strict"``, ``"torch"``, ``"cupy"``, ``"jax"``.
A device may follow a colon: ``"torch:cuda"``, ``"cupy:1"``,
``"array_api_strict:device1"`` (a non-default device that catches arrays
created without ``device=``).

Every host<->device transfer and scalar read goes through :meth:`Backend.asarray`,
:meth:`Backend.to_numpy` or :meth:`Backend.item`, which report to the counters in
:mod:`anyxp_nn.backend` (``transfer_hooks``) so a test can count or forbid them.
"""
from __future__ import annotations

import importlib
import math
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numpy as np

__all__ = [
    "Backend", "available_backends", "get_backend", "set_backend", "backend_report",
    "backend_of", "to_numpy", "all_finite", "native_sync_guards", "BACKEND_NAMES",
]

BACKEND_NAMES = ("numpy", "array_api_strict", "torch", "cupy", "jax")

#: Callables ``hook(kind, backend, nbytes)`` run on every transfer; ``kind`` is
#: ``"to_device"``, ``"to_host"`` or ``"item"``.  Used by the host-sync guard.
transfer_hooks: list[Callable[[str, "Backend", int], None]] = []

_default_name: str | None = None
_cache: dict[str, "Backend"] = {}


def _notify(kind: str, backend: "Backend", nbytes: int) -> None:
    for hook in list(transfer_hooks):
        hook(kind, backend, nbytes)


class Backend:
    """An array namespace on one device.

    Attributes:
        name: library name, e.g. ``"torch"``.
        label: name plus device when not the default, e.g. ``"torch:cuda"``.
        xp: the array-api-compat namespace.
        device: the device object arrays are created on.
        version: the library's version string.
    """

    def __init__(self, name: str, xp: Any, device: Any, version: str, label: str):
        self.name = name
        self.xp = xp
        self.device = device
        self.version = version
        self.label = label
        #: How many host threads an optimizer step may split its large updates over
        #: (:mod:`anyxp_nn.optim.blocks`): 1, i.e. off.  NumPy's ufuncs (also behind
        #: array_api_strict) run on one core and release the GIL, so a large update can run in
        #: row blocks on host threads, bit-identical to one piece; inside training steps that
        #: measured slower than one thread (the step's BLAS threads are still about, and the
        #: blocks must be put back together; benchmarks/README.md).  Assign an int to turn it on
        #: where it measures faster.
        self.elementwise_threads = 1
        #: Working-set size (bytes) for cache-blocked loops on a CPU (e.g. Conv2D's im2col
        #: in batch chunks that stay in cache); None on GPUs, which want one big kernel.
        self.cache_block_bytes = None if _is_gpu(name, device) else 4 << 20
        #: Bytes of reusable work buffers kept per thread by :meth:`scratch` (0: none).  On a
        #: CPU, freeing and re-allocating multi-MB temporaries every step makes the C allocator
        #: hand memory back to the OS and fault it in again (benchmarks/README.md measured the
        #: cost); GPU libraries pool device memory themselves.
        self.scratch_bytes = 0 if _is_gpu(name, device) else 64 << 20
        self._scratch = threading.local()
        #: Let :meth:`cpu_threads` shrink the BLAS / intra-op thread pool to the cores other
        #: processes leave free (CPU backends).  False: it never touches a thread pool.
        self.adapt_threads = not _is_gpu(name, device) and name in ("numpy", "array_api_strict", "torch")
        #: Let :meth:`parallel_map` run independent pieces of one op (Conv2D's batch chunks) on
        #: host threads, each with a one-thread BLAS.  Off: on a quiet 2-core machine it was no
        #: faster than one thread running the chunks with a two-thread BLAS, also with the BLAS
        #: pool held at one thread for the whole step (benchmarks/README.md); an option for
        #: NumPy-based backends on machines where it measures faster.
        self.parallel_chunks = False

    # -- identity -----------------------------------------------------------
    def __repr__(self) -> str:
        return f"Backend({self.label!r}, device={self.device!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Backend) and self.label == other.label

    def __hash__(self) -> int:
        return hash(self.label)

    def owns(self, a: Any) -> bool:
        """True when ``a`` is an array of this namespace on this device."""
        from array_api_compat import array_namespace, device
        try:
            return array_namespace(a) is self.xp and device(a) == self.device
        except TypeError:
            return False

    # -- dtypes -------------------------------------------------------------
    def dtype(self, spec: Any) -> Any:
        """The namespace's dtype for a name (``"float32"``) or a dtype object."""
        if spec is None:
            return self.xp.float32
        if isinstance(spec, str):
            if not hasattr(self.xp, spec):
                raise ValueError(f"unknown dtype {spec!r} for backend {self.label!r}")
            return getattr(self.xp, spec)
        for name in ("float16", "float32", "float64", "int32", "int64", "uint8", "bool"):
            obj = getattr(self.xp, name, None)
            if obj is not None and spec == obj:
                return obj
        name = getattr(spec, "name", None) or str(spec).rsplit(".", 1)[-1]
        return self.dtype(name)

    # -- transfers ----------------------------------------------------------
    def asarray(self, obj: Any, dtype: Any = None, copy: bool | None = None) -> Any:
        """Host data or another backend's array -> an array of this backend and device."""
        if self.owns(obj):
            if dtype is None or obj.dtype == self.dtype(dtype):
                return obj
            return self.xp.astype(obj, self.dtype(dtype))
        host = to_numpy(obj) if _is_foreign_array(obj) else np.asarray(obj)
        if dtype is not None:
            host = host.astype(_numpy_dtype(self.dtype(dtype)), copy=False)
        _notify("to_device", self, host.nbytes)
        if self.name == "numpy":
            return np.array(host, copy=True) if copy else host
        return self.xp.asarray(host, device=self.device)

    def to_numpy(self, a: Any) -> np.ndarray:
        """A host ``numpy.ndarray`` copy of ``a`` (a sync point on GPUs)."""
        out = _to_numpy(a)
        _notify("to_host", self, out.nbytes)
        return out

    def item(self, a: Any) -> float:
        """Python float of a 0-d array.  Note: a CPU-GPU sync point."""
        out = float(_to_numpy(a))
        _notify("item", self, 8)
        return out

    def synchronize(self) -> None:
        """Wait for queued device work (no-op on CPU)."""
        if self.name == "cupy":
            import cupy
            cupy.cuda.get_current_stream().synchronize()
        elif self.name == "torch" and str(self.device).startswith("cuda"):
            import torch
            torch.cuda.synchronize(self.device)

    def scratch(self, key: Any, shape: tuple[int, ...], dtype: Any, zero: bool = False) -> Any:
        """A work buffer of this ``shape`` and ``dtype`` that is reused by later calls with the same ``key``.

        For temporaries consumed before the next call with the same key, in the same thread
        (buffers are per thread): an im2col patch matrix used by the GEMM right after it.  The
        contents are what the last user left; with ``zero=True`` the buffer is zero when first
        made, for callers that write the same cells every time and need the rest to stay zero
        (the key must then say which cells, e.g. include the padding).  Least recently used
        buffers are dropped beyond ``scratch_bytes``; a buffer larger than that is never kept.
        """
        shape = tuple(int(d) for d in shape)
        store = self._scratch
        if not hasattr(store, "pool"):
            store.pool, store.total = OrderedDict(), 0  # key -> (buffer, bytes), least recent first
        k = (key, shape, dtype, zero)
        hit = store.pool.pop(k, None)
        if hit is None:
            xp = self.xp
            info = xp.finfo(dtype) if xp.isdtype(dtype, "real floating") else xp.iinfo(dtype)
            nbytes = math.prod(shape) * info.bits // 8
            make = xp.zeros if zero else xp.empty
            if nbytes > self.scratch_bytes:
                return make(shape, dtype=dtype, device=self.device)
            hit = (make(shape, dtype=dtype, device=self.device), nbytes)
            store.total += nbytes
        store.pool[k] = hit
        while store.total > self.scratch_bytes:
            store.total -= store.pool.popitem(last=False)[1][1]
        return hit[0]

    def zero_for_max(self, x: Any, cap: int = 1 << 16) -> Any:
        """What ``maximum(x, .)`` compares with in ``layers.ReLU``: the scalar 0.0, or on NumPy an
        array of zeros over x's trailing axes (the last one, and more while they hold <= ``cap``
        elements and stay one contiguous block of x, so that the result keeps x's memory order).

        NumPy's ``maximum`` has a vector loop for two arrays but none for an array and a scalar
        (benchmarks/README.md); the values are the same bit for bit.  The scalar stays where the
        zeros would not pay: other backends (their scalar loops are fast), a last axis longer
        than ``cap``, and a last axis that is not x's innermost in memory (NHWC memory seen as
        NCHW), where the result would also lose x's memory order."""
        if self.name != "numpy" or x.ndim == 0 or x.shape[-1] > cap:
            return 0.0
        if x.shape[-1] > 1 and x.strides[-1] != x.itemsize:  # the last axis is not the innermost
            return 0.0
        k, size = 1, x.shape[-1]  # trailing axes that are one contiguous block of x: x keeps its order
        while k < x.ndim and size * x.shape[-k - 1] <= cap and (x.shape[-k - 1] == 1
                                                               or x.strides[-k - 1] == size * x.itemsize):
            size *= x.shape[-k - 1]
            k += 1
        return self.xp.zeros(tuple(x.shape[-k:]), dtype=x.dtype, device=self.device)

    @contextmanager
    def cpu_threads(self) -> Iterator[int]:
        """Run the enclosed work with no more compute threads than there are free cores.

        Why: NumPy's OpenBLAS (and PyTorch's OpenMP pool) split even small GEMMs over all
        cores, and a worker thread spins for a while after each one.  When another process
        keeps a core busy, every parallel call waits for the worker that shares a core with it,
        a scheduler time slice per GEMM, so small matmuls and whole training steps slow down
        many times over (measured in benchmarks/README.md).  One thread per free core avoids the wait.

        What: on entry the BLAS pool (NumPy, array_api_strict: via threadpoolctl) or PyTorch's
        intra-op pool is lowered to ``min(its current size, free cores)``, where free cores =
        usable cores minus the CPU time other processes took in the last ~0.25 s (from
        ``/proc/stat`` and this process's own CPU time; elsewhere nothing changes).  On exit
        the previous sizes come back, so the user's own code outside the scope keeps its thread
        pools (never raised above what the user set).  A no-op on GPUs and when
        ``adapt_threads`` is False.  Costs a few microseconds; scopes nest.  The pools are
        process-wide: do not run scopes from several Python threads at once.

        Yields the number of threads in use.  The training entry points (``fit``, the
        benchmarks) run each step in a scope via :meth:`cpu_threads_each`; hand-written loops
        can do the same: ``for xb, yb in backend.cpu_threads_each(loader): ...``.

        Host memory, once per process on the first scope (glibc only): one 30 MiB block is
        allocated and freed, so that glibc raises its mmap threshold to that size (and its trim
        threshold to twice it) by its own adaptive rule, as after any large free.  Without it a
        step's freed activations (e.g. the MNIST CNN's 6 MiB feature maps) were handed back to
        the OS at the end of each step and faulted in again in the next (measured in
        benchmarks/README.md, "Host memory: page faults every step"); the peak memory is unchanged.
        """
        if self.adapt_threads:
            _settle_allocator()
        pools = _thread_pools(self.name) if self.adapt_threads else []
        before = [get() for get, _ in pools]
        free = max(1, int(_core_meter.free_cores() + 0.5)) if pools else 0
        changed = [(set_, n) for (get, set_), n in zip(pools, before) if n > free]
        for set_, _ in changed:
            set_(free)
        scope: dict = {"held": None}  # BLAS sizes before parallel_map held the pools at one thread
        scopes = _open_scopes()
        scopes.append(scope)
        try:
            yield min([free] + before) if pools else 0
        finally:
            scopes.remove(scope)  # its own, even when scopes close out of order
            if scope["held"] is not None:
                for (_, set_), n in zip(_thread_pools(self.name), scope["held"]):
                    set_(n)
            for set_, n in changed:
                set_(n)

    def host_threads(self) -> int:
        """Python threads :meth:`parallel_map` would use now: the BLAS pool's size (as the user,
        or :meth:`cpu_threads`, left it) capped by the free cores; 1 where ``parallel_chunks`` is off."""
        pools = _thread_pools(self.name) if self.parallel_chunks else []
        if not pools:
            return 1
        scopes = _open_scopes()
        held = scopes[-1]["held"] if scopes else None
        sizes = held if held is not None else [get() for get, _ in pools]
        free = max(1, int(_core_meter.free_cores() + 0.5)) if self.adapt_threads else self.usable_cores
        return max(1, min([free] + sizes))

    def parallel_map(self, fn: Callable[[Any], Any], items: list) -> list:
        """``[fn(item) for item in items]``, on :meth:`host_threads` Python threads when that is > 1.

        For pieces that release the GIL (NumPy copies, ufuncs and GEMMs on disjoint slices).
        While they run, the BLAS pool is held at one thread (each piece is one core's work):
        inside a :meth:`cpu_threads` scope until the scope ends (switching the pool and waking
        its idle workers around every call cost more than the threads gained), outside one
        until the call returns.  Results come back in ``items`` order, so reductions over them
        are deterministic.  Work buffers from :meth:`scratch` are per thread.
        """
        n = min(self.host_threads(), len(items))
        if n < 2:
            return [fn(item) for item in items]
        pools = _thread_pools(self.name)
        scopes = _open_scopes()
        scope = scopes[-1] if scopes else None
        restore = None
        if scope is None or scope["held"] is None:
            before = [get() for get, _ in pools]
            for (_, set_), k in zip(pools, before):
                if k != 1:
                    set_(1)
            if scope is not None:
                scope["held"] = before
            else:
                restore = before
        try:
            return list(_executor(n).map(fn, items))
        finally:
            if restore is not None:
                for (_, set_), k in zip(pools, restore):
                    set_(k)

    @property
    def usable_cores(self) -> int:
        return _core_meter.usable

    def cpu_threads_each(self, items: Iterable[Any]) -> Iterator[Any]:
        """Yield each item of ``items`` with the consumer's work on it inside :meth:`cpu_threads`
        (re-sized per item, restored between items and at the end, also after a ``break``)."""
        for item in items:
            with self.cpu_threads():
                yield item

    def memory_info(self) -> "dict[str, int] | None":
        """Device memory in use, for progress displays; None on CPU backends.

        CuPy: ``{"pool_used_bytes", "pool_total_bytes"}`` of the default memory pool;
        CUDA PyTorch: ``{"used_bytes", "reserved_bytes"}`` of its caching allocator.
        """
        if self.name == "cupy":
            import cupy
            pool = cupy.get_default_memory_pool()
            return {"pool_used_bytes": int(pool.used_bytes()), "pool_total_bytes": int(pool.total_bytes())}
        if self.name == "torch" and str(self.device).startswith("cuda"):
            import torch
            return {"used_bytes": int(torch.cuda.memory_allocated(self.device)),
                    "reserved_bytes": int(torch.cuda.memory_reserved(self.device))}
        return None


class _CoreMeter:
    """Cores that other processes leave free, from ``/proc/stat`` deltas minus this process's CPU time.

    Re-sampled at most every ``interval`` seconds; the first sample is taken when the module is
    imported, so the first estimate is ready ``first_interval`` seconds later (well before a first
    training step, usually).  ``free_cores()`` returns the usable core count where ``/proc/stat``
    is missing (non-Linux) and before the first estimate.
    """
    interval = 0.25
    first_interval = 0.05

    def __init__(self) -> None:
        self.usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.free = float(self.usable)
        self._measured = False
        self._last: "tuple[float, tuple[int, int, int], float] | None" = None
        self._lock = threading.Lock()
        self.free_cores()  # the first sample

    @staticmethod
    def _stat() -> "tuple[int, int, int] | None":
        """(busy jiffies, all jiffies, host cores) over all cores, or None without /proc/stat."""
        try:
            with open("/proc/stat") as f:
                lines = f.read().split("\n")
        except OSError:
            return None
        v = [int(t) for t in lines[0].split()[1:9]]  # user nice system idle iowait irq softirq steal
        return sum(v) - v[3] - v[4], sum(v), sum(1 for line in lines if line[:3] == "cpu" and line[3:4].isdigit())

    def free_cores(self) -> float:
        now = time.monotonic()
        last = self._last
        if last is not None and now - last[0] < (self.interval if self._measured else self.first_interval):
            return self.free
        with self._lock:
            stat = self._stat()
            if stat is None:
                return self.free
            t = os.times()
            snap = (now, stat, t.user + t.system)  # this process, all its threads
            if last is not None and stat[1] > last[1][1]:
                busy = (stat[0] - last[1][0]) / (stat[1] - last[1][1]) * stat[2]  # cores busy, all processes
                own = (snap[2] - last[2]) / (now - last[0])
                self.free = max(0.0, min(float(self.usable), stat[2] - max(0.0, busy - own)))
                self._measured = True
            self._last = snap
        return self.free


_core_meter = _CoreMeter()
#: Open :meth:`Backend.cpu_threads` scopes, innermost last (the pools are process-wide).
_scopes = threading.local()  # per thread: the cpu_threads() scopes open on it, innermost last


def _open_scopes() -> list[dict]:
    if not hasattr(_scopes, "open"):
        _scopes.open = []
    return _scopes.open
_pools: dict[str, list] = {}


def _thread_pools(name: str) -> list[tuple[Callable[[], int], Callable[[int], None]]]:
    """``[(get_threads, set_threads)]`` of the compute thread pools a CPU backend uses: PyTorch's
    intra-op pool, or the BLAS libraries loaded when first asked (NumPy's own, loaded with it;
    another library's BLAS loaded later, e.g. SciPy's, is not NumPy's and is left alone)."""
    if name not in _pools:
        found: list = []
        if name == "torch":
            import torch
            found = [(torch.get_num_threads, torch.set_num_threads)]
        elif name in ("numpy", "array_api_strict"):
            try:
                from threadpoolctl import ThreadpoolController
                libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
                found = [(lib.get_num_threads, lib.set_num_threads) for lib in libs]
            except ImportError:  # without threadpoolctl the pools are left alone
                found = []
        _pools[name] = found
    return _pools[name]


_allocator_settled = False


def _settle_allocator() -> None:
    """Free one 30 MiB block (once per process, glibc only): glibc's adaptive mmap threshold
    rises to that size, so freed mid-size arrays stay in the heap for reuse (see cpu_threads)."""
    global _allocator_settled
    if _allocator_settled:
        return
    _allocator_settled = True
    import platform
    if platform.libc_ver()[0] == "glibc":
        block = np.empty(30 << 20, dtype=np.uint8)  # mmap-ed (above any threshold), never touched
        del block


_executors: dict[int, ThreadPoolExecutor] = {}


def _executor(n: int) -> ThreadPoolExecutor:
    if n not in _executors:
        _executors[n] = ThreadPoolExecutor(n, thread_name_prefix="anyxp-chunks")
    return _executors[n]


def _is_gpu(name: str, device: Any) -> bool:
    return name == "cupy" or (name == "torch" and str(device).startswith("cuda")) or (
        name == "jax" and getattr(device, "platform", "cpu") != "cpu")


def _numpy_dtype(dtype: Any) -> np.dtype:
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    return np.dtype(name)


def _is_foreign_array(obj: Any) -> bool:
    if isinstance(obj, (np.ndarray, np.generic, list, tuple, int, float, bool)):
        return False
    from array_api_compat import is_array_api_obj
    return is_array_api_obj(obj)


def _to_numpy(a: Any) -> np.ndarray:
    from array_api_compat import is_cupy_array, is_torch_array
    if isinstance(a, np.ndarray):
        return a.copy()
    if is_torch_array(a):
        return a.detach().to("cpu").numpy().copy()
    if is_cupy_array(a):
        return a.get()
    mod = type(a).__module__
    if mod.startswith("array_api_strict"):
        import array_api_strict
        return np.array(np.asarray(a.to_device(array_api_strict.Device("CPU_DEVICE"))), copy=True)
    return np.array(a, copy=True)


def to_numpy(a: Any) -> np.ndarray:
    """Host copy of an array from any backend (or of host data)."""
    backend = backend_of(a) if _is_foreign_array(a) else None
    if backend is not None:
        return backend.to_numpy(a)
    return _to_numpy(a)


_by_namespace: dict[tuple[int, str], "Backend"] = {}


def all_finite(host: np.ndarray) -> bool:
    """True when a host array holds no inf or NaN."""
    return bool(np.all(np.isfinite(host)))


def backend_of(a: Any) -> "Backend":
    """The :class:`Backend` an array lives on."""
    from array_api_compat import array_namespace, device
    xp = array_namespace(a)
    dev = device(a)
    key = (id(xp), str(dev))
    hit = _by_namespace.get(key)
    if hit is not None:
        return hit
    found = _find_backend(xp, dev)
    _by_namespace[key] = found
    return found


def _find_backend(xp: Any, dev: Any) -> "Backend":
    for name in BACKEND_NAMES:
        if name in _cache or _loadable(name):
            b = _cache.get(name) or get_backend(name)
            if b.xp is xp:
                if b.device == dev:
                    return b
                return get_backend(f"{name}:{_device_label(name, dev)}")
    raise ValueError(f"arrays of namespace {getattr(xp, '__name__', xp)!r} belong to no anyxp_nn backend")


def _device_label(name: str, dev: Any) -> str:
    if name == "array_api_strict":
        return str(dev).split("'")[1] if "'" in str(dev) else str(dev)
    if name == "cupy":
        return str(dev.id)
    return str(dev)


def _loadable(name: str) -> bool:
    try:
        _make(name, None)
        return True
    except Exception:
        return False


def _make(name: str, device_spec: str | None) -> Backend:
    """Import the library and build a Backend; raise RuntimeError with the reason."""
    if name == "numpy":
        import array_api_compat.numpy as xp
        if device_spec not in (None, "cpu"):
            raise RuntimeError(f"numpy has only the 'cpu' device, not {device_spec!r}")
        return Backend(name, xp, "cpu", np.__version__, name)
    if name == "array_api_strict":
        try:
            import array_api_strict as xp
        except ImportError as e:
            raise RuntimeError("array_api_strict is not installed (pip install array-api-strict)") from e
        dev = xp.Device(device_spec) if device_spec else xp.Device("CPU_DEVICE")
        label = name if device_spec in (None, "CPU_DEVICE") else f"{name}:{device_spec}"
        return Backend(name, xp, dev, xp.__version__, label)
    if name == "torch":
        try:
            import torch
        except ImportError as e:
            raise RuntimeError("torch is not installed") from e
        import array_api_compat.torch as xp
        dev = torch.device(device_spec or "cpu")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch: no CUDA device found")
        label = name if device_spec in (None, "cpu") else f"{name}:{device_spec}"
        return Backend(name, xp, dev, torch.__version__, label)
    if name == "cupy":
        try:
            import cupy
        except ImportError as e:
            raise RuntimeError("cupy is not installed (pip install 'anyxp_nn[gpu]')") from e
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # no driver
            raise RuntimeError(f"cupy: no CUDA device found ({e})") from e
        if n == 0:
            raise RuntimeError("cupy: no CUDA device found")
        import array_api_compat.cupy as xp
        dev = cupy.cuda.Device(int(device_spec or 0))
        label = name if device_spec in (None, "0") else f"{name}:{device_spec}"
        return Backend(name, xp, dev, cupy.__version__, label)
    if name == "jax":
        try:
            import jax
        except ImportError as e:
            raise RuntimeError("jax is not installed") from e
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as xp
        dev = jax.devices()[int(device_spec or 0)]
        return Backend(name, xp, dev, jax.__version__, name if not device_spec else f"{name}:{device_spec}")
    raise RuntimeError(f"unknown backend {name!r}")


def native_sync_guards(stack: Any) -> None:
    """Enter the array libraries' own device-sync detectors on ``stack`` (a ``contextlib.ExitStack``):
    CuPy's ``cupyx.allow_synchronize(False)`` and torch's CUDA sync debug mode "error", for the
    libraries already imported.  They also catch direct ``float()``/``int()``/``bool()`` reads that
    :data:`transfer_hooks` cannot see.  A no-op without a CUDA device or with older versions."""
    import sys
    if "cupy" in sys.modules:
        try:
            import cupyx
            stack.enter_context(cupyx.allow_synchronize(False))
        except Exception:  # no CUDA device or an old CuPy
            pass
    if "torch" in sys.modules:
        try:
            import torch
            if torch.cuda.is_available():
                old = torch.cuda.get_sync_debug_mode()
                torch.cuda.set_sync_debug_mode("error")
                stack.callback(torch.cuda.set_sync_debug_mode, old)
        except Exception:  # no CUDA build
            pass


def backend_report() -> list[dict[str, str]]:
    """One row per known backend: name, usable, version, device, reason."""
    rows = []
    for name in BACKEND_NAMES:
        try:
            b = _cache.get(name) or _make(name, None)
            rows.append({"name": name, "usable": "yes", "version": b.version,
                         "device": str(b.device), "reason": ""})
        except Exception as e:
            rows.append({"name": name, "usable": "no", "version": "", "device": "", "reason": str(e)})
    return rows


def available_backends() -> list[str]:
    """The usable backends, in the order numpy, array_api_strict, torch, cupy, jax."""
    return [r["name"] for r in backend_report() if r["usable"] == "yes"]


def get_backend(name: "str | Backend | None" = None) -> Backend:
    """The Backend for ``name`` (None: the process default, else $ANYXP_BACKEND, else numpy)."""
    if isinstance(name, Backend):
        return name
    if name is None:
        name = _default_name or os.environ.get("ANYXP_BACKEND") or "numpy"
    if not isinstance(name, str):
        raise TypeError(f"backend must be a name or a Backend, got {type(name).__name__}")
    if name in _cache:
        return _cache[name]
    base, _, dev = name.partition(":")
    if base not in BACKEND_NAMES:
        usable = ", ".join(available_backends())
        raise ValueError(f"unknown backend {name!r}; usable backends: {usable}")
    try:
        b = _make(base, dev or None)
    except RuntimeError as e:
        usable = ", ".join(available_backends())
        raise ValueError(f"backend {name!r} is not usable ({e}); usable backends: {usable}") from None
    _cache[name] = b
    _cache.setdefault(b.label, b)
    return b


def set_backend(name: "str | Backend") -> Backend:
    """Set the process-wide default backend; returns it."""
    global _default_name
    b = get_backend(name)
    _default_name = b.label
    return b


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:
        return False
