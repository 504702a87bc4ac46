"""MNIST CNN training step: anyxp_nn vs PyTorch CPU, time and memory, in one run.

Run:  flock /tmp/anyxp_bench.lock python benchmarks/bench_cnn.py [--steps 60] [--backends numpy]

Model (batch 64, 1x28x28 input): Conv 1->32 3x3 pad 1, ReLU, MaxPool 2; Conv 32->64 3x3 pad 1,
ReLU, MaxPool 2; Flatten; Linear 3136->128, ReLU; Linear 128->10; softmax cross-entropy; Adam
(SGD momentum 0.9 if nn.optim has no Adam).  One step = forward + backward + optimizer step.

Time: both frameworks alternate in rounds inside this process (so machine load hits both alike);
median ms per step.  torch uses as many threads as NumPy's BLAS (threadpoolctl), printed below.
Also timed: the two convolutions alone (forward + backward, inside the same steps' shapes).

Memory (each framework in a fresh child process, after 2 warm-up steps so Adam's slots exist):
  * peak RSS per step: the kernel's resident-set high-water mark (VmHWM, reset through
    /proc/self/clear_refs before each step) minus the RSS just before the step: the extra
    resident memory a step needs (activations, im2col buffers, gradients, temporaries);
  * RSS after step 10 and after step 50: it must not grow (no leaks, no caches);
  * NumPy only: tracemalloc's peak of traced allocations during one step (exact array bytes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

import anyxp_nn as nn
from _common import interleaved_ms, machine, reset_peak_rss, rss_kib, torch_training_step, training_step
from anyxp_nn.models import mnist_cnn
from anyxp_nn.testing.torch_models import torch_mnist_cnn

BATCH = 64


def blas_threads() -> int:
    try:
        from threadpoolctl import threadpool_info
        return max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    except Exception:  # threadpoolctl missing: NumPy's OpenBLAS defaults to one thread per core
        return os.cpu_count() or 1


def data(n_batches: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [(rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH))
            for _ in range(n_batches)]


def ours(backend: str, batches) -> tuple:
    """(step(i), conv_step(i)) closures for anyxp_nn on ``backend``."""
    b = nn.get_backend(backend)
    model = mnist_cnn(backend=b, rng=nn.random.Generator(0))
    opt = nn.optim.Adam(model.parameters(), lr=1e-3)
    xs = [b.asarray(x) for x, _ in batches]
    ys = [b.asarray(y) for _, y in batches]

    train_step = training_step(model, opt, xs, ys)

    def step(i: int) -> None:
        train_step(i)
        b.synchronize()

    conv1, conv2 = model[0], model[3]
    h1 = model[2](model[1](conv1(xs[0])))
    dy1 = b.xp.ones((BATCH, 32, 28, 28), dtype=b.xp.float32, device=b.device)
    dy2 = b.xp.ones((BATCH, 64, 14, 14), dtype=b.xp.float32, device=b.device)

    def conv_step(i: int) -> None:
        _, bp1 = conv1.forward(xs[i % len(xs)])
        _, bp2 = conv2.forward(h1)
        bp2(dy2)
        bp1(dy1, need_dx=False)
        b.synchronize()

    return step, conv_step


def reference(batches, state: dict) -> tuple:
    """The same model, weights and optimizer in PyTorch."""
    import torch
    model = torch_mnist_cnn()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs = [torch.from_numpy(x) for x, _ in batches]
    ys = [torch.from_numpy(y) for _, y in batches]

    step = torch_training_step(model, opt, xs, ys)
    conv1, conv2 = model[0], model[3]
    with torch.no_grad():
        h1 = model[2](model[1](conv1(xs[0])))
    h1.requires_grad_(True)
    dy1, dy2 = torch.ones(BATCH, 32, 28, 28), torch.ones(BATCH, 64, 14, 14)

    def conv_step(i: int) -> None:
        conv1(xs[i % len(xs)]).backward(dy1)
        conv2(h1).backward(dy2)

    return step, conv_step


# -- memory, in a child process per framework ---------------------------------------------------------

def memory_worker(which: str, steps: int, threads: int) -> dict:
    batches = data()
    if which == "torch":
        import torch
        torch.set_num_threads(threads)
        state = mnist_cnn(backend="numpy", rng=nn.random.Generator(0)).state_dict()
        step, _ = reference(batches, state)
    else:
        step, _ = ours(which, batches)
    for i in range(2):
        step(i)
    peaks, rss = [], {}
    resettable = reset_peak_rss()
    for i in range(2, steps + 2):
        before = rss_kib("VmRSS:")
        reset_peak_rss()
        step(i)
        after, hwm = rss_kib("VmRSS:"), rss_kib("VmHWM:")
        peaks.append(hwm - before)
        if i - 1 in (min(10, steps), steps):
            rss[i - 1] = after
    out = {"peak_step_mib": float(np.median(peaks)) / 1024 if resettable else None,
           "rss_10_mib": rss[min(10, steps)] / 1024, "rss_last_mib": rss[steps] / 1024, "last": steps}
    if which != "torch" and which.split(":")[0] in ("numpy", "array_api_strict"):
        import tracemalloc
        tracemalloc.start()
        tr = []
        for i in range(5):
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            step(i)
            tr.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
        out["tracemalloc_peak_mib"] = float(np.median(tr)) / 2**20
    return out


def memory(which: str, steps: int, threads: int) -> dict:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    res = subprocess.run([sys.executable, __file__, "--memory-worker", which, "--steps", str(steps),
                          "--threads", str(threads)], capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--backends", default="numpy", help="anyxp_nn backends to time (comma-separated)")
    ap.add_argument("--threads", type=int, default=None, help="threads for torch (default: NumPy's BLAS threads)")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    threads = args.threads or blas_threads()
    if args.memory_worker:
        print(json.dumps(memory_worker(args.memory_worker, args.steps, threads)))
        return 0
    import torch
    torch.set_num_threads(threads)
    batches = data()
    state = mnist_cnn(backend="numpy", rng=nn.random.Generator(0)).state_dict()
    fns = {}
    for name in args.backends.split(","):
        step, conv = ours(name, batches)
        fns[f"anyxp_nn[{name}]"], fns[f"anyxp_nn[{name}] convs"] = step, conv
    step, conv = reference(batches, state)
    fns["torch"], fns["torch convs"] = step, conv
    ms = interleaved_ms(fns, args.steps)
    opt = "Adam"
    print(f"machine: {machine()}; torch {torch.__version__}")
    print(f"threads: NumPy BLAS {blas_threads()}, torch.set_num_threads({threads})")
    print(f"\nMNIST CNN, batch {BATCH}, {opt}: median ms per training step over {args.steps} steps")
    print(f"{'implementation':<34}{'step ms':>9}{'x torch':>9}{'2 convs ms':>12}{'x torch':>9}")
    ref, ref_c = ms["torch"], ms["torch convs"]
    for name in [*args.backends.split(","), None]:
        label = "torch (reference)" if name is None else f"anyxp_nn[{name}]"
        key = "torch" if name is None else label
        s, c = ms[key], ms[f"{key} convs"]
        print(f"{label:<34}{s:>9.2f}{s / ref:>9.2f}{c:>12.2f}{c / ref_c:>9.2f}")
    if args.no_memory:
        return 0
    print(f"\nmemory per training step (fresh process each, {args.steps} steps)")
    print(f"{'implementation':<34}{'peak RSS/step MiB':>18}{'x torch':>9}{'RSS@10 MiB':>12}"
          f"{'RSS@last MiB':>14}{'tracemalloc MiB':>17}")
    mems = {name: memory(name, args.steps, threads) for name in args.backends.split(",")}
    mems["torch"] = memory("torch", args.steps, threads)
    tref = mems["torch"]["peak_step_mib"]
    for name, m in mems.items():
        label = "torch (reference)" if name == "torch" else f"anyxp_nn[{name}]"
        peak = m["peak_step_mib"]
        ratio = f"{peak / tref:.2f}" if peak and tref else "-"
        tm = f"{m['tracemalloc_peak_mib']:.1f}" if "tracemalloc_peak_mib" in m else "-"
        print(f"{label:<34}{peak or float('nan'):>18.1f}{ratio:>9}{m['rss_10_mib']:>12.1f}"
              f"{m['rss_last_mib']:>14.1f}{tm:>17}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
