"""Benchmark (not a test): how long the grid25 denoiser of chapter 08 must train, and on what.

Trains ``unet.MLPDenoiser`` with ``ddpm.ddpm_step`` (T = 1000, linear schedule, Adam with a cosine
learning-rate ramp, gradient clip 1) on fresh grid25 batches, then draws 2,500 samples with DDIM-50
(eta 0) and with DDPM respaced to 250 steps, from the raw and the EMA weights, and scores them with
the VEEGAN protocol (``modes.mode_coverage``). It also prints the loss floor: L_simple of the exact
denoiser (``ddpm.MixtureDenoiser``) on 100,000 draws.

Usage: ``python benchmarks/bench_ddpm.py [--steps 6000] [--batch 512] [--hidden 128] [--lr 2e-3]
[--lr-end 2e-5] [--ema 0.995] [--scale 1.0] [--seed 0]``

Measured (2-core CPU shared with other jobs, load average 4-12, 1 torch thread, torch 2.13, seed 0;
CPU seconds of training from ``time.process_time``; high-quality share, raw / EMA weights; all runs
found 24-25 of 25 modes). The loss floor is 0.305; ``scale`` divides the data (so 4 puts it in [-1, 1]):

=====  =====  ======  ===================  =====  ==========  ============  =============
steps  batch  hidden  lr, EMA decay        loss   train CPU   DDIM-50 HQ    DDPM-250 HQ
=====  =====  ======  ===================  =====  ==========  ============  =============
3000   512    128     1e-3 -> 1e-4, 0.999  0.351  40 s        0.47 / 0.16   0.51 / 0.15
3000   512    128     2e-3 -> 2e-5, 0.999  0.331  37 s        0.64 / 0.26   0.71 / 0.28
6000   512    128     2e-3 -> 2e-5, 0.995  0.308  76 s        0.94 / 0.94   0.99 / 0.99
6000   256    128     2e-3 -> 2e-5, 0.995  0.316  46 s        0.78 / 0.77   0.84 / 0.84
6000   512    64      2e-3 -> 2e-5, 0.995  0.328  44 s        0.66 / 0.67   0.75 / 0.75
3000   512    128     scale 4, 0.995       (*)    42 s        0.15 / 0.16   0.21 / 0.21
=====  =====  ======  ===================  =====  ==========  ============  =============

(*) 0.196, not comparable: the floor changes with the data's scale.

Read: the share of high-quality samples tracks how close the loss gets to its floor; it needs about
3 million training points (6,000 x 512) with this 128-wide net, and a learning rate decayed to
near 0. An EMA with decay 0.999 over a 3,000-step run averages weights from the untrained start
and samples worse than the raw weights. Rescaling the grid to [-1, 1] (as images are) hurts:
the modes become 4x sharper relative to the fixed noise levels of the schedule.
"""

from __future__ import annotations

import argparse
import functools
import time

import torch

from ganref import data, train, unet
from ganref.methods import ddpm
from ganref.modes import mode_coverage


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-end", type=float, default=2e-5)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)

    schedule, grid = ddpm.linear_schedule(1000), data.grid25()
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    net = unet.MLPDenoiser(dim=2, hidden=args.hidden, depth=3)
    cfg = ddpm.DDPMConfig(lr=train.Ramp(args.lr, args.lr_end, args.steps), ema_decay=args.ema)
    state = train.State({"eps": net}, ddpm.make_optimizers(net, cfg), gen, ema={"eps": train.EMA(net, args.ema)})
    cpu = time.process_time()
    train.fit(functools.partial(ddpm.ddpm_step, cfg=cfg, schedule=schedule), state,
              lambda g: grid.sample(args.batch, g) / args.scale, args.steps, progress=False)
    cpu = time.process_time() - cpu
    loss = sum(state.history["loss"][-300:]) / len(state.history["loss"][-300:])

    g = torch.Generator().manual_seed(5)
    x0, k = grid.sample(100_000, g).double() / args.scale, torch.randint(0, 1000, (100_000,), generator=g)
    eps = torch.randn(100_000, 2, generator=g, dtype=torch.float64)
    scaled = data.GaussianMixture(grid.means / args.scale, grid.std / args.scale)
    floor = ddpm.eps_loss(ddpm.MixtureDenoiser(scaled, schedule)(ddpm.q_sample(schedule, x0, k, eps), k), eps)
    print(f"{args}: loss {loss:.4f} (floor {float(floor):.4f}), {cpu:.0f} s CPU for training")
    for name, model in (("raw", net), ("EMA", state.ema["eps"])):
        for label, run in (("DDIM-50", lambda m, g: ddpm.sample_ddim(m, schedule, (2500, 2), 50, generator=g)),
                           ("DDPM-250", lambda m, g: ddpm.sample_ddpm(m, schedule.respace(250), (2500, 2), g))):
            x = run(model, torch.Generator().manual_seed(1)).x * args.scale
            cov = mode_coverage(x, grid.means, grid.std)
            print(f"  {name:<4}{label:<10}{cov['modes']:>3}/25 modes, {cov['high_quality']:.3f} high quality")


if __name__ == "__main__":
    main()
