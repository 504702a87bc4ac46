"""The layer protocol: ``forward(x, train) -> (y, backprop)`` plus parameter plumbing.

A layer registers its :class:`Parameter` attributes, child layers and buffers
by assignment (``self.weight = Parameter(...)``), in the order PyTorch would,
so ``state_dict`` keys and layouts match ``torch.nn``.

``backprop(dY, need_dx=True)`` accumulates into every parameter's ``grad`` and
returns dL/dx; with ``need_dx=False`` (the first layer of a model, whose input
needs no gradient) it may skip computing dx and return None.

Modes, as PyTorch's: every layer has ``training`` (True after construction),
``train(mode)`` and ``eval()`` set it recursively.  ``forward(x, train=None)``
lets each layer use its own ``training``; ``train=True/False`` forces the whole
subtree.  Only mode-dependent layers (Dropout, BatchNorm) look at it; containers
pass ``train`` through unchanged.

Layers without parameters or buffers that set ``follows_input = True``
(activations, pooling, Flatten, ...) compute on their input's backend, device and
floating dtype, as ``torch.nn.ReLU()`` runs on any device; :meth:`Layer._check_input`
returns the backend to compute on.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, NamedTuple

from .._checks import dtype_name
from ..backend import Backend, all_finite, backend_of, get_backend, to_numpy
from ..keymap import map_state_dict_keys
from ..parameter import Parameter

__all__ = ["Layer", "Backprop", "StateDictError", "IncompatibleKeys", "children_backend"]

_CONTAINER_HINT = {list: "LayerList", tuple: "LayerList", dict: "LayerDict"}

Backprop = Callable[..., Any]


class StateDictError(KeyError):
    """Missing or unexpected keys in ``load_state_dict`` (a KeyError with a readable message)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns, as torch's: keys the model has that the dict lacks,
    and keys of the dict the model does not have (both empty after a strict load)."""
    missing_keys: list[str]
    unexpected_keys: list[str]


class Layer:
    """Base class of every layer and container.

    Args:
        backend: a backend name or :class:`Backend` (default: the process default).
        dtype: a dtype name (``"float32"``) or the backend's dtype object (default float32).
    """

    #: A parameter-free layer that computes on its input's backend, device and floating
    #: dtype instead of the ones it was built with (see :meth:`_check_input`).
    follows_input: bool = False
    #: Training mode (PyTorch's ``Module.training``); set per instance by train()/eval().
    training: bool = True

    def __init__(self, *, backend: "str | Backend | None" = None, dtype: Any = None):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_buffers", [])
        object.__setattr__(self, "training", True)
        self.backend = get_backend(backend)
        self.dtype = self.backend.dtype(dtype)

    # -- registration ------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._params[name] = value
        elif isinstance(value, Layer):
            self._children[name] = value
        elif type(value) in _CONTAINER_HINT and _holds_layers(value):
            kind = _CONTAINER_HINT[type(value)]
            raise TypeError(f"{type(self).__name__}: attribute {name!r} is a plain {type(value).__name__} "
                            f"of Layers, which would not be registered (their parameters would be "
                            f"invisible to parameters(), state_dict() and optimizers); use "
                            f"nn.{kind}(...) instead")
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: Any) -> None:
        """A non-trainable array saved in ``state_dict`` (e.g. BatchNorm running stats)."""
        if name not in self._buffers:
            self._buffers.append(name)
        object.__setattr__(self, name, value)

    # -- the protocol ------------------------------------------------------------
    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        """Return ``(y, backprop)``; ``backprop(dY)`` accumulates grads and returns dX.

        ``train=None`` uses each layer's own ``training``; True/False force the subtree.
        """
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def __call__(self, x: Any) -> Any:
        """Inference: ``forward(x, train=False)[0]``."""
        return self.forward(x, train=False)[0]

    # -- modes -------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Layer":
        """Set ``training`` on this layer and every descendant; returns self (as torch's)."""
        if not isinstance(mode, bool):
            raise TypeError(f"{type(self).__name__}.train: `mode` must be a bool, got {mode!r}")
        for _, layer in self.named_layers():
            object.__setattr__(layer, "training", mode)
        return self

    def eval(self) -> "Layer":
        """``train(False)``: Dropout is the identity, BatchNorm uses its running statistics."""
        return self.train(False)

    def _mode(self, train: "bool | None") -> bool:
        """The mode a forward runs in: ``train`` when given, else this layer's ``training``."""
        return self.training if train is None else bool(train)

    # -- traversal ---------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Layer"]]:
        return iter(self._children.items())

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, "Layer"]]:
        """This layer and every descendant with dotted names, as torch's ``named_modules()``:
        ``("", self), ("0", ...), ("0.block", ...)``.  A layer reachable twice is listed once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, layer = stack.pop()
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            yield name, layer
            kids = [(f"{name}.{k}" if name else k, c) for k, c in layer._children.items()]
            stack.extend(reversed(kids))

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """``(dotted name, Parameter)`` in PyTorch's order."""
        for name, p in self._params.items():
            yield prefix + name, p
        for name, child in self._children.items():
            yield from child.named_parameters(f"{prefix}{name}.")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for name in self._buffers:
            yield prefix + name, getattr(self, name)
        for name, child in self._children.items():
            yield from child.named_buffers(f"{prefix}{name}.")

    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, "Layer", str, bool]]:
        """(key, owner, attribute, is_parameter) in PyTorch's state_dict order."""
        for name in self._params:
            yield prefix + name, self, name, True
        for name in self._buffers:
            yield prefix + name, self, name, False
        for name, child in self._children.items():
            yield from child._state_items(f"{prefix}{name}.")

    # -- gradients and freezing --------------------------------------------------
    def zero_grad(self) -> None:
        """Reset every gradient to None (the next backward writes fresh arrays)."""
        for p in self.parameters():
            p.grad = None

    def freeze(self) -> "Layer":
        for p in self.parameters():
            p.requires_grad = False
            p.grad = None
        return self

    def unfreeze(self) -> "Layer":
        for p in self.parameters():
            p.requires_grad = True
        return self

    # -- state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Parameters and buffers as host NumPy copies, PyTorch key names."""
        return {key: to_numpy(getattr(owner, attr).data if is_p else getattr(owner, attr))
                for key, owner, attr, is_p in self._state_items()}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True, *, key_map: Any = None) -> IncompatibleKeys:
        """Load parameters and buffers from NumPy or any backend's arrays.

        Every key, shape and value is checked before anything is written, so a
        failed load leaves the model unchanged.  With ``strict=False`` missing and
        unexpected keys are allowed; either way the return value is the named tuple
        ``(missing_keys, unexpected_keys)``, as torch's.  ``key_map``: rules that rename
        the keys of a checkpoint named otherwise (torchvision's ``conv1``, ``layer1.0.bn1``),
        see :func:`anyxp_nn.keymap.map_state_dict_keys`; keys left over are listed side by side.
        """
        if not hasattr(state, "items"):
            raise TypeError(f"{type(self).__name__}.load_state_dict expects a dict, got {type(state).__name__}")
        if key_map is not None:
            state = map_state_dict_keys(state, key_map, expected=self, strict=strict)
        items = list(self._state_items())
        expected = {key for key, *_ in items}
        missing = [k for k, *_ in items if k not in state]
        extra = [k for k in state if k not in expected]
        if strict and (missing or extra):
            parts = []
            if missing:
                parts.append(f"missing keys {sorted(missing)}")
            if extra:
                parts.append(f"unexpected keys {sorted(extra)}")
            raise StateDictError(f"{type(self).__name__}.load_state_dict: " + "; ".join(parts)
                                 + f" (expected keys: {[k for k, *_ in items]})")
        staged = []
        for key, owner, attr, is_p in items:
            if key not in state:
                continue
            current = getattr(owner, attr).data if is_p else getattr(owner, attr)
            value = to_numpy(state[key])  # a host copy: later changes to `state` cannot reach the model
            if tuple(value.shape) != tuple(current.shape):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key!r} has shape "
                                 f"{tuple(value.shape)}, expected {tuple(current.shape)}")
            if value.dtype.kind not in "fiub":
                raise TypeError(f"{type(self).__name__}.load_state_dict: {key!r} has dtype {value.dtype}, "
                                "expected a numeric array")
            if value.dtype.kind == "f" and not all_finite(value):
                raise ValueError(f"{type(self).__name__}.load_state_dict: {key!r} holds non-finite values")
            staged.append((owner, attr, is_p, value, current.dtype))
        for owner, attr, is_p, value, dtype in staged:
            arr = owner.backend.asarray(value, dtype=dtype)
            if is_p:
                getattr(owner, attr).data = arr
            else:
                object.__setattr__(owner, attr, arr)
        return IncompatibleKeys(missing, extra)

    # -- moving ------------------------------------------------------------------
    def to(self, backend: "str | Backend | None" = None, dtype: Any = None) -> "Layer":
        """Move (and/or cast) parameters, gradients and floating buffers; returns self."""
        target = get_backend(backend) if backend is not None else self.backend
        new_dtype = target.dtype(dtype) if dtype is not None else target.dtype(dtype_name(self.dtype))
        for _, layer in self.named_layers():
            for p in layer._params.values():
                p.data = _move(p.data, target, new_dtype)
                if p.grad is not None:
                    p.grad = _move(p.grad, target, new_dtype)
            for name in layer._buffers:
                buf = getattr(layer, name)
                floating = dtype_name(buf.dtype).startswith("float")
                object.__setattr__(layer, name, _move(buf, target, new_dtype if floating else None))
            object.__setattr__(layer, "backend", target)
            object.__setattr__(layer, "dtype", new_dtype)
        return self

    # -- input checks ------------------------------------------------------------
    def _check_input(self, x: Any, ndim: "int | tuple[int, ...] | None" = None,
                     what: str = "input") -> Backend:
        """Raise a clear error for an input on another backend/device, of the wrong dtype or rank.

        Returns the backend to compute on: the layer's, or for a ``follows_input`` layer
        without parameters and buffers, the input's (any floating dtype is accepted then).
        """
        if self.follows_input and not self._params and not self._buffers:
            b = _input_backend(self, x, what)
            if not b.xp.isdtype(x.dtype, "real floating"):
                got = dtype_name(x.dtype)
                raise TypeError(f"{self._name()}: {what} has dtype {got} (integer input), expected a "
                                f"floating dtype; cast it with xp.astype(x, xp.float32)")
        else:
            b = self.backend
            if not b.owns(x):
                try:
                    where = backend_of(x).label
                except (TypeError, ValueError):
                    where = type(x).__name__
                raise ValueError(f"{self._name()}: {what} is on backend {where!r}, expected {b.label!r} "
                                 f"(the layer's); move it with backend.asarray or the layer with .to()")
            if x.dtype != self.dtype:
                got, want = dtype_name(x.dtype), dtype_name(self.dtype)
                kind = "integer" if "int" in got or got == "bool" else got
                fix = f" or the layer with .to(dtype={got!r})" if got.startswith("float") else ""  # never to an int
                raise TypeError(f"{self._name()}: {what} has dtype {got} ({kind} input), expected {want}; "
                                f"cast it with xp.astype(x, xp.{want}){fix}")
        if ndim is not None:
            allowed = (ndim,) if isinstance(ndim, int) else ndim
            if x.ndim not in allowed:
                raise ValueError(f"{self._name()}: expected a {'-D or '.join(map(str, allowed))}-D {what}, "
                                 f"got shape {tuple(x.shape)}")
        return b

    def _name(self) -> str:
        return self.extra_repr_name()

    def extra_repr(self) -> str:
        return ""

    def extra_repr_name(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    def __repr__(self) -> str:
        if not self._children:
            return self.extra_repr_name()
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


def children_backend(layers: "list[Layer]") -> "tuple[Backend | None, Any]":
    """(backend, dtype) a container takes from its children: those of the first child that
    holds parameters or buffers (parameter-free layers follow their input), else the first
    child's; (None, None) with no children."""
    for layer in layers:
        if any(True for _ in layer._state_items()):
            return layer.backend, layer.dtype
    return (layers[0].backend, layers[0].dtype) if layers else (None, None)


def _holds_layers(value: Any) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(isinstance(v, Layer) for v in items)


def _input_backend(layer: Layer, x: Any, what: str) -> Backend:
    """The backend ``x`` lives on, or a TypeError naming the layer for a non-array."""
    try:
        return backend_of(x)
    except (TypeError, ValueError):
        raise TypeError(f"{layer._name()}: {what} must be an array of a backend's namespace, "
                        f"got {type(x).__name__}") from None


def _move(a: Any, target: Backend, dtype: Any) -> Any:
    if target.owns(a):
        return a if dtype is None or a.dtype == dtype else target.xp.astype(a, dtype)
    host = to_numpy(a)
    return target.asarray(host, dtype=dtype)
