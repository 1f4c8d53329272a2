import functools
import math

import pytest
import torch
from torch import nn

from ganref import data, train
from ganref.methods import ddgan, ddpm
from ganref.modes import mode_coverage

F64 = dict(rtol=0, atol=1e-12)


def _abar(t: float, beta_min: float = 0.1, beta_max: float = 20.0) -> float:
    return math.exp(-0.5 * t * t * (beta_max - beta_min) - t * beta_min)


# ----------------------------------------------------------------------------- the schedule


def test_vp_schedule_equals_the_closed_form_in_float64():
    s = ddgan.vp_schedule(4)
    assert s.T == 4 and s.betas.dtype == torch.float64
    t = [(k / 4) * (1 - 1e-3) + 1e-3 for k in range(5)]
    betas = [1 - _abar(t[k]) / _abar(t[k - 1]) for k in range(1, 5)]
    torch.testing.assert_close(s.betas, torch.tensor(betas, dtype=torch.float64), **F64)
    abar = [math.prod(1 - b for b in betas[:k + 1]) for k in range(4)]
    torch.testing.assert_close(s.alpha_bar, torch.tensor(abar, dtype=torch.float64), **F64)
    abar_prev = [1.0] + abar[:-1]
    var = [betas[k] * (1 - abar_prev[k]) / (1 - abar[k]) for k in range(4)]  # beta_tilde of q(x_k | x_{k+1}, x0)
    zeros = torch.zeros(4, 1, dtype=torch.float64)
    torch.testing.assert_close(ddpm.posterior(s, zeros, zeros, torch.arange(4))[1].flatten(),
                               torch.tensor(var, dtype=torch.float64), **F64)
    # the constants computed from train_ddgan.py (references/diffusion-hybrids-distillation.md, sec. 2)
    torch.testing.assert_close(s.betas, torch.tensor([0.47826, 0.84921, 0.95642, 0.98740], dtype=torch.float64),
                               rtol=0, atol=6e-6)
    torch.testing.assert_close(s.alpha_bar.sqrt(), torch.tensor([0.72232, 0.28049, 0.05856, 0.00657],
                                                                dtype=torch.float64), rtol=0, atol=6e-6)
    torch.testing.assert_close(torch.tensor(var, dtype=torch.float64),
                               torch.tensor([0, 0.44082, 0.88420, 0.98406], dtype=torch.float64), rtol=0, atol=6e-6)
    assert ddgan.vp_schedule(2).betas.tolist() == pytest.approx([0.92132, 0.99945], abs=6e-6)
    assert ddgan.vp_schedule(1).betas.item() == pytest.approx(0.99996, abs=6e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(T=0), "T must be an integer >= 1"),
    (dict(T=2.5), "T must be an integer >= 1"),
    (dict(T=4, beta_min=20.0, beta_max=0.1), "beta_min must be smaller than beta_max"),
    (dict(T=4, beta_min=1.0, beta_max=1.0), "beta_min must be smaller than beta_max"),
    (dict(T=4, beta_min=-0.1), "beta_min must be a finite number > 0"),
])
def test_vp_schedule_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ddgan.vp_schedule(**kwargs)


# ----------------------------------------------------------------------------- pairs and the posterior


def test_a_forward_step_from_level_k_is_the_one_shot_q_sample_with_combined_noise():
    s = ddgan.vp_schedule(4)
    g = torch.Generator().manual_seed(0)
    x0, eps, eps_step = (torch.randn(8, 3, generator=g, dtype=torch.float64) for _ in range(3))
    k = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    x_k, x_next = ddgan.q_pair(s, x0, k, eps, eps_step)
    torch.testing.assert_close(x_k[k == 0], x0[k == 0], rtol=0, atol=0)  # level 0 is the data itself
    torch.testing.assert_close(x_k[k > 0], ddpm.q_sample(s, x0[k > 0], k[k > 0] - 1, eps[k > 0]), **F64)
    # sqrt(1 - b) (sqrt(a') x0 + sqrt(1 - a') e1) + sqrt(b) e2 = sqrt(a) x0 + sqrt(1 - a) e, with a = (1 - b) a'
    b, a, a_prev = s.betas[k][:, None], s.alpha_bar[k][:, None], s.alpha_bar_prev[k][:, None]
    e = ((1 - b) * (1 - a_prev)).sqrt() * eps + b.sqrt() * eps_step
    torch.testing.assert_close(x_next, ddpm.q_sample(s, x0, k, e / (1 - a).sqrt()), **F64)


def test_pairs_have_the_marginal_moments_of_q_in_many_draws():
    s, n = ddgan.vp_schedule(4), 200_000
    g = torch.Generator().manual_seed(1)
    x0 = torch.full((n, 1), 1.5, dtype=torch.float64)
    for k in range(4):
        kk = torch.full((n,), k)
        _, x_next = ddgan.q_pair(s, x0, kk, torch.randn(n, 1, generator=g, dtype=torch.float64),
                                 torch.randn(n, 1, generator=g, dtype=torch.float64))
        a = s.alpha_bar[k].item()
        assert x_next.mean().item() == pytest.approx(1.5 * math.sqrt(a), abs=0.01)
        assert x_next.var().item() == pytest.approx(1 - a, abs=0.01)


def test_the_posterior_sample_given_the_true_x0_has_the_closed_form_mean_and_variance():
    s, n = ddgan.vp_schedule(4), 200_000
    g = torch.Generator().manual_seed(2)
    x0 = torch.full((n, 1), -1.0, dtype=torch.float64)
    for k in range(4):
        kk = torch.full((n,), k)
        _, x_next = ddgan.q_pair(s, x0, kk, torch.randn(n, 1, generator=g, dtype=torch.float64),
                                 torch.randn(n, 1, generator=g, dtype=torch.float64))
        noise = torch.randn(n, 1, generator=g, dtype=torch.float64)
        x_k = ddgan.posterior_sample(s, x0, x_next, kk, noise)
        b, a = s.betas[k].item(), s.alpha_bar[k].item()
        a_prev = 1.0 if k == 0 else s.alpha_bar[k - 1].item()
        mean = b * math.sqrt(a_prev) / (1 - a) * x0 + (1 - a_prev) * math.sqrt(1 - b) / (1 - a) * x_next  # DDPM Eq. (7)
        var = b * (1 - a_prev) / (1 - a)
        torch.testing.assert_close(x_k, mean + math.sqrt(var) * noise, **F64)
        # marginally, x_k ~ q(x_k | x0) again: mean sqrt(a_prev) x0, variance 1 - a_prev
        assert x_k.mean().item() == pytest.approx(-math.sqrt(a_prev), abs=0.01)
        assert x_k.var().item() == pytest.approx(1 - a_prev, abs=0.01)
    # no noise at k = 0: x_0 is the given x0 whatever the noise
    x_next = torch.randn(5, 2, generator=g, dtype=torch.float64)
    x0 = torch.randn(5, 2, generator=g, dtype=torch.float64)
    out = ddgan.posterior_sample(s, x0, x_next, torch.zeros(5, dtype=torch.long), 100 * torch.ones(5, 2, dtype=torch.float64))
    torch.testing.assert_close(out, x0, **F64)


def test_the_mixture_generator_draws_the_exact_x0_posterior():
    s, n = ddgan.vp_schedule(4), 100_000
    one = data.GaussianMixture(torch.tensor([[1.0, -2.0]], dtype=torch.float64), 0.5)  # K = 1: Gaussian posterior
    G = ddgan.MixtureGenerator(one, s)
    assert G.z_dim == 3
    g = torch.Generator().manual_seed(3)
    x_next = torch.tensor([[0.3, 0.1]], dtype=torch.float64).repeat(n, 1)
    k = torch.full((n,), 1)
    x0 = G(x_next, torch.randn(n, 3, generator=g, dtype=torch.float64), k)
    a, s2 = s.alpha_bar[1].item(), 0.25
    v = 1 / (1 / s2 + a / (1 - a))
    mean = v * (one.means[0] / s2 + math.sqrt(a) * x_next[0] / (1 - a))
    torch.testing.assert_close(x0.mean(0), mean, rtol=0, atol=0.01)
    torch.testing.assert_close(x0.var(0), torch.full((2,), v, dtype=torch.float64), rtol=0, atol=0.01)


@pytest.mark.parametrize("T", [1, 4])
def test_the_exact_chain_recovers_every_grid_mode_at_the_mixtures_own_rate(T):
    grid, s = data.grid25(), ddgan.vp_schedule(T)
    out = ddgan.sample(ddgan.MixtureGenerator(grid, s), s, (4000, 2), torch.Generator().manual_seed(0))
    cov = mode_coverage(out.x, grid.means, grid.std)
    assert out.nfe == T and cov["modes"] == 25
    assert cov["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # P(chi2_2 <= 9) = 0.98889


# ----------------------------------------------------------------------------- sampling


class _Counting(nn.Module):
    def __init__(self, dim: int = 2):
        super().__init__()
        self.z_dim, self.calls, self.seen = 3, 0, []
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x_next, z, k):
        self.calls += 1
        self.seen.append((int(k[0]), self.training))
        return 0.5 * x_next * self.w


def test_sample_calls_G_T_times_from_the_same_x_T_as_ddpm():
    s = ddgan.vp_schedule(8)
    G = _Counting().train()
    out = ddgan.sample(G, s, (16, 2), torch.Generator().manual_seed(5), trajectory=True)
    assert G.calls == out.nfe == 8 and [k for k, _ in G.seen] == list(range(7, -1, -1))
    assert not any(training for _, training in G.seen) and G.training  # eval for the call, then restored
    assert out.x.shape == (16, 2) and out.trajectory.shape == (9, 16, 2)
    torch.testing.assert_close(out.trajectory[0], torch.randn(16, 2, generator=torch.Generator().manual_seed(5)))
    torch.testing.assert_close(out.trajectory[-1], out.x)
    again = ddgan.sample(G, s, (16, 2), torch.Generator().manual_seed(5))
    assert torch.equal(again.x, out.x)
    with pytest.raises(ValueError, match="shape must be"):
        ddgan.sample(G, s, (16,), torch.Generator())
    with pytest.raises(ValueError, match="z_dim"):
        ddgan.sample(lambda x, z, k: x, s, (4, 2))


# ----------------------------------------------------------------------------- networks and the step


def test_networks_shapes_and_bad_input():
    G, D = ddgan.PairGenerator(dim=3, z_dim=4, hidden=16, tanh=True), ddgan.PairDiscriminator(dim=3, hidden=16)
    x, k = torch.randn(5, 3), torch.tensor([0, 1, 2, 3, 0])
    x0 = G(x, torch.randn(5, 4), k)
    assert x0.shape == (5, 3) and x0.abs().max() < 1
    assert D(x, k, x0).shape == (5,)
    with pytest.raises(ValueError, match="x_k has shape \\(5, 3\\) but x_next has \\(4, 3\\)"):
        D(x, k, x[:4])
    with pytest.raises(ValueError, match="G needs x_next"):
        G(x, torch.randn(5, 2), k)
    s = ddgan.vp_schedule(4)
    with pytest.raises(ValueError, match="eps_step must have x0's shape"):
        ddgan.q_pair(s, x, k, torch.randn(5, 3), torch.randn(5, 2))
    with pytest.raises(ValueError, match="noise must have x_next's shape"):
        ddgan.posterior_sample(s, x, x, k, torch.randn(5, 2))
    with pytest.raises(ValueError, match="x0 has shape"):
        ddgan.posterior_sample(s, x[:, :2], x, k, torch.randn(5, 3))
    with pytest.raises(ValueError, match="k must be a LongTensor of shape \\(5,\\) with steps in 0..3"):
        ddgan.q_pair(s, x, torch.tensor([0, 1, 2, 3, 4]), torch.randn(5, 3), torch.randn(5, 3))


@pytest.mark.parametrize("kwargs, match", [
    (dict(lazy_reg=0), "lazy_reg"), (dict(r1_gamma=-1.0), "r1_gamma"), (dict(lr_g=0.0), "lr_g"),
    (dict(betas=(0.5, 1.0)), "betas"), (dict(d_steps=0), "d_steps"),
])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ddgan.DDGANConfig(**kwargs)


class _QuadraticD(nn.Module):
    """D(x_k, k, x_{k+1}) = a/2 ||x_k||^2 + b <x_k, x_{k+1}>: grad_{x_k} D = a x_k + b x_{k+1}."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor(0.7)), nn.Parameter(torch.tensor(-0.3))

    def forward(self, x_k, k, x_next):
        return 0.5 * self.a * x_k.pow(2).sum(1) + self.b * (x_k * x_next).sum(1)


def _state(G, D, cfg, seed=0):
    return train.State({"G": G, "D": D}, ddgan.make_optimizers(G, D, cfg), torch.Generator().manual_seed(seed))


def test_r1_on_a_quadratic_D_equals_its_closed_form_and_is_lazy():
    s, cfg = ddgan.vp_schedule(4), ddgan.DDGANConfig(r1_gamma=0.4, lazy_reg=3)
    G, D = ddgan.PairGenerator(hidden=8, z_dim=2), _QuadraticD()
    state = _state(G, D, cfg, seed=11)
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(4))
    # the step's first draws: k, then eps and eps' of the real pair
    g = torch.Generator().manual_seed(11)
    k = torch.randint(0, 4, (32,), generator=g)
    x_k, x_next = ddgan.q_pair(s, x0, k, torch.randn(32, 2, generator=g), torch.randn(32, 2, generator=g))
    grad = 0.7 * x_k + -0.3 * x_next  # (B, 2)
    expected = 0.4 / 2 * grad.pow(2).sum(1).mean()  # gamma/2 E ||grad||^2, not multiplied by lazy_reg
    out = ddgan.ddgan_step(state, x0, cfg, s)
    torch.testing.assert_close(out["r1"], expected, rtol=1e-5, atol=0)
    state.step = 1  # 1 % 3 != 0: no R1 on this step
    assert ddgan.ddgan_step(state, x0, cfg, s)["r1"].item() == 0.0


def test_ddgan_step_trains_with_fit_deterministically():
    def run():
        s, cfg = ddgan.vp_schedule(2), ddgan.DDGANConfig(lr_g=1e-3, lr_d=1e-3, lazy_reg=2, d_steps=2)
        torch.manual_seed(0)
        G, D = ddgan.PairGenerator(hidden=16, z_dim=2), ddgan.PairDiscriminator(hidden=16)
        state = _state(G, D, cfg)
        state.ema["G"] = train.EMA(G, 0.9)
        train.fit(functools.partial(ddgan.ddgan_step, cfg=cfg, schedule=s), state,
                  data.batch_sampler(data.grid25().sample, 32, d_steps=2), 6, progress=False)
        return state, ddgan.sample(state.ema["G"].module, s, (10, 2), torch.Generator().manual_seed(0)).x
    (a, xa), (b, xb) = run(), run()
    assert set(a.history) == {"d_loss", "g_loss", "r1"} and len(a.history["d_loss"]) == 6
    assert all(math.isfinite(v) for v in a.history["d_loss"] + a.history["g_loss"])
    assert a.history == b.history and torch.equal(xa, xb)


def test_ddgan_step_refuses_another_methods_config():
    from ganref.methods.vanilla import VanillaConfig

    G, D = ddgan.PairGenerator(hidden=8), ddgan.PairDiscriminator(hidden=8)
    state = _state(G, D, ddgan.DDGANConfig())
    with pytest.raises(TypeError, match="ddgan.ddgan_step needs a DDGANConfig, got VanillaConfig"):
        ddgan.ddgan_step(state, torch.randn(8, 2), VanillaConfig(), ddgan.vp_schedule(4))
