"""Benchmark (not a test): the cost of spectral normalization per D step on a small conv D.

D is ``ganref.nets.ConvDiscriminator`` on 8x8 images. One D step is the hinge loss on a real
and a fake batch (two forwards, as in a GAN), backward and an Adam step. We time it without SN,
with ``ganref.layers.apply_spectral_norm`` and with PyTorch's
``torch.nn.utils.parametrizations.spectral_norm``, and print the ratios.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_spectral.py [--width 64] [--batch 64] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from ganref.layers import apply_spectral_norm
from ganref.nets import ConvDiscriminator
from ganref.utils import device as pick_device


def torch_sn(model: nn.Module) -> nn.Module:
    for m in [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]:
        parametrizations.spectral_norm(m)
    return model


def make_step(model: nn.Module, batch: int, dev: torch.device) -> Callable[[], None]:
    """One D step: hinge loss on a real and a fake batch, backward, Adam."""
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.0, 0.9))
    g = torch.Generator().manual_seed(0)
    real = torch.randn(batch, 1, 8, 8, generator=g).to(dev)
    fake = torch.randn(batch, 1, 8, 8, generator=g).to(dev)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.relu(1 - model(real)).mean() + F.relu(1 + model(fake)).mean()  # hinge D loss
        loss.backward()
        opt.step()
    return step


def time_interleaved(steps_fns: dict[str, Callable[[], None]], steps: int, repeats: int,
                     dev: torch.device) -> dict[str, float]:
    """Median seconds per step of each variant; the variants take turns, so load drifts hit all alike."""
    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for fn in steps_fns.values():  # warm up
        for _ in range(max(10, steps // 10)):
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps_fns}
    for _ in range(repeats):
        for name, fn in steps_fns.items():
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            sync()
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = pick_device(args.device)
    fns = {}
    for name, wrap in (("no SN", lambda m: m), ("ganref SN", apply_spectral_norm), ("torch SN", torch_sn)):
        torch.manual_seed(0)
        fns[name] = make_step(wrap(ConvDiscriminator(width=args.width)).to(dev), args.batch, dev)
    results = time_interleaved(fns, args.steps, args.repeats, dev)
    print(f"device={dev} threads={torch.get_num_threads()} width={args.width} batch={args.batch}")
    base = results["no SN"]
    for name, sec in results.items():
        print(f"{name:>10}: {sec * 1e3:8.3f} ms per D step   ratio {sec / base:5.3f}")


if __name__ == "__main__":
    main()
