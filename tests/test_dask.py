"""Tests for runs on Dask (ganref/pipeline/runner.py, cluster.py, execute.py) and results over seeds.

Issue 19: `ganref run --seeds ... --jobs N [--scheduler ADDRESS]` submits one Dask task per
(chapter, seed); the client stores what the tasks return. Every run here uses throwaway chapters in
a temporary project ($GANREF_ROOT, see conftest.py) that record a few numbers in a second or two.

- a LocalCluster run of two chapters x two seeds writes every output; `ganref results` shows
  mean ± std with n = 2;
- a run on a real `dask scheduler` and `dask worker` (separate processes on 127.0.0.1) stores
  results JSON byte-identical to the local run's, except the fields that say when and how long
  (`started`, `updated`: timestamps; `seconds`: the task's wall time), and identical artifacts;
- a chapter that raises at one seed: the other tasks finish, the failure names chapter, seed and
  cell, the exit status is 1, no results JSON is stored for that task and its earlier one stays;
- `kill -9` (or Ctrl-C) of the command mid-run leaves every file complete (old or new, never half),
  and no worker or kernel process behind;
- the results page: the cross-book table with one row per method, no truncated dict, no
  absolute path; the stored notebooks name their results relative to the repository.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from ganref.pipeline import cli, report, results, results_page, runner

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SETUP = '''
ch = ganref.setup("{stem}", "{title}", profile, "cpu", seed, results_path,
                  budget=dict(smoke=dict(n=64), cpu=dict(n=256), full=dict(n=1024)),
                  headlines={{"score": "higher", "spread.x": dict(better="lower", label="std of x")}})
rng = np.random.default_rng(seed)
x = rng.normal(size=(ch.budget["n"], 2)) * {scale}
ch.report.record(score=float(x.mean()), spread={{"x": float(x[:, 0].std()), "y": float(x[:, 1].std())}},
                 table={{"a": {{"p": 1.0 + seed, "q": 2.0}}, "b": {{"p": 3.0, "q": 4.0 * seed}}}}, steps=ch.budget["n"])
ch.report.reference("score", 0.0, "closed form: E[x] = 0")
ch.report.benchmark("{title} sampler", ring8_modes="score", digits_fid="spread.x")
ch.report.save_array("samples", x)
time.sleep(float(os.environ.get("GANREF_TEST_SLEEP", "0")) * (1 + seed))
'''
# Its own cell, so that the failure names it.
FAIL = '''
if os.environ.get("GANREF_TEST_FAIL") == f"{ch.name}:{ch.seed}":
    raise RuntimeError(f"planned failure of {ch.name} at seed {ch.seed}")
'''
IMPORTS = "import os\nimport time\n\nimport numpy as np\n\nimport ganref"
TIMES = re.compile(r'"(started|updated|seconds)": [^,\n]+')


def _chapters(scale: float = 1.0) -> dict[str, tuple[str, list[str]]]:
    return {stem: (title, [IMPORTS, SETUP.format(stem=stem, title=title, scale=scale), FAIL])
            for stem, title in (("01_alpha", "Alpha"), ("02_beta", "Beta"))}


def _env(base: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANREF_TEST_")}
    env.update(GANREF_ROOT=str(base), OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _cli(base: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganref.pipeline.cli", *args], cwd=base, env=_env(base, **env),
                          capture_output=True, text=True, timeout=900)


def _normalized(path: Path) -> str:
    """A results JSON with the time written, the start time and the wall time blanked out."""
    return TIMES.sub(lambda m: f'"{m.group(1)}": "-"', path.read_text(encoding="utf-8"))


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, throwaway_project):
    """Two chapters x seeds 0 and 1 at smoke on a LocalCluster of 2 workers, through the command line."""
    base = throwaway_project(tmp_path_factory.mktemp("dask") / "project", _chapters())
    start = time.perf_counter()
    proc = _cli(base, "run", "--profile", "smoke", "--seeds", "0", "1", "--jobs", "2", "--out", str(base / "runs"))
    seconds = time.perf_counter() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"base": base, "run": base / "runs" / "smoke", "proc": proc, "seconds": seconds}


def test_local_cluster_run_writes_every_output_of_every_seed(local_run):
    run, proc = local_run["run"], local_run["proc"]
    assert "4 task(s) on a local Dask cluster of 2 worker(s)" in proc.stdout
    assert "tasks: 100%" in proc.stderr and "4/4" in proc.stderr  # one progress bar over all tasks
    for seed, folder in ((0, run), (1, run / "seeds" / "1")):
        for stem in ("01_alpha", "02_beta"):
            data = report.load(folder / f"{stem}.json")
            assert data["status"] == "complete" and data["seed"] == seed and data["seconds"] > 0
            assert np.load(folder / f"{stem}_artifacts" / "samples.npy").shape == (64, 2)
            notebook = (folder / f"{stem}.ipynb").read_text()
            nbformat.reads(notebook, as_version=4)
            where = f"runs/smoke/{stem}.json" if seed == 0 else f"runs/smoke/seeds/1/{stem}.json"
            assert json.dumps(f'results_path = "{where}"')[1:-1] in notebook  # relative to the repository
            assert str(local_run["base"]) not in notebook and "/tmp" not in notebook
        assert list((folder / "running").iterdir()) == []
    assert "01_alpha seed 1: ok" in proc.stdout and "02_beta seed 0: ok" in proc.stdout


def test_results_show_mean_and_std_over_two_seeds(local_run, capsys):
    out = str(local_run["base"] / "runs")
    assert cli.main(["results", "--profile", "smoke", "--out", out]) == 0
    text = capsys.readouterr().out
    x = [report.load(f)["results"]["score"] for f in (local_run["run"] / "01_alpha.json",
                                                        local_run["run"] / "seeds" / "1" / "01_alpha.json")]
    mean, std = np.mean(x), np.std(x, ddof=1)
    line = next(ln for ln in text.splitlines() if ln.startswith("score"))
    assert f"{mean:.4g} ± {std:.4g} (n=2)" in line and "closed form: E[x] = 0" in line
    assert "seeds 0, 1 (n=2), status complete" in text
    assert "spread.x" in text and "spread.y" not in text  # headlines and referenced numbers only
    # --all: nested results as sub-tables (a matrix for a dict of dicts), never a truncated dict
    assert cli.main(["results", "--profile", "smoke", "--out", out, "--all"]) == 0
    text = capsys.readouterr().out
    assert "table (seeds 0, 1 (n=2)):" in text and re.search(r"\n\s+a\s+1\.5 ± 0\.7071\s+2 ± 0\n", text)
    assert "{'" not in text and "..." not in text
    # the machine formats
    assert cli.main(["results", "--profile", "smoke", "--out", out, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    alpha = data["chapters"][0]
    assert alpha["seeds"] == [0, 1] and alpha["headlines"][0]["key"] == "score" and alpha["headlines"][0]["n"] == 2
    assert cli.main(["results", "--profile", "smoke", "--out", out, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("chapter,title,key,headline,better,n,mean,std")
    assert any(r.startswith("01_alpha,Alpha,table.a.p,False,,2,1.5,0.7071") for r in rows)
    assert cli.main(["results", "--profile", "smoke", "--out", out, "--format", "md"]) == 0
    assert "| score | higher |" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_real_scheduler_and_worker_give_the_same_results(local_run, tmp_path):
    """`dask scheduler` and `dask worker` as separate processes: byte-identical JSON, save times."""
    base = local_run["base"]
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = _env(base)
    env.pop("GANREF_ROOT")  # the worker knows nothing of the project: the task carries the chapter
    logs = tmp_path / "dask.log"
    with open(logs, "w") as log:
        scheduler = subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                      address.rsplit(":", 1)[1], "--no-dashboard"], env=env, stdout=log, stderr=log)
        worker = subprocess.Popen([str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1",
                                   "--no-dashboard", "--host", "127.0.0.1"], env=env, cwd=tmp_path, stdout=log,
                                  stderr=log)
        try:
            out = tmp_path / "runs"
            proc = _cli(base, "run", "--profile", "smoke", "--seeds", "0", "1", "--scheduler", address, "--out", str(out))
            assert proc.returncode == 0, proc.stdout + proc.stderr + logs.read_text()[-3000:]
            assert f"4 task(s) on Dask scheduler {address}" in proc.stdout
        finally:
            for p in (worker, scheduler):
                p.send_signal(signal.SIGINT)
            for p in (worker, scheduler):
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
    local, remote = local_run["run"], out / "smoke"
    compared = 0
    for rel, data in _files(local).items():
        if rel.endswith(".json"):
            assert _normalized(remote / rel) == _normalized(local / rel), rel
            assert TIMES.sub("", data.decode()) != data.decode()  # the fields blanked out are there
            compared += 1
        elif rel.endswith(".npy"):
            assert (remote / rel).read_bytes() == data, rel
    assert compared == 4


def test_a_failing_chapter_is_named_with_its_seed_and_cell_and_the_others_finish(local_run):
    base, run = local_run["base"], local_run["run"]
    before = _files(run)
    proc = _cli(base, "run", "--profile", "smoke", "--seeds", "0", "1", "--jobs", "2", "--out", str(base / "runs"),
                GANREF_TEST_FAIL="02_beta:1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    message = ("02_beta seed 1: RuntimeError: planned failure of 02_beta at seed 1 (in cell In [5], line 2: "
               'raise RuntimeError(f"planned failure of {ch.name} at seed {ch.seed}"))')
    assert message in proc.stderr.splitlines()[-1]  # the last line of stderr names the failed task
    assert "1 of 4 task(s) failed" in proc.stderr
    # no results JSON stored for the failed task: the earlier one stays, byte for byte, with its set
    seed1 = run / "seeds" / "1"
    for rel in ("02_beta.json", "02_beta.ipynb", "02_beta_artifacts/samples.npy"):
        assert (seed1 / rel).read_bytes() == before[f"seeds/1/{rel}"], rel
    failed = report.load(seed1 / "failed" / "02_beta.json")
    assert failed["status"] == "failed" and failed["cell"]["execution_count"] == 5 and failed["cell"]["line"] == 2
    # the other tasks finished and replaced their results
    for rel in ("01_alpha.json", "02_beta.json", "seeds/1/01_alpha.json"):
        now = report.load(run / rel)
        assert now["status"] == "complete" and now["updated"] >= json.loads(before[rel])["updated"]
    assert not (run / "failed" / "02_beta.json").exists()
    # `ganref results` flags it, keeps counting the last complete run of seed 1
    table, flagged = runner.results_report("smoke", base / "runs")
    assert flagged == ["02_beta"] and "!! seed 1: FAILED: the last run" in table
    assert "02_beta: Beta  (profile smoke, device cpu, seeds 0, 1 (n=2)" in table


def test_results_page_has_the_cross_book_table_and_no_machine_path(local_run, tmp_path):
    run = local_run["run"]
    md = results_page.results_markdown(run, "smoke", {"01_alpha", "02_beta"}, tmp_path / "assets", "_build/results")
    lines = md.splitlines()
    top = lines.index("## Across the book")
    header = next(ln for ln in lines[top:] if ln.startswith("| method"))
    assert header == "| method | chapter | ring8 modes (of 8) ↑ | digits FID ↓ |"
    rows = [ln for ln in lines[lines.index(header) + 2:] if ln.startswith("|")][:2]
    assert rows[0].startswith("| Alpha sampler | [01](chapters/01_alpha.ipynb)") and "(n=2)" in rows[0]
    assert rows[1].startswith("| Beta sampler | [02](chapters/02_beta.ipynb)")
    assert lines.index("## Across the book") < lines.index("## [Alpha](chapters/01_alpha.ipynb)")
    # headlines: mean ± std over both seeds, what "better" means, the plot; the full record collapsed
    assert any(ln.startswith("| `score` | ↑ higher | ") and "± " in ln and "(n=2) | 0 | closed form" in ln
               for ln in lines)
    assert "![The headline numbers of Alpha over seeds](_build/results/01_alpha.png)" in lines
    assert (tmp_path / "assets" / "01_alpha.png").stat().st_size > 1000
    assert "````{dropdown} Full record: 9 rows" in lines and "| `table.a.p` | 1.5 ± 0.7071 (n=2) |  |  |  |" in lines
    csv = (tmp_path / "assets" / "results.csv").read_text().splitlines()
    assert len(csv) == 1 + 2 * 9 and "{download}`results.csv <_build/results/results.csv>`" in md
    # no truncated dict, no machine path, on the page or in the warnings of a flagged chapter
    assert not re.search(r"\{'|\.\.\.\s*\|", md)
    assert str(local_run["base"]) not in md and "/tmp/" not in md
    # every table keeps its columns (escaped pipes do not count)
    for table in re.findall(r"((?:^\|.*\n)+)", md, flags=re.M):
        counts = {row.replace("\\|", "").count("|") for row in table.splitlines()}
        assert len(counts) == 1, table


def _all_complete(run: Path) -> int:
    """Every file under ``run`` reads whole: JSON records, notebooks, arrays (temp files aside); return the count."""
    n = 0
    for path in run.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        if path.suffix == ".json":
            report.load(path)
        elif path.suffix == ".ipynb":
            nbformat.read(path, as_version=4)
        elif path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        n += 1
    return n


def _tree(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _json_files(folder: Path) -> list[Path]:
    """The JSON files under ``folder`` while a run changes it: ``os.walk`` skips a staging folder that
    vanishes between listing and reading it, where ``Path.rglob`` raised FileNotFoundError."""
    return [Path(d) / f for d, _, files in os.walk(folder) for f in files if f.endswith(".json")]


@pytest.mark.slow
def test_killing_the_command_mid_run_leaves_every_file_complete(tmp_path, throwaway_project):
    """`kill -9` or Ctrl-C while results arrive: every file is old or new, never half; no process is left behind."""
    import psutil

    base = throwaway_project(tmp_path / "project", _chapters(scale=100.0))
    run = base / "runs" / "smoke"
    args = [sys.executable, "-m", "ganref.pipeline.cli", "run", "--profile", "smoke", "--seeds", "0", "1",
            "--jobs", "2", "--out", str(base / "runs")]
    killed = 0
    # kill -9 once 1 result is stored, then Ctrl-C once 3 are (of 4 tasks; the first run's stay)
    for sig, kill_after in ((signal.SIGKILL, 1), (signal.SIGINT, 3)):
        proc = subprocess.Popen(args, cwd=base, env=_env(base, GANREF_TEST_SLEEP="1"), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        children: set[int] = set()
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            children |= set(_tree(proc.pid))
            stored = [p for p in _json_files(run) if "running" not in p.parts]
            if len(stored) >= kill_after:
                proc.send_signal(sig)
                killed += 1
                break
            time.sleep(0.05)
        assert proc.wait(timeout=120) == (-9 if sig == signal.SIGKILL else 130)
        assert _all_complete(run) >= kill_after
        gone = time.monotonic() + 60  # workers exit when their parent dies, kernels when their worker does
        while time.monotonic() < gone and any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"
                                              for p in children):
            time.sleep(0.5)
        left = [p for p in children if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        assert left == [], f"processes left after {sig!r}: {left}"
    assert killed == 2
    # the runs the kills interrupted are flagged (the next run clears them: test_runner.py)
    table, flagged = runner.results_report("smoke", base / "runs")
    assert "was interrupted before it finished" in table and flagged


def test_seeds_are_checked_before_any_worker_starts(tmp_path, monkeypatch):
    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(runner.cluster, "connect", no_cluster)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.raises(ValueError, match=r"seeds must be distinct, got 1 more than once in \[0, 1, 1\]"):
        runner.run(None, "smoke", "cpu", [0, 1, 1], out=tmp_path)
    with pytest.raises(ValueError, match="seeds must name at least one seed"):
        runner.run(None, "smoke", "cpu", [], out=tmp_path)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 4294967295\] \(2\*\*32 - 1\), got -3"):
        runner.run(None, "smoke", "cpu", [0, -3], out=tmp_path)
    with pytest.raises(ValueError, match="--scheduler must be a Dask scheduler address"):
        runner.run(None, "smoke", "cpu", 0, out=tmp_path, scheduler=" ")
    # with a scheduler the device is the workers': its name is checked here, not this machine's GPUs
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(ValueError, match="device must be one of 'auto', 'cpu', 'cuda\\[:N\\]', 'mps', got 'tpu'"):
        runner.run(None, "smoke", "tpu", 0, out=tmp_path, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(AssertionError, match="a cluster was started"):  # cuda passes the checks, then connects
        runner.run(None, "smoke", "cuda", 0, out=tmp_path, scheduler="tcp://127.0.0.1:1")


def test_an_unreachable_scheduler_is_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runner.cluster, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    address = f"tcp://127.0.0.1:{_free_port()}"
    assert cli.main(["run", "01", "--profile", "smoke", "--device", "cpu", "--scheduler", address,
                     "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ganref run: error: cannot reach the Dask scheduler at '{address}' (--scheduler)")
    assert err.count("\n") == 0 and "dask scheduler" in err
    assert not any((tmp_path / "smoke").rglob("*.json")) and list((tmp_path / "smoke").rglob("running/*")) == []


def test_seed_folders_and_stats(tmp_path):
    """Seed 0 in runs/<profile>/, seed k in runs/<profile>/seeds/<k>/; a partial record is not counted."""
    run = tmp_path / "smoke"
    for seed, value in ((0, 1.0), (1, 3.0), (7, 5.0)):
        r = report.Report("01_x", "X", "smoke", "cpu", seed, runner.seed_folder(run, seed) / "01_x.json")
        r.record(v=value, name="same", steps=[1, 2])
        r.complete()
    partial = report.Report("01_x", "X", "smoke", "cpu", 9, runner.seed_folder(run, 9) / "01_x.json")
    partial.record(v=100.0)
    assert runner.seed_folder(run, 0) == run and runner.seed_folder(run, 7) == run / "seeds" / "7"
    (ch,) = results.gather(run)
    assert ch.seeds == [0, 1, 7] and ch.status() == "complete"
    stat = ch.stats()["v"]
    assert stat.text() == "3 ± 2 (n=3)" and stat.values == [1.0, 3.0, 5.0]
    assert ch.stats()["name"].text() == "same (n=3)" and ch.stats()["steps"].short() == "[1, 2]"
    assert ch.warnings == ["seed 9: INCOMPLETE: this record's run is 'running' (written "
                           f"{report.load(run / 'seeds' / '9' / '01_x.json')['updated']}), so its numbers may be partial",
                           "seed 9: its 'running' record is not counted in the statistics"]
