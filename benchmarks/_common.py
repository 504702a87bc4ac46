"""Shared by the benchmark scripts: the machine line, the timing loops, one anyxp_nn training step,
and the resident-memory readings of the memory columns."""
from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

import numpy as np

from anyxp_nn.losses import softmax_cross_entropy


def machine() -> str:
    """CPU model, cores, Python and NumPy versions, for the results table."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, numpy {np.__version__}"


def training_step(model: Any, optimizer: Any, xs: list, ys: list,
                  threads_used: "list | None" = None) -> Callable[[int], Any]:
    """``step(i)``: forward, softmax cross-entropy, backward (no dX for the input), update on batch i,
    inside ``Backend.cpu_threads()`` as ``fit`` runs each step.  ``threads_used``: a list that
    gets the thread count each step's scope allowed (it drops below the BLAS pool's size when
    the library sees another process busy)."""
    backend = model.backend

    def step(i: int) -> Any:
        with backend.cpu_threads() as n:
            if threads_used is not None:
                threads_used.append(n)
            logits, backprop = model.forward(xs[i % len(xs)])
            loss, dlogits = softmax_cross_entropy(logits, ys[i % len(ys)], check_labels=False)
            model.zero_grad()
            backprop(dlogits, need_dx=False)
            optimizer.step()
        return loss

    return step


def torch_training_step(model: Any, optimizer: Any, xs: list, ys: list) -> Callable[[int], Any]:
    """The PyTorch twin of :func:`training_step` for a ``torch.nn`` model and ``torch.optim`` optimizer."""
    import torch

    def step(i: int) -> Any:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xs[i % len(xs)]), ys[i % len(ys)])
        loss.backward()
        optimizer.step()
        return loss

    return step


def time_steps(step: Callable[[int], Any], sync: Callable[[], None], n: int) -> list[float]:
    """Seconds of each of ``n`` calls ``step(i)``, each followed by ``sync()`` (device work done)."""
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        step(i)
        sync()
        out.append(time.perf_counter() - t0)
    return out


def interleaved_ms(fns: dict, steps: int, rounds: int = 5, warmup: int = 3) -> dict:
    """Median ms per call of each ``fn(i)``, alternating the fns in ``rounds`` blocks of
    ``steps // rounds`` calls each, after ``warmup`` uncounted calls of each."""
    times: dict = {k: [] for k in fns}
    for f in fns.values():
        for i in range(warmup):
            f(i)
    per = max(1, steps // rounds)
    for r in range(rounds):
        for k, f in fns.items():
            for i in range(per):
                t0 = time.perf_counter()
                f(r * per + i)
                times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * float(np.median(v)) for k, v in times.items()}


def rss_kib(field: str) -> int:
    """A line of /proc/self/status in KiB: ``"VmRSS:"`` (resident now) or ``"VmHWM:"`` (its peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current resident set (/proc/self/clear_refs); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
