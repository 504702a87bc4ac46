"""Layer normalisation (Ba, Kiros & Hinton, 2016), as ``torch.nn.LayerNorm``.

Each sample is normalised over its last ``len(normalized_shape)`` axes (D values):

    mu = mean(x),  var = mean((x - mu)^2),  xhat = (x - mu) / sqrt(var + eps)
    y = w * xhat + b                                   (w, b of shape normalized_shape)

Backward (g = w * dY, means over the normalised axes of one sample):

    dX = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)
    dw = sum over the leading axes of dY * xhat,  db = sum of dY

No batch statistics, so it behaves the same in training and evaluation and with a batch of one.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..parameter import Parameter
from .base import Backprop, Layer

__all__ = ["LayerNorm"]


class LayerNorm(Layer):
    """Normalise over the trailing ``normalized_shape`` axes.

    Args:
        normalized_shape: an int or a tuple: the trailing input shape to normalise over.
        eps: added to the variance.

    Shapes: x (..., *normalized_shape) -> y of the same shape; ``weight``, ``bias``: normalized_shape.
    """

    def __init__(self, normalized_shape: "int | Sequence[int]", eps: float = 1e-5, *,
                 backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape):
            raise ValueError(f"LayerNorm: `normalized_shape` must be a positive int or a tuple of them, "
                             f"got {normalized_shape!r}")
        if not eps > 0:
            raise ValueError(f"LayerNorm: `eps` must be > 0, got {eps!r}")
        self.normalized_shape, self.eps = shape, float(eps)
        xp, dev = self.backend.xp, self.backend.device
        self.weight = Parameter(xp.ones(shape, dtype=self.dtype, device=dev))
        self.bias = Parameter(xp.zeros(shape, dtype=self.dtype, device=dev))

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        self._check_input(x)
        k = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - k:]) != self.normalized_shape or x.ndim < k:
            raise ValueError(f"{self._name()}: expected input of shape (..., "
                             f"{', '.join(map(str, self.normalized_shape))}), got {tuple(x.shape)}")
        xp = self.backend.xp
        norm_axes = tuple(range(x.ndim - k, x.ndim))
        lead_axes = tuple(range(x.ndim - k))
        W, b = self.weight, self.bias
        mu = xp.mean(x, axis=norm_axes, keepdims=True)
        xc = x - mu
        var = xp.mean(xc * xc, axis=norm_axes, keepdims=True)
        invstd = 1.0 / xp.sqrt(var + self.eps)  # (..., 1, ..., 1)
        xhat = xc * invstd
        y = xhat * W.data + b.data

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            if W.requires_grad:
                W.accumulate(xp.sum(dY * xhat, axis=lead_axes) if lead_axes else dY * xhat)
            if b.requires_grad:
                b.accumulate(xp.sum(dY, axis=lead_axes) if lead_axes else dY + 0.0)
            if not need_dx:
                return None
            g = dY * W.data
            return (g - xp.mean(g, axis=norm_axes, keepdims=True)
                    - xhat * xp.mean(g * xhat, axis=norm_axes, keepdims=True)) * invstd

        return y, backprop
