"""The issue-15 table in one run: four training steps, anyxp_nn vs PyTorch CPU, 1 and 2 threads,
quiet and with one competing busy process, time and memory per step.

Run:  python benchmarks/bench_table.py [--steps 20] [--rounds 3] [--threads 1,2] [--loads quiet,busy]
                                       [--models mlp,cnn,cnn_bn,resnet] [--libs numpy,torch]

Models (softmax cross-entropy, Adam lr 1e-3; one step = forward + backward + update):
  * mlp:    MLP 784-512-256-10, batch 128.
  * cnn:    MNIST CNN (``models.mnist_cnn``: conv 32, conv 64, FC 128), batch 64 of 1x28x28.
  * cnn_bn: the same with BatchNorm2D after each conv and Dropout(0.5) before the last Linear.
  * resnet: small ResNet (``models.small_resnet``, width 16: 16/32 channels), batch 32 of 3x32x32.

Libraries (``--libs``): ``torch`` or ``torch:cuda`` is the PyTorch reference (``torch.nn`` +
``torch.optim``, same initial weights) that ratios divide by (``--ref``); any other name is
anyxp_nn on that backend (``numpy``, ``cupy``; ``torch-backend`` = anyxp_nn on ``torch``,
``torch-backend:cuda`` on ``torch:cuda``), each step inside ``Backend.cpu_threads()`` as
``fit`` runs it; a ``/par`` suffix (``numpy/par``) turns on ``Backend.parallel_chunks`` (Conv2D's
batch chunks on host threads), for an A/B of that option.  Each library runs in its own child
process (so one library's threads never meet another's), libraries alternate in ``--rounds``
rounds, and the figure is the median over rounds of each run's median ms/step.  Threads: the
child sets NumPy's BLAS pool (threadpoolctl) and ``torch.set_num_threads`` to T, as a user would.
Load "busy": this script starts one ``while True: pass`` process for those runs and stops it.

Memory per step (on a GPU: the device memory the library's pool reserved at the end): in a fresh
child per library and model (so no freed memory of another model is
reused), the resident-set high-water mark over building the model and 3 + ``--steps`` steps (VmHWM,
reset through /proc/self/clear_refs) minus the resident set before the model was built: weights,
optimizer slots, activations and work buffers at their peak.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# measure the anyxp_nn of this checkout, not whichever one is installed (workers run this file too)
sys.path.insert(0, os.path.dirname(HERE))
TITLES = {"mlp": "MLP 784-512-256-10, B128", "cnn": "MNIST CNN, B64", "cnn_bn": "CNN+BN+Dropout, B64",
          "resnet": "small ResNet 3x32x32, B32"}
SHAPES = {"mlp": (128, (784,)), "cnn": (64, (1, 28, 28)), "cnn_bn": (64, (1, 28, 28)), "resnet": (32, (3, 32, 32))}


# -- models -------------------------------------------------------------------------------------------

def build_ours(name: str, backend: Any) -> Any:
    import anyxp_nn as nn
    from anyxp_nn.models import mlp, mnist_cnn, small_resnet
    rng = nn.random.Generator(0)
    if name == "mlp":
        return mlp(784, (512, 256), 10, backend=backend, rng=rng)
    if name == "cnn":
        return mnist_cnn(backend=backend, rng=rng)
    if name == "cnn_bn":
        sys.path.insert(0, HERE)
        from bench_deep import cnn_bn_dropout
        nn.manual_seed(0)
        return cnn_bn_dropout(backend)
    return small_resnet(10, backend=backend, rng=rng, width=16, in_channels=3)


def build_torch(name: str) -> Any:
    import torch.nn as t
    from anyxp_nn.testing.torch_models import torch_mnist_cnn, torch_small_resnet
    if name == "mlp":
        return t.Sequential(t.Linear(784, 512), t.ReLU(), t.Linear(512, 256), t.ReLU(), t.Linear(256, 10))
    if name == "cnn":
        return torch_mnist_cnn()
    if name == "cnn_bn":
        sys.path.insert(0, HERE)
        from bench_deep import torch_twin
        return torch_twin("cnn")
    model = torch_small_resnet(16)
    model[0] = t.Conv2d(3, 16, 3, padding=1, bias=False)  # 3-channel stem, same key
    return model


# -- one child process: one library, one thread count, every model --------------------------------------

def _is_reference(lib: str) -> bool:
    return lib == "torch" or lib.startswith("torch:")


def _device_mib(lib: str, be: Any) -> "float | None":
    """Device memory reserved by the library's pool (GPU runs), MiB; None on CPUs."""
    if _is_reference(lib):
        import torch
        return torch.cuda.max_memory_reserved() / 2**20 if lib != "torch" and torch.cuda.is_available() else None
    info = be.memory_info()
    return None if info is None else info.get("pool_total_bytes", info.get("reserved_bytes", 0)) / 2**20


def worker(lib: str, threads: int, models: list[str], steps: int) -> dict:
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)
    import torch
    torch.set_num_threads(threads)
    import anyxp_nn as nn
    sys.path.insert(0, HERE)
    from _common import reset_peak_rss, rss_kib, time_steps, torch_training_step, training_step
    # the libraries' one-time set-up (thread pools, kernel caches) before any memory baseline
    tx = torch.ones((2, 3, 8, 8), requires_grad=True)
    (torch.nn.functional.conv2d(tx, torch.ones((4, 3, 3, 3))).sum() + (tx.flatten(1) @ torch.ones((192, 5))).sum()).backward()
    out = {}
    for name in models:
        n, shape = SHAPES[name]
        rng = np.random.default_rng(0)
        batches = [(rng.random((n,) + shape, dtype=np.float32), rng.integers(0, 10, n)) for _ in range(4)]
        rss0 = rss_kib("VmRSS:")
        has_peak = reset_peak_rss()
        ref = build_ours(name, nn.get_backend("numpy"))
        be = None
        if _is_reference(lib):
            dev = torch.device(lib.partition(":")[2] or "cpu")
            model = build_torch(name)
            model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ref.state_dict().items()})
            model = model.to(dev)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            step = torch_training_step(model, opt, [torch.from_numpy(x).to(dev) for x, _ in batches],
                                       [torch.from_numpy(y).to(dev) for _, y in batches])
            sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
        else:
            be = nn.get_backend(lib.split("/")[0].replace("torch-backend", "torch"))
            be.parallel_chunks = lib.endswith("/par")
            model = build_ours(name, be)
            opt = nn.optim.Adam(model.parameters(), lr=1e-3)
            used: list = []
            step = training_step(model, opt, [be.asarray(x) for x, _ in batches], [be.asarray(y) for _, y in batches],
                                 used)
            sync = be.synchronize
        time_steps(step, sync, 3)  # warm-up: work buffers, Adam slots
        if be is not None:
            used.clear()
        ts = time_steps(step, sync, steps)
        peak = (rss_kib("VmHWM:") - rss0) / 1024 if has_peak else float("nan")
        dev_mib = _device_mib(lib, be)
        peak = dev_mib if dev_mib is not None else peak
        out[name] = {"ms": 1e3 * float(np.median(ts)), "mem_mib": peak}
        if be is not None and be.adapt_threads and used:  # the thread count cpu_threads chose (0 where it does nothing)
            out[name]["threads_used"] = [min(used), float(np.mean(used))]
        del model, opt, step
    return out


def run_child(lib: str, threads: int, models: list[str], steps: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--threads", str(threads),
           "--models", ",".join(models), "--steps", str(steps)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"worker {lib} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the orchestrating process ------------------------------------------------------------------------

def machine() -> str:
    sys.path.insert(0, HERE)
    from _common import machine as m
    return m()


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per model per run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--loads", default="quiet,busy")
    ap.add_argument("--models", default="mlp,cnn,cnn_bn,resnet")
    ap.add_argument("--libs", default="numpy,torch", help="anyxp_nn backends (numpy, torch-backend, cupy, "
                    "torch-backend:cuda) and the reference (torch or torch:cuda)")
    ap.add_argument("--ref", default=None, help="the reference library (default: the first torch or torch:DEVICE)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    models = args.models.split(",")
    if args.worker:
        print(json.dumps(worker(args.worker, int(args.threads), models, args.steps)))
        return 0
    libs, loads = args.libs.split(","), args.loads.split(",")
    threads = [int(t) for t in args.threads.split(",")]
    import torch
    print(f"machine: {machine()}, torch {torch.__version__}; load average at start {os.getloadavg()}")
    res: dict[tuple, list[dict]] = {}
    t_start = time.time()
    memory: dict[tuple[str, str], float] = {}
    for lib in libs:
        for name in models:
            try:
                memory[lib, name] = run_child(lib, threads[-1], [name], 3)[name]["mem_mib"]
            except RuntimeError as e:
                print(f"  FAILED memory run: {lib}, {name}: {e}", file=sys.stderr, flush=True)
                memory[lib, name] = float("nan")
    for load in loads:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load == "busy" else None
        try:
            time.sleep(0.5 if busy else 0)
            for t in threads:
                for r in range(args.rounds):
                    for lib in (libs if r % 2 == 0 else libs[::-1]):
                        try:
                            got = run_child(lib, t, models, args.steps)
                        except RuntimeError as e:  # one failed run leaves a gap, not a lost table
                            print(f"  FAILED: {load}, {t} thread(s), {lib}: {e}", file=sys.stderr, flush=True)
                            continue
                        for name, v in got.items():
                            res.setdefault((load, t, lib, name), []).append(v)
                        print(f"  done: {load}, {t} thread(s), round {r + 1}, {lib}", file=sys.stderr, flush=True)
        finally:
            if busy is not None:
                busy.terminate()
                busy.wait()
    print(f"{args.rounds} rounds x {args.steps} steps, {time.time() - t_start:.0f} s; "
          f"load average at end {os.getloadavg()}\n")

    def ms(load: str, t: int, lib: str, name: str) -> float:
        return float(np.median([v["ms"] for v in res.get((load, t, lib, name), [{"ms": float("nan")}])]))

    ref = args.ref or next((lib for lib in libs if _is_reference(lib)), None)
    ours = [lib for lib in libs if lib != ref] if ref else []
    head = ["model", "threads"]
    for load in loads:
        head += [f"{lib} {load} ms" for lib in libs] + [f"{lib}/{ref} {load}" for lib in ours]
    if "quiet" in loads and "busy" in loads:
        head += [f"{lib} busy/quiet" for lib in libs]
    head += [f"{lib} MiB" for lib in libs]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name in models:
        for t in threads:
            row = [TITLES[name], str(t)]
            for load in loads:
                row += [f"{ms(load, t, lib, name):.1f}" for lib in libs]
                row += [f"**{ms(load, t, lib, name) / ms(load, t, ref, name):.2f}x**" for lib in ours]
            if "quiet" in loads and "busy" in loads:
                row += [f"{ms('busy', t, lib, name) / ms('quiet', t, lib, name):.2f}x" for lib in libs]
            row += [f"{memory[lib, name]:.0f}" for lib in libs]
            print("| " + " | ".join(row) + " |")
    low = [(load, t, lib, name, min(v["threads_used"][0] for v in vs), np.mean([v["threads_used"][1] for v in vs]))
           for (load, t, lib, name), vs in sorted(res.items()) if all("threads_used" in v for v in vs)]
    low = [row for row in low if row[4] < row[1]]
    if low:  # steps that ran with fewer threads than asked (the library saw another process busy)
        print("\nsteps with fewer threads than asked (cpu_threads saw busy cores): "
              + "; ".join(f"{lib} {name} {load} {t}: min {lo}, mean {mean:.2f}"
                          for load, t, lib, name, lo, mean in low))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
