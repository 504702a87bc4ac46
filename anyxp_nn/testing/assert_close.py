"""assert_close: backend, shape, dtype and device first, then values."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import Backend, backend_of, get_backend, to_numpy
from .tolerances import default_tolerance

__all__ = ["assert_close"]


def _is_host(a: Any) -> bool:
    return isinstance(a, (np.ndarray, np.generic, int, float, bool, list, tuple))


def assert_close(actual: Any, expected: Any, *, rtol: float | None = None, atol: float | None = None,
                 backend: "str | Backend | None" = None, check_dtype: bool = True, msg: str = "") -> None:
    """Assert two arrays agree: same backend and device, shape, dtype, then values.

    ``expected`` may be host data (NumPy, lists, scalars): then only shape, dtype
    (for NumPy arrays) and values are compared, unless ``backend=`` names where
    ``actual`` must live.  Tolerances default by dtype (float32: rtol 1.3e-6,
    atol 1e-5; float64: 1e-7, 1e-7).
    """
    prefix = f"{msg}: " if msg else ""
    if backend is not None:
        want = get_backend(backend)
        if not want.owns(actual):
            raise AssertionError(f"{prefix}actual is on {_label(actual)}, expected {want.label!r}")
    if not _is_host(expected):
        if _label(actual) != _label(expected):
            raise AssertionError(f"{prefix}backend/device differ: actual on {_label(actual)}, "
                                 f"expected on {_label(expected)}")
    a, e = to_numpy(actual), np.asarray(to_numpy(expected) if not _is_host(expected) else expected)
    if a.shape != e.shape:
        raise AssertionError(f"{prefix}shape differs: actual {a.shape}, expected {e.shape}")
    if check_dtype and (isinstance(expected, np.ndarray) or not _is_host(expected)) and a.dtype != e.dtype:
        raise AssertionError(f"{prefix}dtype differs: actual {a.dtype}, expected {e.dtype}")
    r, t = default_tolerance(a.dtype)
    rtol = r if rtol is None else rtol
    atol = t if atol is None else atol
    if a.dtype.kind in "fc":
        ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    else:
        ok = a == e
    if not np.all(ok):
        bad = np.argwhere(~ok)
        idx = tuple(int(i) for i in bad[0]) if a.ndim else ()
        diff = np.abs(a.astype(np.float64) - e.astype(np.float64))
        raise AssertionError(
            f"{prefix}{len(bad)} of {a.size} elements differ (rtol={rtol}, atol={atol}); first at {idx}: "
            f"actual {a[idx]!r} vs expected {e[idx]!r}; max abs diff {np.nanmax(diff):.3g}")


def _label(a: Any) -> str:
    try:
        return backend_of(a).label
    except (TypeError, ValueError):
        return type(a).__name__
