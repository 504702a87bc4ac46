"""NCCL for CuPy models: the same DataParallel, gradients reduced on the GPUs.  GPU only.

Written against CuPy's documented ``cupy.cuda.nccl`` API and **not run here** (no GPU
on the development machine); the CPU test suite covers everything around it.

Bootstrap: rank 0 draws the NCCL unique id (``nccl.get_unique_id()``), MPI broadcasts
it, and every rank builds ``nccl.NcclCommunicator(size, uid, rank)`` on its device.
Each bucket is reduced by ``ncclAllReduce`` (sum) on a dedicated stream that first
waits for the compute stream (an event), so later backward kernels overlap with it;
``finish`` makes the compute stream wait for the reduction and divides by size.
Nothing goes through the host.
"""
from __future__ import annotations

from typing import Any

from ..backend import Backend
from .comm import Communicator, init

__all__ = ["NCCLCommunicator"]


class NCCLCommunicator:
    """MPI for metadata and start-up, NCCL for gradient buckets (pass it to ``DataParallel``).

    Args:
        comm: the MPI communicator whose ranks take part (default: ``init()``); one GPU
            per rank, the current CuPy device.

    SyncBatchNorm and ``fit``'s averages keep using the MPI communicator (small host values).
    """

    def __init__(self, comm: "Communicator | None" = None):
        from cupy.cuda import nccl  # GPU only
        self.mpi_comm = comm if comm is not None else init()
        self.rank, self.size, self.mpi = self.mpi_comm.rank, self.mpi_comm.size, self.mpi_comm.mpi
        self.cuda_aware = False
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.mpi_comm.bcast_object(uid)
        self.nccl = nccl.NcclCommunicator(self.size, uid, self.rank)

    def __getattr__(self, name: str) -> Any:  # host collectives (fit's averages) go through MPI
        inner = self.__dict__.get("mpi_comm")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def gradient_reducer(self, backend: Backend) -> "NCCLReducer":
        return NCCLReducer(self, backend)


class _NCCLHandle:
    def __init__(self, flat: Any, done: Any, size: int):
        self.flat, self.done, self.size = flat, done, size

    def test(self) -> bool:
        return bool(self.done.done)

    def finish(self) -> Any:
        import cupy
        cupy.cuda.get_current_stream().wait_event(self.done)
        return self.flat / self.size


class NCCLReducer:
    """``ncclAllReduce`` of a flat CuPy bucket on a side stream (see the module docstring)."""

    _DTYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}

    def __init__(self, comm: NCCLCommunicator, backend: Backend):
        import cupy
        self.comm, self.backend = comm, backend
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def start(self, flat: Any) -> _NCCLHandle:
        import cupy
        from cupy.cuda import nccl
        name = self._DTYPES.get(str(flat.dtype))
        if name is None:
            raise TypeError(f"NCCLReducer: gradients of dtype {flat.dtype} are not supported "
                            f"(expected one of {sorted(self._DTYPES)})")
        ready = cupy.cuda.get_current_stream().record()
        self.stream.wait_event(ready)
        self.comm.nccl.allReduce(flat.data.ptr, flat.data.ptr, flat.size, getattr(nccl, name),
                                 nccl.NCCL_SUM, self.stream.ptr)
        return _NCCLHandle(flat, self.stream.record(), self.comm.size)
