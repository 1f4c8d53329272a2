"""Batch execution of chapters: one Dask task per (chapter, seed), outputs stored under runs/<profile>/.

``ganref run 01 02 --profile smoke --seeds 0 1`` submits four tasks (:mod:`ganref.pipeline.execute`)
to an embedded Dask ``LocalCluster`` (``--jobs`` single-threaded worker processes, started and
closed by the command), or with ``--scheduler tcp://host:8786`` to an existing Dask cluster whose
workers have ganref installed. A task executes its chapter with papermill in a private folder on
its worker and returns the executed notebook, results JSON and artifacts; this process stores them
(:func:`store`), so no shared file system is needed.

Where a run is stored: the run of seed 0 in ``runs/<profile>/`` (``NN_slug.ipynb``, ``.json``,
``_artifacts/``: the layout the site and earlier runs use), the run of any other seed ``k`` in
``runs/<profile>/seeds/<k>/``, the same layout (:func:`seed_folder`). Within a seed's folder, a
task's outputs are written into a staging folder ``running/<chapter>.<pid>.<tag>/`` and moved,
together, over the previous run's only when the chapter completed (JSON marked ``"complete"``). A
failed task's outputs go to ``failed/`` instead (JSON marked ``"failed"`` with the error and the
cell that raised), and the last good results stay where they were.

Everything that can be checked before a worker starts is checked first (:func:`check_options`):
profile, device, seeds, jobs, the output folder and ``$OMP_NUM_THREADS``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ganref.pipeline import cluster, report
from ganref.pipeline.execute import Task, TaskResult, execute
from ganref.pipeline.results import results_report  # `ganref results`: tables over seeds
from ganref.utils import PROFILES, atomic_write, check_positive_int, device as pick_device, resolve_profile

ROOT_ENV = "GANREF_ROOT"
#: Seeds the runner accepts: chapters derive further seeds from it (``seed + 30_000``, ...) and
#: NumPy's legacy seeding takes 32 bits, so one range that works everywhere.
MAX_SEED = 2**32 - 1
#: ``runs/<profile>/seeds/<k>/`` holds the run of seed ``k`` (seed 0 stays in ``runs/<profile>/``).
SEEDS = "seeds"


def project_root() -> Path:
    """The folder that holds ``notebooks/``: ``$GANREF_ROOT``, else the current folder or a parent, else the checkout."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "notebooks").is_dir() and (d / "pyproject.toml").is_file():
            return d
    return Path(__file__).resolve().parents[2]


def list_chapters(notebooks: Path | None = None) -> list[Path]:
    """Chapter sources ``NN_slug.md`` in order."""
    notebooks = notebooks or project_root() / "notebooks"
    return sorted(p for p in notebooks.glob("[0-9][0-9]_*.md"))


def select_chapters(names: list[str] | None, notebooks: Path | None = None) -> list[Path]:
    """Chapters matching ``names`` (``"01"``, ``"01_vanilla_gan"`` or ``"vanilla_gan"``); all when empty."""
    chapters = list_chapters(notebooks)
    if not names:
        return chapters
    picked = []
    for name in names:
        hits = [p for p in chapters if name in (p.stem, p.stem[:2], p.stem[3:])]
        if not hits:
            known = ", ".join(p.stem for p in chapters) or "none found"
            raise ValueError(f"chapter {name!r} not found; chapters are: {known}")
        picked += [h for h in hits if h not in picked]
    return picked


def out_folder(out: str | os.PathLike, option: str = "--out") -> Path:
    """``out`` as an absolute path; an empty string is an error (it is not the current folder)."""
    if not str(out).strip():
        raise ValueError(f"{option} must name a folder, got {str(out)!r}")
    return Path(out).expanduser().resolve()


def seed_folder(run_dir: str | os.PathLike, seed: int) -> Path:
    """Where the run of ``seed`` is stored: ``run_dir`` itself for seed 0, else ``run_dir/seeds/<seed>``."""
    return Path(run_dir) if seed == 0 else Path(run_dir) / SEEDS / str(seed)


def _threads(jobs: int) -> int:
    """Threads per kernel: ``$OMP_NUM_THREADS`` if set, else the cores shared among the jobs."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not raw:
        return max(1, (os.cpu_count() or 1) // jobs)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"$OMP_NUM_THREADS must be a positive integer (threads per kernel), got "
                         f"{os.environ['OMP_NUM_THREADS']!r}: set it to e.g. 1, or unset it")
    return int(raw)


def check_seeds(seeds: int | Sequence[int]) -> list[int]:
    """``seeds`` (one seed or several) as a list of distinct integers in [0, 2**32 - 1]."""
    many = [seeds] if isinstance(seeds, (int, float, str, bool)) or seeds is None else list(seeds)
    if not many:
        raise ValueError("seeds must name at least one seed, e.g. --seeds 0 1 2")
    for seed in many:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, {MAX_SEED}] (2**32 - 1), got {seed!r}")
    repeated = sorted({s for s in many if many.count(s) > 1})
    if repeated:
        raise ValueError(f"seeds must be distinct, got {', '.join(map(str, repeated))} more than once in {many}")
    return many


def check_options(profile: str | None, device: str, seeds: int | Sequence[int], jobs: int,
                  out: str | os.PathLike, scheduler: str | None = None) -> tuple[str, Path, int | None]:
    """Validate a run's options before any worker starts; return (profile, output folder, threads).

    With a ``scheduler`` the device runs elsewhere: only its name is checked here, and threads
    per kernel is ``$OMP_NUM_THREADS`` if set, else ``None`` (each worker shares its own cores).

    Raises:
        ValueError: naming the option (or variable) and what was expected: an unknown profile or
            device, a device this machine lacks, a seed outside [0, 2**32 - 1] or given twice,
            jobs < 1, an output folder that cannot be created or written (the path is named), a bad
            ``$OMP_NUM_THREADS``, an empty ``--scheduler``.
    """
    profile = resolve_profile(profile)
    check_positive_int("jobs", jobs)
    check_seeds(seeds)
    if scheduler is not None and not str(scheduler).strip():
        raise ValueError(f"--scheduler must be a Dask scheduler address such as tcp://host:8786, got {scheduler!r}")
    if scheduler is None:
        dev = pick_device(device)  # ValueError for 'tpu', or 'cuda' on a machine without a GPU
        if dev.type == "cuda" and dev.index is not None:
            import torch

            if dev.index >= torch.cuda.device_count():
                raise ValueError(f"device {device!r} was asked for but this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
    elif not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(device)):
        raise ValueError(f"device must be one of 'auto', 'cpu', 'cuda[:N]', 'mps', got {device!r}")
    threads: int | None = _threads(jobs)
    if scheduler is not None and not os.environ.get("OMP_NUM_THREADS", "").strip():
        threads = None
    out_dir = out_folder(out) / profile
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as err:
        blocker = next((p for p in (out_dir, *out_dir.parents) if p.exists()), out_dir)
        why = f"{blocker} is a file, not a folder" if not blocker.is_dir() \
            else f"{err.strerror or err} at {err.filename or out_dir}"
        raise ValueError(f"cannot write the output folder {out_dir} (--out {str(out)!r}): {why}") from None
    return profile, out_dir, threads


@dataclass
class Outcome:
    chapter: str
    ok: bool
    seconds: float
    notebook: str
    results: str
    error: str = ""
    seed: int = 0
    cell: dict[str, Any] | None = None


def _move_set(stage: Path, dest: Path, stem: str, trash: Path) -> None:
    """Move ``stem``'s artifacts, notebook and JSON from ``stage`` into ``dest``, replacing the old set.

    Whatever of the old set the new one lacks goes to ``trash``, so notebook, JSON and artifacts in
    ``dest`` always come from one run. The JSON moves last: once it is there, the set is.
    """
    dest.mkdir(parents=True, exist_ok=True)
    trash.mkdir(exist_ok=True)
    new_art, old_art = stage / f"{stem}_artifacts", dest / f"{stem}_artifacts"
    if old_art.exists():
        os.replace(old_art, trash / old_art.name)
    if new_art.exists():
        os.replace(new_art, old_art)
    for suffix in (".ipynb", ".json"):
        new, old = stage / f"{stem}{suffix}", dest / f"{stem}{suffix}"
        if new.exists():
            os.replace(new, old)
        elif old.exists():
            os.replace(old, trash / old.name)


def _remove_set(folder: Path, stem: str) -> None:
    """Delete ``stem``'s notebook, JSON and artifacts from ``folder`` (if there)."""
    for suffix in (".ipynb", ".json"):
        (folder / f"{stem}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(folder / f"{stem}_artifacts", ignore_errors=True)


def _clear_stale_stages(running: Path, stem: str) -> None:
    """Remove staging folders of ``stem`` left by runner processes that no longer exist (``kill -9``)."""
    for stage in running.glob(f"{stem}.*.*"):
        m = re.fullmatch(re.escape(stem) + r"\.(\d+)\.[^.]+", stage.name)
        if m and stage.is_dir() and not report.pid_alive(int(m.group(1))):
            shutil.rmtree(stage, ignore_errors=True)


def open_stage(out_dir: Path, stem: str, seed: int) -> Path:
    """A fresh staging folder for (chapter, seed): while it exists, ``ganref results`` says the run is on."""
    running = seed_folder(out_dir, seed) / report.RUNNING
    running.mkdir(parents=True, exist_ok=True)
    _clear_stale_stages(running, stem)
    return Path(tempfile.mkdtemp(prefix=f"{stem}.{os.getpid()}.", dir=running))


def shown_path(path: Path, out_dir: Path) -> str:
    """``path`` as a notebook shows it: relative to the repository, else to the folder holding ``--out``."""
    for base in (project_root(), out_dir.parent.parent):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            continue
    return path.name


def store(result: TaskResult | BaseException, out_dir: Path, stage: Path, task: Task) -> Outcome:
    """Write a task's outputs into ``stage``, then move them to the seed's folder (or its ``failed/``).

    ``result`` is an exception when the task itself failed on the cluster (a worker that died, a
    worker without ganref): a failed record with that error is stored. Every file is written
    atomically, the JSON last, and the set replaces the previous one only by renames.
    """
    stem, seed, folder = task.chapter, task.seed, seed_folder(out_dir, task.seed)
    if isinstance(result, BaseException):
        text = " ".join(str(result).split())
        result = TaskResult(stem, seed, False, 0.0, f"the task failed on the cluster: {type(result).__name__}: {text}")
    ok, error = result.ok, result.error
    dest = folder if ok else folder / report.FAILED
    results = stage / f"{stem}.json"
    try:
        for name, data in result.artifacts.items():
            atomic_write(stage / f"{stem}_artifacts" / name, data)
        if result.notebook is not None:  # paths the worker used -> where the files are now, repository-relative
            text = result.notebook.decode("utf-8")
            for old, new in ((result.workdir, shown_path(dest, out_dir)),
                             (str(Path(task.folder).parent) + "/" if task.folder else "", "")):
                if old:
                    text = text.replace(json.dumps(old)[1:-1], json.dumps(new)[1:-1])
            atomic_write(stage / f"{stem}.ipynb", text)
        if result.results is not None:
            atomic_write(results, result.results)
        try:  # stamp the time stored here (one clock for every worker), keep the task's status
            report.mark(results, "complete" if ok else "failed")
        except (OSError, ValueError):
            results.unlink(missing_ok=True)
            report.Report(stem, stem, task.profile, task.device, seed, results).record()
            report.mark(results, "failed", error=error, seconds=round(result.seconds, 1))
        _move_set(stage, dest, stem, stage / ".replaced")
        if ok:  # the last run did not fail: a failure kept from an earlier run is history
            _remove_set(folder / report.FAILED, stem)
    except OSError as err:  # disk full, permissions changed during the run, ...
        ok, error = False, f"could not store the run's outputs in {dest}: {err}"
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return Outcome(stem, ok, result.seconds, str(dest / f"{stem}.ipynb"), str(dest / f"{stem}.json"), error,
                   seed, result.cell)


def _task(source: Path, profile: str, device: str, seed: int, threads: int | None) -> Task:
    return Task(source.stem, source.read_text(encoding="utf-8"), profile, device, seed, threads,
                str(source.parent.resolve()))


def run_chapter(source: Path, out_dir: Path, profile: str, device: str, seed: int,
                threads: int | None = 1, progress: bool = False) -> Outcome:
    """Execute one chapter at one seed in this process (no Dask) and store it; never raises for a failing chapter.

    The same task and storage as :func:`run`, without a cluster: for a notebook or a debugger,
    and the baseline of the Dask overhead benchmark. A ``KeyboardInterrupt`` stores the outputs as
    a failed run, then is raised again.
    """
    out_dir = Path(out_dir).resolve()
    task = _task(source, profile, device, seed, threads)
    stage = open_stage(out_dir, source.stem, seed)
    result = execute(task, progress=progress)
    outcome = store(result, out_dir, stage, task)
    if result.interrupted:
        raise KeyboardInterrupt
    return outcome


def last_seconds(out_dir: Path, task: Task) -> float | None:
    """The wall time of the task's last stored run (complete or failed), or ``None`` if there is none."""
    folder = seed_folder(out_dir, task.seed)
    for path in (folder / f"{task.chapter}.json", folder / report.FAILED / f"{task.chapter}.json"):
        try:
            seconds = report.load(path).get("seconds")
        except (OSError, ValueError):
            continue
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds >= 0:
            return float(seconds)
    return None


def longest_first(out_dir: Path, tasks: Sequence[Task]) -> dict[tuple[str, int], int]:
    """Dask priorities that start the longest tasks first (by their last run), the never-run ones before all.

    With fewer workers than tasks, a long chapter started last keeps one worker busy while the others
    idle; starting it first shortens the whole run (the longest-processing-time rule).
    """
    known = {(t.chapter, t.seed): last_seconds(out_dir, t) for t in tasks}
    top = max([s for s in known.values() if s is not None], default=0.0)
    return {k: round(top + 1 if s is None else s) for k, s in known.items()}


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(chapters: list[str] | None = None, profile: str | None = None, device: str = "auto",
        seed: int | Sequence[int] = 0, jobs: int = 1, out: str | os.PathLike = "runs",
        scheduler: str | None = None, progress: bool = True) -> list[Outcome]:
    """Execute chapters x seeds as Dask tasks into ``<out>/<profile>/``; print a summary.

    Args:
        seed: one seed or several (``[0, 1, 2]``): one task per (chapter, seed).
        jobs: worker processes of the embedded ``LocalCluster`` (ignored with ``scheduler``).
        scheduler: the address of an existing Dask scheduler (``tcp://host:8786``); ``None`` starts
            a ``LocalCluster`` for this command and closes it at the end.
        progress: one progress bar over all tasks (on stderr).

    The local cluster's workers are started with ``spawn``: a script that calls ``run`` needs the
    ``if __name__ == "__main__":`` guard (the command line and notebooks do not).

    Tasks start longest first, by the wall time of their last stored run (:func:`longest_first`).
    Every finished task is stored as soon as it arrives; a failed one does not stop the others.
    On Ctrl-C (or SIGTERM) the tasks still running are cancelled and the cluster is closed; what
    was stored stays, and the unfinished tasks' staging folders say "interrupted" until the next run.

    Raises:
        ValueError: before any worker starts, for a bad option (see :func:`check_options`) or an
            unknown chapter; an unreachable scheduler.
    """
    seeds = check_seeds(seed)
    profile, out_dir, threads = check_options(profile, device, seeds, jobs, out, scheduler)
    sources = select_chapters(chapters)
    if not sources:
        raise ValueError(f"no chapters found in {project_root() / 'notebooks'}")
    tasks = [_task(s, profile, device, k, threads) for s in sources for k in seeds]
    where = f"Dask scheduler {scheduler}" if scheduler else \
        f"a local Dask cluster of {min(jobs, len(tasks))} worker(s) x {threads} thread(s)"
    print(f"running {len(sources)} chapter(s) x {len(seeds)} seed(s) ({', '.join(map(str, seeds))}) at profile "
          f"{profile!r} on device {device!r}, {len(tasks)} task(s) on {where} -> {out_dir}", flush=True)
    outcomes: list[Outcome] = []
    sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if sigterm is not None:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    stages: dict[tuple[str, int], Path] = {}
    try:
        with cluster.connect(min(jobs, len(tasks)), scheduler) as client:
            stages.update({(t.chapter, t.seed): open_stage(out_dir, t.chapter, t.seed) for t in tasks})
            order = longest_first(out_dir, tasks)
            for task, result in cluster.as_finished(client, execute, tasks, progress,
                                                    name=lambda t: f"{t.chapter}-seed{t.seed}",
                                                    priority=lambda t: order[(t.chapter, t.seed)]):
                outcomes.append(store(result, out_dir, stages.pop((task.chapter, task.seed)), task))
                cluster.say(_describe(outcomes[-1]))
    except Exception:  # not an interrupt (whose unfinished stages say "interrupted"): nothing is left half-done
        for stage in stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        raise
    finally:
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
    outcomes.sort(key=lambda o: (o.chapter, o.seed))
    print(summary_table(outcomes), flush=True)
    return outcomes


def _describe(o: Outcome) -> str:
    status = "ok" if o.ok else f"FAILED: {o.error}; outputs kept in {Path(o.results).parent}"
    return f"  {o.chapter} seed {o.seed}: {status} ({o.seconds:.1f} s)"


def summary_table(outcomes: list[Outcome]) -> str:
    lines = [f"{'chapter':<28} {'seed':>6} {'status':<7} {'seconds':>8}  results"]
    for o in outcomes:
        n = ""
        if o.ok and Path(o.results).is_file():
            n = f"{len(report.load(o.results)['results'])} numbers in {o.results}"
        lines.append(f"{o.chapter:<28} {o.seed:>6} {'ok' if o.ok else 'FAILED':<7} {o.seconds:8.1f}  {n or o.error}")
    return "\n".join(lines)


__all__ = ["PROFILES", "list_chapters", "select_chapters", "check_options", "check_seeds", "seed_folder",
           "run_chapter", "run", "store", "results_report", "longest_first", "project_root"]
