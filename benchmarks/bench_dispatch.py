"""Dispatch overhead of `ganref run` (Dask) against executing the same chapters directly.

    python benchmarks/bench_dispatch.py dask   [CHAPTER ...]   # runner.run: a local cluster of 1 worker
    python benchmarks/bench_dispatch.py direct [CHAPTER ...]   # runner.run_chapter in this process

Both run the chapters one after another at the `smoke` profile, seed 0, 1 thread, through the same
task and storage code (papermill, staging, atomic renames), into a temporary folder; the only
difference is the cluster: start, the worker's imports, sending the chapter's text and the outputs
back, and closing. Time each as a whole process, alternating the two (`/usr/bin/time -v` or any
A/B harness), and divide the difference by the smoke book's direct time: the issue's target is
an overhead of at most 5 % for the whole `smoke` book. The default chapter is 06 (short).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ganref.pipeline import runner


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("dask", "direct"):
        print(__doc__)
        return 2
    mode, chapters = argv[0], argv[1:] or ["06"]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ganref-dispatch.") as tmp:
        out = Path(tmp) / "runs"
        if mode == "dask":
            outcomes = runner.run(chapters, "smoke", "cpu", 0, jobs=1, out=out, progress=False)
        else:
            outcomes = [runner.run_chapter(source, out / "smoke", "smoke", "cpu", 0, threads=1)
                        for source in runner.select_chapters(chapters)]
    seconds = time.perf_counter() - start
    print(f"{mode}: {len(outcomes)} chapter(s) in {seconds:.1f} s; chapter time "
          f"{sum(o.seconds for o in outcomes):.1f} s; all ok: {all(o.ok for o in outcomes)}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
