"""The site's results page: the cross-book table, each chapter's headlines over seeds, the full record.

Layout of ``book/results.md`` (MyST Markdown)::

    # Results                      what the numbers are; a link to all of them as CSV
    ## Across the book             one row per method with numbers: the shared benchmarks
    ## <chapter title>             run facts, warnings, the headline table (mean ± std, paper,
                                   source), a plot of every headline over seeds, and the full
                                   record in a collapsed dropdown (open when there are no headlines)
    ## Papers cited

Every number is ``mean ± std (n=k)`` over the seeds whose last run completed (a bare value for one
seed). Paths on the page are relative to the repository (``runs/<profile>/...``), never the
machine's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ganref.pipeline import results as res
from ganref.pipeline.headlines import BENCHMARKS

ARROW = {"higher": "↑", "lower": "↓", "closer": "→"}


def escape(text: str) -> str:
    """Keep a string from breaking a Markdown table row or becoming markup."""
    text = " ".join(text.split())
    return re.sub(r"([|\\`*_{}\[\]<>$])", r"\\\1", text)


def admonition(flags: list[str]) -> str:
    return "```{warning}\n" + "\n\n".join(escape(w) for w in flags) + "\n```"


def shown(text: str, run: Path) -> str:
    """``text`` with the run folder's absolute path replaced by ``<out name>/<profile>`` (``runs/cpu``)."""
    run = Path(run).resolve()
    return text.replace(str(run), f"{run.parent.name}/{run.name}")


def cell(value: Any) -> str:
    """A table cell for a recorded value: 4 significant digits, short lists in full."""
    if isinstance(value, bool) or value is None:
        return f"`{value}`"
    if isinstance(value, (int, float, list, tuple, dict)):
        return res.fmt(value)
    return escape(str(value))


def stat_cell(stat: res.Stat | None) -> str:
    if stat is None:
        return "—"
    if stat.numeric:
        return stat.text()
    return cell(stat.values[0]) if stat.n == 1 else escape(stat.text())


def _key(key: str) -> str:
    return f"`{key}`" if not set(key) & set("`|\n") else escape(key)


def cross_book(chapters: list[res.ChapterResults], links: dict[str, str]) -> list[str]:
    """The cross-book table: one row per (method, chapter) with a number; only the columns with numbers."""
    table: list[tuple[str, res.ChapterResults, dict[str, str]]] = []
    for ch in chapters:
        stats = ch.stats()
        for method, columns in ch.benchmarks().items():
            cells = {c: stats[k].text() for c, k in columns.items() if c in BENCHMARKS and k in stats
                     and stats[k].numeric}
            if cells:
                table.append((method, ch, cells))
    lines = ["## Across the book", ""]
    if not table:
        return lines + ["No chapter of this run records one of the shared benchmarks yet.", ""]
    used = [c for c in BENCHMARKS if any(c in cells for _, _, cells in table)]
    lines += ["The benchmarks the chapters share, one row per method: the toy mixtures of VEEGAN's Table 1",
              "(modes covered, share of high-quality samples, reverse KL), the digits protocol (FID, KID,",
              "precision, recall) and, where it applies, the cost of sampling. Each number is the mean ± std over",
              "seeds (n); the arrow says which way is better. Budgets differ between chapters: compare within a",
              "chapter first.", ""]
    header = ["method", "chapter", *[f"{BENCHMARKS[c][0]} {ARROW[BENCHMARKS[c][1]]}" for c in used]]
    lines += ["| " + " | ".join(escape(h) for h in header) + " |", "|" + " --- |" * len(header)]
    for method, ch, cells in table:
        where = f"[{ch.chapter[:2]}]({links[ch.chapter]})" if ch.chapter in links else ch.chapter[:2]
        where += "" if ch.ok else " (flagged)"
        lines.append("| " + " | ".join([escape(method), where, *[cells.get(c, "") for c in used]]) + " |")
    return lines + [""]


def _plot(ch: res.ChapterResults, path: Path) -> bool:
    """One small panel per numeric headline: each seed's value, the mean ± std, the paper's number."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stats, refs = ch.stats(), ch.references()
    heads = [h for h in ch.headlines() if h.key in stats and stats[h.key].numeric]
    if not heads:
        return False
    cols = min(4, len(heads))
    rows = -(-len(heads) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols, 2.4 * rows), squeeze=False)
    for ax, h in zip(axes.flat, heads):
        s = stats[h.key]
        ax.scatter([0.0] * s.n, s.values, s=18, alpha=0.6, label="seeds")
        ax.errorbar([0.3], [s.mean], yerr=[s.std or 0.0], fmt="o", color="black", capsize=4, label="mean ± std")
        if h.key in refs and isinstance(refs[h.key][0].get("value"), (int, float)):
            ax.axhline(refs[h.key][0]["value"], ls="--", color="tab:red", lw=1, label="paper")
        if h.target is not None:
            ax.axhline(h.target, ls=":", color="tab:green", lw=1, label="target")
        ax.set_xlim(-0.5, 0.8)
        ax.set_xticks([])
        ax.set_title(f"{h.key} {ARROW.get(h.better, '')}\n(n={s.n})", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(heads):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def chapter_section(ch: res.ChapterResults, run: Path, link: str | None, assets: Path | None,
                    assets_link: str) -> list[str]:
    d = ch.latest
    title = escape(str(d.get("title") or ch.chapter))
    heading = f"[{title}]({link})" if link else title
    meta = " · ".join([*(f"{k} `{d[k]}`" for k in ("profile", "device") if k in d),
                       f"seeds `{', '.join(map(str, ch.seeds)) or 'none'}` (n = {len(ch.seeds)})",
                       *(f"{'written' if k == 'updated' else k} `{d[k]}`" for k in ("torch", "status", "updated")
                         if k in d)])
    flags = [admonition([shown(w, run) for w in ch.warnings]), ""] if ch.warnings else []
    lines = [f"## {heading}", "", meta, "", *flags]
    if not ch.records:
        return lines + ["No complete results (a failed run's numbers are not shown).", ""]
    heads = ch.headlines()
    if heads:
        stats, refs = ch.stats(), ch.references()
        lines += ["| headline | better | ours: mean ± std (n) | paper | source |", "| --- | --- | --- | --- | --- |"]
        for h in heads:
            ref = (refs.get(h.key) or [None])[0]
            better = f"{ARROW[h.better]} {h.better}" + (f" (to {res.fmt(h.target)})" if h.target is not None else "")
            name = _key(h.key) + (f"<br>{escape(h.label)}" if h.label else "")
            lines.append("| " + " | ".join([name, better, stat_cell(stats.get(h.key)),
                                            cell(ref["value"]) if ref else "",
                                            escape(str(ref.get("source", ""))) if ref else ""]) + " |")
        lines.append("")
        if assets is not None and _plot(ch, assets / f"{ch.chapter}.png"):
            lines += [f"![The headline numbers of {title} over seeds]({assets_link}/{ch.chapter}.png)", ""]
    else:
        lines += ["This chapter declares no headline numbers yet: its full record follows.", ""]
    record = full_record(ch)
    rows = len(record) - 2
    summary = f"Full record: {rows} row{'' if rows == 1 else 's'}" + ("\n:open:" if not heads else "")
    lines += ["````{dropdown} " + summary, "", *record, "````", ""]
    return lines


def full_record(ch: res.ChapterResults) -> list[str]:
    """Every number (nested ones as dotted keys) beside its references: ``| result | value | reference | source | note |``."""
    rows = ["| result | value | reference | source | note |", "| --- | --- | --- | --- | --- |"]
    for r in res.rows(ch, "all"):
        value = stat_cell(r.stat) if r.stat is not None else ("—" if r.ref else "")
        if r.ref is None:
            rows.append(f"| {_key(r.key)} | {value} |  |  |  |")
        else:
            rows.append(f"| {_key(r.key)} | {value} | {cell(r.ref.get('value'))} | "
                        f"{escape(str(r.ref.get('source', '')))} | {escape(str(r.ref.get('note', '')))} |")
    if len(rows) == 2:
        rows.append("| (none recorded) | | | | |")
    return rows


def results_markdown(run: str | Path, profile: str, chapters: set[str] | None = None,
                     assets: Path | None = None, assets_link: str = "") -> str:
    """The results page of the run folder ``run`` (seed 0 there, other seeds in ``run/seeds/<k>/``).

    Args:
        chapters: stems of the chapters on the site; a heading links to its page when it is here.
        assets: where to write the plots and ``results.csv`` (``None``: neither); ``assets_link``
            is that folder as the page links it.
    """
    run = Path(run)
    chapters = chapters or set()
    links = {c: f"chapters/{c}.ipynb" for c in chapters}
    records = res.gather(run)
    lines = ["# Results", "",
             f"The key numbers each chapter recorded in the `{profile}` run, over every seed that was run",
             "(`ganref run --seeds 0 1 2`): mean ± std (n seeds), each beside the published number it is",
             "compared with, where there is one, and that number's source. They come from",
             f"`runs/{profile}/*.json` (seed 0) and `runs/{profile}/seeds/<k>/*.json` (seed k), written by the",
             "chapters as they ran; a `smoke` run is only a check that everything runs, and its numbers mean",
             "little.", ""]
    if assets is not None:
        assets.mkdir(parents=True, exist_ok=True)
        (assets / "results.csv").write_text(res.render_csv(records), encoding="utf-8")
        lines += [f"Every number of this run, one row per chapter and result with its value per seed: "
                  f"{{download}}`results.csv <{assets_link}/results.csv>`.", ""]
    if not records:
        lines += [f"No chapter recorded results in this run (no `runs/{profile}/NN_*.json`).", ""]
    else:
        lines += cross_book(records, links)
    for ch in records:
        lines += chapter_section(ch, run, links.get(ch.chapter), assets, assets_link)
    lines += ["## Papers cited", "", "The papers that the pages of this book cite, from `references.bib`.", "",
              "```{bibliography}", "```", ""]
    return "\n".join(lines) + "\n"
