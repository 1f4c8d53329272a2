import functools
import math

import pytest
import torch

from ganref import data, train, unet
from ganref.methods import ddpm
from ganref.methods.vanilla import VanillaConfig
from ganref.modes import mode_coverage

F64 = dict(rtol=0, atol=1e-10)


@pytest.fixture(scope="module")
def lin():
    return ddpm.linear_schedule(1000)


def _cos_f(u: float, s: float = 0.008) -> float:
    return math.cos((u + s) / (1 + s) * math.pi / 2) ** 2


# ----------------------------------------------------------------------------- schedules


def test_linear_schedule_alpha_bar_is_the_product_of_one_minus_beta(lin):
    assert lin.T == 1000 and lin.betas.dtype == lin.alpha_bar.dtype == torch.float64
    betas = [1e-4 + (0.02 - 1e-4) * i / 999 for i in range(1000)]
    torch.testing.assert_close(lin.betas, torch.tensor(betas, dtype=torch.float64), **F64)
    prod, expected = 1.0, []
    for b in betas:
        prod *= 1 - b
        expected.append(prod)
    torch.testing.assert_close(lin.alpha_bar, torch.tensor(expected, dtype=torch.float64), **F64)
    # values computed with Ho's numpy schedule (references/diffusion-hybrids-distillation.md, sec. 1)
    assert lin.alpha_bar[0].item() == pytest.approx(0.9999, rel=1e-12)
    assert lin.alpha_bar[499].item() == pytest.approx(0.078587, rel=1e-5)
    assert lin.alpha_bar[999].item() == pytest.approx(4.0358e-5, rel=1e-4)
    assert lin.alpha_bar_prev[0] == 1 and torch.equal(lin.alpha_bar_prev[1:], lin.alpha_bar[:-1])


def test_cosine_schedule_matches_f_ratio_and_clips_the_last_beta():
    cos = ddpm.cosine_schedule(1000)
    for k in (0, 1, 10, 499, 900, 997, 998):
        assert cos.alpha_bar[k].item() == pytest.approx(_cos_f((k + 1) / 1000) / _cos_f(0), abs=1e-10)
    assert cos.betas[-1].item() == 0.999  # only the last beta reaches max_beta
    assert cos.betas[:-1].max().item() < 0.999
    assert cos.betas[0].item() == pytest.approx(4.128e-5, rel=1e-3)
    assert cos.alpha_bar[499].item() == pytest.approx(0.49384, rel=1e-4)
    assert cos.alpha_bar[999].item() == pytest.approx(2.43e-9, rel=1e-2)
    assert ddpm.cosine_schedule(10, max_beta=0.5).betas.max().item() == 0.5


def test_from_betas_and_respacing(lin):
    torch.testing.assert_close(ddpm.Schedule.from_betas([0.1, 0.2]).alpha_bar, torch.tensor([0.9, 0.72], dtype=torch.float64), **F64)
    kept = ddpm.spaced_steps(1000, 50)
    assert kept[0] == 0 and kept[-1] == 999 and len(set(kept.tolist())) == 50
    assert ddpm.spaced_steps(1000, 1).tolist() == [999] and ddpm.spaced_steps(4, 4).tolist() == [0, 1, 2, 3]
    short = lin.respace(50)
    assert short.T == 50 and torch.equal(short.timesteps, kept)
    torch.testing.assert_close(short.alpha_bar, lin.alpha_bar[kept], rtol=1e-13, atol=0)
    same = lin.respace(1000)
    torch.testing.assert_close(same.betas, lin.betas, rtol=1e-10, atol=0)


# ----------------------------------------------------------------------------- closed forms


def test_q_sample_posterior_and_x0_equal_their_closed_forms(lin):
    g = torch.Generator().manual_seed(0)
    x0, eps, x_k = (torch.randn(6, 3, generator=g, dtype=torch.float64) for _ in range(3))
    k = torch.tensor([0, 1, 2, 500, 998, 999])
    xq = ddpm.q_sample(lin, x0, k, eps)
    mean, var = ddpm.posterior(lin, x0, x_k, k)
    assert var.shape == (6, 1)
    for i, kv in enumerate(k.tolist()):
        b = lin.betas[kv].item()
        ab = math.prod(1 - lin.betas[s].item() for s in range(kv + 1))
        ab_prev = ab / (1 - b)
        torch.testing.assert_close(xq[i], math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * eps[i], **F64)  # Eq. (4)
        c1 = math.sqrt(ab_prev) * b / (1 - ab)  # Eq. (7)
        c2 = math.sqrt(1 - b) * (1 - ab_prev) / (1 - ab)
        torch.testing.assert_close(mean[i], c1 * x0[i] + c2 * x_k[i], **F64)
        assert var[i, 0].item() == pytest.approx((1 - ab_prev) / (1 - ab) * b, abs=1e-12)
    assert var[0, 0].item() == pytest.approx(0.0, abs=1e-16) and torch.allclose(mean[0], x0[0], rtol=0, atol=1e-10)
    # predict_x0 inverts q_sample, Eq. (15)
    torch.testing.assert_close(ddpm.predict_x0(lin, xq, k, eps), x0, rtol=0, atol=1e-8)


def test_eps_form_of_the_posterior_mean_equals_the_x0_form(lin):
    g = torch.Generator().manual_seed(1)
    x_k, eps_hat = (torch.randn(5, 2, generator=g, dtype=torch.float64) for _ in range(2))
    k = torch.tensor([1, 2, 100, 500, 999])
    mean, _ = ddpm.posterior(lin, ddpm.predict_x0(lin, x_k, k, eps_hat), x_k, k)
    b, ab = lin.betas[k][:, None], lin.alpha_bar[k][:, None]
    eps_form = (x_k - b / (1 - ab).sqrt() * eps_hat) / (1 - b).sqrt()  # Eq. (11)
    torch.testing.assert_close(mean, eps_form, **F64)


@pytest.mark.parametrize("k, k_prev, eta", [(999, 979, 0.0), (500, 499, 0.5), (40, 0, 1.0), (20, -1, 0.7)])
def test_ddim_step_equals_eq_12(lin, k, k_prev, eta):
    g = torch.Generator().manual_seed(2)
    x_k, eps_hat, z = (torch.randn(4, 2, generator=g, dtype=torch.float64) for _ in range(3))
    a = lin.alpha_bar[k].item()
    a_prev = 1.0 if k_prev < 0 else lin.alpha_bar[k_prev].item()
    sigma = eta * math.sqrt((1 - a_prev) / (1 - a)) * math.sqrt(1 - a / a_prev)  # Eq. (16)
    x0 = (x_k - math.sqrt(1 - a) * eps_hat) / math.sqrt(a)
    expected = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - sigma**2) * eps_hat + sigma * z  # Eq. (12)
    torch.testing.assert_close(ddpm.ddim_step(lin, eps_hat, x_k, k, k_prev, eta, noise=z), expected, **F64)
    if k_prev < 0:  # the last step returns x0_hat
        torch.testing.assert_close(expected, x0, **F64)


def test_ddim_with_eta_1_on_consecutive_steps_is_the_ddpm_posterior_step(lin):
    g = torch.Generator().manual_seed(3)
    x_k, eps_hat, z = (torch.randn(3, 2, generator=g, dtype=torch.float64) for _ in range(3))
    for kv in (1, 2, 10, 500, 999):
        k = torch.full((3,), kv)
        mean, var = ddpm.posterior(lin, ddpm.predict_x0(lin, x_k, k, eps_hat), x_k, k)
        a, a_prev = lin.alpha_bar[kv].item(), lin.alpha_bar[kv - 1].item()
        sigma2 = (1 - a_prev) / (1 - a) * (1 - a / a_prev)  # Eq. (16) at eta = 1, squared
        assert sigma2 == pytest.approx(var[0, 0].item(), rel=1e-10)  # = beta_tilde
        torch.testing.assert_close(ddpm.ddim_step(lin, eps_hat, x_k, kv, kv - 1, 1.0, noise=z),
                                   mean + var.sqrt() * z, rtol=0, atol=1e-9)


# ----------------------------------------------------------------------------- samplers


class Counter:
    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, x, k):
        self.calls += 1
        assert k.dtype == torch.long and k.shape == (x.shape[0],)
        return self.model(x, k)


def test_samplers_call_the_model_exactly_T_or_steps_times():
    sch, mix = ddpm.linear_schedule(100), data.grid25()
    for run, expected in [(lambda m: ddpm.sample_ddpm(m, sch, (4, 2)), 100),
                          (lambda m: ddpm.sample_ddpm(m, sch.respace(10), (4, 2)), 10),
                          (lambda m: ddpm.sample_ddim(m, sch, (4, 2), 7, eta=0.3), 7),
                          (lambda m: ddpm.sample_ddim(m, sch, (4, 2), 1), 1)]:
        counter = Counter(ddpm.MixtureDenoiser(mix, sch))
        out = run(counter)
        assert counter.calls == out.nfe == expected and out.x.shape == (4, 2) and out.trajectory is None


def test_ddim_eta_0_is_deterministic_given_x_T(lin):
    mix = data.grid25()
    model = ddpm.MixtureDenoiser(mix, lin)
    g = torch.Generator().manual_seed(4)
    out = ddpm.sample_ddim(model, lin, (16, 2), 20, eta=0.0, generator=g, trajectory=True)
    assert torch.equal(g.get_state(), _after_one_draw(4, (16, 2)))  # nothing but x_T was drawn
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out.trajectory[0], x)
    kept = ddpm.spaced_steps(1000, 20).tolist()
    for i in range(19, -1, -1):  # the same ODE steps by hand
        kk = torch.full((16,), kept[i])
        x = ddpm.ddim_step(lin, model(x, kk), x, kept[i], kept[i - 1] if i else -1)
    assert torch.equal(out.x, x) and out.trajectory.shape == (21, 16, 2)
    again = ddpm.sample_ddim(model, lin, (16, 2), 20, generator=torch.Generator().manual_seed(4))
    assert torch.equal(again.x, out.x)


def _after_one_draw(seed, shape):
    g = torch.Generator().manual_seed(seed)
    torch.randn(*shape, generator=g)
    return g.get_state()


def test_ddpm_on_a_respaced_schedule_is_ddim_with_eta_1(lin):
    model = ddpm.MixtureDenoiser(data.grid25(), lin)
    a = ddpm.sample_ddpm(model, lin.respace(25), (64, 2), torch.Generator().manual_seed(5))
    b = ddpm.sample_ddim(model, lin, (64, 2), 25, eta=1.0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a.x, b.x, rtol=0, atol=1e-4)  # float32 samples, same noise stream


def test_exact_mixture_denoiser_obeys_tweedie(lin):
    mix = data.GaussianMixture(torch.tensor([[-1.0, 0.0], [2.0, 0.5], [0.0, 3.0]], dtype=torch.float64), 0.3)
    model = ddpm.MixtureDenoiser(mix, lin)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    for kv in (0, 50, 300, 900):
        a = lin.alpha_bar[kv].item()
        diffused = data.GaussianMixture(mix.means * math.sqrt(a), math.sqrt(a * 0.09 + 1 - a))
        xg = x.clone().requires_grad_(True)
        score = torch.autograd.grad(diffused.log_prob(xg).sum(), xg)[0]
        k = torch.full((6,), kv)
        # Tweedie: E[x0 | x_k] = (x_k + (1 - a) score) / sqrt(a); E[eps | x_k] = -sqrt(1 - a) score
        torch.testing.assert_close(model.x0(x, k), (x + (1 - a) * score) / math.sqrt(a), rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(model(x, k), -math.sqrt(1 - a) * score, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_exact_denoiser_recovers_every_grid25_mode(lin, sampler):
    mix = data.grid25()
    model = ddpm.MixtureDenoiser(mix, lin)
    g = torch.Generator().manual_seed(7)
    out = ddpm.sample_ddpm(model, lin, (500, 2), g) if sampler == "ddpm" else \
        ddpm.sample_ddim(model, lin, (500, 2), 50, generator=g)
    cov = mode_coverage(out.x, mix.means, mix.std)
    assert cov["modes"] == 25 and cov["high_quality"] >= 0.96  # the mixture itself: 1 - exp(-4.5) = 0.989


# ----------------------------------------------------------------------------- training


def test_ddpm_step_takes_the_loss_of_algorithm_1(lin):
    torch.manual_seed(0)
    net = unet.MLPDenoiser(hidden=16, depth=1, t_dim=8)
    cfg = ddpm.DDPMConfig(lr=1e-3, ema_decay=0.9)
    state = train.State({"eps": net}, ddpm.make_optimizers(net, cfg), torch.Generator().manual_seed(8),
                        ema={"eps": train.EMA(net, cfg.ema_decay)})
    x0 = data.grid25().sample(32, torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(8)  # replay the step's draws: k, then eps
    k, eps = torch.randint(0, 1000, (32,), generator=g), torch.randn(32, 2, generator=g)
    with torch.no_grad():
        expected = ddpm.eps_loss(net(ddpm.q_sample(lin, x0, k, eps), k), eps)
    out = ddpm.ddpm_step(state, x0, cfg, lin)
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    step = functools.partial(ddpm.ddpm_step, cfg=cfg, schedule=lin)
    train.fit(step, state, data.batch_sampler(data.grid25().sample, 64), 3, progress=False)
    assert state.step == 3 and state.ema["eps"].updates.item() == 3
    with pytest.raises(TypeError, match="ddpm.ddpm_step needs a DDPMConfig, got VanillaConfig"):
        ddpm.ddpm_step(state, x0, VanillaConfig(), lin)


def test_eps_loss_per_sample_and_mean():
    eps, eps_hat = torch.zeros(3, 2, 2), torch.arange(12.0).view(3, 2, 2)
    per = ddpm.eps_loss_per_sample(eps_hat, eps)
    torch.testing.assert_close(per, torch.tensor([3.5, 31.5, 91.5]))
    assert ddpm.eps_loss(eps_hat, eps).item() == pytest.approx(per.mean().item())


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda s: ddpm.linear_schedule(0), "T must be an integer >= 1"),
    (lambda s: ddpm.cosine_schedule(0), "T must be an integer >= 1"),
    (lambda s: ddpm.linear_schedule(10, beta_end=1.5), "beta_end must be a finite number"),
    (lambda s: ddpm.Schedule.from_betas([0.5, 1.0]), r"values in \(0, 1\)"),
    (lambda s: ddpm.Schedule.from_betas([0.0, 0.1]), r"values in \(0, 1\)"),
    (lambda s: ddpm.q_sample(s, torch.zeros(2, 2), torch.tensor([0, 1000]), torch.zeros(2, 2)), r"k must lie in 0..999"),
    (lambda s: ddpm.posterior(s, torch.zeros(2, 2), torch.zeros(2, 2), torch.tensor([-1, 3])), r"k must lie in 0..999"),
    (lambda s: ddpm.q_sample(s, torch.zeros(2, 2), torch.tensor([0.0, 1.0]), torch.zeros(2, 2)), "k must be a LongTensor"),
    (lambda s: ddpm.q_sample(s, torch.zeros(2, 2), torch.tensor([0, 1]), torch.zeros(2, 3)),
     r"x0 has shape \(2, 2\) but eps has \(2, 3\)"),
    (lambda s: ddpm.ddim_step(s, torch.zeros(2, 2), torch.zeros(2, 2), 5, 5), "k_prev in -1..k-1"),
    (lambda s: ddpm.ddim_step(s, torch.zeros(2, 2), torch.zeros(2, 2), 1000, 5), r"k must be in 0..999"),
    (lambda s: ddpm.ddim_step(s, torch.zeros(2, 2), torch.zeros(2, 2), 9, 5, eta=-0.1), "eta must be a finite number >= 0"),
    (lambda s: ddpm.ddim_step(s, torch.zeros(2, 2), torch.zeros(2, 2), 9, 5, eta=1.0), "noise must be given"),
    (lambda s: ddpm.sample_ddim(_zero, s, (2, 2), 0), "steps must be an integer >= 1"),
    (lambda s: ddpm.sample_ddim(_zero, s, (2, 2), 1001), r"steps must be an integer in 1..T = 1..1000"),
    (lambda s: ddpm.sample_ddim(_zero, s, (2, 2), 10, eta=-1.0), "eta must be a finite number >= 0"),
    (lambda s: ddpm.sample_ddpm(_zero, s, (2,)), "shape must be"),
    (lambda s: s.respace(0), "steps must be an integer >= 1"),
    (lambda s: ddpm.DDPMConfig(lr=-1.0), "lr must be a finite number"),
    (lambda s: ddpm.DDPMConfig(grad_clip=0.0), "grad_clip must be a finite number > 0"),
    (lambda s: ddpm.DDPMConfig(ema_decay=1.0), "ema_decay must be a finite number"),
    (lambda s: ddpm.MixtureDenoiser(data.grid25(), s)(torch.zeros(2, 3), torch.tensor([0, 1])), r"x_k must have shape \(B, 2\)"),
])
def test_bad_input_names_the_argument(lin, call, match):
    with pytest.raises(ValueError, match=match):
        call(lin)


def _zero(x, k):
    return torch.zeros_like(x)
