"""Gradient reducers: average one flat gradient bucket over the ranks, started now, finished later.

A reducer's ``start(flat)`` launches the reduction of a 1-D backend array and returns
a handle; ``handle.test()`` lets the transport progress, ``handle.finish()`` waits and
returns the averaged bucket as a backend array (often ``flat`` itself, reduced in place).

* :class:`HostReducer` -- MPI on host memory.  NumPy, PyTorch CPU and
  ``array_api_strict`` (default device) buckets are viewed without a copy; other
  device arrays are staged: one ``to_numpy`` before and one ``asarray`` after, per bucket,
  both counted by ``nn.sync_guard``.
* :class:`CudaAwareReducer` -- MPI reading CUDA memory directly (a CUDA-aware build;
  ``Communicator.cuda_aware``).  GPU only, untested here.
* ``NCCLReducer`` (:mod:`.nccl`) -- NCCL on a side stream.  GPU only, untested here.
"""
from __future__ import annotations

from typing import Any

from ..backend import Backend
from ._host import from_host, to_host
from .comm import Communicator, Request

__all__ = ["HostReducer", "CudaAwareReducer", "make_reducer"]


class _HostHandle:
    def __init__(self, req: Request, host: Any, flat: Any, staged: bool, comm: Communicator, backend: Backend):
        self.req, self.host, self.flat, self.staged = req, host, flat, staged
        self.comm, self.backend = comm, backend

    def test(self) -> bool:
        return self.req.test()

    def finish(self) -> Any:
        self.req.wait()
        self.host /= self.comm.size  # in place, keeps the bucket's dtype
        return from_host(self.host, self.flat, self.staged, self.backend)


class HostReducer:
    """Sum-then-divide over MPI on host buffers (see the module docstring)."""

    def __init__(self, comm: Communicator, backend: Backend):
        self.comm, self.backend = comm, backend

    def start(self, flat: Any) -> _HostHandle:
        host, staged = to_host(flat, self.backend)
        return _HostHandle(self.comm.iallreduce(host), host, flat, staged, self.comm, self.backend)


class _DeviceHandle:
    def __init__(self, req: Any, flat: Any, size: int):
        self.req, self.flat, self.size = req, flat, size

    def test(self) -> bool:
        return bool(self.req.Test())

    def finish(self) -> Any:
        self.req.Wait()
        return self.flat / self.size


class CudaAwareReducer:
    """MPI ``Iallreduce`` straight on CUDA memory (``__cuda_array_interface__``).  GPU only.

    The MPI library does not know CUDA streams, so the kernels that wrote ``flat``
    are waited for first (``backend.synchronize()``, a stream sync, not a transfer).
    """

    def __init__(self, comm: Communicator, backend: Backend):
        self.comm, self.backend = comm, backend

    def start(self, flat: Any) -> _DeviceHandle:
        from mpi4py import MPI
        self.backend.synchronize()
        req = self.comm.mpi.Iallreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        return _DeviceHandle(req, flat, self.comm.size)


def make_reducer(comm: Any, backend: Backend, sample: Any) -> Any:
    """The reducer for ``backend``'s arrays (``sample``: one of them) on ``comm``."""
    custom = getattr(comm, "gradient_reducer", None)
    if custom is not None:  # e.g. an NCCLCommunicator
        return custom(backend)
    if comm.cuda_aware and comm.size > 1 and hasattr(sample, "__cuda_array_interface__"):
        return CudaAwareReducer(comm, backend)
    return HostReducer(comm, backend)
