"""The pytest plugin and the declarative layer check, as a user sees them."""
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

    def forward(self, x, train=True):
        self._check_input(x)
        a = self.a

        def backprop(dy, need_dx=True):
            a.accumulate(self.backend.xp.sum(dy * x, axis=0))
            return dy * a.data if need_dx else None
        return x * a.data, backprop


test_scale = layer_test([LayerCase("Scale", lambda **kw: Scale(3, **kw), (4, 3))],
                        checks=("gradcheck", "numpy_equivalence", "dtype_device", "non_contiguous"))


def test_fixture(backend, xp):
    assert backend.xp is xp
    x = xp.ones(3, dtype=xp.float32, device=backend.device)
    assert backend.owns(x)


@pytest.mark.anyxp_skip("array_api_strict", reason="planted skip")
def test_marker(backend):
    assert backend.name != "array_api_strict"
'''


def _run_user_suite(tmp_path, *args):
    (tmp_path / "test_user.py").write_text(USER_TEST)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-rs", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_plugin_is_auto_loaded_and_backends_option_works(tmp_path):
    """No conftest: the fixtures come from the ``pytest11`` entry point of the installed package."""
    rc, out = _run_user_suite(tmp_path, "--anyxp-backends=numpy,array_api_strict:device1")
    assert rc == 0, out
    assert "test_fixture[numpy] PASSED" in out and "test_fixture[array_api_strict:device1] PASSED" in out
    assert "test_scale[array_api_strict:device1-Scale-non_contiguous] PASSED" in out
    assert "torch" not in out.split("collected")[1].split("short test summary")[0].replace("torch-", "")
    # 2 backends x (1 fixture test + 4 layer checks + 1 marker test), the marker skips the strict device
    assert out.count("PASSED") == 11 and "test_marker[array_api_strict:device1] SKIPPED" in out


def test_marker_skips_one_backend(tmp_path):
    rc, out = _run_user_suite(tmp_path, "--anyxp-backends=numpy,array_api_strict", "-k", "marker")
    assert rc == 0, out
    assert "test_marker[numpy] PASSED" in out and "test_marker[array_api_strict] SKIPPED" in out
    assert "planted skip" in out


def test_unusable_backend_skips_with_reason(tmp_path):
    rc, out = _run_user_suite(tmp_path, "--anyxp-backends=numpy,cupy:7", "-k", "fixture")
    assert rc == 0, out
    assert "test_fixture[cupy:7] SKIPPED" in out and "cupy" in out.split("short test summary")[1]


# -- the layer check catches planted bugs ----------------------------------------------------

class MutatesInput(nn.Layer):
    def forward(self, x, train=True):
        self._check_input(x)
        x *= 2.0    # BUG: writes into the caller's array

        def backprop(dy, need_dx=True):
            return dy * 2.0 if need_dx else None
        return x, backprop


class Float64Square(nn.Layer):
    def forward(self, x, train=True):
        self._check_input(x)
        xp = self.backend.xp
        y = xp.astype(xp.square(xp.astype(x, xp.float64)), x.dtype)  # BUG: float64 temporary

        def backprop(dy, need_dx=True):
            return 2.0 * x * dy if need_dx else None
        return y, backprop


class ContiguityAssumed(nn.Layer):
    """Reads the input's memory through NumPy when it is a NumPy array: wrong for strided views."""

    def forward(self, x, train=True):
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
