"""Small argument checks shared by the whole package (it imports nothing of anyxp_nn).

Every error names its owner and the argument, says what was expected and what arrived:
``positive_int(0, "in_features", "Linear")`` raises
``ValueError("Linear: `in_features` must be a positive int, got 0")``.
"""
from __future__ import annotations

from typing import Any

__all__ = ["dtype_name", "non_negative_int", "pair", "positive_int"]


def _is_int(value: Any, types: tuple[type, ...]) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def positive_int(value: Any, name: str, owner: str, *, types: tuple[type, ...] = (int,)) -> Any:
    """``value`` if it is an int >= 1 (a bool is not), else a ValueError naming ``owner`` and ``name``.

    ``types``: the accepted int types, e.g. ``(int, numpy.integer)``.
    """
    if not _is_int(value, types) or value < 1:
        raise ValueError(f"{owner}: `{name}` must be a positive int, got {value!r}")
    return value


def non_negative_int(value: Any, name: str, owner: str, *, types: tuple[type, ...] = (int,)) -> Any:
    """``value`` if it is an int >= 0 (a bool is not), else a ValueError naming ``owner`` and ``name``."""
    if not _is_int(value, types) or value < 0:
        raise ValueError(f"{owner}: `{name}` must be a non-negative int, got {value!r}")
    return value


def pair(value: Any, name: str, owner: str, minimum: int = 1) -> tuple[int, int]:
    """An int or an (h, w) pair of ints >= ``minimum`` -> (h, w), as PyTorch's size arguments."""
    if _is_int(value, (int,)):
        values: Any = (value, value)
    else:
        values = tuple(value) if isinstance(value, (tuple, list)) else None
    if values is None or len(values) != 2 or any(not _is_int(v, (int,)) or v < minimum for v in values):
        raise ValueError(f"{owner}: `{name}` must be an int >= {minimum} or a pair of them, got {value!r}")
    return values


def dtype_name(dtype: Any) -> str:
    """The standard name ("float32", "int64", ...) of any backend's dtype object or a NumPy scalar type."""
    name = getattr(dtype, "name", None)
    if isinstance(name, str):  # numpy.dtype, array_api_strict's dtypes
        return name
    if isinstance(dtype, type):  # NumPy scalar types such as numpy.float32
        return dtype.__name__
    return str(dtype).rsplit(".", 1)[-1]  # torch.float32 -> "float32"
