import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ganref.pipeline import report


def test_record_writes_json_atomically(tmp_path):
    path = tmp_path / "out" / "01_x.json"
    r = report.Report("01_x", "X", "smoke", "cpu", 3, path)
    r.record(a=1.5, b=np.float32(2.0), c=torch.tensor([1.0, 2.0]), d={"k": np.int64(4)})
    r.reference("a", 1.4, "Paper 2020, Table 1")
    data = report.load(path)
    assert data["results"] == {"a": 1.5, "b": 2.0, "c": [1.0, 2.0], "d": {"k": 4}}
    assert data["references"] == [{"key": "a", "value": 1.4, "source": "Paper 2020, Table 1", "note": ""}]
    assert data["profile"] == "smoke" and data["seed"] == 3 and data["chapter"] == "01_x"
    assert [p.name for p in path.parent.iterdir()] == ["01_x.json"]  # no temp file left behind


def test_status_is_running_until_complete_and_every_write_is_timed(tmp_path):
    path = tmp_path / "01_x.json"
    r = report.Report("01_x", "X", "smoke", "cpu", 0, path)
    r.record(a=1)
    data = report.load(path)
    assert data["status"] == "running" and data["started"] and data["updated"] >= data["started"]
    r.complete()
    assert report.load(path)["status"] == "complete"
    r.record(b=2)  # more numbers after complete(): the record is open again
    assert report.load(path)["status"] == "running"
    report.mark(path, "failed", error="boom")
    assert report.load(path)["status"] == "failed" and report.load(path)["error"] == "boom"
    with pytest.raises(ValueError, match="status must be one of running, complete, failed"):
        report.mark(path, "done")


def test_by_hand_run_writes_apart_from_the_runner_results(tmp_path, monkeypatch):
    """Without results_path (JupyterLab), the record goes to runs/<profile>/interactive/, never over the runner's."""
    monkeypatch.delenv("GANREF_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    r = report.Report("02_y", "Y", "cpu", "cpu", 0)
    r.record(z=1)
    path = tmp_path / "runs" / "cpu" / "interactive" / "02_y.json"
    assert json.loads(path.read_text())["results"] == {"z": 1}
    assert not (tmp_path / "runs" / "cpu" / "02_y.json").exists()
    # from a project's notebooks/ folder (where JupyterLab runs a chapter), into the project's runs/
    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    monkeypatch.chdir(project / "notebooks")
    assert report.Report("02_y", "Y", "smoke", "cpu", 0).path == project / "runs" / "smoke" / "interactive" / "02_y.json"
    monkeypatch.setenv("GANREF_ROOT", str(tmp_path / "elsewhere"))
    assert report.Report("02_y", "Y", "smoke", "cpu", 0).path.parent == tmp_path / "elsewhere" / "runs" / "smoke" / "interactive"


def test_non_finite_and_odd_values_are_refused(tmp_path):
    r = report.Report("01_x", "X", "smoke", "cpu", 0, tmp_path / "r.json")
    with pytest.raises(ValueError, match="result 'loss' is nan"):
        r.record(loss=float("nan"))
    with pytest.raises(ValueError, match=r"result 'l\[1\]' is inf"):
        r.record(l=[1.0, float("inf")])
    with pytest.raises(ValueError, match="has type object"):
        r.record(o=object())


def test_load_refuses_other_json_and_names_unreadable_files(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a ganref results file"):
        report.load(p)
    p.write_text('{"chapter": "01_x", "results": {"a": 1')  # cut short
    with pytest.raises(ValueError, match=rf"cannot read results file {p}: not valid JSON"):
        report.load(p)
    p.write_bytes(b'{"chapter": "\xff"}')
    with pytest.raises(ValueError, match=rf"cannot read results file {p}"):
        report.load(p)


def _record(path, status, updated, **extra):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"chapter": path.stem, "title": path.stem, "profile": "smoke", "device": "cpu", "seed": 0,
            "results": {"a": 1}, "references": [], "updated": updated, **extra}
    if status is not None:
        data["status"] = status
    path.write_text(json.dumps(data))


def test_collect_flags_failed_incomplete_unknown_and_interrupted_runs(tmp_path):
    run = tmp_path / "smoke"
    _record(run / "01_ok.json", "complete", "2025-01-02T00:00:00+00:00")
    _record(run / "02_failed_after_good.json", "complete", "2025-01-01T00:00:00+00:00")
    _record(run / "failed" / "02_failed_after_good.json", "failed", "2025-01-03T00:00:00+00:00", error="RuntimeError: x")
    _record(run / "failed" / "03_only_failed.json", "failed", "2025-01-03T00:00:00+00:00", error="boom")
    _record(run / "04_partial.json", "running", "2025-01-03T00:00:00+00:00")
    _record(run / "05_old_format.json", None, "2024-12-01T00:00:00+00:00")
    _record(run / "06_failed_then_good.json", "complete", "2025-01-05T00:00:00+00:00")
    _record(run / "failed" / "06_failed_then_good.json", "failed", "2025-01-04T00:00:00+00:00")
    _record(run / "07_interrupted.json", "complete", "2025-01-01T00:00:00+00:00")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / "running" / f"07_interrupted.{int(dead.stdout)}.abc123").mkdir(parents=True)
    runs = {r.chapter: r for r in report.collect(run)}
    assert list(runs) == ["01_ok", "02_failed_after_good", "03_only_failed", "04_partial", "05_old_format",
                          "06_failed_then_good", "07_interrupted"]
    assert runs["01_ok"].ok and runs["06_failed_then_good"].ok  # an older failure is history
    assert not runs["02_failed_after_good"].ok
    assert runs["02_failed_after_good"].warnings[0].startswith("FAILED: the last run (written 2025-01-03")
    assert "RuntimeError: x" in runs["02_failed_after_good"].warnings[0]
    assert "from the last complete run, written 2025-01-01" in runs["02_failed_after_good"].warnings[0]
    assert runs["03_only_failed"].data is None and "there are no complete results" in runs["03_only_failed"].warnings[0]
    assert runs["04_partial"].warnings[0].startswith("INCOMPLETE: this record's run is 'running'")
    assert runs["05_old_format"].warnings[0].startswith("status unknown")
    assert "was interrupted before it finished" in runs["07_interrupted"].warnings[0]


def test_save_array_writes_beside_the_json(tmp_path):
    r = report.Report("01_x", "X", "smoke", "cpu", 0, tmp_path / "01_x.json")
    path = r.save_array("samples", torch.ones(2, 3))
    assert path == tmp_path / "01_x_artifacts" / "samples.npy"
    assert report.load(tmp_path / "01_x.json")["artifacts"]["samples"] == {
        "file": "01_x_artifacts/samples.npy", "shape": [2, 3], "dtype": "float32"}
    with pytest.raises(ValueError, match="name must be a file stem"):
        r.save_array("../x", np.ones(2))
    with pytest.raises(ValueError, match="holds Python objects"):
        r.save_array("o", np.array([object()]))


def test_temp_file_of_an_interrupted_write_is_cleaned_by_the_next_write_and_ignored_by_git(tmp_path):
    """Issue 11, item 9: a write killed between creating and renaming its temp file left it forever."""
    import os
    import shutil
    import time

    path = tmp_path / "01_x.json"
    child = ("import os, sys; from ganref.utils import atomic_write\n"
             "os.replace = lambda *a: os._exit(9)  # dies like kill -9 after writing, before the rename\n"
             "atomic_write(sys.argv[1], 'partial')\n")
    assert subprocess.run([sys.executable, "-c", child, str(path)]).returncode == 9
    (left,) = tmp_path.glob("01_x.json.*.tmp")
    live = tmp_path / f"01_x.json.{os.getpid()}.inflight.tmp"  # a write in progress in a live process: kept
    live.write_text("")
    old_style = tmp_path / "01_x.jsonab12_x9z.tmp"  # mkstemp's name before the pid was added, 2 h old
    old_style.write_text("")
    os.utime(old_style, (time.time() - 7200,) * 2)
    report.Report("01_x", "X", "smoke", "cpu", 0, path).record(a=1)
    assert not left.exists() and not old_style.exists() and live.exists()
    assert report.load(path)["results"] == {"a": 1}
    git = shutil.which("git")
    if git:
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        for name in (left.name, "run.pt.123.abc.tmp", "datasets/.train-images-idx3-ubyte.gz.x1.part"):
            assert subprocess.run([git, "-C", repo, "check-ignore", "-q", "--no-index", name]).returncode == 0, name
