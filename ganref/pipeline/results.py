"""Results over seeds: every chapter's numbers as mean ± std (n seeds), for ``ganref results`` and the site.

A run folder ``runs/<profile>/`` holds the run of seed 0; ``runs/<profile>/seeds/<k>/`` holds the
run of seed ``k`` (same layout; see :mod:`ganref.pipeline.runner`). :func:`gather` reads them all
and gives, per chapter, the statistics of every recorded number over the seeds whose last run
completed, the chapter's headline numbers (declared in its JSON, else from
:mod:`ganref.pipeline.headlines`), the papers' numbers and the warnings of every seed.

:func:`results_report` renders them as text (the terminal), Markdown, CSV or JSON. Nested results
(dicts) become sub-tables: a dict of dicts with the same keys is a matrix (rows x columns),
anything deeper a table of dotted keys; never a truncated dict.
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganref.pipeline import headlines as registry
from ganref.pipeline import report
from ganref.utils import resolve_profile

FORMATS = ("text", "md", "csv", "json")
SHOWS = ("headlines", "all")


def flatten(results: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"d": 1}}`` -> ``{"loss.d": 1}``, so every number gets its own row."""
    flat: dict[str, Any] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def fmt(v: Any) -> str:
    """A value in 4 significant digits; short lists in full, long ones by their length."""
    if v is None or isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        if len(v) <= 6 and all(_number(x) for x in v):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return f"({len(v)} values)"
    if isinstance(v, dict):
        return "{}"
    return str(v)


@dataclass
class Stat:
    """One result over seeds: its value per seed, and mean and sample std when it is a number."""

    seeds: list[int]
    values: list[Any]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def numeric(self) -> bool:
        return all(_number(v) for v in self.values)

    @property
    def mean(self) -> float | None:
        return float(statistics.fmean(self.values)) if self.numeric else None

    @property
    def std(self) -> float | None:
        """The sample standard deviation (n - 1); ``None`` for one seed or a non-number."""
        return float(statistics.stdev(self.values)) if self.numeric and self.n > 1 else None

    def short(self) -> str:
        """``mean ± std`` (a number), the value (one seed, or the same in all), or the values per seed."""
        if self.numeric:
            return fmt(self.values[0]) if self.n == 1 else f"{fmt(self.mean)} ± {fmt(self.std)}"
        texts = [fmt(v) for v in self.values]
        return texts[0] if len(set(texts)) == 1 else " | ".join(f"seed {s}: {t}" for s, t in zip(self.seeds, texts))

    def text(self) -> str:
        """``mean ± std (n=k)``; a bare value for one seed."""
        return self.short() if self.n == 1 else f"{self.short()} (n={self.n})"


@dataclass
class ChapterResults:
    """A chapter's results over seeds (see :func:`gather`)."""

    chapter: str
    title: str
    records: dict[int, dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    failed: dict[int, dict[str, Any]] = field(default_factory=dict)
    partial: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.records) and not self.warnings

    @property
    def seeds(self) -> list[int]:
        return sorted(self.records)

    @property
    def latest(self) -> dict[str, Any]:
        """The most recently written complete record (else the failed or partial one)."""
        pool = list(self.records.values()) or list(self.failed.values()) or list(self.partial.values()) \
            or [{"chapter": self.chapter}]
        return max(pool, key=lambda d: str(d.get("updated", "")))

    def stats(self) -> dict[str, Stat]:
        """Every recorded number (flattened) over the seeds that recorded it, in recording order."""
        out: dict[str, Stat] = {}
        for seed in self.seeds:
            for key, value in flatten(self.records[seed].get("results", {})).items():
                out.setdefault(key, Stat([], []))
                out[key].seeds.append(seed)
                out[key].values.append(value)
        return out

    def references(self) -> dict[str, list[dict[str, Any]]]:
        refs: dict[str, list[dict[str, Any]]] = {}
        for ref in self.latest.get("references", []):
            refs.setdefault(str(ref["key"]), []).append(ref)
        return refs

    def headlines(self) -> list[registry.Headline]:
        """Declared in the chapter's record, else the registry's, else none."""
        declared = self.latest.get("headlines")
        if declared:
            return [registry.Headline(h["key"], h["better"], h.get("label", ""), h.get("target")) for h in declared]
        return list(registry.HEADLINES.get(self.chapter, []))

    def benchmarks(self) -> dict[str, dict[str, str]]:
        """Method -> {benchmark column -> result key}: declared in the record, else the registry's."""
        return dict(self.latest.get("benchmarks") or registry.BENCHMARK_ROWS.get(self.chapter, {}))

    def status(self) -> str:
        """The status of the records counted (``complete``); a later failure shows in the warnings."""
        if not self.records:
            return str(self.latest.get("status", "unknown"))
        return ", ".join(sorted({str(r.get("status", "unknown")) for r in self.records.values()}))


def seed_folders(run_dir: str | os.PathLike) -> dict[int, Path]:
    """Seed -> the folder of its run: ``run_dir`` for seed 0, ``run_dir/seeds/<k>`` for seed k."""
    run_dir = Path(run_dir).resolve()
    folders = {0: run_dir} if run_dir.is_dir() else {}
    seeds = run_dir / "seeds"
    if seeds.is_dir():
        folders.update({int(p.name): p for p in seeds.iterdir() if p.is_dir() and p.name.isdigit()})
    return dict(sorted(folders.items()))


def gather(run_dir: str | os.PathLike) -> list[ChapterResults]:
    """Every chapter with a record in any seed's folder of ``run_dir``, in chapter order.

    A seed counts in the statistics when its folder holds a complete record (or a record of an
    older ganref that did not say); its failed, interrupted or partial runs are warnings, each
    prefixed with its seed (seed 0's without a prefix, as a single-seed run always showed them).

    Raises:
        ValueError, OSError: a results file that cannot be read (the message names it).
    """
    chapters: dict[str, ChapterResults] = {}
    for seed, folder in seed_folders(run_dir).items():
        for run in report.collect(folder):
            data = run.data or run.failed or {}
            ch = chapters.setdefault(run.chapter, ChapterResults(run.chapter, str(data.get("title") or run.chapter), {}))
            prefix = f"seed {seed}: " if seed != 0 else ""
            ch.warnings += [prefix + w for w in run.warnings]
            if run.failed is not None:
                ch.failed[seed] = run.failed
            if run.data is not None and run.data.get("status", "complete") == "complete":
                ch.records[int(run.data.get("seed", seed))] = run.data
            elif run.data is not None:
                ch.partial[seed] = run.data
                ch.warnings.append(f"{prefix}its {run.data.get('status')!r} record is not counted in the statistics")
    return [chapters[c] for c in sorted(chapters)]


# ---------------------------------------------------------------------------------------------
# Rows: what each output format shows of a chapter
# ---------------------------------------------------------------------------------------------

@dataclass
class Row:
    key: str
    stat: Stat | None
    ref: dict[str, Any] | None = None
    better: str = ""
    label: str = ""


def nested(ch: ChapterResults) -> set[str]:
    """The top-level results that are dicts: shown as sub-tables of their own."""
    return {k for k, v in ch.latest.get("results", {}).items() if isinstance(v, dict) and v}


def rows(ch: ChapterResults, show: str = "headlines", flat: bool = True) -> list[Row]:
    """Rows of the chapter's table: its headlines and every number with a reference, or everything.

    A chapter with no headlines (declared or in the registry) shows everything. A reference to a
    number the run did not record gets a row of its own (its value missing). ``flat=False`` leaves
    out the numbers inside nested results that are neither headlines nor referenced (their
    sub-tables show them).
    """
    stats, refs = ch.stats(), ch.references()
    heads = {h.key: h for h in ch.headlines()}
    keys = list(stats) if show == "all" or not heads else \
        [*heads, *[k for k in stats if k in refs and k not in heads]]
    if not flat:
        tops = nested(ch)
        keys = [k for k in keys if k in heads or k in refs or k.split(".", 1)[0] not in tops]
    out: list[Row] = []
    for key in keys:
        h = heads.get(key)
        better = "" if h is None else h.better + (f" to {fmt(h.target)}" if h.target is not None else "")
        for i, ref in enumerate(refs.pop(key, [None])):
            out.append(Row(key, stats.get(key) if i == 0 else None, ref, better, h.label if h else ""))
    for key, rest in refs.items():
        out += [Row(key, None, ref) for ref in rest]
    return out


def _seeds_text(ch: ChapterResults) -> str:
    return f"seeds {', '.join(map(str, ch.seeds)) or 'none'} (n={len(ch.seeds)})"


def _heading(ch: ChapterResults) -> str:
    d = ch.latest
    return (f"{ch.chapter}: {ch.title}  (profile {d.get('profile', '?')}, device {d.get('device', '?')}, "
            f"{_seeds_text(ch)}, status {ch.status()}, written {d.get('updated', '?')})")


def _subtables(ch: ChapterResults) -> list[tuple[str, list[str], list[list[str]]]]:
    """The chapter's nested results as (title, header, rows): matrices where the shape allows."""
    stats, latest, tops = ch.stats(), ch.latest.get("results", {}), nested(ch)
    out = []
    for top, value in latest.items():
        if top not in tops:
            continue
        inner = list(value.values())
        if all(isinstance(v, dict) and v and not any(isinstance(x, dict) for x in v.values()) for v in inner):
            cols = list(dict.fromkeys(k for v in inner for k in v))
            body = [[str(r)] + [stats[f"{top}.{r}.{c}"].short() if f"{top}.{r}.{c}" in stats else "" for c in cols]
                    for r in value]
            out.append((top, ["", *cols], body))
        else:
            body = [[k[len(top) + 1:], s.short()] for k, s in stats.items() if k.startswith(top + ".")]
            out.append((top, ["key", "value"], body))
    return out


def _text_table(header: list[str], body: list[list[str]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *body]]


def _md_table(header: list[str], body: list[list[str]]) -> list[str]:
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *body]]
    return ["| " + " | ".join(esc[0]) + " |", "|" + " --- |" * len(header)] + ["| " + " | ".join(r) + " |" for r in esc[1:]]


def _row_cells(r: Row) -> list[str]:
    ref = r.ref or {}
    return [r.key, r.better, r.stat.text() if r.stat else "—", fmt(ref["value"]) if r.ref else "",
            str(ref.get("source", ""))]


def render_text(chapters: list[ChapterResults], show: str = "headlines", markdown: bool = False) -> str:
    """Per chapter: a heading, its warnings, its table (headlines or all), its nested results as sub-tables."""
    table = _md_table if markdown else _text_table
    lines: list[str] = []
    for ch in chapters:
        lines += ["", f"## {_heading(ch)}"]
        lines += [f"!! {w}" for w in ch.warnings]
        if not ch.records:
            lines.append("(no complete results)")
            continue
        everything = show == "all" or not ch.headlines()
        body = [_row_cells(r) for r in rows(ch, show, flat=not everything)]
        lines += table(["result", "better", "mean ± std (n)", "paper", "source"], body) if body else ["(none recorded)"]
        if everything:
            for title, header, sub in _subtables(ch):
                lines += ["", f"{title} ({_seeds_text(ch)}):"] + (table(header, sub) if markdown else
                                                                   _text_table(header, sub, indent="  "))
    return "\n".join(lines).lstrip("\n") + "\n"


CSV_COLUMNS = ("chapter", "title", "key", "headline", "better", "n", "mean", "std", "min", "max", "seeds",
               "values", "paper", "source", "note", "status")


def records_table(chapters: list[ChapterResults]) -> list[dict[str, Any]]:
    """One row per (chapter, result): the full record over seeds, with references and headlines."""
    out = []
    for ch in chapters:
        heads = {h.key: h for h in ch.headlines()}
        for r in rows(ch, "all"):
            s, ref = r.stat, r.ref or {}
            num = s is not None and s.numeric
            out.append({"chapter": ch.chapter, "title": ch.title, "key": r.key, "headline": r.key in heads,
                        "better": heads[r.key].better if r.key in heads else "", "n": s.n if s else 0,
                        "mean": s.mean if num else None, "std": s.std if num else None,
                        "min": min(s.values) if num else None, "max": max(s.values) if num else None,
                        "seeds": s.seeds if s else [], "values": s.values if s else [],
                        "paper": ref.get("value"), "source": ref.get("source", ""), "note": ref.get("note", ""),
                        "status": ch.status()})
    return out


def render_csv(chapters: list[ChapterResults]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in records_table(chapters):
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else ("" if v is None else v)
                         for k, v in row.items()})
    return buf.getvalue()


def render_json(chapters: list[ChapterResults], profile: str) -> str:
    out = {"profile": profile, "chapters": []}
    table = records_table(chapters)
    for ch in chapters:
        d = ch.latest
        out["chapters"].append({
            "chapter": ch.chapter, "title": ch.title, "seeds": ch.seeds, "status": ch.status(),
            "updated": d.get("updated"), "device": d.get("device"), "warnings": ch.warnings,
            "headlines": [{**h.as_dict(), **_stat_dict(ch.stats().get(h.key))} for h in ch.headlines()],
            "results": [{k: v for k, v in r.items() if k not in ("chapter", "title", "status")}
                        for r in table if r["chapter"] == ch.chapter]})
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


def _stat_dict(s: Stat | None) -> dict[str, Any]:
    if s is None:
        return {"n": 0, "mean": None, "std": None, "values": []}
    return {"n": s.n, "mean": s.mean, "std": s.std, "seeds": s.seeds, "values": s.values}


def results_report(profile: str | None = None, out: str | os.PathLike = "runs", show: str = "headlines",
                   fmt: str = "text") -> tuple[str, list[str]]:
    """The results of ``<out>/<profile>`` over seeds, and the chapters it flags (failed, incomplete, stale).

    Args:
        show: ``"headlines"`` (each chapter's headline numbers and every number with a paper's
            reference) or ``"all"`` (every number, nested ones as sub-tables).
        fmt: ``"text"`` (the terminal), ``"md"``, ``"csv"`` (the full record, one row per
            chapter and result) or ``"json"``.

    Raises:
        FileNotFoundError: no results in the folder.
        ValueError, OSError: a bad option, or a results file that cannot be read (the message names it).
    """
    from ganref.pipeline.runner import out_folder

    profile = resolve_profile(profile)
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if show not in SHOWS:
        raise ValueError(f"show must be one of {', '.join(SHOWS)}, got {show!r}")
    if out_folder(out).is_file():
        raise ValueError(f"--out {str(out)!r} is a file, not the folder that holds <profile>/ runs")
    folder = out_folder(out) / profile
    chapters = gather(folder)
    if not chapters:
        raise FileNotFoundError(f"no results in {folder}: run `ganref run --profile {profile}` first")
    flagged = [c.chapter for c in chapters if not c.ok]
    if fmt == "csv":
        return render_csv(chapters), flagged
    if fmt == "json":
        return render_json(chapters, profile), flagged
    return render_text(chapters, show, markdown=fmt == "md"), flagged

