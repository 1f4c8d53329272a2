"""Shared fixtures: ``smoke_runs``, one ``ganref run --profile smoke`` for the whole session, and
``throwaway_project``, which writes small chapters into a temporary project (``$GANREF_ROOT``) so
that runner tests exercise papermill and Dask for real without running the book's chapters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The jupytext front matter of every chapter (MyST Markdown, the python3 kernel).
FRONT_MATTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""

# Stands in for the book's chapters while notebooks/ has none: a chapter in the house format
# (parameters cell, a figure, an ipywidget, math, a results record), run by the real runner.
DEMO_CHAPTER = FRONT_MATTER + r'''
# Demo chapter

The minimax game $\min_G \max_D V(D, G)$ with

$$
V(D, G) = \mathbb{E}_{x \sim p_\mathrm{data}}[\log D(x)] + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))].
$$

```{code-cell} ipython3
:tags: [parameters]
profile = "cpu"
device = "auto"
seed = 0
results_path = None
```

```{code-cell} ipython3
import matplotlib.pyplot as plt
import numpy as np
from ganref.pipeline.report import Report

report = Report("01_demo", "Demo chapter", profile, "cpu", seed, path=results_path)
t = np.linspace(0.0, 2.0 * np.pi, 200)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(np.cos(t), np.sin(t))
ax.set_aspect("equal")
plt.show()
report.record(circumference=float(np.sum(np.hypot(np.diff(np.cos(t)), np.diff(np.sin(t))))))
report.reference("circumference", 2.0 * np.pi, "Euclid, Elements XII.2", "closed form")
```

```{code-cell} ipython3
import ipywidgets

ipywidgets.IntSlider(value=3, min=0, max=10, description="step")
```
'''


# A throwaway chapter in the house format: a parameters cell, then the given code cells.
THROWAWAY_HEAD = FRONT_MATTER + """
# {title}

```{{code-cell}} ipython3
:tags: [parameters]
profile = None
device = "auto"
seed = 0
results_path = None
```
"""


def write_chapter(notebooks: Path, stem: str, title: str, cells: list[str]) -> Path:
    """Write ``notebooks/<stem>.md``: the parameters cell, then one code cell per string in ``cells``."""
    notebooks.mkdir(parents=True, exist_ok=True)
    text = THROWAWAY_HEAD.format(title=title) + "".join(f"\n```{{code-cell}} ipython3\n{c.strip()}\n```\n"
                                                        for c in cells)
    path = notebooks / f"{stem}.md"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def throwaway_project():
    """``make(base, {stem: (title, [cell, ...])})`` -> a project folder holding ``notebooks/<stem>.md``."""
    def make(base: Path, chapters: dict[str, tuple[str, list[str]]]) -> Path:
        for stem, (title, cells) in chapters.items():
            write_chapter(base / "notebooks", stem, title, cells)
        return base

    return make


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a smoke run, ``<tmp>/runs/smoke``, holding ``NN_slug.ipynb`` and ``NN_slug.json``.

    Runs ``python -m ganref.pipeline.cli run --profile smoke --out <tmp>/runs`` once per session. While
    ``notebooks/`` holds no chapter yet, the runner is pointed (``$GANREF_ROOT``) at a temporary
    project holding one demo chapter, so the runner, papermill and everything after them are
    still exercised for real. Set ``$GANREF_SMOKE_RUNS`` to the ``smoke`` folder of an earlier
    run to reuse it instead.
    """
    reuse = os.environ.get("GANREF_SMOKE_RUNS")
    if reuse:
        if not any(Path(reuse).glob("*.ipynb")):
            pytest.fail(f"$GANREF_SMOKE_RUNS={reuse!r} holds no executed notebooks: make one with "
                        "`ganref run --profile smoke --out DIR` and point it at DIR/smoke")
        return Path(reuse)
    base = tmp_path_factory.mktemp("smoke")
    env = dict(os.environ, GANREF_PROFILE="smoke", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    if not sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md")):
        project = base / "project"
        (project / "notebooks").mkdir(parents=True)
        (project / "notebooks" / "01_demo.md").write_text(DEMO_CHAPTER, encoding="utf-8")
        env["GANREF_ROOT"] = str(project)
    cmd = [sys.executable, "-m", "ganref.pipeline.cli", "run", "--profile", "smoke", "--jobs", "2", "--out", str(base / "runs")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        pytest.fail(f"`{' '.join(cmd[1:])}` failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return base / "runs" / "smoke"
