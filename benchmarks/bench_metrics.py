"""Time FID, KID and precision/recall on N x D features (default 10,000 x 64); print the numbers.

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_metrics.py [--n 10000] [--d 64] [--threads 1]``

Not a test: it checks nothing, it measures. The features are Gaussian (real) and a shifted,
rescaled Gaussian (fake), so every metric has work to do; the time of each call is the best of
``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from ganref import metrics


def best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (NumPy follows OMP_NUM_THREADS)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    real = rng.normal(size=(args.n, args.d))
    fake = 1.1 * rng.normal(size=(args.n, args.d)) + 0.1
    features = torch.from_numpy(rng.uniform(-1, 1, size=(args.n, 1, 8, 8))).float()

    print(f"{args.n} x {args.d} features, float64, {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    rows = [
        ("fid", lambda: metrics.fid(real, fake)),
        ("kid (100 x 1000)", lambda: metrics.kid(real, fake, subsets=100, subset_size=1000)),
        ("precision_recall (k=3)", lambda: metrics.precision_recall(real, fake, k=3)),
        ("digit_features (N images)", lambda: metrics.digit_features(features).shape),
    ]
    for name, fn in rows:
        seconds, out = best_time(fn, args.repeats)
        print(f"{name:28s} {seconds:8.3f} s   -> {out}")


if __name__ == "__main__":
    main()
