import math

import pytest
import torch

from ganref import data, nets, train, vanilla


def test_optimal_discriminator_is_density_ratio():
    p_data = data.ring8(std=0.3)
    p_g = data.GaussianMixture(torch.zeros(1, 2, dtype=torch.float64), 1.0)
    x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    pd, pg = p_data.log_prob(x).exp(), p_g.log_prob(x).exp()
    torch.testing.assert_close(vanilla.optimal_discriminator(x, p_data, p_g), pd / (pd + pg), rtol=1e-10, atol=1e-14)


def test_optimal_discriminator_is_half_when_distributions_match():
    mix = data.grid25()
    x = mix.sample(50, torch.Generator().manual_seed(0))
    torch.testing.assert_close(vanilla.optimal_discriminator(x, mix, mix), torch.full((50,), 0.5, dtype=torch.float64))


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


def test_train_step_moves_both_nets_and_returns_finite_losses():
    G, D = nets.MLPGenerator(), nets.MLPDiscriminator()
    cfg = vanilla.VanillaConfig()
    state = train.State({"G": G, "D": D}, vanilla.make_optimizers(G, D, cfg))
    before = [p.clone() for p in list(G.parameters()) + list(D.parameters())]
    out = vanilla.train_step(state, data.ring8().sample(64, torch.Generator().manual_seed(0)), cfg)
    assert set(out) == {"d_loss", "g_loss"} and all(math.isfinite(float(v)) for v in out.values())
    after = list(G.parameters()) + list(D.parameters())
    assert all(not torch.equal(b, a) for b, a in zip(before, after))


def test_config_errors():
    with pytest.raises(ValueError, match="g_loss must be"):
        vanilla.VanillaConfig(g_loss="wasserstein")
    with pytest.raises(ValueError, match="lr must be > 0"):
        vanilla.VanillaConfig(lr=0)
