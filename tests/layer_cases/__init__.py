"""The layer table: every module here defines ``CASES: list[LayerCase]``.

Adding a layer = one layer file + one module (or row) here; tests/test_layers.py
discovers every ``CASES`` list automatically.
"""
import importlib
import pkgutil


def all_cases():
    cases = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(getattr(mod, "CASES", []))
    return cases
