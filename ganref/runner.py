"""Batch execution of chapters: jupytext -> papermill(profile, device, seed) -> runs/<profile>/.

``ganref run 01 --profile smoke`` turns ``notebooks/01_vanilla_gan.md`` into a notebook, executes it
with papermill (parameters injected after the cell tagged ``parameters``) and writes
``runs/smoke/01_vanilla_gan.ipynb`` and the chapter's results ``runs/smoke/01_vanilla_gan.json``.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ganref.utils import PROFILES, check_positive_int, resolve_profile

ROOT_ENV = "GANREF_ROOT"


def project_root() -> Path:
    """The folder that holds ``notebooks/``: ``$GANREF_ROOT``, else the current folder or a parent, else the checkout."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "notebooks").is_dir() and (d / "pyproject.toml").is_file():
            return d
    return Path(__file__).resolve().parent.parent


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


@dataclass
class Outcome:
    chapter: str
    ok: bool
    seconds: float
    notebook: str
    results: str
    error: str = ""


def run_chapter(source: Path, out_dir: Path, profile: str, device: str, seed: int,
                threads: int = 1, progress: bool = False) -> Outcome:
    """Execute one chapter with papermill; never raises for a failing chapter (the Outcome says why)."""
    import jupytext
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    notebook = out_dir / f"{source.stem}.ipynb"
    results = out_dir / f"{source.stem}.json"
    source_nb = out_dir / f".{source.stem}.source.ipynb"
    jupytext.write(jupytext.read(source), source_nb)
    env_before = {k: os.environ.get(k) for k in ("GANREF_PROFILE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update({"GANREF_PROFILE": profile, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(source_nb), str(notebook), kernel_name="python3", cwd=str(source.parent),
            parameters={"profile": profile, "device": device, "seed": seed, "results_path": str(results.resolve())},
            progress_bar=progress, log_output=False,
        )
        ok, error = True, ""
    except Exception as err:  # papermill.PapermillExecutionError and kernel failures
        ok, error = False, f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        source_nb.unlink(missing_ok=True)
    return Outcome(source.stem, ok, time.perf_counter() - start, str(notebook), str(results), error)


def run(chapters: list[str] | None = None, profile: str | None = None, device: str = "auto", seed: int = 0,
        jobs: int = 1, out: str | os.PathLike = "runs") -> list[Outcome]:
    """Execute chapters into ``<out>/<profile>/`` with up to ``jobs`` kernels at once; print a summary."""
    profile = resolve_profile(profile)
    check_positive_int("jobs", jobs)
    check_positive_int("seed", seed, minimum=0)
    sources = select_chapters(chapters)
    if not sources:
        raise ValueError(f"no chapters found in {project_root() / 'notebooks'}")
    out_dir = Path(out).resolve() / profile
    # Threads per kernel: $OMP_NUM_THREADS if set, else the cores shared among the jobs
    threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, (os.cpu_count() or 1) // jobs))
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
    status = "ok" if o.ok else f"FAILED ({o.error})"
    print(f"  {o.chapter}: {status} in {o.seconds:.1f} s", flush=True)


def summary_table(outcomes: list[Outcome]) -> str:
    from ganref import report

    lines = [f"{'chapter':<28} {'status':<7} {'seconds':>8}  results"]
    for o in outcomes:
        n = ""
        if o.ok and Path(o.results).is_file():
            n = f"{len(report.load(o.results)['results'])} numbers in {o.results}"
        lines.append(f"{o.chapter:<28} {'ok' if o.ok else 'FAILED':<7} {o.seconds:8.1f}  {n or o.error}")
    return "\n".join(lines)


def results_table(profile: str | None = None, out: str | os.PathLike = "runs") -> str:
    """The results of every chapter run at ``profile``, with the papers' numbers beside them."""
    from ganref import report

    profile = resolve_profile(profile)
    folder = Path(out) / profile
    files = sorted(folder.glob("[0-9][0-9]_*.json"))
    if not files:
        raise FileNotFoundError(f"no results in {folder}: run `ganref run --profile {profile}` first")
    lines = []
    for f in files:
        data = report.load(f)
        refs = {r["key"]: r for r in data.get("references", [])}
        lines.append(f"\n## {data['chapter']}: {data.get('title', '')}  "
                     f"(profile {data['profile']}, device {data['device']}, seed {data['seed']})")
        lines.append(f"{'result':<36} {'ours':>14} {'paper':>10}  source")
        for key, value in data["results"].items():
            ref = refs.get(key)
            paper = _fmt(ref["value"]) if ref else ""
            src = ref["source"] if ref else ""
            lines.append(f"{key:<36} {_fmt(value):>14} {paper:>10}  {src}")
    return "\n".join(lines).lstrip("\n")


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, dict)):
        s = str(v)
        return s if len(s) <= 14 else s[:11] + "..."
    return str(v)


__all__ = ["PROFILES", "list_chapters", "select_chapters", "run_chapter", "run", "results_table", "project_root"]
