"""Library plots leave matplotlib's global state alone (backend, pyplot's figures)."""
import json
import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, sys
import matplotlib
matplotlib.use("svg")                      # the user's own choice, e.g. a notebook's inline backend
import numpy as np
import anyxp_nn as nn
from anyxp_nn.monitor import GradientMonitor

b = nn.get_backend(sys.argv[1])
x = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
y = (np.arange(32) % 3).astype(np.int64)
nn.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8, backend=b), nn.ReLU(), nn.Linear(8, 3, backend=b))
opt = nn.optim.Adam(model.parameters(), lr=0.01)
with GradientMonitor(model, opt, every=1) as mon:
    h = nn.fit(model, opt, nn.losses.softmax_cross_entropy, nn.data.DataLoader(x, y, batch_size=8, backend=b),
               val_data=(x, y), epochs=2, progress=False)
figs = [h.plot(sys.argv[2] + "/h.png"), mon.plot(sys.argv[2] + "/m.png"), h.plot(), mon.plot()]
print(json.dumps({"backend": matplotlib.get_backend(), "pyplot": "matplotlib.pyplot" in sys.modules,
                  "figures": [type(f).__name__ for f in figs]}))
"""


def test_plots_do_not_change_the_matplotlib_backend(backend, tmp_path):
    pytest.importorskip("matplotlib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, backend.label, str(tmp_path)], capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"backend": "svg", "pyplot": False, "figures": ["Figure"] * 4}
    assert (tmp_path / "h.png").stat().st_size > 1000 and (tmp_path / "m.png").stat().st_size > 1000
