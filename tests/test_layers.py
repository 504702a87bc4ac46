"""The table-driven layer suite: every row of tests/layer_cases on every backend."""
import pytest

from anyxp_nn.testing import CHECKS, check_layer

from layer_cases import all_cases

CASES = all_cases()


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_layer(case, check, backend):
    check_layer(case, backend, checks=(check,))
