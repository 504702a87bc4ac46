"""Data-parallel training over processes and machines, on MPI (mpi4py); NCCL for CuPy.

    comm = nn.distributed.init()                          # rank, size (size 1 without mpiexec)
    model = nn.distributed.DataParallel(model, comm)      # broadcast, then bucketed gradient averaging
    loader = nn.data.DataLoader(x, y, batch_size=b, shard=(comm.rank, comm.size))
    nn.fit(model, opt, loss, loader)                      # rank 0 prints, logs and saves

Launch with ``mpiexec -n P python train.py``; see docs/distributed.md.
"""
from .buckets import Bucket, plan_buckets
from .comm import Communicator, Request, init, mpi_available
from .fit_hooks import FitHooks, fit_hooks
from .nccl import NCCLCommunicator
from .parallel import DataParallel
from .reducer import CudaAwareReducer, HostReducer
from .sync_batchnorm import SyncBatchNorm

__all__ = [
    "Bucket", "Communicator", "CudaAwareReducer", "DataParallel", "FitHooks", "HostReducer", "NCCLCommunicator",
    "Request", "SyncBatchNorm", "fit_hooks", "init", "mpi_available", "plan_buckets"
]
