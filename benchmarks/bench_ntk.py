"""Benchmark (not a test): ``ganref.methods.ntk.empirical_ntk`` on a 3x512 ReLU MLP for 256 points.

Run: ``python benchmarks/bench_ntk.py [--device auto] [--points 256] [--width 512] [--depth 3]``.
Prints, per chunk size and dtype, the median wall time of a few calls after one warm-up (the first
``torch.func`` call in a process pays a one-off start-up cost, printed separately) and the peak
memory: CUDA's allocator peak on a GPU, the process's peak resident set on the CPU (which only
grows, so the CPU rows run from the smallest chunk to the largest). Also the infinite-width
``relu_ntk`` on the same points, and the relative distance between the two kernels.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch

from ganref.methods.ntk import NTKMLP, empirical_ntk, relu_ntk
from ganref.utils import device as pick_device


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _peak_mib(dev: torch.device) -> float:
    if dev.type == "cuda":
        return torch.cuda.max_memory_allocated(dev) / 2**20
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--in-dim", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunks", type=int, nargs="+", default=[64, 128, 256])
    args = ap.parse_args()

    dev = pick_device(args.device)
    gen = torch.Generator().manual_seed(0)
    model = NTKMLP(args.in_dim, args.width, args.depth, b_std=0.1, generator=gen).to(dev)
    x = torch.randn(args.points, args.in_dim, generator=gen).to(dev)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device={dev} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"model={args.depth}x{args.width} params={n_params:,} points={args.points}")

    t0 = time.perf_counter()
    empirical_ntk(model, x[:2])
    _sync(dev)
    print(f"first torch.func call (start-up): {time.perf_counter() - t0:.2f} s")

    for dtype in (torch.float32, torch.float64):  # empirical_ntk's default chunk: 256 MiB of Jacobian
        print(f"  default chunk_size for {dtype}: {max(1, 2**28 // (n_params * torch.finfo(dtype).bits // 8))}")
        if dev.type == "mps" and dtype == torch.float64:
            continue
        for chunk in sorted(args.chunks):
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats(dev)
            times = []
            for _ in range(args.repeats):
                _sync(dev)
                t0 = time.perf_counter()
                k = empirical_ntk(model, x, chunk_size=chunk, dtype=dtype)
                _sync(dev)
                times.append(time.perf_counter() - t0)
            jac_mib = chunk * n_params * torch.finfo(dtype).bits / 8 / 2**20
            print(f"  {str(dtype):14s} chunk={chunk:4d}  median {statistics.median(times):7.3f} s "
                  f"(min {min(times):.3f})  peak {_peak_mib(dev):8.0f} MiB  one Jacobian chunk {jac_mib:6.0f} MiB")

    t0 = time.perf_counter()
    k_inf = relu_ntk(x, None, args.depth, 1.0, 0.1)
    _sync(dev)
    t_inf = time.perf_counter() - t0
    k64 = empirical_ntk(model, x, dtype=torch.float64)
    rel = ((k64 - k_inf).norm() / k_inf.norm()).item()
    print(f"relu_ntk (infinite width) on the same points: {t_inf * 1e3:.1f} ms; "
          f"||empirical - infinite|| / ||infinite|| = {rel:.3f} at width {args.width}")


if __name__ == "__main__":
    main()
