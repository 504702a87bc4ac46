"""The package version, in a module of its own so every part of the package can read it."""
__version__ = "0.1.0"

__all__ = ["__version__"]
