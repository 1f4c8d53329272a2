"""Tests for ganref/methods/vanilla.py: D* and V(D*, G) against closed forms, the step's update against a hand-made
one, the config's checks (frozen, validated, its own step only)."""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from ganref import data, nets, train
from ganref.losses import d_loss_minimax, g_loss_minimax, g_loss_nonsaturating
from ganref.methods import sngan, vanilla, wgan


def test_optimal_discriminator_is_density_ratio():
    p_data = data.ring8(std=0.3)
    p_g = data.GaussianMixture(torch.zeros(1, 2, dtype=torch.float64), 1.0)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    pd, pg = p_data.log_prob(x).exp(), p_g.log_prob(x).exp()
    torch.testing.assert_close(vanilla.optimal_discriminator(x, p_data, p_g), pd / (pd + pg), rtol=1e-10, atol=1e-14)


def test_optimal_discriminator_is_half_when_distributions_match():
    mix = data.grid25()
    x = mix.sample(50, torch.Generator().manual_seed(0))
    # log p_data - log p_g is exactly 0, and sigmoid(0) = 0.5 exactly
    torch.testing.assert_close(vanilla.optimal_discriminator(x, mix, mix), torch.full((50,), 0.5, dtype=torch.float64),
                               rtol=0, atol=0)


def test_optimal_value_is_minus_log4_plus_2jsd():
    # Equal distributions: JSD = 0, V = -log 4
    mix = data.ring8(std=0.3)
    value, jsd = vanilla.optimal_value(mix, mix, n=1000, generator=torch.Generator().manual_seed(0))
    assert abs(value + math.log(4)) < 1e-12 and abs(jsd) < 1e-12
    # Far-apart distributions: JSD -> log 2, V -> 0
    far = data.GaussianMixture(torch.full((1, 2), 100.0, dtype=torch.float64), 0.3)
    value, jsd = vanilla.optimal_value(mix, far, n=1000, generator=torch.Generator().manual_seed(0))
    assert abs(jsd - math.log(2)) < 1e-9 and abs(value) < 1e-9


def test_jsd_of_two_1d_gaussians_matches_numerical_integral():
    from scipy import integrate, stats

    a = data.GaussianMixture(torch.zeros(1, 1, dtype=torch.float64), 1.0)
    b = data.GaussianMixture(torch.ones(1, 1, dtype=torch.float64), 1.0)
    pa, pb = stats.norm(0, 1).pdf, stats.norm(1, 1).pdf
    m = lambda x: (pa(x) + pb(x)) / 2
    kl = lambda p: integrate.quad(lambda x: p(x) * math.log(p(x) / m(x)), -15, 16)[0]
    exact = 0.5 * kl(pa) + 0.5 * kl(pb)
    _, jsd = vanilla.optimal_value(a, b, n=400_000, generator=torch.Generator().manual_seed(0))
    assert abs(jsd - exact) < 3e-3  # Monte-Carlo error of 400k samples is about 5e-4


def test_vanilla_step_moves_both_nets_and_returns_finite_losses():
    G, D = nets.MLPGenerator(), nets.MLPDiscriminator()
    cfg = vanilla.VanillaConfig()
    state = train.State({"G": G, "D": D}, vanilla.make_optimizers(G, D, cfg))
    before = [p.clone() for p in list(G.parameters()) + list(D.parameters())]
    out = vanilla.vanilla_step(state, data.ring8().sample(64, torch.Generator().manual_seed(0)), cfg)
    assert set(out) == {"d_loss", "g_loss"} and all(math.isfinite(float(v)) for v in out.values())
    after = list(G.parameters()) + list(D.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after))


@pytest.mark.parametrize("g_loss", vanilla.G_LOSSES)
@pytest.mark.parametrize("d_steps", [1, 2])
def test_vanilla_step_is_algorithm_1_with_plain_sgd(g_loss, d_steps):
    # The step with SGD(lr) optimizers against the same updates written out: k D steps, each on its own
    # chunk of real rows and fresh noise, then one G step, noise drawn from the run's generator in that order.
    # float32 (the run's noise is float32): the same operations on the same values
    torch.manual_seed(0)
    G, D = nets.MLPGenerator(hidden=8, depth=1), nets.MLPDiscriminator(hidden=8, depth=1)
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    cfg = vanilla.VanillaConfig(g_loss=g_loss, d_steps=d_steps)
    lr = 0.1
    state = train.State({"G": G, "D": D}, {"G": torch.optim.SGD(G.parameters(), lr=lr),
                                           "D": torch.optim.SGD(D.parameters(), lr=lr)},
                        generator=torch.Generator().manual_seed(5))
    real = data.ring8().sample(d_steps * 16, torch.Generator().manual_seed(1))
    out = vanilla.vanilla_step(state, real, cfg)

    noise = torch.Generator().manual_seed(5)
    for x in real.chunk(d_steps):
        fake = G_ref(torch.randn(16, 2, generator=noise)).detach()
        d_loss = d_loss_minimax(D_ref(x), D_ref(fake))
        grads = torch.autograd.grad(d_loss, list(D_ref.parameters()))
        with torch.no_grad():
            for p, g in zip(D_ref.parameters(), grads):
                p -= lr * g
    d_fake = D_ref(G_ref(torch.randn(16, 2, generator=noise)))
    g_loss_value = (g_loss_nonsaturating if g_loss == "nonsaturating" else g_loss_minimax)(d_fake)
    grads = torch.autograd.grad(g_loss_value, list(G_ref.parameters()))
    with torch.no_grad():
        for p, g in zip(G_ref.parameters(), grads):
            p -= lr * g
    # the same float32 operations: agreement to a few roundings of each value (a wrong order of updates,
    # a reused batch or noise drawn in another order moves them by ~lr * grad, 1e-3 or more)
    eps = torch.finfo(torch.float32).eps
    for a, b in zip(list(D.parameters()) + list(G.parameters()), list(D_ref.parameters()) + list(G_ref.parameters())):
        torch.testing.assert_close(a, b, rtol=0, atol=16 * eps * float(b.detach().abs().max()))
    assert float(out["d_loss"]) == pytest.approx(d_loss.item(), rel=16 * eps)
    assert float(out["g_loss"]) == pytest.approx(g_loss_value.item(), rel=16 * eps)


class _Spy(nn.Module):
    """Wraps D and records every input it sees."""

    def __init__(self, D):
        super().__init__()
        self.D, self.seen = D, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.D(x)


def test_vanilla_step_splits_the_real_rows_into_d_steps_chunks():
    cfg = vanilla.VanillaConfig(d_steps=3)
    G, D = nets.MLPGenerator(hidden=8, depth=1), nets.MLPDiscriminator(hidden=8, depth=1)
    state = train.State({"G": G, "D": _Spy(D)}, vanilla.make_optimizers(G, D, cfg))
    real = torch.randn(3 * 4, 2, generator=torch.Generator().manual_seed(0))
    vanilla.vanilla_step(state, real, cfg)
    seen = state.modules["D"].seen  # per D step: real chunk, then fake; then the G step's fake
    assert len(seen) == 2 * 3 + 1
    for i in range(3):
        assert torch.equal(seen[2 * i], real[4 * i:4 * (i + 1)])
    with pytest.raises(ValueError, match=r"real must be a batch of d_steps \* B = 3 \* B rows, got \(10, 2\)"):
        vanilla.vanilla_step(state, real[:10], cfg)


# ----------------------------------------------------------------------------- the config


def test_config_defaults_frozen_and_validated():
    cfg = vanilla.VanillaConfig()
    assert (cfg.lr, cfg.betas, cfg.g_loss, cfg.d_steps) == (2e-4, (0.5, 0.999), "nonsaturating", 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1e-3
    assert dataclasses.replace(cfg, lr=1e-3).lr == 1e-3  # a changed copy is validated again
    with pytest.raises(ValueError, match="lr must be"):
        dataclasses.replace(cfg, lr=-1.0)
    assert vanilla.VanillaConfig(lr=np.float32(1e-3), d_steps=np.int64(2)).d_steps == 2  # NumPy scalars are fine


@pytest.mark.parametrize("kwargs, match", [
    (dict(g_loss="wasserstein"), "g_loss must be one of 'nonsaturating', 'minimax'"),
    (dict(lr=0), "lr must be a finite number > 0"),
    (dict(lr=True), "lr must be a finite number > 0, got True"),
    (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
    (dict(lr=float("nan")), "lr must be"),
    (dict(lr="1e-3"), "lr must be"),
    (dict(betas="x"), "betas must be two numbers in \\[0, 1\\), got 'x'"),
    (dict(betas=(0.5, 1.0)), "betas must be"),
    (dict(betas=(0.5, True)), "betas must be"),
    (dict(d_steps=0), "d_steps must be an integer >= 1"),
    (dict(d_steps=True), "d_steps must be"),
    (dict(d_steps=2.0), "d_steps must be"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vanilla.VanillaConfig(**kwargs)


@pytest.mark.parametrize("other", [wgan.WGANConfig(), wgan.WGANGPConfig(), sngan.SNGANConfig()])
def test_another_methods_config_is_refused_naming_both(other):
    G, D = nets.MLPGenerator(hidden=8, depth=1), nets.MLPDiscriminator(hidden=8, depth=1)
    state = train.State({"G": G, "D": D}, vanilla.make_optimizers(G, D, vanilla.VanillaConfig()))
    name = type(other).__name__
    with pytest.raises(TypeError, match=f"vanilla.vanilla_step needs a VanillaConfig, got {name}"):
        vanilla.vanilla_step(state, torch.zeros(8, 2), other)
    with pytest.raises(TypeError, match=f"vanilla.make_optimizers needs a VanillaConfig, got {name}"):
        vanilla.make_optimizers(G, D, other)
