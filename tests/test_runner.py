import subprocess
import sys

import pytest

from ganref import cli, runner


def test_list_and_select():
    chapters = runner.list_chapters()
    assert chapters and chapters[0].stem == "01_vanilla_gan"
    assert runner.select_chapters(["01"])[0].stem == "01_vanilla_gan"
    assert runner.select_chapters(["vanilla_gan"])[0].stem == "01_vanilla_gan"
    assert runner.select_chapters([]) == chapters


def test_unknown_chapter_is_named():
    with pytest.raises(ValueError, match="chapter '99' not found; chapters are: 01_vanilla_gan"):
        runner.select_chapters(["99"])


def test_cli_errors_are_clear(capsys):
    assert cli.main(["run", "99", "--profile", "smoke"]) == 2
    assert "chapter '99' not found" in capsys.readouterr().err
    assert cli.main(["run", "--jobs", "0", "--profile", "smoke"]) == 2
    assert "jobs must be an integer >= 1" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "ganref.cli", "run", "--profile", "huge"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'huge'" in proc.stderr


def test_results_without_runs(tmp_path, capsys):
    assert cli.main(["results", "--profile", "smoke", "--out", str(tmp_path)]) == 2
    assert "run `ganref run --profile smoke` first" in capsys.readouterr().err


def test_results_table_sets_references_beside_results(tmp_path):
    from ganref import report

    r = report.Report("01_x", "X", "smoke", "cpu", 0, tmp_path / "smoke" / "01_x.json")
    r.record(modes=7.0, other=1)
    r.reference("modes", 3.3, "VEEGAN Table 1")
    table = runner.results_table("smoke", tmp_path)
    line = next(l for l in table.splitlines() if l.startswith("modes"))
    assert "7" in line and "3.3" in line and "VEEGAN Table 1" in line


def test_list_command(capsys):
    assert cli.main(["list"]) == 0
    assert "01_vanilla_gan" in capsys.readouterr().out
