"""Tests for ganref/methods/ntk.py: empirical NTK, closed-form ReLU kernels, the infinite-width discriminator and
particles (the sliced Wasserstein distance they report is tested in test_metrics.py). Closed forms are checked in
float64 with tight tolerances; Monte-Carlo checks use tolerances set from their own standard errors."""

from __future__ import annotations

import copy
import dataclasses
import functools
import math

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.stats
import torch
from torch import nn
from torch.testing import assert_close

from ganref import losses, nets
from ganref.methods.ntk import (LOSSES, NTKMLP, ParticleConfig, discriminator_flow, empirical_ntk, generator_loss,
                                particle_flow, particle_step, relu_nngp, relu_ntk)
from ganref.metrics import sliced_wasserstein

f64 = torch.float64
EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = f64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _ntk_by_loop(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Theta = J J^T from one torch.autograd.grad per sample (float64 copy of the model)."""
    model = copy.deepcopy(model).double()
    params = [p for p in model.parameters() if p.requires_grad]

    def jac(x: torch.Tensor) -> torch.Tensor:
        rows = []
        for xi in x.double():
            out = model(xi[None]).reshape(())
            rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(out, params)]))
        return torch.stack(rows)

    return jac(x1) @ jac(x2).T


# ---------------------------------------------------------------- empirical NTK

@pytest.mark.parametrize("kind", ["mlp_discriminator", "sequential_b1", "ntk_mlp"])
def test_empirical_ntk_equals_autograd_jacobian_product(kind):
    torch.manual_seed(0)
    model = {"mlp_discriminator": lambda: nets.MLPDiscriminator(3, hidden=16, depth=2),  # (B,)
             "sequential_b1": lambda: nets.mlp(3, 1, hidden=8, depth=2, act=nn.Tanh),  # (B, 1)
             "ntk_mlp": lambda: NTKMLP(3, 16, 2, w_std=1.3, b_std=0.4)}[kind]()
    x1, x2 = _randn(7, 3, seed=1, dtype=torch.float32), _randn(5, 3, seed=2, dtype=torch.float32)
    want = _ntk_by_loop(model, x1, x2)
    got = empirical_ntk(model, x1, x2, dtype=f64)
    assert got.dtype == f64 and got.shape == (7, 5)
    assert_close(got, want, atol=1e-10, rtol=0)
    assert_close(empirical_ntk(model, x1, x2, chunk_size=2, dtype=f64), want, atol=1e-10, rtol=0)
    assert_close(empirical_ntk(model, x1, dtype=f64, chunk_size=3), _ntk_by_loop(model, x1, x1), atol=1e-10, rtol=0)
    assert next(model.parameters()).dtype == torch.float32  # the cast was on a copy


def test_empirical_ntk_symmetric_and_psd():
    model = NTKMLP(4, 32, 3, b_std=0.5, generator=_gen(3))
    x = _randn(13, 4, seed=4)
    k = empirical_ntk(model, x, chunk_size=5, dtype=f64)  # blocks 5, 5, 3: off-diagonal blocks mirrored
    assert torch.equal(k, k.T)
    eig = torch.linalg.eigvalsh(k)
    assert eig.min() >= -1e-10 * eig.max()
    k32 = empirical_ntk(model, x.float())  # dtype=None: the parameters' dtype
    assert k32.dtype == torch.float32
    # each entry sums ~2,200 float32 products of Jacobian entries: rounding grows like sqrt(2200) ~ 50 times
    # EPS32 times the entries' size (1e-7 seen); 256 * EPS32 * max|k| leaves a margin and still catches a wrong term
    assert_close(k32.double(), k, rtol=0, atol=256 * EPS32 * k.abs().max().item())


def test_empirical_ntk_errors():
    x = _randn(5, 3)
    with pytest.raises(ValueError, match=r"one scalar per sample.*\(2, 2\)"):
        empirical_ntk(nets.mlp(3, 2, hidden=8, depth=1), x)
    with pytest.raises(ValueError, match="feature shape"):
        empirical_ntk(NTKMLP(3, 8, 1), x, _randn(5, 4))
    with pytest.raises(ValueError, match="batch dimension"):
        empirical_ntk(NTKMLP(3, 8, 1), x[0])
    with pytest.raises(ValueError, match="chunk_size"):
        empirical_ntk(NTKMLP(3, 8, 1), x, chunk_size=0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        empirical_ntk(nn.Flatten(0), x[:, :1])


# ---------------------------------------------------------------- closed-form ReLU kernels

def test_relu_ntk_depth1_equals_arccos_closed_form_by_hand():
    x1, x2 = _randn(6, 5, seed=5), _randn(4, 5, seed=6)
    w, b, d = 1.4, 0.3, 5
    s1 = w**2 * x1 @ x2.T / d + b**2  # Sigma^1 = Theta^1
    q1 = w**2 * (x1**2).sum(1) / d + b**2
    q2 = w**2 * (x2**2).sum(1) / d + b**2
    nrm = torch.sqrt(q1[:, None] * q2[None, :])
    th = torch.arccos(s1 / nrm)
    k1 = nrm / (2 * math.pi) * (torch.sin(th) + (math.pi - th) * torch.cos(th))  # Cho & Saul degree 1
    k0 = (math.pi - th) / (2 * math.pi)  # Cho & Saul degree 0
    nngp = w**2 * k1 + b**2
    ntk = nngp + w**2 * k0 * s1
    assert_close(relu_nngp(x1, x2, 1, w, b), nngp, atol=1e-12, rtol=1e-12)
    assert_close(relu_ntk(x1, x2, 1, w, b), ntk, atol=1e-12, rtol=1e-12)
    assert_close(relu_ntk(x1, None, 2, w, b), relu_ntk(x1, x1, 2, w, b), atol=0, rtol=0)


@pytest.mark.parametrize("rho", [-0.9, -0.3, 0.2, 0.6, 0.97])
def test_arccos_expectations_equal_gaussian_integrals(rho):
    """With d = 2, w = 1, b = 0, Sigma^1 = x.x'/2 is any 2x2 covariance we like: depth 1 then gives
    E[relu(u) relu(v)] (NNGP) and NTK - NNGP = P(u > 0, v > 0) Sigma^1(x, x')."""
    q1, q2 = 0.7, 1.9
    x = torch.tensor([[math.sqrt(2 * q1), 0.0], [math.sqrt(2 * q2) * rho, math.sqrt(2 * q2 * (1 - rho**2))]], dtype=f64)
    nngp = relu_nngp(x[:1], x[1:], 1)[0, 0].item()
    ntk = relu_ntk(x[:1], x[1:], 1)[0, 0].item()
    cov = np.array([[q1, rho * math.sqrt(q1 * q2)], [rho * math.sqrt(q1 * q2), q2]])
    prec, norm = np.linalg.inv(cov), 1 / (2 * math.pi * math.sqrt(np.linalg.det(cov)))  # bivariate normal density
    dens = lambda u, v: norm * math.exp(-0.5 * (prec[0, 0] * u * u + 2 * prec[0, 1] * u * v + prec[1, 1] * v * v))
    e_relu, _ = scipy.integrate.dblquad(lambda v, u: u * v * dens(u, v), 0, 12 * math.sqrt(q1), 0, 12 * math.sqrt(q2),
                                        epsabs=1e-12, epsrel=1e-11)
    orthant = 0.25 + math.asin(rho) / (2 * math.pi)  # Sheppard's formula for P(u > 0, v > 0)
    assert nngp == pytest.approx(e_relu, rel=1e-8, abs=1e-11)
    assert ntk - nngp == pytest.approx(orthant * rho * math.sqrt(q1 * q2), rel=1e-10, abs=1e-14)


def test_nngp_and_ntk_recursion_against_gaussian_monte_carlo():
    """Each layer's expectations by sampling (u, v) ~ N(0, Sigma^l) (10^6 draws): 1% relative."""
    x = _randn(2, 3, seed=7)
    w, b, depth, n = 1.2, 0.4, 3, 1_000_000
    sig = w**2 * x @ x.T / 3 + b**2  # 2x2 Sigma^1
    theta = sig.clone()
    gen = _gen(8)
    for _ in range(depth):
        z = torch.randn(n, 2, generator=gen, dtype=f64) @ torch.linalg.cholesky(sig).T  # (n, 2) ~ N(0, Sigma^l)
        r, s = torch.relu(z), (z > 0).to(f64)
        e_relu, e_step = r.T @ r / n, s.T @ s / n  # E[relu relu], E[relu' relu']
        sig = w**2 * e_relu + b**2
        theta = sig + w**2 * e_step * theta
    assert_close(relu_nngp(x, None, depth, w, b), sig, rtol=1e-2, atol=0)
    assert_close(relu_ntk(x, None, depth, w, b), theta, rtol=1e-2, atol=0)


def test_wide_ntk_mlp_converges_to_relu_ntk_at_rate_one_over_sqrt_width():
    x = _randn(6, 3, seed=9)
    depth, b, seeds = 2, 0.5, 64
    k_inf = relu_ntk(x, None, depth, 1.0, b)

    def empirical(width: int, base: int) -> torch.Tensor:  # (seeds, 6, 6)
        return torch.stack([empirical_ntk(NTKMLP(3, width, depth, 1.0, b, generator=_gen(base + s)), x, dtype=f64)
                            for s in range(seeds)])

    k64, k256 = empirical(64, 0), empirical(256, 1000)
    rel_rms = {w: ((k - k_inf).norm(dim=(1, 2)) ** 2 / k_inf.norm() ** 2).mean().sqrt().item()
               for w, k in ((64, k64), (256, k256))}
    assert rel_rms[256] < 4.0 / math.sqrt(256)  # C / sqrt(width), C = 4 (measured about 2)
    assert 0.35 < rel_rms[256] / rel_rms[64] < 0.7  # 4x wider: the error roughly halves (1/sqrt(4))
    mean, se = k256.mean(0), k256.std(0) / math.sqrt(seeds)  # the average over seeds: no bias beyond noise
    assert ((mean - k_inf).abs() <= 5 * se + 1e-3 * k_inf.abs()).all()


def test_relu_ntk_gradients():
    x1, x2 = _randn(3, 2, seed=10).requires_grad_(True), _randn(4, 2, seed=11).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, c: relu_ntk(a, c, 3, 1.1, 0.5), (x1, x2))
    assert torch.autograd.gradcheck(lambda a, c: relu_nngp(a, c, 2, 1.0, 0.0), (x1, x2))
    # at x = x' the NTK has a cone-shaped kink: the gradient is the symmetric derivative, the limit of
    # central differences, whose error is O(h) there (terms |h| h): Richardson 2 D(h) - D(2h) removes it
    data = _randn(5, 2, seed=12)
    q = data[2:3].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(relu_ntk(q, data, 3, 1.0, 0.5).sum(), q)
    assert torch.isfinite(grad).all()
    fd = _richardson(lambda e: relu_ntk(data[2:3] + e, data, 3, 1.0, 0.5).sum(), data[2:3])
    assert_close(grad.reshape(-1), fd, rtol=1e-6, atol=1e-7)


def _richardson(fn, x: torch.Tensor, h: float = 1e-4) -> torch.Tensor:
    """d fn(e) / d e at e = 0 (e shaped like x) as 2 D(h) - D(2h), D the central difference: (*out, x.numel())."""
    cols = []
    for i in range(x.numel()):
        e = torch.zeros(x.numel(), dtype=x.dtype)
        e[i] = 1.0
        e = e.reshape(x.shape)
        d = [(fn(s * e) - fn(-s * e)) / (2 * s) for s in (h, 2 * h)]
        cols.append(2 * d[0] - d[1])
    return torch.stack(cols, -1)


def test_relu_kernel_and_ntk_mlp_errors():
    x = _randn(4, 3)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="depth"):
            relu_ntk(x, x, bad)
        with pytest.raises(ValueError, match="depth"):
            NTKMLP(3, 8, bad)
    with pytest.raises(ValueError, match="same d"):
        relu_ntk(x, _randn(4, 2), 1)
    with pytest.raises(ValueError, match="w_std"):
        relu_nngp(x, x, 1, w_std=0.0)
    with pytest.raises(ValueError, match="b_std"):
        relu_nngp(x, x, 1, b_std=-1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        NTKMLP(3, 8, 1)(_randn(4, 2, dtype=torch.float32))


# ---------------------------------------------------------------- the infinite-width discriminator

def _problem(n_r: int = 5, n_g: int = 4):
    x_real, x_fake, x_query = _randn(n_r, 2, seed=20) + 1.0, _randn(n_g, 2, seed=21) - 0.5, _randn(6, 2, seed=22)
    kernel = functools.partial(relu_ntk, depth=2, w_std=1.0, b_std=0.5)
    return x_real, x_fake, x_query, kernel


def _f0(x: torch.Tensor) -> torch.Tensor:
    return 0.3 * torch.sin(2 * x).sum(1)


def _ode(kernel, x_real, x_fake, x_query, t, eta, grad_fn, f0=_f0):
    """solve_ivp (RK45, rtol = atol = 1e-12) of df/dt = -eta Theta(., X) M dl/df(X), on X and x_query."""
    x = torch.cat([x_real, x_fake])
    n_r, n_g, n = len(x_real), len(x_fake), len(x_real) + len(x_fake)
    m = np.r_[np.full(n_r, 1 / n_r), np.full(n_g, 1 / n_g)]
    k = kernel(torch.cat([x, x_query]), x).numpy()  # (n + N, n)
    sol = scipy.integrate.solve_ivp(lambda _, f: -eta * k @ (m * grad_fn(f[:n], n_r)), (0, t),
                                    torch.cat([f0(x), f0(x_query)]).numpy(), method="RK45", rtol=1e-12, atol=1e-12)
    return torch.from_numpy(sol.y[:, -1])


def test_least_squares_closed_form_equals_integrated_gradient_flow():
    x_real, x_fake, x_query, kernel = _problem()
    y_fn = lambda f, n_r: f - np.r_[np.ones(n_r), -np.ones(len(f) - n_r)]  # dl/df of (f - y)^2 / 2
    want = _ode(kernel, x_real, x_fake, x_query, t=3.0, eta=2.0, grad_fn=y_fn)
    got = discriminator_flow(kernel, x_real, x_fake, torch.cat([x_real, x_fake, x_query]), "lsgan", 3.0, 2.0, f0=_f0)
    assert_close(got, want, atol=1e-9, rtol=0)
    # a duplicated real point makes Theta(X, X) singular: phi(0) = eta t keeps the flow exact
    x_dup = torch.cat([x_real, x_real[:1]])
    want = _ode(kernel, x_dup, x_fake, x_query, t=3.0, eta=2.0, grad_fn=y_fn)
    got = discriminator_flow(kernel, x_dup, x_fake, torch.cat([x_dup, x_fake, x_query]), "lsgan", 3.0, 2.0, f0=_f0)
    assert_close(got, want, atol=1e-9, rtol=0)


def test_least_squares_equal_sizes_is_the_textbook_formula():
    """n_r = n_g = n: f_t = f_0 + Theta(., X) Theta^-1 (I - exp(-eta t Theta / n)) (y - f_0)."""
    x_real, x_fake, x_query, kernel = _problem(4, 4)
    x, t, eta, n = torch.cat([x_real, x_fake]), 2.5, 1.5, 4
    k_xx, k_qx = kernel(x, x).numpy(), kernel(x_query, x).numpy()
    y, f0_x = np.r_[np.ones(4), -np.ones(4)], _f0(x).numpy()
    want = _f0(x_query).numpy() + k_qx @ np.linalg.solve(k_xx, (np.eye(8) - scipy.linalg.expm(-eta * t * k_xx / n)) @ (y - f0_x))
    got = discriminator_flow(kernel, x_real, x_fake, x_query, "lsgan", t, eta, f0=_f0)
    assert_close(got, torch.from_numpy(want), atol=1e-10, rtol=0)


def test_ipm_is_linear_in_t_and_the_ntk_witness_function():
    x_real, x_fake, x_query, kernel = _problem()
    f = {t: discriminator_flow(kernel, x_real, x_fake, x_query, "ipm", t, 0.7, f0=_f0) for t in (0.0, 1.0, 2.5)}
    assert_close(f[0.0], _f0(x_query).double(), atol=1e-15, rtol=0)
    assert_close(f[2.5] - f[0.0], 2.5 * (f[1.0] - f[0.0]), atol=1e-12, rtol=0)
    witness = kernel(x_query, x_real).mean(1) - kernel(x_query, x_fake).mean(1)  # MMD witness of Theta
    assert_close(f[1.0] - f[0.0], 0.7 * witness, atol=1e-12, rtol=0)


def test_vanilla_flow_matches_ode_and_decreases_the_loss():
    x_real, x_fake, x_query, kernel = _problem()
    sig = lambda f: 1 / (1 + np.exp(-f))
    grad_fn = lambda f, n_r: sig(f) - np.r_[np.ones(n_r), np.zeros(len(f) - n_r)]
    want = _ode(kernel, x_real, x_fake, x_query, t=4.0, eta=3.0, grad_fn=grad_fn)
    x_all = torch.cat([x_real, x_fake, x_query])
    assert_close(discriminator_flow(kernel, x_real, x_fake, x_all, "vanilla", 4.0, 3.0, f0=_f0), want, atol=1e-8, rtol=0)
    x_train = torch.cat([x_real, x_fake])
    losses = []
    for t in (0.0, 0.5, 1.0, 2.0, 4.0, 8.0):
        f = discriminator_flow(kernel, x_real, x_fake, x_train, "vanilla", t, 3.0)
        losses.append((torch.nn.functional.softplus(-f[:5]).mean() + torch.nn.functional.softplus(f[5:]).mean()).item())
    assert losses[0] == pytest.approx(2 * math.log(2), abs=1e-15)  # f_0 = 0
    assert all(b < a - 1e-3 for a, b in zip(losses, losses[1:]))


def test_discriminator_flow_errors():
    x_real, x_fake, x_query, kernel = _problem()
    with pytest.raises(ValueError, match="loss must be one of"):
        discriminator_flow(kernel, x_real, x_fake, x_query, "hinge", 1.0)
    with pytest.raises(ValueError, match="t must be"):
        discriminator_flow(kernel, x_real, x_fake, x_query, "ipm", -1.0)
    with pytest.raises(ValueError, match="eta must be"):
        discriminator_flow(kernel, x_real, x_fake, x_query, "ipm", 1.0, eta=0.0)
    with pytest.raises(ValueError, match="same d"):
        discriminator_flow(kernel, x_real, x_fake, _randn(3, 3), "ipm", 1.0)
    with pytest.raises(ValueError, match=r"kernel_fn\(a, b\) must return a \(9, 9\)"):
        discriminator_flow(lambda a, c: a @ c.T[:, :1], x_real, x_fake, x_query, "ipm", 1.0)
    with pytest.raises(ValueError, match="loss must be one of"):
        generator_loss(x_query[:, 0], "wgan")


# ---------------------------------------------------------------- particles

def test_generator_losses_are_the_module_table():
    f = _randn(9, seed=32)
    assert_close(generator_loss(f, "ipm"), -f, atol=0, rtol=0)
    assert_close(generator_loss(f, "lsgan"), (f - 1) ** 2 / 2, atol=1e-15, rtol=0)
    assert_close(generator_loss(f, "vanilla"), -torch.log(torch.sigmoid(f)), atol=1e-14, rtol=0)
    assert_close(generator_loss(f, "vanilla").mean(), losses.g_loss_nonsaturating(f), atol=1e-15, rtol=0)


def test_particle_step_ipm_with_linear_kernel_moves_along_mean_difference():
    """k(a, b) = a.b: f_t(x) = eta t x.(mean_r - mean_g), so every particle moves by lr eta t (mean_r - mean_g)."""
    x_real, x_fake = _randn(7, 3, seed=30) + 2.0, _randn(5, 3, seed=31)
    moved = particle_step(x_fake, x_real, lambda a, b: a @ b.T, "ipm", lr=0.1, t=2.0, eta=0.5)
    assert_close(moved - x_fake, (0.1 * 2.0 * 0.5 * (x_real.mean(0) - x_fake.mean(0))).expand(5, 3), atol=1e-14, rtol=0)


@pytest.mark.parametrize("loss", LOSSES)
def test_particle_step_is_the_gradient_of_the_generator_loss(loss):
    """Against central differences of c(f_t(x)) in the query point only (the discriminator's training set
    fixed); at x = x_fake[i] the NTK's kink is symmetric, so central differences see its gradient."""
    x_real, x_fake, _, kernel = _problem()
    lr, t, eta = 0.5, 1.5, 2.0
    step = (x_fake - particle_step(x_fake, x_real, kernel, loss, lr, t, eta)) / lr  # grad c(f_t(x)) at x_fake
    fd = torch.zeros_like(x_fake)
    for j in range(2):  # one coordinate of every particle at once: each particle's c depends on its own query
        e_j = torch.zeros(1, 2, dtype=f64)
        e_j[0, j] = 1.0
        c = lambda s: generator_loss(discriminator_flow(kernel, x_real, x_fake, x_fake + s * e_j, loss, t, eta), loss)
        fd[:, j] = _richardson(lambda e: c(e.item()), torch.zeros(1, dtype=f64))[:, 0]
    assert_close(step, fd, rtol=1e-6, atol=1e-7)


def test_particle_flow_moves_particles_onto_the_target():
    theta = torch.arange(8, dtype=f64) * (2 * math.pi / 8)
    x_real = 2 * torch.stack([theta.cos(), theta.sin()], 1).repeat(4, 1) + 0.05 * _randn(32, 2, seed=40)
    x_fake = 0.5 * _randn(32, 2, seed=41)
    cfg = ParticleConfig(loss="ipm", depth=2, t=1.0, eta=1.0, lr=4.0, steps=40, record_every=20)
    out = particle_flow(x_fake, x_real, cfg, n_projections=32, seed=0)
    assert out["step"].tolist() == [0, 20, 40]
    assert out["particles"].shape == (3, 32, 2)
    assert torch.equal(out["particles"][0], x_fake)
    assert out["sliced_wasserstein"][0] == sliced_wasserstein(x_fake, x_real, 32, 0)
    assert out["sliced_wasserstein"][-1] < 0.5 * out["sliced_wasserstein"][0]


def test_particle_config_is_frozen_and_validated():
    # the house rule for configs: frozen, validated with the utils checkers (bools and infinities refused)
    with pytest.raises(ValueError, match="lr"):
        ParticleConfig(lr=True)
    with pytest.raises(ValueError, match="t must be"):
        ParticleConfig(t=float("inf"))
    with pytest.raises(ValueError, match="record_every"):
        ParticleConfig(record_every=0)
    assert ParticleConfig(lr=np.float32(0.5)).lr == 0.5  # NumPy numbers are numbers
    with pytest.raises(ValueError, match="loss"):
        ParticleConfig(loss="hinge")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ParticleConfig().steps = 3
