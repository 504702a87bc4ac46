"""Issue 13 item 10 and issue 12 item 12: the command line validates every number by name, exits
1 for runtime and 2 for usage errors without a traceback (unless --debug), ends quietly on a
closed pipe, runs only the library's own benchmarks, and says where a resumed run continues."""
import subprocess
import sys

import pytest

import anyxp_nn as nn
from anyxp_nn import cli
from anyxp_nn.cli import main


def err_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    errors = [e for e in err if e.startswith("anyxp-nn") and ": error: " in e]
    assert len(errors) == 1 and "Traceback" not in "".join(err), err
    return errors[0]


@pytest.mark.parametrize("argv,option,value", [
    (["bench", "--builtin", "--batch-size", "0"], "--batch-size", "must be >= 1, got 0"),
    (["bench", "--builtin", "--steps", "0"], "--steps", "must be >= 1, got 0"),
    (["bench", "--builtin", "--steps", "-5"], "--steps", "must be >= 1, got -5"),
    (["bench", "--steps", "many"], "--steps", "expected an integer, got 'many'"),
    (["train", "--seed", "-1"], "--seed", "must be >= 0, got -1"),
    (["train", "--epochs", "0"], "--epochs", "must be >= 1, got 0"),
    (["train", "--batch-size", "-3"], "--batch-size", "must be >= 1, got -3"),
    (["train", "--lr", "0"], "--lr", "must be > 0, got 0"),
    (["train", "--lr", "nan"], "--lr", "must be > 0, got nan"),
])
def test_numeric_options_are_validated_by_name(argv, option, value, capsys):
    """The issue's reproducers: --batch-size 0 printed a ZeroDivisionError traceback, --steps 0 / -5
    silently ran 1 step, --seed -1 did not name the option."""
    assert main(argv) == 2
    assert err_line(capsys).startswith(f"anyxp-nn: error: argument {option}: {value}")


def test_builtin_bench_honours_steps(capsys):
    assert main(["bench", "--builtin", "--steps", "3", "--batch-size", "8"]) == 0
    assert "over 3 steps" in capsys.readouterr().out


def tiny_checkpoint(path, epoch):
    model = nn.Linear(4, 3)
    nn.save(path, model, nn.optim.SGD(model.parameters(), lr=0.1), epoch=epoch, step=10 * epoch)
    return path


def test_resume_with_fewer_epochs_than_the_checkpoint_says_so(tmp_path, capsys):
    """The issue's reproducer: --resume --epochs 1 on an epoch-2 checkpoint exited 0, silently."""
    ck = tiny_checkpoint(tmp_path / "ck.npz", epoch=2)
    rc = main(["train", "--checkpoint", str(ck), "--resume", "--epochs", "1", "--out", str(tmp_path / "o")])
    assert rc == 2
    assert err_line(capsys) == (f"anyxp-nn: error: --epochs 1: the checkpoint {str(ck)!r} already holds 2 "
                                "epoch(s), so there is nothing to train; pass --epochs 3 or more to continue")


def test_train_resume_says_where_it_resumed(tmp_path, capsys):
    ck, out = tmp_path / "ck.npz", tmp_path / "out"
    base = ["train", "--batch-size", "256", "--optimizer", "sgd", "--checkpoint", str(ck), "--out", str(out),
            "--no-progress"]
    assert main(base + ["--epochs", "1"]) == 0
    capsys.readouterr()
    assert main(base + ["--epochs", "2", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {ck} after epoch 1 (step " in err and "training epochs 2-2" in err


@pytest.mark.parametrize("option", ["--out", "--checkpoint"])
def test_train_checks_output_paths_before_training(option, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = blocker / "sub" / ("ck.npz" if option == "--checkpoint" else "")
    argv = ["train", "--epochs", "1", option, str(bad)]
    if option == "--checkpoint":
        argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    line = err_line(capsys)
    assert line.startswith(f"anyxp-nn: error: {option} ") and "is not writable" in line
    assert not (tmp_path / "out" / "metrics.json").exists()  # nothing was trained


def test_runtime_errors_exit_1_and_debug_shows_the_traceback(tmp_path, capsys):
    bad = tmp_path / "ck.npz"
    bad.write_bytes(b"not a zip")
    argv = ["train", "--checkpoint", str(bad), "--resume", "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    line = err_line(capsys)
    assert "is truncated or corrupted" in line and "rerun with --debug" in line
    with pytest.raises(nn.checkpoint.CheckpointError):
        main(argv + ["--debug"])


def test_version_and_defaults_in_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"anyxp-nn {nn.__version__}"
    for command in cli.COMMANDS:
        parser = cli.build_parser()
        sub = parser._subparsers._group_actions[0].choices[command]
        for action in sub._actions:
            if action.option_strings and action.default not in (None, False) and action.dest != "help":
                assert "default" in sub.formatter_class("x")._get_help_string(action), (command, action.dest)
            elif action.option_strings and action.default is None:
                assert "default" in (action.help or ""), (command, action.dest)  # says what None means


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX pipe semantics")
def test_a_closed_pipe_ends_quietly():
    """`anyxp-nn backends --json | head` ended in a BrokenPipeError traceback."""
    p = subprocess.Popen([sys.executable, "-m", "anyxp_nn", "backends", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before the first write
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == b""


def test_bench_runs_only_the_librarys_own_benchmarks(tmp_path, monkeypatch, capsys):
    """`bench` ran every *.py in ./benchmarks of whatever folder the user was in."""
    (tmp_path / "benchmarks").mkdir()
    marker = tmp_path / "ran"
    (tmp_path / "benchmarks" / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "library_benchmarks", lambda: [])  # as an installed package: none shipped
    assert main(["bench", "--steps", "2", "--batch-size", "8"]) == 0
    assert not marker.exists() and "over 2 steps" in capsys.readouterr().out


def test_library_benchmarks_come_from_the_source_tree_not_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "evil.py").write_text("")
    found = cli.library_benchmarks()
    source = cli.Path(cli.__file__).resolve().parent.parent / "benchmarks"
    assert all(p.parent == source for p in found) and all(tmp_path not in p.parents for p in found)


def test_bench_runs_given_scripts_with_steps(tmp_path, capsys):
    script = tmp_path / "mine.py"
    out = tmp_path / "argv.txt"
    script.write_text("import argparse, sys\nap = argparse.ArgumentParser()\nap.add_argument(\"--steps\", type=int)\n"
                      f"open({str(out)!r}, 'w').write(' '.join(sys.argv[1:]))\n")
    assert main(["bench", str(script), "--steps", "7"]) == 0
    assert out.read_text() == "--steps 7"
    failing = tmp_path / "fails.py"
    failing.write_text("raise SystemExit(3)\n")
    assert main(["bench", str(failing)]) == 1
    assert "fails.py exited with status 3" in capsys.readouterr().err
    assert main(["bench", str(tmp_path / "missing.py")]) == 2
    assert "is not a Python file" in err_line(capsys)


def test_every_subcommand_is_one_function_pair():
    for name, command in cli.COMMANDS.items():
        assert command.run.__name__ == f"cmd_{name}" and command.add_arguments.__name__ == f"add_{name}_arguments"
        assert command.help
