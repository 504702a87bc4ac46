"""Sequential: chain layers; backprop replays the closures in reverse."""
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
            last = len(backprops) - 1
            for i in range(last, -1, -1):
                dY = backprops[i](dY, need_dx=need_dx or i > 0)
            return dY

        return x, backprop

    def __call__(self, x: Any) -> Any:
        for layer in self._children.values():
            x = layer(x)
        return x
