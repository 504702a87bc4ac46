"""The computer-vision demo sections (transfer, segmentation, detection) in quick mode on every backend.

Quick mode is sized to show learning on NumPy in well under 30 s per section; the tests shrink it
further (``TINY``) so that every backend runs each section in a few seconds: they check the
plumbing (rows, figures, finite numbers), not the accuracies.
"""
import importlib

import pytest

SECTIONS = ("transfer", "segmentation", "detection")
TINY = {
    "transfer": {"QUICK_PRETRAIN": 160, "QUICK_PRETRAIN_EPOCHS": 1, "QUICK_STEPS": 4, "QUICK_TEST": 64},
    "segmentation": {"QUICK_TRAIN": 32, "QUICK_TEST": 16, "QUICK_EPOCHS": 2},
    "detection": {"QUICK_TRAIN": 64, "QUICK_TEST": 32, "QUICK_EPOCHS": 1},
}


@pytest.mark.parametrize("section", SECTIONS)
def test_vision_section_quick(section, backend, tmp_path, monkeypatch):
    mod = importlib.import_module(f"anyxp_nn.demos.{section}")
    for name, value in TINY[section].items():
        assert hasattr(mod, name), f"{section} has no {name}"
        monkeypatch.setattr(mod, name, value)
    rows = mod.run(backend.label, tmp_path, quick=True)
    assert rows and all({"section", "item", "value", "unit"} <= set(r) for r in rows)
    figures = [r for r in rows if r["item"].startswith("figure")]
    assert figures and all((tmp_path / (r["item"].split(" ", 1)[1] + ".png")).exists() for r in figures)
    numbers = [r["value"] for r in rows if isinstance(r["value"], float)]
    assert numbers and all(v == v for v in numbers)  # finite metrics, no NaN
