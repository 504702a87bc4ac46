"""Rows for the deep-network toolkit: BatchNorm1D/2D, LayerNorm, Dropout, Residual."""
import numpy as np

import anyxp_nn as nn
from anyxp_nn.testing import LayerCase
from anyxp_nn.testing.torch_models import torch_residual

from . import tnn


def _with_stats(layer):
    """Non-trivial running statistics and affine parameters, so evaluation mode is really tested."""
    c = layer.num_features
    b = layer.backend
    layer.register_buffer("running_mean", b.asarray(np.linspace(-0.5, 0.5, c), dtype=layer.dtype))
    layer.register_buffer("running_var", b.asarray(np.linspace(0.5, 2.0, c), dtype=layer.dtype))
    layer.weight.data = b.asarray(np.linspace(0.5, 1.5, c), dtype=layer.dtype)
    layer.bias.data = b.asarray(np.linspace(-0.2, 0.3, c), dtype=layer.dtype)
    return layer


_ONE = "Expected more than 1 value per channel when training"

CASES = [
    LayerCase("BatchNorm1D-NC", lambda **kw: _with_stats(nn.BatchNorm1D(3, **kw)), (6, 3),
              torch=lambda: tnn.BatchNorm1d(3),
              bad_inputs=[((1, 3), ValueError, _ONE),
                          ((6, 4), ValueError, r"BatchNorm1D\(3.*expected 3 channels on axis 1 .*got input of shape \(6, 4\)"),
                          ((6, 3, 2, 2), ValueError, r"expected a 2-D or 3-D input")]),
    LayerCase("BatchNorm1D-NCL", lambda **kw: nn.BatchNorm1D(3, momentum=0.3, **kw), (4, 3, 5),
              torch=lambda: tnn.BatchNorm1d(3, momentum=0.3),
              bad_inputs=[((1, 3, 1), ValueError, _ONE)]),
    LayerCase("BatchNorm1D-eval", lambda **kw: _with_stats(nn.BatchNorm1D(3, **kw)), (4, 3),
              torch=lambda: tnn.BatchNorm1d(3), train=False),
    LayerCase("BatchNorm2D", lambda **kw: _with_stats(nn.BatchNorm2D(3, **kw)), (3, 3, 3, 2),
              torch=lambda: tnn.BatchNorm2d(3),
              bad_inputs=[((1, 3, 1, 1), ValueError, _ONE),
                          ((2, 4, 3, 3), ValueError, r"BatchNorm2D\(3.*expected 3 channels .*\(2, 4, 3, 3\)"),
                          ((2, 3, 3), ValueError, "expected a 4-D input")]),
    LayerCase("BatchNorm2D-eval", lambda **kw: _with_stats(nn.BatchNorm2D(3, eps=1e-3, **kw)), (2, 3, 2, 3),
              torch=lambda: tnn.BatchNorm2d(3, eps=1e-3), train=False),
    LayerCase("LayerNorm", lambda **kw: nn.LayerNorm(6, **kw), (4, 6), torch=lambda: tnn.LayerNorm(6),
              bad_inputs=[((4, 5), ValueError, r"LayerNorm\(\(6,\).*expected input of shape \(\.\.\., 6\), got \(4, 5\)")]),
    LayerCase("LayerNorm-2axes", lambda **kw: nn.LayerNorm((3, 4), eps=1e-3, **kw), (2, 3, 4),
              torch=lambda: tnn.LayerNorm((3, 4), eps=1e-3),
              bad_inputs=[((2, 4, 3), ValueError, r"expected input of shape \(\.\.\., 3, 4\)")]),
    # the masks come from anyxp_nn.random, not torch's generator: no torch comparison in training
    LayerCase("Dropout-train", lambda **kw: nn.Dropout(0.3, **kw), (5, 8), skip=("torch",)),
    LayerCase("Dropout-eval", lambda **kw: nn.Dropout(0.3, **kw), (5, 8), torch=lambda: tnn.Dropout(0.3),
              train=False),
    LayerCase("Residual-identity",
              lambda **kw: nn.Residual(nn.Sequential(nn.Linear(4, 4, **kw), nn.Tanh(**kw), nn.Linear(4, 4, **kw))),
              (3, 4), torch=lambda: torch_residual(tnn.Sequential(tnn.Linear(4, 4), tnn.Tanh(), tnn.Linear(4, 4))),
              bad_inputs=[((3, 5), ValueError, r"expected input of shape \(\.\.\., 4\), got \(3, 5\)")]),
    LayerCase("Residual-projection-bn",
              lambda **kw: nn.Residual(nn.Sequential(nn.Linear(4, 6, **kw), nn.BatchNorm1D(6, **kw), nn.Tanh(**kw)),
                                       shortcut=nn.Linear(4, 6, bias=False, **kw)),
              (5, 4), torch=lambda: torch_residual(tnn.Sequential(tnn.Linear(4, 6), tnn.BatchNorm1d(6), tnn.Tanh()),
                                                     tnn.Linear(4, 6, bias=False))),
]
