"""Catch float64 temporaries in float32 code by watching the array namespace.

A layer that upcasts to float64 and casts back gives float32 outputs whose
values differ from a pure float32 computation by about one ulp: too little to
tell from a legitimate difference in summation order.  So instead of the
values, :func:`float64_audit` watches the *calls*: for the duration of the
block, every public function of the backend's namespace module is wrapped, and
a call that takes or returns a float64 array (or is handed the float64 dtype,
as in ``xp.astype(x, xp.float64)``) is recorded with the calling line.

Limits: only arrays that pass through a namespace function are seen (an
operator such as ``x * numpy.float64(2)`` is seen only when its result reaches
one); the patch is process-wide while the block runs, so use it in tests, one
thread at a time.
"""
from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from .. import backend as _backend
from ..backend import Backend

__all__ = ["Float64Event", "float64_audit"]

_BACKEND_FILE = _backend.__file__

# introspection functions whose arguments name dtypes without making arrays
_SKIP = {"isdtype", "finfo", "iinfo", "result_type", "can_cast", "asarray_chkfinite",
         "__array_namespace_info__", "get_array_api_strict_flags", "set_array_api_strict_flags",
         "reset_array_api_strict_flags", "ArrayAPIStrictFlags", "Device"}


@dataclass
class Float64Event:
    """One namespace call that touched float64 while auditing float32 code."""
    function: str
    where: str      # "file:line in func" of the caller outside the namespace
    layer: str      # the value of ``context()`` at the time (e.g. the running layer), or ""

    def __str__(self) -> str:
        at = f" in layer {self.layer!r}" if self.layer else ""
        return f"xp.{self.function} touched float64{at} at {self.where}"


def _caller() -> str:
    f = sys._getframe(2)
    while f is not None and ("array_api_compat" in f.f_code.co_filename
                             or "array_api_strict" in f.f_code.co_filename
                             or f.f_code.co_filename.endswith("dtype_audit.py")):
        f = f.f_back
    if f is None:
        return "?"
    return f"{f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}"


@contextlib.contextmanager
def float64_audit(backend: Backend, context: Callable[[], str] = lambda: "") -> Iterator[list[Float64Event]]:
    """Record every call of ``backend.xp`` that touches float64 inside the block.

    Args:
        backend: whose namespace module to watch.
        context: called at each event to label it (e.g. the name of the running layer).

    Yields the list the :class:`Float64Event` records are appended to.
    """
    xp = backend.xp
    f64 = getattr(xp, "float64", None)
    events: list[Float64Event] = []
    if f64 is None:
        yield events
        return
    c128 = getattr(xp, "complex128", None)
    wide = [d for d in (f64, c128) if d is not None]

    def is_wide(a: Any) -> bool:
        dt = getattr(a, "dtype", None)
        if dt is not None:
            return any(_same(dt, d) for d in wide)
        # a dtype handed over as an argument (xp.astype(x, xp.float64), dtype=xp.float64)
        return any(a is d or ((type(a) is type(d) or isinstance(a, np.dtype)) and _same(a, d)) for d in wide)

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def audited(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            if sys._getframe(1).f_code.co_filename == _BACKEND_FILE:
                return out  # a transfer/cast in Backend.asarray, not arithmetic
            ins = list(args) + list(kwargs.values())
            ins += [a for v in ins if isinstance(v, (list, tuple)) for a in v]
            outs = out if isinstance(out, (list, tuple)) else (out,)
            if any(is_wide(a) for a in ins) or any(is_wide(o) for o in outs):
                events.append(Float64Event(name, _caller(), context()))
            return out
        return audited

    saved: dict[str, Any] = {}
    for name in dir(xp):
        if name.startswith("_") or name in _SKIP:
            continue
        obj = getattr(xp, name, None)
        if not callable(obj) or isinstance(obj, type) or _is_dtype(xp, obj):
            continue
        saved[name] = obj
    try:
        for name, obj in saved.items():
            setattr(xp, name, wrap(name, obj))
        yield events
    finally:
        for name, obj in saved.items():
            setattr(xp, name, obj)


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _is_dtype(xp: Any, obj: Any) -> bool:
    for name in ("float32", "float64", "int64", "bool"):
        if _same(obj, getattr(xp, name, None)):
            return True
    return False
