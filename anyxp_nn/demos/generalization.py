"""Demo section "Generalization, inductive bias and representations" (docs/03, sections 6-8).

Four experiments, each a function that returns summary rows and saves one figure:

* :func:`capacity_experiment`: train/test accuracy of one-hidden-layer MLPs on the digits
  for several widths and training-set sizes; the gap shrinks with more data, and grows
  little with width once the training set is fitted.
* :func:`label_noise_experiment`: after Zhang et al. (2017), the same wide MLP fits
  training labels of which a fraction was replaced by random ones; it memorises them
  (training accuracy near 1) while test accuracy falls towards chance.
* :func:`scrambled_pixels_experiment`: a CNN and an MLP on 14x14 MNIST digits, with and
  without one fixed permutation of the pixels: the MLP does not care, the CNN loses its
  advantage because its locality assumption no longer holds.
* :func:`linear_probe_experiment`: a linear classifier (softmax regression) trained on the
  features of each layer of a trained CNN and of the same CNN at its random
  initialisation: how linearly decodable the classes become, layer by layer.

    python examples/neural_networks_examples.py --sections generalization [--quick]
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import anyxp_nn as nn
from anyxp_nn.datasets import load_digits, load_mnist_5k, train_test_split

from ._loop import EachEpoch, accuracy

__all__ = ["run", "mlp", "small_cnn", "fit", "accuracy", "capacity_experiment", "label_noise_experiment",
           "scrambled_pixels_experiment", "linear_probe_experiment", "linear_probe"]

SECTION = "Generalization"


def _row(item: str, value: float, unit: str = "") -> dict:
    return {"section": SECTION, "item": item, "value": value, "unit": unit}


def mlp(n_in: int, width: int, n_out: int, backend: Any, seed: int = 0) -> nn.Sequential:
    """Linear(n_in, width) - ReLU - Linear(width, n_out), He initialisation."""
    rng = nn.Generator(seed)
    return nn.Sequential(nn.Linear(n_in, width, rng=rng, backend=backend), nn.ReLU(backend=backend),
                         nn.Linear(width, n_out, rng=rng, backend=backend))


def small_cnn(backend: Any, seed: int = 0, width: int = 16) -> nn.Sequential:
    """For (N, 1, 14, 14) input: conv3x3(w) - ReLU - pool2 - conv3x3(2w) - ReLU - pool2 - Flatten - Linear(10)."""
    rng = nn.Generator(seed)
    kw = dict(rng=rng, backend=backend)
    return nn.Sequential(nn.Conv2D(1, width, 3, padding=1, **kw), nn.ReLU(backend=backend), nn.MaxPool2D(2, backend=backend),
                         nn.Conv2D(width, 2 * width, 3, padding=1, **kw), nn.ReLU(backend=backend),
                         nn.MaxPool2D(2, backend=backend), nn.Flatten(backend=backend),
                         nn.Linear(2 * width * 9, 10, **kw))


def fit(model: nn.Layer, X: np.ndarray, y: np.ndarray, *, epochs: int, lr: float = 1e-3, batch_size: int = 64,
        seed: int = 0, on_epoch: Any = None) -> None:
    """``nn.fit`` with Adam at a constant learning rate; ``on_epoch(epoch)`` after every epoch."""
    loader = nn.data.DataLoader(X, y, batch_size=batch_size, backend=model.backend, rng=nn.Generator(seed))
    each = [EachEpoch(lambda epoch, row: on_epoch(epoch))] if on_epoch is not None else []
    nn.fit(model, nn.optim.Adam(model.parameters(), lr=lr), nn.losses.softmax_cross_entropy, loader, epochs=epochs,
           metrics=(), callbacks=each, progress=False)


def _figure(ncols: int, width: float = 5.0, height: float = 3.6) -> tuple[Any, Any]:
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width * ncols, height))
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


# -- 1. model size and data size -------------------------------------------------------------------

def capacity_experiment(backend: Any, out: Path, quick: bool, log: Any = print) -> list[dict]:
    X, y = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, 0.2, seed=0)
    widths = (8, 64, 512) if quick else (4, 16, 64, 256, 1024)
    sizes = (100, 1437) if quick else (100, 300, 1437)
    epochs = 30 if quick else 100
    rows, table = [], {}
    for n in sizes:
        for w in widths:
            model = mlp(64, w, 10, backend, seed=0)
            # the same number of steps for every n: small sets get more epochs
            fit(model, Xtr[:n], ytr[:n], epochs=max(1, epochs * 1437 // (n * 4)), batch_size=32)
            tr, te = accuracy(model, Xtr[:n], ytr[:n]), accuracy(model, Xte, yte)
            table[n, w] = (tr, te)
            log(f"[generalization] n={n:5d} width={w:5d}: train {tr:.3f} test {te:.3f} gap {tr - te:.3f}")
            rows.append(_row(f"capacity: n={n}, width={w}: test accuracy (train {tr:.3f})", te))
    fig, (a1, a2) = _figure(2)
    for n in sizes:
        a1.plot(widths, [table[n, w][1] for w in widths], "o-", label=f"test, n={n}")
        a1.plot(widths, [table[n, w][0] for w in widths], "o--", alpha=0.5, label=f"train, n={n}")
        a2.plot(widths, [table[n, w][0] - table[n, w][1] for w in widths], "o-", label=f"n={n}")
    for a, t in ((a1, "accuracy"), (a2, "generalisation gap (train - test)")):
        a.set_xscale("log", base=2)
        a.set_xlabel("hidden width")
        a.set_title(t)
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle("One-hidden-layer MLPs on the digits: model size and data size", y=1.03)
    fig.savefig(out / "generalization_capacity.png", dpi=80, bbox_inches="tight")
    return rows


# -- 2. memorising random labels (Zhang et al., 2017) ---------------------------------------------

def label_noise_experiment(backend: Any, out: Path, quick: bool, log: Any = print) -> list[dict]:
    X, y = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(X, y, 0.2, seed=0)
    n = 500 if quick else 1000
    Xtr, ytr = Xtr[:n], ytr[:n]
    fractions = (0.0, 0.5, 1.0) if quick else (0.0, 0.2, 0.5, 0.8, 1.0)
    epochs = 60 if quick else 300
    rows, curves = [], {}
    for frac in fractions:
        rng = np.random.default_rng(1)
        noisy = ytr.copy()
        flip = rng.random(n) < frac
        noisy[flip] = rng.integers(0, 10, int(flip.sum()))   # a random label (may equal the true one)
        model = mlp(64, 512, 10, backend, seed=0)
        hist: list[tuple[float, float]] = []

        def record(epoch: int, model: nn.Layer = model, noisy: np.ndarray = noisy, hist: list = hist) -> None:
            if (epoch + 1) % max(1, epochs // 30) == 0 or epoch == epochs - 1:
                hist.append((epoch + 1, accuracy(model, Xtr, noisy), accuracy(model, Xte, yte)))

        fit(model, Xtr, noisy, epochs=epochs, batch_size=50, on_epoch=record)
        _, tr, te = hist[-1]
        curves[frac] = hist
        log(f"[generalization] label noise {frac:.0%}: train accuracy on the noisy labels {tr:.3f}, "
            f"test accuracy {te:.3f}")
        rows.append(_row(f"label noise {frac:.0%}: train accuracy on noisy labels", tr))
        rows.append(_row(f"label noise {frac:.0%}: test accuracy", te))
    fig, (a1, a2) = _figure(2)
    for frac, hist in curves.items():
        e, tr, te = zip(*hist)
        a1.plot(e, tr, label=f"{frac:.0%} random labels")
        a2.plot(e, te, label=f"{frac:.0%} random labels")
    a1.set_title("training accuracy (on the labels it was given)")
    a2.set_title("test accuracy (true labels)")
    for a in (a1, a2):
        a.set_xlabel("epoch")
        a.set_ylim(0, 1.02)
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle(f"MLP 64-512-10 on {n} digits: memorising random labels", y=1.03)
    fig.savefig(out / "generalization_label_noise.png", dpi=80, bbox_inches="tight")
    return rows


# -- 3. inductive bias: scrambled pixels -----------------------------------------------------------

def _mnist14(n_train: int, n_test: int) -> tuple[np.ndarray, ...]:
    X, y = load_mnist_5k(images=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, 0.2, seed=0)
    half = lambda a: a.reshape(len(a), 1, 14, 2, 14, 2).mean(axis=(3, 5)).astype(np.float32)  # noqa: E731
    return half(Xtr[:n_train]), half(Xte[:n_test]), ytr[:n_train], yte[:n_test]


def scrambled_pixels_experiment(backend: Any, out: Path, quick: bool, log: Any = print) -> list[dict]:
    n_train, n_test, epochs = (1000, 500, 4) if quick else (4000, 1000, 10)
    Xtr, Xte, ytr, yte = _mnist14(n_train, n_test)
    perm = np.random.default_rng(0).permutation(14 * 14)
    scramble = lambda a: a.reshape(len(a), -1)[:, perm].reshape(a.shape)  # noqa: E731
    rows, results = [], {}
    for data_name, (tr_x, te_x) in (("original", (Xtr, Xte)), ("scrambled", (scramble(Xtr), scramble(Xte)))):
        for model_name in ("CNN", "MLP"):
            if model_name == "CNN":
                model, a, b_ = small_cnn(backend), tr_x, te_x
            else:
                model, a, b_ = mlp(196, 256, 10, backend), tr_x.reshape(len(tr_x), -1), te_x.reshape(len(te_x), -1)
            fit(model, a, ytr, epochs=epochs)
            te = accuracy(model, b_, yte)
            results[model_name, data_name] = te
            log(f"[generalization] {model_name} on {data_name} pixels: test accuracy {te:.3f}")
            rows.append(_row(f"{model_name} on {data_name} 14x14 MNIST pixels: test accuracy", te))
    fig, axes = _figure(3, width=3.6, height=3.4)
    axes[0].imshow(Xtr[0, 0], cmap="gray")
    axes[0].set_title(f"a digit (label {ytr[0]})")
    axes[1].imshow(scramble(Xtr[:1])[0, 0], cmap="gray")
    axes[1].set_title("the same digit, pixels permuted")
    for a in axes[:2]:
        a.set_xticks([])
        a.set_yticks([])
    xs = np.arange(2)
    for k, model_name in enumerate(("CNN", "MLP")):
        axes[2].bar(xs + 0.38 * k, [results[model_name, d] for d in ("original", "scrambled")], width=0.36,
                    label=model_name)
    axes[2].set_xticks(xs + 0.19, ["original", "scrambled"])
    axes[2].set_ylim(min(results.values()) - 0.1, 1.0)
    axes[2].set_title("test accuracy")
    axes[2].legend(fontsize=8)
    fig.savefig(out / "generalization_scrambled.png", dpi=80, bbox_inches="tight")
    return rows


# -- 4. representation learning: a linear probe on every layer -------------------------------------

def linear_probe(Ftr: np.ndarray, ytr: np.ndarray, Fte: np.ndarray, yte: np.ndarray, backend: Any,
                 steps: int = 300) -> float:
    """Test accuracy of softmax regression (full-batch Adam) on standardised features."""
    mu, sd = Ftr.mean(axis=0), Ftr.std(axis=0) + 1e-6
    Ftr, Fte = ((Ftr - mu) / sd).astype(np.float32), ((Fte - mu) / sd).astype(np.float32)
    head = nn.Linear(Ftr.shape[1], 10, rng=nn.Generator(0), init="zeros", backend=backend)
    full_batch = nn.data.DataLoader(Ftr, ytr, batch_size=len(Ftr), shuffle=False, backend=backend)
    nn.fit(head, nn.optim.Adam(head.parameters(), lr=0.01), nn.losses.softmax_cross_entropy, full_batch,
           epochs=steps, metrics=(), progress=False)
    return accuracy(head, Fte, yte)


def _features(model: nn.Sequential, X: np.ndarray, upto: int) -> np.ndarray:
    b = model.backend
    h = model[:upto](b.asarray(X)) if upto > 0 else b.asarray(X)
    return b.to_numpy(h).reshape(len(X), -1)


def linear_probe_experiment(backend: Any, out: Path, quick: bool, log: Any = print) -> list[dict]:
    n_train, n_test, epochs = (1000, 500, 3) if quick else (4000, 1000, 10)
    Xtr, Xte, ytr, yte = _mnist14(n_train, n_test)
    n_probe = 500 if quick else 1000
    layers = [("pixels", 0), ("conv1+ReLU", 2), ("pool1", 3), ("conv2+ReLU", 5), ("pool2", 6)]
    trained = small_cnn(backend, seed=0)
    fit(trained, Xtr, ytr, epochs=epochs)
    random_init = small_cnn(backend, seed=0)
    rows, res = [], {}
    for name, model in (("trained", trained), ("random init", random_init)):
        for layer, upto in layers:
            acc = linear_probe(_features(model, Xtr[:n_probe], upto), ytr[:n_probe],
                               _features(model, Xte, upto), yte, backend)
            res[name, layer] = acc
            log(f"[generalization] linear probe on {layer:11s} of the {name:11s} CNN: test accuracy {acc:.3f}")
            rows.append(_row(f"linear probe, {name} CNN, {layer}: test accuracy", acc))
    fig, (ax,) = _figure(1, width=6.0)
    for name in ("trained", "random init"):
        ax.plot([l for l, _ in layers], [res[name, l] for l, _ in layers], "o-", label=f"{name} CNN")
    ax.set_ylabel(f"linear-probe test accuracy ({n_probe} training digits)")
    ax.set_title("How linearly decodable the classes are, layer by layer")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(out / "generalization_linear_probe.png", dpi=80, bbox_inches="tight")
    return rows


def run(backend: str = "numpy", out_dir: Path = Path("out"), quick: bool = False) -> list[dict]:
    b = nn.get_backend(backend)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for experiment in (capacity_experiment, label_noise_experiment, scrambled_pixels_experiment,
                       linear_probe_experiment):
        rows += experiment(b, out_dir, quick)
    return rows
