"""The layer pass of :func:`compare_backends`: every layer, the same host input, every backend.

1. On the reference backend the model runs one forward/backward on the first
   batch with every layer instrumented, recording (on the host) the input each
   layer received and the gradient dY it was handed.
2. On every backend a fresh model from the same seed runs each layer alone on
   that recorded input and dY (the default generator reseeded first, so
   dropout draws agree): output, dX, parameter gradients and buffers are
   compared with the reference backend's, normwise, at the layer tolerance.
   The output, dX and gradients must keep the layer's dtype and device, the
   call must not raise, and in float32 no namespace call may touch float64
   (:func:`~anyxp_nn.testing.dtype_audit.float64_audit`).

Leaves are checked in the order the forward pass reached them, then the
containers innermost first; the first problem found is the culprit.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..backend import Backend, get_backend
from ..random import manual_seed
from .layer_run import dtype_device_problems, run_layer
from .tolerances import layer_tolerance

__all__ = ["LayerResult", "diff", "probe_layers"]

@dataclass
class LayerResult:
    """One layer on one backend.  ``problem`` is "" when it agrees with the reference.

    ``problem`` is one of "error", "dtype", "device", "float64", "forward", "backward"
    ("backward": dX, a gradient or a buffer differs); ``detail`` says what and by how much.
    """
    layer: str          # dotted name ("(model)" for the root)
    kind: str           # class name
    backend: str
    reference: str
    forward: tuple[float, float] = (0.0, 0.0)    # max (abs, rel) difference of the output
    backward: tuple[float, float] = (0.0, 0.0)   # worst of dX, gradients and buffers
    problem: str = ""
    detail: str = ""

    def __str__(self) -> str:
        where = f"layer {self.layer!r} ({self.kind}) on {self.backend!r}"
        if not self.problem:
            return f"{where}: agrees with {self.reference!r}"
        return f"{where}: {self.problem} - {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record(build_model: Callable[..., Any], b: Backend, batch: tuple[np.ndarray, np.ndarray], dtype: str,
            seed: int, loss_fn: Callable, augment: Callable | None) -> tuple[dict[str, dict], list[str], str]:
    """Run one instrumented step on ``b``; return (records by name, exit order, error or "")."""
    manual_seed(seed)
    model = build_model(backend=b, dtype=dtype)
    rec: dict[str, dict[str, Any]] = {}
    exits: list[str] = []
    for name, layer in model.named_layers():
        _instrument(layer, name or "(model)", b, rec, exits)
    try:
        x = b.asarray(batch[0], dtype=dtype)
        if augment is not None:
            x = augment(x)
        out, backprop = model.forward(x, train=True)
        loss, dout = loss_fn(out, b.asarray(batch[1]))
        backprop(dout)
        return rec, exits, ""
    except Exception as e:
        return rec, exits, f"{type(e).__name__}: {e}"


def _instrument(layer: Any, name: str, b: Backend, rec: dict, exits: list) -> None:
    forward = layer.forward

    def recording_forward(x: Any, train: "bool | None" = None) -> Any:
        first = name not in rec
        if first:
            rec[name] = {"x": b.to_numpy(x), "layer": layer}
        y, backprop = forward(x, train)
        if first:
            exits.append(name)

        def recording_backprop(dY: Any, need_dx: bool = True) -> Any:
            rec[name].setdefault("dy", b.to_numpy(dY))
            return backprop(dY, need_dx=need_dx)
        return y, recording_backprop

    object.__setattr__(layer, "forward", recording_forward)


def _run_layer(layer: Any, b: Backend, x_host: np.ndarray, dy_host: np.ndarray | None, seed: int,
               name: str, audit: bool) -> dict[str, Any]:
    """Forward + backward of one layer on ``b``: host results plus the problems seen."""
    dY = dy_host if dy_host is not None else (lambda shape: np.random.default_rng(seed).standard_normal(shape))
    run = run_layer(layer, b, b.asarray(x_host), dy_host=dY, train=True, seed=seed + 1, audit=audit, where=name)
    y, dx, grads = run.host(b)
    buffers = {n: b.to_numpy(buf) for n, buf in layer.named_buffers() if b.xp.isdtype(buf.dtype, "real floating")}
    return {"y": y, "dx": dx, "grads": {n: g for n, g in grads.items() if g is not None}, "buffers": buffers,
            "problems": dtype_device_problems(run, b, layer)}


def _inside(child: str, parent: str) -> bool:
    return child != parent and (parent == "(model)" or child.startswith(parent + "."))


def diff(a: np.ndarray | None, r: np.ndarray | None) -> tuple[float, float]:
    """``(max|a - r|, max|a - r| / max|r|)``; infinite when one is missing or the shapes differ."""
    if a is None or r is None:
        return (0.0, 0.0) if a is None and r is None else (float("inf"), float("inf"))
    if a.shape != r.shape:
        return float("inf"), float("inf")
    d = np.abs(a.astype(np.float64) - r.astype(np.float64))
    m = float(d.max()) if d.size else 0.0
    s = float(np.abs(r).max()) if r.size else 0.0
    return m, (m / s if s > 0 else (0.0 if m == 0 else float("inf")))


def _beyond(d: tuple[float, float], ref: np.ndarray | None, tol: tuple[float, float]) -> bool:
    scale = float(np.abs(ref).max()) if ref is not None and ref.size else 0.0
    return not d[0] <= tol[1] + tol[0] * scale


def probe_layers(build_model: Callable[..., Any], batch: tuple[np.ndarray, np.ndarray],
                 backends: Sequence[str], *, dtype: str = "float32", seed: int = 0,
                 loss_fn: Callable, augment: Callable | None = None) -> tuple[list[LayerResult], LayerResult | None]:
    """Check each layer alone on every backend; return (results, the first problem or None)."""
    ref = get_backend(backends[0])
    rec, exits, err = _record(build_model, ref, batch, dtype, seed, loss_fn, augment)
    tol = layer_tolerance(dtype)
    audit = dtype in ("float32", "float16")
    leaves = [n for n in rec if not list(rec[n]["layer"].named_children())]
    order = leaves + [n for n in exits if n not in leaves] + [n for n in rec if n not in exits and n not in leaves]
    models = {}
    for label in backends:
        manual_seed(seed)
        try:
            m = build_model(backend=label, dtype=dtype)
            models[label] = {name or "(model)": layer for name, layer in m.named_layers()}
        except Exception as e:  # cannot even build: the model's constructor is the culprit
            r = LayerResult("(model)", "build_model", label, ref.label, problem="error",
                            detail=f"build_model raised {type(e).__name__}: {e}")
            return [r], r
    results: list[LayerResult] = []
    for name in order:
        x_host, dy_host = rec[name]["x"], rec[name].get("dy")
        runs: dict[str, dict[str, Any]] = {}
        for label in backends:
            layer = models[label][name]
            res = LayerResult(name, type(layer).__name__, label, ref.label)
            try:
                runs[label] = _run_layer(layer, get_backend(label), x_host, dy_host, seed, name, audit)
            except Exception as e:
                res.problem, res.detail = "error", f"{type(e).__name__}: {e}"
                results.append(res)
                continue
            run, base = runs[label], runs.get(ref.label)
            if any(r.problem and label == r.backend and _inside(r.layer, name) for r in results):
                results.append(res)   # a child already explains it
                continue
            if run["problems"]:
                res.problem, res.detail = run["problems"][0]
            if base is not None and label != ref.label:
                res.forward = diff(run["y"], base["y"])
                pairs = [("dX", run["dx"], base["dx"])]
                pairs += [(f"grad {n!r}", run["grads"].get(n), g) for n, g in base["grads"].items()]
                pairs += [(f"buffer {n!r}", run["buffers"].get(n), v) for n, v in base["buffers"].items()]
                worst = max(((w, diff(a, r), r) for w, a, r in pairs), key=lambda t: t[1][1], default=None)
                if worst is not None:
                    res.backward = worst[1]
                if not res.problem and _beyond(res.forward, base["y"], tol):
                    res.problem = "forward"
                    res.detail = (f"output differs from {ref.label!r} by max abs {res.forward[0]:.3g} "
                                  f"(rel {res.forward[1]:.3g}; tolerance rtol={tol[0]:g}, atol={tol[1]:g})")
                if not res.problem:
                    for w, d, r in ((w, diff(a, r), r) for w, a, r in pairs):
                        if _beyond(d, r, tol):
                            res.problem = "backward"
                            res.detail = (f"{w} differs from {ref.label!r} by max abs {d[0]:.3g} (rel {d[1]:.3g}; "
                                          f"tolerance rtol={tol[0]:g}, atol={tol[1]:g})")
                            break
            results.append(res)
    if err and not any(r.problem for r in results):
        r = LayerResult("(loss)", getattr(loss_fn, "__name__", "loss_fn"), ref.label, ref.label,
                        problem="error", detail=err)
        results.append(r)
    culprit = next((r for r in results if r.problem), None)
    return results, culprit
