"""Tests for ganref.probes: exact conv norms against brute force, sigmas and Lipschitz bounds against the SVD,
gradient norms and critic statistics against closed forms. Everything in float64 unless a test says why not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganref.layers import SpectralNorm, apply_spectral_norm, spectral_norm
from ganref.nets import ConvDiscriminator, mlp
from ganref.probes import (
    conv_layer_operator_norm,
    conv_operator_norm,
    conv_singular_values,
    critic_activation_gradient_norms,
    critic_layer_gradient_norms,
    critic_weight_stats,
    gradient_norms,
    layer_input_sizes,
    layer_operator_norms,
    layer_sigmas,
    layer_spectra,
    lipschitz_upper_bound,
    sigma_exact,
)

F64 = torch.float64


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sym(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=_gen(seed), dtype=F64)
    return (a + a.T) / 2


def _quadratic_critic(A: torch.Tensor, b: torch.Tensor):
    """D(x) = x^T A x / 2 + b.x on flattened x (A symmetric): grad D(x) = A x + b."""
    def critic(x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)
        return 0.5 * ((v @ A) * v).sum(1) + v @ b
    return critic


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


# ------------------------------------------------------------------ operator norms of layers as they are


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
    got = conv_layer_operator_norm(conv, spec["size"])
    assert abs(got - want) <= 1e-9 * want
    # the proven chain for zero padding and strides: ||A|| <= circular stride-1 norm on the padded grid
    # <= sqrt(kh kw) * sigma(reshaped kernel) (Sedghi et al.; probes.lipschitz_upper_bound)
    padded = (spec["size"][0] + 2 * spec["padding"], spec["size"][1] + 2 * spec["padding"])
    circ = float(conv_operator_norm(conv.weight.double(), padded))
    assert got <= circ * (1 + 1e-9)
    assert circ <= spec["k"] * float(sigma_exact(conv.weight.double())) * (1 + 1e-9)


def test_conv_layer_operator_norm_of_sn_layer_and_errors():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 4, stride=2, padding=1)
    spectral_norm(conv)
    conv.eval()
    size = (8, 8)
    want = float(torch.linalg.svdvals(_dense(conv, size))[0])  # the dense matrix of the normalized weight
    u_before = conv.parametrizations.weight[0]._u.clone()
    conv.train()
    assert abs(conv_layer_operator_norm(conv, size) - want) <= 1e-9 * want
    assert torch.equal(conv.parametrizations.weight[0]._u, u_before)  # measuring does not advance SN
    with pytest.raises(ValueError, match="nn.Conv2d"):
        conv_layer_operator_norm(nn.Linear(3, 3), 8)
    with pytest.raises(ValueError, match="input_size"):
        conv_layer_operator_norm(conv, (8,))
    with pytest.raises(ValueError, match="too small"):
        conv_layer_operator_norm(nn.Conv2d(1, 1, 5), 3)
    with pytest.raises(ValueError, match="zero padding"):
        conv_layer_operator_norm(nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"), 8)


def test_layer_operator_norms_bound_the_gradient_of_a_trained_discriminator(float64):
    torch.manual_seed(0)
    D = ConvDiscriminator(channels=1, width=4)
    x = torch.randn(64, 1, 8, 8)
    norms = layer_operator_norms(D, x)
    assert list(norms) == ["net.0", "net.2", "net.4", "out"]
    # each entry is the norm of the layer at the size it sees: 8x8, 8x8, 4x4, and the Linear's sigma
    for name, size in (("net.0", (8, 8)), ("net.2", (8, 8)), ("net.4", (4, 4))):
        conv = dict(D.named_modules())[name]
        want = float(torch.linalg.svdvals(_dense(conv, size))[0])
        assert abs(norms[name] - want) <= 1e-9 * want, name
    assert abs(norms["out"] - float(torch.linalg.svdvals(D.out.weight.detach())[0])) < 1e-12
    # the product bounds every input gradient (LeakyReLU(0.2) is 1-Lipschitz), and is the tighter bound
    grads = gradient_norms(D, x)
    assert float(grads.max()) <= math.prod(norms.values()) * (1 + 1e-9)
    assert math.prod(norms.values()) <= lipschitz_upper_bound(D, "bound") * (1 + 1e-9)
    with pytest.raises(ValueError, match="example"):
        layer_operator_norms(D, torch.zeros(8))


def test_layer_input_sizes_are_the_shapes_each_layer_sees():
    D = ConvDiscriminator(channels=1, width=4)
    sizes = layer_input_sizes(D, torch.zeros(3, 1, 8, 8))
    assert sizes == {"net.0": (1, 8, 8), "net.2": (4, 8, 8), "net.4": (8, 4, 4), "out": (16 * 2 * 2,)}
    assert all(not m._forward_hooks for m in D.modules())  # hooks removed


# ------------------------------------------------------------------ SN sigmas


def test_layer_sigmas_of_sn_and_plain_layers_against_the_svd(float64):
    D = apply_spectral_norm(ConvDiscriminator(width=4), generator=_gen(0))
    with torch.no_grad():  # move the weights away from where u and v converged at creation
        for m in D.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.parametrizations.weight.original.mul_(1 + torch.rand_like(m.parametrizations.weight.original))
    x = torch.randn(2, 1, 8, 8)
    sig = layer_sigmas(D)
    for name, m in D.named_modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        sn, w = m.parametrizations.weight[0], m.parametrizations.weight.original.detach()
        # estimate = u^T W v of the stored vectors; effective = sigma of W / estimate; exact = sigma(W)
        assert sig[name]["estimate"] == pytest.approx(float(sn._u @ (w.flatten(1) @ sn._v)), rel=1e-14)
        assert sig[name]["exact"] == pytest.approx(float(torch.linalg.svdvals(w.flatten(1))[0]), rel=1e-14)
        assert sig[name]["effective"] == pytest.approx(sig[name]["exact"] / sig[name]["estimate"], rel=1e-12)
    assert max(abs(s["effective"] - 1) for s in sig.values()) > 1e-3  # the stale estimates are off
    us = [m._u.clone() for m in D.modules() if isinstance(m, SpectralNorm)]
    layer_sigmas(D)
    assert all(torch.equal(u, m._u) for u, m in zip(us, [m for m in D.modules() if isinstance(m, SpectralNorm)]))
    with torch.no_grad():
        for _ in range(300):  # converge u and v on the new weights: the estimate reaches sigma(W)
            D(x)
    for name, s in layer_sigmas(D).items():
        assert s["estimate"] == pytest.approx(s["exact"], rel=1e-9), name  # power-iteration convergence
        assert s["effective"] == pytest.approx(1.0, rel=1e-9), name
    plain = layer_sigmas(ConvDiscriminator(width=4))
    assert list(plain) == ["net.0", "net.2", "net.4", "out"]
    assert all(math.isnan(s["estimate"]) and s["effective"] == s["exact"] for s in plain.values())


# ------------------------------------------------------------------ critic statistics and gradients


def test_critic_weight_stats_count_parameters_at_the_bounds():
    lin = nn.Linear(4, 2).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.01, -0.01, 0.00995, 0.0], [-0.0098, 0.005, 0.01, -0.01]], dtype=F64))
        lin.bias.copy_(torch.tensor([0.00992, -0.02], dtype=F64))
    # within tol * c = 1e-4 of +-c: 0.01, 0.00995, 0.01, 0.00992 (upper); -0.01, -0.01, -0.02 (lower); not -0.0098
    stats = critic_weight_stats(lin, 0.01)
    assert stats == {"n": 10, "at_bound": 0.7, "at_upper": 0.4, "at_lower": 0.3, "max_abs": 0.02}
    assert critic_weight_stats(lin, 0.01, tol=1e-3)["at_upper"] == 0.2  # 0.00995 and 0.00992 drop out
    with pytest.raises(ValueError, match="c must be"):
        critic_weight_stats(lin, 0.0)
    with pytest.raises(ValueError, match="tol must be"):
        critic_weight_stats(lin, 0.01, tol=-1.0)


def test_critic_weight_stats_of_a_critic_without_parameters_is_a_clear_error():
    with pytest.raises(ValueError, match="critic has no parameters"):
        critic_weight_stats(nn.ReLU(), 0.01)


def test_gradient_norms_and_layer_gradient_norms_closed_forms():
    d = 3
    A, b = _sym(d, 50), torch.randn(d, generator=_gen(51), dtype=F64)
    x = torch.randn(20, d, generator=_gen(52), dtype=F64)
    assert_close(gradient_norms(_quadratic_critic(A, b), x), (x @ A + b).norm(dim=1), rtol=1e-13, atol=0)
    lin = nn.Linear(d, 1).double()
    norms = gradient_norms(lin, x)
    assert_close(norms, lin.weight.detach().norm().expand(20), rtol=1e-14, atol=0)
    assert lin.weight.grad is None  # the measurement does not touch .grad
    # per layer: d mean_i (w.x_i + b) / dw = mean_i x_i
    layers = critic_layer_gradient_norms(lin, x)
    assert list(layers) == ["weight"]
    assert layers["weight"] == pytest.approx(x.mean(0).norm().item(), rel=1e-13)
    assert lin.weight.grad is None
    with pytest.raises(ValueError, match="no weight matrices"):
        critic_layer_gradient_norms(nn.ReLU(), x)  # no weight matrix to measure


def test_critic_activation_gradient_norms_closed_form():
    # D(x) = w3 . leaky(W2 relu(W1 x + b1) + b2) + b3. With a1 = relu(W1 x + b1), a2 = leaky(W2 a1 + b2):
    # dD/da2 = w3 for every sample; dD/da1 = W2^T (leaky'(W2 a1 + b2) * w3), per sample.
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
    with pytest.raises(ValueError, match=r"x must be a batch"):
        critic_activation_gradient_norms(critic, torch.randn(3))
    assert all(not m._forward_hooks for m in critic.modules())


def test_per_sample_gradients_refuse_batch_norm():
    bn_critic = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    with pytest.raises(ValueError, match="batch norm"):
        gradient_norms(bn_critic, torch.randn(8, 2))
