"""The pytest plugin and the declarative layer check, as a user sees them."""
import os
import subprocess
import sys

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.testing import CHECKS, LayerCase, check_layer

USER_TEST = '''
import pytest
import anyxp_nn as nn
from anyxp_nn.testing import LayerCase, layer_test


class Scale(nn.Layer):
    """y = a * x with a learnable scalar-per-feature ``a``: a user's own layer."""

    def __init__(self, n, *, backend=None, dtype=None):
        super().__init__(backend=backend, dtype=dtype)
        self.a = nn.Parameter(nn.init.normal((n,), 1.0, backend=self.backend, dtype=self.dtype))

    def forward(self, x, train=None):
        self._check_input(x)
        a = self.a

        def backprop(dy, need_dx=True):
            a.accumulate(self.backend.xp.sum(dy * x, axis=0))
            return dy * a.data if need_dx else None
        return x * a.data, backprop


test_scale = layer_test([LayerCase("Scale", lambda **kw: Scale(3, **kw), (4, 3))],
                        checks=("gradcheck", "numpy_equivalence", "dtype_device", "non_contiguous"))


def test_fixture(anyxp_backend, anyxp_xp):
    assert anyxp_backend.xp is anyxp_xp
    x = anyxp_xp.ones(3, dtype=anyxp_xp.float32, device=anyxp_backend.device)
    assert anyxp_backend.owns(x)


@pytest.mark.anyxp_skip("array_api_strict", reason="planted skip")
def test_marker(anyxp_backend):
    assert anyxp_backend.name != "array_api_strict"
'''

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pytest(project, *args):
    """pytest in a subprocess on a throwaway project, with this checkout's anyxp_nn (and its plugin)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTEST_ADDOPTS", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "-rs", *args], cwd=project, capture_output=True, text=True, timeout=120, env=env)
    return proc.returncode, proc.stdout + proc.stderr


def _run_user_suite(tmp_path, *args):
    (tmp_path / "test_user.py").write_text(USER_TEST)
    return _pytest(tmp_path, *args)


def test_plugin_is_auto_loaded_and_backends_option_works(tmp_path):
    """No conftest: the fixtures come from the ``pytest11`` entry point of the installed package."""
    rc, out = _run_user_suite(tmp_path, "--anyxp-backends=numpy,array_api_strict:device1")
    assert rc == 0, out
    assert "test_fixture[backend=numpy] PASSED" in out
    assert "test_fixture[backend=array_api_strict:device1] PASSED" in out
    assert "test_scale[backend=array_api_strict:device1-case=Scale-check=non_contiguous] PASSED" in out
    assert "torch" not in out.split("collected")[1].split("short test summary")[0].replace("check=torch", "")
    # 2 backends x (1 fixture test + 4 layer checks + 1 marker test), the marker skips the strict device
    assert out.count("PASSED") == 11 and "test_marker[backend=array_api_strict:device1] SKIPPED" in out


def test_marker_skips_one_backend(tmp_path):
    rc, out = _run_user_suite(tmp_path, "--anyxp-backends=numpy,array_api_strict", "-k", "marker")
    assert rc == 0, out
    assert "test_marker[backend=numpy] PASSED" in out and "test_marker[backend=array_api_strict] SKIPPED" in out
    assert "planted skip" in out


def test_unusable_backend_skips_with_reason(tmp_path):
    rc, out = _run_user_suite(tmp_path, "--anyxp-backends=numpy,cupy:7", "-k", "fixture")
    assert rc == 0, out
    assert "test_fixture[backend=cupy:7] SKIPPED" in out and "cupy" in out.split("short test summary")[1]


# -- the plugin leaves other projects alone ---------------------------------------------------

OWN_FIXTURE = '''
import pytest


@pytest.fixture{params}
def backend(request):
    return getattr(request, "param", "sqlite")


def test_db(backend):
    assert backend in ("sqlite", "postgres")
'''


@pytest.mark.parametrize("params,passed,ids", [("", 1, ["test_db PASSED"]),
                                               ('(params=["sqlite", "postgres"])', 2,
                                                ["test_db[sqlite] PASSED", "test_db[postgres] PASSED"])],
                         ids=["plain", "parametrized"])
def test_another_projects_backend_fixture_is_untouched(tmp_path, params, passed, ids):
    """The issue's two failures: a plain `backend` fixture became 5 tests, a parametrized one
    failed collection with 'duplicate parametrization'.  Now: exactly the project's own tests."""
    (tmp_path / "test_db.py").write_text(OWN_FIXTURE.format(params=params))
    rc, out = _pytest(tmp_path)
    assert rc == 0, out
    assert f"{passed} passed" in out and "skipped" not in out, out
    for line in ids:
        assert line in out, out
    assert "numpy" not in out and "duplicate" not in out
    assert "anyxp_nn" in out  # the plugin was loaded, and stayed out of the way


def test_short_names_are_opt_in(tmp_path):
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["anyxp_nn.testing.short_names"]\n')
    (tmp_path / "test_short.py").write_text(
        "def test_short(backend, xp):\n    assert backend.xp is xp\n")
    rc, out = _pytest(tmp_path, "--anyxp-backends=numpy,array_api_strict")
    assert rc == 0, out
    assert "test_short[backend=numpy] PASSED" in out and "test_short[backend=array_api_strict] PASSED" in out
    (tmp_path / "conftest.py").unlink()
    rc, out = _pytest(tmp_path, "--anyxp-backends=numpy")
    assert rc != 0 and "fixture 'backend' not found" in out


# -- the layer check catches planted bugs ----------------------------------------------------

class MutatesInput(nn.Layer):
    def forward(self, x, train=None):
        self._check_input(x)
        x *= 2.0    # BUG: writes into the caller's array

        def backprop(dy, need_dx=True):
            return dy * 2.0 if need_dx else None
        return x, backprop


class Float64Square(nn.Layer):
    def forward(self, x, train=None):
        self._check_input(x)
        xp = self.backend.xp
        y = xp.astype(xp.square(xp.astype(x, xp.float64)), x.dtype)  # BUG: float64 temporary

        def backprop(dy, need_dx=True):
            return 2.0 * x * dy if need_dx else None
        return y, backprop


class ContiguityAssumed(nn.Layer):
    """Reads the input's memory through NumPy when it is a NumPy array: wrong for strided views."""

    def forward(self, x, train=None):
        self._check_input(x)
        y = x
        if isinstance(x, np.ndarray):       # BUG: ignores strides
            y = np.frombuffer(x.data if x.flags.c_contiguous else x.base.tobytes(),
                              dtype=x.dtype)[: x.size].reshape(x.shape).copy()

        def backprop(dy, need_dx=True):
            return dy if need_dx else None
        return y, backprop


def _case(cls, **kw):
    return LayerCase(cls.__name__, lambda **k: cls(**k), (3, 4), **kw)


def test_check_layer_catches_input_mutation():
    with pytest.raises(AssertionError, match="mutated the input"):
        check_layer(_case(MutatesInput), "array_api_strict", checks=("dtype_device",))


def test_check_layer_catches_float64_temporary(backend):
    with pytest.raises(AssertionError, match=r"Float64Square: float64 temporaries .*xp\.astype touched float64 "
                                             r"at .*test_plugin\.py:\d+ in forward"):
        check_layer(_case(Float64Square), backend, checks=("dtype_device",))


def test_check_layer_catches_non_contiguous_bug():
    check_layer(_case(ContiguityAssumed), "numpy", checks=("dtype_device",))   # contiguous input: fine
    with pytest.raises(AssertionError, match=r"non-contiguous \(strided x\[\.\.\., ::2\]\) input on numpy"):
        check_layer(_case(ContiguityAssumed), "numpy", checks=("non_contiguous",))


def test_checks_table():
    assert CHECKS == ("gradcheck", "torch", "numpy_equivalence", "dtype_device", "non_contiguous", "errors")


# -- integer inputs, test ids, and who is the odd one out ---------------------------------------

class Lookup(nn.Layer):
    """A user's embedding: (N, L) int64 ids -> (N, L, D) rows of ``weight`` (V, D)."""

    def __init__(self, vocab=10, dim=3, *, backend=None, dtype=None, bug_on=None):
        super().__init__(backend=backend, dtype=dtype)
        self.weight = nn.Parameter(nn.init.normal((vocab, dim), 1.0, backend=self.backend, dtype=self.dtype))
        self.vocab, self.dim, self.bug_on = vocab, dim, bug_on

    def forward(self, x, train=None):
        b = self.backend
        if not b.owns(x):
            raise ValueError(f"Lookup: input is on backend {nn.backend.backend_of(x).label!r}, expected {b.label!r}")
        if not b.xp.isdtype(x.dtype, "integral"):
            raise TypeError(f"Lookup: expected integer ids, got {x.dtype}")
        if x.ndim != 2:
            raise ValueError(f"Lookup: expected (N, L) ids, got shape {tuple(x.shape)}")
        xp, W = b.xp, self.weight
        n, length = x.shape
        flat = xp.reshape(x, (n * length,))
        classes = xp.arange(self.vocab, dtype=x.dtype, device=b.device)
        onehot = xp.astype(flat[:, None] == classes[None, :], self.dtype)  # (N*L, V)
        y = xp.reshape(onehot @ W.data, (n, length, self.dim))
        if self.bug_on is not None and type(x).__module__.startswith(self.bug_on):
            y = y * 1.01  # BUG on one backend's path only

        def backprop(dy, need_dx=True):
            W.accumulate(onehot.T @ xp.reshape(dy, (n * length, self.dim)))
            return None  # integer ids have no gradient
        return y, backprop


def _lookup_case(bug_on=None, **kw):
    torch_nn = pytest.importorskip("torch.nn")
    return LayerCase("Lookup", lambda **k: Lookup(bug_on=bug_on, **k), (2, 4), input_dtype="int64",
                     torch=lambda: torch_nn.Embedding(10, 3), bad_inputs=[((5,), ValueError, r"expected \(N, L\) ids")],
                     **kw)


@pytest.mark.parametrize("check", CHECKS)
def test_layer_case_with_integer_input(check, backend):
    case = _lookup_case()
    assert case.input().dtype == np.int64 and case.input().max() < 10
    check_layer(case, backend, checks=(check,))


def test_integer_case_still_catches_a_wrong_gradient(backend):
    class BadGrad(Lookup):
        def forward(self, x, train=None):
            y, backprop = super().forward(x, train)
            W = self.weight

            def bad(dy, need_dx=True):
                backprop(dy)
                W.grad = W.grad * 2.0  # BUG
                return None
            return y, bad
    torch_nn = pytest.importorskip("torch.nn")
    case = LayerCase("BadGrad", lambda **k: BadGrad(**k), (2, 4), input_dtype="int64",
                     torch=lambda: torch_nn.Embedding(10, 3))
    with pytest.raises(AssertionError, match="gradcheck failed for BadGrad"):
        check_layer(case, backend, checks=("gradcheck",))
    with pytest.raises(AssertionError, match="BadGrad grad weight vs torch"):
        check_layer(case, backend, checks=("torch",))


def test_layer_case_rejects_a_float_input_dtype():
    with pytest.raises(ValueError, match=r"LayerCase 'x': `input_dtype` must be None \(floating\) or an integer "
                                         r"dtype name such as 'int64', got 'float16'"):
        LayerCase("x", lambda **k: nn.ReLU(**k), (2,), input_dtype="float16")
    with pytest.raises(ValueError, match=r"LayerCase 'x': unknown checks in `skip` \['torhc'\]"):
        LayerCase("x", lambda **k: nn.ReLU(**k), (2,), skip=("torhc",))


def test_failure_names_the_numpy_reference_as_the_odd_one_out(backend):
    pytest.importorskip("torch")
    case = _lookup_case(bug_on="numpy")
    if backend.name == "numpy":  # the reference itself: nothing to compare with here
        check_layer(case, backend, checks=("numpy_equivalence",))
        return
    with pytest.raises(AssertionError, match=rf"The NumPy reference is the odd one out: .* agree\(s\) with "
                                             rf"{backend.label}, not with numpy"):
        check_layer(case, backend, checks=("numpy_equivalence",))


def test_failure_names_the_backend_as_the_odd_one_out(backend):
    pytest.importorskip("torch")
    if backend.name == "numpy":
        pytest.skip("the NumPy row compares with nothing")
    case = _lookup_case(bug_on=backend.name)
    with pytest.raises(AssertionError, match=rf"{backend.label} is the odd one out: .* agree\(s\) with the "
                                             rf"NumPy reference"):
        check_layer(case, backend, checks=("numpy_equivalence",))
