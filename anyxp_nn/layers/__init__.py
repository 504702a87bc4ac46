"""Layers: each returns ``(y, backprop)`` from ``forward``; see :mod:`anyxp_nn.layers.base`."""
from .activations import GELU, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .base import IncompatibleKeys, Layer, StateDictError
from .linear import Linear
from .sequential import Sequential

__all__ = ["Layer", "StateDictError", "IncompatibleKeys", "Sequential", "Linear", "ReLU", "LeakyReLU", "Sigmoid",
           "Tanh", "GELU", "Softmax", "Identity"]

# Layers added by other modules register here (one import line each).
from .batchnorm import BatchNorm1D, BatchNorm2D  # noqa: E402
from .dropout import Dropout  # noqa: E402
from .layernorm import LayerNorm  # noqa: E402
from .residual import Residual  # noqa: E402
__all__ += ["BatchNorm1D", "BatchNorm2D", "LayerNorm", "Dropout", "Residual"]
from .cnn import AvgPool2D, Conv2D, Flatten, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D, Upsample2D  # noqa: E402
__all__ += ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "Flatten", "Upsample2D"]
from .containers import LayerDict, LayerList  # noqa: E402
__all__ += ["LayerList", "LayerDict"]

# PyTorch spellings: the same classes under torch.nn's names.
Conv2d, MaxPool2d, AvgPool2d = Conv2D, MaxPool2D, AvgPool2D
BatchNorm1d, BatchNorm2d = BatchNorm1D, BatchNorm2D
__all__ += ["Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d"]
from .conv_transpose import ConvTranspose2D, ConvTranspose2d  # noqa: E402
__all__ += ["ConvTranspose2D", "ConvTranspose2d"]
from .concatenate import Concatenate  # noqa: E402
__all__ += ["Concatenate"]
