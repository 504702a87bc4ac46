"""fit: the training loop, with at most one host read per log interval.

Each step: ``forward -> loss_fn -> backprop(need_dx=False) [-> clip] -> optimizer.step()``;
with ``accumulate_steps=k`` the gradients of k batches (each loss scaled by 1/k) are
summed before one step.  The step's loss and metric sums (and the gradient norm when
clipping) stay on the device as one small vector; every
``log_every`` steps (and at the end of each epoch) the pending vectors are
stacked and read to the host in **one** transfer.  That read is the only
CPU-GPU sync of the training loop, and also where the progress bar, the
per-step history and ``on_log`` callbacks (e.g. the non-finite guard) update.

Modes: training runs ``model.forward(x)`` (each layer in its own ``training`` mode, so a
BatchNorm the user put in ``eval()`` keeps its statistics), validation runs
``train=False``; fit never changes a layer's mode.

Threads: on a CPU backend each step runs in ``backend.cpu_threads()``, whose BLAS pool follows
the cores other processes leave free.  A matrix product summed by another number of threads
can differ in its last bit, and a chaotic run (a deep plain network) grows that into a
different run: for bitwise-repeatable runs on a shared machine set
``backend.adapt_threads = False`` (the pools keep their size) and fix the pool size.

Ctrl-C (KeyboardInterrupt) stops cleanly: the steps already taken are read and
recorded, a warning says where training stopped, and the history is returned.
A step (the optimizer's update and fit's count of it) and an epoch end (the
history row and the callbacks, e.g. the checkpoint) each commit whole: Ctrl-C is
held back until they finish, so the model, the optimizer, the history and the
last checkpoint always agree.  Checkpoints are written atomically.
"""
from __future__ import annotations

import contextlib

import time
import warnings
from typing import Any, Sequence

from array_api_compat import device as _device

from .._checks import non_negative_int, positive_int
from .._atomic import deferred_interrupts
from ..checkpoint import load
from ..data import DataLoader
from ..distributed.fit_hooks import fit_hooks
from ..optim.clip import clip_grad_norm_no_sync
from .callbacks import Callback, FitState
from .evaluate import LossFn, check_labels, eval_loader, evaluate, fast_loss
from .history import History
from .metrics import ConfusionMatrix, Metric, default_metrics, get_metrics

__all__ = ["fit"]


def _step_vector(xp: Any, loss: Any, logits: Any, yb: Any, metrics: list[Metric]) -> Any:
    """(1 + len(metrics),) device vector: batch loss times batch size, then each metric's batch sum."""
    parts = [xp.reshape(xp.astype(loss, logits.dtype) * float(logits.shape[0]), (1,))]
    parts += [xp.reshape(m.batch(logits, yb), (-1,)) for m in metrics]
    return xp.concat(parts) if len(parts) > 1 else parts[0]


def _check_fit_options(clip_grad_norm: Any, accumulate_steps: Any) -> None:
    if clip_grad_norm is not None and (isinstance(clip_grad_norm, bool) or not isinstance(clip_grad_norm, (int, float))
                                       or not clip_grad_norm > 0):
        raise ValueError(f"fit: `clip_grad_norm` must be None or a float > 0 (the max gradient norm), "
                         f"got {clip_grad_norm!r}")
    positive_int(accumulate_steps, "accumulate_steps", "fit")


def fit(model: Any, optimizer: Any, loss_fn: LossFn, loader: DataLoader, val_data: Any = None,
        epochs: int = 1, metrics: "Sequence[Any] | str | None" = "auto",
        callbacks: Sequence[Callback] = (), progress: bool = True, *, log_every: "int | None" = None,
        initial_epoch: int = 0, history: "History | None" = None, resume: "str | None" = None,
        clip_grad_norm: "float | None" = None, accumulate_steps: int = 1) -> History:
    """Train ``model`` for ``epochs`` epochs; returns the :class:`History`.

    Args:
        model: a Layer whose ``forward(x)`` returns ``(logits, backprop)``; trained in the modes
            its layers are in (warns when every layer is in eval mode), validated with ``train=False``.
        optimizer: an ``anyxp_nn.optim`` optimizer over the model's parameters.
        loss_fn: ``loss_fn(logits, yb) -> (loss 0-d, dlogits)``, e.g. ``nn.losses.softmax_cross_entropy``.
        loader: a :class:`~anyxp_nn.data.DataLoader` on the model's backend.
        val_data: None, ``(x, y)`` host arrays or a DataLoader; evaluated after each epoch.
        epochs: total number of epochs (counting those before ``initial_epoch``).
        metrics: names or Metric objects ("accuracy", "top5_accuracy", "confusion_matrix" (validation only));
            "auto" (the default): "accuracy" for class-id labels and a classification loss, none
            for regression (mse, binary cross-entropy, float targets).
        callbacks: :class:`Callback` objects.
        progress: show a tqdm bar per epoch (loss, metrics, samples/s, device memory pool).
        log_every: steps between host reads of the loss (default: ~10 reads per epoch).
        initial_epoch, history: continue a run (``resume=path`` sets both from a checkpoint,
            after restoring model, optimizer and generator states with ``nn.load``).
        clip_grad_norm: None, or the max global L2 norm of the gradients, applied between
            backward and ``optimizer.step()`` on the device (as ``torch.nn.utils.clip_grad_norm_``;
            the norm before clipping is logged as "grad_norm" at the log points, no extra sync).
        accumulate_steps: k >= 1: each batch's loss gradient is scaled by 1/k and the gradients
            of k batches are summed before one optimizer step (a shorter last group at the end of
            an epoch steps too).  History rows and ``log_every`` count optimizer steps.
    """
    if not isinstance(loader, DataLoader):
        raise TypeError(f"fit: `loader` must be an anyxp_nn.data.DataLoader, got {type(loader).__name__}")
    if loader.backend != model.backend:
        raise ValueError(f"fit: the loader yields batches on {loader.backend.label!r} but the model is on "
                         f"{model.backend.label!r}; create the DataLoader with backend=model.backend")
    non_negative_int(epochs, "epochs", "fit")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got {type(cb).__name__}")
    _check_fit_options(clip_grad_norm, accumulate_steps)
    _check_optimizer(model, optimizer)
    dist = fit_hooks(model)  # a DataParallel on P ranks: rank 0 reports, values averaged over ranks
    dist.check_loader(loader)
    if not any(layer.training for _, layer in model.named_layers()):
        warnings.warn("fit: every layer of the model is in eval mode (model.eval() was called), so it trains "
                      "without dropout and BatchNorm neither uses nor updates batch statistics; call "
                      "model.train() first unless this is what you want", UserWarning, stacklevel=2)
    all_metrics = get_metrics(default_metrics(loss_fn, loader) if _is_auto(metrics) else metrics)
    train_metrics = [m for m in all_metrics if not isinstance(m, ConfusionMatrix)]
    val_loader = eval_loader(val_data, model.backend) if val_data is not None else None
    if resume is not None:  # last: every argument is checked before the model changes
        info = load(resume, model, optimizer, loader=loader, restore_rng=True)
        initial_epoch = int(info.get("epoch") or 0)
        if info.get("history") is not None:  # the checkpoint holds plain data; the History is built here
            history = History.from_dict(info["history"])
    history = history if history is not None else History()
    if resume is not None and initial_epoch >= epochs:
        msg = (f"fit: the checkpoint {str(resume)!r} already holds {initial_epoch} epoch(s) and `epochs` is "
               f"{epochs}: nothing to train; pass epochs > {initial_epoch} to continue")
        history.stop_reason, history.message = "already_trained", msg
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
        return history
    steps_per_epoch = len(loader)  # batches
    if steps_per_epoch == 0:
        raise ValueError(f"fit: the loader yields no batches ({loader.samples_per_epoch} samples, batch_size="
                         f"{loader.batch_size}, drop_last={loader.drop_last})")
    optimizer_steps = -(-steps_per_epoch // accumulate_steps)  # per epoch, rounded up
    log_every = log_every or max(1, -(-optimizer_steps // 10))  # ~10 reads per epoch
    backend, xp = model.backend, model.backend.xp
    step_loss = loss_fn
    state = FitState(model, optimizer, loader, history, epochs)
    state.is_main, progress = dist.is_main, progress and dist.is_main
    state.step = int(getattr(optimizer, "step_count", 0))
    state.last_checkpoint = str(resume) if resume is not None else None

    def run(name: str, *args: Any) -> None:
        for cb in callbacks:
            getattr(cb, name)(state, *args)

    pending: list[tuple[Any, int, float]] = []  # (device vector, samples, lr) per step not yet read
    clip_params = model.parameters() if clip_grad_norm is not None else []
    bar = None
    t_log, n_log = time.perf_counter(), 0
    epoch_sums: list[list[float]] = []  # per step: [loss * batch size, metric sums...]
    epoch_n = 0

    def flush() -> None:
        """Read every pending step in one transfer; record, report and let callbacks look."""
        nonlocal t_log, n_log, epoch_n
        if not pending:
            return
        vals = backend.to_numpy(xp.stack([v for v, _, _ in pending])).astype("float64")  # note: sync point
        vals = dist.mean_rows(vals)
        with deferred_interrupts():  # recorded whole, so an interrupted flush never records a step twice
            rows = []
            first = state.step - len(pending)
            for k, (row_vals, (_, nb, lr)) in enumerate(zip(vals, pending)):
                row = {"step": first + k + 1, "epoch": state.epoch + 1, "loss": float(row_vals[0]) / nb, "lr": lr}
                for j, m in enumerate(train_metrics):
                    row[m.name] = float(row_vals[1 + j]) / nb
                if clip_grad_norm is not None:
                    row["grad_norm"] = float(row_vals[-1])
                rows.append(row)
                history.add_step(row)
                epoch_sums.append([float(v) for v in row_vals[:1 + len(train_metrics)]])
                epoch_n += nb
            dt = time.perf_counter() - t_log
            speed = n_log / dt if dt > 0 else float("nan")
            pending.clear()
        t_log, n_log = time.perf_counter(), 0
        if bar is not None:
            post = {"loss": f"{rows[-1]['loss']:.4f}"}
            for m in train_metrics:
                post[m.name[:8]] = f"{rows[-1][m.name]:.3f}"
            post["samples/s"] = f"{speed:,.0f}"
            mem = backend.memory_info() if hasattr(backend, "memory_info") else None
            if mem:
                post["pool"] = f"{mem.get('pool_used_bytes', mem.get('used_bytes', 0)) / 2**20:.0f}MiB"
            bar.set_postfix(post, refresh=False)
        run("on_log", rows)

    checked = False
    try:
        run("on_train_begin")
        for epoch in range(initial_epoch, epochs):
            state.epoch = epoch
            state.logs = {}
            epoch_sums.clear()
            epoch_n = 0
            run("on_epoch_begin")
            if state.stop_training:
                break
            bar = _progress_bar(progress, steps_per_epoch, f"epoch {epoch + 1}/{epochs}")
            t_epoch = time.perf_counter()
            t_log, n_log = t_epoch, 0
            acc_vec, acc_n = None, 0  # the step's vectors and samples, summed over its batches
            for i, (xb, yb) in enumerate(backend.cpu_threads_each(loader)):  # pools sized to the free cores
                if acc_n == 0:
                    optimizer.zero_grad()
                last = (i + 1) % accumulate_steps == 0 or i + 1 == steps_per_epoch  # this batch ends a step
                with _local_only(model, not last):  # DDP's no_sync: ranks average once per step
                    logits, backprop = model.forward(xb)  # each layer in its own mode
                if not checked:
                    for m in train_metrics:
                        m.check(logits, yb)
                    if logits.ndim == 2:
                        check_labels(loader, int(logits.shape[1]), "training")
                        if val_loader is not None:
                            check_labels(val_loader, int(logits.shape[1]), "validation")
                        step_loss = fast_loss(loss_fn)
                    checked = True
                loss, dlogits = step_loss(logits, yb)
                backprop(dlogits if accumulate_steps == 1 else dlogits * (1.0 / accumulate_steps), need_dx=False)
                vec = _step_vector(xp, loss, logits, yb, train_metrics)
                acc_vec = vec if acc_vec is None else acc_vec + vec
                acc_n += int(xb.shape[0])
                n_log += int(xb.shape[0])
                if bar is not None:
                    bar.update(1)
                if not last:
                    continue  # keep accumulating
                run("on_before_step")
                if state.stop_training:  # a callback refused these gradients: no update
                    acc_vec, acc_n = None, 0
                    break
                if clip_grad_norm is not None:
                    norm = clip_grad_norm_no_sync(clip_params, float(clip_grad_norm))  # torch's clip_grad_norm_
                    norm = xp.zeros((1,), dtype=acc_vec.dtype, device=_device(acc_vec)) if norm is None else norm
                    acc_vec = xp.concat([acc_vec, xp.reshape(xp.astype(norm, acc_vec.dtype), (1,))])
                lr = float(optimizer.lr_at(optimizer.param_groups[0])) if hasattr(optimizer, "lr_at") else None
                with deferred_interrupts():  # the update and its record commit together
                    optimizer.step()
                    state.step += 1
                    pending.append((acc_vec, acc_n, lr))
                acc_vec, acc_n = None, 0
                if len(pending) >= log_every:
                    flush()
                    if state.stop_training:
                        break
            flush()
            if bar is not None:
                bar.close()
                bar = None
            if state.stop_training:
                break
            dt = time.perf_counter() - t_epoch
            sums = [sum(col) for col in zip(*epoch_sums)] if epoch_sums else [0.0] * (1 + len(train_metrics))
            row: dict[str, Any] = {"epoch": epoch + 1, "loss": float(sums[0]) / max(epoch_n, 1)}
            for j, m in enumerate(train_metrics):
                row[m.name] = float(sums[1 + j]) / max(epoch_n, 1)
            if val_loader is not None:
                val = evaluate(model, val_loader, loss_fn, all_metrics)
                row.update({f"val_{k}": v for k, v in val.items()})
            row["lr"] = state.logs.get("lr", history.steps["lr"][-1] if history.steps.get("lr") else None)
            row["time_s"] = dt
            row["samples_per_s"] = epoch_n / dt if dt > 0 else None
            row = dist.average_logs(row)
            with deferred_interrupts():  # the history row and the checkpoint commit together
                history.add_epoch(row)
                state.logs = row
                run("on_epoch_end")
            dist.barrier()
            if state.stop_training:
                break
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        try:
            flush()
        except Exception:  # the interrupted step may have left nothing readable
            pending.clear()
        state.stop("interrupted", f"fit: interrupted (KeyboardInterrupt) in epoch {state.epoch + 1} after "
                                  f"{state.step} steps; returning the history so far"
                   + (f"; last checkpoint {state.last_checkpoint!r} is intact" if state.last_checkpoint else ""))
    finally:
        if bar is not None:
            bar.close()
    history.stop_reason, history.message = state.stop_reason, state.message
    run("on_train_end")
    if state.stop_reason in ("interrupted", "non_finite_loss"):
        warnings.warn(state.message, RuntimeWarning, stacklevel=2)
    return history


def _local_only(model: Any, local: bool) -> Any:
    """``model.no_sync()`` (a data-parallel model's gradients stay local) for the batches of a step
    before its last one, as with torch's DDP; a no-op for other models and for the last batch."""
    return model.no_sync() if local and hasattr(model, "no_sync") else contextlib.nullcontext()


def _is_auto(metrics: Any) -> bool:
    return isinstance(metrics, str) and metrics == "auto"


def _check_optimizer(model: Any, optimizer: Any) -> None:
    """The optimizer must update this model's parameters (a subset is fine: e.g. a head)."""
    if not hasattr(optimizer, "parameters") or not hasattr(optimizer, "step"):
        raise TypeError(f"fit: `optimizer` must be an anyxp_nn.optim optimizer, got {type(optimizer).__name__}")
    mine = {id(p) for p in model.parameters()}
    foreign = [p for p in optimizer.parameters() if id(p) not in mine]
    if foreign:
        total = len(optimizer.parameters())
        raise ValueError(f"fit: {len(foreign)} of the optimizer's {total} parameters are not parameters of the "
                         f"model (first: {foreign[0]!r}); build it from this model, e.g. "
                         f"{type(optimizer).__name__}(model.parameters(), ...)")


def _progress_bar(progress: bool, total: int, desc: str) -> Any:
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=True, dynamic_ncols=True, mininterval=0.5)
