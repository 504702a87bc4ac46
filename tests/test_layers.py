"""The table-driven layer suite: every row of tests/layer_cases on every backend.

Test ids read ``test_layer[backend=numpy-case=ReLU-check=torch]``.
"""
from anyxp_nn.testing import layer_test

from layer_cases import all_cases

test_layer = layer_test(all_cases())
