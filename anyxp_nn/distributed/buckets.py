"""Gradient buckets: which parameters are reduced together, and the per-step bookkeeping.

Trainable parameters are taken in reverse registration order (the order backprop
finishes them) and packed into buckets of at most ``bucket_bytes`` (a parameter
larger than that gets a bucket of its own), one dtype per bucket.  During a
backward pass a parameter is *ready* when every backprop closure of the layers
that own it has run; when all parameters of the next bucket are ready, its
gradients are flattened into one contiguous array and its all-reduce starts,
while the earlier layers still compute.  Buckets start in index order on every
rank (MPI needs collectives in the same order everywhere).  ``finish()`` starts
whatever is left, waits for all, and points each ``Parameter.grad`` at its slice
of the averaged bucket.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from ..parameter import Parameter

__all__ = ["Bucket", "plan_buckets", "BackwardStep"]


class Bucket:
    """Parameters reduced together; ``offsets[i]`` is where parameter i starts in the flat buffer."""

    def __init__(self, params: list[Parameter]):
        self.params = params
        self.offsets, n = [], 0
        for p in params:
            self.offsets.append(n)
            n += _numel(p)
        self.numel = n

    def __repr__(self) -> str:
        return f"Bucket({len(self.params)} params, {self.numel} values)"


def _numel(p: Parameter) -> int:
    n = 1
    for d in p.shape:
        n *= int(d)
    return n


def plan_buckets(params: Sequence[Parameter], bucket_bytes: int, itemsize: Callable[[Any], int]) -> list[Bucket]:
    """Split ``params`` (already in reverse layer order) into buckets of at most ``bucket_bytes``."""
    buckets: list[Bucket] = []
    cur: list[Parameter] = []
    cur_bytes, cur_dtype = 0, None
    for p in params:
        nbytes = _numel(p) * itemsize(p.dtype)
        if cur and (p.dtype != cur_dtype or cur_bytes + nbytes > bucket_bytes):
            buckets.append(Bucket(cur))
            cur, cur_bytes = [], 0
        cur.append(p)
        cur_bytes += nbytes
        cur_dtype = p.dtype
    if cur:
        buckets.append(Bucket(cur))
    return buckets


class BackwardStep:
    """One forward/backward pass of a DataParallel model: readiness counts and in-flight buckets.

    Args:
        buckets: the plan.
        reducer: ``reducer.start(flat) -> handle`` with ``handle.test()`` / ``handle.finish()``.
        xp, device: to flatten gradients and make zeros for parameters without one.
        overlap: start buckets as they fill (False: all at ``finish``, for comparison).
    """

    def __init__(self, buckets: list[Bucket], reducer: Any, xp: Any, device: Any, overlap: bool = True):
        self.buckets, self.reducer, self.xp, self.device, self.overlap = buckets, reducer, xp, device, overlap
        self.where = {id(p): (k, i) for k, b in enumerate(buckets) for i, p in enumerate(b.params)}
        self.remaining = [len(b.params) for b in buckets]
        self.pending: dict[int, int] = {}   # id(param) -> backprop closures still to run
        self.ready: set[int] = set()
        self.handles: list[Any] = []
        self.wait_seconds = 0.0

    # -- called by the hooks on the model's layers --------------------------------
    def forward_called(self, params: Sequence[Parameter]) -> None:
        for p in params:
            if id(p) in self.where:
                self.pending[id(p)] = self.pending.get(id(p), 0) + 1

    def backprop_done(self, params: Sequence[Parameter]) -> None:
        for p in params:
            key = id(p)
            if key not in self.where or key in self.ready:
                continue
            self.pending[key] -= 1
            if self.pending[key] == 0:
                self.ready.add(key)
                self.remaining[self.where[key][0]] -= 1
        if self.overlap:
            self._start_ready()
        for h in self.handles:  # let MPI progress the buckets in flight
            h.test()

    # -- buckets ------------------------------------------------------------------
    def _start_ready(self) -> None:
        while len(self.handles) < len(self.buckets) and self.remaining[len(self.handles)] == 0:
            self._start(len(self.handles))

    def _start(self, k: int) -> None:
        xp, b = self.xp, self.buckets[k]
        grads = [xp.reshape(p.grad, (-1,)) if p.grad is not None
                 else xp.zeros((_numel(p),), dtype=p.dtype, device=self.device) for p in b.params]
        flat = xp.concat(grads) if len(grads) > 1 else xp.reshape(xp.asarray(grads[0], copy=True), (-1,))
        self.handles.append(self.reducer.start(flat))  # (numel,) fresh buffer, reduced in place

    def finish(self) -> None:
        """Start the buckets not started yet, wait for every one, write the averaged gradients."""
        while len(self.handles) < len(self.buckets):
            self._start(len(self.handles))
        t = time.perf_counter()
        xp = self.xp
        for b, h in zip(self.buckets, self.handles):
            flat = h.finish()
            for p, o in zip(b.params, b.offsets):
                n = _numel(p)
                p.grad = xp.reshape(flat[o:o + n], p.shape)  # a view of the averaged bucket
        self.wait_seconds = time.perf_counter() - t
