"""The ganref site: a Jupyter Book 1 built from the executed notebooks of one profile.

Pipeline (see DESIGN.md)::

    runs/<profile>/NN_slug.ipynb  --copy-->  book/chapters/NN_slug.ipynb  (seed 0; else the lowest seed's)
    runs/<profile>/NN_slug.json, runs/<profile>/seeds/<k>/NN_slug.json
                                  --mean ± std over seeds--> book/results.md (+ plots, results.csv
                                                             in book/_build/results/)
    npm packages in book/package.json --copy--> book/_build/offline/ (html_static_path)
    jupyter-book build book/ (execute_notebooks: "off") --> book/_build/html/index.html

Nothing is executed again: the site shows exactly the outputs the runner stored, and flags (with a
warning on its page and on the results page) a chapter whose last run failed or did not finish. It works
with no network: the ipywidgets embedder (with require.js) and MathJax are served from the
site's own ``_static`` folder instead of the public CDNs that Jupyter Book uses by default.

``ganref book --profile P`` calls :func:`build_site`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat

from ganref.pipeline import results_page
from ganref.pipeline.report import collect
from ganref.pipeline.results import seed_folders
from ganref.utils import resolve_profile

#: Where ``_config.yml`` points ``html_static_path``; relative to the book folder (git-ignored).
STATIC_DIR = Path("_build") / "offline"
#: Where the results page's plots and ``results.csv`` are written; relative to the book folder (git-ignored).
RESULTS_ASSETS = Path("_build") / "results"
#: Files copied from ``node_modules`` into :data:`STATIC_DIR` (target name -> source path).
WIDGET_JS = {
    "require.js": "requirejs/require.js",
    "embed-amd.js": "@jupyter-widgets/html-manager/dist/embed-amd.js",
    "libembed-amd.js": "@jupyter-widgets/html-manager/dist/libembed-amd.js",
}
#: Web fonts (Font Awesome) that the widget bundle's CSS loads from its own folder.
WIDGET_FONTS = ("*.woff2", "*.woff", "*.ttf", "*.eot", "*.svg")
#: Loaded before require.js on pages with widgets (``nb_ipywidgets_js`` in ``_config.yml``): tells
#: require.js where the widget bundle is, and hands MathJax 2 calls of the embedder to MathJax 3.
WIDGETS_SETUP_JS = Path(__file__).resolve().parents[1] / "assets" / "ganref-widgets.js"
#: Parts of the ``mathjax`` package's ``es5`` folder the page loads: the combined TeX/MathML
#: to HTML component (``mathjax_path`` in ``_config.yml``) and what it loads on demand
#: (TeX extensions, CHTML fonts, the menu and its accessibility parts).
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "sre", "adaptors")


def build_site(profile: str = "cpu", runs_dir: str | Path = "runs", book_dir: str | Path = "book",
               out_dir: str | Path | None = None, *, js_dir: str | Path | None = None,
               npm: str = "npm") -> Path:
    """Build the book's HTML from the executed notebooks of ``runs_dir/profile``.

    Args:
        profile: which run to publish: ``"smoke"``, ``"cpu"`` or ``"full"``.
        runs_dir: the runner's output folder, holding ``<profile>/NN_slug.ipynb`` and ``.json``.
        book_dir: the book's source folder (``_config.yml``, ``_toc.yml``, ``intro.md``,
            ``references.bib``, ``package.json``); ``chapters/`` and ``results.md`` are
            rewritten in it.
        out_dir: where Jupyter Book writes ``_build/``; ``None`` for ``book_dir``.
        js_dir: where the site's JavaScript packages are unpacked; ``None`` for
            ``build/book-js`` under the current directory. Reused while its versions match
            ``package.json``.
        npm: the npm executable.

    Returns:
        The path of ``<out_dir>/_build/html/index.html``.

    Raises:
        FileNotFoundError: no executed notebooks in ``runs_dir/profile``, or the book's
            config is missing.
        ValueError: a notebook in the run was never executed, or ``profile`` is unknown.
        RuntimeError: npm or jupyter-book failed (with the end of their output).
    """
    profile = resolve_profile(profile)
    book = Path(book_dir).resolve()
    for name in ("_config.yml", "_toc.yml", "intro.md", "package.json"):
        if not (book / name).is_file():
            raise FileNotFoundError(f"book_dir {str(book)!r} has no {name}: point book_dir at the book's source folder")
    run = Path(runs_dir) / profile
    notebooks = executed_notebooks(run)

    copy_chapters(run, notebooks, book / "chapters")
    # The page's plots and CSV: in the book's git-ignored _build/, copied into the site by Sphinx.
    assets = book / RESULTS_ASSETS
    if assets.exists():
        shutil.rmtree(assets)
    (book / "results.md").write_text(results_markdown(run, profile, {nb.stem for nb in notebooks}, assets,
                                                      RESULTS_ASSETS.as_posix()), encoding="utf-8")

    node_modules = install_js(book / "package.json", Path(js_dir) if js_dir else Path("build") / "book-js", npm=npm)
    copy_static(node_modules, book / STATIC_DIR)

    out = Path(out_dir).resolve() if out_dir is not None else book
    _run_jupyter_book(book, out)
    html = out / "_build" / "html"
    index = html / "index.html"
    if not index.is_file():
        raise RuntimeError(f"jupyter-book finished but wrote no {index}")
    remote = external_assets(html)
    if remote:
        warnings.warn(f"the built site loads {len(remote)} script(s) or stylesheet(s) from the network, "
                      f"so it will not work offline: {remote[:5]}", stacklevel=2)
    return index


def executed_notebooks(run: str | Path) -> list[Path]:
    """The executed notebooks of one run folder, one per chapter, in file-name (chapter) order.

    A chapter's page is its seed-0 run (``run/NN_slug.ipynb``); a chapter run only at other seeds
    shows its lowest seed's (``run/seeds/<k>/NN_slug.ipynb``).

    Raises:
        FileNotFoundError: the folder is missing or holds no ``.ipynb``; the message names
            the command that makes them.
        ValueError: a notebook has code cells but none was executed.
    """
    run = Path(run)
    profile = run.name
    hint = f"run the chapters first: `ganref run --profile {profile}`"
    if not run.is_dir():
        raise FileNotFoundError(f"no run folder {str(run)!r}: {hint}")
    pages: dict[str, Path] = {}
    for folder in seed_folders(run).values():  # seed 0 first, then the others in order
        for p in sorted(folder.glob("*.ipynb")):
            if not p.name.startswith("."):
                pages.setdefault(p.stem, p)
    notebooks = [pages[stem] for stem in sorted(pages)]
    if not notebooks:
        raise FileNotFoundError(f"{str(run)!r} holds no executed notebooks (*.ipynb): {hint}")
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if code and all(c.get("execution_count") is None for c in code):
            raise ValueError(f"{str(path)!r} was never executed (no code cell has run): {hint}")
    return notebooks


def copy_chapters(run: Path, notebooks: list[Path], chapters: Path) -> None:
    """Copy the run's notebooks into a fresh ``chapters`` folder; a flagged chapter's page gets a warning.

    A page from another seed than 0 says which seed it shows. Paths in the warnings are shown
    relative to the repository (``runs/<profile>/...``).
    """
    if chapters.exists():
        shutil.rmtree(chapters)
    chapters.mkdir()
    records: dict[Path, dict[str, Any]] = {}
    for nb in notebooks:  # a fresh mtime, so Sphinx re-reads a page even from an older run
        folder = nb.parent
        if folder not in records:
            records[folder] = {r.chapter: r for r in collect(folder)}
        flags = records[folder][nb.stem].warnings if nb.stem in records[folder] \
            else [f"no results record beside it in {folder}"]
        notes = [] if folder.resolve() == Path(run).resolve() else \
            [f"```{{note}}\nThis page shows the run of seed {folder.name}: seed 0 of this chapter was not run.\n```"]
        if not flags and not notes:
            shutil.copyfile(nb, chapters / nb.name)
            continue
        page = nbformat.read(nb, as_version=4)  # the warning goes under the page's title cell
        extra = notes + ([results_page.admonition([results_page.shown(w, Path(run)) for w in flags])] if flags else [])
        for i, text in enumerate(extra):
            page.cells.insert(min(1 + i, len(page.cells)), nbformat.v4.new_markdown_cell(text))
        nbformat.write(page, chapters / nb.name)


def results_markdown(run: str | Path, profile: str, chapters: set[str] | None = None,
                     assets: Path | None = None, assets_link: str = "") -> str:
    """The results page of a run folder (see :mod:`ganref.pipeline.results_page`).

    Args:
        run: a run folder holding ``NN_slug.json`` files written by :class:`ganref.pipeline.report.Report`
            for seed 0 and ``seeds/<k>/NN_slug.json`` for other seeds (and ``failed/``, ``running/``: a
            chapter whose last run failed or did not finish is flagged).
        profile: the run's profile (for the page's heading).
        chapters: stems of the chapters on the site; a chapter's heading links to its page
            when its stem is here.
        assets: where the page's plots and ``results.csv`` go (``None``: none are made), linked
            from the page as ``assets_link``.

    Returns:
        MyST Markdown text.
    """
    return results_page.results_markdown(run, profile, chapters, assets, assets_link)


def install_js(package_json: str | Path, js_dir: str | Path, npm: str = "npm") -> Path:
    """Unpack the npm packages pinned in ``package_json`` into ``js_dir/node_modules``.

    Each package is fetched as one tarball with ``npm pack name@version`` (the site uses only
    prebuilt files, so no dependency tree is installed), checked against the sha512 pinned in
    ``package_json["integrity"]``, and unpacked. Packages already there at the pinned version are
    kept, so only the first build needs the registry.

    Returns:
        The ``node_modules`` folder.

    Raises:
        RuntimeError: npm is missing, ``npm pack`` failed (offline, for example), or a tarball's
            hash differs from the pinned one.
    """
    package_json, js_dir = Path(package_json), Path(js_dir).resolve()
    meta = json.loads(package_json.read_text(encoding="utf-8"))
    wanted: dict[str, str] = meta["dependencies"]
    pinned: dict[str, str] = meta.get("integrity", {})
    node_modules = js_dir / "node_modules"
    todo = {n: v for n, v in wanted.items() if _installed_version(node_modules, n) != v}
    if not todo:
        return node_modules
    exe = shutil.which(npm)
    if exe is None:
        raise RuntimeError(f"npm ({npm!r}) is not on PATH: install Node.js and npm (Debian: `apt-get install -y npm`); "
                           "the site needs it once to fetch its JavaScript packages")
    tarballs = js_dir / "tarballs"
    tarballs.mkdir(parents=True, exist_ok=True)
    specs = [f"{n}@{v}" for n, v in todo.items()]
    proc = subprocess.run([exe, "pack", *specs, "--json", "--loglevel=error", "--pack-destination", str(tarballs)],
                          cwd=js_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`npm pack {' '.join(specs)}` failed ({proc.returncode}); the first build of the site "
                           f"needs the npm registry:\n{(proc.stdout + proc.stderr)[-3000:]}")
    for name, info in zip(todo, json.loads(proc.stdout)):
        tgz = tarballs / info["filename"]
        digest = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        if name in pinned and digest != pinned[name]:
            raise RuntimeError(f"{tgz.name} has {digest} but {package_json} pins {pinned[name]}: refusing to use it")
        target = node_modules / name
        with tempfile.TemporaryDirectory(dir=js_dir) as tmp:
            with tarfile.open(tgz) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(tmp, filter="data")
                else:  # Python < 3.11.4: the tarball's hash is pinned above
                    tar.extractall(tmp)
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(tmp) / "package"), target)
        tgz.unlink()
    missing = [f"{n}@{v}" for n, v in wanted.items() if _installed_version(node_modules, n) != v]
    if missing:
        raise RuntimeError(f"unpacking into {node_modules} did not give {', '.join(missing)}")
    return node_modules


def _installed_version(node_modules: Path, name: str) -> str | None:
    meta = node_modules / name / "package.json"
    if not meta.is_file():
        return None
    return json.loads(meta.read_text(encoding="utf-8")).get("version")


def copy_static(node_modules: str | Path, static: str | Path) -> None:
    """Copy the widget JavaScript and MathJax from ``node_modules`` into the static folder ``static``."""
    node_modules, static = Path(node_modules), Path(static)
    if static.exists():
        shutil.rmtree(static)
    static.mkdir(parents=True)
    for target, source in WIDGET_JS.items():
        shutil.copy2(node_modules / source, static / target)
    dist = node_modules / "@jupyter-widgets" / "html-manager" / "dist"
    for pattern in WIDGET_FONTS:
        for font in dist.glob(pattern):
            shutil.copy2(font, static / font.name)
    shutil.copyfile(WIDGETS_SETUP_JS, static / "ganref-widgets.js")
    es5 = node_modules / "mathjax" / "es5"
    for part in MATHJAX_PARTS:
        src, dst = es5 / part, static / "mathjax" / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)


def _run_jupyter_book(book: Path, out: Path) -> None:
    """``jupyter-book build`` with the interpreter running ganref; raise with its output on failure."""
    launcher = "import sys; from jupyter_book.cli.main import main; sys.argv[0] = 'jupyter-book'; sys.exit(main())"
    cmd = [sys.executable, "-c", launcher, "build", str(book), "--builder", "html", "--path-output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"jupyter-book build of {book} failed ({proc.returncode}):\n{output[-4000:]}")
    for line in output.splitlines():
        if "WARNING" in line or "ERROR" in line:
            print(line, file=sys.stderr)


class _AssetParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        url = None
        if tag == "script":
            url = a.get("src")
        elif tag == "link" and set((a.get("rel") or "").split()) & {"stylesheet", "preload", "modulepreload"}:
            url = a.get("href")
        elif tag in ("img", "iframe"):
            url = a.get("src")
        if url and re.match(r"^(https?:)?//", url):
            self.urls.append(url)


def external_assets(html_dir: str | Path) -> list[str]:
    """Scripts, stylesheets, images and frames that the built pages load from other hosts.

    An empty list means every page is served by the site itself (it works offline).
    """
    found: list[str] = []
    for page in sorted(Path(html_dir).rglob("*.html")):
        parser = _AssetParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        found += [f"{page.relative_to(html_dir)}: {u}" for u in parser.urls]
    return found
