"""anyxp-nn command line: every subcommand, --help, one-line errors (status 2 usage, 1 runtime)."""
import json
import subprocess
import sys

import pytest

from anyxp_nn.cli import main


def _err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [e for e in err if e.startswith("anyxp-nn") and ": error: " in e]
    assert len(errors) == 1 and "Traceback" not in "".join(err), err  # one clear line, no traceback
    return errors[0]


def test_backends_table(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "name" in out and "why not" in out and "numpy" in out and "yes" in out
    assert main(["backends", "--backend", "numpy", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["numpy"]


@pytest.mark.parametrize("cmd", [[], ["backends"], ["demo"], ["train"], ["check"], ["bench"]])
def test_help_everywhere(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main(cmd + ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: anyxp-nn" in out and ("--backend" in out or not cmd)


def test_errors_are_one_line_with_status_2(capsys):
    assert main(["backends", "--backend", "nope"]) == 2
    assert _err_line(capsys).startswith("anyxp-nn: error: unknown backend 'nope'; usable backends: numpy")
    assert main(["train", "--model", "vgg"]) == 2
    assert "invalid choice: 'vgg'" in _err_line(capsys)
    assert main(["train", "--resume"]) == 2
    assert _err_line(capsys) == "anyxp-nn: error: --resume needs --checkpoint PATH (the file to continue from)"
    assert main(["train", "--epochs", "0"]) == 2
    assert "argument --epochs: must be >= 1, got 0" in _err_line(capsys)
    assert main(["demo", "--sections", "nope", "--out", "/tmp/anyxp_cli_demo"]) == 2
    assert "unknown section(s) ['nope']" in _err_line(capsys)
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in _err_line(capsys)


def test_check_delegates(monkeypatch):
    import types
    calls = []
    fake = types.ModuleType("anyxp_nn.testing.check")
    fake.main = lambda argv: calls.append(argv) or 0
    monkeypatch.setitem(sys.modules, "anyxp_nn.testing.check", fake)
    assert main(["check", "--backend", "numpy"]) == 0
    assert calls == [["--backend", "numpy"]]


def test_bench_builtin(capsys):
    assert main(["bench", "--builtin", "--steps", "2", "--batch-size", "16"]) == 0
    assert "ms/step" in capsys.readouterr().out


def test_train_checkpoint_and_resume(tmp_path, capsys):
    ck, out = tmp_path / "ck.npz", tmp_path / "out"
    base = ["train", "--model", "mlp", "--dataset", "digits", "--batch-size", "128", "--optimizer", "sgd",
            "--schedule", "cosine", "--checkpoint", str(ck), "--out", str(out), "--no-progress"]
    assert main(base + ["--epochs", "1"]) == 0
    assert ck.exists() and (out / "history.png").exists()
    assert main(base + ["--epochs", "2", "--resume"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"]["epoch"] == [1, 2] and m["test"]["accuracy"] > 0.5 and m["backend"] == "numpy"
    assert "test accuracy" in capsys.readouterr().out
    assert main(["train", "--model", "cnn", "--dataset", "digits", "--epochs", "1"]) == 2
    assert "--model cnn expects 28x28 images" in _err_line(capsys)
    base[base.index("mlp")] = "resnet"
    assert main(base + ["--epochs", "3", "--resume"]) == 1  # a checkpoint from another model: a runtime error
    assert "does not match the model" in _err_line(capsys)


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "anyxp_nn", "backends", "--backend", "nope"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_check_passes_its_own_options_through(capsys):
    from anyxp_nn import cli
    rc = cli.main(["check", "--steps", "2", "--model", "mlp", "--backend", "numpy,array_api_strict"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "all backends agree" in out
