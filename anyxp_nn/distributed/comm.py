"""Communicators: MPI (mpi4py) for every process of a run, and the one-process stand-in.

``init()`` returns the world communicator: ``MPI.COMM_WORLD`` when mpi4py is
installed (size 1 when the script was not launched by ``mpiexec``/``srun``), or
a size-1 :class:`Communicator` without MPI when it is not, so the same script
runs alone and on many processes.

Buffers are host NumPy arrays (see :mod:`._host` for how device arrays get
there).  Every collective is called in the same order on every rank; a rank that
raises would leave the others waiting forever in the next collective, so
``init()`` installs an exception hook that prints the traceback and calls
``MPI_Abort`` (ChainerMN's ``global_except_hook``): mpiexec then stops every rank.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

__all__ = ["Communicator", "Request", "init", "mpi_available"]


class Request:
    """A pending non-blocking collective: ``test()`` drives progress, ``wait()`` completes it."""

    def __init__(self, mpi_request: Any = None):
        self._req = mpi_request

    def test(self) -> bool:
        return True if self._req is None else bool(self._req.Test())

    def wait(self) -> None:
        if self._req is not None:
            self._req.Wait()
            self._req = None


class Communicator:
    """A group of ``size`` processes; this one is ``rank``.

    Args:
        mpi_comm: an ``mpi4py.MPI.Comm`` (e.g. ``MPI.COMM_WORLD`` or a split of it), or None
            for a single process without MPI.

    Attributes:
        rank, size: this process's index and the number of processes.
        mpi: the wrapped mpi4py communicator (None without MPI).
        cuda_aware: the MPI library reads and writes CUDA device memory itself.
    """

    def __init__(self, mpi_comm: Any = None):
        self.mpi = mpi_comm
        self.rank = 0 if mpi_comm is None else int(mpi_comm.Get_rank())
        self.size = 1 if mpi_comm is None else int(mpi_comm.Get_size())
        self.cuda_aware = _cuda_aware() if mpi_comm is not None else False

    def __repr__(self) -> str:
        kind = "MPI" if self.mpi is not None else "no MPI"
        return f"Communicator(rank={self.rank}, size={self.size}, {kind})"

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that prints, logs and writes files."""
        return self.rank == 0

    # -- arrays (host NumPy, in place) --------------------------------------------
    def iallreduce(self, buf: np.ndarray) -> Request:
        """Start ``buf <- sum over ranks of buf`` (in place, non-blocking); ``wait()`` before reading."""
        if self.mpi is None or self.size == 1:
            return Request()
        from mpi4py import MPI
        return Request(self.mpi.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM))

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        """``buf <- sum over ranks of buf`` in place (blocking); returns ``buf``."""
        if self.mpi is not None and self.size > 1:
            from mpi4py import MPI
            self.mpi.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        return buf

    def allgather(self, buf: np.ndarray) -> np.ndarray:
        """``(size, *buf.shape)``: every rank's ``buf``, stacked in rank order."""
        out = np.empty((self.size,) + buf.shape, dtype=buf.dtype)
        if self.mpi is None or self.size == 1:
            out[0] = buf
        else:
            self.mpi.Allgather(np.ascontiguousarray(buf), out)
        return out

    def bcast(self, buf: np.ndarray, root: int = 0) -> np.ndarray:
        """``buf <- root's buf`` in place; returns ``buf``."""
        if self.mpi is not None and self.size > 1:
            self.mpi.Bcast(buf, root=root)
        return buf

    # -- Python values -----------------------------------------------------------
    def bcast_object(self, obj: Any, root: int = 0) -> Any:
        """``root``'s ``obj`` on every rank (pickled; for small metadata only)."""
        return obj if self.mpi is None or self.size == 1 else self.mpi.bcast(obj, root=root)

    def mean(self, values: np.ndarray) -> np.ndarray:
        """Element-wise mean over ranks of a host float64 array (a new array)."""
        out = np.array(values, dtype=np.float64, copy=True)
        return self.allreduce(out) / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on at least one (same decision everywhere)."""
        return bool(self.allreduce(np.array([1.0 if flag else 0.0]))[0] > 0)

    def barrier(self) -> None:
        if self.mpi is not None and self.size > 1:
            self.mpi.Barrier()

    def abort(self, code: int = 1) -> None:
        """Stop every rank (``MPI_Abort``); without MPI, exit this process."""
        if self.mpi is not None:
            self.mpi.Abort(code)
        raise SystemExit(code)


def _cuda_aware() -> bool:
    """The MPI library was built with CUDA support (``ANYXP_CUDA_AWARE_MPI=1|0`` overrides)."""
    env = os.environ.get("ANYXP_CUDA_AWARE_MPI")
    if env is not None:
        return env.strip().lower() in ("1", "true", "yes")
    try:
        from mpi4py import MPI
    except ImportError:
        return False
    query = getattr(MPI, "Query_cuda_support", None)  # MPIX_Query_cuda_support, where mpi4py exposes it
    try:
        return bool(query()) if query is not None else False
    except Exception:
        return False


def mpi_available() -> "tuple[bool, str]":
    """``(True, "")`` when mpi4py imports and initialises MPI, else ``(False, why)``."""
    try:
        from mpi4py import MPI  # noqa: F401
    except ImportError as e:
        return False, f"mpi4py is not installed ({e}); pip install 'anyxp_nn[mpi]'"
    except Exception as e:  # mpi4py present but no MPI library it can load
        return False, f"mpi4py cannot load an MPI library ({e})"
    return True, ""


_world: "Communicator | None" = None


def init(*, abort_on_error: bool = True) -> Communicator:
    """The world communicator (the same object on every call).

    Args:
        abort_on_error: when running on more than one process, install a ``sys.excepthook``
            that prints the traceback and aborts every rank, so one rank's exception
            stops the run instead of leaving the others blocked in a collective.

    Without mpi4py, or when it cannot load MPI, the result has size 1 and no MPI.
    """
    global _world
    if _world is not None:
        return _world
    ok, _ = mpi_available()
    if not ok:
        _world = Communicator(None)
        return _world
    from mpi4py import MPI
    _world = Communicator(MPI.COMM_WORLD)
    if abort_on_error and _world.size > 1:
        _install_abort_hook(_world)
    return _world


def _install_abort_hook(comm: Communicator) -> None:
    previous = sys.excepthook

    def hook(exc_type: Any, exc: Any, tb: Any) -> None:
        sys.stderr.write(f"anyxp_nn.distributed: rank {comm.rank} of {comm.size} raised "
                         f"{exc_type.__name__}: {exc}; aborting every rank\n")
        previous(exc_type, exc, tb)
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.2)  # let the launcher forward this output before it kills the ranks
        comm.mpi.Abort(1)

    sys.excepthook = hook
