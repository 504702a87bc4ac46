"""Pure numerical helpers shared by layers (written once against the Array API)."""
from .erf import erf
from .rowsum import row_sums

__all__ = ["erf", "row_sums"]
