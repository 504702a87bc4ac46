"""``python -m anyxp_nn check``: train a reference model on every backend from one seed and diff.

The reference model is a small CNN on the 8x8 digits with BatchNorm, Dropout and
augmentation (random flips and crops), so random draws are covered as well as
convolutions and running statistics (``--model mlp``: an MLP with BatchNorm1D and
Dropout instead).

Exit status: 0 when every backend agrees within the float tolerance, 1 when one
diverges, fails or a layer is flagged (the culprit is printed), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

import numpy as np

from .. import layers as L
from ..augment import Compose, RandomCrop, RandomFlip
from ..backend import available_backends, get_backend
from ..datasets import load_digits
from ..optim import SGD
from .compare import compare_backends

__all__ = ["main", "reference_model", "reference_data", "default_backends"]


def default_backends() -> list[str]:
    """Every available backend, plus ``array_api_strict:device1`` (catches a missing ``device=``)."""
    names = available_backends()
    if "array_api_strict" in names:
        names.insert(names.index("array_api_strict") + 1, "array_api_strict:device1")
    return names


def reference_data(n: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(x (N, 1, 8, 8) float32 in [0, 1], y (N,) int64, description): digits, else synthetic blobs."""
    try:
        x, y = load_digits(images=True)
        return x[:n], y[:n], f"{min(n, len(x))} sklearn digits (1x8x8)"
    except ImportError:  # no scikit-learn: class-dependent blobs of the same shape
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 10, n)
        centers = rng.uniform(0, 1, (10, 1, 8, 8))
        x = np.clip(centers[y] + 0.2 * rng.standard_normal((n, 1, 8, 8)), 0, 1).astype(np.float32)
        return x, y.astype(np.int64), f"{n} synthetic 1x8x8 images (scikit-learn not installed)"


def reference_model(kind: str = "auto") -> tuple[Callable[..., Any], Callable[[Any], Any], str]:
    """``(build_model, augment, description)`` for ``kind`` in "auto" (the CNN), "cnn", "mlp".

    Both models take (N, 1, 8, 8) input; the augmentation is random flips and crops.
    """
    if kind not in ("auto", "cnn", "mlp"):
        raise ValueError(f"check: `--model` must be auto, cnn or mlp, got {kind!r}")
    augment = Compose([RandomFlip(), RandomCrop(8, padding=1)])
    aug_desc = ", augment: flip + crop(pad 1)"
    if kind in ("auto", "cnn"):
        def build(backend: Any = None, dtype: Any = None) -> Any:
            kw = dict(backend=backend, dtype=dtype)
            return L.Sequential(
                L.Conv2D(1, 8, 3, padding=1, **kw), L.BatchNorm2D(8, **kw), L.ReLU(**kw),
                L.MaxPool2D(2, **kw),                                               # (N, 8, 4, 4)
                L.Conv2D(8, 16, 3, padding=1, **kw), L.BatchNorm2D(16, **kw), L.ReLU(**kw),
                L.MaxPool2D(2, **kw), L.Flatten(**kw),                              # (N, 64)
                L.Dropout(0.25, **kw), L.Linear(64, 10, **kw))
        return build, augment, "CNN conv8-bn-relu-pool-conv16-bn-relu-pool-dropout-linear" + aug_desc

    def build_mlp(backend: Any = None, dtype: Any = None) -> Any:
        kw = dict(backend=backend, dtype=dtype)
        return L.Sequential(L.Flatten(**kw), L.Linear(64, 32, **kw), L.BatchNorm1D(32, **kw),  # (N, 64) -> (N, 32)
                            L.ReLU(**kw), L.Dropout(0.25, **kw), L.Linear(32, 10, **kw))
    return build_mlp, augment, "MLP 64-32-10 (Linear+ReLU+BatchNorm1D+Dropout)" + aug_desc


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anyxp-nn check", description="Train one reference model from one seed "
                                "on every backend and report where they diverge.")
    p.add_argument("--backend", "--backends", dest="backends", default=None,
                   help="comma-separated backends; numpy is always the reference "
                        f"(default: {','.join(default_backends())})")
    p.add_argument("--steps", type=int, default=10, help="training steps per backend (default 10)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="auto", choices=("auto", "cnn", "mlp"))
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (momentum 0.9)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON here")
    return p


def main(argv: "list[str] | None" = None) -> int:
    """Run the check; print the table; 0 when all agree, 1 when not, 2 for bad arguments."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:   # `anyxp-nn check -- --steps 5`
        argv = argv[1:]
    args = _parser().parse_args(argv)
    try:
        if args.backends:
            asked = [get_backend(s.strip()).label for s in args.backends.split(",") if s.strip()]
            backends = ["numpy"] + [b for b in asked if b != "numpy"]
            if len(backends) < 2:
                raise ValueError("check: name at least one backend besides numpy, the reference "
                                 f"(available: {', '.join(default_backends())})")
        else:
            backends = default_backends()
        if args.steps < 1:
            raise ValueError(f"check: `--steps` must be >= 1, got {args.steps}")
        build, augment, desc = reference_model(args.model)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x, y, data_desc = reference_data()
    print(f"model: {desc}\ndata: {data_desc}; backends: {', '.join(backends)}", flush=True)
    t0 = time.perf_counter()
    report = compare_backends(build, (x, y), backends, steps=args.steps, batch_size=args.batch_size,
                              seed=args.seed, dtype=args.dtype, augment=augment,
                              optimizer=lambda ps: SGD(ps, lr=args.lr, momentum=0.9))
    print(report.table())
    checked = len({r.layer for r in report.layers})
    print(f"layer pass: {checked} layers x {len(backends)} backends; {time.perf_counter() - t0:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": desc, "data": data_desc, **report.to_dict()}, f, indent=1)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
