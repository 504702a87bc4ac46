"""Row sums as one dot product per row: ``row_sums(a) = a @ 1``.

For the places that sum a large activation per channel: BatchNorm's mean and bias gradient and
a convolution's bias gradient, whose channel rows are long (50,176 values per channel for a
64x32x28x28 feature map).  NumPy's ``sum`` along such rows runs its pairwise summation at
about a quarter of the speed of the BLAS matrix-vector product with a vector of ones (0.22 vs
0.05 ms for that feature map on one core; benchmarks/README.md).  The product accumulates in
the array's dtype over a few SIMD lanes, as BatchNorm's per-channel variance (a ``vecdot``)
already did; the float32 results stay within the tolerances of the PyTorch comparisons.
"""
from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace, device as _device

__all__ = ["row_sums"]


def row_sums(a: Any) -> Any:
    """(R, m) -> (R,): the sum of each row (zeros for m = 0)."""
    xp = array_namespace(a)
    return a @ xp.ones((a.shape[-1],), dtype=a.dtype, device=_device(a))
