"""The demo runner: a section that does not import fails loudly, like one that raises."""
from anyxp_nn.demos import runner


def test_a_section_that_fails_to_import_is_a_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "SECTIONS", [("A section that does not import", "no_such_section")])
    rows, statuses = runner.run_sections("numpy", tmp_path, quick=True)
    assert rows == [] and statuses[0]["status"].startswith("FAILED: ModuleNotFoundError")
    assert runner.main(["--out", str(tmp_path), "--quick"]) == 1
    assert "FAILED sections: no_such_section" in capsys.readouterr().err
