import os
import sys

# tests/layer_cases is imported as a package by the table-driven suite
sys.path.insert(0, os.path.dirname(__file__))

import anyxp_nn as nn  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _reset_default_backend():
    """Tests never leak a process-wide default backend into each other."""
    yield
    nn.backend._default_name = None
