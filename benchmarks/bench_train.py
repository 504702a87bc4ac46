"""MLP training step (784-512-256-10, batch 128, softmax CE, SGD momentum) vs PyTorch CPU.

Run:  python benchmarks/bench_train.py [--steps 200] [--backends numpy,torch]

Times forward + backward + optimizer step on each available backend and, when
torch is installed, the same model in PyTorch in the same process, with the
same number of threads; prints median ms/step and the ratio to PyTorch.
"""
from __future__ import annotations

import argparse

import numpy as np

import anyxp_nn as nn
from _common import machine, time_steps, torch_training_step, training_step

SIZES = (784, 512, 256, 10)
BATCH = 128


def build(backend):
    nn.manual_seed(0)
    b = dict(backend=backend)
    return nn.Sequential(nn.Linear(784, 512, **b), nn.ReLU(**b), nn.Linear(512, 256, **b), nn.ReLU(**b),
                         nn.Linear(256, 10, **b))


def time_ours(name: str, steps: int, data) -> float:
    b = nn.get_backend(name)
    model = build(b)
    opt = nn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = [b.asarray(x) for x, _ in data]
    ys = [b.asarray(y) for _, y in data]

    return _median_ms(training_step(model, opt, xs, ys), steps, b.synchronize)


def time_torch(steps: int, data) -> float:
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = [torch.from_numpy(x) for x, _ in data]
    ys = [torch.from_numpy(y) for _, y in data]
    return _median_ms(torch_training_step(model, opt, xs, ys), steps, lambda: None)


def _median_ms(step, steps: int, sync) -> float:
    time_steps(step, sync, 10)  # warm-up
    return 1e3 * float(np.median(time_steps(step, sync, steps)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--backends", default=",".join(n for n in nn.available_backends()))
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((BATCH, 784)).astype(np.float32), rng.integers(0, 10, BATCH))
            for _ in range(8)]
    print(f"machine: {machine()}")
    ref = None
    try:
        import torch
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        ref = time_torch(args.steps, data)
    except ImportError:
        print("torch not installed: no reference")
    rows = [("torch (reference)", ref)] if ref else []
    for name in args.backends.split(","):
        rows.append((f"anyxp_nn[{name}]", time_ours(name, args.steps, data)))
    print(f"\nMLP {'-'.join(map(str, SIZES))}, batch {BATCH}, SGD momentum: median ms/step over {args.steps} steps")
    print(f"{'implementation':<32}{'ms/step':>10}{'x torch':>10}")
    for label, ms in rows:
        ratio = f"{ms / ref:.2f}" if ref else "-"
        print(f"{label:<32}{ms:>10.2f}{ratio:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
