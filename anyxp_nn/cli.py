"""Command line: ``anyxp-nn`` / ``python -m anyxp_nn``.

Subcommands::

    backends   table of the backends: usable, version, device, why not
    demo       run the demonstration sections (as examples/neural_networks_examples.py)
    train      train mlp | cnn | resnet on digits | mnist; history plot + metrics JSON
    check      the cross-backend checks (anyxp_nn.testing.check)
    bench      benchmarks/*.py if present, else a quick MLP step timing
    export     a checkpoint's model as ONNX or safetensors (anyxp_nn.export)

Every subcommand takes ``--backend``.  Errors print one line
(``anyxp-nn: error: ...``) and exit with status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]

PROG = "anyxp-nn"


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + error
        raise UsageError(f"{message} (see {self.prog} --help)")


def _backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=None,
                   help="numpy | array_api_strict | torch | cupy, optionally with a device, e.g. torch:cuda "
                        "(default: $ANYXP_BACKEND or numpy)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="anyxp_nn: deep learning written once against the Array API.")
    sub = parser.add_subparsers(dest="command", metavar="{backends,demo,train,check,bench,export}", parser_class=_Parser)

    p = sub.add_parser("backends", help="list the backends and why any is unusable")
    _backend_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser("demo", help="run the demonstration sections (figures + summary table)")
    _backend_arg(p)
    p.add_argument("--out", default="out", help="folder for figures and the summary (default: ./out)")
    p.add_argument("--sections", default=None, help="comma-separated sections (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes (under ~2 minutes on a CPU)")

    p = sub.add_parser("train", help="train a model; writes history.png and metrics.json to --out")
    _backend_arg(p)
    p.add_argument("--model", choices=("mlp", "cnn", "resnet"), default="mlp")
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--optimizer", choices=tuple(_OPTIMIZERS), default="adam")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: per optimizer)")
    p.add_argument("--schedule", choices=("constant", "cosine", "step", "warmup_cosine"), default="constant",
                   help="per-step learning-rate schedule")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="save the training state here every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--out", default="out/train", help="folder for history.png and metrics.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("check", help="cross-backend checks (anyxp_nn.testing.check); extra arguments pass through")
    _backend_arg(p)
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for anyxp_nn.testing.check")

    p = sub.add_parser("bench", help="run benchmarks/*.py (from the current folder or the source tree), "
                                     "or a quick MLP step timing")
    _backend_arg(p)
    p.add_argument("--builtin", action="store_true", help="only the built-in MLP step timing")
    p.add_argument("--steps", type=int, default=50, help="timed steps of the built-in benchmark")
    p.add_argument("--batch-size", type=int, default=128)
    _export_parser(sub)
    return parser


# -- backends -----------------------------------------------------------------------
def cmd_backends(args: argparse.Namespace) -> int:
    from .backend import backend_report, get_backend
    rows = backend_report()
    if args.backend:
        b = get_backend(args.backend)  # raises a clear ValueError for an unusable one
        rows = [r for r in rows if r["name"] == b.name]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from .demos.runner import format_table
    print(format_table([{**r, "why not": r["reason"]} for r in rows],
                       ("name", "usable", "version", "device", "why not")))
    return 0


# -- demo ---------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from .demos.runner import main as demo_main
    argv = ["--out", args.out] + (["--quick"] if args.quick else [])
    argv += ["--backend", args.backend] if args.backend else []
    argv += ["--sections", args.sections] if args.sections else []
    return demo_main(argv, prog=f"{PROG} demo")


# -- train --------------------------------------------------------------------------
_OPTIMIZERS = {"sgd": ("SGD", 0.05, {"momentum": 0.9}), "adam": ("Adam", 1e-3, {}),
               "adamw": ("AdamW", 1e-3, {}), "rmsprop": ("RMSprop", 1e-3, {}), "adagrad": ("Adagrad", 1e-2, {})}


def _builder(name: str) -> Any:
    from . import models
    attr = {"mlp": "mlp", "cnn": "mnist_cnn", "resnet": "small_resnet"}[name]
    fn = getattr(models, attr, None)
    if fn is None:
        raise UsageError(f"--model {name}: anyxp_nn.models.{attr} does not exist yet in this version")
    return fn


def _call(fn: Any, **kw: Any) -> Any:
    """Call a model builder with the keyword arguments it accepts."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**kw)
    return fn(**{k: v for k, v in kw.items() if k in params})


def _schedule(kind: str, lr: float, total: int) -> Any:
    from . import optim
    if kind == "constant":
        return lr
    if kind == "cosine":
        return optim.cosine_annealing(lr, total_steps=total)
    if kind == "step":
        return optim.step_decay(lr, step_size=max(1, total // 3), gamma=0.1)
    warm = max(1, total // 10)
    return optim.linear_warmup(optim.cosine_annealing(lr, total_steps=max(1, total - warm)), warm)


def cmd_train(args: argparse.Namespace) -> int:
    import anyxp_nn as nn
    from . import datasets
    from .data import DataLoader
    from .training import ModelCheckpoint, NonFiniteGuard, evaluate, fit

    if args.epochs < 1 or args.batch_size < 1:
        raise UsageError(f"--epochs (={args.epochs}) and --batch-size (={args.batch_size}) must be >= 1")
    if args.resume and not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH (the file to continue from)")
    if args.resume and not Path(args.checkpoint).exists():
        raise UsageError(f"--resume: no checkpoint at {args.checkpoint!r}")
    backend = nn.set_backend(args.backend) if args.backend else nn.get_backend()
    images = args.model != "mlp"
    if args.dataset == "digits":
        X, y = datasets.load_digits(images=images)
    else:
        X, y = datasets.load_mnist_5k(images=images)
    if args.model == "cnn" and X.shape[-1] != 28:
        raise UsageError(f"--model cnn expects 28x28 images (--dataset mnist), got {X.shape[-2]}x{X.shape[-1]} "
                         f"from --dataset {args.dataset}")
    Xtr, Xte, ytr, yte = datasets.train_test_split(X, y, test_fraction=0.2, seed=args.seed)
    classes = int(y.max()) + 1
    nn.manual_seed(args.seed)
    build = _builder(args.model)
    if args.model == "mlp":
        model = _call(build, in_features=int(X.shape[1]), num_classes=classes, backend=backend)
    else:
        model = _call(build, in_channels=int(X.shape[1]), num_classes=classes, backend=backend)
    loader = DataLoader(Xtr, ytr, batch_size=args.batch_size, backend=backend,
                        rng=nn.random.Generator(args.seed + 1))
    cls_name, default_lr, kw = _OPTIMIZERS[args.optimizer]
    lr = args.lr if args.lr is not None else default_lr
    if not lr > 0:
        raise UsageError(f"--lr must be > 0, got {lr}")
    total = args.epochs * len(loader)
    optimizer = getattr(nn.optim, cls_name)(model.parameters(), lr=_schedule(args.schedule, lr, total), **kw)
    callbacks = [NonFiniteGuard()]
    if args.checkpoint:
        callbacks.insert(0, ModelCheckpoint(args.checkpoint))
    print(f"{args.model} on {args.dataset} ({len(Xtr)} train / {len(Xte)} test), {cls_name} lr={lr} "
          f"{args.schedule}, backend {backend.label}", file=sys.stderr)
    t = time.perf_counter()
    history = fit(model, optimizer, nn.losses.softmax_cross_entropy, loader, val_data=(Xte, yte),
                  epochs=args.epochs, metrics=("accuracy",), callbacks=callbacks, progress=not args.no_progress,
                  resume=args.checkpoint if args.resume else None)
    seconds = time.perf_counter() - t
    test = evaluate(model, (Xte, yte), nn.losses.softmax_cross_entropy, ("accuracy", "confusion_matrix"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    history.plot(out / "history.png")
    result = {"args": vars(args), "backend": backend.label, "seconds": seconds, "test": test,
              "stop_reason": history.stop_reason, "epochs": history.epochs}
    (out / "metrics.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"test accuracy {test['accuracy']:.4f}, test loss {test['loss']:.4f} after {history.num_epochs} "
          f"epoch(s) in {seconds:.1f} s; wrote {out / 'history.png'} and {out / 'metrics.json'}")
    return 0 if history.stop_reason != "non_finite_loss" else 1


# -- check --------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    try:
        mod = importlib.import_module("anyxp_nn.testing.check")
    except ModuleNotFoundError as e:
        if e.name == "anyxp_nn.testing.check":
            raise UsageError("`check` needs anyxp_nn.testing.check, which this version does not have yet") from None
        raise
    if not hasattr(mod, "main"):
        raise UsageError("anyxp_nn.testing.check has no main(argv)")
    argv = list(args.args) + (["--backend", args.backend] if args.backend else [])
    return int(mod.main(argv) or 0)


# -- bench --------------------------------------------------------------------------
def _bench_scripts() -> list[Path]:
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        d = root / "benchmarks"
        if d.is_dir():
            return sorted(p for p in d.glob("*.py") if not p.name.startswith("_"))
    return []


def cmd_bench(args: argparse.Namespace) -> int:
    scripts = [] if args.builtin else _bench_scripts()
    if scripts:
        rc = 0
        env = dict(os.environ)
        for s in scripts:
            cmd = [sys.executable, str(s)]
            if args.backend:  # scripts read $ANYXP_BACKEND; those with a --backends option get it too
                env["ANYXP_BACKEND"] = args.backend
                if "--backends" in s.read_text(errors="replace"):
                    cmd += ["--backends", args.backend]
            print(f"$ {' '.join(cmd)}", flush=True)
            r = subprocess.run(cmd, env=env)
            if r.returncode != 0:
                print(f"{PROG}: {s.name} exited with status {r.returncode}", file=sys.stderr)
                rc = 1
        return rc
    return _builtin_bench(args)


def _builtin_bench(args: argparse.Namespace) -> int:
    """784-256-128-10 MLP, SGD step on random data; a device sync after every step."""
    import numpy as np

    import anyxp_nn as nn
    b = nn.get_backend(args.backend)
    nn.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256, backend=b), nn.ReLU(backend=b), nn.Linear(256, 128, backend=b),
                          nn.ReLU(backend=b), nn.Linear(128, 10, backend=b))
    opt = nn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = np.random.default_rng(0)
    xb = b.asarray(g.random((args.batch_size, 784), dtype=np.float32))
    yb = b.asarray(g.integers(0, 10, args.batch_size))

    def step() -> None:
        opt.zero_grad()
        logits, bp = model.forward(xb)
        _, d = nn.losses.softmax_cross_entropy(logits, yb, check_labels=False)
        bp(d, need_dx=False)
        opt.step()
        b.synchronize()

    for _ in range(5):
        step()
    times = []
    for _ in range(max(1, args.steps)):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    ms = 1e3 * float(np.median(times))
    print(f"MLP 784-256-128-10 training step, batch {args.batch_size}, backend {b.label}: "
          f"median {ms:.3f} ms/step ({args.batch_size / ms * 1e3:,.0f} samples/s) over {len(times)} steps")
    return 0


# -- export -------------------------------------------------------------------------
def _export_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a checkpoint's model to ONNX or safetensors (needs anyxp_nn[export])")
    _backend_arg(p)
    p.add_argument("checkpoint", metavar="CHECKPOINT",
                   help="a checkpoint that records its model builder (train --checkpoint writes one)")
    p.add_argument("--format", choices=("onnx", "safetensors"), required=True, help="the file format to write")
    p.add_argument("--out", required=True, metavar="PATH", help="the file to write")
    p.add_argument("--input-shape", default=None, metavar="N,C,...",
                   help="ONNX: the example input shape, batch first, e.g. 1,1,28,28 (default: the recorded one)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")


def cmd_export(args: argparse.Namespace) -> int:
    from .export import model_from_checkpoint, save_safetensors, to_onnx
    if not Path(args.checkpoint).is_file():
        raise UsageError(f"CHECKPOINT: no file at {args.checkpoint!r}")
    shape = None
    if args.input_shape is not None:
        try:
            shape = [int(s) for s in args.input_shape.split(",")]
        except ValueError:
            raise UsageError(f"--input-shape must be comma-separated ints, batch first (e.g. 1,1,28,28), "
                             f"got {args.input_shape!r}") from None
    model, record = model_from_checkpoint(args.checkpoint, backend=args.backend)
    if args.format == "safetensors":
        path = save_safetensors(model, args.out)
    else:
        shape = shape or record.get("input_shape")
        if not shape:
            raise UsageError(f"{args.checkpoint!r} records no input shape: pass --input-shape, e.g. 1,1,28,28")
        path = to_onnx(model, args.out, shape, opset=args.opset)
    print(f"wrote {path} ({args.format}; anyxp_nn.models.{record['name']}, {sum(1 for _ in model.parameters())} "
          f"parameter arrays)")
    return 0


# -- entry point --------------------------------------------------------------------
_COMMANDS = {"backends": cmd_backends, "demo": cmd_demo, "train": cmd_train, "check": cmd_check, "bench": cmd_bench,
             "export": cmd_export}


def main(argv: "Sequence[str] | None" = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["check"] and len(argv) > 1:
            # `check` owns its options (--steps, --model, ..., --help): hand them over unparsed
            args = argparse.Namespace(command="check", backend=None, args=argv[1:])
            return cmd_check(args)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if getattr(args, "backend", None):
            from .backend import get_backend
            get_backend(args.backend)  # an unknown/unusable backend: one clear line
        return _COMMANDS[args.command](args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, KeyError, FileNotFoundError, ImportError, OSError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{PROG}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
