"""All-or-nothing state changes: interrupt-free commits and atomic file writes.

Two tools, used wherever the library changes state that must never be torn:

* :func:`deferred_interrupts`: a ``with`` block during which Ctrl-C (SIGINT) is
  held back and re-raised as ``KeyboardInterrupt`` when the block ends.  Commits
  (the optimizer swapping in the new parameters and slots, ``fit`` counting the
  step, ``nn.load`` writing the validated state) run inside one, so an interrupt
  lands before or after a commit, never in the middle.  Only the main thread
  receives signals, so elsewhere the block does nothing.  Blocks nest.
* :func:`atomic_write`: write a file through a temporary file in the same
  folder, flushed, fsync'ed and ``os.replace``'d over the target; on any error
  the temporary file is removed and the old target is untouched.

Temporary files are named ``.<target name>.<pid>.<random>.tmp``.  A process killed
while writing (``kill -9``) leaves one behind; :func:`clean_stale_temps` removes
exactly the files of that pattern for the same target whose ``<pid>`` is no
longer a running process, so a concurrent writer's file is never touched.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

__all__ = ["deferred_interrupts", "atomic_write", "clean_stale_temps", "temp_pattern"]

_depth = 0
_pending: list[Any] = []


def _hold(signum: int, frame: Any) -> None:
    _pending.append((signum, frame))


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT back for the duration of the block (main thread only; nests)."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are only ever delivered to the main thread
        return
    if _depth and signal.getsignal(signal.SIGINT) is not _hold:
        _depth = 0  # an outer block was abandoned without its exit (its generator never closed)
    if _depth:
        _depth += 1
        try:
            yield
        finally:
            _depth -= 1
        return
    try:
        previous = signal.getsignal(signal.SIGINT)
        if previous is _hold:  # left behind by a block that never ended (e.g. a thread killed in it)
            previous = signal.default_int_handler
        if previous is None:  # a handler not installed from Python: it cannot be put back, leave it
            raise ValueError
        signal.signal(signal.SIGINT, _hold)
    except (ValueError, OSError):  # no signal support here (e.g. an embedded interpreter)
        yield
        return
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        signal.signal(signal.SIGINT, previous)
        if _pending:
            signum, frame = _pending[0]
            _pending.clear()
            if callable(previous):  # Python's default handler raises KeyboardInterrupt here
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


def temp_pattern(path: Path) -> "re.Pattern[str]":
    """The names of this library's temporary files for ``path``: ``.<name>.<pid>.<random>.tmp``."""
    return re.compile(r"\." + re.escape(path.name) + r"\.(\d+)\.[A-Za-z0-9_]+\.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # maybe another thread of this process is writing it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # exists (someone else's) or unknown: keep it
    return True


def clean_stale_temps(path: Path) -> list[Path]:
    """Remove the temporary files of ``path`` left by writers that no longer run; returns them."""
    directory = path.parent if str(path.parent) else Path(".")
    pattern, removed = temp_pattern(path), []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m and not _pid_alive(int(m.group(1))):
            try:
                os.unlink(directory / name)
                removed.append(directory / name)
            except OSError:
                pass
    return removed


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temporary file and move it over ``path`` only when complete."""
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable (best effort; not possible on every OS)
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
