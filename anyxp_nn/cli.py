"""Command line: ``anyxp-nn`` / ``python -m anyxp_nn``.

Subcommands (one ``add_<name>_arguments(parser)`` / ``cmd_<name>(args) -> int`` pair
each, listed in :data:`COMMANDS`; a new subcommand adds one pair and one row)::

    backends   table of the backends: usable, version, device, why not
    demo       run the demonstration sections (as examples/neural_networks_examples.py)
    train      train mlp | cnn | resnet on digits | mnist; history plot + metrics JSON
    check      the cross-backend checks (anyxp_nn.testing.check)
    bench      the library's own benchmarks: a built-in MLP step timing, the benchmarks/
               folder of the source tree this package runs from, or scripts given by path
    export     a checkpoint's model as ONNX or safetensors (anyxp_nn.export)

Every subcommand takes ``--backend`` and ``--debug``; every option's help shows its
default.  Exit status: 0 success, 1 a runtime error (one line ``anyxp-nn: error: ...``,
the traceback only with ``--debug``), 2 a usage error (bad option or value, named),
130 Ctrl-C, 141 when stdout is a closed pipe (``anyxp-nn backends --json | head``
ends quietly).
"""
from __future__ import annotations

import argparse
import ast
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

__all__ = ["main", "build_parser", "COMMANDS", "UsageError"]

PROG = "anyxp-nn"


class UsageError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Formatter(argparse.HelpFormatter):
    """Appends "(default: X)" to every option's help that does not state its default itself
    (switches are off unless given; an option whose default is None says what None means)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default is None or action.default is False
                or action.default == argparse.SUPPRESS or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line instead of usage + error
        raise UsageError(f"{message} (see {self.prog} --help)")


def _number(kind: type, low: float, *, above: bool = False) -> Callable[[str], Any]:
    """An argparse ``type`` accepting ``kind`` values >= low (> low with ``above``); the error
    names the option (argparse prefixes "argument --name:")."""
    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(v) or (v <= low if above else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if above else '>='} {low:g}, got {text}")
        return v
    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
positive_float = _number(float, 0.0, above=True)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=None,
                   help="numpy | array_api_strict | torch | cupy, optionally with a device, e.g. torch:cuda "
                        "(default: $ANYXP_BACKEND, else numpy)")
    p.add_argument("--debug", action="store_true", help="show the traceback of a runtime error")


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = _Parser(prog=PROG, description="anyxp_nn: deep learning written once against the Array API.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}", parser_class=_Parser)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        _common(p)
        command.add_arguments(p)
    return parser


# -- backends -----------------------------------------------------------------------
def add_backends_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def cmd_backends(args: argparse.Namespace) -> int:
    from .backend import backend_report, get_backend
    rows = backend_report()
    if args.backend:
        b = get_backend(args.backend)  # raises a clear ValueError for an unusable one
        rows = [r for r in rows if r["name"] == b.name]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    from ._table import format_table
    print(format_table([{**r, "why not": r["reason"]} for r in rows],
                       ("name", "usable", "version", "device", "why not")))
    return 0


# -- demo ---------------------------------------------------------------------------
def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out", help="folder for figures and the summary")
    p.add_argument("--sections", default=None, help="comma-separated sections (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes (under ~2 minutes on a CPU)")


def cmd_demo(args: argparse.Namespace) -> int:
    from .demos.runner import main as demo_main
    argv = ["--out", args.out] + (["--quick"] if args.quick else [])
    argv += ["--backend", args.backend] if args.backend else []
    argv += ["--sections", args.sections] if args.sections else []
    return demo_main(argv, prog=f"{PROG} demo")


# -- train --------------------------------------------------------------------------
_OPTIMIZERS = {"sgd": ("SGD", 0.05, {"momentum": 0.9}), "adam": ("Adam", 1e-3, {}),
               "adamw": ("AdamW", 1e-3, {}), "rmsprop": ("RMSprop", 1e-3, {}), "adagrad": ("Adagrad", 1e-2, {})}


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("mlp", "cnn", "resnet"), default="mlp", help="architecture")
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits", help="data set")
    p.add_argument("--epochs", type=positive_int, default=5, help="total epochs (a resumed run counts its own)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="samples per step")
    p.add_argument("--optimizer", choices=tuple(_OPTIMIZERS), default="adam", help="optimizer")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="learning rate (default: " + ", ".join(f"{k} {v[1]:g}" for k, v in _OPTIMIZERS.items()) + ")")
    p.add_argument("--schedule", choices=("constant", "cosine", "step", "warmup_cosine"), default="constant",
                   help="per-step learning-rate schedule")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights, split and shuffles")
    p.add_argument("--checkpoint", default=None, metavar="PATH", help="save the training state here every epoch (default: no checkpoints)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--out", default="out/train", help="folder for history.png and metrics.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel over the MPI ranks (mpiexec -n P anyxp-nn train --distributed ...): "
                        "--batch-size per rank, rank 0 prints and writes")


def _builder(name: str, X: Any, classes: int) -> "tuple[Callable[..., Any], dict[str, Any]]":
    """``--model`` -> its builder in :mod:`anyxp_nn.models` and the size arguments it takes
    (recorded in checkpoints, so ``export`` can rebuild the model)."""
    from . import models
    if name == "mlp":
        return models.mlp, {"in_features": int(X.shape[1]), "num_classes": classes}
    if name == "cnn":  # (N, 1, 28, 28) -> 10 classes, fixed
        return models.mnist_cnn, {}
    return models.small_resnet, {"in_channels": int(X.shape[1]), "num_classes": classes}


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


def _check_writable(path: Path, option: str, folder: bool) -> None:
    """Fail before training, naming the option, if ``path`` cannot be written."""
    target = path if folder else path.parent if str(path.parent) else Path(".")
    if not folder and path.is_dir():
        raise UsageError(f"{option} {str(path)!r} is a directory; pass a file name")
    if folder and path.exists() and not path.is_dir():
        raise UsageError(f"{option} {str(path)!r} is a file; pass a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as e:
        raise UsageError(f"{option} {str(path)!r} is not writable ({e.strerror or e})") from None


def _resume_point(args: argparse.Namespace) -> "dict[str, Any] | None":
    """Where a --resume run continues from; checks it against --epochs."""
    if not args.resume:
        return None
    if not args.checkpoint:
        raise UsageError("--resume needs --checkpoint PATH (the file to continue from)")
    if not Path(args.checkpoint).exists():
        raise UsageError(f"--resume: no checkpoint at {args.checkpoint!r}")
    from .checkpoint import read_info
    info = read_info(args.checkpoint)
    done = int(info.get("epoch") or 0)
    if done >= args.epochs:
        raise UsageError(f"--epochs {args.epochs}: the checkpoint {args.checkpoint!r} already holds {done} "
                         f"epoch(s), so there is nothing to train; pass --epochs {done + 1} or more to continue")
    return info


def cmd_train(args: argparse.Namespace) -> int:
    import anyxp_nn as nn
    from . import datasets
    from .data import DataLoader
    from .training import ModelCheckpoint, NonFiniteGuard, evaluate, fit

    resumed = _resume_point(args)
    _check_writable(Path(args.out), "--out", folder=True)
    if args.checkpoint:
        _check_writable(Path(args.checkpoint), "--checkpoint", folder=False)
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
    build, builder_kw = _builder(args.model, X, classes)
    model = build(**builder_kw, backend=backend)
    comm = None
    if args.distributed:  # every rank trains on its shard; gradients averaged (docs/distributed.md)
        comm = nn.distributed.init()
        model = nn.distributed.DataParallel(model, comm)
    loader = DataLoader(Xtr, ytr, batch_size=args.batch_size, backend=backend,
                        rng=nn.random.Generator(args.seed + 1), shard=(comm.rank, comm.size) if comm else None)
    main_rank = comm is None or comm.is_main
    cls_name, default_lr, kw = _OPTIMIZERS[args.optimizer]
    lr = args.lr if args.lr is not None else default_lr
    total = args.epochs * len(loader)
    optimizer = getattr(nn.optim, cls_name)(model.parameters(), lr=_schedule(args.schedule, lr, total), **kw)
    callbacks = [NonFiniteGuard()]
    if args.checkpoint:
        record = nn.export.builder_record(build.__name__, input_shape=(1, *X.shape[1:]), **builder_kw)
        callbacks.insert(0, ModelCheckpoint(args.checkpoint, extra={"builder": record}))
    if main_rank:
        ranks = f", {comm.size} ranks" if comm else ""
        print(f"{args.model} on {args.dataset} ({len(Xtr)} train / {len(Xte)} test), {cls_name} lr={lr} "
              f"{args.schedule}, backend {backend.label}{ranks}", file=sys.stderr)
    if resumed is not None and main_rank:
        print(f"resuming from {args.checkpoint} after epoch {resumed.get('epoch') or 0} (step "
              f"{resumed.get('step') or 0}, saved {resumed.get('created')} on {resumed.get('backend')}); "
              f"training epochs {(resumed.get('epoch') or 0) + 1}-{args.epochs}", file=sys.stderr)
    t = time.perf_counter()
    history = fit(model, optimizer, nn.losses.softmax_cross_entropy, loader, val_data=(Xte, yte),
                  epochs=args.epochs, metrics=("accuracy",), callbacks=callbacks, progress=not args.no_progress,
                  resume=args.checkpoint if args.resume else None)
    seconds = time.perf_counter() - t
    test = evaluate(model, (Xte, yte), nn.losses.softmax_cross_entropy, ("accuracy", "confusion_matrix"))
    if not main_rank:
        return 0 if history.stop_reason != "non_finite_loss" else 1
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
def add_check_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for anyxp_nn.testing.check")


def cmd_check(args: argparse.Namespace) -> int:
    from .testing.check import main as check_main
    argv = list(args.args) + (["--backend", args.backend] if args.backend else [])
    return int(check_main(argv) or 0)


# -- bench --------------------------------------------------------------------------
BUILTIN_STEPS = 50


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("scripts", nargs="*", metavar="SCRIPT",
                   help="benchmark scripts to run (default: the benchmarks/ folder of the anyxp_nn source tree this "
                        "package runs from, if any, else the built-in timing)")
    p.add_argument("--builtin", action="store_true", help="only the built-in MLP step timing")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"timed steps of the built-in timing and of every script with a --steps option "
                        f"(default: {BUILTIN_STEPS} for the built-in timing, each script's own otherwise)")
    p.add_argument("--batch-size", type=positive_int, default=128, help="batch of the built-in timing")


def library_benchmarks() -> list[Path]:
    """The benchmarks/*.py of the source tree this package was imported from (none when installed).

    Never the current folder's: ``anyxp-nn bench`` runs only the library's own code or paths
    given explicitly.
    """
    root = Path(__file__).resolve().parent.parent
    d, project = root / "benchmarks", root / "pyproject.toml"
    if not d.is_dir() or not project.is_file() or 'name = "anyxp_nn"' not in project.read_text(errors="replace"):
        return []
    return sorted(p for p in d.glob("*.py") if not p.name.startswith("_"))


def declared_options(script: Path) -> set[str]:
    """The option strings ``script`` declares with argparse's ``add_argument("--name", ...)``.

    Read from the script's syntax tree, without running it; a script that does not parse
    declares none.
    """
    try:
        tree = ast.parse(script.read_text(encoding="utf-8", errors="replace"))
    except SyntaxError:
        return set()
    return {arg.value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"
            for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)}


def cmd_bench(args: argparse.Namespace) -> int:
    if args.builtin and args.scripts:
        raise UsageError("--builtin runs only the built-in timing; drop it or the SCRIPT arguments")
    scripts = [Path(s) for s in args.scripts]
    for s in scripts:
        if not s.is_file() or s.suffix != ".py":
            raise UsageError(f"SCRIPT {str(s)!r} is not a Python file")
    if not scripts and not args.builtin:
        scripts = library_benchmarks()
    if not scripts:
        return _builtin_bench(args)
    rc = 0
    env = dict(os.environ)
    if args.backend:  # scripts read $ANYXP_BACKEND; those with a --backends option get it too
        env["ANYXP_BACKEND"] = args.backend
    for s in scripts:
        options = declared_options(s)
        cmd = [sys.executable, str(s)]
        if args.backend and "--backends" in options:
            cmd += ["--backends", args.backend]
        if args.steps is not None:
            if "--steps" in options:
                cmd += ["--steps", str(args.steps)]
            else:
                print(f"{PROG}: note: {s.name} has no --steps option; it runs its own length", file=sys.stderr)
        print(f"$ {' '.join(cmd)}", flush=True)
        r = subprocess.run(cmd, env=env)
        if r.returncode != 0:
            print(f"{PROG}: error: {s.name} exited with status {r.returncode}", file=sys.stderr)
            rc = 1
    return rc


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
    for _ in range(args.steps if args.steps is not None else BUILTIN_STEPS):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    ms = 1e3 * float(np.median(times))
    print(f"MLP 784-256-128-10 training step, batch {args.batch_size}, backend {b.label}: "
          f"median {ms:.3f} ms/step ({args.batch_size / ms * 1e3:,.0f} samples/s) over {len(times)} steps")
    return 0


# -- export -------------------------------------------------------------------------
def add_export_arguments(p: argparse.ArgumentParser) -> None:
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
COMMANDS: dict[str, Command] = {
    "backends": Command("list the backends and why any is unusable", add_backends_arguments, cmd_backends),
    "demo": Command("run the demonstration sections (figures + summary table)", add_demo_arguments, cmd_demo),
    "train": Command("train a model; writes history.png and metrics.json to --out", add_train_arguments,
                     cmd_train),
    "check": Command("cross-backend checks (anyxp_nn.testing.check); extra arguments pass through",
                     add_check_arguments, cmd_check),
    "bench": Command("the library's own benchmarks (or the scripts given), or a quick MLP step timing",
                     add_bench_arguments, cmd_bench),
    "export": Command("export a checkpoint's model to ONNX or safetensors (needs anyxp_nn[export])",
                      add_export_arguments, cmd_export),
}


def _run(argv: list[str]) -> int:
    if argv[:1] == ["check"] and len(argv) > 1:
        # `check` owns its options (--steps, --model, ..., --help): hand them over unparsed
        return cmd_check(argparse.Namespace(command="check", backend=None, args=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.backend:
        from .backend import get_backend
        try:
            get_backend(args.backend)
        except ValueError as e:  # an unknown/unusable backend is a usage error: one clear line
            raise UsageError(str(e)) from None
    return COMMANDS[args.command].run(args)


def _quiet_stdout() -> None:
    """stdout is a closed pipe: point it at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: "Sequence[str] | None" = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv and argv[:1] != ["check"]
    try:
        rc = _run(argv)
        sys.stdout.flush()
        return rc
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a runtime error: one line, unless --debug asks for the traceback
        if debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{PROG}: error: {msg} ({type(e).__name__}; rerun with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
