"""Sequential: chain layers; backprop replays the closures in reverse (down to the lowest
trainable child when no input gradient is asked for)."""
from __future__ import annotations

from typing import Any, Iterator

from .base import Backprop, Layer, children_backend

__all__ = ["Sequential"]


class Sequential(Layer):
    """``Sequential(l0, l1, ...)``: y = l_n(...l1(l0(x))). Children are named "0", "1", ...

    The backend and dtype are those of the first child with parameters or buffers
    (parameter-free layers follow their input), else of the first child, else the defaults.
    """

    def __init__(self, *layers: Layer, backend: Any = None, dtype: Any = None):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"Sequential: argument {i} is a {type(layer).__name__}, expected a Layer")
        if layers and backend is None:
            backend, child_dtype = children_backend(list(layers))
            dtype = child_dtype if dtype is None else dtype
        super().__init__(backend=backend, dtype=dtype)
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def append(self, layer: Layer) -> "Sequential":
        setattr(self, str(len(self._children)), layer)
        return self

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self._children.values())

    def __getitem__(self, i: "int | slice") -> "Layer":
        layers = list(self._children.values())
        if isinstance(i, slice):
            return Sequential(*layers[i])
        return layers[i]

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        backprops = []
        for layer in self._children.values():
            x, bp = layer.forward(x, train)
            backprops.append(bp)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            # without dx, the children below the lowest one holding a trainable parameter need no
            # backward at all (PyTorch's autograd stops there too): a frozen trunk costs one forward
            stop = 0 if need_dx else self._lowest_trainable()
            if stop is None:
                return None
            for i in range(len(backprops) - 1, stop - 1, -1):
                dY = backprops[i](dY, need_dx=need_dx or i > stop)
            return dY if need_dx else None

        return x, backprop

    def _lowest_trainable(self) -> "int | None":
        """Index of the first child with a parameter that requires a gradient (None: no such child)."""
        for i, layer in enumerate(self._children.values()):
            if any(p.requires_grad for p in layer.parameters()):
                return i
        return None

    def __call__(self, x: Any) -> Any:
        for layer in self._children.values():
            x = layer(x)
        return x
