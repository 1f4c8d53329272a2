"""Retrain the digits feature extractor and write ``ganref/assets/digits_cnn.pt`` atomically.

Usage: ``python scripts/train_classifier.py [--seed 0] [--epochs 30] [--out PATH]``

Training is deterministic on CPU (one thread, fixed seed): the same seed on the same machine
writes the same weights. It takes about 10 s on one core.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from ganref.features import WEIGHTS, save_classifier, train_classifier


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default=str(WEIGHTS), help="weights file to write (default: the shipped one)")
    parser.add_argument("--min-accuracy", type=float, default=0.97,
                        help="refuse to write weights below this held-out accuracy")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model, acc = train_classifier(seed=args.seed, epochs=args.epochs, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(f"test accuracy {acc:.4f} after {args.epochs} epochs in {seconds:.1f} s")
    if acc < args.min_accuracy:
        raise SystemExit(f"test accuracy {acc:.4f} is below --min-accuracy {args.min_accuracy}; weights not written")
    save_classifier(model, args.out, test_accuracy=acc, seed=args.seed, epochs=args.epochs,
                    torch_version=torch.__version__)
    os.chmod(args.out, 0o644)  # the temporary file behind the atomic rename is created 0600
    print(f"wrote {args.out}")
    return acc


if __name__ == "__main__":
    main()
