"""Tests for ganref/wgan.py: penalties against closed forms, gradchecks, clipping, exact W1, steps."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from ganref.data import batch_sampler, ring8
from ganref.nets import MLPDiscriminator, MLPGenerator
from ganref.train import State, fit
from ganref.wgan import (
    R1R2Config, WGANConfig, WGANGPConfig, clip_weights, critic_activation_gradient_norms, critic_batch_size,
    critic_gradient_norms, critic_layer_gradient_norms, critic_loss, critic_weight_stats, exact_w1, generator_loss,
    gradient_penalty, make_optimizers, r1_penalty, r1r2_step, r2_penalty, wgan_gp_step, wgan_step,
)

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sym(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=_gen(seed), dtype=F64)
    return (a + a.T) / 2


# ----------------------------------------------------------------------------- WGAN losses


def test_wgan_losses_are_the_mean_differences():
    d_real = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    d_fake = torch.tensor([-1.0, 0.5], dtype=F64)
    torch.testing.assert_close(critic_loss(d_real, d_fake), torch.tensor(-0.25 - 2.0, dtype=F64), rtol=0, atol=1e-15)
    torch.testing.assert_close(generator_loss(d_fake), torch.tensor(0.25, dtype=F64), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- gradient penalty


def test_gradient_penalty_is_exact_for_a_linear_critic():
    # f(x) = w.x + b has gradient w everywhere, so the penalty is lambda (||w|| - 1)^2 for any x_hat.
    # Both sides of 1: the penalty is two-sided, so ||w|| < 1 is penalized too.
    b = torch.tensor(0.7, dtype=F64)
    real = torch.randn(64, 3, generator=_gen(1), dtype=F64)
    fake = torch.randn(64, 3, generator=_gen(2), dtype=F64) + 5
    for w, lam in [(torch.tensor([0.3, -1.2, 2.0], dtype=F64), lam) for lam in (10.0, 0.1, 0.0)] + \
                  [(torch.tensor([0.1, 0.2, -0.3], dtype=F64), 10.0)]:
        gp = gradient_penalty(lambda x: x @ w + b, real, fake, lam, generator=_gen(3))
        expected = lam * (w.norm().item() - 1) ** 2
        assert gp.dtype == F64
        assert abs(gp.item() - expected) <= 1e-12 * max(1.0, expected)


def _quadratic_critic(A: torch.Tensor, b: torch.Tensor):
    """D(x) = x^T A x / 2 + b.x on flattened x (A symmetric): grad D(x) = A x + b."""
    def critic(x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)
        return 0.5 * ((v @ A) * v).sum(1) + v @ b
    return critic


@pytest.mark.parametrize("shape", [(32, 4), (16, 2, 3, 3)])
def test_gradient_penalty_uses_one_eps_per_sample(shape):
    # A critic whose gradient depends on x_hat (quadratic), checked against the per-sample closed
    # form with the same eps draws: a per-element eps would give different x_hat and fail.
    B, d = shape[0], int(np.prod(shape[1:]))
    A, b = _sym(d, 10), torch.randn(d, generator=_gen(11), dtype=F64)
    real = torch.randn(*shape, generator=_gen(12), dtype=F64)
    fake = torch.randn(*shape, generator=_gen(13), dtype=F64) * 2 + 1
    lam = 3.0
    gp = gradient_penalty(_quadratic_critic(A, b), real, fake, lam, generator=_gen(7))

    eps = torch.rand(B, generator=_gen(7), dtype=F64)  # the same stream: one number per sample
    x_hat = eps[:, None] * real.flatten(1) + (1 - eps[:, None]) * fake.flatten(1)  # (B, d)
    norms = (x_hat @ A + b).norm(dim=1)  # ||A x_hat + b|| per sample
    expected = lam * ((norms - 1) ** 2).mean()
    assert abs(gp.item() - expected.item()) <= 1e-12 * expected.item()

    # And directly: every x_hat the critic sees lies on its segment at one ratio per sample.
    seen = []
    gradient_penalty(lambda x: (seen.append(x.detach()), _quadratic_critic(A, b)(x))[1],
                     real, fake, lam, generator=_gen(7))
    ratio = ((seen[0] - fake) / (real - fake)).flatten(1)  # eps_i in every coordinate
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=0, atol=1e-12)
    assert ratio[:, 0].std() > 0.1  # and it does vary between samples


def test_gradient_penalty_gradcheck_parameters_and_inputs():
    # Smooth two-layer critic; eps fixed by reseeding the generator on every call.
    g = _gen(20)
    W1 = torch.randn(5, 3, generator=g, dtype=F64, requires_grad=True)
    b1 = torch.randn(5, generator=g, dtype=F64, requires_grad=True)
    w2 = torch.randn(5, generator=g, dtype=F64, requires_grad=True)
    real = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)
    fake = torch.randn(6, 3, generator=g, dtype=F64, requires_grad=True)

    def penalty(W1, b1, w2, real, fake):
        critic = lambda x: torch.tanh(x @ W1.T + b1) @ w2  # noqa: E731
        return gradient_penalty(critic, real, fake, 2.5, generator=_gen(21))

    assert torch.autograd.gradcheck(penalty, (W1, b1, w2, real, fake), eps=1e-6, atol=1e-8, rtol=1e-6)


def test_gradient_penalty_trains_module_parameters():
    # With an nn.Module critic the penalty reaches its parameters (double backprop) and matches a
    # hand-computed gradient for a linear critic: d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||.
    lin = nn.Linear(3, 1).double()
    x = torch.randn(8, 3, generator=_gen(0), dtype=F64)
    gp = gradient_penalty(lin, x, x.flip(0), 4.0, generator=_gen(1))
    gp.backward()
    w = lin.weight.detach()[0]
    expected = 2 * 4.0 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(lin.weight.grad[0], expected, rtol=0, atol=1e-12)
    assert lin.bias.grad is None or lin.bias.grad.abs().max().item() == 0.0  # the bias has no input gradient


# ----------------------------------------------------------------------------- R1 / R2


def test_r1_r2_equal_their_closed_forms_on_a_quadratic_critic():
    d = 4
    A, b = _sym(d, 30), torch.randn(d, generator=_gen(31), dtype=F64)
    critic = _quadratic_critic(A, b)
    real = torch.randn(50, d, generator=_gen(32), dtype=F64)
    fake = torch.randn(50, d, generator=_gen(33), dtype=F64) * 3
    gamma = 0.7
    for pen, x in ((r1_penalty, real), (r2_penalty, fake)):
        expected = gamma / 2 * (x @ A + b).pow(2).sum(1).mean()  # gamma/2 E ||A x + b||^2
        got = pen(critic, x, gamma)
        assert abs(got.item() - expected.item()) <= 1e-12 * expected.item()
    assert r1_penalty(critic, real, 0.0).item() == 0.0


def test_r1_gradcheck_parameters():
    g = _gen(40)
    A = torch.randn(3, 3, generator=g, dtype=F64)
    A = ((A + A.T) / 2).requires_grad_(True)
    b = torch.randn(3, generator=g, dtype=F64, requires_grad=True)
    x = torch.randn(7, 3, generator=g, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda A, b, x: r1_penalty(_quadratic_critic(A, b), x, 1.3),
                                    (A, b, x), eps=1e-6, atol=1e-8, rtol=1e-6)


# ----------------------------------------------------------------------------- clipping


def test_clip_weights_clamps_and_keeps_inner_values():
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.linspace(-0.05, 0.05, 12).view(3, 4))
        lin.bias.copy_(torch.tensor([0.005, -0.2, 0.02]))
    clip_weights(lin, 0.01)
    expected = torch.linspace(-0.05, 0.05, 12).view(3, 4).clamp(-0.01, 0.01)
    torch.testing.assert_close(lin.weight.data, expected, rtol=0, atol=0)
    torch.testing.assert_close(lin.bias.data, torch.tensor([0.005, -0.01, 0.01]), rtol=0, atol=0)


def _state(cfg, seed=0, hidden=32, depth=2):
    torch.manual_seed(seed)
    G, D = MLPGenerator(hidden=hidden, depth=depth), MLPDiscriminator(hidden=hidden, depth=depth)
    return State(modules={"G": G, "D": D}, optimizers=make_optimizers(G, D, cfg), generator=_gen(seed))


def test_after_a_clipped_step_every_critic_weight_is_within_c():
    cfg = WGANConfig(lr=0.05, c=0.01, n_critic=2)
    state = _state(cfg)
    D = state.modules["D"]
    assert max(p.abs().max().item() for p in D.parameters()) > 0.1  # the default init is far outside
    real = ring8().sample(critic_batch_size(cfg, 16), _gen(1))
    wgan_step(state, real, cfg)
    w = torch.cat([p.detach().flatten() for p in D.parameters()])
    assert w.abs().max().item() <= cfg.c
    stats = critic_weight_stats(D, cfg.c)
    assert stats["max_abs"] <= cfg.c and stats["n"] == w.numel()
    # the shares agree with a direct count
    assert stats["at_upper"] == pytest.approx((w >= 0.0099).double().mean().item(), abs=1e-12)
    assert stats["at_lower"] == pytest.approx((w <= -0.0099).double().mean().item(), abs=1e-12)
    assert stats["at_bound"] == pytest.approx(stats["at_upper"] + stats["at_lower"], abs=1e-12)
    assert stats["at_bound"] > 0.5  # a big step pushes most weights to the box


# ----------------------------------------------------------------------------- diagnostics


def test_critic_gradient_norms_closed_forms():
    d = 3
    A, b = _sym(d, 50), torch.randn(d, generator=_gen(51), dtype=F64)
    x = torch.randn(20, d, generator=_gen(52), dtype=F64)
    torch.testing.assert_close(critic_gradient_norms(_quadratic_critic(A, b), x), (x @ A + b).norm(dim=1),
                               rtol=0, atol=1e-12)
    lin = nn.Linear(d, 1).double()
    norms = critic_gradient_norms(lin, x)
    torch.testing.assert_close(norms, lin.weight.detach().norm().expand(20), rtol=0, atol=1e-12)
    assert lin.weight.grad is None  # the diagnostic does not touch .grad
    # per layer: d mean_i (w.x_i + b) / dw = mean_i x_i
    layers = critic_layer_gradient_norms(lin, x)
    assert list(layers) == ["weight"]
    assert layers["weight"] == pytest.approx(x.mean(0).norm().item(), abs=1e-12)


def test_critic_activation_gradient_norms_closed_form():
    # D(x) = w3 . relu(W2 relu(W1 x + b1) + b2) + b3. With a1 = relu(W1 x + b1), a2 = relu(W2 a1 + b2):
    # dD/da2 = w3 for every sample; dD/da1 = W2^T (1[W2 a1 + b2 > 0] * w3), per sample.
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.LeakyReLU(0.2), nn.Linear(4, 1)).double()
    x = torch.randn(30, 3, generator=_gen(70), dtype=F64)
    got = critic_activation_gradient_norms(critic, x)
    assert list(got) == ["1", "3"]  # forward order, input side first
    W1, b1, W2, b2, w3 = (critic[0].weight, critic[0].bias, critic[2].weight, critic[2].bias, critic[4].weight[0])
    with torch.no_grad():
        h2 = torch.relu(x @ W1.T + b1) @ W2.T + b2  # (30, 4) pre-activations of the second layer
        slope = torch.where(h2 > 0, torch.ones_like(h2), torch.full_like(h2, 0.2))  # LeakyReLU'(h2), float64
        d_a1 = (slope * w3) @ W2  # (30, 5) per-sample dD/da1
    assert got["3"] == pytest.approx(w3.norm().item(), rel=1e-12)
    assert got["1"] == pytest.approx(d_a1.norm(dim=1).mean().item(), rel=1e-12)
    assert all(p.grad is None for p in critic.parameters())  # .grad untouched
    assert all(not m._forward_hooks for m in critic.modules())  # hooks removed
    # the same numbers whatever the batch: each row's gradient is its own
    half = critic_activation_gradient_norms(critic, x[:15])
    assert half["3"] == pytest.approx(got["3"], rel=1e-12)
    with pytest.raises(ValueError, match="no activation modules"):
        critic_activation_gradient_norms(nn.Linear(3, 1), x)
    with pytest.raises(ValueError, match="batch norm"):
        critic_activation_gradient_norms(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(),
                                                       nn.Linear(4, 1)), torch.randn(8, 3))
    relu = nn.ReLU()
    with pytest.raises(ValueError, match="more than once"):
        critic_activation_gradient_norms(nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu,
                                                       nn.Linear(3, 1)), torch.randn(8, 3))
    assert all(not m._forward_hooks for m in critic.modules())


# ----------------------------------------------------------------------------- exact W1


def test_exact_w1_in_one_dimension_is_the_sorted_matching():
    x = torch.randn(300, generator=_gen(60), dtype=F64)
    y = torch.rand(300, generator=_gen(61), dtype=F64) * 4 - 1
    expected = (x.sort().values - y.sort().values).abs().mean().item()  # mean |x_(i) - y_(i)|
    got = exact_w1(x, y)
    assert abs(got - expected) <= 1e-12
    assert abs(got - scipy.stats.wasserstein_distance(x.numpy(), y.numpy())) <= 1e-12
    assert exact_w1(x[:, None].numpy(), y[:, None].numpy()) == pytest.approx(got, abs=1e-12)


def test_exact_w1_of_a_translated_set_is_the_translation_length():
    # W1(X, X + t) = ||t||: the identity coupling costs ||t||, and f(x) = t.x / ||t|| (1-Lipschitz)
    # shows no coupling costs less.
    x = torch.randn(200, 2, generator=_gen(62), dtype=F64)
    t = torch.tensor([0.3, -0.4], dtype=F64)
    assert abs(exact_w1(x, x + t) - 0.5) <= 1e-12
    assert exact_w1(x, x[torch.randperm(200, generator=_gen(63))]) == pytest.approx(0.0, abs=1e-15)


# ----------------------------------------------------------------------------- steps through fit


@pytest.mark.parametrize("step, cfg", [
    (wgan_step, WGANConfig()),
    (wgan_gp_step, WGANGPConfig(n_critic=3)),
    (r1r2_step, R1R2Config()),
    (r1r2_step, R1R2Config(n_critic=2, gamma=1.0)),
])
def test_steps_run_through_fit_with_finite_losses(step, cfg):
    state = _state(cfg)
    before = [p.detach().clone() for p in state.modules["G"].parameters()]
    data = batch_sampler(ring8().sample, critic_batch_size(cfg, 32))
    fit(functools.partial(step, cfg=cfg), state, data, steps=5, progress=False)
    assert state.step == 5
    assert {"d_loss", "g_loss"} <= set(state.history)
    for name, values in state.history.items():
        assert len(values) == 5 and all(math.isfinite(v) for v in values), name
    assert any(not torch.equal(a, b) for a, b in zip(before, state.modules["G"].parameters()))
    if isinstance(cfg, WGANConfig):
        assert critic_weight_stats(state.modules["D"], cfg.c)["max_abs"] <= cfg.c


def test_wgan_gp_step_reports_its_parts():
    cfg = WGANGPConfig(n_critic=1, gp_weight=10.0)
    state = _state(cfg)
    out = wgan_gp_step(state, ring8().sample(64, _gen(5)), cfg)
    assert out["gp"].item() >= 0
    assert out["d_loss"].item() == pytest.approx(-out["w_estimate"].item() + out["gp"].item(), abs=1e-6)


def test_same_seed_same_parameters():
    cfg = WGANGPConfig(n_critic=2)
    params = []
    for _ in range(2):
        state = _state(cfg, seed=3)
        fit(functools.partial(wgan_gp_step, cfg=cfg), state, batch_sampler(ring8().sample, 32), 3, progress=False)
        params.append(torch.cat([p.detach().flatten() for p in state.modules["G"].parameters()]))
    assert torch.equal(params[0], params[1])


# ----------------------------------------------------------------------------- bad inputs


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="c must be"):
        WGANConfig(c=-0.01)
    with pytest.raises(ValueError, match="c must be"):
        WGANConfig(c=0)
    for Cfg in (WGANConfig, WGANGPConfig, R1R2Config):
        with pytest.raises(ValueError, match="n_critic must be"):
            Cfg(n_critic=0)
        with pytest.raises(ValueError, match="lr must be"):
            Cfg(lr=-1e-4)
    with pytest.raises(ValueError, match="gp_weight must be"):
        WGANGPConfig(gp_weight=-1.0)
    with pytest.raises(ValueError, match="gamma must be"):
        R1R2Config(gamma=-0.5)
    with pytest.raises(ValueError, match="gamma must be"):
        R1R2Config(gamma=float("nan"))
    with pytest.raises(ValueError, match="betas must be"):
        WGANGPConfig(betas=(0.5, 1.0))
    with pytest.raises(ValueError, match="cfg must be"):
        make_optimizers(nn.Linear(1, 1), nn.Linear(1, 1), object())


def test_bad_penalty_inputs_raise():
    lin = nn.Linear(2, 1)
    x = torch.randn(8, 2)
    with pytest.raises(ValueError, match="weight must be"):
        gradient_penalty(lin, x, x, -1.0)
    with pytest.raises(ValueError, match="real has shape"):
        gradient_penalty(lin, x, torch.randn(6, 2))
    with pytest.raises(ValueError, match="gamma must be"):
        r1_penalty(lin, x, -0.1)
    with pytest.raises(ValueError, match="gamma must be"):
        r2_penalty(lin, x, -0.1)
    with pytest.raises(ValueError, match="c must be"):
        clip_weights(lin, -0.01)
    with pytest.raises(ValueError, match="critic must map"):
        gradient_penalty(lambda v: v, x, x)  # (B, 2) output is no critic
    bn_critic = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    for call in (lambda: gradient_penalty(bn_critic, x, x), lambda: r1_penalty(bn_critic, x, 1.0),
                 lambda: r2_penalty(bn_critic, x, 1.0), lambda: critic_gradient_norms(bn_critic, x)):
        with pytest.raises(ValueError, match="batch norm"):
            call()


def test_bad_step_batch_and_w1_inputs_raise():
    cfg = WGANGPConfig(n_critic=3)
    state = _state(cfg)
    with pytest.raises(ValueError, match="n_critic \\* B"):
        wgan_gp_step(state, torch.randn(10, 2), cfg)  # 10 rows do not split into 3 critic batches
    with pytest.raises(ValueError, match="batch_size must be"):
        critic_batch_size(cfg, 0)
    with pytest.raises(ValueError, match="same size"):
        exact_w1(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match="same size"):
        exact_w1(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="non-finite"):
        exact_w1(torch.tensor([0.0, float("nan")]), torch.zeros(2))
    with pytest.raises(ValueError, match="must be a torch tensor"):
        exact_w1([1.0, 2.0], [1.0, 2.0])
