"""Tests for ganref/pipeline/runner.py: chapter selection, staging and promotion of runs, the results table.

Runs go through Dask (a LocalCluster started by ``runner.run``); tests/test_dask.py covers seeds, a
real scheduler, failures and kills. The runs use throwaway chapters written into a temporary project ($GANREF_ROOT), each a few cells
that record a number and fail when $FLAKY_FAIL is set, so a re-run that fails can be reproduced
without running the book's real chapters.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ganref.pipeline import cli, execute, report, runner


def test_list_and_select():
    chapters = runner.list_chapters()
    assert chapters and chapters[0].stem == "01_vanilla_gan"
    assert runner.select_chapters(["01"])[0].stem == "01_vanilla_gan"
    assert runner.select_chapters(["vanilla_gan"])[0].stem == "01_vanilla_gan"
    assert runner.select_chapters([]) == chapters


def test_unknown_chapter_is_named():
    with pytest.raises(ValueError, match="chapter '99' not found; chapters are: 01_vanilla_gan"):
        runner.select_chapters(["99"])


def test_results_table_sets_references_beside_results(tmp_path):
    r = report.Report("01_x", "X", "smoke", "cpu", 0, tmp_path / "smoke" / "01_x.json")
    r.record(modes=7.0, other=1)
    r.reference("modes", 3.3, "VEEGAN Table 1")
    r.complete()
    table, flagged = runner.results_report("smoke", tmp_path)
    line = next(l for l in table.splitlines() if l.startswith("modes"))
    assert "7" in line and "3.3" in line and "VEEGAN Table 1" in line
    assert flagged == [] and "status complete, written 20" in table


# ---------------------------------------------------------------------------------------------
# Real runs of throwaway chapters (papermill kernels: a few seconds each)
# ---------------------------------------------------------------------------------------------

# Each throwaway chapter starts with this cell after the parameters cell (conftest.write_chapter).
PRELUDE = """import os

import numpy as np

import ganref

failing = bool(os.environ.get("FLAKY_FAIL"))
"""
# 01 records, saves an array, then fails on the bad run: the "flaky re-run".
FLAKY = '''ch = ganref.setup("01_flaky", "Flaky", profile, "cpu", seed, results_path, budget=dict(smoke={}, cpu={}, full={}))
run = 2 if failing else 1
ch.report.record(value=run)
ch.report.save_array("samples", np.full(3, run))
print("cell output of run", run)
if failing:
    raise RuntimeError("flaky failure after recording")'''
# 02 fails before its first record on the bad run.
EARLY = '''if failing:
    raise RuntimeError("early failure before any record")
ch = ganref.setup("02_early", "Early", profile, "cpu", seed, results_path, budget=dict(smoke={}, cpu={}, full={}))
ch.report.record(value=1)'''


def _snapshot(folder: Path, stem: str) -> dict[str, bytes]:
    files = [folder / f"{stem}.json", folder / f"{stem}.ipynb", *sorted((folder / f"{stem}_artifacts").glob("*"))]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files if p.is_file()}


@pytest.fixture(scope="module")
def flaky_runs(tmp_path_factory, throwaway_project):
    """A good run of both chapters, then a run in which both fail; snapshots of runs/smoke after each."""
    base = throwaway_project(tmp_path_factory.mktemp("flaky"), {"01_flaky": ("Flaky", [PRELUDE + FLAKY]),
                                                                 "02_early": ("Early", [PRELUDE + EARLY])})
    mp = pytest.MonkeyPatch()
    mp.setenv("GANREF_ROOT", str(base))
    mp.setenv("OMP_NUM_THREADS", "1")
    mp.delenv("FLAKY_FAIL", raising=False)
    out = base / "runs"
    try:
        good = runner.run(None, "smoke", "cpu", 0, jobs=1, out=out)
        after_good = {s: _snapshot(out / "smoke", s) for s in ("01_flaky", "02_early")}
        mp.setenv("FLAKY_FAIL", "1")
        bad = runner.run(None, "smoke", "cpu", 0, jobs=1, out=out)
        after_bad = {s: _snapshot(out / "smoke", s) for s in ("01_flaky", "02_early")}
    finally:
        mp.undo()
    return {"base": base, "run": out / "smoke", "good": good, "bad": bad, "after_good": after_good,
            "after_bad": after_bad}


@pytest.mark.parametrize("stem", ["01_flaky", "02_early"])
def test_failed_rerun_keeps_the_good_results_notebook_and_artifacts(flaky_runs, stem):
    """Issue 11, item 1: a re-run that records then fails replaced the good JSON and notebook."""
    assert all(o.ok for o in flaky_runs["good"]) and not any(o.ok for o in flaky_runs["bad"])
    good = flaky_runs["after_good"][stem]
    assert f"{stem}.json" in good and f"{stem}.ipynb" in good
    assert flaky_runs["after_bad"][stem] == good  # byte for byte: JSON, notebook and artifacts
    data = json.loads(good[f"{stem}.json"])
    assert data["status"] == "complete" and data["results"]["value"] == 1 and data["updated"]
    if stem == "01_flaky":
        assert set(good) == {"01_flaky.json", "01_flaky.ipynb", "01_flaky_artifacts/samples.npy"}
        assert "cell output of run 1" in good["01_flaky.ipynb"].decode()
    # the stored notebook's injected results_path names the stored JSON relative to the repository
    # (issue 19: executed pages showed machine paths), not the staging folder
    notebook = good[f"{stem}.ipynb"].decode()
    assert json.dumps(f'results_path = "runs/smoke/{stem}.json"')[1:-1] in notebook
    assert "/running/" not in notebook and str(flaky_runs["base"]) not in notebook


def test_failed_run_is_kept_apart_for_inspection(flaky_runs):
    failed = flaky_runs["run"] / "failed"
    flaky = report.load(failed / "01_flaky.json")
    assert flaky["status"] == "failed" and flaky["results"]["value"] == 2
    assert "RuntimeError: flaky failure after recording" in flaky["error"]
    # the cell that raised (papermill's In [n]) and its first line
    assert flaky["error"].endswith('(in cell In [3], line 14: raise RuntimeError("flaky failure after recording"))')
    assert flaky["cell"]["execution_count"] == 3 and flaky["cell"]["line"] == 14
    assert (failed / "01_flaky_artifacts" / "samples.npy").is_file()
    assert "flaky failure after recording" in (failed / "01_flaky.ipynb").read_text()
    assert json.dumps('results_path = "runs/smoke/failed/01_flaky.json"')[1:-1] in (failed / "01_flaky.ipynb").read_text()
    outcome = next(o for o in flaky_runs["bad"] if o.chapter == "01_flaky")
    assert outcome.results == str(failed / "01_flaky.json") and "flaky failure" in outcome.error
    assert outcome.cell == flaky["cell"] and outcome.seed == 0
    # nothing is left in the staging area
    assert list((flaky_runs["run"] / "running").iterdir()) == []


def test_run_failing_before_its_first_record_leaves_no_stale_json_looking_current(flaky_runs):
    """Issue 11, item 2: the old JSON stayed next to a new failed notebook, and looked current."""
    early = report.load(flaky_runs["run"] / "failed" / "02_early.json")
    assert early["status"] == "failed" and early["results"] == {}
    assert "early failure before any record" in early["error"]
    table, flagged = runner.results_report("smoke", flaky_runs["base"] / "runs")
    assert flagged == ["01_flaky", "02_early"]
    lines = table.splitlines()
    for stem in flagged:
        heading = lines.index(next(l for l in lines if l.startswith(f"## {stem}")))
        assert "status complete, written 20" in lines[heading]
        assert lines[heading + 1].startswith("!! FAILED: the last run (written 20")
        assert "the numbers below are from the last complete run, written 20" in lines[heading + 1]


def test_results_command_flags_the_failed_chapters(flaky_runs, capsys):
    assert cli.main(["results", "--profile", "smoke", "--out", str(flaky_runs["base"] / "runs")]) == 1
    out, err = capsys.readouterr()
    assert "!! FAILED" in out and "2 chapter(s) flagged" in err and "01_flaky, 02_early" in err


def test_a_good_run_after_a_failure_clears_it_and_stale_stages(flaky_runs, monkeypatch):
    """A later complete run replaces the set and drops the failure; an interrupted run's stage goes."""
    run = flaky_runs["run"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = run / "running" / f"01_flaky.{int(dead.stdout)}.abc123"
    stale.mkdir()
    assert "was interrupted" in report.collect(run)[0].warnings[-1]
    monkeypatch.setenv("GANREF_ROOT", str(flaky_runs["base"]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("FLAKY_FAIL", raising=False)
    before = report.load(run / "01_flaky.json")
    outcomes = runner.run(["01"], "smoke", "cpu", [0, 3], jobs=2, out=flaky_runs["base"] / "runs")
    assert [(o.seed, o.ok) for o in outcomes] == [(0, True), (3, True)]
    assert outcomes[0].results == str(run / "01_flaky.json")
    assert outcomes[1].results == str(run / "seeds" / "3" / "01_flaky.json")  # seed k: runs/<profile>/seeds/<k>/
    assert report.load(run / "seeds" / "3" / "01_flaky.json")["seed"] == 3
    assert report.load(run / "01_flaky.json")["started"] > before["started"]  # a new run replaced the old
    assert not stale.exists() and not (run / "failed" / "01_flaky.json").exists()
    assert not (run / "failed" / "01_flaky_artifacts").exists()
    runs = {r.chapter: r for r in report.collect(run)}
    assert runs["01_flaky"].ok and not runs["02_early"].ok


def test_checks_come_before_any_kernel(tmp_path, monkeypatch):
    """Issue 11, item 6: a bad option started 6 kernels that failed one by one; now none starts."""
    def no_kernel(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(runner.cluster, "connect", no_kernel)  # no cluster, no task, no kernel
    monkeypatch.setattr(runner, "execute", no_kernel)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match="device must be one of 'auto', 'cpu', 'cuda\\[:N\\]', 'mps', got 'tpu'"):
        runner.run(None, "smoke", "tpu", out=out)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda' was asked for but CUDA is not available"):
        runner.run(None, "smoke", "cuda", out=out)
    for seed in (-1, 2**32, 1.5, True):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 4294967295\]"):
            runner.run(None, "smoke", "cpu", seed, out=out)
    monkeypatch.setenv("OMP_NUM_THREADS", "0")
    with pytest.raises(ValueError, match=r"\$OMP_NUM_THREADS must be a positive integer .*got '0'"):
        runner.run(None, "smoke", "cpu", out=out)
    monkeypatch.setenv("OMP_NUM_THREADS", "four")
    with pytest.raises(ValueError, match=r"\$OMP_NUM_THREADS must be a positive integer .*got 'four'"):
        runner.run(None, "smoke", "cpu", out=out)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=rf"cannot write the output folder {tmp_path}/file/smoke \(--out "
                                         rf"'{tmp_path}/file'\): {tmp_path}/file is a file, not a folder"):
        runner.run(None, "smoke", "cpu", out=tmp_path / "file")
    with pytest.raises(ValueError, match="--out must name a folder, got ''"):
        runner.run(None, "smoke", "cpu", out="")
    assert not out.exists() or not any(out.rglob("*.ipynb"))


@pytest.mark.skipif(os.name == "nt", reason="Unix sockets: not on Windows")
def test_kernels_use_ipc_sockets_of_their_own_unless_the_path_is_too_long():
    """Over TCP every kernel warned on stderr that its traffic is unencrypted; IPC opens no port. Two
    kernels with the default socket name in one working directory took each other's sockets (Invalid
    Signature), so each task names its own; a socket path over about 100 bytes cannot be bound: TCP."""
    a, b = execute.kernel_config(Path("/tmp/task-a")), execute.kernel_config(Path("/tmp/task-b"))
    assert a.KernelManager.transport == b.KernelManager.transport == "ipc"
    assert a.KernelManager.ip == "/tmp/task-a/kernel-ipc" and b.KernelManager.ip != a.KernelManager.ip
    assert execute.kernel_config(Path("/tmp/" + "x" * 80)).KernelManager.transport == "tcp"


def test_tasks_start_longest_first_by_their_last_run(tmp_path):
    """With 2 workers and 13 chapters in order, the 8-minute chapter 13 started last and ran alone; the
    longest-processing-time rule starts it first. A chapter never run (or unreadable) goes before all."""
    out = tmp_path / "smoke"
    for stem, seconds in (("01_a", 30.0), ("02_b", 300.0), ("03_c", 90.4)):
        report.Report(stem, stem, "smoke", "cpu", 0, out / f"{stem}.json").record(x=1)
        report.mark(out / f"{stem}.json", "complete", seconds=seconds)
    (out / "05_e.json").write_text("{not json", encoding="utf-8")
    tasks = [runner.Task(stem, "", "smoke", "cpu", 0) for stem in ("01_a", "02_b", "03_c", "04_d", "05_e")]
    order = runner.longest_first(out, tasks)
    assert order == {("01_a", 0): 30, ("02_b", 0): 300, ("03_c", 0): 90, ("04_d", 0): 301, ("05_e", 0): 301}
    assert runner.longest_first(out, [runner.Task("01_a", "", "smoke", "cpu", 1)]) == {("01_a", 1): 1}


def test_tasks_are_submitted_in_priority_order():
    """A `make` run with priorities but chapter-order submission still started 01 and 02 first: the
    scheduler gives a task to an idle worker as soon as it arrives."""
    from ganref.pipeline import cluster

    order = {"01": 30, "02": 300, "03": 90, "04": 301, "05": 301}
    assert cluster.submission_order(list(order), order.get) == ["04", "05", "02", "03", "01"]
    assert cluster.submission_order(["b", "a"]) == ["b", "a"]
