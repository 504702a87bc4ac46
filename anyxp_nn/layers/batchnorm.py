"""Batch normalisation (Ioffe & Szegedy, 2015) with PyTorch's semantics.

Training, per channel c over the m = N * (spatial size) values it sees:

    mu = mean(x),  var = mean((x - mu)^2)            (biased: used to normalise)
    xhat = (x - mu) / sqrt(var + eps),  y = w * xhat + b
    running_mean <- (1 - momentum) running_mean + momentum mu
    running_var  <- (1 - momentum) running_var  + momentum var * m / (m - 1)   (unbiased)

Evaluation uses the running statistics instead of the batch's.

Closed-form backward (g = w * dY; every mean is per channel):

    dX = (g - mean(g) - xhat * mean(g * xhat)) / sqrt(var + eps)
    dw = sum(dY * xhat),  db = sum(dY)

and since ``sum(g) = w * db`` and ``sum(g * xhat) = w * dw``, the two means come
for free from the parameter gradients: backward costs two reductions, not four.
"""
from __future__ import annotations

import math
from typing import Any

from .._checks import positive_int
from ..parameter import Parameter
from .base import Backprop, Layer

__all__ = ["BatchNorm1D", "BatchNorm2D"]


class _BatchNorm(Layer):
    _ndims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 backend: Any = None, dtype: Any = None):
        super().__init__(backend=backend, dtype=dtype)
        name = type(self).__name__
        positive_int(num_features, "num_features", name)
        if not eps > 0:
            raise ValueError(f"{name}: `eps` must be > 0, got {eps!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: `momentum` must be a float in [0, 1], got {momentum!r} "
                             "(PyTorch's momentum=None cumulative average is not supported)")
        self.num_features, self.eps, self.momentum = num_features, float(eps), float(momentum)
        xp, dev, dt = self.backend.xp, self.backend.device, self.dtype
        self.weight = Parameter(xp.ones((num_features,), dtype=dt, device=dev))
        self.bias = Parameter(xp.zeros((num_features,), dtype=dt, device=dev))
        self.register_buffer("running_mean", xp.zeros((num_features,), dtype=dt, device=dev))
        self.register_buffer("running_var", xp.ones((num_features,), dtype=dt, device=dev))
        self.register_buffer("num_batches_tracked", xp.asarray(0, dtype=xp.int64, device=dev))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def _check(self, x: Any, train: bool) -> None:
        self._check_input(x, ndim=self._ndims)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{self._name()}: expected {self.num_features} channels on axis 1 "
                             f"(`num_features`), got input of shape {tuple(x.shape)}")
        if train and math.prod(x.shape) // self.num_features <= 1:
            raise ValueError(f"{self._name()}: Expected more than 1 value per channel when training, "
                             f"got input of shape {tuple(x.shape)} (use a batch of 2 or more, or train=False)")

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        train = self._mode(train)
        self._check(x, train)
        xp = self.backend.xp
        axes = (0,) + tuple(range(2, x.ndim))  # every axis but the channel one
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)  # broadcasts a (C,) vector
        W, b = self.weight, self.bias
        w = xp.reshape(W.data, shape)
        m = math.prod(x.shape) // self.num_features  # values per channel
        perm = (1, 0) + tuple(range(2, x.ndim))

        def channel_dot(u: Any, v: Any) -> Any:
            """sum over every axis but the channel one of u * v, as (1, C, 1, ...): one dot product
            per channel row.  The rows are a view when the memory is channel-first (as a
            convolution's output is); otherwise the reshape copies, once for ``u is v``."""
            ru = xp.reshape(xp.permute_dims(u, perm), (self.num_features, m))  # (C, m)
            rv = ru if v is u else xp.reshape(xp.permute_dims(v, perm), (self.num_features, m))
            return xp.reshape(xp.vecdot(ru, rv), shape)

        if train:
            mu = xp.mean(x, axis=axes, keepdims=True)
            xc = x - mu
            var = channel_dot(xc, xc) * (1.0 / m)
            invstd = 1.0 / xp.sqrt(var + self.eps)  # (1, C, 1, ...)
            mom = self.momentum
            self.register_buffer("running_mean", (1.0 - mom) * self.running_mean + mom * xp.reshape(mu, (-1,)))
            self.register_buffer("running_var", (1.0 - mom) * self.running_var
                                 + (mom * m / (m - 1)) * xp.reshape(var, (-1,)))
            self.register_buffer("num_batches_tracked", self.num_batches_tracked + 1)
        else:
            xc = x - xp.reshape(self.running_mean, shape)
            invstd = xp.reshape(1.0 / xp.sqrt(self.running_var + self.eps), shape)
        # y = w xhat + b with xhat = xc * invstd folded into one per-channel scale:
        # full-size arrays are the cost here, so only xc and y are made (and kept)
        scale = w * invstd  # (1, C, 1, ...)
        y = xc * scale
        y += xp.reshape(b.data, shape)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            dw = channel_dot(dY, xc) * invstd  # (1, C, 1, ...) = sum(dY xhat)
            db = xp.sum(dY, axis=axes, keepdims=True)
            if W.requires_grad:
                W.accumulate(xp.reshape(dw, (-1,)))
            if b.requires_grad:
                b.accumulate(xp.reshape(db, (-1,)))
            if not need_dx:
                return None
            dX = dY * scale
            if train:
                # dX = w invstd (dY - db/m - xhat dw/m): mean(g) = w db / m, mean(g xhat) = w dw / m
                dX -= xc * (scale * invstd * dw * (1.0 / m))
                dX -= scale * db * (1.0 / m)
            return dX  # in evaluation the statistics are constants: dX = dY w invstd

        return y, backprop


class BatchNorm1D(_BatchNorm):
    """Batch norm over ``(N, C)`` or ``(N, C, L)`` inputs (statistics per channel C).

    Args:
        num_features: C.
        eps: added to the variance before the square root.
        momentum: weight of the current batch in the running statistics (PyTorch's convention).

    Parameters ``weight`` (C,) = 1, ``bias`` (C,) = 0; buffers ``running_mean`` (C,),
    ``running_var`` (C,), ``num_batches_tracked`` (int64 scalar), as ``torch.nn.BatchNorm1d``.
    """
    _ndims = (2, 3)


class BatchNorm2D(_BatchNorm):
    """Batch norm over ``(N, C, H, W)`` inputs (statistics per channel over N, H, W).

    Same arguments, parameters and buffers as :class:`BatchNorm1D` (``torch.nn.BatchNorm2d``).
    """
    _ndims = (4,)
