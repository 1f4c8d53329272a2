"""Batch execution of chapters: jupytext -> papermill(profile, device, seed) -> runs/<profile>/.

``ganref run 01 --profile smoke`` turns ``notebooks/01_vanilla_gan.md`` into a notebook and executes
it with papermill (parameters injected after the cell tagged ``parameters``) in a staging folder,
``runs/smoke/running/01_vanilla_gan.<pid>.<tag>/``. Only when the notebook completes are its
executed notebook, results JSON (marked ``"complete"``) and artifacts moved, together, to
``runs/smoke/01_vanilla_gan.ipynb``, ``.json`` and ``_artifacts/``, replacing the previous run's.
A failed (or interrupted) run's outputs go to ``runs/smoke/failed/`` instead, its JSON marked
``"failed"`` with the error, and the last good results stay where they were.

Everything that can be checked before a kernel starts is checked first (:func:`check_options`):
profile, device, seed, jobs, the output folder and ``$OMP_NUM_THREADS``.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ganref.pipeline import report
from ganref.utils import PROFILES, check_positive_int, device as pick_device, resolve_profile

ROOT_ENV = "GANREF_ROOT"
#: Seeds the runner accepts: chapters derive further seeds from it (``seed + 30_000``, ...) and
#: NumPy's legacy seeding takes 32 bits, so one range that works everywhere.
MAX_SEED = 2**32 - 1


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


def _threads(jobs: int) -> int:
    """Threads per kernel: ``$OMP_NUM_THREADS`` if set, else the cores shared among the jobs."""
    raw = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not raw:
        return max(1, (os.cpu_count() or 1) // jobs)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"$OMP_NUM_THREADS must be a positive integer (threads per kernel), got "
                         f"{os.environ['OMP_NUM_THREADS']!r}: set it to e.g. 1, or unset it")
    return int(raw)


def check_options(profile: str | None, device: str, seed: int, jobs: int,
                  out: str | os.PathLike) -> tuple[str, Path, int]:
    """Validate a run's options before any kernel starts; return (profile, output folder, threads).

    Raises:
        ValueError: naming the option (or variable) and what was expected: an unknown profile or
            device, a device this machine lacks, a seed outside [0, 2**32 - 1], jobs < 1, an
            output folder that cannot be created or written (the path is named), a bad
            ``$OMP_NUM_THREADS``.
    """
    profile = resolve_profile(profile)
    check_positive_int("jobs", jobs)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, {MAX_SEED}] (2**32 - 1), got {seed!r}")
    dev = pick_device(device)  # ValueError for 'tpu', or 'cuda' on a machine without a GPU
    if dev.type == "cuda" and dev.index is not None:
        import torch

        if dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    threads = _threads(jobs)
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


def _mark_failed(results: Path, stem: str, profile: str, device: str, seed: int, error: str,
                 seconds: float) -> None:
    """Mark a staged results file ``"failed"`` with the error; write a fresh one if it is unusable."""
    try:
        report.mark(results, "failed", error=error, seconds=round(seconds, 1))
    except (OSError, ValueError):
        results.unlink(missing_ok=True)
        report.Report(stem, stem, profile, device, seed, results).record()
        report.mark(results, "failed", error=error, seconds=round(seconds, 1))


def _clear_stale_stages(running: Path, stem: str) -> None:
    """Remove staging folders of ``stem`` left by runner processes that no longer exist (``kill -9``)."""
    for stage in running.glob(f"{stem}.*.*"):
        m = re.fullmatch(re.escape(stem) + r"\.(\d+)\.[^.]+", stage.name)
        if m and stage.is_dir() and not report.pid_alive(int(m.group(1))):
            shutil.rmtree(stage, ignore_errors=True)


def run_chapter(source: Path, out_dir: Path, profile: str, device: str, seed: int,
                threads: int = 1, progress: bool = False) -> Outcome:
    """Execute one chapter with papermill; never raises for a failing chapter (the Outcome says why).

    The notebook runs in a staging folder under ``out_dir/running/``; on success its notebook, JSON
    (marked ``"complete"``) and artifacts replace those in ``out_dir``; on failure they replace those
    in ``out_dir/failed/`` (JSON marked ``"failed"`` with the error) and ``out_dir`` is left alone.
    A ``KeyboardInterrupt`` is handled like a failure, then raised again. The stored notebook's
    injected ``results_path`` names the stored JSON, so re-executing it writes there.
    """
    import jupytext
    import papermill

    stem, out_dir = source.stem, Path(out_dir).resolve()  # absolute: the kernel runs in notebooks/
    running = out_dir / report.RUNNING
    running.mkdir(parents=True, exist_ok=True)
    _clear_stale_stages(running, stem)
    stage = Path(tempfile.mkdtemp(prefix=f"{stem}.{os.getpid()}.", dir=running))
    notebook, results = stage / f"{stem}.ipynb", stage / f"{stem}.json"
    # The record exists (status "running") before the chapter's first record(): a run that fails
    # earlier still leaves a JSON that says so.
    report.Report(stem, stem, profile, device, seed, results).record()
    env_before = {k: os.environ.get(k) for k in ("GANREF_PROFILE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({"GANREF_PROFILE": profile, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    start = time.perf_counter()
    ok, error, interrupted = False, "", None
    try:
        source_nb = stage / f".{stem}.source.ipynb"
        jupytext.write(jupytext.read(source), source_nb)
        papermill.execute_notebook(
            str(source_nb), str(notebook), kernel_name="python3", cwd=str(source.parent),
            parameters={"profile": profile, "device": device, "seed": seed, "results_path": str(results)},
            progress_bar=progress, log_output=False,
        )
        ok = True
    except Exception as err:  # papermill.PapermillExecutionError, kernel failures, an unreadable source
        text = str(err).strip()
        error = f"{type(err).__name__}: {text.splitlines()[-1] if text else ''}".strip()
    except BaseException as err:  # KeyboardInterrupt, SystemExit: keep the outputs, then stop
        error, interrupted = f"interrupted ({type(err).__name__})", err
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    if ok:
        try:
            report.mark(results, "complete", seconds=round(seconds, 1))
        except (OSError, ValueError) as err:  # the chapter overwrote or removed its own results file
            ok, error = False, f"the chapter left no usable results file: {err}"
    dest = out_dir if ok else out_dir / report.FAILED
    try:
        if not ok:
            _mark_failed(results, stem, profile, device, seed, error, seconds)
        if notebook.is_file():  # its injected results_path names where the results now are
            escaped = [json.dumps(str(p))[1:-1] for p in (stage, dest)]
            notebook.write_text(notebook.read_text(encoding="utf-8").replace(*escaped), encoding="utf-8")
        _move_set(stage, dest, stem, stage / ".replaced")
        if ok:  # the last run did not fail: a failure kept from an earlier run is history
            _remove_set(out_dir / report.FAILED, stem)
    except OSError as err:  # disk full, permissions changed during the run, ...
        ok, error = False, f"could not store the run's outputs in {dest}: {err}"
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if interrupted is not None:
        raise interrupted
    return Outcome(stem, ok, seconds, str(dest / f"{stem}.ipynb"), str(dest / f"{stem}.json"), error)


def run(chapters: list[str] | None = None, profile: str | None = None, device: str = "auto", seed: int = 0,
        jobs: int = 1, out: str | os.PathLike = "runs") -> list[Outcome]:
    """Execute chapters into ``<out>/<profile>/`` with up to ``jobs`` kernels at once; print a summary.

    Raises:
        ValueError: before any kernel starts, for a bad option (see :func:`check_options`) or an
            unknown chapter.
    """
    profile, out_dir, threads = check_options(profile, device, seed, jobs, out)
    sources = select_chapters(chapters)
    if not sources:
        raise ValueError(f"no chapters found in {project_root() / 'notebooks'}")
    print(f"running {len(sources)} chapter(s) at profile {profile!r} on device {device!r}, seed {seed}, "
          f"{jobs} job(s) x {threads} thread(s) -> {out_dir}", flush=True)
    outcomes: list[Outcome] = []
    if jobs == 1:
        for s in sources:
            outcomes.append(run_chapter(s, out_dir, profile, device, seed, threads))
            _print_outcome(outcomes[-1])
    else:
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(run_chapter, s, out_dir, profile, device, seed, threads) for s in sources]
            for f in cf.as_completed(futures):
                outcomes.append(f.result())
                _print_outcome(outcomes[-1])
        outcomes.sort(key=lambda o: o.chapter)
    print(summary_table(outcomes), flush=True)
    return outcomes


def _print_outcome(o: Outcome) -> None:
    status = "ok" if o.ok else f"FAILED ({o.error}); outputs kept in {Path(o.results).parent}"
    print(f"  {o.chapter}: {status} in {o.seconds:.1f} s", flush=True)


def summary_table(outcomes: list[Outcome]) -> str:
    lines = [f"{'chapter':<28} {'status':<7} {'seconds':>8}  results"]
    for o in outcomes:
        n = ""
        if o.ok and Path(o.results).is_file():
            n = f"{len(report.load(o.results)['results'])} numbers in {o.results}"
        lines.append(f"{o.chapter:<28} {'ok' if o.ok else 'FAILED':<7} {o.seconds:8.1f}  {n or o.error}")
    return "\n".join(lines)


def results_report(profile: str | None = None, out: str | os.PathLike = "runs") -> tuple[str, list[str]]:
    """The results table of ``<out>/<profile>`` and the chapters it flags (failed, incomplete, stale).

    A chapter whose last run failed or did not finish is flagged in the table with the reason; when
    it has no complete run its partial numbers are not shown. Each heading says when its numbers
    were written.

    Raises:
        FileNotFoundError: no results in the folder.
        ValueError, OSError: a results file that cannot be read (the message names it).
    """
    profile = resolve_profile(profile)
    if out_folder(out).is_file():
        raise ValueError(f"--out {str(out)!r} is a file, not the folder that holds <profile>/ runs")
    folder = out_folder(out) / profile
    runs = report.collect(folder)
    if not runs:
        raise FileNotFoundError(f"no results in {folder}: run `ganref run --profile {profile}` first")
    lines = []
    for run in runs:
        data = run.data or run.failed or {"chapter": run.chapter}
        lines.append(f"\n## {data['chapter']}: {data.get('title', '')}  (profile {data.get('profile', '?')}, "
                     f"device {data.get('device', '?')}, seed {data.get('seed', '?')}, "
                     f"status {data.get('status', 'unknown')}, written {data.get('updated', '?')})")
        lines += [f"!! {w}" for w in run.warnings]
        if run.data is None:
            lines.append("(no complete results)")
            continue
        refs = {r["key"]: r for r in run.data.get("references", [])}
        lines.append(f"{'result':<36} {'ours':>14} {'paper':>10}  source")
        for key, value in run.data["results"].items():
            ref = refs.get(key)
            paper = _fmt(ref["value"]) if ref else ""
            src = ref["source"] if ref else ""
            lines.append(f"{key:<36} {_fmt(value):>14} {paper:>10}  {src}")
    flagged = [r.chapter for r in runs if not r.ok]
    return "\n".join(lines).lstrip("\n"), flagged


def results_table(profile: str | None = None, out: str | os.PathLike = "runs") -> str:
    """The results of every chapter run at ``profile``, with the papers' numbers beside them (flags included)."""
    return results_report(profile, out)[0]


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        s = str(v)
        return s if len(s) <= 14 else s[:11] + "..."
    return str(v)


__all__ = ["PROFILES", "list_chapters", "select_chapters", "check_options", "run_chapter", "run", "results_table",
           "results_report", "project_root"]
