"""Tests for ganref.methods.diffusion_gan: the injection against DDPM's q_sample and the closed form, the
timestep samplers' probabilities, the adaptive rule on scripted D outputs, the toy JS, the step, bad input."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from scipy.stats import chi2

from ganref import data, nets, probes, train
from ganref.methods import ddpm
from ganref.methods import diffusion_gan as dg


def _alpha_bar(T: int) -> torch.Tensor:
    """The closed form: prod_{s <= t} (1 - beta_s), betas = linspace(1e-4, 0.02, T), float64; index t - 1."""
    return torch.cumprod(1 - torch.linspace(1e-4, 0.02, T, dtype=torch.float64), 0)


# ----------------------------------------------------------------------------- the injection


@pytest.mark.parametrize("T", [1, 5, 37, 1000])
def test_inject_equals_q_sample_with_noise_scaled_by_sigma_and_the_closed_form(T):
    g = torch.Generator().manual_seed(T)
    x, eps = torch.randn(64, 2, generator=g, dtype=torch.float64), torch.randn(64, 2, generator=g, dtype=torch.float64)
    t = torch.randint(1, T + 1, (64,), generator=g)
    schedule, sigma = dg.diffusion_schedule(T), 0.3
    y = dg.inject(schedule, x, t, eps, sigma)
    torch.testing.assert_close(y, ddpm.q_sample(ddpm.linear_schedule(T), x, t - 1, sigma * eps), rtol=0, atol=0)
    abar = _alpha_bar(T)[t - 1][:, None]
    torch.testing.assert_close(y, abar.sqrt() * x + (1 - abar).sqrt() * sigma * eps, rtol=0, atol=1e-12)


def test_t_zero_returns_x_exactly_and_the_rest_is_noised():
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(6, 1, 8, 8, generator=g), torch.randn(6, 1, 8, 8, generator=g)
    t = torch.tensor([0, 3, 0, 10, 0, 1])
    y = dg.inject(dg.diffusion_schedule(10), x, t, eps, 0.05)
    assert torch.equal(y[t == 0], x[t == 0])
    assert not torch.equal(y[t > 0], x[t > 0])


def test_gradients_flow_to_x_with_slope_sqrt_alpha_bar():
    T = 50
    x = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2, 10, 25, 49, 50, 50])
    y = dg.inject(dg.diffusion_schedule(T), x, t, torch.randn(8, 3, dtype=torch.float64), 0.5)
    (grad,) = torch.autograd.grad(y.sum(), x)
    slope = torch.cat([torch.ones(1, dtype=torch.float64), _alpha_bar(T).sqrt()])[t]  # t = 0: slope 1
    torch.testing.assert_close(grad, slope[:, None].expand(8, 3), rtol=0, atol=1e-14)


def test_inject_refuses_bad_timesteps_and_sigma():
    s, x, eps = dg.diffusion_schedule(10), torch.zeros(4, 2), torch.zeros(4, 2)
    with pytest.raises(ValueError, match="t must lie in 0..T = 0..10"):
        dg.inject(s, x, torch.tensor([0, 1, 11, 2]), eps, 0.1)
    with pytest.raises(ValueError, match="t must be a LongTensor of shape"):
        dg.inject(s, x, torch.tensor([0.0, 1.0, 1.0, 2.0]), eps, 0.1)
    with pytest.raises(ValueError, match="sigma"):
        dg.inject(s, x, torch.tensor([0, 1, 1, 2]), eps, 0.0)


# ----------------------------------------------------------------------------- timestep sampling


def test_timestep_probabilities_are_exact():
    T, c = 10, 0.5
    t = torch.arange(1, T + 1, dtype=torch.float64)
    expected = {"priority": t / 55, "priority_code": (t - 1) / 45,
                "uniform": torch.full((T,), 0.1, dtype=torch.float64)}
    for name, w in expected.items():
        p = dg.timestep_probs(T, name, c)
        assert p.shape == (T + 1,) and p.dtype == torch.float64
        torch.testing.assert_close(p, torch.cat([torch.tensor([c], dtype=torch.float64), (1 - c) * w]),
                                   rtol=0, atol=1e-15)
        assert abs(float(p.sum()) - 1) < 1e-14
    assert float(dg.timestep_probs(T, "priority_code", c)[1]) == 0.0  # the code never draws t = 1
    torch.testing.assert_close(dg.timestep_probs(4, "priority", 0.0),
                               torch.tensor([0, .1, .2, .3, .4], dtype=torch.float64))
    assert torch.equal(dg.timestep_probs(7, "uniform", 1.0), torch.tensor([1.0] + [0.0] * 7, dtype=torch.float64))


@pytest.mark.parametrize("sampling, clean", [("priority", 0.5), ("uniform", 0.25), ("priority_code", 0.0)])
def test_samplers_match_their_probabilities_chi_square(sampling, clean):
    T, n = 12, 120_000
    draws = dg.sample_timesteps(n, T, sampling, clean, torch.Generator().manual_seed(1))
    assert draws.dtype == torch.long and draws.shape == (n,)
    p = dg.timestep_probs(T, sampling, clean)
    counts = torch.bincount(draws, minlength=T + 1).double()
    assert int(counts[p == 0].sum()) == 0  # impossible timesteps never appear
    keep = p > 0
    stat = float((((counts - n * p)[keep]) ** 2 / (n * p[keep])).sum())
    assert chi2.sf(stat, int(keep.sum()) - 1) > 1e-3, stat


# ----------------------------------------------------------------------------- the adaptive rule


def test_ada_update_and_length_formulas_with_both_clips():
    assert dg.ada_update(0.0, 0.9, 0.6, 64, 4, 100) == pytest.approx(64 * 4 / 100_000, abs=1e-17)  # 0.00256
    assert dg.ada_update(0.5, 0.1, 0.6, 64, 4, 100) == pytest.approx(0.5 - 0.00256, abs=1e-15)
    assert dg.ada_update(0.3, 0.6, 0.6, 64, 4, 100) == 0.3  # sign(0) = 0
    assert dg.ada_update(0.999, 1.0, 0.6, 64, 4, 100) == 1.0 and dg.ada_update(0.001, -1.0, 0.6, 64, 4, 100) == 0.0
    # 0.5 * 995 = 497.5 -> 498 (half to even); 0.00256 * 995 = 2.5472 -> 3
    assert [dg.diffusion_length(p, 5, 1000) for p in (0.0, 0.5, 1.0, 0.00256)] == [5, 503, 1000, 8]
    assert dg.diffusion_length(0.5, 10, 10) == 10


def test_adaptive_diffusion_on_scripted_discriminator_outputs():
    cfg = dg.DiffusionGANConfig(T_min=5, T_max=105, ada_kimg=2.5, ada_interval=4)  # B = 250: p moves by 0.4
    diff = dg.AdaptiveDiffusion(cfg)
    assert (int(diff.T), float(diff.p)) == (5, 0.0)

    def outputs(n_pos: int, n_neg: int) -> torch.Tensor:  # (250,) logits with sign mean (n_pos - n_neg) / 250
        return torch.cat([torch.full((n_pos,), 2.0), torch.full((n_neg,), -3.0), torch.zeros(250 - n_pos - n_neg)])

    script = [(240, 10)] * 3 + [(10, 200)] * 4 + [(200, 50)]  # r_d 0.92, then -0.76, then exactly 0.6
    seen_p, seen_T = [], []
    for n_pos, n_neg in script:
        for k in range(4):
            diff.observe(outputs(n_pos, n_neg), cfg)
            if k < 3:  # nothing moves between adjustments
                assert int(diff.updates) == k + 1
        seen_p.append(float(diff.p))
        seen_T.append(int(diff.T))
    assert seen_p == pytest.approx([0.4, 0.8, 1.0, 0.6, 0.2, 0.0, 0.0, 0.0], abs=1e-12)
    assert seen_T == [45, 85, 105, 65, 25, 5, 5, 5]
    assert float(diff.r_d) == pytest.approx(0.6, abs=1e-15)


# ----------------------------------------------------------------------------- the toy JS


def test_toy_js_quadrature_shape_closed_forms_and_monte_carlo():
    abar, sigma = float(_alpha_bar(1000)[499]), 0.05
    theta = torch.linspace(0, 1, 41, dtype=torch.float64)
    js = dg.toy_js(theta, abar, sigma)
    assert abs(float(js[0])) < 1e-15  # 0 at theta = 0
    assert bool((js[1:] > js[:-1]).all()) and bool((js < math.log(2)).all())  # increasing, below log 2
    torch.testing.assert_close(dg.toy_js(-theta, abar, sigma), js, rtol=0, atol=1e-15)  # even in theta
    # small gaps: JS(N(0, 1), N(delta, 1)) = delta^2 / 8 + O(delta^4)
    b = (1 - abar) * sigma**2
    small = 1e-3 * math.sqrt(b / abar)  # delta = 1e-3
    assert float(dg.toy_js(small, abar, sigma)) == pytest.approx(1e-6 / 8, rel=1e-5)
    # t = 0 (clean): log 2 for every theta != 0
    torch.testing.assert_close(dg.toy_js(torch.tensor([0.0, 1e-6, -0.3, 2.0]), 1.0, sigma),
                               torch.tensor([0.0, math.log(2), math.log(2), math.log(2)], dtype=torch.float64))
    # a nonzero slope that G can follow
    th = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(dg.toy_js(th, abar, sigma), th)
    assert float(slope) > 1e-3
    g = torch.Generator().manual_seed(0)
    for value in (0.05, 0.2, 0.6):
        est, se = dg.toy_js_monte_carlo(value, abar, sigma, n=200_000, generator=g)
        assert abs(est - float(dg.toy_js(value, abar, sigma))) < 4 * se, (value, est, se)


# ----------------------------------------------------------------------------- networks and the step


def test_discriminators_take_t_and_depend_on_it():
    torch.manual_seed(0)
    D = dg.TimeMLPDiscriminator(in_dim=2, hidden=16, depth=3)
    y = torch.randn(5, 2)
    out0, out1 = D(y, torch.zeros(5, dtype=torch.long)), D(y, torch.full((5,), 300))
    assert out0.shape == (5,) and not torch.allclose(out0, out1)
    C = dg.TimeConvDiscriminator(channels=1, width=8)
    assert C(torch.randn(3, 1, 8, 8), torch.tensor([0, 5, 900])).shape == (3,)
    with pytest.raises(ValueError, match="D needs y"):
        D(torch.randn(5, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="D needs y"):
        C(torch.randn(3, 1, 8, 8), torch.zeros(2, dtype=torch.long))


def test_diffused_critic_at_t_zero_is_d_itself():
    torch.manual_seed(1)
    D, x = dg.TimeMLPDiscriminator(hidden=16), torch.randn(7, 2)
    t = torch.zeros(7, dtype=torch.long)
    f = dg.diffused_critic(D, dg.diffusion_schedule(20), t, torch.randn(7, 2), 0.5)
    torch.testing.assert_close(probes.gradient_norms(f, x), probes.gradient_norms(lambda v: D(v, t), x))


def _state(cfg, seed=0, width=16):
    G = nets.MLPGenerator(2, 2, width, 2)
    D = dg.TimeMLPDiscriminator(2, width, 2)
    return train.State({"G": G, "D": D, "diffusion": dg.AdaptiveDiffusion(cfg)}, dg.make_optimizers(G, D, cfg),
                       torch.Generator().manual_seed(seed))


def test_step_trains_traces_T_and_resumes_exactly(tmp_path):
    cfg = dg.DiffusionGANConfig(lr=1e-3, T_min=2, T_max=50, ada_kimg=0.05, d_steps=2, r1_gamma=0.1, sigma=0.5)
    batches = data.batch_sampler(data.mixture("grid25").sample, 32, d_steps=2)
    step = functools.partial(dg.diffusion_gan_step, cfg=cfg)
    torch.manual_seed(0)
    whole = train.fit(step, _state(cfg), batches, 12, progress=False)
    assert set(whole.history) >= {"d_loss", "g_loss", "r1", "T", "p", "r_d"}
    assert len(set(whole.history["T"])) > 1  # p moves by 32 * 4 / 50 = 2.56 per adjustment: T hits a clip
    assert all(2 <= T <= 50 for T in whole.history["T"])
    torch.manual_seed(0)
    ckpt = tmp_path / "run.pt"
    train.fit(step, _state(cfg), batches, 6, checkpoint=ckpt, progress=False)
    resumed = train.fit(step, _state(cfg), batches, 12, checkpoint=ckpt, progress=False)
    assert resumed.history["T"] == whole.history["T"] and resumed.history["p"] == whole.history["p"]
    for name in ("G", "D", "diffusion"):
        for a, b in zip(whole.modules[name].state_dict().values(), resumed.modules[name].state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_generator_learns_through_the_injection():
    cfg = dg.DiffusionGANConfig(clean_share=0.0, T_min=900, T_max=900)  # never a clean sample
    state = _state(cfg)
    before = [p.detach().clone() for p in state.modules["G"].parameters()]
    dg.diffusion_gan_step(state, data.mixture("grid25").sample(16, torch.Generator().manual_seed(0)), cfg)
    assert all(not torch.equal(a, b) for a, b in zip(before, state.modules["G"].parameters()))


def test_toy_run_scores_2500_samples():
    run = dg.toy_diffusion_gan("grid25", dg.DiffusionGANConfig(), seed=3, steps=3, width=8, depth=2, batch_size=16)
    assert run.samples.shape == (2500, 2) and run.coverage["n_modes"] == 25 and run.state.step == 3


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, match", [
    (dict(d_target=0.0), "d_target"), (dict(d_target=1.0), "d_target"), (dict(d_target=1.5), "d_target"),
    (dict(T_min=50, T_max=10), "T_min must be <= T_max"), (dict(sigma=0.0), "sigma"), (dict(sigma=-1.0), "sigma"),
    (dict(sampling="importance"), "sampling must be one of 'priority', 'priority_code', 'uniform'"),
    (dict(clean_share=1.5), "clean_share"), (dict(T_min=0), "T_min"), (dict(ada_interval=0), "ada_interval"),
    (dict(sampling="priority_code", T_min=1), "T_min >= 2"), (dict(t_conditional=1), "t_conditional"),
])
def test_bad_config_is_refused_with_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dg.DiffusionGANConfig(**kwargs)


def test_bad_arguments_and_another_methods_config():
    with pytest.raises(ValueError, match="sampling must be one of"):
        dg.timestep_probs(10, "importance")
    with pytest.raises(ValueError, match="needs T >= 2"):
        dg.timestep_probs(1, "priority_code")
    with pytest.raises(ValueError, match="alpha_bar"):
        dg.toy_js(0.1, 0.0, 0.05)
    from ganref.methods.vanilla import VanillaConfig
    with pytest.raises(TypeError, match="DiffusionGANConfig"):
        dg.diffusion_gan_step(_state(dg.DiffusionGANConfig()), torch.zeros(4, 2), VanillaConfig())
