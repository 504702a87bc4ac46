"""The optional packages of the export tests: skip without them, except in CI, where they must be there.

``.ci/run`` installs ``anyxp_nn[export]`` and sets ``CI=true``; a missing package there is an
error, so CI never passes by skipping the export tests.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

__all__ = ["need"]


def need(module: str) -> ModuleType:
    """Import ``module`` or skip the calling test module (fail under ``CI=true``)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        why = (f"{module} is not installed ({e}); the export tests need the export extra: "
               "pip install -e '.[export]'")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {why}", pytrace=False)
        pytest.skip(why, allow_module_level=True)
