"""The ``ganref`` command line: run chapters, print results, build the site, fetch data.

Errors are one line on stderr, ``ganref <command>: error: ...``, naming the option, variable or
file at fault, with exit status 2. ``ganref run`` exits 1 when a task (chapter, seed) failed, naming
each with the cell that raised, and 130 when interrupted (Ctrl-C); ``ganref results`` exits 1 when
it flags a chapter (its last run failed or did not finish, or its record is incomplete).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ganref.utils import PROFILES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganref", description="Run and read the ganref book's chapters.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute chapters x seeds as Dask tasks into <out>/<profile>/")
    r.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    r.add_argument("--profile", choices=PROFILES, default=None, help="compute budget (default: $GANREF_PROFILE or cpu)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda[:N] or mps (default: auto)")
    seeds = r.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, nargs="+", default=None, metavar="S",
                       help="seeds, 0 to 2**32 - 1: one task per chapter and seed (default: 0)")
    seeds.add_argument("--seed", type=int, default=None, metavar="S", help="one seed (the same as --seeds S)")
    r.add_argument("--jobs", type=int, default=1, help="worker processes of the local Dask cluster (default: 1)")
    r.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster, e.g. tcp://host:8786 (default: a local cluster)")
    r.add_argument("--out", default="runs", help="output folder (default: runs)")

    s = sub.add_parser("results", help="print each chapter's numbers over seeds (exit 1 if a chapter is flagged)")
    s.add_argument("--profile", choices=PROFILES, default=None)
    s.add_argument("--out", default="runs")
    s.add_argument("--format", choices=("text", "md", "csv", "json"), default="text",
                   help="text (default), md (Markdown), csv or json (the full record over seeds)")
    s.add_argument("--all", action="store_true", help="every number, not only the headlines and referenced ones")

    sub.add_parser("list", help="list the chapters")

    b = sub.add_parser("book", help="build the site from the executed notebooks of a profile")
    b.add_argument("--profile", choices=PROFILES, default=None)
    b.add_argument("--out", default="runs", help="folder holding <profile>/ runs (default: runs)")

    d = sub.add_parser("data", help="data sets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="download a data set into $GANREF_DATA (default ./data)")
    f.add_argument("name")
    f.add_argument("--root", default=None)
    return p


def _path_source(args: argparse.Namespace) -> str:
    """Which option or variable set the folder a command writes or reads, for error messages."""
    if args.command == "data":
        from ganref.datasets import DATA_ENV

        if args.root is not None:
            return f"--root {args.root!r}"
        if os.environ.get(DATA_ENV):
            return f"${DATA_ENV}={os.environ[DATA_ENV]!r}"
        return f"the default ./data (set ${DATA_ENV} or --root to change it)"
    if args.command == "book":
        return f"--out {args.out!r} and the book folder"
    return f"--out {args.out!r}" if hasattr(args, "out") else "the project folder"


def _os_error(err: OSError, args: argparse.Namespace) -> str:
    """One line for an OSError: what went wrong, at which path, set by which option or variable."""
    why = err.strerror or str(err)
    if isinstance(err, (FileExistsError, NotADirectoryError)):
        why += " (a file is where a folder is expected)"
    where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 else "") if err.filename else ""
    return f"{why}: {where or 'path unknown'} (from {_path_source(args)})"


def _book_folder() -> Path:
    """The repository's ``book/``: under ``$GANREF_ROOT``, else in the current folder or a parent."""
    if os.environ.get("GANREF_ROOT"):
        candidates = [Path(os.environ["GANREF_ROOT"]).resolve()]
    else:
        here = Path.cwd().resolve()
        candidates = [here, *here.parents]
    for d in candidates:
        if (d / "book" / "_config.yml").is_file():
            return d / "book"
    where = f"$GANREF_ROOT={os.environ['GANREF_ROOT']!r}" if os.environ.get("GANREF_ROOT") \
        else f"{candidates[0]} or its parents"
    raise ValueError(f"no book/_config.yml in {where}: `ganref book` builds the site of a ganref "
                     "repository; run it from the repository (the folder holding book/ and notebooks/), "
                     "or set $GANREF_ROOT to that folder")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from ganref.pipeline import runner

            seeds = args.seeds if args.seeds is not None else [0 if args.seed is None else args.seed]
            outcomes = runner.run(args.chapters, args.profile, args.device, seeds, args.jobs, args.out,
                                  scheduler=args.scheduler)
            failed = [o for o in outcomes if not o.ok]
            if failed:
                print(f"ganref run: {len(failed)} of {len(outcomes)} task(s) failed: "
                      + "; ".join(f"{o.chapter} seed {o.seed}: {o.error}" for o in failed), file=sys.stderr)
            return 1 if failed else 0
        if args.command == "results":
            from ganref.pipeline import runner

            table, flagged = runner.results_report(args.profile, args.out, show="all" if args.all else "headlines",
                                                   fmt=args.format)
            print(table, end="" if table.endswith("\n") else "\n")
            if flagged:
                print(f"ganref results: {len(flagged)} chapter(s) flagged (see '!!' lines): {', '.join(flagged)}",
                      file=sys.stderr)
            return 1 if flagged else 0
        if args.command == "list":
            from ganref.pipeline import runner

            for path in runner.list_chapters():
                print(path.stem)
            return 0
        if args.command == "book":
            from ganref.pipeline import runner, site
            from ganref.utils import resolve_profile

            runs = runner.out_folder(args.out)
            book = _book_folder()
            index = site.build_site(profile=resolve_profile(args.profile), runs_dir=runs, book_dir=book,
                                    js_dir=book.parent / "build" / "book-js")
            print(f"site built: open {index}")
            return 0
        if args.command == "data":
            from ganref import datasets

            if args.root is not None and not args.root.strip():
                raise ValueError(f"--root must name a folder, got {args.root!r} (leave it out for "
                                 f"${datasets.DATA_ENV}, else ./data)")
            path = datasets.fetch(args.name, root=args.root)
            print(f"{args.name} is in {path}")
            return 0
    except OSError as err:
        if err.errno is None:  # our own messages, e.g. FileNotFoundError("no results in ...: run ... first")
            print(f"ganref {args.command}: error: {err}", file=sys.stderr)
        else:
            print(f"ganref {args.command}: error: {_os_error(err, args)}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"ganref {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ganref {args.command}: interrupted; what was stored stays, unfinished runs are flagged "
              "until the next run", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
