"""What a second thread buys on this machine, by kind of work (the 2-thread rows of bench_table.py).

Run:  python benchmarks/bench_threads.py [--rounds 7]

Each row times the same total work done by one thread and split over two, interleaved round
by round (median ms), and prints the speedup (1-thread ms / 2-thread ms; 2.0 is perfect):

* ``elementwise``: NumPy ``multiply`` into a preallocated output, repeated; two threads each
  take one half of the array (Python threads: NumPy releases the GIL), as PyTorch's intra-op
  threads split one op.  Arrays of 1 MiB (cache-resident), 6.4 MB (the MNIST CNN's first
  feature map, 64x32x28x28 float32; in + out fit the 32 MiB L3 of the machine below) and
  64 MiB (main memory, where a training step's activations mostly live: the MNIST CNN's step
  touches ~50 MiB).
* ``GEMM 512^3``: OpenBLAS's own threads (threadpoolctl 1 vs 2), NumPy's matmul.
* ``conv GEMM 64x288 @ 288x12544``: the MNIST CNN's conv2 forward GEMM, same.
* with PyTorch installed: ``torch relu 6.4 MB`` and ``torch conv2d 32->64 14x14 B64`` (forward),
  ``torch.set_num_threads`` 1 vs 2.

Where the cache-resident rows reach ~2 and the main-memory row stays near 1, one core already
uses up the memory bandwidth: a second thread helps compute-bound kernels (BLAS, oneDNN's
cache-blocked convolutions) and cache-resident passes, not the elementwise passes of a step
whose activations live in main memory, which is why our 2-thread ratios trail our 1-thread ones.
"""
from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from _common import interleaved_ms, machine


def _interleaved(one: Callable[[], None], two: Callable[[], None], rounds: int) -> tuple[float, float]:
    """Median ms of ``one`` and ``two``, run alternately ``rounds`` times after a warm-up each."""
    ms = interleaved_ms({"one": lambda i: one(), "two": lambda i: two()}, steps=rounds, rounds=rounds, warmup=1)
    return ms["one"], ms["two"]


def elementwise_rows(pool: ThreadPoolExecutor, rounds: int) -> list[tuple[str, float, float]]:
    """One ``multiply`` pass over an array, whole on one thread or in two halves on two."""
    rows = []
    for label, nbytes, reps in (("elementwise, 1 MiB x 256", 1 << 20, 256),
                                ("elementwise, 6.4 MB x 40", 64 * 32 * 28 * 28 * 4, 40),
                                ("elementwise, 64 MiB x 4", 64 << 20, 4)):
        a, out = np.ones(nbytes // 4, np.float32), np.empty(nbytes // 4, np.float32)
        half = a.shape[0] // 2
        parts = [(a[:half], out[:half]), (a[half:], out[half:])]

        def whole(reps: int = reps, a: np.ndarray = a, out: np.ndarray = out) -> None:
            for _ in range(reps):
                np.multiply(a, 1.5, out=out)

        def part(k: int, reps: int = reps, parts: list = parts) -> None:
            for _ in range(reps):
                np.multiply(parts[k][0], 1.5, out=parts[k][1])

        rows.append((label, *_interleaved(whole, lambda: list(pool.map(part, (0, 1))), rounds)))
    return rows


def blas_rows(rounds: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    rows = []
    for label, (m, k, n), reps in (("GEMM 512^3 x 10", (512, 512, 512), 10),
                                   ("conv GEMM 64x288 @ 288x12544 x 10", (64, 288, 12544), 10)):
        a, b = rng.random((m, k), np.float32), rng.random((k, n), np.float32)

        def run(threads: int, a: np.ndarray = a, b: np.ndarray = b, reps: int = reps) -> None:
            with threadpool_limits(threads, user_api="blas"):
                for _ in range(reps):
                    a @ b

        rows.append((label, *_interleaved(lambda: run(1), lambda: run(2), rounds)))
    return rows


def torch_rows(rounds: int) -> list[tuple[str, float, float]]:
    try:
        import torch
    except ImportError:
        return []
    before = torch.get_num_threads()
    x = torch.randn(64, 32, 28, 28)
    conv = torch.nn.Conv2d(32, 64, 3, padding=1)
    xc = torch.randn(64, 32, 14, 14)

    def run(threads: int, fn: Callable[[], None], reps: int) -> None:
        torch.set_num_threads(threads)
        for _ in range(reps):
            fn()

    rows = []
    try:
        with torch.no_grad():
            for label, fn, reps in (("torch relu 6.4 MB x 40", lambda: torch.relu(x), 40),
                                    ("torch conv2d 32->64 14x14 B64 x 10", lambda: conv(xc), 10)):
                rows.append((label, *_interleaved(lambda: run(1, fn, reps), lambda: run(2, fn, reps), rounds)))
    finally:
        torch.set_num_threads(before)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with ThreadPoolExecutor(2) as pool:
        rows = elementwise_rows(pool, args.rounds) + blas_rows(args.rounds) + torch_rows(args.rounds)
    print(machine())
    print("| work | 1 thread ms | 2 threads ms | speedup |")
    print("|---|---|---|---|")
    for label, one, two in rows:
        print(f"| {label} | {one:.2f} | {two:.2f} | {one / two:.2f}x |")


if __name__ == "__main__":
    main()
