"""Batch augmentations on any backend: ``t(x, rng=None) -> x'`` for x of shape (N, C, H, W).

Per-sample random parameters come from :mod:`anyxp_nn.random` (host draws of a few
numbers per image, one transfer), the pixels never leave the device, and there is no
Python loop over samples.  The same seed gives bit-identical batches on every backend.
"""
from ._base import Transform
from .color import ColorJitter
from .compose import Compose
from .crop import RandomCrop
from .cutout import Cutout
from .flip import RandomFlip
from .mixup import MixUp
from .noise import GaussianNoise
from .rotation import RandomRotation
from .translate import RandomTranslate

__all__ = [
    "ColorJitter", "Compose", "Cutout", "GaussianNoise", "MixUp", "RandomCrop", "RandomFlip", "RandomRotation",
    "RandomTranslate", "Transform"
]
