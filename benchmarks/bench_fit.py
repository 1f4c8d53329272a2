"""fit's overhead over a bare PyTorch loop running the same vanilla-GAN step (target: <= 10%).

Run: OMP_NUM_THREADS=1 python benchmarks/bench_fit.py. Both loops do the same work: draw a batch from
the run's generator, call ``vanilla.train_step``, read the losses. Times are process CPU time (steadier
than wall time on a shared machine) and the loops alternate in 30 short rounds; the ratio of the fastest rounds (least disturbed)
and of the medians are reported.
"""

from __future__ import annotations

import statistics
import time

import torch

from ganref import data, nets, train, vanilla


def make(seed: int = 0):
    torch.manual_seed(seed)
    G, D = nets.MLPGenerator(hidden=128, depth=3), nets.MLPDiscriminator(hidden=128, depth=3)
    cfg = vanilla.VanillaConfig(lr=1e-3)
    return train.State({"G": G, "D": D}, vanilla.make_optimizers(G, D, cfg), torch.Generator().manual_seed(seed)), cfg


def bare(steps: int) -> float:
    state, cfg = make()
    sample = data.batch_sampler(data.ring8().sample, 256)
    start = time.process_time()
    for _ in range(steps):
        out = vanilla.train_step(state, sample(state.generator), cfg)
        _ = {k: float(v) for k, v in out.items()}
        state.step += 1
    return time.process_time() - start


def with_fit(steps: int) -> float:
    state, cfg = make()
    sample = data.batch_sampler(data.ring8().sample, 256)
    start = time.process_time()
    train.fit(lambda s, b: vanilla.train_step(s, b, cfg), state, sample, steps, progress=True, desc="fit")
    return time.process_time() - start


if __name__ == "__main__":
    torch.set_num_threads(1)
    steps, rounds = 100, 30
    bare(50), with_fit(50)  # warm up
    times_bare, times_fit = [], []
    for _ in range(rounds):
        times_bare.append(bare(steps) / steps)
        times_fit.append(with_fit(steps) / steps)
    # The fastest round of each is the least disturbed by other processes; medians are shown too
    print(f"bare: min {min(times_bare) * 1e3:.3f} ms/step, median {statistics.median(times_bare) * 1e3:.3f}")
    print(f"fit:  min {min(times_fit) * 1e3:.3f} ms/step, median {statistics.median(times_fit) * 1e3:.3f}")
    print(f"fit / bare: {min(times_fit) / min(times_bare):.3f} (min), "
          f"{statistics.median(times_fit) / statistics.median(times_bare):.3f} (median); target <= 1.10")
