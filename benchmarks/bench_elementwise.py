"""NumPy's fast and slow loops for the elementwise passes of a training step (why ReLU is
written as it is, and why the per-channel sums are not products with ones).

Run:  python benchmarks/bench_elementwise.py [--rounds 30]

On the MNIST CNN's first feature map, 64x32x28x28 float32 (6.4 MB) in the channel-first memory
order a convolution hands on, one thread (BLAS held at one too), best of ``--rounds`` (ms):

* ReLU forward: ``maximum(x, 0.0)`` (array and scalar) against ``maximum(x, zeros)`` with zeros
  over the trailing axes, as ``layers.ReLU`` does; the values are the same bit for bit.
* per-channel sums: ``sum`` over the channel rows (what BatchNorm and Conv2D do) against a
  product with ones (faster, tried and reverted: it lost accuracy, benchmarks/README.md).
* for reference: a copy, a multiply by a scalar, ``astype`` of a comparison, and ``where``.
"""
from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from threadpoolctl import threadpool_limits

import anyxp_nn as nn
from _common import machine, time_steps


def best_ms(fn: Callable[[], object], rounds: int) -> float:
    """The fastest of ``rounds`` calls of ``fn`` after one uncounted call, in ms."""
    fn()
    return 1e3 * min(time_steps(lambda i: fn(), lambda: None, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    c, n, h, w = 32, 64, 28, 28
    x = rng.standard_normal((c, n, h, w), dtype=np.float32).transpose(1, 0, 2, 3)  # NCHW view, channel-first memory
    dy = rng.standard_normal((c, n, h, w), dtype=np.float32).transpose(1, 0, 2, 3)
    rows = x.transpose(1, 0, 2, 3).reshape(c, n * h * w)  # a view: one row per channel
    zeros = nn.get_backend("numpy").zero_for_max(x)  # what layers.ReLU compares with
    ones = np.ones(n * h * w, np.float32)
    cases = [
        ("ReLU: maximum(x, 0.0)", lambda: np.maximum(x, 0.0)),
        (f"ReLU: maximum(x, zeros{tuple(zeros.shape)}) (layers.ReLU)", lambda: np.maximum(x, zeros)),
        ("per-channel sum: rows.sum(axis=1)", lambda: rows.sum(axis=1)),
        ("per-channel sum: rows @ ones (tried, reverted)", lambda: rows @ ones),
        ("copy", lambda: x.copy()),
        ("multiply by a scalar", lambda: x * np.float32(1.5)),
        ("astype(x > 0, float32)", lambda: (x > 0).astype(np.float32)),
        ("dy * astype(x > 0, float32) (ReLU backward)", lambda: dy * (x > 0).astype(np.float32)),
        ("where(x > 0, dy, 0.0)", lambda: np.where(x > 0, dy, np.float32(0.0))),
    ]
    same = np.array_equal(np.maximum(x, 0.0).view(np.uint32), np.maximum(x, zeros).view(np.uint32))
    print(machine())
    print(f"64x32x28x28 float32, channel-first memory, 1 thread, best of {args.rounds} "
          f"(ReLU results bit-identical: {same})")
    print("| pass | ms |")
    print("|---|---|")
    with threadpool_limits(1, user_api="blas"):
        for label, fn in cases:
            print(f"| {label} | {best_ms(fn, args.rounds):.3f} |")


if __name__ == "__main__":
    main()
