"""Tests for ganref/site.py: the results page, the run checks, and the built site in a real browser.

The slow tests build the site from a smoke run (the ``smoke_runs`` fixture in conftest.py) and open
every page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright) served from
127.0.0.1, with every request to another host blocked and recorded: the site must work offline.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from ganref.pipeline import results, site
from ganref.pipeline.report import Report

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# ---------------------------------------------------------------------------------------------
# Fast tests: the run checks and the results page.
# ---------------------------------------------------------------------------------------------

def _notebook(path: Path, executed: bool) -> None:
    cell = nbformat.v4.new_code_cell("1 + 1", execution_count=1 if executed else None)
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), cell]), path)


def test_missing_run_names_folder_and_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ganref run --profile smoke") as err:
        site.executed_notebooks(tmp_path / "runs" / "smoke")
    assert str(tmp_path / "runs" / "smoke") in str(err.value)
    (tmp_path / "runs" / "cpu").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"holds no executed notebooks.*ganref run --profile cpu"):
        site.executed_notebooks(tmp_path / "runs" / "cpu")


def test_unexecuted_notebook_is_refused_and_order_is_by_name(tmp_path):
    run = tmp_path / "smoke"
    run.mkdir()
    _notebook(run / "02_b.ipynb", executed=True)
    _notebook(run / "01_a.ipynb", executed=True)
    _notebook(run / ".01_a.source.ipynb", executed=False)  # the runner's temporary file: ignored
    assert [p.name for p in site.executed_notebooks(run)] == ["01_a.ipynb", "02_b.ipynb"]
    _notebook(run / "03_c.ipynb", executed=False)
    with pytest.raises(ValueError, match=r"03_c.ipynb.*never executed.*ganref run --profile smoke"):
        site.executed_notebooks(run)


def test_build_site_refuses_unknown_profile_and_missing_book(tmp_path):
    with pytest.raises(ValueError, match="profile must be one of"):
        site.build_site("huge", runs_dir=tmp_path, book_dir=REPO / "book")
    with pytest.raises(FileNotFoundError, match="has no _config.yml"):
        site.build_site("smoke", runs_dir=tmp_path, book_dir=tmp_path)
    # no run yet: the error comes before anything in book/ is touched
    with pytest.raises(FileNotFoundError, match=r"no run folder .*ganref run --profile full"):
        site.build_site("full", runs_dir=tmp_path / "runs", book_dir=REPO / "book")


def test_results_page_sets_references_beside_results(tmp_path):
    r = Report("01_x", "Vanilla | GAN <1>", "smoke", "cpu", 3, path=tmp_path / "01_x.json")
    r.record(modes=7.123456, steps=200, loss={"d": 0.5, "g": 1.25}, curve=[1.0, 2.0], flag=True)
    r.reference("modes", 8, "Metz et al. 2017, Table 1", "10 unrolling steps")
    r.reference("fid", 12.5, "Heusel et al. 2017", "")  # a reference with no result beside it
    r.record(**{"a|b": 1})
    r.complete()
    empty = Report("02_y", "Nothing yet", "smoke", "cpu", 0, path=tmp_path / "02_y.json")
    empty.record()
    empty.complete()
    (tmp_path / "notes.json").write_text("{}")  # not a chapter file: ignored
    md = site.results_markdown(tmp_path, "smoke", chapters={"01_x"})
    lines = md.splitlines()
    assert "## [Vanilla \\| GAN \\<1\\>](chapters/01_x.ipynb)" in lines  # linked, markup escaped
    assert "## Nothing yet" in lines  # no page on the site: not linked
    assert "| `modes` | 7.123 | 8 | Metz et al. 2017, Table 1 | 10 unrolling steps |" in lines
    assert "| `steps` | 200 |  |  |  |" in lines
    assert "| `loss.d` | 0.5 |  |  |  |" in lines and "| `loss.g` | 1.25 |  |  |  |" in lines
    assert "| `curve` | [1, 2] |  |  |  |" in lines
    assert "| `flag` | `True` |  |  |  |" in lines
    assert "| `fid` | — | 12.5 | Heusel et al. 2017 |  |" in lines
    assert "| (none recorded) | | | | |" in lines
    assert "| a\\|b | 1 |  |  |  |" in lines
    assert "profile `smoke` · device `cpu` · seeds `3` (n = 1)" in md  # the seeds counted, and how many
    assert "status `complete` · written `20" in md  # when the numbers were written
    assert "{warning}" not in md  # complete runs: nothing to flag
    # every table row has the header's 5 columns (escaped pipes do not count)
    rows = [ln.replace("\\|", "") for ln in lines if ln.startswith("|")]
    assert rows and all(row.count("|") == 6 for row in rows)
    assert "No chapter recorded results" in site.results_markdown(tmp_path / "none", "cpu")


def _record(path: Path, status: str, updated: str, **extra) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"chapter": path.stem, "title": path.stem.upper(), "profile": "smoke", "device": "cpu",
                                "seed": 0, "status": status, "updated": updated, "results": {"value": 1.5},
                                "references": [], **extra}))


def test_failed_and_incomplete_chapters_are_flagged_on_the_results_page_and_their_pages(tmp_path):
    """Issue 11, item 2: the site showed a failed or partial run's numbers like any others."""
    run = tmp_path / "smoke"
    _record(run / "01_good.json", "complete", "2025-01-02T00:00:00+00:00")
    _record(run / "02_then_failed.json", "complete", "2025-01-01T00:00:00+00:00")
    _record(run / "failed" / "02_then_failed.json", "failed", "2025-01-03T00:00:00+00:00", error="RuntimeError: boom")
    _record(run / "failed" / "03_never_ran.json", "failed", "2025-01-03T00:00:00+00:00", error="NameError: x",
            results={"value": 99.25})
    _record(run / "04_partial.json", "running", "2025-01-03T00:00:00+00:00")
    md = site.results_markdown(run, "smoke", chapters={"01_good", "02_then_failed"})
    sections = {sec.split("\n", 1)[0]: sec for sec in md.split("\n## ")[1:]}
    assert "{warning}" not in sections["[01\\_GOOD](chapters/01_good.ipynb)"]
    failed = sections["[02\\_THEN\\_FAILED](chapters/02_then_failed.ipynb)"]
    assert "```{warning}\nFAILED: the last run (written 2025-01-03" in failed and "RuntimeError: boom" in failed
    assert "written `2025-01-01T00:00:00+00:00`" in failed and "| `value` | 1.5 |" in failed
    never = sections["03\\_NEVER\\_RAN"]
    assert "there are no complete results" in never and "No complete results" in never and "99.25" not in never
    assert "INCOMPLETE: this record's run is 'running'" in sections["04\\_PARTIAL"]
    # the chapter pages: a warning under the title of the flagged one only
    for stem in ("01_good", "02_then_failed"):
        _notebook(run / f"{stem}.ipynb", executed=True)
    notebooks = site.executed_notebooks(run)
    site.copy_chapters(run, notebooks, tmp_path / "chapters")
    good = nbformat.read(tmp_path / "chapters" / "01_good.ipynb", as_version=4)
    flagged = nbformat.read(tmp_path / "chapters" / "02_then_failed.ipynb", as_version=4)
    assert (tmp_path / "chapters" / "01_good.ipynb").read_bytes() == (run / "01_good.ipynb").read_bytes()
    assert len(flagged.cells) == len(good.cells) + 1 and flagged.cells[0].source == "# T"
    assert flagged.cells[1].source.startswith("```{warning}\nFAILED: the last run")


def test_external_assets_finds_remote_scripts_and_styles(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.html").write_text(
        '<script src="../_static/require.js"></script><script src="https://cdn.example/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/css"><link rel="canonical" href="https://x.example/">'
        '<a href="https://arxiv.org/abs/1406.2661">paper</a><img src="data:image/png;base64,AAAA">')
    assert site.external_assets(tmp_path) == ["sub/a.html: https://cdn.example/x.js",
                                              "sub/a.html: //fonts.example/css"]


FAKE_NPM = """\
import io, json, os, sys, tarfile
args = sys.argv[1:]
assert args[0] == "pack", args
dest = args[args.index("--pack-destination") + 1]
out = []
for spec in [a for a in args[1:] if "@" in a[1:] and not a.startswith("-")]:
    name, version = spec.rsplit("@", 1)
    filename = name.replace("@", "").replace("/", "-") + "-" + version + ".tgz"
    with tarfile.open(os.path.join(dest, filename), "w:gz") as tar:
        for member, text in [("package/package.json", json.dumps({"name": name, "version": version})),
                             ("package/dist/a.js", "// " + name)]:
            info = tarfile.TarInfo(member)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    out.append({"filename": filename})
print(json.dumps(out))
"""


def test_install_js_unpacks_pinned_tarballs_checks_hashes_and_reuses_them(tmp_path):
    npm = tmp_path / "npm"
    npm.write_text(f"#!{sys.executable}\n{FAKE_NPM}")
    npm.chmod(0o755)
    meta = {"dependencies": {"@scope/pkg": "1.2.3", "other": "0.1.0"},
            "integrity": {"other": "sha512-" + "A" * 86 + "=="}}
    package_json = tmp_path / "package.json"
    package_json.write_text(json.dumps(meta))
    with pytest.raises(RuntimeError, match=r"other-0.1.0.tgz has sha512-.* but .* pins sha512-AAA"):
        site.install_js(package_json, tmp_path / "js", npm=str(npm))
    del meta["integrity"]
    package_json.write_text(json.dumps(meta))
    modules = site.install_js(package_json, tmp_path / "js", npm=str(npm))
    assert (modules / "@scope" / "pkg" / "dist" / "a.js").read_text() == "// @scope/pkg"
    assert json.loads((modules / "other" / "package.json").read_text())["version"] == "0.1.0"
    assert not list((tmp_path / "js" / "tarballs").iterdir())
    # already there at the pinned versions: npm is not needed again
    assert site.install_js(package_json, tmp_path / "js", npm=str(tmp_path / "no-npm")) == modules
    meta["dependencies"]["other"] = "0.2.0"
    package_json.write_text(json.dumps(meta))
    with pytest.raises(RuntimeError, match="is not on PATH"):
        site.install_js(package_json, tmp_path / "js", npm=str(tmp_path / "no-npm"))


def test_package_json_pins_exact_versions_with_hashes():
    meta = json.loads((REPO / "book" / "package.json").read_text())
    assert set(meta["dependencies"]) == {"@jupyter-widgets/html-manager", "requirejs", "mathjax"}
    assert all(v[0].isdigit() for v in meta["dependencies"].values()), "pin exact versions, no ranges"
    assert set(meta["integrity"]) == set(meta["dependencies"])


# ---------------------------------------------------------------------------------------------
# Slow tests: build the site from a smoke run and open it in Chromium.
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_site(smoke_runs, tmp_path_factory):
    """Build from the smoke run into a copy of book/ (the checkout's book/ is left alone)."""
    book = tmp_path_factory.mktemp("site") / "book"
    shutil.copytree(REPO / "book", book, ignore=shutil.ignore_patterns("_build", "chapters", "results.md"))
    start = time.perf_counter()
    index = site.build_site("smoke", runs_dir=smoke_runs.parent, book_dir=book,
                            js_dir=REPO / "build" / "book-js")
    print(f"site built in {time.perf_counter() - start:.1f} s")
    return index.parent


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


def _wait(page, what: str, timeout_ms: int = 60_000) -> None:
    """Wait for a selector (or a JS condition, when ``what`` has a ``(``); the tests judge the result."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        if "(" in what:
            page.wait_for_function(what, timeout=timeout_ms)
        else:
            page.wait_for_selector(what, state="visible", timeout=timeout_ms)
    except PlaywrightTimeout:
        pass


@pytest.fixture(scope="module")
def browsed(built_site, smoke_runs, tmp_path_factory):
    """Open every page of the site in headless Chromium; collect what a reader would see."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the site test needs Debian's Chromium, "
                    "install it with `apt-get install -y chromium` (CI installs it)")
    from playwright.sync_api import sync_playwright

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(built_site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    pages = ["index.html", "results.html"] + [f"chapters/{p.stem}.html" for p in site.executed_notebooks(smoke_runs)]
    shots = tmp_path_factory.mktemp("screenshots")
    seen: dict[str, dict] = {}
    blocked: list[str] = []
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM),
                headless=True, args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
            context.set_default_timeout(120_000)  # generous: CI machines can be loaded

            def only_local(route):
                if route.request.url.startswith(origin + "/"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", only_local)
            for name in pages:
                page = context.new_page()
                errors: list[str] = []
                page.on("console", lambda m, e=errors: e.append(f"console: {m.text}") if m.type == "error" else None)
                page.on("pageerror", lambda exc, e=errors: e.append(f"page error: {exc}"))
                page.on("response",
                        lambda r, e=errors: e.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
                page.goto(f"{origin}/{name}", wait_until="load")
                if name == "index.html":  # Jupyter Book's index.html redirects to the root page
                    page.wait_for_url(f"{origin}/intro.html", wait_until="load")
                info = page.evaluate("""() => ({
                    images: Array.from(document.querySelectorAll('article img, main img')).map(
                        i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth})),
                    math: document.querySelectorAll('.math').length,
                    widgetState: !!document.querySelector(
                        'script[type="application/vnd.jupyter.widget-state+json"]'),
                    tables: Array.from(document.querySelectorAll('article table')).map(t => t.innerText),
                    tableText: Array.from(document.querySelectorAll('article table')).map(t => t.textContent),
                    nav: Array.from(document.querySelectorAll('nav a.reference.internal')).map(
                        a => a.getAttribute('href')),
                })""")
                if info["widgetState"]:  # the embedder puts each widget's DOM in place of its view script
                    _wait(page, ".widget-slider, .jupyter-widgets")
                info["widgets_visible"] = page.locator(".widget-slider:visible, .jupyter-widgets:visible").count()
                if info["math"]:  # MathJax typesets after load, asynchronously
                    _wait(page, f"document.querySelectorAll('mjx-container').length >= {info['math']}")
                info["math_rendered"] = page.locator("mjx-container").count()
                page.wait_for_load_state("networkidle")
                page.screenshot(path=str(shots / (name.replace("/", "_") + ".png")), full_page=True)
                info["errors"] = errors
                seen[name] = info
                page.close()
            context.close()
    finally:
        server.shutdown()
        server.server_close()
    return {"pages": seen, "blocked": blocked, "screenshots": shots}


@pytest.mark.slow
def test_site_has_every_chapter_and_no_remote_assets(built_site, smoke_runs):
    stems = [p.stem for p in site.executed_notebooks(smoke_runs)]
    assert stems, "the smoke run has no chapters"
    for stem in stems:
        assert (built_site / "chapters" / f"{stem}.html").is_file()
    assert (built_site / "results.html").is_file()
    assert site.external_assets(built_site) == []
    for name in ("require.js", "embed-amd.js", "libembed-amd.js", "mathjax/tex-mml-chtml.js"):
        assert (built_site / "_static" / name).is_file(), name


@pytest.mark.slow
def test_pages_load_nothing_from_other_hosts_and_log_no_errors(browsed):
    assert browsed["blocked"] == []
    for name, info in browsed["pages"].items():
        assert info["errors"] == [], f"{name}: {info['errors']}"


@pytest.mark.slow
def test_navigation_lists_the_chapters_then_results(browsed, smoke_runs):
    nav = browsed["pages"]["index.html"]["nav"]
    expected = [f"chapters/{p.stem}.html" for p in site.executed_notebooks(smoke_runs)] + ["results.html"]
    assert [h for h in nav if h in expected] == expected


@pytest.mark.slow
def test_chapter_figures_are_loaded(browsed):
    chapters = {n: i for n, i in browsed["pages"].items() if n.startswith("chapters/")}
    assert chapters
    for name, info in chapters.items():
        assert info["images"], f"{name} shows no figure"
        for img in info["images"]:
            assert img["complete"] and img["width"] > 0, f"{name}: figure {img['src']} did not load"


@pytest.mark.slow
def test_widgets_render_offline(browsed):
    with_state = {n: i for n, i in browsed["pages"].items() if i["widgetState"]}
    assert with_state, "no chapter of the smoke run stores ipywidget state, so the widget check tests nothing"
    for name, info in with_state.items():
        assert info["widgets_visible"] > 0, f"{name}: the ipywidgets did not render"


@pytest.mark.slow
def test_math_is_typeset_by_local_mathjax(browsed):
    with_math = {n: i for n, i in browsed["pages"].items() if i["math"]}
    for name, info in with_math.items():
        assert info["math_rendered"] >= info["math"], \
            f"{name}: {info['math']} formulas but {info['math_rendered']} typeset"


@pytest.mark.slow
def test_results_page_has_each_chapters_numbers(browsed, smoke_runs):
    """Every recorded number is on the page (the full record), no cell shows a truncated dict."""
    tables = browsed["pages"]["results.html"]["tableText"]  # the full records are in closed dropdowns
    files = sorted(smoke_runs.glob("[0-9][0-9]_*.json"))
    assert files, "the smoke run recorded no results"
    text = "\n".join(tables)
    for path in files:
        data = json.loads(path.read_text())
        for key in data["results"]:
            assert key in text, f"{path.name}: {key} missing from the results tables"
        for ref in data["references"]:
            assert ref["source"] in text
    for chapter in results.gather(smoke_runs):  # each number over the seeds run: 4 digits, mean ± std (n)
        for key, stat in chapter.stats().items():
            if stat.numeric:
                assert stat.text() in text, f"{chapter.chapter}: {key} = {stat.text()} missing"
    assert "{'" not in text and "...}" not in text


@pytest.mark.slow
def test_no_page_shows_an_absolute_machine_path(built_site, smoke_runs):
    """Issue 19: executed pages showed ``results_path = "/.../runs/cpu/..."``."""
    machine = {str(REPO), str(smoke_runs.resolve().parent.parent), str(Path.home())}
    for page in sorted(built_site.rglob("*.html")):
        html = page.read_text(encoding="utf-8", errors="replace")
        found = [m for m in machine if m in html]
        assert not found, f"{page.relative_to(built_site)} shows {found}"
    stem = site.executed_notebooks(smoke_runs)[0].stem
    assert f"runs/smoke/{stem}.json" in (built_site / "chapters" / f"{stem}.html").read_text()  # relative
