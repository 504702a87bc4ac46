"""pytest plugin (entry point ``pytest11``): run a test on every available backend.

Installing anyxp_nn loads this plugin into every pytest run, so it claims only names
of its own and changes nothing in another project's tests:

Fixtures:
    ``anyxp_backend``: a :class:`~anyxp_nn.backend.Backend`; every test asking for it
        (directly or through another fixture) runs once per backend in ``--anyxp-backends``
        (default: numpy, array_api_strict, array_api_strict:device1, torch, cupy), with
        ids such as ``[backend=numpy]``.  Backends that cannot run here (no torch, no CUDA
        device) skip with the reason.
    ``anyxp_xp``: ``anyxp_backend.xp``.
Short names (opt in): ``pytest_plugins = ["anyxp_nn.testing.short_names"]`` in your top-level
    ``conftest.py`` adds ``backend`` and ``xp`` as aliases of the two fixtures.
Marker:
    ``@pytest.mark.anyxp_skip("torch", reason="...")``: skip those backends for one test
    (a bare name also skips its devices: "array_api_strict" skips "array_api_strict:device1").
Layer tables:
    ``test_mine = anyxp_nn.testing.layer_test(CASES)`` in any test module runs every
    :class:`~anyxp_nn.testing.LayerCase` through every check on every backend.

``-p no:anyxp_nn`` turns the plugin off.
"""
from __future__ import annotations

from typing import Any

import pytest

from ..backend import get_backend

__all__ = ["DEFAULT_BACKENDS", "selected_backends", "anyxp_backend", "anyxp_xp"]

DEFAULT_BACKENDS = ("numpy", "array_api_strict", "array_api_strict:device1", "torch", "cupy")
FIXTURE = "anyxp_backend"


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("anyxp_nn")
    group.addoption("--anyxp-backends", default=None,
                    help="comma-separated backends for the `anyxp_backend` fixture "
                         f"(default: {','.join(DEFAULT_BACKENDS)}; unusable ones skip)")


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "anyxp_skip(*backends, reason=''): skip this test on the named backends")


def selected_backends(config: Any) -> list[str]:
    opt = config.getoption("--anyxp-backends", default=None)
    if opt:
        return [s.strip() for s in opt.split(",") if s.strip()]
    return list(DEFAULT_BACKENDS)


def pytest_generate_tests(metafunc: Any) -> None:
    if FIXTURE in metafunc.fixturenames:
        names = selected_backends(metafunc.config)
        metafunc.parametrize(FIXTURE, names, indirect=True, ids=[f"backend={n}" for n in names])


@pytest.fixture
def anyxp_backend(request: Any) -> Any:
    """The backend this test instance runs on (parametrized by the plugin)."""
    label = request.param
    marker = request.node.get_closest_marker("anyxp_skip")
    if marker is not None and (label in marker.args or label.split(":")[0] in marker.args):
        pytest.skip(marker.kwargs.get("reason", f"skipped on {label}"))
    try:
        return get_backend(label)
    except ValueError as e:
        pytest.skip(str(e).split("; usable")[0])


@pytest.fixture
def anyxp_xp(anyxp_backend: Any) -> Any:
    """``anyxp_backend.xp``: the array-api-compat namespace."""
    return anyxp_backend.xp
