"""Demo section "Stochastic Gradient Descent".

1. Trajectories of every optimizer on two 2-D test functions (Rosenbrock's valley and an
   ill-conditioned quadratic) drawn over contour lines; the 2-D point is a Parameter
   updated by anyxp_nn's optimizers, its gradient computed on the chosen backend.
2. Every optimizer training the same MLP (same initial weights) on scikit-learn's digits:
   loss curves and hold-out accuracy.
3. Full-batch vs mini-batch vs single-sample SGD: loss per epoch and per second.
4. The learning-rate schedules of ``anyxp_nn.optim`` over the steps of a run.

(The one-hidden-layer ``SimpleNeuralNetwork`` trained by SGD lives in the MLP section.)
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

import anyxp_nn as nn
from anyxp_nn.datasets import load_digits, train_test_split
from anyxp_nn.losses import softmax_cross_entropy
from anyxp_nn.parameter import Parameter

from ._loop import EachEpoch, subplots

__all__ = ["run", "rosenbrock", "ill_conditioned_quadratic", "OPTIMIZERS", "trajectory"]

SECTION = "Stochastic Gradient Descent"

#: (label, class name, kwargs) per test function; learning rates tuned by hand for each
OPTIMIZERS: dict[str, list[tuple[str, str, dict]]] = {
    "rosenbrock": [
        ("SGD", "SGD", dict(lr=1.5e-3)), ("Momentum", "SGD", dict(lr=1e-3, momentum=0.9)),
        ("Nesterov", "SGD", dict(lr=1e-3, momentum=0.9, nesterov=True)), ("Adam", "Adam", dict(lr=0.02)),
        ("AdamW", "AdamW", dict(lr=0.02, weight_decay=0.01)), ("RMSprop", "RMSprop", dict(lr=2e-3)),
        ("Adagrad", "Adagrad", dict(lr=0.3))],
    "quadratic": [
        ("SGD", "SGD", dict(lr=0.075)), ("Momentum", "SGD", dict(lr=0.02, momentum=0.9)),
        ("Nesterov", "SGD", dict(lr=0.02, momentum=0.9, nesterov=True)), ("Adam", "Adam", dict(lr=0.3)),
        ("AdamW", "AdamW", dict(lr=0.3, weight_decay=0.01)), ("RMSprop", "RMSprop", dict(lr=0.05)),
        ("Adagrad", "Adagrad", dict(lr=1.5))],
}

#: the same MLP trained by each optimizer on digits
MLP_OPTIMIZERS = [("SGD", "SGD", dict(lr=0.1)), ("Momentum", "SGD", dict(lr=0.05, momentum=0.9)),
                  ("Nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
                  ("Adam", "Adam", dict(lr=2e-3)), ("AdamW", "AdamW", dict(lr=2e-3, weight_decay=0.05)),
                  ("RMSprop", "RMSprop", dict(lr=1e-3)), ("Adagrad", "Adagrad", dict(lr=0.05))]


def rosenbrock(xp: Any, p: Any) -> tuple[Any, Any]:
    """f(x, y) = (1 - x)^2 + 100 (y - x^2)^2 and its gradient; minimum 0 at (1, 1)."""
    x, y = p[0], p[1]
    r = y - x * x
    return (1.0 - x) ** 2 + 100.0 * r * r, xp.stack([-2.0 * (1.0 - x) - 400.0 * x * r, 200.0 * r])


def ill_conditioned_quadratic(xp: Any, p: Any) -> tuple[Any, Any]:
    """f(x, y) = (x^2 + 25 y^2) / 2 (condition number 25) and its gradient; minimum at 0."""
    x, y = p[0], p[1]
    return 0.5 * (x * x + 25.0 * y * y), xp.stack([x, 25.0 * y])


FUNCTIONS = {"rosenbrock": (rosenbrock, (-1.2, 1.0), (-2.0, 2.0, -1.0, 3.0)),
             "quadratic": (ill_conditioned_quadratic, (-4.0, 1.5), (-4.5, 1.5, -2.0, 2.0))}


def trajectory(backend: Any, fn: Callable, start: tuple[float, float], cls: str, kw: dict,
               steps: int) -> np.ndarray:
    """Run an optimizer on a 2-D function from ``start``; returns the (steps + 1, 2) path on the host."""
    b = nn.get_backend(backend)
    p = Parameter(b.asarray(np.array(start, np.float32)))
    opt = getattr(nn.optim, cls)([p], **kw)
    path = [b.xp.asarray(p.data, copy=True)]
    for _ in range(steps):
        _, p.grad = fn(b.xp, p.data)
        opt.step()
        path.append(b.xp.asarray(p.data, copy=True))
    return b.to_numpy(b.xp.stack(path))  # one host read for the whole path



def _trajectories(backend: str, out_dir: Path, quick: bool) -> list[dict]:
    rows = []
    fig, axes = subplots(1, 2, figsize=(14, 6))
    for ax, (name, (fn, start, (x0, x1, y0, y1))) in zip(axes, FUNCTIONS.items()):
        steps = {"rosenbrock": 2000, "quadratic": 60}[name]
        xx, yy = np.meshgrid(np.linspace(x0, x1, 300), np.linspace(y0, y1, 300))
        zz, _ = fn(np, np.stack([xx, yy]))
        levels = np.logspace(-2, 3.5, 25) if name == "rosenbrock" else np.logspace(-2, 2, 20)
        ax.contour(xx, yy, zz, levels=levels, norm=_lognorm(), cmap="Greys", linewidths=0.6)
        for label, cls, kw in OPTIMIZERS[name]:
            path = trajectory(backend, fn, start, cls, kw, steps)
            final = float(fn(np, path[-1].astype(np.float64))[0])
            ax.plot(path[:, 0], path[:, 1], lw=1.3, label=f"{label} (f={final:.2g})")
            rows.append({"section": SECTION, "item": f"{name}: final f after {steps} steps, {label}",
                         "value": final, "unit": ""})
        ax.plot(*start, "ko")
        ax.plot(*((1.0, 1.0) if name == "rosenbrock" else (0.0, 0.0)), "r*", ms=12)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_title(f"{name}: {steps} steps")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "sgd_trajectories.png", dpi=100, bbox_inches="tight")
    return rows


def _lognorm():
    from matplotlib.colors import LogNorm
    return LogNorm()


def _mlp(backend: Any, seed: int = 0) -> nn.Sequential:
    nn.manual_seed(seed)
    kw = dict(backend=backend)
    return nn.Sequential(nn.Linear(64, 64, **kw), nn.ReLU(**kw), nn.Linear(64, 10, **kw))


def _loss_and_acc(model: nn.Layer, X: Any, y: Any) -> tuple[Any, Any]:
    """Device scalars: mean loss and accuracy (read later, together)."""
    xp = model.backend.xp
    logits = model(X)
    loss, _ = softmax_cross_entropy(logits, y, check_labels=False)
    acc = xp.mean(xp.astype(xp.argmax(logits, axis=1) == y, logits.dtype))
    return loss, acc


def _digits_optimizers(backend: str, out_dir: Path, quick: bool, data: tuple) -> list[dict]:
    Xtr, Xte, ytr, yte = data
    b = nn.get_backend(backend)
    Xtr_d, ytr_d, Xte_d, yte_d = b.asarray(Xtr), b.asarray(ytr), b.asarray(Xte), b.asarray(yte)
    epochs = 6 if quick else 30
    rows = []
    fig, ax = subplots(figsize=(7, 4.5))
    for label, cls, kw in MLP_OPTIMIZERS:
        model = _mlp(b)
        opt = getattr(nn.optim, cls)(model, **kw)
        stats = [_loss_and_acc(model, Xtr_d, ytr_d)]
        loader = nn.data.DataLoader(Xtr, ytr, batch_size=32, backend=b, rng=nn.Generator(1))
        nn.fit(model, opt, softmax_cross_entropy, loader, epochs=epochs, metrics=(), progress=False,
               callbacks=[EachEpoch(lambda epoch, row: stats.append(_loss_and_acc(model, Xtr_d, ytr_d)))])
        test = _loss_and_acc(model, Xte_d, yte_d)[1]
        host = b.to_numpy(b.xp.stack([s for pair in stats for s in pair] + [test]))  # one read per run
        losses, acc = host[0:-1:2], float(host[-1])
        ax.plot(range(epochs + 1), losses, marker=".", label=f"{label} (test acc {acc:.3f})")
        rows.append({"section": SECTION, "item": f"digits MLP 64-64-10, {epochs} epochs, {label}: test accuracy",
                     "value": acc, "unit": ""})
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title("Same MLP, same initial weights, different optimizers (digits, batch 32)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(out_dir / "sgd_optimizers_digits.png", dpi=100, bbox_inches="tight")
    return rows


def _batch_sizes(backend: str, out_dir: Path, quick: bool, data: tuple) -> list[dict]:
    Xtr, _, ytr, _ = data
    if quick:
        Xtr, ytr = Xtr[:600], ytr[:600]
    b = nn.get_backend(backend)
    X_d, y_d = b.asarray(Xtr), b.asarray(ytr)
    epochs = 8 if quick else 30
    rows = []
    fig, axes = subplots(1, 2, figsize=(12, 4.5))
    for label, batch, lr in [("full batch (GD)", len(Xtr), 0.5), ("mini-batch 32", 32, 0.1),
                             ("single sample", 1, 0.01)]:
        model = _mlp(b)
        opt = nn.optim.SGD(model, lr=lr)
        stats = [_loss_and_acc(model, X_d, y_d)[0]]
        loader = nn.data.DataLoader(Xtr, ytr, batch_size=batch, backend=b, rng=nn.Generator(1))
        history = nn.fit(model, opt, softmax_cross_entropy, loader, epochs=epochs, metrics=(), progress=False,
                         callbacks=[EachEpoch(lambda epoch, row: stats.append(_loss_and_acc(model, X_d, y_d)[0]))])
        times = [0.0, *np.cumsum(history.epochs["time_s"])]  # fit's epoch times leave out the callbacks
        losses = b.to_numpy(b.xp.stack(stats))
        axes[0].plot(range(epochs + 1), losses, marker="o", label=label)
        axes[1].plot(times[1:], losses[1:], marker="o", label=label)
        per_epoch = times[-1] / epochs
        steps = math.ceil(len(Xtr) / batch)
        print(f"[sgd] {label:16s}: {steps:4d} steps/epoch, {per_epoch * 1e3:7.1f} ms/epoch, "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        rows.append({"section": SECTION, "item": f"{label}: time per epoch", "value": per_epoch, "unit": "s"})
        rows.append({"section": SECTION, "item": f"{label}: training loss after {epochs} epochs",
                     "value": float(losses[-1]), "unit": ""})
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("seconds (log scale)")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.set_ylabel("training loss")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_title("per epoch: small batches make more progress")
    axes[1].set_title("per second: small batches pay per-step overhead")
    fig.savefig(out_dir / "sgd_batch_sizes.png", dpi=100, bbox_inches="tight")
    return rows


def _schedules(out_dir: Path) -> None:
    o, total = nn.optim, 300
    scheds = [("constant(0.1)", o.constant(0.1)), ("step_decay(0.1, 100, 0.5)", o.step_decay(0.1, 100, 0.5)),
              ("exponential_decay(0.1, 0.99)", o.exponential_decay(0.1, 0.99)),
              ("cosine_annealing(0.1, 300)", o.cosine_annealing(0.1, total)),
              ("linear_warmup(0.1, 30)", o.linear_warmup(0.1, 30)),
              ("warmup_cosine(0.1, 30, 300)", o.warmup_cosine(0.1, 30, total, min_lr=0.005)),
              ("sequential([0.1, cosine], [150])", o.sequential([0.1, o.cosine_annealing(0.1, 150)], [150]))]
    fig, ax = subplots(figsize=(8, 4.5))
    for label, s in scheds:
        ax.plot(range(total), [s(k) for k in range(total)], label=label)
    ax.set_xlabel("optimizer step k")
    ax.set_ylabel("learning rate schedule(k)")
    ax.set_title("Learning-rate schedules (anyxp_nn.optim)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(out_dir / "sgd_schedules.png", dpi=100, bbox_inches="tight")


def run(backend: str = "numpy", out_dir: Path = Path("out"), quick: bool = False) -> list[dict]:
    """Run the section; figures go to ``out_dir``; returns summary rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _trajectories(backend, out_dir, quick)
    X, y = load_digits()
    data = train_test_split(X, y, 0.2, seed=0)
    rows += _digits_optimizers(backend, out_dir, quick, data)
    rows += _batch_sizes(backend, out_dir, quick, data)
    _schedules(out_dir)
    return rows
