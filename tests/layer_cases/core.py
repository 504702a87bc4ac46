"""Rows for the foundation layers: Linear, activations, Sequential."""
import anyxp_nn as nn
from anyxp_nn.testing import LayerCase

from . import tnn


CASES = [
    LayerCase("Linear", lambda **kw: nn.Linear(5, 3, **kw), (4, 5),
              torch=lambda: tnn.Linear(5, 3),
              bad_inputs=[((4, 6), ValueError, r"Linear\(5, 3.*expected input of shape \(\.\.\., 5\), got \(4, 6\)")]),
    LayerCase("Linear-nobias-3d", lambda **kw: nn.Linear(4, 2, bias=False, init="xavier", **kw), (2, 3, 4),
              torch=lambda: tnn.Linear(4, 2, bias=False)),
    LayerCase("Linear-torch-init", lambda **kw: nn.Linear(3, 4, init="torch", **kw), (1, 3),
              torch=lambda: tnn.Linear(3, 4)),
    LayerCase("ReLU", lambda **kw: nn.ReLU(**kw), (3, 7), torch=lambda: tnn.ReLU()),
    LayerCase("LeakyReLU", lambda **kw: nn.LeakyReLU(0.1, **kw), (3, 7), torch=lambda: tnn.LeakyReLU(0.1)),
    LayerCase("Sigmoid", lambda **kw: nn.Sigmoid(**kw), (3, 7), torch=lambda: tnn.Sigmoid()),
    LayerCase("Tanh", lambda **kw: nn.Tanh(**kw), (3, 7), torch=lambda: tnn.Tanh()),
    LayerCase("GELU", lambda **kw: nn.GELU(**kw), (4, 9), torch=lambda: tnn.GELU(),
              make_input=lambda rng, s: 3 * rng.standard_normal(s)),
    LayerCase("GELU-tanh", lambda **kw: nn.GELU("tanh", **kw), (4, 9), torch=lambda: tnn.GELU("tanh"),
              make_input=lambda rng, s: 3 * rng.standard_normal(s)),
    LayerCase("Softmax", lambda **kw: nn.Softmax(**kw), (3, 5), torch=lambda: tnn.Softmax(dim=-1),
              bad_inputs=[((), ValueError, "axis -1 is out of range")]),
    LayerCase("Softmax-axis0", lambda **kw: nn.Softmax(axis=0, **kw), (3, 5), torch=lambda: tnn.Softmax(dim=0)),
    LayerCase("Identity", lambda **kw: nn.Identity(**kw), (2, 3), torch=lambda: tnn.Identity()),
    LayerCase("Sequential-MLP",
              lambda **kw: nn.Sequential(nn.Linear(4, 6, **kw), nn.Tanh(**kw), nn.Linear(6, 3, **kw)), (5, 4),
              torch=lambda: tnn.Sequential(tnn.Linear(4, 6), tnn.Tanh(), tnn.Linear(6, 3)),
              bad_inputs=[((5, 3), ValueError, r"expected input of shape \(\.\.\., 4\), got \(5, 3\)")]),
]
