"""The computer-vision demo sections (transfer, segmentation, detection) in quick mode on every backend."""
import importlib

import pytest

SECTIONS = ("transfer", "segmentation", "detection")


@pytest.mark.parametrize("section", SECTIONS)
def test_vision_section_quick(section, backend, tmp_path):
    mod = importlib.import_module(f"anyxp_nn.demos.{section}")
    rows = mod.run(backend.label, tmp_path, quick=True)
    assert rows and all({"section", "item", "value", "unit"} <= set(r) for r in rows)
    figures = [r for r in rows if r["item"].startswith("figure")]
    assert figures and all((tmp_path / (r["item"].split(" ", 1)[1] + ".png")).exists() for r in figures)
    numbers = [r["value"] for r in rows if isinstance(r["value"], float)]
    assert numbers and all(v == v for v in numbers)  # finite metrics, no NaN
