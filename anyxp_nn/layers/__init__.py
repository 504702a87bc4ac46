"""Layers: each returns ``(y, backprop)`` from ``forward``; see :mod:`anyxp_nn.layers.base`."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer, StateDictError
from .linear import Linear
from .sequential import Sequential

__all__ = ["Layer", "StateDictError", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid",
           "Tanh", "GELU", "Softmax", "Identity"]

# Layers added by other modules register here (one import line each).
