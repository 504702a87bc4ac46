"""Data parallelism on 2 MPI ranks: each test launches ``mpiexec -n 2 tests/distributed_worker.py``.

Needs mpi4py and an ``mpiexec`` (``pip install 'anyxp_nn[mpi]'``, whose MPICH wheel brings one).
Without them these tests skip, except under ``CI=true``, where they fail: CI must run them.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import anyxp_nn as nn
from anyxp_nn.distributed import mpi_available

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "distributed_worker.py"
TIMEOUT_S = 240  # the slowest scenario takes ~6 s on an idle 2-core machine


def _mpiexec() -> str:
    """The mpiexec next to this Python (the MPICH wheel's), else the one on PATH; skip or fail without."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    ok, why = mpi_available()
    problem = None if found and ok else (why or "no `mpiexec` found next to Python or on PATH")
    if problem is None:
        return found
    message = f"MPI tests need mpi4py and mpiexec: {problem}. Install them with pip install 'anyxp_nn[mpi]'."
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true and " + message, pytrace=False)
    pytest.skip(message)


def launch(scenario: str, folder: Path, ranks: int = 2) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run the worker on ``ranks`` processes; returns the process and each rank's JSON report."""
    result = run_mpi([str(WORKER), scenario, str(folder)], ranks)
    return result, [json.loads(p.read_text()) for p in sorted(folder.glob("rank*.json"))]


def run_mpi(args: list, ranks: int = 2) -> subprocess.CompletedProcess:
    """``mpiexec -n ranks python *args``; the whole group is killed at the timeout (a hang is a failure)."""
    cmd = [_mpiexec(), "-n", str(ranks), sys.executable, *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} hung for {TIMEOUT_S} s and was killed\nstdout:\n{out[-3000:]}\n"
                    f"stderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"mpiexec failed ({result.returncode}):\n{result.stderr[-4000:]}"


def test_two_ranks_equal_one_process_with_twice_the_batch(tmp_path):
    result, ranks = launch("equivalence", tmp_path)
    _ok(result)  # the worker already compared every parameter to float32 rounding and every checksum
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["size"] == 2 for r in ranks)
    cases = ranks[0]["cases"]
    kinds = {(c["kind"], c["opt"], c["backend"]) for c in cases}
    expected_kinds = {("mlp", "sgd", "numpy"), ("mlp", "adam", "numpy"), ("cnn", "sgd", "numpy"),
                      ("cnn", "adam", "numpy"), ("cnn_bn", "sgd", "numpy"), ("cnn", "sgd", "array_api_strict:device1")}
    if "torch" in nn.available_backends():
        expected_kinds.add(("mlp", "adam", "torch"))
    assert expected_kinds <= kinds
    for c in cases:
        assert c["checksums"] == 20 and c["buckets"] > 1
        assert c["worst_rel_diff"] < 1e-5, c
        staged = c["backend"] == "array_api_strict:device1"
        # one host round trip per bucket per step on a device, none on host memory
        expected = 20 * c["buckets"] if staged else 0
        assert c["syncs_in_backprop"]["to_host"] == c["syncs_in_backprop"]["to_device"] == expected, c


def _worker_module():
    sys.path.insert(0, str(WORKER.parent))
    try:
        import distributed_worker
    finally:
        sys.path.remove(str(WORKER.parent))
    return distributed_worker


def test_fit_on_two_ranks_and_resume_on_one_and_back(tmp_path):
    w = _worker_module()
    x, y = w.data("mlp", 2 * w.B * 4)
    xv, yv = w.data("mlp", 16, seed=2)

    def one_process(epochs, **kw):
        model = w.build("mlp", "numpy")
        opt = w.optimizer("adam", model)
        loader = nn.data.DataLoader(x, y, batch_size=2 * w.B, rng=11)
        nn.fit(model, opt, nn.losses.softmax_cross_entropy, loader, val_data=(xv, yv), epochs=epochs,
               progress=False, **kw)
        return model

    # epoch 1 in one process with batch 2b: the worker resumes it on 2 ranks
    one_process(1, callbacks=[nn.callbacks.ModelCheckpoint(str(tmp_path / "one-{epoch}.npz"))])
    result, ranks = launch("fit", tmp_path)
    _ok(result)
    assert all(r["resumed_from_one_process"] < 1e-5 for r in ranks)
    assert ranks[0]["fit"] == ranks[1]["fit"] and ranks[0]["fit"]["steps"] == 12
    # rank 0 alone writes: one header and one row per epoch, a single progress display
    lines = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith("epoch,")
    assert result.stderr.count("epoch 1/3") >= 1 and "epoch 1/3" not in result.stdout
    # a rank seeing NaN: every rank stops at the same step, nobody hangs
    assert ranks[0]["nan"] == ranks[1]["nan"] == {"stop_reason": "non_finite_loss", "steps": 3}

    # resume the 2-rank checkpoint of epoch 1 in one process with the doubled batch
    model = one_process(3, resume=str(tmp_path / "ckpt-1.npz"))
    final = np.load(tmp_path / "final.npz")
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(value, final[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_a_rank_that_raises_stops_every_rank(tmp_path):
    result, _ = launch("raise", tmp_path)
    assert result.returncode != 0
    assert "rank 1 fails on purpose at step 3" in result.stderr
    assert "aborting every rank" in result.stderr


def test_cli_train_distributed(tmp_path):
    result = run_mpi(["-m", "anyxp_nn", "train", "--distributed", "--epochs", "1", "--batch-size", "64",
                      "--no-progress", "--out", str(tmp_path)])
    _ok(result)
    assert result.stderr.count("2 ranks") == 1           # rank 0 alone prints
    assert result.stdout.count("test accuracy") == 1
    assert (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_mpiexec_skips_locally_and_fails_in_ci(monkeypatch, ci, outcome):
    monkeypatch.setattr(sys, "executable", "/nonexistent/bin/python")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="MPI tests need mpi4py and mpiexec: no `mpiexec` found"):
        _mpiexec()
