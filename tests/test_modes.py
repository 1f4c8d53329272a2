"""Tests for ganref.modes: VEEGAN mode coverage and stacked-digit modes against constructed answers and closed
forms, expected_modes against exact enumeration, and the toy-GAN helper (reproducible, consistent numbers)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ganref import modes, nets
from ganref.data import grid25, mixture, ring8
from ganref.layers import SpectralNorm
from ganref.methods import sngan, vanilla, wgan

# ----------------------------------------------------------------------------- mode coverage


def test_mode_coverage_one_sample_per_mode_is_perfect():
    means = ring8().means
    out = modes.mode_coverage(means.clone(), means, std=0.02)
    assert out == {"modes": 8, "n_modes": 8, "high_quality": 1.0, "kl": 0.0}


def test_mode_coverage_constructed_counts():
    means = ring8().means.numpy()  # (8, 2), radius 2, std 0.02
    std = 0.02
    direction = np.array([1.0, 0.0])
    samples = np.concatenate([
        means[[0, 0, 0]] + 2.9 * std * direction,  # 3 high quality at mode 0 (2.9 sigma away)
        means[[1]] - 1.0 * std * direction,  # 1 high quality at mode 1
        means[[2]] + 3.1 * std * direction,  # nearest mode 2, but 3.1 sigma: low quality
        np.zeros((3, 2)),  # the centre: 100 sigma from every mode
    ])
    out = modes.mode_coverage(samples, means, std=std)
    q = np.array([3, 1]) / 4  # histogram of the 4 high-quality samples over modes 0 and 1
    assert out["modes"] == 2
    assert out["n_modes"] == 8
    assert out["high_quality"] == pytest.approx(4 / 8, abs=1e-15)
    assert out["kl"] == pytest.approx(float(np.sum(q * np.log(q / (1 / 8)))), rel=1e-12)
    # a looser threshold lets the 3.1-sigma sample in: mode 2 is recovered as well
    loose = modes.mode_coverage(samples, means, std=std, threshold=3.2)
    assert loose["modes"] == 3 and loose["high_quality"] == pytest.approx(5 / 8, abs=1e-15)


def test_mode_coverage_no_high_quality_sample_gives_log_k():
    g = grid25()
    far = g.means + 1.0  # every point 1/sqrt(2) * 2 from its nearest mode: > 3 * 0.05
    out = modes.mode_coverage(far, g.means, std=g.std)
    assert out == {"modes": 0, "n_modes": 25, "high_quality": 0.0, "kl": math.log(25)}


def test_mode_coverage_total_collapse_is_log_k_too():
    means = ring8().means
    out = modes.mode_coverage(means[[3] * 50], means, std=0.02)
    assert out["modes"] == 1 and out["high_quality"] == 1.0
    assert out["kl"] == pytest.approx(math.log(8), rel=1e-12)


def test_mode_coverage_true_mixture_matches_chi_square_tail():
    # A sample from the mixture itself: in D = 2 the squared distance / std^2 is chi^2_2, so
    # P(high quality) = P(chi^2_2 <= 9) = 1 - exp(-9/2).
    mix = ring8()
    n = 20_000
    x = mix.sample(n, torch.Generator().manual_seed(0))
    out = modes.mode_coverage(x, mix.means, std=mix.std)
    p = 1 - math.exp(-4.5)
    assert out["modes"] == 8
    assert abs(out["high_quality"] - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 binomial std
    # multinomial counts of an even mixture: E[KL] ~ (K - 1) / (2 N) = 1.8e-4
    assert 0.0 <= out["kl"] < 1e-3


def test_mode_coverage_tensor_and_array_agree():
    mix = grid25()
    x = mix.sample(500, torch.Generator().manual_seed(1))
    assert modes.mode_coverage(x, mix.means, mix.std) == modes.mode_coverage(
        x.numpy(), mix.means.numpy(), mix.std)


@pytest.mark.parametrize("kwargs, word", [
    (dict(samples=np.zeros((4, 3)), means=np.zeros((8, 2)), std=0.1), "samples"),
    (dict(samples=np.zeros(4), means=np.zeros((8, 2)), std=0.1), "samples"),
    (dict(samples=np.zeros((4, 2)), means=np.zeros((2, 8, 2)), std=0.1), "means"),
    (dict(samples=np.array([[0.0, np.nan]]), means=np.zeros((8, 2)), std=0.1), "samples"),
    (dict(samples=np.zeros((4, 2)), means=np.full((8, 2), np.inf), std=0.1), "means"),
    (dict(samples=np.zeros((4, 2)), means=np.zeros((8, 2)), std=0.0), "std"),
    (dict(samples=np.zeros((4, 2)), means=np.zeros((8, 2)), std=0.1, threshold=-1.0), "threshold"),
    (dict(samples=[[0.0, 1.0]], means=np.zeros((8, 2)), std=0.1), "samples"),
])
def test_mode_coverage_bad_inputs(kwargs, word):
    with pytest.raises(ValueError, match=word):
        modes.mode_coverage(**kwargs)


# ----------------------------------------------------------------------------- stacked modes


def test_stacked_modes_every_mode_once_is_uniform():
    grid = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)  # (1000, 3)
    assert modes.stacked_modes(grid) == {"modes": 1000, "n_modes": 1000, "kl": 0.0}
    assert modes.stacked_modes(torch.from_numpy(grid)) == {"modes": 1000, "n_modes": 1000, "kl": 0.0}


def test_stacked_modes_constructed_histogram():
    labels = np.array([[1, 2, 3]] * 6 + [[3, 2, 1]] * 2)  # two modes (123 and 321), 3:1
    out = modes.stacked_modes(labels)
    p = np.array([0.75, 0.25])
    assert out["modes"] == 2 and out["n_modes"] == 1000
    assert out["kl"] == pytest.approx(float(np.sum(p * np.log(1000 * p))), rel=1e-12)
    collapsed = modes.stacked_modes(np.zeros((50, 3), dtype=np.int64))
    assert collapsed["modes"] == 1 and collapsed["kl"] == pytest.approx(math.log(1000), rel=1e-12)
    # two channels of 4 classes: 16 modes
    assert modes.stacked_modes(np.array([[0, 3], [3, 0], [3, 3]]), n_classes=4)["n_modes"] == 16


@pytest.mark.parametrize("labels, n_classes, word", [
    (np.array([[0, 1, 10]]), 10, "labels3"),
    (np.array([[0, -1, 2]]), 10, "labels3"),
    (np.array([0, 1, 2]), 10, "labels3"),
    (np.array([[0.0, 1.0, 2.0]]), 10, "labels3"),
    ([[0, 1, 2]], 10, "labels3"),
    (np.array([[0, 1, 2]]), 1, "n_classes"),
])
def test_stacked_modes_bad_inputs(labels, n_classes, word):
    with pytest.raises(ValueError, match=word):
        modes.stacked_modes(labels, n_classes=n_classes)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_expected_modes_matches_exact_enumeration(n, k):
    # every one of the K^n equally likely draw sequences, its number of distinct modes counted
    counts = np.array([len(set(seq)) for seq in itertools.product(range(k), repeat=n)], dtype=np.float64)
    mean, std = modes.expected_modes(n, k)
    assert mean == pytest.approx(counts.mean(), rel=1e-12, abs=1e-12)
    assert std == pytest.approx(counts.std(), rel=1e-9, abs=1e-12)


def test_expected_modes_large_k_matches_the_poisson_limit_and_simulation():
    mean, std = modes.expected_modes(2000, 1000)
    assert mean == pytest.approx(1000 * (1 - (1 - 1e-3) ** 2000), rel=1e-12)
    assert mean == pytest.approx(1000 * (1 - math.exp(-2)), rel=2e-3)  # K(1 - e^{-n/K}) for large K
    rng = np.random.default_rng(0)
    sims = np.array([np.unique(rng.integers(0, 1000, 2000)).size for _ in range(1000)])
    assert sims.mean() == pytest.approx(mean, abs=4 * std / math.sqrt(len(sims)))  # 4 standard errors
    assert sims.std() == pytest.approx(std, rel=0.1)  # a std estimated from 1000 draws is off by ~2.2%


@pytest.mark.parametrize("args, word", [((0, 10), "n_samples"), ((10, 0), "n_modes"), ((10, 2.5), "n_modes"),
                                        ((True, 10), "n_samples")])
def test_expected_modes_bad_inputs(args, word):
    with pytest.raises(ValueError, match=word):
        modes.expected_modes(*args)


# ----------------------------------------------------------------------------- the toy GAN


def _vanilla_run(seed=0, steps=30, **kw):
    return modes.toy_gan("ring8", vanilla.vanilla_step, vanilla.VanillaConfig(lr=1e-3), vanilla.make_optimizers,
                         seed, steps, width=16, depth=2, batch_size=64, **kw)


def test_toy_gan_is_reproducible_and_its_numbers_are_consistent():
    a, b, other = _vanilla_run(seed=4), _vanilla_run(seed=4), _vanilla_run(seed=5)
    assert a.samples.shape == (2500, 2) and a.samples.dtype == torch.float32 and a.samples.device.type == "cpu"
    assert torch.equal(a.samples, b.samples) and a.coverage == b.coverage  # same seed: the same run
    assert not torch.equal(a.samples, other.samples)
    for name in ("G", "D"):
        for (k, ta), tb in zip(a.state.modules[name].state_dict().items(), b.state.modules[name].state_dict().values()):
            assert torch.equal(ta, tb), (name, k)
    assert a.state.step == 30 and len(a.state.history["d_loss"]) == 30
    # the samples are G's, drawn with seed 30_000 + seed; the score is mode_coverage of them
    G = a.state.modules["G"]
    assert torch.equal(a.samples, nets.sample(G, 2500, modes.EVAL_Z_SEED + 4))
    mix = mixture("ring8")
    assert a.coverage == modes.mode_coverage(a.samples, mix.means, mix.std)
    assert a.snapshots == []  # none asked for


@pytest.mark.parametrize("steps, every, want", [(30, 10, [10, 20, 30]), (31, 11, [11, 22, 31])])
def test_toy_gan_snapshots_at_the_right_steps(steps, every, want):
    run = _vanilla_run(seed=2, steps=steps, snapshots=3)
    assert [s for s, _ in run.snapshots] == want  # exactly `snapshots` frames, every ceil(steps / snapshots), the last at steps
    assert all(x.shape == (1000, 2) and x.device.type == "cpu" for _, x in run.snapshots)
    # the last snapshot is the final G on the fixed noise (seed 1), in eval mode
    assert torch.equal(run.snapshots[-1][1], nets.sample(run.state.modules["G"], 1000, modes.SNAPSHOT_Z_SEED))
    # a snapshot at step k is G after k steps: the same seed run for k steps gives it exactly (callbacks
    # never touch the training stream)
    short = _vanilla_run(seed=2, steps=every, snapshots=1)
    assert [s for s, _ in short.snapshots] == [every]
    assert torch.equal(run.snapshots[0][1], short.snapshots[0][1])


@pytest.mark.parametrize("step_fn, cfg, make_opt", [
    (vanilla.vanilla_step, vanilla.VanillaConfig(), vanilla.make_optimizers),
    (wgan.wgan_gp_step, wgan.WGANGPConfig(d_steps=5), wgan.make_optimizers),
    (sngan.sngan_step, sngan.SNGANConfig(d_steps=2, spectral_norm=False), sngan.make_optimizers),
], ids=["vanilla", "wgan_gp", "sngan"])
def test_toy_gan_runs_any_methods_step(step_fn, cfg, make_opt):
    run = modes.toy_gan("grid25", step_fn, cfg, make_opt, 0, 10, width=16, depth=2, batch_size=32, n_eval=500)
    assert run.state.step == 10 and run.samples.shape == (500, 2)
    assert all(len(v) == 10 and all(math.isfinite(x) for x in v) for v in run.state.history.values())
    # d_steps discriminator updates per step, each on its own batch: Adam counts them
    step_of = lambda opt: int(next(iter(opt.state.values()))["step"])  # noqa: E731
    assert step_of(run.state.optimizers["D"]) == 10 * cfg.d_steps
    assert step_of(run.state.optimizers["G"]) == 10
    mix = mixture("grid25")
    assert run.coverage == modes.mode_coverage(run.samples, mix.means, mix.std)
    assert run.coverage["n_modes"] == 25


def test_toy_gan_with_an_sn_config_trains_a_spectrally_normalized_discriminator():
    run = modes.toy_gan("ring8", sngan.sngan_step, sngan.SNGANConfig(d_steps=1), sngan.make_optimizers, 0, 2,
                        width=8, depth=1, batch_size=16, n_eval=100)
    assert any(isinstance(m, SpectralNorm) for m in run.state.modules["D"].modules())


@pytest.mark.parametrize("kwargs, error, word", [
    (dict(name="moons"), ValueError, "mixture must be"),
    (dict(steps=0), ValueError, "steps must be"),
    (dict(steps=2.5), ValueError, "steps must be"),
    (dict(snapshots=-1), ValueError, "snapshots must be"),
    (dict(seed=-1), ValueError, "seed must be"),
    (dict(width=0), ValueError, "hidden must be"),
    (dict(batch_size=0), ValueError, "batch_size must be"),
    (dict(cfg=wgan.WGANConfig()), TypeError, "vanilla.make_optimizers needs a VanillaConfig, got WGANConfig"),
])
def test_toy_gan_bad_inputs(kwargs, error, word):
    args = dict(name="ring8", step_fn=vanilla.vanilla_step, cfg=vanilla.VanillaConfig(),
                make_optimizers=vanilla.make_optimizers, seed=0, steps=2, width=8, depth=1, batch_size=8, n_eval=10)
    args.update(kwargs)
    with pytest.raises(error, match=word):
        modes.toy_gan(**args)


def test_toy_gan_bad_n_eval_names_the_argument():
    with pytest.raises(ValueError, match="n_eval"):
        modes.toy_gan("ring8", vanilla.vanilla_step, vanilla.VanillaConfig(), vanilla.make_optimizers, 0, 1,
                      width=8, depth=1, batch_size=8, n_eval=0)
