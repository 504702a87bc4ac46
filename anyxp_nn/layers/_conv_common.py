"""What Conv2D and ConvTranspose2D share: channel checks, the bias, the repr and the input check."""
from __future__ import annotations

import math
from typing import Any

from .. import init as _init
from .._checks import positive_int
from ..parameter import Parameter

__all__ = ["check_channels", "check_input_channels", "conv_bias", "conv_repr"]


def check_channels(in_channels: Any, out_channels: Any, groups: Any, owner: str) -> None:
    """Positive ints, both channel counts divisible by ``groups`` (PyTorch's rule)."""
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
        positive_int(v, name, owner)
    for name, v in (("in_channels", in_channels), ("out_channels", out_channels)):
        if v % groups:
            raise ValueError(f"{owner}: `{name}` (={v}) must be divisible by `groups` (={groups})")


def conv_bias(init: Any, out_channels: int, fan_in: int, **kw: Any) -> Parameter:
    """(out_channels,) bias: zeros, or with ``init="torch"`` PyTorch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    b = (_init.uniform((out_channels,), 1 / math.sqrt(fan_in), **kw) if init == "torch"
         else _init.zeros((out_channels,), **kw))
    return Parameter(b)


def conv_repr(layer: Any, options: "tuple[tuple[str, Any, Any], ...]") -> str:
    """``"C, O, kernel_size=(kh, kw), stride=(sh, sw)"``, then each ``(name, value, default)`` of
    ``options`` whose value is not its default, then groups and bias when not the defaults."""
    s = f"{layer.in_channels}, {layer.out_channels}, kernel_size={layer.kernel_size}, stride={layer.stride}"
    for name, value, default in options:
        if value != default:
            s += f", {name}={value!r}"
    if layer.groups != 1:
        s += f", groups={layer.groups}"
    return s + ("" if layer.bias is not None else ", bias=False")


def check_input_channels(layer: Any, x_shape: tuple[int, ...]) -> None:
    """Raise ValueError naming ``layer`` when an (N, C, H, W) input has C != ``layer.in_channels``."""
    if x_shape[1] != layer.in_channels:
        raise ValueError(f"{layer._name()}: input has {x_shape[1]} channels, expected {layer.in_channels} "
                         f"(input shape {tuple(x_shape)})")
