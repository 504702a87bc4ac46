"""Deep-network training steps (BatchNorm, Dropout, residual blocks) and augmentation cost vs PyTorch CPU.

Run:  flock /tmp/anyxp_bench.lock python benchmarks/bench_deep.py [--steps 20] [--rounds 3] [--threads 1]

Models (batch 64, 1x28x28 input, softmax cross-entropy, SGD momentum 0.9):
  * CNN+BN+Dropout: Conv 1->32 3x3 pad 1, BatchNorm2D, ReLU, MaxPool 2; Conv 32->64, BatchNorm2D,
    ReLU, MaxPool 2; Flatten; Linear 3136->128, ReLU, Dropout(0.5); Linear 128->10.
  * small ResNet (anyxp_nn.models.small_resnet, width 16): stem conv-BN-ReLU, a basic block,
    a strided downsampling block with a 1x1 projection shortcut, global average pooling, Linear.
Each is timed on our backends and as the equivalent torch.nn model (same weights) in this process.
The frameworks alternate in rounds so machine load hits all of them alike; the figure is the
median ms per step over all rounds.  BLAS (threadpoolctl) and torch use ``--threads`` threads
(default 1: on a shared machine extra threads spin and make timings meaningless).

Augmentation: each transform and a typical pipeline (crop with padding 2 + rotation) on a batch
of 64 MNIST images, per backend, as a fraction of the CNN's step time on that backend.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import numpy as np

import anyxp_nn as nn
from _common import machine, time_steps, torch_training_step, training_step
from anyxp_nn import augment as A
from anyxp_nn.models import small_resnet
from anyxp_nn.testing.torch_models import torch_small_resnet

BATCH = 64


def cnn_bn_dropout(backend: Any) -> nn.Sequential:
    kw = dict(backend=backend)
    return nn.Sequential(
        nn.Conv2D(1, 32, 3, padding=1, **kw), nn.BatchNorm2D(32, **kw), nn.ReLU(**kw), nn.MaxPool2D(2, **kw),
        nn.Conv2D(32, 64, 3, padding=1, **kw), nn.BatchNorm2D(64, **kw), nn.ReLU(**kw), nn.MaxPool2D(2, **kw),
        nn.Flatten(**kw), nn.Linear(64 * 7 * 7, 128, **kw), nn.ReLU(**kw), nn.Dropout(0.5, **kw),
        nn.Linear(128, 10, **kw))


def torch_twin(name: str) -> Any:
    import torch.nn as t

    if name == "cnn":
        return t.Sequential(t.Conv2d(1, 32, 3, padding=1), t.BatchNorm2d(32), t.ReLU(), t.MaxPool2d(2),
                            t.Conv2d(32, 64, 3, padding=1), t.BatchNorm2d(64), t.ReLU(), t.MaxPool2d(2),
                            t.Flatten(), t.Linear(3136, 128), t.ReLU(), t.Dropout(0.5), t.Linear(128, 10))

    return torch_small_resnet(16)


BUILD = {"cnn": cnn_bn_dropout, "resnet": lambda backend: small_resnet(10, backend=backend, width=16)}
TITLE = {"cnn": "MNIST CNN + BatchNorm2D + Dropout", "resnet": "small ResNet (width 16)"}


def ours_step(model_name: str, backend: str, batches: list) -> tuple[Callable[[int], Any], Callable[[], None], Any]:
    b = nn.get_backend(backend)
    nn.manual_seed(0)
    model = BUILD[model_name](b)
    opt = nn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = [b.asarray(x) for x, _ in batches]
    ys = [b.asarray(y) for _, y in batches]

    return training_step(model, opt, xs, ys), b.synchronize, model


def torch_step(model_name: str, batches: list, state: dict) -> Callable[[int], Any]:
    import torch
    model = torch_twin(model_name)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})  # same weights as ours
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xs = [torch.from_numpy(x) for x, _ in batches]
    ys = [torch.from_numpy(y) for _, y in batches]
    return torch_training_step(model, opt, xs, ys)


def bench_models(backends: list[str], steps: int, rounds: int, batches: list) -> dict:
    """{model: {label: median ms}}; frameworks alternate round by round."""
    results: dict[str, dict[str, float]] = {}
    for name in ("cnn", "resnet"):
        runners = {}
        for be in backends:
            step, sync, model = ours_step(name, be, batches)
            runners[f"anyxp_nn[{be}]"] = (step, sync)
        try:
            runners["torch (reference)"] = (torch_step(name, batches, model.state_dict()), lambda: None)
        except ImportError:
            pass
        times: dict[str, list[float]] = {k: [] for k in runners}
        for label, (step, sync) in runners.items():  # warm-up
            time_steps(step, sync, 3)
        for _ in range(rounds):
            for label, (step, sync) in runners.items():
                times[label] += time_steps(step, sync, steps)
        results[name] = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    return results


def bench_augment(backends: list[str], reps: int) -> dict:
    """{transform: {backend: median ms}} on a batch of 64 MNIST-sized images."""
    x_host = np.random.default_rng(0).random((BATCH, 1, 28, 28), dtype=np.float32)
    transforms = {
        "RandomFlip": A.RandomFlip(), "RandomCrop(28, padding=2)": A.RandomCrop(28, padding=2),
        "RandomTranslate(3)": A.RandomTranslate(3), "RandomRotation(15)": A.RandomRotation(15),
        "GaussianNoise(0.1)": A.GaussianNoise(0.1), "Cutout(8)": A.Cutout(8),
        "ColorJitter(0.3, 0.3)": A.ColorJitter(0.3, 0.3),
        "crop+rotation pipeline": A.Compose([A.RandomCrop(28, padding=2), A.RandomRotation(10)]),
    }
    out: dict[str, dict[str, float]] = {}
    for tname, t in transforms.items():
        out[tname] = {}
        for be in backends:
            b = nn.get_backend(be)
            x, g = b.asarray(x_host), nn.Generator(0)
            ts = time_steps(lambda i: t(x, rng=g), b.synchronize, reps + 3)[3:]
            out[tname][be] = 1e3 * float(np.median(ts))
    return out


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="steps per framework per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backends", default=",".join(b for b in nn.available_backends() if b in ("numpy", "torch")))
    args = ap.parse_args(argv)
    backends = args.backends.split(",")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)
    except ImportError:
        print("threadpoolctl missing: BLAS threads not limited")
    try:
        import torch
        torch.set_num_threads(args.threads)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    except ImportError:
        print("torch not installed: no reference")
    print(f"machine: {machine()}; BLAS/torch threads: {args.threads}")
    rng = np.random.default_rng(0)
    batches = [(rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH)) for _ in range(4)]
    res = bench_models(backends, args.steps, args.rounds, batches)
    for name, rows in res.items():
        ref = rows.get("torch (reference)")
        print(f"\n{TITLE[name]}, batch {BATCH}, SGD momentum: median ms/step "
              f"({args.rounds} rounds x {args.steps} steps)")
        print(f"{'implementation':<28}{'ms/step':>10}{'x torch':>10}")
        for label, ms in rows.items():
            print(f"{label:<28}{ms:>10.2f}{(f'{ms / ref:.2f}' if ref else '-'):>10}")
    aug = bench_augment(backends, 20)
    print(f"\nAugmentation of a batch of {BATCH} 1x28x28 images: median ms, and % of that backend's CNN step")
    print(f"{'transform':<28}" + "".join(f"{be:>22}" for be in backends))
    for tname, per in aug.items():
        cells = "".join(f"{per[be]:>9.2f} ms ({100 * per[be] / res['cnn'][f'anyxp_nn[{be}]']:>5.1f}%)"
                        for be in backends)
        print(f"{tname:<28}{cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
