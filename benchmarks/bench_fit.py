"""fit's overhead over a bare PyTorch loop running the same vanilla-GAN step (target: <= 10%).

Run: OMP_NUM_THREADS=1 python benchmarks/bench_fit.py. Both loops do the same work: draw a batch from
the run's generator, call ``vanilla.vanilla_step``, read the losses; in the second pair both also
update an EMA of G after every step and run a snapshot callback (G on 256 fixed z) every 50 steps.
Times are process CPU time (steadier than wall time on a shared machine) and the loops alternate in
short rounds; the ratio of the fastest rounds (least disturbed) and of the medians are reported.
"""

from __future__ import annotations

import statistics
import time

import torch

from ganref import data, nets, train
from ganref.methods import vanilla

Z_FIXED = torch.randn(256, 2, generator=torch.Generator().manual_seed(1))


def make(seed: int = 0, ema: bool = False):
    torch.manual_seed(seed)
    G, D = nets.MLPGenerator(hidden=128, depth=3), nets.MLPDiscriminator(hidden=128, depth=3)
    cfg = vanilla.VanillaConfig(lr=1e-3)
    state = train.State({"G": G, "D": D}, vanilla.make_optimizers(G, D, cfg), torch.Generator().manual_seed(seed),
                        ema={"G": train.EMA(G, 0.999)} if ema else {})
    return state, cfg


def snapshot(state: train.State) -> torch.Tensor:
    return state.modules["G"](Z_FIXED)


def bare(steps: int, extras: bool) -> float:
    state, cfg = make(ema=extras)
    sample = data.batch_sampler(data.ring8().sample, 256)
    G = state.modules["G"]
    shots = []
    start = time.process_time()
    for _ in range(steps):
        out = vanilla.vanilla_step(state, sample(state.generator), cfg)
        _ = {k: float(v) for k, v in out.items()}
        state.step += 1
        if extras:
            state.ema["G"].update(G)
            if state.step % 50 == 0:
                G.eval()
                with torch.no_grad():
                    shots.append(snapshot(state))
                G.train()
    return time.process_time() - start


def with_fit(steps: int, extras: bool) -> float:
    state, cfg = make(ema=extras)
    sample = data.batch_sampler(data.ring8().sample, 256)
    callbacks = [train.Every(50, snapshot, "snapshots")] if extras else []
    start = time.process_time()
    train.fit(lambda s, b: vanilla.vanilla_step(s, b, cfg), state, sample, steps, callbacks=callbacks,
              progress=True, desc="fit")
    return time.process_time() - start


if __name__ == "__main__":
    torch.set_num_threads(1)
    steps, rounds = 100, 20
    for extras in (False, True):
        bare(50, extras), with_fit(50, extras)  # warm up
        times_bare, times_fit = [], []
        for _ in range(rounds):
            times_bare.append(bare(steps, extras) / steps)
            times_fit.append(with_fit(steps, extras) / steps)
        label = "with EMA + callback" if extras else "plain"
        print(f"[{label}] bare: min {min(times_bare) * 1e3:.3f} ms/step, median {statistics.median(times_bare) * 1e3:.3f}")
        print(f"[{label}] fit:  min {min(times_fit) * 1e3:.3f} ms/step, median {statistics.median(times_fit) * 1e3:.3f}")
        print(f"[{label}] fit / bare: {min(times_fit) / min(times_bare):.3f} (min), "
              f"{statistics.median(times_fit) / statistics.median(times_bare):.3f} (median); target <= 1.10")
