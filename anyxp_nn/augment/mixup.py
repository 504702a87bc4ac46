"""MixUp (Zhang et al., 2018): train on convex combinations of image pairs and their labels."""
from __future__ import annotations

from typing import Any

from ..losses import one_hot
from ..random import Generator, get_rng
from ._base import check_images

__all__ = ["MixUp"]


class MixUp:
    """``mixup(x, y, num_classes, rng=None) -> (x', soft_y)``.

    Each image n is paired with image perm(n) of the same batch (a random
    permutation) and mixed with its own lambda_n ~ Beta(alpha, alpha):

        x'_n = lambda_n x_n + (1 - lambda_n) x_perm(n)
        y'_n = lambda_n onehot(y_n) + (1 - lambda_n) onehot(y_perm(n))

    ``y'`` is an (N, num_classes) float array of x's dtype; pass it straight to
    :func:`anyxp_nn.losses.softmax_cross_entropy`, which takes soft targets.

    Args:
        alpha: Beta parameter > 0 (small alpha: lambda near 0 or 1, i.e. mild mixing).
    """

    def __init__(self, alpha: float = 0.2):
        if not alpha > 0:
            raise ValueError(f"MixUp: `alpha` must be > 0, got {alpha!r}")
        self.alpha = float(alpha)

    def __call__(self, x: Any, y: Any, num_classes: int, rng: "Generator | int | None" = None) -> tuple[Any, Any]:
        b = check_images(x, "MixUp")
        xp = b.xp
        n = x.shape[0]
        if y.ndim != 1 or y.shape[0] != n or not xp.isdtype(y.dtype, "integral"):
            raise ValueError(f"MixUp: `y` must be ({n},) integer class ids, got shape {tuple(y.shape)} "
                             f"and dtype {y.dtype}")
        g = get_rng(rng)
        lam = b.asarray(g.host.beta(self.alpha, self.alpha, size=n), dtype=x.dtype)  # (N,)
        perm = b.asarray(g.permutation(n), dtype="int64")
        lx = xp.reshape(lam, (n, 1, 1, 1))
        x_mixed = lx * x + (1.0 - lx) * xp.take(x, perm, axis=0)
        t = one_hot(y, num_classes, x.dtype)  # (N, C)
        ly = xp.reshape(lam, (n, 1))
        return x_mixed, ly * t + (1.0 - ly) * xp.take(t, perm, axis=0)

    def __repr__(self) -> str:
        return f"MixUp(alpha={self.alpha})"
