"""Demo section "MLPs and Backpropagation".

1. SimpleNeuralNetwork: one hidden layer trained with SGD + momentum on 2-D
   spirals; figure: its decision boundary.
2. Activation functions and the derivatives their backprop closures compute.
3. Weight initialisation: activation spread through a 10-layer net for
   N(0, 0.01^2), Xavier and He.
4. MLP on scikit-learn's digits (>= 97% hold-out) and on the MNIST 5,000-image
   subset (>= 95%), with a cosine learning-rate schedule and label smoothing;
   prints accuracy and seconds per epoch.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.datasets import load_digits, load_mnist_5k, make_spirals, train_test_split
from anyxp_nn.losses import softmax_cross_entropy

from ._loop import accuracy, subplots

__all__ = ["SimpleNeuralNetwork", "MLP", "train_classifier", "accuracy", "run"]

SECTION = "MLPs and Backpropagation"


class SimpleNeuralNetwork:
    """The smallest useful network: x -> Linear -> tanh -> Linear -> softmax, trained by SGD.

    Args:
        n_inputs, n_hidden, n_classes: layer sizes.
        lr, momentum: SGD settings.
    """

    def __init__(self, n_inputs: int, n_hidden: int, n_classes: int, lr: float = 0.5, momentum: float = 0.9,
                 backend: Any = None, seed: int = 0):
        nn.manual_seed(seed)
        self.backend = nn.get_backend(backend)
        kw = dict(backend=self.backend)
        self.model = nn.Sequential(nn.Linear(n_inputs, n_hidden, init="xavier", **kw), nn.Tanh(**kw),
                                   nn.Linear(n_hidden, n_classes, init="xavier", **kw))
        self.optimizer = nn.optim.SGD(self.model.parameters(), lr=lr, momentum=momentum)

    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 300) -> list[float]:
        """Full-batch gradient descent; returns the loss per epoch.

        Written out on purpose, the from-scratch version of what ``nn.fit`` does (forward,
        loss, backprop, step); the other demos call ``nn.fit``."""
        b = self.backend
        xb, yb = b.asarray(X, dtype="float32"), b.asarray(y)
        losses = []
        for _ in range(epochs):
            logits, backprop = self.model.forward(xb)
            loss, dlogits = softmax_cross_entropy(logits, yb)
            self.model.zero_grad()
            backprop(dlogits, need_dx=False)
            self.optimizer.step()
            losses.append(loss)
        return [b.item(v) for v in losses]  # one read per value, after training

    def predict(self, X: np.ndarray) -> np.ndarray:
        logits = self.model(self.backend.asarray(X, dtype="float32"))
        return np.argmax(self.backend.to_numpy(logits), axis=1)


def MLP(sizes: tuple[int, ...], activation: type = nn.ReLU, backend: Any = None, init: str = "he") -> nn.Sequential:
    """Linear/activation stack: ``sizes = (in, hidden..., out)``."""
    layers: list[nn.Layer] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b, init=init, backend=backend))
        if i < len(sizes) - 2:
            layers.append(activation(backend=backend))
    return nn.Sequential(*layers)


def train_classifier(model: nn.Layer, X: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int = 64,
                     lr: float = 0.05, weight_decay: float = 5e-4, label_smoothing: float = 0.1,
                     seed: int = 1) -> tuple[list[float], float]:
    """``nn.fit``: mini-batch SGD (momentum 0.9) with a cosine schedule and label smoothing;
    returns (loss per epoch, seconds per epoch)."""
    loader = nn.data.DataLoader(X, y, batch_size=batch_size, backend=model.backend, rng=nn.Generator(seed))
    opt = nn.optim.SGD(model.parameters(), lr=nn.optim.cosine_annealing(lr, epochs * len(loader)), momentum=0.9,
                       weight_decay=weight_decay)
    # labels were range-checked on the host by fit, so the loss skips its per-step device check
    loss_fn = functools.partial(softmax_cross_entropy, label_smoothing=label_smoothing, check_labels=False)
    history = nn.fit(model, opt, loss_fn, loader, epochs=epochs, metrics=(), progress=False)
    return list(history.epochs["loss"]), float(np.mean(history.epochs["time_s"]))



def _decision_boundary(net: SimpleNeuralNetwork, X: np.ndarray, y: np.ndarray, path: Path) -> None:
    xx, yy = np.meshgrid(np.linspace(X[:, 0].min() - 0.2, X[:, 0].max() + 0.2, 200),
                         np.linspace(X[:, 1].min() - 0.2, X[:, 1].max() + 0.2, 200))
    grid = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    zz = net.predict(grid).reshape(xx.shape)
    fig, ax = subplots(figsize=(5, 5))
    ax.contourf(xx, yy, zz, alpha=0.3, cmap="viridis")
    ax.scatter(X[:, 0], X[:, 1], c=y, s=10, cmap="viridis", edgecolors="k", linewidths=0.2)
    ax.set_title("SimpleNeuralNetwork: decision boundary on spirals")
    fig.savefig(path, dpi=100, bbox_inches="tight")


def _activations(backend: Any, path: Path) -> None:
    b = nn.get_backend(backend)
    x = b.asarray(np.linspace(-4, 4, 401), dtype="float32")
    layers = [nn.ReLU(backend=b), nn.LeakyReLU(0.1, backend=b), nn.Sigmoid(backend=b), nn.Tanh(backend=b),
              nn.GELU(backend=b)]
    fig, axes = subplots(1, 2, figsize=(10, 4))
    for layer in layers:
        y, backprop = layer.forward(x)
        dydx = backprop(b.xp.ones_like(x))  # the derivative, from the layer's own backward
        name = type(layer).__name__
        axes[0].plot(b.to_numpy(x), b.to_numpy(y), label=name)
        axes[1].plot(b.to_numpy(x), b.to_numpy(dydx), label=name)
    axes[0].set_title("activation f(x)")
    axes[1].set_title("derivative f'(x) from backprop")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")


def _init_spread(backend: Any, path: Path) -> list[dict]:
    """Std of activations layer by layer in a 10-layer net, for three initialisations."""
    b = nn.get_backend(backend)
    x0 = nn.Generator(0).normal((256, 256), backend=b)
    fig, ax = subplots(figsize=(6, 4))
    rows = []
    for label, init, act in [("N(0, 0.01^2) + tanh", lambda s, **k: nn.init.normal(s, 0.01, **k), nn.Tanh),
                             ("Xavier + tanh", "xavier", nn.Tanh), ("He + ReLU", "he", nn.ReLU)]:
        nn.manual_seed(0)
        x, stds = x0, []
        for _ in range(10):
            x = act(backend=b)(nn.Linear(256, 256, init=init, backend=b)(x))
            stds.append(x)
        values = b.to_numpy(b.xp.stack([b.xp.std(s) for s in stds]))  # one host read
        ax.semilogy(range(1, 11), values, marker="o", label=label)
        rows.append({"section": SECTION, "item": f"activation std after 10 layers, {label}",
                     "value": float(values[-1]), "unit": ""})
    ax.set_xlabel("layer")
    ax.set_ylabel("activation std")
    ax.set_title("Weight initialisation and signal propagation")
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return rows


def run(backend: str = "numpy", out_dir: Path = Path("out"), quick: bool = False) -> list[dict]:
    """Run the section; figures go to ``out_dir``; returns summary rows."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []

    X, y = make_spirals(100 if quick else 200, seed=0)
    net = SimpleNeuralNetwork(2, 64, 3, backend=backend)
    losses = net.fit(X, y, epochs=200 if quick else 1000)
    acc = float(np.mean(net.predict(X) == y))
    _decision_boundary(net, X, y, out_dir / "mlp_decision_boundary.png")
    print(f"[mlp] SimpleNeuralNetwork on spirals: loss {losses[0]:.3f} -> {losses[-1]:.3f}, train accuracy {acc:.3f}")
    rows.append({"section": SECTION, "item": "SimpleNeuralNetwork spirals train accuracy", "value": acc, "unit": ""})

    _activations(backend, out_dir / "mlp_activations.png")
    rows += _init_spread(backend, out_dir / "mlp_init_spread.png")

    fig, ax = subplots(figsize=(6, 4))
    for name, loader, hidden, epochs, quick_epochs, batch in [
            ("digits", load_digits, (256, 128), 40, 8, 32), ("MNIST-5k", load_mnist_5k, (512, 256), 30, 3, 64)]:
        Xa, ya = loader()
        Xtr, Xte, ytr, yte = train_test_split(Xa, ya, 0.2, seed=0)
        if quick and name == "MNIST-5k":
            Xtr, ytr = Xtr[:1500], ytr[:1500]
        nn.manual_seed(0)
        model = MLP((Xa.shape[1], *hidden, 10), backend=backend)
        hist, sec = train_classifier(model, Xtr, ytr, epochs=quick_epochs if quick else epochs, batch_size=batch)
        acc = accuracy(model, Xte, yte)
        print(f"[mlp] MLP {(Xa.shape[1], *hidden, 10)} on {name}: hold-out accuracy {acc:.4f}, "
              f"{sec:.3f} s/epoch on {backend}")
        ax.plot(range(1, len(hist) + 1), hist, label=name)
        rows.append({"section": SECTION, "item": f"MLP {name} hold-out accuracy", "value": acc, "unit": ""})
        rows.append({"section": SECTION, "item": f"MLP {name} time per epoch", "value": sec, "unit": "s"})
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (label-smoothed)")
    ax.set_title("MLP training")
    ax.legend()
    fig.savefig(out_dir / "mlp_training_loss.png", dpi=100, bbox_inches="tight")
    return rows
