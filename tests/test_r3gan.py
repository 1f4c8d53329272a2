"""Tests for ganref/methods/r3gan.py: RpGAN losses by hand, R1 + R2 in the step against closed forms,
schedules, config errors, backbones."""

from __future__ import annotations

import copy
import functools
import math

import pytest
import torch
from torch import nn

from ganref.data import batch_sampler, ring8
from ganref.methods import r3gan
from ganref.methods.r3gan import R3GANConfig, make_nets, make_state, r3gan_step, rpgan_d_loss, rpgan_g_loss
from ganref.schedules import Ramp, value_at
from ganref.train import State, fit

F64 = torch.float64


def softplus(t: float) -> float:
    return math.log1p(math.exp(t))


# ----------------------------------------------------------------------------- the losses


def test_rpgan_losses_equal_hand_values():
    d_real = torch.tensor([1.0, -0.5, 2.0], dtype=F64)
    d_fake = torch.tensor([0.2, 0.3, -1.0], dtype=F64)
    d_pairs = [softplus(0.2 - 1.0), softplus(0.3 + 0.5), softplus(-1.0 - 2.0)]  # f(D(G(z_i)) - D(x_i))
    g_pairs = [softplus(1.0 - 0.2), softplus(-0.5 - 0.3), softplus(2.0 + 1.0)]  # f(D(x_i) - D(G(z_i)))
    torch.testing.assert_close(rpgan_d_loss(d_real, d_fake, "none"), torch.tensor(d_pairs, dtype=F64),
                               rtol=1e-14, atol=0)
    torch.testing.assert_close(rpgan_g_loss(d_real, d_fake, "none"), torch.tensor(g_pairs, dtype=F64),
                               rtol=1e-14, atol=0)
    assert abs(rpgan_d_loss(d_real, d_fake).item() - sum(d_pairs) / 3) < 1e-15
    assert abs(rpgan_g_loss(d_real, d_fake).item() - sum(g_pairs) / 3) < 1e-15
    # softplus(t) - softplus(-t) = t: per pair, G's loss minus D's is the logit gap D(x) - D(G(z))
    gap = rpgan_g_loss(d_real, d_fake, "none") - rpgan_d_loss(d_real, d_fake, "none")
    torch.testing.assert_close(gap, d_real - d_fake, rtol=0, atol=1e-15)


@pytest.mark.parametrize("c", [-3.0, 0.5, 100.0])
def test_rpgan_losses_ignore_a_constant_added_to_every_output(c):
    d_real = torch.randn(16, generator=torch.Generator().manual_seed(0), dtype=F64)
    d_fake = torch.randn(16, generator=torch.Generator().manual_seed(1), dtype=F64)
    for loss in (rpgan_d_loss, rpgan_g_loss):
        torch.testing.assert_close(loss(d_real + c, d_fake + c, "none"), loss(d_real, d_fake, "none"),
                                   rtol=1e-12, atol=1e-13)


def test_rpgan_losses_gradcheck():
    d_real = torch.randn(5, dtype=F64, generator=torch.Generator().manual_seed(2)).requires_grad_()
    d_fake = torch.randn(5, dtype=F64, generator=torch.Generator().manual_seed(3)).requires_grad_()
    assert torch.autograd.gradcheck(rpgan_d_loss, (d_real, d_fake))
    assert torch.autograd.gradcheck(rpgan_g_loss, (d_real, d_fake))


def test_rpgan_losses_refuse_unpaired_or_misshapen_logits():
    with pytest.raises(ValueError, match="same B"):
        rpgan_d_loss(torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        rpgan_g_loss(torch.zeros(4, 1), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="reduction"):
        rpgan_d_loss(torch.zeros(4), torch.zeros(4), reduction="sum")


# ----------------------------------------------------------------------------- R1 + R2 in the step


class Quadratic(nn.Module):
    """D(x) = 1/2 x^T A x + b^T x + c, so grad D(x) = A x + b (A symmetric)."""

    def __init__(self, d: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        a = torch.randn(d, d, generator=g, dtype=F64)
        self.A = nn.Parameter((a + a.T) / 2)
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=F64))
        self.c = nn.Parameter(torch.tensor(0.3, dtype=F64))

    def forward(self, x):
        return 0.5 * ((x @ self.A) * x).sum(1) + x @ self.b + self.c


class Shift(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.z_dim = d
        self.t = nn.Parameter(torch.full((d,), 0.7, dtype=F64))

    def forward(self, z):
        return z.to(F64) + self.t


def test_step_penalties_equal_closed_forms_on_a_quadratic_discriminator():
    d, B, gamma_ramp = 3, 32, Ramp(2.0, 0.5, 10, "linear")
    D, G = Quadratic(d, 0), Shift(d)
    cfg = R3GANConfig(lr=1e-3, beta2=0.99, gamma=gamma_ramp)
    state = State({"G": G, "D": D}, r3gan.make_optimizers(G, D, cfg), torch.Generator().manual_seed(4))
    state.step = 4  # gamma(4) = 2 - 1.5 * 0.4 = 1.4
    x = torch.randn(B, d, generator=torch.Generator().manual_seed(5), dtype=F64)
    twin = torch.Generator()
    twin.set_state(state.generator.get_state())  # the step's first draw is the fake batch's noise
    z = torch.randn(B, d, generator=twin)
    fake = z.to(F64) + 0.7
    A, b, c = (p.detach().clone() for p in (D.A, D.b, D.c))
    out = r3gan_step(state, x, cfg)
    gamma = 1.4
    r1 = gamma / 2 * ((x @ A + b) ** 2).sum(1).mean()  # gamma/2 E ||A x + b||^2
    r2 = gamma / 2 * ((fake @ A + b) ** 2).sum(1).mean()
    dx, df = 0.5 * ((x @ A) * x).sum(1) + x @ b + c, 0.5 * ((fake @ A) * fake).sum(1) + fake @ b + c
    adv = torch.log1p(torch.exp(df - dx)).mean()  # f(D(G(z)) - D(x))
    assert abs(out["gamma"].item() - gamma) < 1e-12
    torch.testing.assert_close(out["r1"], r1, rtol=1e-12, atol=0)
    torch.testing.assert_close(out["r2"], r2, rtol=1e-12, atol=0)
    torch.testing.assert_close(out["d_loss"], adv + r1 + r2, rtol=1e-12, atol=0)


def test_step_moves_lr_and_beta2_along_their_ramps():
    gen = torch.Generator().manual_seed(0)
    G, D = make_nets("mlp", width=16, depth=2)
    cfg = R3GANConfig.scheduled(20, lr=(1e-3, 1e-4), beta2=(0.9, 0.99), gamma=(0.1, 0.01), kind="linear")
    state = make_state(G, D, cfg, gen)
    fit(functools.partial(r3gan_step, cfg=cfg), state, batch_sampler(ring8().sample, 8), 6, progress=False)
    for opt in state.optimizers.values():
        group = opt.param_groups[0]
        assert group["lr"] == pytest.approx(value_at(cfg.lr, 5), rel=1e-12)  # set at the top of step 6 (index 5)
        assert group["betas"] == (0.0, pytest.approx(value_at(cfg.beta2, 5), rel=1e-12))
    assert state.history["lr"][0] == pytest.approx(1e-3)
    assert state.history["gamma"][5] == pytest.approx(0.1 - 0.09 * 5 / 20)  # linear ramp at step index 5
    assert state.ema["G"].updates.item() == 6  # fit updates the EMA of G after every step


def test_gamma_zero_is_rpgan_without_penalties_and_runs_are_reproducible():
    def run():
        gen = torch.Generator().manual_seed(3)
        torch.manual_seed(3)
        G, D = make_nets("mlp", width=16, depth=2)
        cfg = R3GANConfig(lr=1e-3, beta2=0.9, gamma=0.0)
        state = make_state(G, D, cfg, gen)
        fit(functools.partial(r3gan_step, cfg=cfg), state, batch_sampler(ring8().sample, 16), 5, progress=False)
        return state
    a, b = run(), run()
    assert a.history["r1"] == [0.0] * 5 and a.history["r2"] == [0.0] * 5
    assert a.history["d_loss"] == b.history["d_loss"]
    for p, q in zip(a.modules["G"].parameters(), b.modules["G"].parameters()):
        assert torch.equal(p, q)


def test_step_refuses_another_methods_config():
    from ganref.methods.wgan import R1R2Config
    G, D = make_nets("mlp", width=8, depth=1)
    state = State({"G": G, "D": D}, {"G": torch.optim.Adam(G.parameters()), "D": torch.optim.Adam(D.parameters())})
    with pytest.raises(TypeError, match="R3GANConfig"):
        r3gan_step(state, torch.zeros(4, 2), R1R2Config())


# ----------------------------------------------------------------------------- configuration


def test_defaults_are_the_papers_schedules():
    cfg = R3GANConfig()
    assert (cfg.lr.start, cfg.lr.end) == (2e-4, 5e-5) and (cfg.beta2.start, cfg.beta2.end) == (0.9, 0.99)
    assert cfg.gamma.end == pytest.approx(cfg.gamma.start / 10) and cfg.beta1 == 0.0 and cfg.d_steps == 1
    with pytest.raises(Exception):
        cfg.lr = 1.0  # frozen


@pytest.mark.parametrize("kwargs, match", [
    (dict(gamma=-0.1), "gamma"),
    (dict(gamma=Ramp(0.1, -0.01, 10)), "gamma.end"),
    (dict(gamma=Ramp(0.01, 0.1, 10)), "gamma must not increase"),
    (dict(lr=Ramp(1e-4, 2e-4, 10)), "lr must not increase"),
    (dict(beta2=Ramp(0.99, 0.9, 10)), "beta2 must not decrease"),
    (dict(lr=0.0), "lr"),
    (dict(beta2=1.0), "beta2"),
    (dict(beta1=-0.1), "beta1"),
    (dict(d_steps=0), "d_steps"),
    (dict(ema_decay=1.0), "ema_decay"),
    (dict(lr="fast"), "lr"),
])
def test_bad_configs_name_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        R3GANConfig(**kwargs)


@pytest.mark.parametrize("steps", [-5, 0, 2.5])
def test_schedules_with_negative_or_non_integer_steps_are_refused(steps):
    with pytest.raises(ValueError, match="steps"):
        R3GANConfig(lr=Ramp(1e-3, 1e-4, steps))
    with pytest.raises(ValueError, match="steps"):
        R3GANConfig.scheduled(steps)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match="backbone must be one of 'mlp', 'dcgan', 'resnet'"):
        make_nets("stylegan2")


@pytest.mark.parametrize("backbone, shape", [("mlp", (5, 2)), ("dcgan", (5, 3, 8, 8)), ("resnet", (5, 3, 8, 8)),
                                             ("resnet_plain", (5, 3, 8, 8))])
def test_backbones_map_noise_to_data_and_data_to_logits(backbone, shape):
    torch.manual_seed(0)
    G, D = make_nets(backbone, z_dim=16 if backbone != "mlp" else 2, width=16)
    x = G(torch.randn(5, G.z_dim))
    assert x.shape == shape and D(x).shape == (5,)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in D.modules())  # R1/R2 are per sample


def test_ema_starts_as_a_copy_of_g():
    G, D = make_nets("mlp", width=8, depth=1)
    state = make_state(G, D, R3GANConfig(ema_decay=0.9), torch.Generator().manual_seed(0))
    for p, q in zip(state.ema["G"].module.parameters(), G.parameters()):
        assert torch.equal(p, q) and p is not q
    assert copy.deepcopy(state.ema["G"]).decay == 0.9


# ----------------------------------------------------------------------------- the landscape argument


def test_sgan_value_is_minus_log_4_plus_twice_the_jsd():
    from ganref.methods.r3gan import sgan_value
    assert sgan_value([0.5, 0.5, 0.0], [0.5, 0.5, 0.0]) == pytest.approx(-math.log(4), abs=1e-15)
    # collapse onto the first of two modes: M = (3/4, 1/4), JSD = 1/2 KL(p || M) + 1/2 KL(q || M)
    jsd = 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)) + 0.5 * math.log(1 / 0.75)
    assert sgan_value([0.5, 0.5, 0.0], [1.0, 0.0, 0.0]) == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-15)
    assert sgan_value([0.5, 0.5, 0.0], [0.5, 0.0, 0.5]) == pytest.approx(-math.log(2), abs=1e-15)  # half off the data


def test_rpgan_value_equals_closed_forms():
    from ganref.methods.r3gan import rpgan_value
    p = torch.tensor([0.5, 0.5, 0.0], dtype=F64)
    collapse, half_off = torch.tensor([1.0, 0.0, 0.0], dtype=F64), torch.tensor([0.5, 0.0, 0.5], dtype=F64)
    assert rpgan_value(torch.outer(p, collapse)) == pytest.approx(-0.5 * math.log(2), abs=1e-7)
    assert rpgan_value(torch.outer(p, half_off)) == pytest.approx(-0.25 * math.log(2), abs=1e-7)
    paired = torch.zeros(3, 3, dtype=F64)
    paired[0, 0], paired[1, 2] = 0.5, 0.5  # mode A with G's first half, mode B with its second half
    assert rpgan_value(paired) == pytest.approx(-0.5 * math.log(2), abs=1e-7)
    # two overlapping cells: only delta = D_0 - D_1 matters; sigma(delta) = pi_01 / (pi_01 + pi_10) is optimal
    pi = torch.outer(torch.tensor([0.7, 0.3], dtype=F64), torch.tensor([0.4, 0.6], dtype=F64))
    a, b = pi[0, 1].item(), pi[1, 0].item()
    best = (pi[0, 0] + pi[1, 1]).item() * math.log(0.5) + a * math.log(a / (a + b)) + b * math.log(b / (a + b))
    assert rpgan_value(pi) == pytest.approx(best, abs=1e-12)
    with pytest.raises(ValueError, match="coupling"):
        rpgan_value(torch.ones(2, 3) / 6)
