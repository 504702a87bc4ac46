"""LayerList and LayerDict: registered collections of layers, as torch's ModuleList/ModuleDict.

A plain Python list or dict of layers assigned as an attribute would hide their
parameters from ``parameters()``, ``state_dict()`` and optimizers (and raises a
TypeError in :class:`~anyxp_nn.layers.base.Layer`); these containers register
every entry as a child, named ``"0", "1", ...`` or by its key, so
``state_dict`` keys read ``"blocks.0.weight"`` / ``"heads.cls.weight"`` as in PyTorch.

Neither defines ``forward``: the owner decides how its entries are called.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from .base import Layer, children_backend

__all__ = ["LayerList", "LayerDict"]


def _checked(owner: str, what: str, layer: Any) -> Layer:
    if not isinstance(layer, Layer):
        raise TypeError(f"{owner}: {what} is a {type(layer).__name__}, expected a Layer")
    return layer


class _Collection(Layer):
    def _refresh(self) -> None:
        """Take the children's backend and dtype again (the first child with parameters wins)."""
        backend, dtype = children_backend(list(self._children.values()))
        if backend is not None:
            object.__setattr__(self, "backend", backend)
            object.__setattr__(self, "dtype", dtype)

    def forward(self, x: Any, train: "bool | None" = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no forward: call its entries from the owner's "
                                  "forward, or use Sequential to chain them")

    def __len__(self) -> int:
        return len(self._children)


class LayerList(_Collection):
    """A list of layers registered as children ``"0", "1", ...`` (torch's ``ModuleList``).

    Supports ``len``, iteration, ``ll[i]`` (a slice gives a new LayerList of the same
    layers), ``ll[i] = layer``, ``del ll[i]``, ``append``, ``extend`` and ``insert``.
    """

    def __init__(self, layers: "Iterable[Layer] | None" = None):
        super().__init__()
        self.extend(layers if layers is not None else ())

    def _set_all(self, layers: "list[Layer]") -> None:
        self._children.clear()
        for i, layer in enumerate(layers):
            self._children[str(i)] = layer
        self._refresh()

    def _index(self, i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"LayerList indices must be integers or slices, not {type(i).__name__}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"LayerList index {i} is out of range for {n} layers")
        return i % n

    def __getitem__(self, i: "int | slice") -> Any:
        layers = list(self._children.values())
        if isinstance(i, slice):
            return LayerList(layers[i])
        return layers[self._index(i)]

    def __setitem__(self, i: int, layer: Layer) -> None:
        self._children[str(self._index(i))] = _checked("LayerList", f"item {i}", layer)
        self._refresh()

    def __delitem__(self, i: "int | slice") -> None:
        layers = list(self._children.values())
        del layers[i if isinstance(i, slice) else self._index(i)]
        self._set_all(layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._children.values()))

    def append(self, layer: Layer) -> "LayerList":
        self._children[str(len(self))] = _checked("LayerList.append", "the argument", layer)
        self._refresh()
        return self

    def extend(self, layers: Iterable[Layer]) -> "LayerList":
        if isinstance(layers, Layer) or not hasattr(layers, "__iter__"):
            raise TypeError(f"LayerList.extend expects an iterable of Layers, got {type(layers).__name__}")
        for k, layer in enumerate(list(layers)):
            self._children[str(len(self))] = _checked("LayerList", f"item {k}", layer)
        self._refresh()
        return self

    def insert(self, index: int, layer: Layer) -> None:
        layers = list(self._children.values())
        layers.insert(index, _checked("LayerList.insert", "the argument", layer))
        self._set_all(layers)


class LayerDict(_Collection):
    """Layers registered under string keys, in insertion order (torch's ``ModuleDict``).

    Keys are non-empty strings without dots. Supports ``ld[key]``, ``ld[key] = layer``,
    ``del ld[key]``, ``in``, ``len``, iteration over keys, ``keys()``, ``values()``,
    ``items()``, ``update()`` and ``pop()``.
    """

    def __init__(self, layers: "Mapping[str, Layer] | Iterable[tuple[str, Layer]] | None" = None):
        super().__init__()
        if layers is not None:
            self.update(layers)

    @staticmethod
    def _key(key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"LayerDict keys must be strings, got {type(key).__name__} {key!r}")
        if not key or "." in key:
            raise ValueError(f"LayerDict: key {key!r} must be a non-empty string without '.' "
                             "(dots separate the levels of state_dict keys)")
        return key

    def __getitem__(self, key: str) -> Layer:
        try:
            return self._children[key]
        except KeyError:
            raise KeyError(f"LayerDict has no key {key!r} (keys: {list(self._children)})") from None

    def __setitem__(self, key: str, layer: Layer) -> None:
        self._children[self._key(key)] = _checked("LayerDict", f"the value for {key!r}", layer)
        self._refresh()

    def __delitem__(self, key: str) -> None:
        self[key]  # the readable KeyError
        del self._children[key]
        self._refresh()

    def __contains__(self, key: object) -> bool:
        return key in self._children

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._children))

    def keys(self) -> list[str]:
        return list(self._children)

    def values(self) -> list[Layer]:
        return list(self._children.values())

    def items(self) -> list[tuple[str, Layer]]:
        return list(self._children.items())

    def pop(self, key: str) -> Layer:
        layer = self[key]
        del self[key]
        return layer

    def update(self, layers: "Mapping[str, Layer] | Iterable[tuple[str, Layer]]") -> None:
        pairs = layers.items() if hasattr(layers, "items") else layers
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"LayerDict.update expects a mapping or (key, Layer) pairs, got {pair!r}")
            self[pair[0]] = pair[1]
