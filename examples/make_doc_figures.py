"""Regenerate the figures the guides embed (docs/figures/*.png) from the demo sections.

    python examples/make_doc_figures.py              # full demo runs (a few minutes on a CPU)
    python examples/make_doc_figures.py --quick      # the --quick demo sizes (smaller numbers)

Runs the demo sections that draw the guides' figures on NumPy into a temporary folder,
then copies the figures listed in FIGURES into docs/figures/, re-encoded as 8-bit
palette PNGs to keep the folder small (tests/test_docs.py checks < 2 MB in all, and
that every figure a guide names exists). The demo's printed numbers, which the guides
quote, go to stdout as usual.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's anyxp_nn, whatever is installed

from anyxp_nn.demos.runner import main as run_demos  # noqa: E402

# demo section -> the figures of it that the guides embed
FIGURES = {
    "sgd": ["sgd_trajectories.png", "sgd_batch_sizes.png", "sgd_schedules.png", "sgd_optimizers_digits.png"],
    "mlp": ["mlp_decision_boundary.png", "mlp_activations.png", "mlp_init_spread.png", "mlp_training_loss.png"],
    "gradients": ["gradients_vanishing.png", "gradients_exploding_clipping.png"],
    "cnn": ["cnn_filters.png", "cnn_feature_maps_conv1.png", "cnn_feature_maps_conv2.png"],
    "deep": ["deep_batchnorm.png", "deep_dropout.png", "deep_residual.png", "deep_augmentations.png",
             "deep_resnet.png"],
    "depth": ["depth_init_vs_residual.png"],
    "generalization": ["generalization_capacity.png", "generalization_label_noise.png",
                       "generalization_scrambled.png", "generalization_linear_probe.png"],
    "interpretability": ["interpret_maps.png", "interpret_class_models.png"],
    "transfer": ["transfer_learning_curve.png"],
    "segmentation": ["segmentation_unet.png"],
    "detection": ["detection_boxes.png"],
}


def shrink(src: Path, dst: Path, max_width: int = 900) -> None:
    """Copy a PNG as an adaptive-palette PNG no wider than ``max_width`` pixels."""
    try:
        from PIL import Image
    except ImportError:  # Pillow comes with matplotlib; without it, copy as is
        shutil.copyfile(src, dst)
        return
    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.width > max_width:
            im = im.resize((max_width, round(im.height * max_width / im.width)), Image.LANCZOS)
        im.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="run the demos at their --quick sizes")
    p.add_argument("--sections", default=",".join(FIGURES), help="comma-separated demo sections")
    p.add_argument("--dest", default=str(ROOT / "docs" / "figures"), help="destination folder")
    args = p.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        status = run_demos(["--backend", "numpy", "--out", tmp, "--sections", ",".join(sections)]
                           + (["--quick"] if args.quick else []))
        missing = []
        for section in sections:
            for name in FIGURES.get(section, []):
                src = Path(tmp) / name
                if src.is_file():
                    shrink(src, dest / name)
                else:
                    missing.append(name)
    total = sum(f.stat().st_size for f in dest.glob("*.png"))
    print(f"figures in {dest}: {total / 1e6:.2f} MB", file=sys.stderr)
    if missing:
        print(f"not produced by the demos: {missing}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
