"""Layers: each returns ``(y, backprop)`` from ``forward``; see :mod:`anyxp_nn.layers.base`.

Adding a layer: its file here, one import line below and its name in ``__all__``.
"""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import IncompatibleKeys, Layer, StateDictError
from .batchnorm import BatchNorm1D, BatchNorm2D
from .concatenate import Concatenate
from .containers import LayerDict, LayerList
from .conv import Conv2D
from .conv_transpose import ConvTranspose2D, ConvTranspose2d
from .dropout import Dropout
from .layernorm import LayerNorm
from .linear import Linear
from .pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D
from .reshape import Flatten, Upsample2D
from .residual import Residual
from .sequential import Sequential

# PyTorch spellings: the same classes under torch.nn's names.
AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, MaxPool2d = AvgPool2D, BatchNorm1D, BatchNorm2D, Conv2D, MaxPool2D

__all__ = [
    "AvgPool2D", "AvgPool2d", "BatchNorm1D", "BatchNorm1d", "BatchNorm2D", "BatchNorm2d", "Concatenate", "Conv2D",
    "Conv2d", "ConvTranspose2D", "ConvTranspose2d", "Dropout", "Flatten", "GELU", "GlobalAvgPool2D", "GlobalMaxPool2D",
    "Identity", "IncompatibleKeys", "Layer", "LayerDict", "LayerList", "LayerNorm", "LeakyReLU", "Linear",
    "MaxPool2D", "MaxPool2d", "ReLU", "Residual", "Sequential", "Sigmoid", "Softmax", "StateDictError", "Tanh",
    "Upsample2D",
]
