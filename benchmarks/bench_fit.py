"""fit's overhead over a bare PyTorch loop running the same vanilla-GAN step (target: <= 10%).

Run: OMP_NUM_THREADS=1 python benchmarks/bench_fit.py. Both loops do the same work: draw a batch from
the run's generator, call ``vanilla.train_step``, read the losses. They alternate in rounds so that a
busy machine slows both alike; the median ratio is reported.
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
    start = time.perf_counter()
    for _ in range(steps):
        out = vanilla.train_step(state, sample(state.generator), cfg)
        _ = {k: float(v) for k, v in out.items()}
        state.step += 1
    return time.perf_counter() - start


def with_fit(steps: int) -> float:
    state, cfg = make()
    sample = data.batch_sampler(data.ring8().sample, 256)
    start = time.perf_counter()
    train.fit(lambda s, b: vanilla.train_step(s, b, cfg), state, sample, steps, progress=True, desc="fit")
    return time.perf_counter() - start


if __name__ == "__main__":
    torch.set_num_threads(1)
    steps, ratios = 500, []
    bare(50), with_fit(50)  # warm up
    for _ in range(5):
        b, f = bare(steps), with_fit(steps)
        ratios.append(f / b)
        print(f"bare {b / steps * 1e3:.2f} ms/step, fit {f / steps * 1e3:.2f} ms/step, ratio {f / b:.3f}")
    print(f"median fit / bare = {statistics.median(ratios):.3f} (target <= 1.10)")
