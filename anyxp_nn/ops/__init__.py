"""Pure numerical helpers shared by layers (written once against the Array API)."""
from .erf import erf

__all__ = ["erf"]
