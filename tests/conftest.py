import os
import sys

# tests/layer_cases is imported as a package by the table-driven suite
sys.path.insert(0, os.path.dirname(__file__))

import anyxp_nn as nn  # noqa: E402
import pytest  # noqa: E402

# the short fixture names `backend` and `xp` are opt-in (the auto-loaded plugin defines
# only `anyxp_backend` and `anyxp_xp`)
pytest_plugins = ["anyxp_nn.testing.short_names"]


@pytest.fixture(autouse=True)
def _reset_default_backend():
    """Tests never leak a process-wide default backend into each other."""
    yield
    nn.backend._default_name = None


def pytest_configure(config):
    # One BLAS/OpenMP thread per test process: pytest-xdist runs one process per core, and
    # PyTorch's spinning OpenMP threads slow down 10x when they outnumber the cores.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
