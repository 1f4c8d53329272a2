"""Tests for ganref/methods/wgan.py: clipping, the three steps (through fit, against hand-made updates), configs.

The losses and penalties these steps use are tested in test_losses.py, the critic measurements in test_probes.py
and exact W1 in test_metrics.py.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from ganref.data import batch_sampler, ring8
from ganref.losses import gradient_penalty, ipm_d_loss, ipm_g_loss
from ganref.methods.sngan import SNGANConfig
from ganref.methods.vanilla import VanillaConfig
from ganref.methods.wgan import (R1R2Config, WGANConfig, WGANGPConfig, clip_weights, make_optimizers, r1r2_step,
                                 wgan_gp_step, wgan_step)
from ganref.nets import MLPDiscriminator, MLPGenerator
from ganref.probes import critic_weight_stats
from ganref.train import State, fit

EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


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
    cfg = WGANConfig(lr=0.05, c=0.01, d_steps=2)
    state = _state(cfg)
    D = state.modules["D"]
    assert max(p.abs().max().item() for p in D.parameters()) > 0.1  # the default init is far outside
    real = batch_sampler(ring8().sample, 16, d_steps=cfg.d_steps)(_gen(1))
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


# ----------------------------------------------------------------------------- steps through fit


@pytest.mark.parametrize("step, cfg", [
    (wgan_step, WGANConfig()),
    (wgan_gp_step, WGANGPConfig(d_steps=3)),
    (r1r2_step, R1R2Config()),
    (r1r2_step, R1R2Config(d_steps=2, gamma=1.0)),
])
def test_steps_run_through_fit_with_finite_losses(step, cfg):
    state = _state(cfg)
    before = [p.detach().clone() for p in state.modules["G"].parameters()]
    data = batch_sampler(ring8().sample, 32, d_steps=cfg.d_steps)
    assert data(_gen(0)).shape == (cfg.d_steps * 32, 2)
    fit(functools.partial(step, cfg=cfg), state, data, steps=5, progress=False)
    assert state.step == 5
    assert {"d_loss", "g_loss"} <= set(state.history)
    for name, values in state.history.items():
        assert len(values) == 5 and all(math.isfinite(v) for v in values), name
    assert any(not torch.equal(a, b) for a, b in zip(before, state.modules["G"].parameters()))
    # d_steps critic updates per generator update, each a step of its optimizer (Adam counts them)
    if not isinstance(cfg, WGANConfig):
        step_of = lambda opt: int(next(iter(opt.state.values()))["step"])  # noqa: E731
        assert step_of(state.optimizers["D"]) == 5 * cfg.d_steps and step_of(state.optimizers["G"]) == 5
    if isinstance(cfg, WGANConfig):
        assert critic_weight_stats(state.modules["D"], cfg.c)["max_abs"] <= cfg.c


def test_wgan_gp_step_reports_its_parts():
    cfg = WGANGPConfig(d_steps=1, gp_weight=10.0)
    state = _state(cfg)
    out = wgan_gp_step(state, ring8().sample(64, _gen(5)), cfg)
    assert out["gp"].item() >= 0
    # d_loss = -w + gp is one float32 addition: equal within one rounding of the largest of the three
    w, gp, d_loss = out["w_estimate"].item(), out["gp"].item(), out["d_loss"].item()
    assert d_loss == pytest.approx(-w + gp, rel=0, abs=2 * EPS32 * max(abs(w), abs(gp), abs(d_loss)))


def test_same_seed_same_parameters():
    cfg = WGANGPConfig(d_steps=2)
    params = []
    for _ in range(2):
        state = _state(cfg, seed=3)
        fit(functools.partial(wgan_gp_step, cfg=cfg), state, batch_sampler(ring8().sample, 16, d_steps=2), 3,
            progress=False)
        params.append(torch.cat([p.detach().flatten() for p in state.modules["G"].parameters()]))
    assert torch.equal(params[0], params[1])


# ----------------------------------------------------------------------------- the steps' updates by hand


def _sgd_state(cfg, seed=0):
    torch.manual_seed(seed)
    G, D = MLPGenerator(hidden=8, depth=1), MLPDiscriminator(hidden=8, depth=1)
    state = State({"G": G, "D": D}, {"G": torch.optim.SGD(G.parameters(), lr=0.05),
                                     "D": torch.optim.SGD(D.parameters(), lr=0.05)}, generator=_gen(7))
    return state, copy.deepcopy(G), copy.deepcopy(D)


def _sgd(module, loss, lr=0.05):
    grads = torch.autograd.grad(loss, list(module.parameters()))
    with torch.no_grad():
        for p, g in zip(module.parameters(), grads):
            p -= lr * g


def _assert_same_params(state, G_ref, D_ref):
    # the same float32 operations in the same order: equal to a few roundings (a missed clip, a reused batch
    # or noise drawn in another order moves a parameter by ~lr * grad >> this)
    for name, ref in (("G", G_ref), ("D", D_ref)):
        for a, b in zip(state.modules[name].parameters(), ref.parameters()):
            torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=16 * EPS32 * float(b.detach().abs().max()))


def test_wgan_step_is_algorithm_1_with_plain_sgd():
    cfg = WGANConfig(c=0.05, d_steps=3)
    state, G_ref, D_ref = _sgd_state(cfg)
    real = ring8().sample(3 * 16, _gen(1))
    out = wgan_step(state, real, cfg)
    noise = _gen(7)
    for x in real.chunk(3):  # critic: descend E D(fake) - E D(real), then clip every parameter to [-c, c]
        fake = G_ref(torch.randn(16, 2, generator=noise)).detach()
        d_loss = ipm_d_loss(D_ref(x), D_ref(fake))
        _sgd(D_ref, d_loss)
        with torch.no_grad():
            for p in D_ref.parameters():
                p.clamp_(-cfg.c, cfg.c)
    g_loss = ipm_g_loss(D_ref(G_ref(torch.randn(16, 2, generator=noise))))
    _sgd(G_ref, g_loss)
    _assert_same_params(state, G_ref, D_ref)
    assert out["w_estimate"].item() == pytest.approx(-d_loss.item(), rel=16 * EPS32)
    assert out["g_loss"].item() == pytest.approx(g_loss.item(), rel=16 * EPS32)


def test_wgan_gp_step_is_algorithm_1_with_plain_sgd():
    cfg = WGANGPConfig(d_steps=2, gp_weight=3.0)
    state, G_ref, D_ref = _sgd_state(cfg)
    real = ring8().sample(2 * 16, _gen(1))
    out = wgan_gp_step(state, real, cfg)
    noise = _gen(7)  # the step draws z, then the penalty's eps, from the one run generator
    for x in real.chunk(2):
        fake = G_ref(torch.randn(16, 2, generator=noise)).detach()
        w = -ipm_d_loss(D_ref(x), D_ref(fake))
        gp = gradient_penalty(D_ref, x, fake, cfg.gp_weight, generator=noise)
        _sgd(D_ref, -w + gp)
    g_loss = ipm_g_loss(D_ref(G_ref(torch.randn(16, 2, generator=noise))))
    _sgd(G_ref, g_loss)
    _assert_same_params(state, G_ref, D_ref)
    assert out["gp"].item() == pytest.approx(gp.item(), rel=16 * EPS32)


# ----------------------------------------------------------------------------- configs


def test_config_defaults_are_the_papers():
    assert (WGANConfig().lr, WGANConfig().c, WGANConfig().d_steps) == (5e-5, 0.01, 5)
    gp = WGANGPConfig()
    assert (gp.lr, gp.betas, gp.d_steps, gp.gp_weight) == (1e-4, (0.5, 0.9), 5, 10.0)
    r = R1R2Config()
    assert (r.lr, r.betas, r.gamma, r.d_steps) == (2e-4, (0.0, 0.9), 0.1, 1)


@pytest.mark.parametrize("Cfg", [WGANConfig, WGANGPConfig, R1R2Config])
def test_configs_are_frozen_and_n_critic_reads_d_steps(Cfg):
    cfg = Cfg(d_steps=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_steps = 1
    if Cfg is not R1R2Config:  # the papers' name, read-only
        assert cfg.n_critic == cfg.d_steps == 3
        with pytest.raises(AttributeError):
            cfg.n_critic = 2
        with pytest.raises(TypeError):
            Cfg(n_critic=2)  # one name to set it: d_steps
    assert Cfg(lr=np.float64(1e-3), d_steps=np.int32(2)).d_steps == 2  # NumPy scalars are numbers


@pytest.mark.parametrize("Cfg", [WGANConfig, WGANGPConfig, R1R2Config])
@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=True), "lr must be a finite number > 0, got True"),
    (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
    (dict(lr=-1e-4), "lr must be"),
    (dict(d_steps=0), "d_steps must be an integer >= 1"),
    (dict(d_steps=False), "d_steps must be"),
])
def test_configs_reject_bad_numbers(Cfg, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Cfg(**kwargs)


@pytest.mark.parametrize("Cfg", [WGANGPConfig, R1R2Config])
@pytest.mark.parametrize("betas", ["x", (0.5,), (0.5, 1.0), (-0.1, 0.9), (0.5, float("nan")), (True, 0.9)])
def test_configs_reject_bad_betas(Cfg, betas):
    with pytest.raises(ValueError, match=r"betas must be two numbers in \[0, 1\)"):
        Cfg(betas=betas)


@pytest.mark.parametrize("step, Cfg, name", [(wgan_step, WGANConfig, "wgan.wgan_step"),
                                             (wgan_gp_step, WGANGPConfig, "wgan.wgan_gp_step"),
                                             (r1r2_step, R1R2Config, "wgan.r1r2_step")])
@pytest.mark.parametrize("other", [SNGANConfig(), VanillaConfig(), WGANConfig(), R1R2Config()],
                         ids=["sngan", "vanilla", "wgan", "r1r2"])
def test_a_step_refuses_another_methods_config_naming_both(step, Cfg, name, other):
    if isinstance(other, Cfg):
        return
    state = _state(Cfg())
    with pytest.raises(TypeError, match=f"{name} needs a {Cfg.__name__}, got {type(other).__name__}"):
        step(state, torch.zeros(10, 2), other)


# ----------------------------------------------------------------------------- bad inputs


def test_bad_configs_raise():
    with pytest.raises(ValueError, match="c must be"):
        WGANConfig(c=-0.01)
    with pytest.raises(ValueError, match="c must be"):
        WGANConfig(c=0)
    with pytest.raises(ValueError, match="gp_weight must be"):
        WGANGPConfig(gp_weight=-1.0)
    with pytest.raises(ValueError, match="gamma must be"):
        R1R2Config(gamma=-0.5)
    with pytest.raises(ValueError, match="gamma must be"):
        R1R2Config(gamma=float("nan"))
    with pytest.raises(ValueError, match="betas must be"):
        WGANGPConfig(betas=(0.5, 1.0))
    with pytest.raises(TypeError, match="wgan.make_optimizers needs a WGANConfig or WGANGPConfig or R1R2Config, "
                                        "got object"):
        make_optimizers(nn.Linear(1, 1), nn.Linear(1, 1), object())
    with pytest.raises(TypeError, match="got SNGANConfig"):
        make_optimizers(nn.Linear(1, 1), nn.Linear(1, 1), SNGANConfig())


def test_bad_step_batch_and_clip_inputs_raise():
    cfg = WGANGPConfig(d_steps=3)
    state = _state(cfg)
    with pytest.raises(ValueError, match=r"real must be a batch of d_steps \* B = 3 \* B rows, got \(10, 2\)"):
        wgan_gp_step(state, torch.randn(10, 2), cfg)  # 10 rows do not split into 3 critic batches
    with pytest.raises(ValueError, match="c must be"):
        clip_weights(nn.Linear(2, 1), -0.01)
    with pytest.raises(ValueError, match="c must be"):
        clip_weights(nn.Linear(2, 1), float("inf"))
