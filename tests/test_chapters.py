"""Every chapter runs at the smoke profile through the runner and records finite numbers; re-executing
a chapter reproduces its printed key numbers (nbval) and its results JSON, so a seed fixes the results."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganref.pipeline import report, runner

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


def _without_timings(results: dict) -> dict:
    """Results minus wall-clock measurements (keys ending in ``_seconds`` or ``_seconds_ratio``)."""
    return {k: v for k, v in results.items() if not k.endswith(("_seconds", "_seconds_ratio"))}


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
def test_rerun_reproduces_printed_numbers_and_results(smoke_runs, chapter, tmp_path):
    """nbval re-executes the executed notebook (its injected parameters included) and compares the
    outputs of the cells marked ``# NBVAL_CHECK_OUTPUT``; the rerun rewrites the same results JSON."""
    nb = tmp_path / f"{chapter}.ipynb"
    shutil.copy(smoke_runs / f"{chapter}.ipynb", nb)
    first = report.load(smoke_runs / f"{chapter}.json")
    cells = json.loads(nb.read_text())["cells"]
    assert any("NBVAL_CHECK_OUTPUT" in "".join(c["source"]) for c in cells), \
        f"{chapter} marks no cell for output checking"
    # Point the rerun's results at a new file so the first run's record stays intact
    rerun_json = tmp_path / f"{chapter}.json"
    text = nb.read_text().replace(json.dumps(str(smoke_runs / f"{chapter}.json"))[1:-1],
                                  json.dumps(str(rerun_json))[1:-1])
    nb.write_text(text)
    env = dict(os.environ, GANREF_PROFILE="smoke", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(nb)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbval found differences in {chapter}:\n{proc.stdout[-6000:]}"
    second = report.load(rerun_json)
    assert _without_timings(second["results"]) == _without_timings(first["results"])
