"""Host memory for MPI: zero-copy NumPy views where the array already lives on the host, else staging.

MPI (through mpi4py) reads and writes buffers that expose the Python buffer protocol.
A NumPy array is such a buffer; a PyTorch CPU tensor and an ``array_api_strict``
array on its default device are host memory too and are viewed through DLPack,
without a copy.  Everything else (CuPy, CUDA PyTorch, a non-default
``array_api_strict`` device, JAX) is *staged*: one counted ``Backend.to_numpy`` to
the host and one counted ``Backend.asarray`` back, per buffer.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Backend

__all__ = ["host_view", "to_host", "from_host"]

_DLPACK_CPU = 1  # DLDeviceType kDLCPU


def host_view(a: Any, backend: Backend) -> "np.ndarray | None":
    """A writable NumPy view sharing ``a``'s memory, or None when ``a`` is not plain host memory.

    Only writable arrays whose DLPack device is the CPU, on a backend's default device
    (``backend.label`` without a device suffix), qualify; a non-default device is treated
    as a device even when its memory happens to be the host's, so the staging path runs
    without a GPU (``array_api_strict:device1``).
    """
    if ":" in backend.label:
        return None
    if isinstance(a, np.ndarray):
        view = a
    else:
        try:
            if a.__dlpack_device__()[0] != _DLPACK_CPU:
                return None
            view = np.from_dlpack(a)
        except (AttributeError, BufferError, TypeError, RuntimeError):
            return None
    if not view.flags.writeable or not view.flags.c_contiguous:
        return None
    return view


def to_host(a: Any, backend: Backend) -> tuple[np.ndarray, bool]:
    """``(host buffer, staged)``: a view when possible (``staged=False``), else one counted copy."""
    view = host_view(a, backend)
    if view is not None:
        return view, False
    return np.ascontiguousarray(backend.to_numpy(a)), True  # note: a device->host transfer (sync point)


def from_host(host: np.ndarray, like: Any, staged: bool, backend: Backend) -> Any:
    """The backend array holding ``host``'s values: ``like`` itself when it was viewed, else one counted copy."""
    if not staged:
        return like
    return backend.asarray(host, dtype=like.dtype)  # note: a host->device transfer
