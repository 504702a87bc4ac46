"""The layer table: every module here defines ``CASES: list[LayerCase]``.

Adding a layer = one layer file + one row in a module here; tests/test_layers.py
discovers every ``CASES`` list automatically.  A row's ``torch=`` twin is written with
``tnn`` (``torch.nn``, imported when a twin is first built: the torch check skips
without torch, so no twin is built then).
"""
import importlib
import pkgutil


class _TorchNN:
    """``torch.nn``, imported on first attribute access."""

    def __getattr__(self, name):
        import torch.nn
        return getattr(torch.nn, name)


tnn = _TorchNN()


def all_cases():
    cases = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(getattr(mod, "CASES", []))
    return cases
