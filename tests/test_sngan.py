"""Tests for ganref.sngan: hinge losses in closed form, the step through train.fit, SN actually applied,
sigma measurements against the SVD and a dense convolution matrix."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganref import data, nets, sngan, train
from ganref.spectral import SpectralNorm, conv_operator_norm, sigma_exact


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# ----------------------------------------------------------------------------- losses


def test_hinge_losses_equal_closed_forms():
    g = torch.Generator().manual_seed(0)
    d_real = 2 * torch.randn(37, generator=g, dtype=torch.float64)
    d_fake = 2 * torch.randn(23, generator=g, dtype=torch.float64)
    want_d = sum(max(0.0, 1 - r) for r in d_real.tolist()) / 37 + sum(max(0.0, 1 + f) for f in d_fake.tolist()) / 23
    want_g = -sum(d_fake.tolist()) / 23
    assert abs(float(sngan.hinge_d_loss(d_real, d_fake)) - want_d) < 1e-12
    assert abs(float(sngan.hinge_g_loss(d_fake)) - want_g) < 1e-12
    # by hand: real [2, 0.5] -> (0 + 0.5) / 2; fake [-3, 0] -> (0 + 1) / 2
    hand = sngan.hinge_d_loss(torch.tensor([2.0, 0.5], dtype=torch.float64),
                              torch.tensor([-3.0, 0.0], dtype=torch.float64))
    assert float(hand) == 0.75
    # beyond the margins the loss is 0 and so is its gradient
    d_r = torch.tensor([1.5, 3.0], dtype=torch.float64, requires_grad=True)
    d_f = torch.tensor([-1.2, -4.0], dtype=torch.float64, requires_grad=True)
    loss = sngan.hinge_d_loss(d_r, d_f)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(d_r.grad.abs().sum() + d_f.grad.abs().sum()) == 0.0
    # inside the margins: d/d d_real = -1/B, d/d d_fake = +1/B'
    d_r = torch.tensor([0.2, -1.0, 0.9], dtype=torch.float64, requires_grad=True)
    d_f = torch.tensor([0.3, -0.5], dtype=torch.float64, requires_grad=True)
    sngan.hinge_d_loss(d_r, d_f).backward()
    assert_close(d_r.grad, torch.full((3,), -1 / 3, dtype=torch.float64), rtol=0, atol=1e-15)
    assert_close(d_f.grad, torch.full((2,), 1 / 2, dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.parametrize("bad", [torch.zeros(4, 1), torch.zeros(()), torch.zeros(0), torch.zeros(2, 3), [0.0, 1.0]])
def test_hinge_losses_reject_bad_shapes(bad):
    ok = torch.zeros(4)
    with pytest.raises(ValueError, match="d_real must be discriminator outputs of shape"):
        sngan.hinge_d_loss(bad, ok)
    with pytest.raises(ValueError, match="d_fake must be"):
        sngan.hinge_d_loss(ok, bad)
    with pytest.raises(ValueError, match="d_fake must be"):
        sngan.hinge_g_loss(bad)
    if isinstance(bad, torch.Tensor) and bad.shape == (4, 1):
        with pytest.raises(ValueError, match="squeeze"):
            sngan.hinge_g_loss(bad)


def test_config_defaults_and_errors():
    cfg = sngan.SNGANConfig()
    assert (cfg.lr, cfg.betas, cfg.n_dis, cfg.loss, cfg.spectral_norm) == (2e-4, (0.0, 0.9), 5, "hinge", True)
    for kwargs, match in [(dict(lr=0), "lr"), (dict(lr=float("nan")), "lr"), (dict(betas=(0.5,)), "betas"),
                          (dict(betas=(0.5, 1.0)), "betas"), (dict(n_dis=0), "n_dis"), (dict(loss="wgan"), "loss"),
                          (dict(spectral_norm=1), "spectral_norm")]:
        with pytest.raises(ValueError, match=match):
            sngan.SNGANConfig(**kwargs)
    for name, setting in sngan.PAPER_SETTINGS.items():  # every Table 1 setting is a valid config
        assert sngan.SNGANConfig(**setting).n_dis in (1, 5), name
    assert sngan.dis_batch_size(cfg, 16) == 80
    with pytest.raises(ValueError, match="batch_size"):
        sngan.dis_batch_size(cfg, 0)


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
def test_train_step_runs_through_fit_with_finite_losses_and_n_dis_updates(loss):
    cfg = sngan.SNGANConfig(n_dis=3, loss=loss)
    state = _state(cfg)
    images, _ = data.digits()
    batches = data.batch_sampler(images, sngan.dis_batch_size(cfg, 8))
    train.fit(lambda s, b: sngan.train_step(s, b, cfg), state, batches, 4, progress=False)
    assert state.step == 4
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert len(state.history[key]) == 4 and all(math.isfinite(v) for v in state.history[key])
    # Adam counts its updates: n_dis per step for D, one for G
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


def test_train_step_uses_one_real_chunk_per_d_update_and_fresh_fakes():
    cfg = sngan.SNGANConfig(n_dis=3)
    state = _state(cfg)
    state.modules["D"] = spy = _Spy(state.modules["D"])
    real = torch.randn(3 * 5, 1, 8, 8, generator=torch.Generator().manual_seed(3)).clamp(-1, 1)
    out = sngan.train_step(state, real, cfg)
    assert len(spy.seen) == 3 + 1  # n_dis D updates, one G update
    for i in range(3):
        assert spy.seen[i].shape == (10, 1, 8, 8)
        assert torch.equal(spy.seen[i][:5], real[5 * i:5 * (i + 1)])  # chunk i, in order
    fakes = [s[5:] for s in spy.seen[:3]] + [spy.seen[3]]
    assert all(not torch.equal(fakes[0], f) for f in fakes[1:])  # fresh noise every update
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"}
    with pytest.raises(ValueError, match="n_dis \\* B = 3 \\* B rows"):
        sngan.train_step(state, real[:14], cfg)


def test_train_step_reproducible_from_the_seed():
    cfg = sngan.SNGANConfig(n_dis=2)
    runs = []
    for _ in range(2):
        state = _state(cfg, seed=5)
        images, _ = data.digits()
        train.fit(lambda s, b: sngan.train_step(s, b, cfg), state, data.batch_sampler(images, 16), 3, progress=False)
        runs.append(state.modules["D"].state_dict())
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


def test_sn_is_applied_layer_sigmas_are_one_once_u_has_converged(float64):
    cfg = sngan.SNGANConfig(n_dis=2, lr=1e-3)
    state = _state(cfg, seed=1)
    images, _ = data.digits()
    train.fit(lambda s, b: sngan.train_step(s, b, cfg), state, data.batch_sampler(images.double(), 16), 5,
              progress=False)
    D = state.modules["D"]
    # Training moved the weights away from where u was last updated; 200 more power steps (training-mode
    # forwards, weights fixed) converge u and v to the top singular pair of every layer
    with torch.no_grad():
        for _ in range(200):
            D(images[:2].double())
    sig = sngan.layer_sigmas(D)
    for name, m in D.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert_close(torch.tensor(sig[name]["estimate"]), sigma_exact(m.parametrizations.weight.original).cpu(),
                         rtol=1e-10, atol=0)
            assert abs(float(sigma_exact(m.weight)) - 1) < 1e-10, name  # W / sigma(W) has sigma 1
            assert abs(sig[name]["effective"] - 1) < 1e-10
            assert abs(sig[name]["exact"] - float(sigma_exact(m.parametrizations.weight.original))) < 1e-12
    # without SN the same training leaves the sigmas wherever they are
    plain = _state(sngan.SNGANConfig(n_dis=2, lr=1e-3, spectral_norm=False), seed=1)
    cfg_plain = sngan.SNGANConfig(n_dis=2, lr=1e-3, spectral_norm=False)
    train.fit(lambda s, b: sngan.train_step(s, b, cfg_plain), plain, data.batch_sampler(images.double(), 16), 5,
              progress=False)
    sig_plain = sngan.layer_sigmas(plain.modules["D"])
    assert all(math.isnan(s["estimate"]) and s["effective"] == s["exact"] for s in sig_plain.values())
    assert max(abs(s["effective"] - 1) for s in sig_plain.values()) > 0.1


# ----------------------------------------------------------------------------- conv operator norm


def _dense(conv: nn.Conv2d, size: tuple[int, int]) -> torch.Tensor:
    """The convolution's linear part as a dense matrix, column j = conv(e_j) - bias."""
    n = conv.in_channels * size[0] * size[1]
    basis = torch.eye(n, dtype=torch.float64).reshape(n, conv.in_channels, *size)
    w = conv.weight.detach().double()
    cols = F.conv2d(basis, w, stride=conv.stride, padding=conv.padding, dilation=conv.dilation)
    return cols.reshape(n, -1).T


@pytest.mark.parametrize("spec", [dict(c_in=3, c_out=4, k=4, stride=2, padding=1, size=(8, 8)),
                                  dict(c_in=2, c_out=5, k=3, stride=1, padding=1, size=(6, 7)),
                                  dict(c_in=4, c_out=2, k=3, stride=2, padding=0, size=(9, 9)),
                                  dict(c_in=1, c_out=3, k=2, stride=1, padding=0, size=(2, 2)),
                                  dict(c_in=2, c_out=1, k=2, stride=1, padding=0, size=(2, 2))])
def test_conv_layer_operator_norm_matches_dense_svd(spec):
    torch.manual_seed(0)
    conv = nn.Conv2d(spec["c_in"], spec["c_out"], spec["k"], stride=spec["stride"], padding=spec["padding"])
    want = float(torch.linalg.svdvals(_dense(conv, spec["size"]))[0])
    got = sngan.conv_layer_operator_norm(conv, spec["size"])
    assert abs(got - want) <= 1e-9 * want
    # the proven chain for zero padding and strides: ||A|| <= circular stride-1 norm on the padded grid
    # <= sqrt(kh kw) * sigma(reshaped kernel) (Sedghi et al.; ganref.spectral.lipschitz_upper_bound)
    padded = (spec["size"][0] + 2 * spec["padding"], spec["size"][1] + 2 * spec["padding"])
    circ = float(conv_operator_norm(conv.weight.double(), padded))
    assert got <= circ * (1 + 1e-9)
    assert circ <= spec["k"] * float(sigma_exact(conv.weight.double())) * (1 + 1e-9)


def test_conv_layer_operator_norm_of_sn_layer_and_errors():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 4, stride=2, padding=1)
    from ganref.spectral import spectral_norm
    spectral_norm(conv)
    conv.eval()
    size = (8, 8)
    want = float(torch.linalg.svdvals(_dense(conv, size))[0])  # the dense matrix of the normalized weight
    u_before = conv.parametrizations.weight[0]._u.clone()
    conv.train()
    assert abs(sngan.conv_layer_operator_norm(conv, size) - want) <= 1e-9 * want
    assert torch.equal(conv.parametrizations.weight[0]._u, u_before)  # measuring does not advance SN
    with pytest.raises(ValueError, match="nn.Conv2d"):
        sngan.conv_layer_operator_norm(nn.Linear(3, 3), 8)
    with pytest.raises(ValueError, match="input_size"):
        sngan.conv_layer_operator_norm(conv, (8,))
    with pytest.raises(ValueError, match="too small"):
        sngan.conv_layer_operator_norm(nn.Conv2d(1, 1, 5), 3)
    with pytest.raises(ValueError, match="zero padding"):
        sngan.conv_layer_operator_norm(nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"), 8)


def test_layer_operator_norms_bound_the_gradient_of_a_trained_discriminator(float64):
    torch.manual_seed(0)
    D = nets.ConvDiscriminator(channels=1, width=4)
    x = torch.randn(64, 1, 8, 8)
    norms = sngan.layer_operator_norms(D, x)
    assert list(norms) == ["net.0", "net.2", "net.4", "out"]
    # each entry is the norm of the layer at the size it sees: 8x8, 8x8, 4x4, and the Linear's sigma
    for name, size in (("net.0", (8, 8)), ("net.2", (8, 8)), ("net.4", (4, 4))):
        conv = dict(D.named_modules())[name]
        want = float(torch.linalg.svdvals(_dense(conv, size))[0])
        assert abs(norms[name] - want) <= 1e-9 * want, name
    assert abs(norms["out"] - float(torch.linalg.svdvals(D.out.weight.detach())[0])) < 1e-12
    # the product bounds every input gradient (LeakyReLU(0.2) is 1-Lipschitz), and is the tighter bound
    from ganref.spectral import gradient_norms, lipschitz_upper_bound
    grads = gradient_norms(D, x)
    assert float(grads.max()) <= math.prod(norms.values()) * (1 + 1e-9)
    assert math.prod(norms.values()) <= lipschitz_upper_bound(D, "bound") * (1 + 1e-9)
    with pytest.raises(ValueError, match="example"):
        sngan.layer_operator_norms(D, torch.zeros(8))
