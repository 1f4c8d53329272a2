"""Benchmark (not a test): WGAN-GP and NS + R1/R2 on grid25 under a wall-clock budget.

Each run trains for ``--seconds`` of wall-clock time (default 60 s) with ``--threads`` torch threads,
then draws 2,500 samples and scores them with the VEEGAN protocol (``ganref.modes.mode_coverage``:
a sample is high quality within 3 std of its nearest mode, a mode is recovered if it has one) and
the exact W1 between 1,000 generated and 1,000 real points (``ganref.metrics.exact_w1``).

Settings:
- ``wgan_gp``: the WGAN-GP authors' toy script: G and D are 3x512 ReLU MLPs, z ~ N(0, I_2), batch 256,
  5 critic steps, lambda = 0.1, Adam lr 1e-4, betas (0.5, 0.9). (Their script rescales the grid by
  1/2.828; ganref's grid25 is not rescaled: means in {-4, ..., 4}^2, std 0.05.)
- ``r1r2``: the same nets and batch, non-saturating loss + R1 + R2, one D step per G step, Adam
  betas (0, 0.9); ``--gamma`` and ``--lr`` set the rest (defaults: ``R1R2Config()``).

Usage: ``python benchmarks/bench_wgan.py [--methods wgan_gp r1r2] [--seeds 0 1 2] [--seconds 60]
[--hidden 512] [--lr LR] [--gamma GAMMA] [--references]``

Measured (2-core CPU shared with other jobs, load average 4-6, 1 torch thread, torch 2.13, seeds
0-2; mean (sd) over seeds; wall-clock budgets make the step counts vary with the load):

===========================================  ========  ============  ==============  =====
run (60 s each)                               G steps   modes / 25    high quality    W1
===========================================  ========  ============  ==============  =====
WGAN-GP, 3x512, lambda 0.1, lr 1e-4           110-135   18.7 (2.3)    0.015 (0.003)   1.01
NS + R1/R2, 3x512, gamma 0.1, lr 2e-4         320-335   19.3 (4.6)    0.018 (0.004)   0.82
WGAN-GP, 3x128, lambda 0.1, lr 1e-4           510-830   18.3 (3.1)    0.016 (0.002)   0.94
WGAN-GP, 3x128, lambda 0.1, lr 1e-3           430-720   21.0 (1.0)    0.053 (0.019)   0.66
NS + R1/R2, 3x128, gamma 0.1, lr 1e-3         1620-2065 24.3 (1.2)    0.161 (0.111)   0.52
real samples (reference)                      -         25            0.984           0.25-0.37
Gaussian with grid25's mean/cov (reference)   -         16-21         0.012-0.021     1.08-1.15
===========================================  ========  ============  ==============  =====

Read: in 60 s on this machine the WGAN-GP authors' toy setting (3x512 nets) gets ~120 generator
steps, and scores like a broad Gaussian: its "modes" are chance hits, not learned modes. Only the
smaller nets with a larger learning rate start to form modes within the budget.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import time

import torch

from ganref.data import batch_sampler, grid25
from ganref.methods.wgan import R1R2Config, WGANGPConfig, make_optimizers, r1r2_step, wgan_gp_step
from ganref.metrics import exact_w1
from ganref.modes import mode_coverage
from ganref.nets import MLPDiscriminator, MLPGenerator
from ganref.train import State, fit

BATCH = 256


def run(method: str, seed: int, seconds: float, gamma: float | None, lr: float | None,
        hidden: int = 512) -> dict:
    torch.manual_seed(seed)
    G = MLPGenerator(z_dim=2, out_dim=2, hidden=hidden, depth=3)
    D = MLPDiscriminator(in_dim=2, hidden=hidden, depth=3)
    if method == "wgan_gp":
        cfg = WGANGPConfig(gp_weight=0.1) if lr is None else WGANGPConfig(gp_weight=0.1, lr=lr)
        step = functools.partial(wgan_gp_step, cfg=cfg)
    elif method == "r1r2":
        kw = {k: v for k, v in (("gamma", gamma), ("lr", lr)) if v is not None}
        cfg = R1R2Config(**kw)
        step = functools.partial(r1r2_step, cfg=cfg)
    else:
        raise ValueError(f"method must be 'wgan_gp' or 'r1r2', got {method!r}")
    state = State(modules={"G": G, "D": D}, optimizers=make_optimizers(G, D, cfg),
                  generator=torch.Generator().manual_seed(seed))
    mix = grid25()
    data = batch_sampler(mix.sample, BATCH, d_steps=cfg.d_steps)

    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        fit(step, state, data, steps=state.step + 5, progress=False, log_every=5)
    elapsed = time.perf_counter() - start

    g_eval = torch.Generator().manual_seed(10_000 + seed)
    G.eval()
    with torch.no_grad():
        samples = G(torch.randn(2500, 2, generator=g_eval))
    cov = mode_coverage(samples, mix.means, mix.std)
    w1 = exact_w1(samples[:1000], mix.sample(1000, g_eval))
    return {"method": method, "seed": seed, "hidden": hidden, "cfg": repr(cfg), "g_steps": state.step,
            "seconds": round(elapsed, 1), "modes": cov["modes"], "high_quality": cov["high_quality"],
            "kl": cov["kl"], "w1": w1}


def references(seed: int) -> dict[str, dict]:
    """The same scores for real samples and for N(mean, cov) of grid25: what "learned nothing sharp" scores."""
    mix, g = grid25(), torch.Generator().manual_seed(10_000 + seed)
    var = float(mix.means.var(0, unbiased=False)[0]) + mix.std**2  # per-coordinate variance of grid25
    out = {}
    for name, x in (("real", mix.sample(2500, g).double()),
                    ("moment-matched Gaussian", torch.randn(2500, 2, generator=g, dtype=torch.float64) * var**0.5)):
        cov = mode_coverage(x, mix.means, mix.std)
        out[name] = {**cov, "w1": exact_w1(x[:1000], mix.sample(1000, g))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="*", default=["wgan_gp", "r1r2"], help="none: references only")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gamma", type=float, default=None, help="R1/R2 gamma (default: R1R2Config's)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate override")
    ap.add_argument("--hidden", type=int, default=512, help="MLP width of G and D (3 hidden layers)")
    ap.add_argument("--json", default=None, help="write the rows to this file")
    ap.add_argument("--references", action="store_true",
                    help="also score real samples and a Gaussian with grid25's mean and covariance")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for method in args.methods:
        for seed in args.seeds:
            row = run(method, seed, args.seconds, args.gamma, args.lr, args.hidden)
            rows.append(row)
            print(f"{method:8s} {args.hidden}w seed {seed}: {row['g_steps']:5d} G steps in {row['seconds']:5.1f} s, "
                  f"modes {row['modes']:2d}/25, high quality {row['high_quality']:.3f}, "
                  f"KL {row['kl']:.3f}, W1 {row['w1']:.3f}   {row['cfg']}", flush=True)
    if args.references:
        for seed in args.seeds:
            for name, r in references(seed).items():
                print(f"reference {name} seed {seed}: modes {r['modes']:2d}/25, high quality "
                      f"{r['high_quality']:.3f}, KL {r['kl']:.3f}, W1 {r['w1']:.3f}")
    for method in args.methods:
        sel = [r for r in rows if r["method"] == method]
        if len(sel) > 1:
            print(f"{method:8s} mean over {len(sel)} seeds: modes {statistics.mean(r['modes'] for r in sel):.1f} "
                  f"(sd {statistics.stdev(r['modes'] for r in sel):.1f}), high quality "
                  f"{statistics.mean(r['high_quality'] for r in sel):.3f} "
                  f"(sd {statistics.stdev(r['high_quality'] for r in sel):.3f}), "
                  f"W1 {statistics.mean(r['w1'] for r in sel):.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
