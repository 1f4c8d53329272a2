"""Tests for ganref/methods/sngan.py: the config (frozen, validated, the paper's settings), SN applied when asked,
the step through train.fit and against a hand-made update, and SN's sigmas after training.

The hinge losses are tested in test_losses.py, the SN layer in test_layers.py, the sigma and operator-norm
measurements in test_probes.py.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganref import data, nets, train
from ganref.layers import SpectralNorm
from ganref.losses import d_loss_minimax, g_loss_nonsaturating, hinge_d_loss, hinge_g_loss
from ganref.methods import sngan
from ganref.methods.vanilla import VanillaConfig
from ganref.methods.wgan import WGANConfig, WGANGPConfig
from ganref.probes import layer_sigmas, sigma_exact

EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ----------------------------------------------------------------------------- configuration


def test_config_defaults_and_errors():
    cfg = sngan.SNGANConfig()
    assert (cfg.lr, cfg.betas, cfg.d_steps, cfg.loss, cfg.spectral_norm) == (2e-4, (0.0, 0.9), 5, "hinge", True)
    assert cfg.n_dis == cfg.d_steps == 5  # the paper's name reads the same field
    for kwargs, match in [(dict(lr=0), "lr"), (dict(lr=float("nan")), "lr"), (dict(betas=(0.5,)), "betas"),
                          (dict(betas=(0.5, 1.0)), "betas"), (dict(d_steps=0), "d_steps"), (dict(loss="wgan"), "loss"),
                          (dict(spectral_norm=1), "spectral_norm")]:
        with pytest.raises(ValueError, match=match):
            sngan.SNGANConfig(**kwargs)
    for name, setting in sngan.PAPER_SETTINGS.items():  # every Table 1 setting is a valid config
        assert sngan.SNGANConfig(**setting).n_dis in (1, 5), name


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=True), "lr must be a finite number > 0, got True"),
    (dict(lr=float("inf")), "lr must be a finite number > 0, got inf"),
    (dict(betas="x"), r"betas must be two numbers in \[0, 1\), got 'x'"),
    (dict(betas=(0.0, True)), "betas must be"),
    (dict(d_steps=True), "d_steps must be an integer >= 1, got True"),
    (dict(spectral_norm="yes"), "spectral_norm must be True or False"),
])
def test_config_rejects_bools_infinities_and_strings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sngan.SNGANConfig(**kwargs)


def test_config_is_frozen_and_n_dis_is_a_read_only_alias():
    cfg = sngan.SNGANConfig(d_steps=3, lr=np.float32(1e-3), spectral_norm=np.bool_(False))
    assert cfg.n_dis == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d_steps = 1
    with pytest.raises(AttributeError):
        cfg.n_dis = 1
    with pytest.raises(TypeError):
        sngan.SNGANConfig(n_dis=2)  # one name to set it: d_steps


@pytest.mark.parametrize("other", [VanillaConfig(), WGANConfig(), WGANGPConfig()], ids=["vanilla", "wgan", "wgan_gp"])
def test_the_step_refuses_another_methods_config_naming_both(other):
    state = _state(sngan.SNGANConfig())
    name = type(other).__name__
    with pytest.raises(TypeError, match=f"sngan.sngan_step needs a SNGANConfig, got {name}"):
        sngan.sngan_step(state, torch.zeros(10, 1, 8, 8), other)
    with pytest.raises(TypeError, match=f"sngan.make_optimizers needs a SNGANConfig, got {name}"):
        sngan.make_optimizers(state.modules["G"], state.modules["D"], other)


def test_make_discriminator_applies_sn_only_when_asked():
    D = sngan.make_discriminator(nets.ConvDiscriminator(width=4), sngan.SNGANConfig())
    layers = [m for m in D.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert len(layers) == 4
    assert all(isinstance(m.parametrizations.weight[0], SpectralNorm) for m in layers)
    plain = sngan.make_discriminator(nets.ConvDiscriminator(width=4), sngan.SNGANConfig(spectral_norm=False))
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())


# ----------------------------------------------------------------------------- the step


def _state(cfg, seed=0, width=4, z_dim=8):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    G = nets.ConvGenerator(z_dim=z_dim, channels=1, width=width)
    D = sngan.make_discriminator(nets.ConvDiscriminator(channels=1, width=width), cfg, generator=gen)
    return train.State({"G": G, "D": D}, sngan.make_optimizers(G, D, cfg), gen, torch.device("cpu"))


@pytest.mark.parametrize("loss", sngan.LOSSES)
def test_sngan_step_runs_through_fit_with_finite_losses_and_d_steps_updates(loss):
    cfg = sngan.SNGANConfig(d_steps=3, loss=loss)
    state = _state(cfg)
    images, _ = data.digits()
    batches = data.batch_sampler(images, 8, d_steps=cfg.d_steps)
    train.fit(lambda s, b: sngan.sngan_step(s, b, cfg), state, batches, 4, progress=False)
    assert state.step == 4
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert len(state.history[key]) == 4 and all(math.isfinite(v) for v in state.history[key])
    # Adam counts its updates: d_steps per step for D, one for G
    step_of = lambda opt: int(next(iter(opt.state.values()))["step"])  # noqa: E731
    assert step_of(state.optimizers["D"]) == 3 * 4
    assert step_of(state.optimizers["G"]) == 4
    if loss == "hinge":  # a sum of hinges is never negative
        assert all(v >= 0 for v in state.history["d_loss"])


class _Spy(nn.Module):
    """Wraps D and records every input it sees."""

    def __init__(self, D):
        super().__init__()
        self.D, self.seen = D, []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return self.D(x)


def test_sngan_step_uses_one_real_chunk_per_d_update_and_fresh_fakes():
    cfg = sngan.SNGANConfig(d_steps=3)
    state = _state(cfg)
    state.modules["D"] = spy = _Spy(state.modules["D"])
    real = torch.randn(3 * 5, 1, 8, 8, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    out = sngan.sngan_step(state, real, cfg)
    assert len(spy.seen) == 3 + 1  # d_steps D updates, one G update
    for i in range(3):
        assert spy.seen[i].shape == (10, 1, 8, 8)
        assert torch.equal(spy.seen[i][:5], real[5 * i:5 * (i + 1)])  # chunk i, in order
    fakes = [s[5:] for s in spy.seen[:3]] + [spy.seen[3]]
    assert all(not torch.equal(fakes[0], f) for f in fakes[1:])  # fresh noise every update
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"}
    with pytest.raises(ValueError, match="d_steps \\* B = 3 \\* B rows"):
        sngan.sngan_step(state, real[:14], cfg)


def test_sngan_step_reproducible_from_the_seed():
    cfg = sngan.SNGANConfig(d_steps=2)
    runs = []
    for _ in range(2):
        state = _state(cfg, seed=5)
        images, _ = data.digits()
        train.fit(lambda s, b: sngan.sngan_step(s, b, cfg), state, data.batch_sampler(images, 8, d_steps=2), 3,
                  progress=False)
        runs.append(state.modules["D"].state_dict())
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


def test_sn_is_applied_layer_sigmas_are_one_once_u_has_converged(float64):
    cfg = sngan.SNGANConfig(d_steps=2, lr=1e-3)
    state = _state(cfg, seed=1)
    images, _ = data.digits()
    train.fit(lambda s, b: sngan.sngan_step(s, b, cfg), state, data.batch_sampler(images.double(), 8, d_steps=2), 5,
              progress=False)
    D = state.modules["D"]
    # Training moved the weights away from where u was last updated; 200 more power steps (training-mode
    # forwards, weights fixed) converge u and v to the top singular pair of every layer
    with torch.no_grad():
        for _ in range(200):
            D(images[:2].double())
    sig = layer_sigmas(D)
    for name, m in D.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert_close(torch.tensor(sig[name]["estimate"]), sigma_exact(m.parametrizations.weight.original).cpu(),
                         rtol=1e-10, atol=0)
            assert abs(float(sigma_exact(m.weight)) - 1) < 1e-10, name  # W / sigma(W) has sigma 1
            assert abs(sig[name]["effective"] - 1) < 1e-10
            assert abs(sig[name]["exact"] - float(sigma_exact(m.parametrizations.weight.original))) < 1e-12
    # without SN the same training leaves the sigmas wherever they are
    cfg_plain = sngan.SNGANConfig(d_steps=2, lr=1e-3, spectral_norm=False)
    plain = _state(cfg_plain, seed=1)
    train.fit(lambda s, b: sngan.sngan_step(s, b, cfg_plain), plain, data.batch_sampler(images.double(), 8, d_steps=2),
              5, progress=False)
    sig_plain = layer_sigmas(plain.modules["D"])
    assert all(math.isnan(s["estimate"]) and s["effective"] == s["exact"] for s in sig_plain.values())
    assert max(abs(s["effective"] - 1) for s in sig_plain.values()) > 0.1


@pytest.mark.parametrize("loss", sngan.LOSSES)
def test_sngan_step_is_algorithm_1_with_plain_sgd(loss):
    # SGD(lr) in place of Adam, against the updates written out: D on cat([real chunk, fake]) once per
    # update (one power step each, as the step does), then G. SN is on: a copy of D with the same u, v
    # advances its power iteration exactly as the step's D does
    cfg = sngan.SNGANConfig(d_steps=2, loss=loss)
    state = _state(cfg, seed=3)
    lr = 0.05
    G, D = state.modules["G"], state.modules["D"]
    state.optimizers = {"G": torch.optim.SGD(G.parameters(), lr=lr), "D": torch.optim.SGD(D.parameters(), lr=lr)}
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    noise = torch.Generator().set_state(state.generator.get_state())
    real = data.digits()[0][:2 * 6]
    out = sngan.sngan_step(state, real, cfg)

    def sgd(module, loss_value):
        grads = torch.autograd.grad(loss_value, list(module.parameters()))
        with torch.no_grad():
            for p, g in zip(module.parameters(), grads):
                p -= lr * g

    for x in real.chunk(2):
        with torch.no_grad():
            fake = G_ref(torch.randn(6, G_ref.z_dim, generator=noise))
        d_out = D_ref(torch.cat([x, fake]))
        d_loss = (hinge_d_loss if loss == "hinge" else d_loss_minimax)(d_out[:6], d_out[6:])
        sgd(D_ref, d_loss)
    d_gen = D_ref(G_ref(torch.randn(6, G_ref.z_dim, generator=noise)))
    g_loss = (hinge_g_loss if loss == "hinge" else g_loss_nonsaturating)(d_gen)
    sgd(G_ref, g_loss)
    # the same float32 operations: equal to a few roundings of each value
    for mod, ref in ((D, D_ref), (G, G_ref)):  # parameters, then D's power-iteration vectors and G's BN statistics
        for a, b in zip(list(mod.parameters()) + list(mod.buffers()), list(ref.parameters()) + list(ref.buffers())):
            a, b = a.detach().double(), b.detach().double()
            assert_close(a, b, rtol=0, atol=16 * EPS32 * float(b.abs().max()))
    assert out["d_loss"].item() == pytest.approx(d_loss.item(), rel=16 * EPS32)
    assert out["g_loss"].item() == pytest.approx(g_loss.item(), rel=16 * EPS32)
