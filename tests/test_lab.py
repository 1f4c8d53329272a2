"""`make lab`: a chapter double-clicked in JupyterLab's file browser opens as a notebook (issue 19, item 4).

JupyterLab opens a ``.md`` file in its text editor unless told otherwise; the repository ships the
setting that makes jupytext's "Jupytext Notebook" view the default (``.jupyter/labconfig/
default_setting_overrides.json``, found through ``$JUPYTER_CONFIG_PATH``, as ``make lab`` sets it) and a
kernel named as the chapters' headers name it (``.jupyter/kernels/python3``, on ``$JUPYTER_PATH``), so that
saving leaves a chapter's header as it was.
This test starts JupyterLab the way ``make lab`` does, with the user's own Jupyter folders replaced by
empty temporary ones, and drives it in headless Chromium (Debian's /usr/bin/chromium, driven by
playwright, as in test_site.py) as a reader would: double-click a chapter, run its first cells, save.
The chapter is a small throwaway one in a copy of ``notebooks/``, with the real chapters' header.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest

REPO = Path(__file__).resolve().parent.parent
SETTINGS = REPO / ".jupyter"
OVERRIDES = SETTINGS / "labconfig" / "default_setting_overrides.json"
KERNEL = SETTINGS / "kernels" / "python3" / "kernel.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHAPTER = "01_lab_check.md"

# The cells after the header: a title, the parameters cell every chapter has, a cell that imports
# ganref and prints, and a closing markdown cell (Shift+Enter on the last cell would append a new one).
CELLS = '''
# Lab check

```{code-cell} ipython3
:tags: [parameters]

profile = None  # "smoke" | "cpu" | "full"; None: $GANREF_PROFILE, else "cpu"
```

```{code-cell} ipython3
import ganref
from ganref.utils import resolve_profile

print(f"{ganref.__name__} imported; profile {resolve_profile(profile)}; 6 x 7 = {6 * 7}")
```

## The end
'''


def _chapter_header() -> str:
    """The YAML header of the book's first chapter, so that the throwaway chapter saves like a real one."""
    text = (REPO / "notebooks" / "01_vanilla_gan.md").read_text(encoding="utf-8")
    match = re.match(r"---\n.*?\n---\n", text, flags=re.S)
    assert match, "notebooks/01_vanilla_gan.md has no jupytext header"
    return match.group(0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on a copy of notebooks/ holding the throwaway chapter; yields (url, chapter path, log path)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the JupyterLab test needs Debian's Chromium, "
                    "install it with `apt-get install -y chromium` (`make chromium` does it as root)")
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    chapter = notebooks / CHAPTER
    chapter.write_text(_chapter_header() + CELLS, encoding="utf-8")
    home = tmp_path / "home"  # the user's own Jupyter folders: empty, so only the shipped settings count
    env = dict(os.environ, GANREF_PROFILE="smoke", OMP_NUM_THREADS="1", JUPYTER_CONFIG_PATH=str(SETTINGS),
               JUPYTER_PATH=str(SETTINGS),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"))
    port = _free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebooks}",
           "--IdentityProvider.token=", "--ServerApp.password=", "--ServerApp.allow_root=True",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = tmp_path / "jupyterlab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=notebooks, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer on {url} within 90 s:\n{log.read_text()[-4000:]}")
            time.sleep(0.5)
        yield url, chapter, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_shipped_settings_make_jupytext_the_default_viewer_for_markdown():
    overrides = json.loads(OVERRIDES.read_text(encoding="utf-8"))
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"markdown": "Jupytext Notebook", "myst": "Jupytext Notebook"}
    if shutil.which("git") and (REPO / ".git").exists():
        for path in (OVERRIDES, KERNEL):
            ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO)
            assert ignored.returncode == 1, f"{path.relative_to(REPO)} is hidden by .gitignore"


def test_shipped_kernel_matches_the_chapters_headers():
    """JupyterLab rewrites a notebook's ``kernelspec`` when the kernel's differs: on save the chapter's
    header would change (``display_name: Python 3 (ipykernel)``). The shipped kernel keeps it as written."""
    spec = json.loads(KERNEL.read_text(encoding="utf-8"))
    assert spec["argv"][0] == "python"  # jupyter_client runs it with the server's own interpreter
    header = {"name": KERNEL.parent.name, "display_name": spec["display_name"], "language": spec["language"]}
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.md")):
        kernelspec = jupytext.read(path).metadata.get("kernelspec")
        assert kernelspec == header, f"{path.name}: kernelspec {kernelspec} != the shipped kernel's {header}"


@pytest.mark.slow
def test_double_clicked_chapter_opens_as_a_notebook_runs_and_saves_unchanged(lab, tmp_path):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import sync_playwright

    url, chapter, log = lab
    before, written = chapter.read_bytes(), chapter.stat().st_mtime_ns
    shot = tmp_path / "jupyterlab.png"
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(60_000)
        page = context.new_page()
        try:
            page.goto(f"{url}/lab", wait_until="load")

            # 1. the file browser lists the chapter; a double click opens it
            item = page.locator(".jp-DirListing-item", has_text=CHAPTER)
            item.dblclick()

            # 2. a notebook opened, not the text editor
            main = page.locator("#jp-main-dock-panel")
            main.locator(".jp-NotebookPanel, .jp-FileEditor").first.wait_for(state="visible")
            assert main.locator(".jp-FileEditor").count() == 0, "the chapter opened in the text editor"
            assert main.locator(".jp-NotebookPanel").count() == 1
            opened = page.evaluate("""async () => {
                const app = window.jupyterapp, w = app.shell.currentWidget;
                await w.context.ready;
                return {default: app.docRegistry.defaultWidgetFactory(w.context.path).name, path: w.context.path,
                        cells: w.context.model.cells ? w.context.model.cells.length : null};
            }""")
            assert opened == {"default": "Jupytext Notebook", "path": CHAPTER, "cells": 4}, opened
            main.locator(".jp-Notebook .jp-Cell").nth(3).wait_for(state="visible")  # title, parameters, print, end

            # 3. run the first cells as a reader does: select the first cell, Shift+Enter three times
            page.wait_for_function("""() => {
                const s = window.jupyterapp.shell.currentWidget.sessionContext;
                return s && s.session && s.session.kernel && s.session.kernel.status === 'idle';
            }""")
            main.locator(".jp-Notebook .jp-Cell").first.locator(".jp-InputPrompt").click()
            for _ in range(3):
                page.keyboard.press("Shift+Enter")
            output = main.locator(".jp-OutputArea-output", has_text="ganref imported; profile smoke; 6 x 7 = 42")
            output.wait_for(state="visible")
            assert main.locator(".jp-Notebook .jp-Cell").count() == 4  # no cell appended
            assert main.locator(".jp-InputArea-prompt", has_text="[2]:").count() == 1

            # 4. save: the server writes the chapter through jupytext
            with page.expect_response(lambda r: r.request.method == "PUT" and CHAPTER in r.url) as saved:
                page.keyboard.press("Control+s")
            assert saved.value.status == 200, saved.value.status
            page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").wait_for(state="detached")
        except (PlaywrightTimeout, AssertionError):
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}\nJupyterLab log:\n{log.read_text()[-4000:]}")
            raise
        finally:
            context.close()
    assert chapter.stat().st_mtime_ns > written, "the server did not write the chapter"
    after = chapter.read_bytes()
    assert after == before, f"saving changed the chapter on disk:\n{after.decode()}"
