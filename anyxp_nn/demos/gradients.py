"""Demo section "Vanishing and Exploding Gradients".

1. A 10-hidden-layer MLP on digits in three set-ups: sigmoid with naive N(0, 1) weights,
   sigmoid with N(0, 0.01^2) weights (gradients vanish towards the input), and ReLU with
   He initialisation (gradients keep their size).  The per-layer gradient norms, update
   ratios and activation statistics come from :class:`anyxp_nn.monitor.GradientMonitor`
   while the nets train (no extra passes, one host read per logged step).
2. An exploding configuration: a deep ReLU net whose weights are 1.6x He's scale, so
   activations and gradients grow ~1.6x per layer; plain SGD with momentum diverges to
   NaN within a few steps, the same run with ``clip_grad_norm`` (max norm 5) trains.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.datasets import load_digits
from anyxp_nn.losses import softmax_cross_entropy
from anyxp_nn.monitor import GradientMonitor
from anyxp_nn.training import Callback, FitState

from ._loop import subplots

__all__ = ["CONFIGS", "GradNorms", "deep_mlp", "run"]

SECTION = "Vanishing and Exploding Gradients"
DEPTH, WIDTH = 10, 64


def _normal(std: float):
    return lambda shape, **kw: nn.init.normal(shape, std, **kw)


def _he_scaled(gain: float):
    return lambda shape, **kw: nn.init.he_normal(shape, gain=gain, **kw)


#: (label, activation, initialiser, SGD learning rate)
CONFIGS = [("sigmoid, N(0, 1)", nn.Sigmoid, _normal(1.0), 0.02),
           ("sigmoid, N(0, 0.01^2)", nn.Sigmoid, _normal(0.01), 0.02),
           ("ReLU, He", nn.ReLU, "he", 0.02)]


def deep_mlp(activation: type, init: Any, backend: Any, depth: int = DEPTH, width: int = WIDTH,
             seed: int = 0) -> nn.Sequential:
    """64 -> [width, activation] x depth -> 10."""
    nn.manual_seed(seed)
    layers: list[nn.Layer] = []
    d = 64
    for _ in range(depth):
        layers += [nn.Linear(d, width, init=init, backend=backend), activation(backend=backend)]
        d = width
    layers.append(nn.Linear(d, 10, init=init, backend=backend))
    return nn.Sequential(*layers)



class GradNorms(Callback):
    """Records the global L2 norm of the gradients at every optimizer step, before any
    clipping; the norms stay on the device (no sync per step)."""

    def __init__(self) -> None:
        self.norms: list[Any] = []

    def on_before_step(self, state: FitState) -> None:
        xp = state.model.backend.xp
        grads = [p.grad for p in state.model.parameters() if p.grad is not None]
        self.norms.append(xp.sqrt(sum(xp.sum(g * g) for g in grads)))


def _train(model: nn.Layer, opt: Any, X: np.ndarray, y: np.ndarray, steps: int, clip: float | None = None,
           batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``nn.fit`` for ``steps`` SGD steps on batches drawn with replacement (one epoch of
    ``steps * batch`` draws); returns host (loss per step, global grad norm per step)."""
    loader = nn.data.DataLoader(X, y, batch_size=batch, backend=model.backend, rng=nn.Generator(1),
                                replacement=True, samples_per_epoch=steps * batch)
    norms = GradNorms()
    history = nn.fit(model, opt, softmax_cross_entropy, loader, epochs=1, metrics=(), callbacks=[norms],
                     progress=False, clip_grad_norm=clip)
    b = model.backend
    return np.asarray(history.steps["loss"]), b.to_numpy(b.xp.stack(norms.norms))  # one read of the norms


def _vanishing(backend: str, out_dir: Path, quick: bool, X: np.ndarray, y: np.ndarray) -> list[dict]:
    steps = 40 if quick else 300
    rows = []
    fig, axes = subplots(1, 2, figsize=(13, 4.5))
    for label, act, init, lr in CONFIGS:
        model = deep_mlp(act, init, backend)
        opt = nn.optim.SGD(model, lr=lr, momentum=0.9)
        mon = GradientMonitor(model, opt, every=max(1, steps // 40))
        losses, _ = _train(model, opt, X, y, steps)
        mon.detach()
        first = [v[0] for v in mon.history["grad_norm"].values()]  # per Linear layer, input -> output, step 0
        axes[0].semilogy(range(1, len(first) + 1), first, marker="o", label=label)
        axes[1].plot(losses, label=label)
        slug = label.replace(",", "").replace(" ", "_").replace("(", "").replace(")", "").replace("^", "")
        if not quick or act is nn.Sigmoid and "0.01" in label:  # each figure costs ~1 s to draw
            mon.plot(out_dir / f"gradients_monitor_{slug}.png", title=f"Gradient flow while training: {label}")
        ratio = first[0] / first[-1]
        print(f"[gradients] {label:22s}: grad norm first/last layer at init {ratio:.2e}, "
              f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        rows.append({"section": SECTION, "item": f"{label}: grad norm layer 1 / layer {len(first)} at init",
                     "value": float(ratio), "unit": ""})
        rows.append({"section": SECTION, "item": f"{label}: training loss after {steps} steps",
                     "value": float(losses[-1]), "unit": ""})
    axes[0].set_xlabel("Linear layer (1 = next to the input)")
    axes[0].set_ylabel("||dL/dW|| at initialisation")
    axes[0].set_title(f"Per-layer gradient norms, {DEPTH} hidden layers (from GradientMonitor)")
    axes[1].set_xlabel("SGD step")
    axes[1].set_ylabel("training loss")
    axes[1].set_title("Training loss")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(out_dir / "gradients_vanishing.png", dpi=100, bbox_inches="tight")
    return rows


def _exploding(backend: str, out_dir: Path, quick: bool, X: np.ndarray, y: np.ndarray) -> list[dict]:
    steps = 60 if quick else 300
    rows = []
    fig, axes = subplots(1, 2, figsize=(13, 4.5))
    for label, clip in [("no clipping", None), ("clip_grad_norm(max_norm=5)", 5.0)]:
        model = deep_mlp(nn.ReLU, _he_scaled(1.6), backend)
        opt = nn.optim.SGD(model, lr=0.01, momentum=0.9)
        with warnings.catch_warnings(), np.errstate(all="ignore"):  # the unclipped run overflows on purpose
            warnings.simplefilter("ignore", RuntimeWarning)
            losses, norms = _train(model, opt, X, y, steps, clip=clip)
        axes[0].semilogy(np.where(np.isfinite(losses), losses, np.nan), label=label)
        axes[1].semilogy(np.where(np.isfinite(norms), norms, np.nan), label=label)
        finite = np.isfinite(losses)
        diverged = int(np.argmin(finite)) if not finite.all() else -1
        final = float(losses[-1])
        print(f"[gradients] exploding net, {label:27s}: initial grad norm {norms[0]:.3g}, "
              + (f"loss non-finite from step {diverged}" if diverged >= 0 else f"final loss {final:.3f}"))
        rows.append({"section": SECTION, "item": f"exploding ReLU net (1.6x He), {label}: final loss",
                     "value": final, "unit": ""})
        rows.append({"section": SECTION, "item": f"exploding ReLU net, {label}: first non-finite step",
                     "value": diverged, "unit": "step (-1: none)"})
    axes[0].set_title("Training loss (gaps: NaN/inf)")
    axes[1].set_title("Global gradient norm before clipping")
    for ax in axes:
        ax.set_xlabel("SGD step")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(out_dir / "gradients_exploding_clipping.png", dpi=100, bbox_inches="tight")
    return rows


def run(backend: str = "numpy", out_dir: Path = Path("out"), quick: bool = False) -> list[dict]:
    """Run the section; figures go to ``out_dir``; returns summary rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    X, y = load_digits()
    rows = _vanishing(backend, out_dir, quick, X, y)
    rows += _exploding(backend, out_dir, quick, X, y)
    return rows
