"""Row-block threading for optimizer updates: large parameters split across host threads.

An optimizer's ``_update(p, state, group, lr) -> (new_data, new_state)`` is
elementwise, so it may run on row blocks of a parameter and the blocks'
results put back together are bit-identical to one whole update.  Where the
user turns it on (``Backend.elementwise_threads`` > 1; off by default: it measured
slower inside training steps), :func:`run_updates` splits every parameter
with at least ``MIN_BLOCK`` elements per block into row blocks, runs all jobs
on a small thread pool (when some parameter was split; otherwise in turn) and
concatenates each block's new arrays along axis 0.

``_update`` only ever sees :class:`~anyxp_nn.parameter.Parameter` objects: a
block is a Parameter whose ``data`` and ``grad`` are row slices of the real one.
Nothing here writes into a parameter or its state; the optimizer commits the
returned arrays itself, all at once.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from array_api_compat import array_namespace

from ..backend import backend_of
from ..parameter import Parameter

__all__ = ["run_updates", "MIN_BLOCK"]

#: Parameters with fewer elements than this per block are updated in one piece (smaller
#: blocks cost more in thread hand-off than they save).
MIN_BLOCK = 1 << 18

Job = tuple[Parameter, dict, dict, float]          # (parameter, its state, its group, lr)
Update = Callable[[Parameter, dict, dict, float], tuple[Any, dict]]

_pools: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads: start fresh pools
    os.register_at_fork(after_in_child=_pools.clear)


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="anyxp-optim")
    return _pools[threads]


def _split(job: Job, threads: int) -> list[Job]:
    """``job`` itself, or one job per row block of its parameter."""
    p, state, group, lr = job
    rows = p.data.shape[0] if p.data.ndim else 0
    n = min(threads, rows)
    if n < 2 or math.prod(p.data.shape) < MIN_BLOCK * n:
        return [job]
    bounds = [rows * i // n for i in range(n + 1)]
    blocks = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        block = Parameter(p.data[a:b, ...])
        block.grad = p.grad[a:b, ...]
        blocks.append((block, {k: v if isinstance(v, int) else v[a:b, ...] for k, v in state.items()},
                       group, lr))
    return blocks


def _join(parts: list[tuple[Any, dict]]) -> tuple[Any, dict]:
    """Put the blocks' results back together (counters are equal in every block)."""
    if len(parts) == 1:
        return parts[0]
    xp = array_namespace(parts[0][0])
    data = xp.concat([d for d, _ in parts], axis=0)
    state = {k: v if isinstance(v, int) else xp.concat([st[k] for _, st in parts], axis=0)
             for k, v in parts[0][1].items()}
    return data, state


def run_updates(update: Update, jobs: list[Job]) -> list[tuple[Any, dict]]:
    """``[update(*job) for job in jobs]``, large parameters in row blocks on a thread pool."""
    if not jobs:
        return []
    threads = backend_of(jobs[0][0].data).elementwise_threads
    split = [_split(job, threads) for job in jobs] if threads > 1 else [[job] for job in jobs]
    flat = [block for blocks in split for block in blocks]
    # the pool only when some parameter was split: whole parameters side by side gained nothing
    # (the largest one sets the time) and lost to the thread hand-offs (benchmarks/README.md)
    if len(flat) > len(jobs):
        results = list(_pool(threads).map(lambda job: update(*job), flat))
    else:
        results = [update(*job) for job in flat]
    out, k = [], 0
    for blocks in split:
        out.append(_join(results[k:k + len(blocks)]))
        k += len(blocks)
    return out
