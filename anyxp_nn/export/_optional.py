"""The optional packages of ``anyxp_nn[export]``: onnx, onnxruntime, safetensors."""
from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` for ``what`` or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = module.split(".")[0]
        raise ImportError(f"{what} needs the `{package}` package, which is not installed ({e}); "
                          f"install the export extra: pip install 'anyxp_nn[export]'") from None
