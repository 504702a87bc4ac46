"""Weight initialisers with PyTorch's fan-in/fan-out.

Every initialiser is ``f(shape, *, gain=1.0, rng=None, dtype=None, backend=None)``
and returns a backend array drawn from :mod:`anyxp_nn.random` (bitwise identical
on every backend for the same seed).

For a weight of shape ``(out, in, *kernel)``: ``fan_in = in * prod(kernel)``,
``fan_out = out * prod(kernel)``.

* Xavier/Glorot (Glorot & Bengio, 2010): ``std = gain * sqrt(2 / (fan_in + fan_out))``;
  uniform bound ``sqrt(3) * std``.  Keeps activation variance for tanh/sigmoid nets.
* He/Kaiming (He et al., 2015): ``std = gain * sqrt(2 / fan_in)`` (fan-in mode, ReLU gain);
  uniform bound ``sqrt(3) * std``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from .backend import Backend, get_backend
from .random import Generator, get_rng

__all__ = ["fans", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal", "normal",
           "zeros", "uniform", "torch_default", "get_initializer"]


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` as ``torch.nn.init._calculate_fan_in_and_fan_out``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"init.fans: fan-in/fan-out need a shape with at least 2 dimensions, got {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def uniform(shape: Sequence[int], bound: float, *, rng: "Generator | None" = None, dtype: Any = None,
            backend: "str | Backend | None" = None) -> Any:
    """U(-bound, bound)."""
    return get_rng(rng).uniform(shape, -bound, bound, dtype=dtype, backend=backend)


def normal(shape: Sequence[int], std: float = 0.01, *, mean: float = 0.0, gain: float = 1.0,
           rng: "Generator | None" = None, dtype: Any = None, backend: "str | Backend | None" = None) -> Any:
    """N(mean, (gain * std)^2): the "random initialisation" baseline."""
    return get_rng(rng).normal(shape, mean, gain * std, dtype=dtype, backend=backend)


def xavier_uniform(shape, *, gain=1.0, rng=None, dtype=None, backend=None) -> Any:
    fan_in, fan_out = fans(shape)
    return uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)), rng=rng, dtype=dtype, backend=backend)


def xavier_normal(shape, *, gain=1.0, rng=None, dtype=None, backend=None) -> Any:
    fan_in, fan_out = fans(shape)
    return normal(shape, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng=rng, dtype=dtype, backend=backend)


def he_uniform(shape, *, gain=1.0, rng=None, dtype=None, backend=None) -> Any:
    fan_in, _ = fans(shape)
    return uniform(shape, gain * math.sqrt(6.0 / fan_in), rng=rng, dtype=dtype, backend=backend)


def he_normal(shape, *, gain=1.0, rng=None, dtype=None, backend=None) -> Any:
    fan_in, _ = fans(shape)
    return normal(shape, gain * math.sqrt(2.0 / fan_in), rng=rng, dtype=dtype, backend=backend)


def torch_default(shape, *, gain=1.0, rng=None, dtype=None, backend=None) -> Any:
    """PyTorch's Linear/Conv default: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    fan_in, _ = fans(shape)
    return uniform(shape, gain / math.sqrt(fan_in), rng=rng, dtype=dtype, backend=backend)


def zeros(shape, *, gain=1.0, rng=None, dtype=None, backend=None) -> Any:
    b = get_backend(backend)
    return b.xp.zeros(tuple(shape), dtype=b.dtype(dtype), device=b.device)


_BY_NAME = {
    "he": he_normal, "he_normal": he_normal, "kaiming": he_normal, "he_uniform": he_uniform,
    "xavier": xavier_uniform, "glorot": xavier_uniform, "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal, "torch": torch_default, "normal": normal, "zeros": zeros,
}


def get_initializer(init: Any, layer: str) -> Any:
    """A name from the table above or a callable ``(shape, *, rng, dtype, backend)``."""
    if callable(init):
        return init
    if init not in _BY_NAME:
        raise ValueError(f"{layer}: unknown init {init!r}; expected a callable or one of {sorted(_BY_NAME)}")
    return _BY_NAME[init]
