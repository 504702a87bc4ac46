"""Overhead of nn.fit over a bare training loop, side by side with a torch.nn loop.

MLP 784-256-128-10, SGD momentum 0.9, batch 128, MNIST-5k (4,000 training images).
Timed per epoch after one warm-up epoch; the fastest epoch counts (the machine is shared); prints ms/step and the ratio to the bare loop
and to PyTorch.

    flock /tmp/anyxp_bench.lock python benchmarks/bench_fit.py [--backends numpy,torch] [--epochs 3]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import anyxp_nn as nn
from anyxp_nn.data import DataLoader
from anyxp_nn.datasets import load_mnist_5k, train_test_split
from anyxp_nn.models import mlp

CE = nn.losses.softmax_cross_entropy


def bare_loop(b, X, y, epochs, read_every_step):
    nn.manual_seed(0)
    model = mlp(784, num_classes=10, backend=b)
    opt = nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ld = DataLoader(X, y, batch_size=128, backend=b, rng=1)
    times = []
    for e in range(epochs + 1):
        t = time.perf_counter()
        for xb, yb in ld:
            opt.zero_grad()
            logits, bp = model.forward(xb)
            loss, d = CE(logits, yb, check_labels=False)
            bp(d, need_dx=False)
            opt.step()
            if read_every_step:
                b.item(loss)  # note: a sync point every step (the naive way to log)
        b.synchronize()
        times.append((time.perf_counter() - t) / len(ld))
    return float(np.min(times[1:]))


def with_fit(b, X, y, epochs, progress):
    nn.manual_seed(0)
    model = mlp(784, num_classes=10, backend=b)
    opt = nn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    ld = DataLoader(X, y, batch_size=128, backend=b, rng=1)
    nn.fit(model, opt, CE, ld, epochs=1, progress=False)  # warm-up
    h = nn.fit(model, opt, CE, ld, epochs=1 + epochs, initial_epoch=1, progress=progress)
    return float(np.min(h["time_s"])) / len(ld)


def torch_loop(X, y, epochs):
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    g = np.random.default_rng(1)
    times = []
    for e in range(epochs + 1):
        t = time.perf_counter()
        perm = torch.from_numpy(g.permutation(len(X)))
        n = 0
        for i in range(0, len(X), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            n += 1
        times.append((time.perf_counter() - t) / n)
    return float(np.min(times[1:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpy,torch")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="configurations are interleaved; the best round counts")
    args = ap.parse_args()
    X, y = load_mnist_5k()
    X, _, y, _ = train_test_split(X, y, seed=0)
    configs = []
    if "torch" in nn.available_backends():
        configs.append(("torch.nn loop (peer)", lambda: torch_loop(X, y, args.epochs)))
    for name in args.backends.split(","):
        b = nn.get_backend(name)
        configs += [(f"{b.label}: bare loop, loss read once per epoch", lambda b=b: bare_loop(b, X, y, args.epochs, False)),
                    (f"{b.label}: bare loop, loss read every step", lambda b=b: bare_loop(b, X, y, args.epochs, True)),
                    (f"{b.label}: nn.fit, progress=False", lambda b=b: with_fit(b, X, y, args.epochs, False)),
                    (f"{b.label}: nn.fit, progress bar", lambda b=b: with_fit(b, X, y, args.epochs, True))]
    best = {label: float("inf") for label, _ in configs}
    for _ in range(args.rounds):
        for label, fn in configs:
            best[label] = min(best[label], fn())
    ref = best.get("torch.nn loop (peer)")
    base = None
    for label, t in best.items():
        if label.endswith("once per epoch"):
            base = t
        ratios = []
        if base and ": " in label:
            ratios.append(f"{t / base:5.2f}x bare")
        if ref:
            ratios.append(f"{t / ref:5.2f}x torch")
        print(f"{label:46s} {1e3 * t:8.3f} ms/step  ({', '.join(ratios)})")


if __name__ == "__main__":
    main()
