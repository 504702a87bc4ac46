"""A declarative layer check: one :class:`LayerCase` per layer configuration.

``check_layer(case, backend)`` runs, on one backend:

1. a float64 numerical gradient check (inputs and parameters);
2. forward/backward equality with the PyTorch module ``case.torch`` builds,
   after loading our ``state_dict`` into it (so key names and layouts are checked too);
3. equivalence with the NumPy backend in float32 from the same seed;
4. dtype and device preserved (output, dX, every grad), the input not mutated,
   and no float64 temporaries in float32 code (:func:`~anyxp_nn.testing.float64_audit`);
5. non-contiguous inputs: a strided slice ``big[..., ::2]`` and a transposed view
   (``xp.permute_dims``) as x and dY give the same results as contiguous copies,
   and are not written to;
6. the expected errors: wrong dtype, integer input, an array from another
   backend, and the case's own bad inputs (a parameter-free layer that follows
   its input must instead compute on the other backend and in float64).

Integer-input layers (an embedding lookup) set ``input_dtype="int64"``: the input is
passed as integers, dX is not checked, and the float-only error checks are skipped.
When a backend disagrees with the NumPy reference, the failure runs the case on the
other backends too and says which side is the odd one out.

From your own test file::

    from anyxp_nn.testing import LayerCase, layer_test
    CASES = [LayerCase("MyLayer", lambda **kw: MyLayer(3, **kw), (2, 3))]
    test_my_layers = layer_test(CASES)     # one test per backend, case and check:
                                           # test_my_layers[backend=numpy-case=MyLayer-check=torch]
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..backend import Backend, get_backend
from ..layers.base import Layer
from ..random import manual_seed
from .assert_close import assert_close
from .gradcheck import gradcheck
from .layer_run import dtype_device_problems, run_layer
from .tolerances import TOLERANCES, tolerance

__all__ = ["LayerCase", "check_layer", "layer_test", "CHECKS"]

CHECKS = ("gradcheck", "torch", "numpy_equivalence", "dtype_device", "non_contiguous", "errors")


@dataclass
class LayerCase:
    """One row of the layer table.

    Attributes:
        name: test id.
        build: ``build(backend=, dtype=) -> Layer`` (weights drawn after ``manual_seed(seed)``).
        input_shape: shape of the test input (keep it small: gradcheck is O(size)).
        torch: optional ``() -> torch.nn.Module`` equivalent (float64 is applied by the check).
        make_input: optional ``(numpy Generator, shape) -> ndarray`` (float64, or ``input_dtype``).
        train: run forward in training mode.
        bad_inputs: ``[(shape, ExceptionType, match_regex)]`` that must raise.
        gradcheck_tol: ``(rtol, atol)`` for the float64 gradient check.
        skip: names of checks from :data:`CHECKS` to skip, with the reason in a comment.
        input_dtype: None for a floating input (float64 in gradcheck and against torch,
            float32 elsewhere), or an integer dtype name such as ``"int64"`` for layers that
            take indices; default integer inputs are drawn from [0, 10).
    """
    name: str
    build: Callable[..., Layer]
    input_shape: tuple[int, ...]
    torch: Callable[[], Any] | None = None
    make_input: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray] | None = None
    train: bool = True
    bad_inputs: list[tuple[tuple[int, ...], type, str]] = field(default_factory=list)
    gradcheck_tol: tuple[float, float] = TOLERANCES["gradcheck"]["float64"]
    skip: tuple[str, ...] = ()
    seed: int = 0
    input_dtype: str | None = None

    def __post_init__(self) -> None:
        unknown = [c for c in self.skip if c not in CHECKS]
        if unknown:
            raise ValueError(f"LayerCase {self.name!r}: unknown checks in `skip` {unknown}; known: {list(CHECKS)}")
        if self.input_dtype is not None and np.dtype(self.input_dtype).kind not in "iu":
            raise ValueError(f"LayerCase {self.name!r}: `input_dtype` must be None (floating) or an integer "
                             f"dtype name such as 'int64', got {self.input_dtype!r}")

    @property
    def integer_input(self) -> bool:
        return self.input_dtype is not None

    def input(self, seed: int = 1) -> np.ndarray:
        """The host test input: float64, or ``input_dtype`` integers."""
        rng = np.random.default_rng(seed)
        dtype = np.dtype(self.input_dtype) if self.integer_input else np.float64
        if self.make_input is not None:
            return np.asarray(self.make_input(rng, self.input_shape), dtype=dtype)
        if self.integer_input:
            return rng.integers(0, 10, self.input_shape).astype(dtype)
        return rng.standard_normal(self.input_shape)

    def cast(self, b: Backend, host: np.ndarray, dtype: str) -> Any:
        """``host`` on ``b``: as floats of ``dtype``, or unchanged integers for an integer-input case."""
        return b.asarray(host) if self.integer_input else b.asarray(host, dtype=dtype)

    def skipped(self, check: str) -> "str | None":
        """Why ``check`` does not run for this case (None: it runs)."""
        if check in self.skip:
            return f"{self.name}: {check!r} is in the case's `skip`"
        if check == "torch" and self.torch is None:
            return f"{self.name}: no `torch` twin given"
        if check == "torch" and importlib.util.find_spec("torch") is None:
            return f"{self.name}: torch is not installed"
        return None

    def make(self, backend: "str | Backend", dtype: str) -> Layer:
        manual_seed(self.seed)
        return self.build(backend=backend, dtype=dtype)


def check_layer(case: LayerCase, backend: "str | Backend", checks: tuple[str, ...] = CHECKS) -> None:
    """Run the checks of :data:`CHECKS` that apply to ``case`` (see :meth:`LayerCase.skipped`) on ``backend``."""
    b = get_backend(backend)
    todo = [c for c in checks if case.skipped(c) is None]
    x64 = case.input()
    rng = np.random.default_rng(7)

    if "gradcheck" in todo:
        layer = case.make(b, "float64")
        rtol, atol = case.gradcheck_tol
        gradcheck(layer, case.cast(b, x64, "float64"), rtol=rtol, atol=atol, train=case.train)

    if "torch" in todo:
        _compare_torch(case, b, x64, rng)

    if "numpy_equivalence" in todo or "dtype_device" in todo:
        layer = case.make(b, "float32")
        x = case.cast(b, x64, "float32")
        before = b.to_numpy(x)
        y, _ = layer.forward(x, train=case.train)
        dy_host = rng.standard_normal(tuple(y.shape))
        run = run_layer(layer, b, x, dy_host=dy_host, train=case.train, audit="dtype_device" in todo)
        y, dx, grads = run.y, run.dx, run.grads
        if "dtype_device" in todo:
            problems = dtype_device_problems(run, b, layer)
            if problems:
                raise AssertionError(f"{case.name}: " + "; ".join(d for _, d in problems) + f" (on {b.label})")
            np.testing.assert_array_equal(b.to_numpy(x), before, err_msg=f"{case.name}: forward/backward mutated the input")
        if "numpy_equivalence" in todo and b.name != "numpy":
            ref = _reference_run(case, "numpy", x64, dy_host)
            try:
                _assert_same(case, (b.to_numpy(y), None if dx is None else b.to_numpy(dx),
                                    {n: b.to_numpy(g) for n, g in grads.items()}), ref, "numpy")
            except AssertionError as e:
                raise AssertionError(f"{e}\n{_odd_one_out(case, b, x64, dy_host, y, dx, grads, ref)}") from None

    if "non_contiguous" in todo:
        _check_non_contiguous(case, b, x64, rng)

    if "errors" in todo:
        _check_errors(case, b, x64)


def _reference_run(case: LayerCase, label: str, x64: np.ndarray, dy_host: np.ndarray) -> tuple:
    """(y, dx, grads) as host arrays of the float32 case run on backend ``label``."""
    r = get_backend(label)
    return run_layer(case.make(r, "float32"), r, case.cast(r, x64, "float32"), dy_host=dy_host,
                     train=case.train).host(r)


def _assert_same(case: LayerCase, got: tuple, ref: tuple, ref_label: str) -> None:
    (y, dx, grads), (ry, rdx, rgrads) = got, ref
    (rtol, atol), (grtol, gatol) = tolerance("layer", "float32"), tolerance("layer_grad", "float32")
    assert_close(y, ry, rtol=rtol, atol=atol, msg=f"{case.name} forward vs {ref_label}")
    if rdx is not None:
        assert_close(dx, rdx, rtol=rtol, atol=atol, msg=f"{case.name} dx vs {ref_label}")
    for n in rgrads:
        assert_close(grads[n], rgrads[n], rtol=grtol, atol=gatol, msg=f"{case.name} grad {n} vs {ref_label}")


def _odd_one_out(case: LayerCase, b: Backend, x64: np.ndarray, dy_host: np.ndarray, y: Any, dx: Any,
                 grads: dict, ref: tuple) -> str:
    """Which side of a disagreement with the NumPy reference is wrong, judged by the other backends."""
    got = (b.to_numpy(y), None if dx is None else b.to_numpy(dx), {n: b.to_numpy(g) for n, g in grads.items()})
    with_numpy, with_this = [], []
    for label in ("array_api_strict", "torch"):
        if label == b.name:
            continue
        try:
            third = _reference_run(case, label, x64, dy_host)
        except Exception:  # not installed here, or the layer fails there too: no vote
            continue
        for side, agree in ((ref, with_numpy), (got, with_this)):
            try:
                _assert_same(case, third, side, "")
                agree.append(label)
            except AssertionError:
                pass
    if with_this and not with_numpy:
        return (f"The NumPy reference is the odd one out: {', '.join(with_this)} agree(s) with {b.label}, "
                f"not with numpy; look for the bug on the NumPy path, not in this {b.label} row.")
    if with_numpy and not with_this:
        return f"{b.label} is the odd one out: {', '.join(with_numpy)} agree(s) with the NumPy reference."
    if not with_numpy and not with_this:
        return "No other backend agrees with either side (or none could run), so the odd one out is unknown."
    return (f"Inconclusive: {', '.join(with_numpy)} agree(s) with numpy, "
            f"{', '.join(with_this)} with {b.label}.")


def layer_test(cases: "list[LayerCase]", checks: tuple[str, ...] = CHECKS) -> Callable[..., None]:
    """A pytest test function running every check of every case on every backend.

    Assign it to a ``test_*`` name in your test module: ``test_my_layers = layer_test(CASES)``.
    The ``anyxp_backend`` fixture comes from the anyxp_nn pytest plugin (installed with the
    package); test ids read ``test_my_layers[backend=numpy-case=MyLayer-check=torch]``, and
    a check that does not apply to a case (``skip``, no torch twin) is reported as skipped.
    """
    import pytest

    @pytest.mark.parametrize("check", checks, ids=[f"check={c}" for c in checks])
    @pytest.mark.parametrize("case", cases, ids=[f"case={c.name}" for c in cases])
    def test_layer_case(case: LayerCase, check: str, anyxp_backend: Backend) -> None:
        reason = case.skipped(check)
        if reason is not None:
            pytest.skip(reason)
        check_layer(case, anyxp_backend, checks=(check,))

    return test_layer_case


def _views(b: Backend, host: np.ndarray) -> list[tuple[str, Any, Any]]:
    """(label, non-contiguous view with ``host``'s values, the array it is a view of)."""
    xp, out = b.xp, []
    if host.ndim >= 1:
        big = np.zeros(host.shape[:-1] + (2 * host.shape[-1],), dtype=host.dtype)
        big[..., ::2] = host
        base = b.asarray(big)
        out.append(("strided x[..., ::2]", base[..., ::2], base))
    if host.ndim >= 2:
        axes = tuple(range(host.ndim))[::-1]          # reversal is its own inverse
        base = b.asarray(np.ascontiguousarray(np.transpose(host, axes)))
        out.append(("transposed xp.permute_dims", xp.permute_dims(base, axes), base))
    return out


def _check_non_contiguous(case: LayerCase, b: Backend, x64: np.ndarray, rng: np.random.Generator) -> None:
    """Strided and transposed views as x and dY give what contiguous copies give, untouched."""
    layer = case.make(b, "float32")
    x_host = x64 if case.integer_input else x64.astype(np.float32)
    y, _ = layer.forward(b.asarray(x_host), train=case.train)
    dy_host = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    ry, rdx, rgrads = run_layer(layer, b, b.asarray(x_host), dy_host=dy_host, train=case.train).host(b)
    x_views, dy_views = _views(b, x_host), _views(b, dy_host)
    (rtol, atol), (grtol, gatol) = tolerance("view", "float32"), tolerance("view_grad", "float32")
    for (what, xv, xbase), (_, dyv, _) in zip(x_views, dy_views):
        before = b.to_numpy(xbase)
        y, dx, grads = run_layer(layer, b, xv, dyv, train=case.train).host(b)
        msg = f"{case.name} with a non-contiguous ({what}) input on {b.label}"
        assert_close(y, ry, rtol=rtol, atol=atol, msg=f"{msg}: output")
        if rdx is not None:
            assert_close(dx, rdx, rtol=rtol, atol=atol, msg=f"{msg}: dx")
        for n, g in rgrads.items():
            if g is not None:
                assert_close(grads[n], g, rtol=grtol, atol=gatol, msg=f"{msg}: grad {n}")
        np.testing.assert_array_equal(b.to_numpy(xbase), before, err_msg=f"{msg}: the input was mutated")


def _compare_torch(case: LayerCase, b: Backend, x64: np.ndarray, rng: np.random.Generator) -> None:
    import torch  # LayerCase.skipped("torch") said it is installed

    layer = case.make(b, "float64")
    tmod = case.torch().double()
    tmod.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()}, strict=True)
    tmod.train(case.train)
    tx = torch.from_numpy(x64.copy())
    if not case.integer_input:
        tx.requires_grad_(True)
    ty = tmod(tx)
    dY = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(dY))
    y, dx, grads = run_layer(layer, b, case.cast(b, x64, "float64"), dy_host=dY, train=case.train).host(b)
    rtol, atol = tolerance("torch", "float64")
    assert_close(y, ty.detach().numpy(), rtol=rtol, atol=atol, msg=f"{case.name} forward vs torch")
    if not case.integer_input:
        assert_close(dx, tx.grad.numpy(), rtol=rtol, atol=atol, msg=f"{case.name} dx vs torch")
    for n, tp in tmod.named_parameters():
        assert_close(grads[n], tp.grad.numpy(), rtol=rtol, atol=atol, msg=f"{case.name} grad {n} vs torch")
    for n, tb in tmod.named_buffers():
        if n in layer.state_dict():
            assert_close(layer.state_dict()[n], tb.detach().numpy(), rtol=rtol, atol=atol,
                         msg=f"{case.name} buffer {n} vs torch", check_dtype=False)


def _check_errors(case: LayerCase, b: Backend, x64: np.ndarray) -> None:
    """Wrong dtype, integer input and another backend's array raise; a parameter-free layer
    that follows its input computes on the other backend and in float64 instead.  For an
    integer-input case only the other backend and the case's own bad inputs are checked."""
    import pytest
    layer = case.make(b, "float32")
    follows = layer.follows_input and not any(True for _ in layer._state_items())
    numpy_b = get_backend("numpy")
    other = get_backend("array_api_strict") if b.xp is numpy_b.xp else numpy_b
    if case.integer_input:
        with pytest.raises(ValueError, match="backend"):
            layer.forward(other.asarray(x64), train=case.train)
        for shape, exc, match in case.bad_inputs:
            with pytest.raises(exc, match=match):
                layer.forward(b.asarray(np.ones(shape, dtype=x64.dtype)), train=case.train)
        return
    if follows:
        for where, dtype in ((b, "float64"), (other, "float32")):
            x = where.asarray(x64, dtype=dtype)
            y, backprop = layer.forward(x, train=case.train)
            dx = backprop(where.asarray(np.ones(tuple(y.shape)), dtype=dtype))
            for what, a in (("output", y), ("dx", dx)):
                assert where.owns(a) and a.dtype == where.dtype(dtype), (
                    f"{case.name} built on {b.label} float32: {what} of a {where.label} {dtype} input is "
                    f"{a.dtype} on {type(a).__module__}, expected to follow the input")
    else:
        with pytest.raises(TypeError, match="float64"):
            layer.forward(b.asarray(x64, dtype="float64"), train=case.train)
        with pytest.raises(ValueError, match="backend"):
            layer.forward(other.asarray(x64, dtype="float32"), train=case.train)
    with pytest.raises(TypeError, match="integer"):
        layer.forward(b.asarray(np.ones(case.input_shape, dtype=np.int64)), train=case.train)
    for shape, exc, match in case.bad_inputs:
        with pytest.raises(exc, match=match):
            layer.forward(b.asarray(np.ones(shape), dtype="float32"), train=case.train)
