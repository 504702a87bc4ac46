"""The "interpretability" demo section in quick mode (in-process, NumPy; ~20 s of CPU)."""
import numpy as np

from anyxp_nn.demos import SECTIONS, interpretability


def test_interpretability_section_quick(tmp_path):
    assert ("Interpretability", "interpretability") in SECTIONS
    rows = interpretability.run("numpy", tmp_path, quick=True)
    values = {r["item"]: r["value"] for r in rows}
    assert (tmp_path / "interpret_maps.png").stat().st_size > 10_000
    assert (tmp_path / "interpret_class_models.png").stat().st_size > 5_000
    assert values["hold-out accuracy"] > 50  # one short epoch: a weak but real classifier
    for name in ("saliency", "SmoothGrad", "Grad-CAM", "occlusion"):
        assert np.isfinite(values[f"{name} mass on strokes"]) and values[f"{name} seconds (8 digits)"] >= 0
    # the maps attend to the digit more than a map spread uniformly over the image would
    assert values["Grad-CAM mass on strokes"] > values["stroke pixels (baseline share)"]
    assert values["occlusion mass on strokes"] > values["stroke pixels (baseline share)"]
    assert values["class models classified as their class"] >= 8  # 30 ascent steps: most already win
    assert values["class models: mean p(own class)"] > 0.2  # chance: 0.1
