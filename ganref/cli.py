"""The ``ganref`` command line: run chapters, print results, build the site, fetch data."""

from __future__ import annotations

import argparse
import sys

from ganref.utils import PROFILES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ganref", description="Run and read the ganref book's chapters.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="execute chapters with papermill into <out>/<profile>/")
    r.add_argument("chapters", nargs="*", help="chapter numbers or names (default: all)")
    r.add_argument("--profile", choices=PROFILES, default=None, help="compute budget (default: $GANREF_PROFILE or cpu)")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--jobs", type=int, default=1, help="chapters run at once")
    r.add_argument("--out", default="runs", help="output folder (default: runs)")

    s = sub.add_parser("results", help="print the results table of a profile")
    s.add_argument("--profile", choices=PROFILES, default=None)
    s.add_argument("--out", default="runs")

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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from ganref import runner

            outcomes = runner.run(args.chapters, args.profile, args.device, args.seed, args.jobs, args.out)
            return 0 if all(o.ok for o in outcomes) else 1
        if args.command == "results":
            from ganref import runner

            print(runner.results_table(args.profile, args.out))
            return 0
        if args.command == "list":
            from ganref import runner

            for path in runner.list_chapters():
                print(path.stem)
            return 0
        if args.command == "book":
            from ganref import site

            from ganref.utils import resolve_profile

            index = site.build_site(profile=resolve_profile(args.profile), runs_dir=args.out)
            print(f"site built: open {index}")
            return 0
        if args.command == "data":
            from ganref import data

            path = data.fetch(args.name, root=args.root)
            print(f"{args.name} is in {path}")
            return 0
    except (ValueError, FileNotFoundError) as err:
        print(f"ganref {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
