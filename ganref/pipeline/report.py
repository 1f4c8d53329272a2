"""A chapter's results record: one JSON file, rewritten atomically on every ``record``, with a status.

Every write stamps ``"status"`` and ``"updated"`` (the time written, UTC). A record is
``"running"`` from its first write until the run completes; only then is it ``"complete"``:

- **Under the runner** (``ganref run``), the chapter writes into a temporary folder of its Dask
  task; when the notebook finishes, the task marks the record ``"complete"`` and the runner writes
  the JSON, the executed notebook and the artifacts into a staging folder
  (``<seed folder>/running/<chapter>.<pid>.<tag>/``) and moves them into the seed folder together,
  replacing the previous run's. The seed folder is ``runs/<profile>/`` for seed 0 and
  ``runs/<profile>/seeds/<k>/`` for seed k. A failed run is marked ``"failed"`` (with its
  ``"error"`` and the ``"cell"`` that raised) and moved to ``<seed folder>/failed/`` instead: the
  last good results stay.
- **By hand** (JupyterLab, no ``results_path``), the record goes to
  ``<project>/runs/<profile>/interactive/<chapter>.json`` (``<project>``: ``$GANREF_ROOT``, else the
  nearest folder above the working directory holding ``notebooks/`` and ``pyproject.toml``, else
  the working directory), so a hand run never overwrites the runner's results. It stays
  ``"running"`` until :meth:`Report.complete` marks it ``"complete"``.

Layout::

    {"chapter": "01_vanilla_gan", "title": ..., "profile": "cpu", "device": "cpu", "seed": 0,
     "torch": "2.13.0", "status": "complete", "started": "...", "updated": "...",
     "results": {...}, "references": [...], "artifacts": {...},
     "headlines": [{"key": "ring8_modes_mean", "better": "higher", "label": ..., "target": null}],
     "benchmarks": {"GAN (NS)": {"ring8_modes": "ring8_modes_mean", ...}}}

A chapter declares its headline numbers (a handful, with what "better" means) with
:meth:`Report.headline` and its rows of the book's cross-chapter table with :meth:`Report.benchmark`;
:mod:`ganref.pipeline.headlines` holds the same declarations for chapters that do not make them yet.

:func:`collect` reads a run folder for ``ganref results`` and the site and says, per chapter,
what a reader must be warned about (a failed, interrupted or incomplete last run).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganref.utils import _pid_alive as pid_alive, atomic_write, resolve_profile  # pid_alive: atomic_write's check

STATUSES = ("running", "complete", "failed")
#: What "better" means for a headline number: larger, smaller, or closer to a target (its reference).
BETTER = ("higher", "lower", "closer")
#: Sub-folders of ``runs/<profile>/``: the runner's staging area, failed runs, hand runs.
RUNNING, FAILED, INTERACTIVE = "running", "failed", "interactive"


def now() -> str:
    """The current time in UTC, ISO 8601 to the second: ``2025-01-31T12:00:00+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _plain(value: Any, key: str) -> Any:
    """Convert tensors and numpy values to JSON types; refuse NaN and infinities."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"result {key!r} is {value}: only finite numbers can be recorded")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"result {key!r} has type {type(value).__name__}: record numbers, strings, lists or dicts")


def hand_root() -> Path:
    """Where a chapter run by hand keeps ``runs/``: ``$GANREF_ROOT``, else the project above the cwd, else the cwd."""
    if os.environ.get("GANREF_ROOT"):
        return Path(os.environ["GANREF_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "notebooks").is_dir() and (d / "pyproject.toml").is_file():
            return d
    return here


class Report:
    """Collects a chapter's key numbers and writes them as JSON after each ``record``.

    Args:
        chapter: the chapter's name, e.g. ``"01_vanilla_gan"``.
        title: a human title for the results table.
        profile, device, seed: the run's parameters (recorded with the numbers).
        path: where to write (the runner passes a staging path); ``None`` (a run by hand) writes
            ``<project>/runs/<profile>/interactive/<chapter>.json`` (see the module docstring). A
            relative path is relative to ``<project>`` (a stored notebook names its results
            ``runs/<profile>/<chapter>.json``, so re-executing it writes there from any folder).

    The record's ``"status"`` is ``"running"`` until the runner or :meth:`complete` marks it.
    """

    def __init__(self, chapter: str, title: str, profile: str, device: str, seed: int,
                 path: str | os.PathLike | None = None):
        profile = resolve_profile(profile)
        self.path = Path(path) if path else hand_root() / "runs" / profile / INTERACTIVE / f"{chapter}.json"
        if not self.path.is_absolute():
            self.path = hand_root() / self.path
        self.data: dict[str, Any] = {
            "chapter": chapter, "title": title, "profile": profile, "device": str(device),
            "seed": int(seed), "torch": torch.__version__, "status": "running", "started": now(),
            "results": {}, "references": [],
        }

    def record(self, **results: Any) -> None:
        """Add or replace named results and rewrite the file: ``report.record(modes_ring8=7.7)``."""
        for k, v in results.items():
            self.data["results"][k] = _plain(v, k)
        self._write()

    def reference(self, key: str, value: float, source: str, note: str = "") -> None:
        """A published number to set beside ``results[key]`` in the results table."""
        self.data["references"] = [r for r in self.data["references"] if r["key"] != key]
        self.data["references"].append({"key": key, "value": _plain(value, key), "source": source, "note": note})
        self._write()

    def headline(self, key: str, better: str, label: str = "", target: float | None = None) -> None:
        """Declare ``results[key]`` one of the chapter's headline numbers (a handful per chapter).

        Args:
            key: a recorded result; a dotted path reaches into a dict (``"gan.fid"``).
            better: ``"higher"``, ``"lower"``, or ``"closer"`` (to ``target``, else to its reference).
            label: what the number is, in words (the results page shows it).
            target: the value that is best, for ``better="closer"`` (e.g. 1.0 for a ratio).

        ``ganref results`` and the results page show the headlines as mean ± std over seeds, beside
        the reference given with :meth:`reference`.
        """
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must name a recorded result, got {key!r}")
        if better not in BETTER:
            raise ValueError(f"better must be one of {', '.join(BETTER)}, got {better!r}")
        if target is not None:
            target = _plain(target, key)
            if isinstance(target, bool) or not isinstance(target, (int, float)):
                raise ValueError(f"target of {key!r} must be a number, got {target!r}")
        entry = {"key": key, "better": better, "label": str(label), "target": target}
        self.data["headlines"] = [h for h in self.data.get("headlines", []) if h["key"] != key] + [entry]
        self._write()

    def benchmark(self, method: str, **columns: str) -> None:
        """Name this chapter's results that fill a row of the book's cross-chapter table.

        ``report.benchmark("WGAN-GP", grid25_modes="table_grid25_wgan_gp_modes_mean", digits_fid="digits_fid")``:
        each column (see :data:`ganref.pipeline.headlines.BENCHMARKS`) names a recorded result.
        """
        from ganref.pipeline.headlines import BENCHMARKS

        if not isinstance(method, str) or not method.strip():
            raise ValueError(f"method must name the method of the row, got {method!r}")
        unknown = sorted(set(columns) - set(BENCHMARKS))
        if unknown or not columns:
            raise ValueError(f"benchmark columns must be among {', '.join(BENCHMARKS)}, got "
                             f"{', '.join(unknown) or 'none'}")
        for column, key in columns.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"column {column!r} must name a recorded result, got {key!r}")
        self.data.setdefault("benchmarks", {}).setdefault(method, {}).update(columns)
        self._write()

    def complete(self) -> None:
        """Mark the record ``"complete"``: call it at the end of a chapter run by hand.

        Under the runner this is optional (the runner marks a chapter complete when its notebook
        finishes); a ``record`` after ``complete`` makes the record ``"running"`` again.
        """
        self._write(status="complete")

    @property
    def artifacts_dir(self) -> Path:
        """``<results stem>_artifacts/`` beside the JSON: the run's arrays (final samples, ...)."""
        return self.path.with_name(self.path.stem + "_artifacts")

    def save_array(self, name: str, array: Any) -> Path:
        """Save ``array`` (tensor or NumPy) as ``<artifacts_dir>/<name>.npy``, atomically, and list it.

        Chapters save their final samples so that numbers can be recomputed without retraining:
        ``report.save_array("ring8_seed0_samples", samples)`` then ``np.load(path)``.
        """
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name) \
                or name.startswith("."):
            raise ValueError(f"name must be a file stem of letters, digits, '-', '_' or '.', got {name!r}")
        if isinstance(array, torch.Tensor):
            array = array.detach().cpu().numpy()
        if not isinstance(array, np.ndarray):
            raise ValueError(f"array {name!r} must be a torch tensor or numpy array, got {type(array).__name__}")
        if array.dtype == object:
            raise ValueError(f"array {name!r} holds Python objects: save numbers only (np.load refuses pickles)")
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        path = self.artifacts_dir / f"{name}.npy"
        atomic_write(path, buf.getvalue())
        self.data.setdefault("artifacts", {})[name] = {"file": f"{self.artifacts_dir.name}/{name}.npy",
                                                       "shape": list(array.shape), "dtype": str(array.dtype)}
        self._write()
        return path

    def _write(self, status: str = "running") -> None:
        self.data["status"] = status
        self.data["updated"] = now()
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results JSON written by :class:`Report`.

    Raises:
        ValueError: naming the file, when it is not UTF-8 JSON or not a ganref results file.
        OSError: the file cannot be read (the error carries its path).
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read results file {path}: not valid JSON ({err}); "
                         "re-run its chapter or delete the file") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or "chapter" not in data:
        raise ValueError(f"{path} is not a ganref results file (no 'chapter'/'results' keys)")
    return data


def mark(path: str | os.PathLike, status: str, **extra: Any) -> dict[str, Any]:
    """Set a results file's ``status`` (and any ``extra`` keys), stamp the time written, rewrite it."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    data = load(path)
    data.update({k: _plain(v, k) for k, v in extra.items()})
    data["status"], data["updated"] = status, now()
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    return data


@dataclass
class ChapterRun:
    """What one run folder says about a chapter: its last complete record and what to warn about.

    ``data``: the record in ``runs/<profile>/<chapter>.json`` (``None`` if there is none);
    ``failed``: the record in ``failed/`` when the last run failed after it; ``warnings``: one
    sentence per problem, empty when ``data`` is a complete run and nothing newer went wrong.
    """

    chapter: str
    data: dict[str, Any] | None
    failed: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.data is not None and not self.warnings


def collect(folder: str | os.PathLike) -> list[ChapterRun]:
    """Every chapter with a record in ``folder`` (``runs/<profile>``) or its ``failed/``, in order.

    Raises:
        ValueError, OSError: a results file that cannot be read (the message names it).
    """
    folder = Path(folder)
    done = {p.stem: p for p in folder.glob("[0-9][0-9]_*.json")}
    failed = {p.stem: p for p in (folder / FAILED).glob("[0-9][0-9]_*.json")}
    running: dict[str, list[tuple[Path, int]]] = {}
    for stage in (folder / RUNNING).glob("[0-9][0-9]_*.*.*"):
        m = re.fullmatch(r"(\d\d_.+)\.(\d+)\.[^.]+", stage.name)
        if m and stage.is_dir():
            running.setdefault(m.group(1), []).append((stage, int(m.group(2))))
    out = []
    for chapter in sorted(set(done) | set(failed) | set(running)):
        run = ChapterRun(chapter, load(done[chapter]) if chapter in done else None)
        written = run.data.get("updated", "") if run.data else ""
        if run.data is not None:
            status = run.data.get("status")
            if status is None:
                run.warnings.append(f"status unknown: written {written or 'at an unknown time'} by a ganref "
                                    "that did not record whether the run completed; re-run the chapter")
            elif status != "complete":
                run.warnings.append(f"INCOMPLETE: this record's run is {status!r} (written {written}), "
                                    "so its numbers may be partial")
        if chapter in failed:
            bad = load(failed[chapter])
            if run.data is None or bad.get("updated", "") >= written:
                run.failed = bad
                error = bad.get("error") or "no error recorded"
                kept = f"the numbers below are from the last complete run, written {written}" if run.data \
                    else "there are no complete results"
                run.warnings.append(f"FAILED: the last run (written {bad.get('updated', '?')}) failed: {error}; "
                                    f"{kept}; its outputs are in {folder / FAILED}")
        for stage, pid in running.get(chapter, []):
            when = _dt.datetime.fromtimestamp(stage.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
            state = "is still running" if pid_alive(pid) else "was interrupted before it finished"
            run.warnings.append(f"a run started {when} {state} (process {pid}, outputs in {stage})")
        out.append(run)
    return out
