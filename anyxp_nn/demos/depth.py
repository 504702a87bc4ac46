"""Demo section "Depth: initialisation, degradation and residual connections" (docs/04, section 4.3).

Plain and residual MLPs of 20 and 50 hidden layers on MNIST-5k, with PyTorch's default
initialisation (``init="torch"``, below the He scale) and with He initialisation. For each
it prints the ratio of the first to the last hidden layer's weight-gradient norm at
initialisation, and the training loss and hold-out accuracy after a few epochs of SGD, each
as the median and range over three seeds.
It separates two effects that the classic plain-vs-residual picture mixes up: a
vanishing gradient caused by the initialisation, and the harder optimisation of deep
plain networks (the degradation problem that motivated ResNets) that remains with a good
initialisation.

    python examples/neural_networks_examples.py --sections depth [--quick]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.datasets import load_mnist_5k, train_test_split

from ._loop import accuracy
from .deep import _hidden_grad_norms, train

__all__ = ["SEEDS", "deep_mlp", "depth_experiment", "run"]

SECTION = "Depth"


def deep_mlp(hidden_pairs: int, residual: bool, init: str, backend: Any, width: int = 64) -> nn.Sequential:
    """784 -> width, then ``hidden_pairs`` pairs of width x width Linear layers (ReLU between and after
    each pair; residual: each pair is a block ``x + F(x)`` followed by ReLU, as in the original ResNet),
    then width -> 10."""
    kw = dict(backend=backend)
    i = dict(init=init, **kw)
    layers: list[nn.Layer] = [nn.Linear(784, width, **i), nn.ReLU(**kw)]
    for _ in range(hidden_pairs):
        pair = [nn.Linear(width, width, **i), nn.ReLU(**kw), nn.Linear(width, width, **i)]
        layers += [nn.Residual(nn.Sequential(*pair)), nn.ReLU(**kw)] if residual else pair + [nn.ReLU(**kw)]
    layers.append(nn.Linear(width, 10, **i))
    return nn.Sequential(*layers)


SEEDS = (3, 4, 5)


def depth_experiment(backend: Any, out: Path, quick: bool, log: Any = print, seeds: tuple[int, ...] = SEEDS
                     ) -> list[dict]:
    """Each configuration trained once per seed (initial weights and batch order); prints and returns
    the median over the seeds with the range.  One seed is not enough: a deep plain net's training
    is chaotic, so the last bit of a float (e.g. from another BLAS thread count) moves its numbers."""
    X, y = load_mnist_5k()
    Xtr, Xte, ytr, yte = train_test_split(X, y, 0.2, seed=0)
    epochs, depths = (1, (10,)) if quick else (3, (10, 25))
    b = nn.get_backend(backend)
    rows, results = [], {}
    log(f"[depth] median (min-max) over seeds {', '.join(map(str, seeds))}, {epochs} epoch(s) of SGD each")
    for init in ("torch", "he"):
        for pairs in depths:
            for residual in (False, True):
                runs = [_train_once(pairs, residual, init, b, seed, (Xtr, Xte, ytr, yte), epochs) for seed in seeds]
                g, curve = runs[0][0], runs[0][1]  # the figure shows the first seed
                ratio, loss, acc = (np.array(v) for v in zip(*[(r[0][0] / r[0][-1], r[2], r[3]) for r in runs]))
                name = f"{2 * pairs}-layer {'residual' if residual else 'plain'} MLP, init={init!r}"
                results[init, pairs, residual] = (g, curve)
                log(f"[depth] {name:38s}: |dW| first/last hidden layer at init {_spread(ratio, '.2g')}, "
                    f"training loss {_spread(loss, '.3f')}, hold-out accuracy {_spread(acc, '.3f')}")
                rows.append(_row(f"{name}: |dW| first/last at init (median)", _median(ratio), "ratio"))
                rows.append(_row(f"{name}: training loss after {epochs} epochs (median)", _median(loss), "nats"))
                rows.append(_row(f"{name}: hold-out accuracy (median)", _median(acc), "fraction"))
    from matplotlib.figure import Figure
    fig = Figure(figsize=(11, 4))
    a1, a2 = fig.subplots(1, 2)
    pairs = depths[-1]
    for (init, p, residual), (g, curve) in results.items():
        if p != pairs:
            continue
        label = f"{'residual' if residual else 'plain'}, init={init}"
        a1.semilogy(range(1, len(g) + 1), g, "o-", ms=3, label=label)
        c = np.asarray(curve, dtype=float)
        c = np.where(np.isfinite(c), c, np.nan)
        a2.plot(np.convolve(c, np.ones(10) / 10, mode="valid"), label=label)
    a1.set(xlabel="hidden layer (input side = 1)", ylabel="||dL/dW|| at initialisation",
           title=f"Gradient norm per layer, depth {2 * pairs}")
    a2.set(xlabel="SGD step", ylabel="training loss (10-step mean)", ylim=(0, 2.5),
           title=f"Training loss, depth {2 * pairs} (NaN: diverged)")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.savefig(out / "depth_init_vs_residual.png", dpi=80, bbox_inches="tight")
    return rows


def _train_once(pairs: int, residual: bool, init: str, b: Any, seed: int, data: tuple, epochs: int
                ) -> tuple[list[float], list[float], float, float]:
    """(hidden-layer gradient norms at init, loss per step, final loss (10-step mean), hold-out accuracy)."""
    Xtr, Xte, ytr, yte = data
    nn.manual_seed(seed)
    model = deep_mlp(pairs, residual, init, b)
    logits, backprop = model.forward(b.asarray(Xtr[:256]))
    _, d = nn.losses.softmax_cross_entropy(logits, b.asarray(ytr[:256]))
    model.zero_grad()
    backprop(d)
    g = _hidden_grad_norms(model)
    with np.errstate(all="ignore"):
        curve = train(model, Xtr, ytr, epochs=epochs, lr=0.02, seed=seed)
        return g, curve, float(np.mean(curve[-10:])), accuracy(model, Xte, yte)


def _spread(v: np.ndarray, fmt: str) -> str:
    """``"median (min-max)"`` (the lower median for an even count); NaN (a diverged run) sorts last."""
    lo, mid, hi = (format(q, fmt) for q in (_nan_last(v)[0], _median(v), _nan_last(v)[-1]))
    return mid if lo == hi else f"{mid} ({lo}-{hi})"


def _nan_last(v: np.ndarray) -> list[float]:
    return sorted(v.tolist(), key=lambda a: (np.isnan(a), a))


def _median(v: np.ndarray) -> float:
    """The (lower) median, NaN sorting last, as :func:`_spread` prints it."""
    return _nan_last(v)[(len(v) - 1) // 2]


def _row(item: str, value: float, unit: str = "") -> dict:
    return {"section": SECTION, "item": item, "value": value, "unit": unit}


def run(backend: str = "numpy", out_dir: Path = Path("out"), quick: bool = False) -> list[dict]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return depth_experiment(backend, out_dir, quick)
