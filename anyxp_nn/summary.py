"""nn.summary: a per-layer table of output shapes and parameter counts (as torchinfo's).

The model runs once on zeros of ``input_shape`` in evaluation mode
(``forward(x, train=False)``: running statistics, dropout masks and the global
generator are untouched) while every layer's output shape is recorded.

Counts: a layer's ``params`` are those of its subtree, each Parameter counted once,
so they equal ``sum(p.numel() for p in module.parameters())`` of the matching
``torch.nn`` module; the totals split into trainable (``requires_grad``) and frozen.
Memory per sample: the input, plus the outputs of every leaf layer (what a forward
creates and a backward mostly keeps), divided by the batch size.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from ._checks import dtype_name
from .layers.base import Layer

__all__ = ["summary", "Summary", "SummaryRow"]


@dataclass(frozen=True)
class SummaryRow:
    """One layer: dotted name ("" for the model), class name, output shape (None when the
    forward never reached it), parameters in its subtree (all / trainable), depth."""
    name: str
    type: str
    output_shape: "tuple[int, ...] | None"
    params: int
    trainable_params: int
    depth: int


@dataclass(frozen=True)
class Summary:
    """What :func:`summary` returns; ``str(summary)`` is the table."""
    rows: list[SummaryRow]
    input_shape: tuple[int, ...]
    dtype: str
    total_params: int
    trainable_params: int
    frozen_params: int
    input_bytes_per_sample: float
    activation_bytes_per_sample: float
    param_bytes: int

    def __str__(self) -> str:
        head = ("Layer", "Type", "Output shape", "Params")
        body = [(("  " * r.depth + r.name) if r.name else "(model)", r.type,
                 "-" if r.output_shape is None else str(r.output_shape), f"{r.params:,}") for r in self.rows]
        widths = [max(len(row[i]) for row in [head] + body) for i in range(4)]

        def line(cells: Sequence[str]) -> str:
            return "  ".join([c.ljust(w) for c, w in zip(cells[:3], widths)] + [cells[3].rjust(widths[3])])

        rule = "=" * len(line(head))
        out = [rule, line(head), rule] + [line(row) for row in body] + [rule]
        out += [f"Total params: {self.total_params:,}",
                f"Trainable params: {self.trainable_params:,}",
                f"Frozen params: {self.frozen_params:,}",
                f"Input shape: {self.input_shape} ({self.dtype})",
                f"Input size per sample: {_size(self.input_bytes_per_sample)}",
                f"Activations per sample (forward): {_size(self.activation_bytes_per_sample)}",
                f"Params size: {_size(self.param_bytes)}", rule]
        return "\n".join(out)

    __repr__ = __str__


def summary(model: Layer, input_shape: Sequence[int], dtype: Any = None) -> Summary:
    """Summarise ``model`` for an input of ``input_shape`` (with a batch size, as torchinfo's
    ``input_size``), on the model's backend, in ``dtype`` (default: the model's)."""
    if not isinstance(model, Layer):
        raise TypeError(f"summary: `model` must be an anyxp_nn Layer, got {type(model).__name__}")
    if (isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") or len(input_shape) < 1
            or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in input_shape)):
        raise ValueError(f"summary: `input_shape` must be a tuple of positive ints with the batch size first, "
                         f"e.g. (1, 3, 32, 32), got {input_shape!r}")
    shape = tuple(int(d) for d in input_shape)
    b = model.backend
    dt = b.dtype(dtype) if dtype is not None else model.dtype
    x = b.xp.zeros(shape, dtype=dt, device=b.device)
    layers = list(model.named_layers())
    shapes = _record_shapes(model, layers, x)
    rows, leaf_bytes = [], 0
    for name, layer in layers:
        params = _unique(layer.parameters())
        out = shapes.get(id(layer))
        rows.append(SummaryRow(name, type(layer).__name__, out, sum(_numel(p.data) for p in params),
                               sum(_numel(p.data) for p in params if p.requires_grad),
                               name.count(".") + 1 if name else 0))
        if not layer._children and out is not None:
            leaf_bytes += math.prod(out) * _itemsize(b.xp, dt)
    params = _unique(model.parameters())
    total = sum(_numel(p.data) for p in params)
    trainable = sum(_numel(p.data) for p in params if p.requires_grad)
    return Summary(rows=rows, input_shape=shape, dtype=dtype_name(dt), total_params=total,
                   trainable_params=trainable, frozen_params=total - trainable,
                   input_bytes_per_sample=math.prod(shape) * _itemsize(b.xp, dt) / shape[0],
                   activation_bytes_per_sample=leaf_bytes / shape[0],
                   param_bytes=sum(_numel(p.data) * _itemsize(b.xp, p.data.dtype) for p in params))


def _record_shapes(model: Layer, layers: "list[tuple[str, Layer]]", x: Any) -> "dict[int, tuple[int, ...]]":
    """Run ``model.forward(x, train=False)`` with every layer's output shape recorded."""
    shapes: dict[int, tuple[int, ...]] = {}
    wrapped = []

    def wrap(layer: Layer) -> None:
        own = layer.__dict__.get("forward")
        orig = layer.forward

        def forward(x: Any, train: "bool | None" = None) -> Any:
            y, backprop = orig(x, train)
            shapes.setdefault(id(layer), tuple(int(d) for d in y.shape))
            return y, backprop

        object.__setattr__(layer, "forward", forward)
        wrapped.append((layer, own))

    for _, layer in layers:
        wrap(layer)
    try:
        model.forward(x, train=False)
    except Exception as e:
        e.add_note(f"(in nn.summary, running the model on zeros of shape {tuple(x.shape)})")
        raise
    finally:
        for layer, own in reversed(wrapped):
            if own is None:
                layer.__dict__.pop("forward", None)
            else:
                object.__setattr__(layer, "forward", own)
    return shapes


def _unique(params: list) -> list:
    seen, out = set(), []
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _numel(a: Any) -> int:
    return math.prod(int(d) for d in a.shape)


def _itemsize(xp: Any, dtype: Any) -> int:
    info = xp.finfo(dtype) if xp.isdtype(dtype, "real floating") else xp.iinfo(dtype)
    return info.bits // 8


def _size(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if nbytes < 1024:
            return f"{nbytes:,.1f} {unit}" if unit != "B" else f"{nbytes:,.0f} B"
        nbytes /= 1024
    return f"{nbytes:,.1f} GiB"
