"""Why NumPy training collapses on a shared machine, in miniature: small GEMMs on 2 BLAS threads
with and without one competing busy process, with and without ``Backend.cpu_threads()``.

Run:  python benchmarks/bench_contention.py [--reps 200]

Each row: median ms of one ``A @ B`` (float32) with OpenBLAS on 2 threads ("2 threads"), on
1 thread, and on 2 threads but inside ``backend.cpu_threads()`` (which lowers the pool to the
cores other processes leave free).  Then the same with a ``while True: pass`` process running.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import anyxp_nn as nn
from _common import machine

SIZES = [(128, 64, 128), (64, 784, 512), (512, 512, 512)]


def timed(f, reps: int) -> float:
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(ts))


def run(reps: int) -> dict:
    be = nn.get_backend("numpy")
    rng = np.random.default_rng(0)
    out = {}
    for m, k, n in SIZES:
        A, B = rng.random((m, k), dtype=np.float32), rng.random((k, n), dtype=np.float32)
        row = {}
        with threadpool_limits(2):
            row["2 threads"] = timed(lambda: A @ B, reps)
        with threadpool_limits(1):
            row["1 thread"] = timed(lambda: A @ B, reps)
        with threadpool_limits(2):
            time.sleep(0.3)  # let the core meter see a full interval

            def scoped() -> None:
                with be.cpu_threads():
                    A @ B
            row["2, cpu_threads()"] = timed(scoped, reps)
        out[f"{m}x{k} @ {k}x{n}"] = row
    return out


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}; load average {os.getloadavg()}")
    quiet = run(args.reps)
    busy_proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = run(args.reps)
    finally:
        busy_proc.terminate()
        busy_proc.wait()
    cols = list(next(iter(quiet.values())))
    print("| GEMM | " + " | ".join(f"quiet: {c}" for c in cols) + " | " + " | ".join(f"busy: {c}" for c in cols) + " |")
    print("|" + "---|" * (1 + 2 * len(cols)))
    for name in quiet:
        print(f"| {name} | " + " | ".join(f"{quiet[name][c]:.3f}" for c in cols) + " | "
              + " | ".join(f"{busy[name][c]:.3f}" for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
