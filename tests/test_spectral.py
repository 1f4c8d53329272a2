"""Tests for ganref.spectral: SN against PyTorch and the SVD, conv norms against brute force, spectra."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations
from torch.testing import assert_close

from ganref.nets import ConvDiscriminator, mlp
from ganref.spectral import (
    SpectralNorm,
    apply_spectral_norm,
    conv_operator_norm,
    conv_singular_values,
    gradient_norms,
    layer_spectra,
    lipschitz_upper_bound,
    periodogram,
    power_spectrum,
    radial_bins,
    sigma_exact,
    spectral_gap,
    spectral_norm,
)


def _sn(module: nn.Module) -> SpectralNorm:
    return module.parametrizations.weight[0]


def _make(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.Linear(7, 5) if kind == "linear" else nn.Conv2d(3, 4, 3, padding=1)
    return layer.double()


# ------------------------------------------------------------------ spectral normalization


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("n_iter", [1, 3])
def test_sn_matches_torch_parametrization_step_for_step(kind, n_iter):
    ours = _make(kind, 0)
    ref = parametrizations.spectral_norm(copy.deepcopy(ours), n_power_iterations=n_iter)
    spectral_norm(ours, n_power_iterations=n_iter)
    with torch.no_grad():  # the same starting vectors
        _sn(ours)._u.copy_(ref.parametrizations.weight[0]._u)
        _sn(ours)._v.copy_(ref.parametrizations.weight[0]._v)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x = torch.randn(8, 7, generator=g, dtype=torch.float64) if kind == "linear" else \
            torch.randn(8, 3, 5, 5, generator=g, dtype=torch.float64)
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            # two forwards in one graph, as in a D step on real and fake
            (model(x).square().mean() - model(0.5 * x).mean()).backward()
            opt.step()
        assert_close(ours.parametrizations.weight.original, ref.parametrizations.weight.original,
                     rtol=1e-12, atol=1e-12)
        assert_close(ours.weight, ref.weight, rtol=1e-12, atol=1e-12)
        assert_close(_sn(ours)._u, ref.parametrizations.weight[0]._u, rtol=1e-12, atol=1e-12)
    # the weights did move, so the comparison covered changing matrices
    assert not torch.allclose(ours.parametrizations.weight.original, _make(kind, 0).weight)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_sn_converges_to_svd_sigma(kind):
    layer = spectral_norm(_make(kind, 2), n_init_iterations=0, generator=torch.Generator().manual_seed(0))
    w = layer.parametrizations.weight.original.detach().clone()
    sigma = sigma_exact(w)
    x = torch.randn(2, 7, dtype=torch.float64) if kind == "linear" else torch.randn(2, 3, 5, 5, dtype=torch.float64)
    layer(x)
    sigma_hat = (w.flatten()[0] / layer.weight.flatten()[0]).item()  # W_SN = W / sigma_hat
    assert abs(sigma_hat / sigma.item() - 1) > 1e-3  # one step from a random start is not there yet
    for _ in range(200):
        layer(x)
    sigma_hat = (w.flatten()[0] / layer.weight.flatten()[0]).item()
    assert sigma_hat == pytest.approx(sigma.item(), rel=1e-5)
    assert sigma_exact(layer.weight).item() == pytest.approx(1.0, rel=1e-5)
    assert sigma.item() == pytest.approx(np.linalg.svd(w.flatten(1).numpy(), compute_uv=False)[0], rel=1e-12)


def test_eval_mode_does_not_update_u_and_state_dict_round_trips():
    layer = spectral_norm(_make("conv", 3))
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    u0 = _sn(layer)._u.clone()
    layer(x)
    assert not torch.equal(_sn(layer)._u, u0)  # a training forward advances u
    layer.eval()
    u1, v1, w1 = _sn(layer)._u.clone(), _sn(layer)._v.clone(), layer.weight.detach().clone()
    for _ in range(3):
        layer(x)
    assert torch.equal(_sn(layer)._u, u1) and torch.equal(_sn(layer)._v, v1)
    assert_close(layer.weight, w1, rtol=0, atol=0)

    state = layer.state_dict()
    assert {"parametrizations.weight.0._u", "parametrizations.weight.0._v",
            "parametrizations.weight.original"} <= set(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh = spectral_norm(_make("conv", 4), generator=torch.Generator().manual_seed(9)).eval()
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(_sn(fresh)._u, u1) and torch.equal(_sn(fresh)._v, v1)
    assert_close(fresh(x), layer(x), rtol=0, atol=0)


def test_apply_spectral_norm_and_errors():
    d = apply_spectral_norm(ConvDiscriminator(width=4))
    assert sum(isinstance(m, SpectralNorm) for m in d.modules()) == 4
    with pytest.raises(ValueError, match="already has spectral normalization"):
        spectral_norm(d.out)
    with pytest.raises(ValueError, match="nn.Linear or nn.Conv2d"):
        spectral_norm(nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(ValueError, match="n_power_iterations"):
        spectral_norm(nn.Linear(3, 3), n_power_iterations=0)
    with pytest.raises(ValueError, match="eps"):
        spectral_norm(nn.Linear(3, 3), eps=0.0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        SpectralNorm(torch.ones(3))
    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_spectral_norm(nn.ReLU())


# ------------------------------------------------------------------ exact norms


def _circular_conv_matrix(w: np.ndarray, h: int, wd: int) -> np.ndarray:
    """The (C_out H W, C_in H W) matrix of y[o,i,j] = sum w[o,c,a,b] x[c,(i+a)%H,(j+b)%W], by loops."""
    c_out, c_in, kh, kw = w.shape
    m = np.zeros((c_out, h, wd, c_in, h, wd))
    for i in range(h):
        for j in range(wd):
            for a in range(kh):
                for b in range(kw):
                    m[:, i, j, :, (i + a) % h, (j + b) % wd] += w[:, :, a, b]
    return m.reshape(c_out * h * wd, c_in * h * wd)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 2, 1, 1), (1, 1, 3, 3), (4, 3, 3, 3),
                                   (2, 4, 5, 5), (3, 3, 2, 4)])
@pytest.mark.parametrize("size", [(6, 6), (6, 7)])
def test_conv_singular_values_match_brute_force(shape, size):
    g = torch.Generator().manual_seed(sum(shape) + size[1])
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    m = _circular_conv_matrix(w.numpy(), *size)
    # the loop matrix is PyTorch's conv2d (a cross-correlation) with circular padding
    x = torch.randn(1, shape[1], *size, generator=g, dtype=torch.float64)
    y = F.conv2d(F.pad(x, (0, shape[3] - 1, 0, shape[2] - 1), mode="circular"), w)
    assert_close(torch.from_numpy(m @ x.flatten().numpy()), y.flatten(), rtol=1e-12, atol=1e-12)
    expected = np.linalg.svd(m, compute_uv=False)[: size[0] * size[1] * min(shape[:2])]
    assert_close(conv_singular_values(w, size), torch.from_numpy(expected), rtol=1e-9, atol=1e-10)
    assert conv_operator_norm(w, size).item() == pytest.approx(expected[0], rel=1e-10)


def test_conv_norm_within_sqrt_k_of_reshaped_sigma_also_for_strided_zero_padded_conv():
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 5, 4, stride=2, padding=1).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
    # brute-force Jacobian of the strided, zero-padded conv on 8x8 inputs
    jac = torch.autograd.functional.jacobian(lambda x: F.conv2d(x, conv.weight, None, 2, 1),
                                             torch.zeros(1, 3, 8, 8, dtype=torch.float64))
    true = torch.linalg.matrix_norm(jac.reshape(5 * 4 * 4, 3 * 8 * 8), ord=2)
    sigma = sigma_exact(conv.weight)
    assert true <= 4 * sigma * (1 + 1e-12)
    for size in (4, 8, 11):
        assert conv_operator_norm(conv.weight, size) <= 4 * sigma * (1 + 1e-12)
    # the reshaped sigma alone is not a bound: the all-ones kernel stretches a constant image by kh kw
    ones = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    assert conv_operator_norm(ones, 6).item() == pytest.approx(9.0, rel=1e-12)
    assert sigma_exact(ones).item() == pytest.approx(3.0, rel=1e-12)


def test_exact_norm_errors():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        sigma_exact(torch.ones(4))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv_operator_norm(torch.ones(2, 2, 3, 3), 2)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv_operator_norm(torch.ones(2, 2, 3, 5), (6, 4))
    with pytest.raises(ValueError, match=r"\(C_out, C_in, kh, kw\)"):
        conv_operator_norm(torch.ones(4, 3), 6)
    with pytest.raises(ValueError, match="input_size"):
        conv_operator_norm(torch.ones(2, 2, 3, 3), (6, 6, 6))


# ------------------------------------------------------------------ network measurements


def test_layer_spectra_lipschitz_bound_and_gradient_norms():
    torch.manual_seed(0)
    d = ConvDiscriminator(width=4).double()
    spectra = layer_spectra(d)
    assert list(spectra) == ["net.0", "net.2", "net.4", "out"]
    for name, m in d.named_modules():
        if name in spectra:
            assert_close(spectra[name], torch.linalg.svdvals(m.weight.detach().flatten(1)), rtol=1e-12, atol=0)
    top = {k: v[0].item() for k, v in spectra.items()}
    assert lipschitz_upper_bound(d, "reshaped") == pytest.approx(math.prod(top.values()), rel=1e-12)
    assert lipschitz_upper_bound(d) == pytest.approx(math.prod(top.values()) * 3 * 4 * 4, rel=1e-12)

    x = torch.randn(16, 1, 8, 8, dtype=torch.float64)
    norms = gradient_norms(d, x)
    for i in (0, 7):  # one sample at a time gives the same gradient
        xi = x[i:i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(d(xi).sum(), xi)
        assert norms[i].item() == pytest.approx(gi.norm().item(), rel=1e-12)
    assert (norms <= lipschitz_upper_bound(d)).all()
    assert all(p.grad is None for p in d.parameters())


def test_gradient_norm_of_linear_critic_is_its_weight_norm():
    lin = nn.Linear(5, 1).double()
    norms = gradient_norms(lin, torch.randn(9, 5, dtype=torch.float64))
    assert_close(norms, lin.weight.norm().expand(9), rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="one value per sample"):
        gradient_norms(nn.Linear(5, 2), torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"\(B, \.\.\.\)"):
        gradient_norms(lin, torch.randn(5))


def test_measurements_do_not_advance_sn_and_sn_net_has_unit_layer_sigmas():
    d = apply_spectral_norm(ConvDiscriminator(width=4).double(), generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    for _ in range(300):  # converge the power iterations (weights fixed)
        d(x)
    us = [m._u.clone() for m in d.modules() if isinstance(m, SpectralNorm)]
    spectra = layer_spectra(d)
    gradient_norms(d, x)
    lipschitz_upper_bound(d)
    assert all(torch.equal(u, m._u) for u, m in zip(us, [m for m in d.modules() if isinstance(m, SpectralNorm)]))
    assert all(m.training for m in d.modules())  # modes restored
    for s in spectra.values():
        assert s[0].item() == pytest.approx(1.0, rel=1e-5)
    assert lipschitz_upper_bound(d, conv_norm="reshaped") == pytest.approx(1.0, rel=1e-4)


def test_lipschitz_bound_errors():
    with pytest.raises(ValueError, match="BatchNorm1d"):
        lipschitz_upper_bound(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
    with pytest.raises(ValueError, match="conv_norm"):
        lipschitz_upper_bound(mlp(2, 1), conv_norm="fft")
    with pytest.raises(ValueError, match="no nn.Linear"):
        lipschitz_upper_bound(nn.ReLU())


# ------------------------------------------------------------------ power spectra


def test_parseval():
    x = torch.randn(3, 2, 9, 12, dtype=torch.float64)
    assert_close(periodogram(x).sum(dim=(2, 3)), x.square().sum(dim=(2, 3)), rtol=1e-12, atol=0)


@pytest.mark.parametrize("a, b", [(0, 5), (3, 4), (2, 1), (8, 0)])
def test_power_spectrum_of_a_sinusoid(a, b):
    n = 16
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    img = torch.cos(2 * math.pi * (a * y + b * x) / n)[None, None]  # (1, 1, 16, 16)
    freqs, power = power_spectrum(img)
    k = round(math.hypot(a, b))
    assert len(freqs) == n // 2 + 1 and freqs[k].item() == pytest.approx(k / n)
    assert int(power.argmax()) == k
    bins, _ = radial_bins(n, n)
    count = int((bins == k).sum())
    n_peaks = 1 if (2 * a) % n == 0 and (2 * b) % n == 0 else 2  # (a, b) = (-a, -b) mod n at Nyquist
    # each of the two peaks holds (n^2/2)^2 / n^2 = n^2/4; where they coincide, one holds n^4 / n^2
    total = n * n / 2 if n_peaks == 2 else n * n
    assert power[k].item() == pytest.approx(total / count, rel=1e-12)
    others = torch.cat([power[:k], power[k + 1:]])
    assert others.abs().max().item() < 1e-20


@pytest.mark.parametrize("h, w", [(8, 8), (6, 10)])
def test_power_spectrum_matches_loop_average(h, w):
    img = torch.randn(2, 3, h, w, dtype=torch.float64)
    p = (np.abs(np.fft.fft2(img.numpy())) ** 2 / (h * w)).mean(axis=(0, 1))
    n = min(h, w)
    sums, counts = np.zeros(n // 2 + 1), np.zeros(n // 2 + 1)
    for i in range(h):
        for j in range(w):
            fi = (i if i <= h // 2 else i - h) / h
            fj = (j if j <= w // 2 else j - w) / w
            r = math.hypot(fi, fj) * n
            k = int(np.floor(r + 0.5))
            if k <= n // 2:
                sums[k] += p[i, j]
                counts[k] += 1
    freqs, power = power_spectrum(img)
    assert_close(power, torch.from_numpy(sums / counts), rtol=1e-12, atol=0)
    assert_close(freqs, torch.arange(n // 2 + 1, dtype=torch.float64) / n)
    # a constant image: all power at DC, c^2 H W
    _, flat = power_spectrum(torch.full((1, 1, h, w), 0.5, dtype=torch.float64))
    assert flat[0].item() == pytest.approx(0.25 * h * w, rel=1e-12) and flat[1:].abs().max() < 1e-25


def test_spectral_gap():
    _, real = power_spectrum(torch.randn(4, 1, 16, 16, dtype=torch.float64))  # 9 bins, high half = 4..8
    assert spectral_gap(real, real).item() == 0.0
    fake = real.clone()
    fake[4:] *= 3.0
    fake[:4] *= 100.0  # the low half does not count
    assert spectral_gap(real, fake, eps=0.0).item() == pytest.approx(math.log(3.0), rel=1e-12)
    assert spectral_gap(fake, real, eps=0.0).item() == pytest.approx(math.log(3.0), rel=1e-12)
    fake2 = real.clone()
    fake2[-1] *= 2.0  # only the Nyquist bin, with high_fraction 1/8 the mean runs over bins 7..8
    assert spectral_gap(real, fake2, high_fraction=0.125, eps=0.0).item() == pytest.approx(math.log(2) / 2, rel=1e-12)


def test_spectrum_errors():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        power_spectrum(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        periodogram(torch.randn(1, 1, 1, 3, 3))
    with pytest.raises(ValueError, match="H, W >= 2"):
        power_spectrum(torch.randn(1, 1, 1, 8))
    with pytest.raises(ValueError, match="same size"):
        spectral_gap(torch.ones(9), torch.ones(5))
    with pytest.raises(ValueError, match="1-D power spectrum"):
        spectral_gap(torch.ones(3, 3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        spectral_gap(torch.ones(5), -torch.ones(5))
    with pytest.raises(ValueError, match="high_fraction"):
        spectral_gap(torch.ones(5), torch.ones(5), high_fraction=0.0)
