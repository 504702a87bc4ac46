"""Testing helpers: gradient checks, closeness with backend/dtype/device checks, layer cases."""
from .assert_close import assert_close, default_tolerance
from .gradcheck import GradcheckError, gradcheck
from .layer_check import CHECKS, LayerCase, check_layer

__all__ = ["gradcheck", "GradcheckError", "assert_close", "default_tolerance", "LayerCase",
           "check_layer", "CHECKS"]
