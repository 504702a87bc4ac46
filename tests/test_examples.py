"""The examples script in quick mode on NumPy (a subprocess; may take up to ~2 minutes)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_examples_quick_numpy(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "neural_networks_examples.py"),
                        "--backend", "numpy", "--quick", "--out", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Summary (numpy, quick" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert (out / "summary.csv").exists()
    ran = [s for s in summary["sections"] if s["status"] == "ok"]
    for s in ran:  # every section that ran saved at least one figure and returned rows
        assert s["figures"] >= 1, s
        assert any(row["section"] for row in summary["rows"]), summary["rows"]
    if ran:
        assert list(out.glob("**/*.png"))
