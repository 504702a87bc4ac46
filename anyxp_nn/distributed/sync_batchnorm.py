"""SyncBatchNorm: batch normalisation whose batch statistics cover every rank's batch.

P ranks with batch b each normalise with the mean and variance of all P*b samples,
so a data-parallel run equals the one-process run with batch P*b (as
``torch.nn.SyncBatchNorm``).  Per channel, with rank r holding n_r values of
mean mu_r and squared deviation sum M2_r (Chan, Golub & LeVeque's parallel update):

    N = sum_r n_r,   mu = sum_r n_r mu_r / N,
    var = (sum_r M2_r + sum_r n_r (mu_r - mu)^2) / N       (one all-gather of (2C + 1) values)

Backward, with g = w * dY and xhat the normalised input, as plain BatchNorm but
with the means over all N values (one all-reduce of the 2C sums):

    dX = w invstd (dY - sum_all(dY) / N - xhat sum_all(dY xhat) / N)
    dw = sum_local(dY xhat),  db = sum_local(dY)

The parameter gradients stay local sums: DataParallel averages them over ranks
with every other gradient.  In evaluation the running statistics are used, with no
communication; they are updated from the global statistics, so they agree on every rank.
"""
from __future__ import annotations

import math
from typing import Any

from ..layers.base import Backprop, Layer
from ..layers.batchnorm import _BatchNorm
from ._host import to_host
from .comm import Communicator, init

__all__ = ["SyncBatchNorm"]


class SyncBatchNorm(_BatchNorm):
    """Batch norm over ``(N, C)``, ``(N, C, L)`` or ``(N, C, H, W)`` with statistics over every rank.

    Args:
        num_features: C.
        eps, momentum: as :class:`~anyxp_nn.layers.BatchNorm2D`.
        comm: the ranks to synchronise over (default: ``nn.distributed.init()``).

    Parameters and buffers are BatchNorm's (``weight``, ``bias``, ``running_mean``,
    ``running_var``, ``num_batches_tracked``), so state dicts load both ways.
    """
    _ndims = (2, 3, 4)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *,
                 comm: "Communicator | None" = None, backend: Any = None, dtype: Any = None):
        super().__init__(num_features, eps, momentum, backend=backend, dtype=dtype)
        object.__setattr__(self, "comm", init() if comm is None else comm)

    @classmethod
    def convert_sync_batchnorm(cls, model: Layer, comm: "Communicator | None" = None) -> Layer:
        """Replace every BatchNorm1D/2D in ``model`` by a SyncBatchNorm sharing its parameters and buffers.

        Returns the model (a new layer when ``model`` itself is a BatchNorm), as torch's function.
        """
        if isinstance(model, _BatchNorm) and not isinstance(model, cls):
            return cls._from(model, comm)
        for _, layer in list(model.named_layers()):
            for name, child in list(layer._children.items()):
                if isinstance(child, _BatchNorm) and not isinstance(child, cls):
                    setattr(layer, name, cls._from(child, comm))
        return model

    @classmethod
    def _from(cls, bn: _BatchNorm, comm: "Communicator | None") -> "SyncBatchNorm":
        new = cls(bn.num_features, bn.eps, bn.momentum, comm=comm, backend=bn.backend, dtype=bn.dtype)
        new.weight, new.bias = bn.weight, bn.bias  # the same Parameter objects: optimizers keep working
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            new.register_buffer(name, getattr(bn, name))
        return new

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, ranks={self.comm.size}"

    def forward(self, x: Any, train: "bool | None" = None) -> tuple[Any, Backprop]:
        train = self._mode(train)
        if not train:
            return super().forward(x, train)
        self._check(x, train)
        b, xp, C = self.backend, self.backend.xp, self.num_features
        axes = (0,) + tuple(range(2, x.ndim))       # every axis but the channel one
        shape = (1, C) + (1,) * (x.ndim - 2)        # broadcasts a (C,) vector
        n = math.prod(x.shape) // C                 # values per channel on this rank
        mu_r = xp.mean(x, axis=axes)                # (C,)
        xc_r = x - xp.reshape(mu_r, shape)
        m2_r = xp.sum(xc_r * xc_r, axis=axes)       # (C,)
        del xc_r
        count = xp.full((1,), float(n), dtype=x.dtype, device=b.device)
        host = self.comm.allgather(to_host(xp.concat([mu_r, m2_r, count]), b)[0])   # (P, 2C + 1)
        m = int(round(float(host[:, 2 * C].sum())))  # N, all ranks' values per channel
        stats = b.asarray(host, dtype=x.dtype)
        mus, m2s, ns = stats[:, :C], stats[:, C:2 * C], stats[:, 2 * C:]
        total = float(m)
        mu = xp.sum(ns * mus, axis=0) / total        # (C,)
        dev = mus - mu
        var = (xp.sum(m2s, axis=0) + xp.sum(ns * dev * dev, axis=0)) / total   # (C,) biased
        mom = self.momentum
        self.register_buffer("running_mean", (1.0 - mom) * self.running_mean + mom * mu)
        self.register_buffer("running_var", (1.0 - mom) * self.running_var + (mom * m / max(m - 1, 1)) * var)
        self.register_buffer("num_batches_tracked", self.num_batches_tracked + 1)
        xc = x - xp.reshape(mu, shape)
        invstd = xp.reshape(1.0 / xp.sqrt(var + self.eps), shape)   # (1, C, 1, ...)
        W, B = self.weight, self.bias
        scale = xp.reshape(W.data, shape) * invstd
        y = xc * scale
        y += xp.reshape(B.data, shape)

        def backprop(dY: Any, need_dx: bool = True) -> Any:
            dw = xp.sum(dY * xc, axis=axes) * xp.reshape(invstd, (-1,))   # (C,) local sum(dY xhat)
            db = xp.sum(dY, axis=axes)                                     # (C,) local sum(dY)
            if W.requires_grad:
                W.accumulate(dw)
            if B.requires_grad:
                B.accumulate(db)
            if not need_dx:
                return None
            sums = self._allreduce(xp.concat([dw, db]))                    # (2C,) over every rank
            dw_all, db_all = xp.reshape(sums[:C], shape), xp.reshape(sums[C:], shape)
            dX = dY * scale
            dX -= xc * (scale * invstd * dw_all * (1.0 / m))
            dX -= scale * db_all * (1.0 / m)
            return dX

        return y, backprop

    # -- communication through host buffers (see distributed._host) ---------------------
    def _allreduce(self, v: Any) -> Any:
        host, staged = to_host(v, self.backend)
        host = self.comm.allreduce(host)
        return self.backend.asarray(host, dtype=v.dtype) if staged else v
