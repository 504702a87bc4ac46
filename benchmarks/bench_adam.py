"""One Adam step over ~1.07M float32 parameters (the shapes of a 784-1024-256-10 MLP):
anyxp_nn.optim.Adam on each available backend vs torch.optim.Adam on the CPU, in one run.

Run:  flock /tmp/anyxp_bench.lock python benchmarks/bench_adam.py [--steps 300] [--backends numpy,torch]

The reference is torch's default Adam on CPU tensors (foreach=None: PyTorch picks the
single-tensor loop for CPU tensors) and, for completeness, foreach=True.  Gradients are
fixed random arrays (the optimizer step alone is timed).  Prints ms/step and
the ratio ours / torch-default; the target is <= 1.5x.  ``--torch-threads 1`` compares
thread for thread (NumPy's elementwise operations are single-threaded).
"""
from __future__ import annotations

import argparse
import os
import platform

import numpy as np

import anyxp_nn as nn
from _common import time_steps
from anyxp_nn.parameter import Parameter

SHAPES = [(1024, 784), (1024,), (256, 1024), (256,), (10, 256), (10,)]


def _data(seed: int = 0):
    r = np.random.default_rng(seed)
    init = [(0.05 * r.standard_normal(s)).astype(np.float32) for s in SHAPES]
    grads = [(0.01 * r.standard_normal(s)).astype(np.float32) for s in SHAPES]
    return init, grads


class Timer:
    """Interleaved timing: every contender runs a short block in each round, so load
    from other processes on a shared machine hits all of them alike."""

    def __init__(self):
        self.contenders: dict[str, tuple] = {}
        self.samples: dict[str, list[float]] = {}

    def add(self, name: str, step, sync=lambda: None) -> None:
        for i in range(10):  # warm up (allocator, caches)
            step(i)
        sync()
        self.contenders[name] = (step, sync)
        self.samples[name] = []

    def run(self, steps: int, rounds: int = 10) -> dict[str, float]:
        """ms per step of each contender: the best (lowest) per-round median, i.e. the
        quietest round on a shared machine; the median over all rounds is kept in ``.overall``."""
        per = max(1, steps // rounds)
        best: dict[str, float] = {}
        for _ in range(rounds):
            for name, (step, sync) in self.contenders.items():
                times = time_steps(step, sync, per)
                self.samples[name] += times
                best[name] = min(best.get(name, float("inf")), 1e3 * float(np.median(times)))
        self.overall = {k: 1e3 * float(np.median(v)) for k, v in self.samples.items()}
        return best


def ours(name: str):
    b = nn.get_backend(name)
    init, grads = _data()
    params = [Parameter(b.asarray(a.copy())) for a in init]
    for p, g in zip(params, grads):
        p.grad = b.asarray(g.copy())
    opt = nn.optim.Adam(params, lr=1e-3, weight_decay=0.0)
    return (lambda i: opt.step()), b.synchronize


def torch_adam(foreach: "bool | None"):
    import torch
    init, grads = _data()
    params = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    for p, g in zip(params, grads):
        p.grad = torch.from_numpy(g.copy())
    opt = torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    return (lambda i: opt.step()), (lambda: None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--torch-threads", type=int, default=0, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--backends", default=None, help="comma-separated (default: numpy,torch where usable)")
    args = ap.parse_args()
    usable = nn.available_backends()
    names = args.backends.split(",") if args.backends else [n for n in ("numpy", "torch", "cupy") if n in usable]
    n = sum(int(np.prod(s)) for s in SHAPES)
    print(f"Adam step, {n:,} float32 parameters in {len(SHAPES)} arrays; {args.steps} steps per contender "
          "in 10 interleaved rounds; best round's median (all-round median in brackets)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    ap_threads = args.torch_threads
    timer = Timer()
    have_torch = True
    try:
        import torch
        if ap_threads:
            torch.set_num_threads(ap_threads)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        timer.add("torch.optim.Adam (default, CPU)", *torch_adam(None))
        timer.add("torch.optim.Adam (foreach=True)", *torch_adam(True))
    except ImportError:
        have_torch = False
        print("torch not installed: no reference")
    for name in names:
        timer.add(f"anyxp_nn Adam on {name}", *ours(name))
    res = timer.run(args.steps)
    ref = res.get("torch.optim.Adam (default, CPU)")
    fe = res.get("torch.optim.Adam (foreach=True)")
    for label, ms in res.items():
        line = f"  {label:<34}{ms:8.3f} ms ({timer.overall[label]:7.3f})"
        if have_torch and label.startswith("anyxp_nn"):
            line += f"  ratio {ms / ref:5.2f}x vs torch default, {ms / fe:5.2f}x vs foreach"
        print(line)


if __name__ == "__main__":
    main()
