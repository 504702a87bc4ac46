"""Opt-in short fixture names: ``backend`` and ``xp`` for the plugin's ``anyxp_backend``/``anyxp_xp``.

The auto-loaded plugin never defines these common names (another project may have its
own ``backend`` fixture).  A project that wants them says so in its top-level conftest.py::

    pytest_plugins = ["anyxp_nn.testing.short_names"]

(or, equivalently, ``from anyxp_nn.testing.short_names import backend, xp`` there).
"""
from __future__ import annotations

from typing import Any

import pytest

__all__ = ["backend", "xp"]


@pytest.fixture
def backend(anyxp_backend: Any) -> Any:
    """Alias of ``anyxp_backend``: runs the test once per selected backend."""
    return anyxp_backend


@pytest.fixture
def xp(anyxp_xp: Any) -> Any:
    """Alias of ``anyxp_xp``."""
    return anyxp_xp
