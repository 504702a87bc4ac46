"""compare_backends: train the same model from the same seed on several backends and diff them.

Each backend builds the model after ``manual_seed(seed)`` (so the weights are
bitwise equal), then runs ``steps`` training steps on the same host batches:
forward, loss, backward, optimizer step.  Dropout masks and augmentation draws
come from the reseeded default generator, so they are equal too.  After every
step the parameters, buffers and gradients are copied to the host and
compared with the first backend's.

With the same seed the only legitimate differences are float rounding
(summation order inside matmuls and reductions), which grows slowly over the
steps; the training tolerance is therefore looser than one layer's.  The
layer pass (:mod:`anyxp_nn.testing.layers_probe`) then feeds every layer the
same host input on each backend and names the first one whose output, dX or
gradients differ, that raises, that returns another dtype or device, or that
computes through float64.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..backend import Backend, available_backends, get_backend
from ..losses import softmax_cross_entropy
from ..optim import SGD
from ..random import manual_seed
from .layers_probe import LayerResult, diff as _diff, probe_layers
from .tolerances import training_tolerance

__all__ = ["CompareReport", "compare_backends"]


@dataclass
class CompareReport:
    """What :func:`compare_backends` found.

    Attributes:
        backends: labels, the first is the reference.
        losses: ``{backend: [loss per step]}`` (shorter when the backend failed).
        params / grads: ``{backend: [{name: (max_abs, max_rel)} per step]}`` vs the reference
            (``max_rel`` = max_abs / max|ref|).
        errors: ``{backend: message}`` for backends whose training raised.
        layers: per-layer results of the layer pass (may be empty).
        culprit: the first layer found to differ, or None.
        ratio: ``{backend: [worst difference / tolerance per step]}`` over the loss and every
            parameter and buffer (``<= 1`` is within tolerance).
        ok: every backend trained and stayed within ``tolerance``, and no layer was flagged.
    """
    backends: list[str]
    dtype: str
    steps: int
    seed: int
    tolerance: tuple[float, float]
    losses: dict[str, list[float]] = field(default_factory=dict)
    params: dict[str, list[dict[str, tuple[float, float]]]] = field(default_factory=dict)
    grads: dict[str, list[dict[str, tuple[float, float]]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    layers: list[LayerResult] = field(default_factory=list)
    culprit: LayerResult | None = None
    diverged: dict[str, int] = field(default_factory=dict)   # backend -> first step beyond tolerance
    ratio: dict[str, list[float]] = field(default_factory=dict)  # per step: worst |dparam| / tolerance

    @property
    def reference(self) -> str:
        return self.backends[0]

    @property
    def ok(self) -> bool:
        return not self.errors and not self.diverged and self.culprit is None

    def max_diff(self, backend: str, kind: str = "params") -> tuple[float, float]:
        """Largest (abs, rel) difference of ``backend`` vs the reference over all steps and tensors."""
        rows = getattr(self, kind).get(backend, [])
        vals = [v for step in rows for v in step.values()]
        return (max((a for a, _ in vals), default=0.0), max((r for _, r in vals), default=0.0))

    def table(self) -> str:
        """The report as a text table: one row per step and compared backend, then the verdict."""
        rtol, atol = self.tolerance
        lines = [f"compare_backends: {self.steps} steps, {self.dtype}, seed {self.seed}, "
                 f"reference {self.reference!r}; tolerance rtol={rtol:g} atol={atol:g} (normwise)"]
        others = self.backends[1:]
        w = max([22] + [len(b) + 2 for b in others])
        lines.append(f"{'':>4}  {'':>11}  " + "".join(f"{b:^{w}}" for b in others))
        lines.append(f"{'step':>4}  {'loss (ref)':>11}  " + "".join(f"{'|dloss|':>{w // 2}}{'dparam/tol':>{w - w // 2}}"
                                                                for _ in others))
        ref_loss = self.losses.get(self.reference, [])
        for k in range(self.steps):
            row = f"{k:>4}  " + (f"{ref_loss[k]:>11.6g}  " if k < len(ref_loss) else f"{'-':>11}  ")
            for b in others:
                losses, p = self.losses.get(b, []), self.ratio.get(b, [])
                if k < len(losses) and k < len(ref_loss) and k < len(p):
                    rel = p[k]
                    mark = "*" if self.diverged.get(b) == k else " "
                    row += f"{abs(losses[k] - ref_loss[k]):>{w // 2}.2g}{rel:>{w - w // 2 - 1}.2g}{mark}"
                else:
                    row += f"{'-':>{w // 2}}{'-':>{w - w // 2 - 1}} "
            lines.append(row)
        for b in others:
            for kind in ("params", "grads"):
                rows = getattr(self, kind).get(b, [])
                cells = [(r, a, n, k) for k, step in enumerate(rows) for n, (a, r) in step.items()]
                if cells:
                    r, a, n, k = max(cells)
                    lines.append(f"{b}: max {kind[:-1]} difference {a:.3g} abs, {r:.3g} rel ({n!r}, step {k})")
        for b, msg in self.errors.items():
            lines.append(f"error on {b!r}: {msg}")
        flagged = [r for r in self.layers if r.problem]
        if flagged:
            lines.append("layer pass (same host input on every backend):")
            lines += [f"  {r}" for r in flagged]
        if self.ok:
            lines.append(f"OK: all backends agree within tolerance over {self.steps} steps")
        else:
            what = []
            if self.diverged:
                what.append("diverged: " + ", ".join(f"{b} at step {s}" for b, s in self.diverged.items()))
            if self.errors:
                what.append("failed: " + ", ".join(self.errors))
            lines.append("NOT OK: " + "; ".join(what or ["a layer was flagged"]))
            lines.append(f"culprit: {self.culprit}" if self.culprit else
                         "culprit: none found layer by layer (suspect the loss, the optimizer or a container)")
        return "\n".join(lines)

    __str__ = table

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole report."""
        def diffs(d: dict[str, list[dict[str, tuple[float, float]]]]) -> dict[str, Any]:
            return {b: [{n: {"abs": a, "rel": r} for n, (a, r) in step.items()} for step in rows]
                    for b, rows in d.items()}
        return {"ok": self.ok, "reference": self.reference, "backends": list(self.backends),
                "dtype": self.dtype, "steps": self.steps, "seed": self.seed,
                "tolerance": {"rtol": self.tolerance[0], "atol": self.tolerance[1]},
                "losses": self.losses, "params": diffs(self.params), "grads": diffs(self.grads),
                "errors": dict(self.errors), "diverged": dict(self.diverged), "ratio": dict(self.ratio),
                "layers": [r.to_dict() for r in self.layers],
                "culprit": self.culprit.to_dict() if self.culprit else None}

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), **kw)


def _default_optimizer(params: Any) -> Any:
    return SGD(params, lr=0.05, momentum=0.9)


def _batches(data: tuple[Any, Any], steps: int, batch_size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Deterministic batches: step k takes rows ``(k * batch_size + arange(batch_size)) % N``."""
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"compare_backends: `data` must be (x, y) with the same non-zero length, "
                         f"got {len(x)} and {len(y)}")
    n, bs = len(x), min(batch_size, len(x))
    idx = [(k * bs + np.arange(bs)) % n for k in range(steps)]
    return [(x[i], y[i]) for i in idx]


def _state(model: Any, b: Backend) -> dict[str, np.ndarray]:
    out = {n: b.to_numpy(p.data) for n, p in model.named_parameters()}
    for n, buf in model.named_buffers():
        if b.xp.isdtype(buf.dtype, "real floating"):
            out[n] = b.to_numpy(buf)
    return out


def _train(build_model: Callable[..., Any], b: Backend, batches: list, dtype: str, seed: int,
           loss_fn: Callable, optimizer: Callable, augment: Callable | None,
           trace: dict[str, list]) -> None:
    """Train on ``b``; append each step's loss, state and grads to ``trace`` (which survives errors)."""
    manual_seed(seed)
    model = build_model(backend=b, dtype=dtype)
    opt = optimizer(model.parameters())
    for xh, yh in batches:
        x, y = b.asarray(xh, dtype=dtype), b.asarray(yh)
        if augment is not None:
            x = augment(x)
        model.zero_grad()
        out, backprop = model.forward(x, train=True)
        loss, dout = loss_fn(out, y)
        backprop(dout, need_dx=False)
        grads = {n: b.to_numpy(p.grad) for n, p in model.named_parameters() if p.grad is not None}
        opt.step()
        trace["loss"].append(b.item(loss))
        trace["state"].append(_state(model, b))
        trace["grads"].append(grads)


def compare_backends(build_model: Callable[..., Any], data: tuple[Any, Any],
                     backends: Sequence["str | Backend"] | None = None, *, steps: int = 10,
                     batch_size: int = 32, seed: int = 0, loss_fn: Callable = softmax_cross_entropy,
                     optimizer: Callable[[Any], Any] | None = None, dtype: str = "float32",
                     augment: Callable[[Any], Any] | None = None, rtol: float | None = None,
                     atol: float | None = None, check_layers: bool = True) -> CompareReport:
    """Train one model from one seed on several backends; report where they part.

    Args:
        build_model: ``build_model(backend=, dtype=) -> Layer``; called after ``manual_seed(seed)``.
        data: host ``(x, y)`` arrays; step k uses rows ``k*batch_size ...`` (wrapping around).
        backends: names or Backends; the first is the reference (default: every available one).
        steps: training steps per backend.
        loss_fn: ``loss_fn(output, y) -> (loss, dOutput)``.
        optimizer: ``optimizer(parameters) -> Optimizer`` (default SGD lr 0.05, momentum 0.9).
        dtype: the training dtype.
        augment: optional ``augment(x) -> x`` applied to each device batch (random draws
            from the default generator, reseeded per backend).
        rtol, atol: override :func:`training_tolerance`.
        check_layers: run the layer pass even when training agrees (it always runs when not).

    Returns a :class:`CompareReport` (``str(report)`` is a table; ``report.ok``, ``report.culprit``).
    """
    labels = [get_backend(b).label for b in (backends if backends is not None else available_backends())]
    if len(labels) < 2:
        raise ValueError(f"compare_backends: needs at least 2 backends, got {labels}")
    if steps < 1:
        raise ValueError(f"compare_backends: `steps` must be >= 1, got {steps}")
    drtol, datol = training_tolerance(dtype)
    tol = (drtol if rtol is None else rtol, datol if atol is None else atol)
    optimizer = optimizer or _default_optimizer
    batches = _batches(data, steps, batch_size)
    report = CompareReport(labels, dtype, steps, seed, tol)
    traces = {}
    for label in labels:
        trace = traces[label] = {"loss": [], "state": [], "grads": []}
        try:
            _train(build_model, get_backend(label), batches, dtype, seed, loss_fn, optimizer, augment, trace)
        except Exception as e:  # recorded; the layer pass will name the layer
            report.errors[label] = f"{type(e).__name__} at step {len(trace['loss'])}: {e}"
        report.losses[label] = trace["loss"]
    ref = traces[labels[0]]
    for label in labels[1:]:
        t = traces[label]
        report.params[label], report.grads[label], report.ratio[label] = [], [], []
        for k in range(min(len(t["state"]), len(ref["state"]))):
            pd = {n: _diff(t["state"][k].get(n), r) for n, r in ref["state"][k].items()}
            gd = {n: _diff(t["grads"][k].get(n), r) for n, r in ref["grads"][k].items()}
            report.params[label].append(pd)
            report.grads[label].append(gd)
            scale = {n: float(np.abs(r).max()) if r.size else 0.0 for n, r in ref["state"][k].items()}
            dloss = abs(t["loss"][k] - ref["loss"][k])
            ratio = max([dloss / (tol[1] + tol[0] * abs(ref["loss"][k]))]
                        + [a / (tol[1] + tol[0] * scale[n]) for n, (a, _) in pd.items()])
            report.ratio[label].append(ratio)
            bad = not ratio <= 1.0
            if bad and label not in report.diverged:
                report.diverged[label] = k
    if check_layers or report.errors or report.diverged:
        x0, y0 = batches[0]
        report.layers, report.culprit = probe_layers(build_model, (x0, y0), labels, dtype=dtype, seed=seed,
                                                     loss_fn=loss_fn, augment=augment)
    return report
