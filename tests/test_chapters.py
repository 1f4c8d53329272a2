"""Every chapter runs at the smoke profile through the runner and records finite numbers; re-executing
a chapter reproduces its printed key numbers (nbval) and its results JSON, so a seed fixes the results."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganref.pipeline import report, results, runner

REPO = Path(__file__).resolve().parent.parent
CHAPTERS = [p.stem for p in runner.list_chapters(REPO / "notebooks")]
pytestmark = pytest.mark.slow


def _numbers(value, key=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, value


TIMING_WORDS = ("seconds", "speedup")  # a results key holding a wall-clock measurement names one of these


def _without_timings(results: dict) -> dict:
    """Results minus wall-clock measurements: keys naming ``seconds`` or ``speedup`` (``sample_seconds``,
    ``seconds_per_1000``, ``speedup_vs_ddpm``, ``fit_seconds_ratio``), which no rerun reproduces."""
    return {k: v for k, v in results.items() if not any(w in k for w in TIMING_WORDS)}


def test_there_are_chapters():
    assert "01_vanilla_gan" in CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_runs_at_smoke_and_records_finite_numbers(smoke_runs, chapter):
    nb, js = smoke_runs / f"{chapter}.ipynb", smoke_runs / f"{chapter}.json"
    assert nb.is_file(), f"{chapter} produced no executed notebook"
    data = report.load(js)
    assert data["chapter"] == chapter and data["profile"] == "smoke" and data["seed"] == 0
    assert data["title"] and data["device"] and data["torch"]
    numbers = list(_numbers(data["results"]))
    assert len(numbers) >= 3, f"{chapter} recorded too few numbers: {data['results']}"
    bad = [(k, v) for k, v in numbers if not math.isfinite(v)]
    assert not bad, f"non-finite results: {bad}"
    for ref in data["references"]:
        assert ref["source"] and ref["key"] in data["results"], f"reference {ref} names no recorded result"
    # The executed notebook carries its parameters and no error outputs
    cells = json.loads(nb.read_text())["cells"]
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in cells)
    assert not [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_headline_and_benchmark_key_is_recorded(smoke_runs, chapter):
    """The headline numbers and cross-book rows named for a chapter (in ``pipeline/headlines.py`` or
    its own JSON) are keys its smoke run records, with numbers: a typo would show as a blank cell."""
    (ch,) = [c for c in results.gather(smoke_runs) if c.chapter == chapter] or [None]
    assert ch is not None, f"{chapter}: no results gathered"
    heads = [h.key for h in ch.headlines()]
    assert 3 <= len(heads) <= 8, f"{chapter} declares {len(heads)} headline numbers (a handful: 3 to 8)"
    rows = ch.benchmarks()
    assert chapter in ("05_frequency_spectra", "06_ntk_gans") or rows, f"{chapter} fills no row of the cross-book table"
    stats = ch.stats()
    named = heads + [key for columns in rows.values() for key in columns.values()]
    missing = sorted(k for k in named if k not in stats or not stats[k].numeric)
    assert not missing, f"{chapter} names results its smoke run did not record as numbers: {missing}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_rerun_reproduces_printed_numbers_and_results(smoke_runs, chapter, tmp_path):
    """nbval re-executes the executed notebook (its injected parameters included) and compares the
    outputs of the cells marked ``# NBVAL_CHECK_OUTPUT``; the rerun rewrites the same results JSON."""
    nb = tmp_path / f"{chapter}.ipynb"
    shutil.copy(smoke_runs / f"{chapter}.ipynb", nb)
    first = report.load(smoke_runs / f"{chapter}.json")
    cells = json.loads(nb.read_text())["cells"]
    assert any("NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in cells), \
        f"{chapter} marks no cell for output checking"
    # Point the rerun's results at a new file so the first run's record stays intact. The stored
    # notebook shows the path relative to the repository (``runs/smoke/<chapter>.json``).
    injected = "".join(next(c["source"] for c in cells if "injected-parameters" in c["metadata"].get("tags", [])))
    shown = re.search(r'^results_path = "([^"]+)"$', injected, re.M)
    assert shown and not Path(shown.group(1)).is_absolute(), f"{chapter} shows results_path {shown and shown.group(1)}"
    rerun_json = tmp_path / "rerun" / f"{chapter}.json"
    text = nb.read_text().replace(f'results_path = \\"{shown.group(1)}\\"', f'results_path = \\"{rerun_json}\\"')
    assert str(rerun_json) in text, "the rerun's results path was not set"
    nb.write_text(text)
    env = dict(os.environ, GANREF_PROFILE="smoke", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(nb)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbval found differences in {chapter}:\n{proc.stdout[-6000:]}"
    second = report.load(rerun_json)
    assert _without_timings(second["results"]) == _without_timings(first["results"])
