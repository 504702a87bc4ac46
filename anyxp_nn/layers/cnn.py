"""Convolutional-network layers, registered together in :mod:`anyxp_nn.layers`."""
from .conv import Conv2D
from .pooling import AvgPool2D, GlobalAvgPool2D, GlobalMaxPool2D, MaxPool2D
from .reshape import Flatten, Upsample2D

__all__ = ["Conv2D", "MaxPool2D", "AvgPool2D", "GlobalAvgPool2D", "GlobalMaxPool2D", "Flatten", "Upsample2D"]
