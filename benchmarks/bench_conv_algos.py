"""Winograd F(2x2, 3x3) vs im2col for the 3x3 stride-1 convolutions of the benchmark nets (the rule's data).

Run:  python benchmarks/bench_conv_algos.py [--reps 5] [--rounds 7] [--threads 1] [--backend numpy]

For each layer shape, forward + backward (dX unless it is a first layer, dW, db) of
``ops.conv.conv2d`` with ``algorithm="im2col"`` and ``"winograd"``, and (numpy only, forward
only: "direct/im2col") a direct shift-and-accumulate forward against im2col's forward, interleaved round by
round in this process (an A/B comparison that machine load hits alike); median ms over rounds.
``--clock cpu`` (the default) times this process's CPU time rather than wall time: with one BLAS
thread that is the work itself, and other processes' load mostly drops out (only shared caches
and memory bandwidth still couple them).  ``ops.conv.WINOGRAD_MIN_CHANNELS`` is set from this table.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import anyxp_nn as nn
from anyxp_nn.ops.conv import ConvGeometry, conv2d, conv_algorithm
from _common import machine


def direct_forward(x, W, padding: int):
    """The direct (shift-and-accumulate) 3x3 stride-1 forward, for the A/B only: no patch matrix.

    The zero-padded input, channel-first and flattened per channel, xf (C, N*Hp*Wp); tap (i, j)
    is the contiguous window xf[:, i*Wp + j : ... + L], so ``Yf += W[:, :, i, j] @ window`` is a
    GEMM on a view (no copy), and Y is Yf cropped to the valid pixels of the padded grid.
    """
    xp = nn.get_backend("numpy").xp
    n, c, h, w = x.shape
    o = W.shape[0]
    hp, wp = h + 2 * padding, w + 2 * padding
    xpad = xp.zeros((c, n, hp, wp), dtype=x.dtype)
    xpad[:, :, padding:padding + h, padding:padding + w] = xp.permute_dims(x, (1, 0, 2, 3))
    xf = xp.reshape(xpad, (c, n * hp * wp))
    L = n * hp * wp - 2 * wp - 2  # every window start that stays inside the buffer
    Yf = None
    for i in range(3):
        for j in range(3):
            part = W[:, :, i, j] @ xf[:, i * wp + j:i * wp + j + L]  # (O, L)
            Yf = part if Yf is None else Yf + part
    Yp = xp.zeros((o, n * hp * wp), dtype=x.dtype)
    Yp[:, :L] = Yf
    return xp.reshape(Yp, (o, n, hp, wp))[:, :, :hp - 2, :wp - 2]  # (O, N, Ho, Wo)

# (name, N, C, O, H=W, first layer: no dX)
SHAPES = [
    ("MNIST CNN conv1", 64, 1, 32, 28, True),
    ("MNIST CNN conv2", 64, 32, 64, 14, False),
    ("ResNet stem (3x32x32)", 32, 3, 16, 32, True),
    ("ResNet block 16ch 32x32", 32, 16, 16, 32, False),
    ("ResNet block 32ch 16x16", 32, 32, 32, 16, False),
    ("48ch 16x16", 32, 48, 48, 16, False),
    ("64ch 8x8", 32, 64, 64, 8, False),
    ("64ch 16x16", 32, 64, 64, 16, False),
    ("128ch 8x8", 32, 128, 128, 8, False),
    ("256ch 4x4", 32, 256, 256, 4, False),
]


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5, help="calls per timing")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits
    threadpool_limits(args.threads)
    be = nn.get_backend(args.backend)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"machine: {machine()}; backend {be.label}, {args.threads} BLAS thread(s); "
          f"median {args.clock}-time ms of fwd+bwd over {args.rounds} interleaved rounds x {args.reps} calls")
    print(f"{'layer':<28}{'N,C,O,HxW':>18}{'im2col':>9}{'winograd':>10}{'wino/im2col':>13}{'direct/im2col':>14}"
          "  rule picks")
    rng = np.random.default_rng(0)
    geom = ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1))
    for name, n, c, o, h, first in SHAPES:
        x = be.asarray(rng.standard_normal((n, c, h, h), dtype=np.float32))
        W = be.asarray(rng.standard_normal((o, c, 3, 3), dtype=np.float32))
        b = be.asarray(np.zeros(o, dtype=np.float32))
        dy = be.asarray(rng.standard_normal((n, o, h, h), dtype=np.float32))

        def run(algo: str) -> None:
            y, backward = conv2d(x, W, b, geom, block_bytes=be.cache_block_bytes, scratch=be.scratch, algorithm=algo)
            backward(dy, need_dx=not first)
            be.synchronize()

        runs = {"im2col": lambda: run("im2col"), "winograd": lambda: run("winograd"),
                "im2col fwd": lambda: conv2d(x, W, b, geom, block_bytes=be.cache_block_bytes, scratch=be.scratch,
                                             algorithm="im2col")}
        if be.name == "numpy":
            runs["direct fwd"] = lambda: direct_forward(x, W, 1)
        times: dict[str, list[float]] = {k: [] for k in runs}
        for _ in range(args.rounds):
            for key, f in runs.items():
                with be.cpu_threads():  # as in training (this also settles the allocator, see README)
                    f()
                    t0 = clock()
                    for _ in range(args.reps):
                        f()
                    times[key].append((clock() - t0) / args.reps * 1e3)
        med = {k: float(np.median(v)) for k, v in times.items()}
        a, w = med["im2col"], med["winograd"]
        direct = med.get("direct fwd", float("nan")) / med["im2col fwd"]
        pick = conv_algorithm((n, c, h, h), (o, c, 3, 3), geom, 1, be.cache_block_bytes)
        print(f"{name:<28}{f'{n},{c},{o},{h}x{h}':>18}{a:>9.2f}{w:>10.2f}{w / a:>13.2f}{direct:>14.2f}  {pick}",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
