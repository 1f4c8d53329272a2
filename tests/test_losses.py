"""Tests for ganref.losses: every loss against its closed form in float64, penalties against closed forms
and with gradcheck, and bad shapes named."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganref import losses
from ganref.losses import gradient_penalty, r1_penalty, r2_penalty

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sym(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=_gen(seed), dtype=F64)
    return (a + a.T) / 2


def _logits():
    return torch.linspace(-30, 30, 61, dtype=torch.float64)


def test_d_loss_is_negated_value_function():
    d_real, d_fake = _logits(), _logits().flip(0) * 0.5
    p_real, p_fake = torch.sigmoid(d_real), torch.sigmoid(d_fake)
    # -[E log D(x) + E log(1 - D(G(z)))], Eq. (1), in a form that is exact where it does not underflow
    ok = (p_real > 1e-12) & (p_real < 1 - 1e-12)
    expected = -(torch.log(p_real[ok]).mean() + torch.log1p(-p_fake[ok]).mean())
    got = losses.d_loss_minimax(d_real[ok], d_fake[ok])
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=0)  # log(sigmoid) loses digits at |l| = 27
    assert math.isfinite(losses.d_loss_minimax(d_real, d_fake).item())  # no underflow at |logit| = 30


def test_generator_losses_closed_forms():
    ell = torch.linspace(-10, 10, 41, dtype=torch.float64)
    d = torch.sigmoid(ell)
    torch.testing.assert_close(losses.g_loss_minimax(ell), torch.log1p(-d).mean(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(losses.g_loss_nonsaturating(ell), -torch.log(d).mean(), rtol=1e-12, atol=1e-12)


def test_generator_gradients_saturate_as_the_paper_says():
    # d/dl log(1 - sigmoid(l)) = -D ; d/dl -log sigmoid(l) = -(1 - D), per sample (times 1/B for the mean)
    ell = torch.linspace(-8, 8, 17, dtype=torch.float64, requires_grad=True)
    (g_sat,) = torch.autograd.grad(losses.g_loss_minimax(ell), ell)
    (g_ns,) = torch.autograd.grad(losses.g_loss_nonsaturating(ell), ell)
    d = torch.sigmoid(ell.detach())
    torch.testing.assert_close(g_sat * len(ell), -d, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(g_ns * len(ell), -(1 - d), rtol=1e-12, atol=1e-15)


def test_losses_match_torch_bce():
    d_real, d_fake = torch.randn(32, dtype=torch.float64), torch.randn(32, dtype=torch.float64)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    torch.testing.assert_close(losses.d_loss_minimax(d_real, d_fake), expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- hinge


def test_hinge_losses_equal_closed_forms():
    g = torch.Generator().manual_seed(0)
    d_real = 2 * torch.randn(37, generator=g, dtype=torch.float64)
    d_fake = 2 * torch.randn(23, generator=g, dtype=torch.float64)
    want_d = sum(max(0.0, 1 - r) for r in d_real.tolist()) / 37 + sum(max(0.0, 1 + f) for f in d_fake.tolist()) / 23
    want_g = -sum(d_fake.tolist()) / 23
    assert abs(float(losses.hinge_d_loss(d_real, d_fake)) - want_d) < 1e-12
    assert abs(float(losses.hinge_g_loss(d_fake)) - want_g) < 1e-12
    # by hand: real [2, 0.5] -> (0 + 0.5) / 2; fake [-3, 0] -> (0 + 1) / 2
    hand = losses.hinge_d_loss(torch.tensor([2.0, 0.5], dtype=torch.float64),
                              torch.tensor([-3.0, 0.0], dtype=torch.float64))
    assert float(hand) == 0.75
    # beyond the margins the loss is 0 and so is its gradient
    d_r = torch.tensor([1.5, 3.0], dtype=torch.float64, requires_grad=True)
    d_f = torch.tensor([-1.2, -4.0], dtype=torch.float64, requires_grad=True)
    loss = losses.hinge_d_loss(d_r, d_f)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(d_r.grad.abs().sum() + d_f.grad.abs().sum()) == 0.0
    # inside the margins: d/d d_real = -1/B, d/d d_fake = +1/B'
    d_r = torch.tensor([0.2, -1.0, 0.9], dtype=torch.float64, requires_grad=True)
    d_f = torch.tensor([0.3, -0.5], dtype=torch.float64, requires_grad=True)
    losses.hinge_d_loss(d_r, d_f).backward()
    assert_close(d_r.grad, torch.full((3,), -1 / 3, dtype=torch.float64), rtol=0, atol=1e-15)
    assert_close(d_f.grad, torch.full((2,), 1 / 2, dtype=torch.float64), rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------- IPM and least squares


def test_ipm_losses_are_the_mean_differences():
    d_real = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    d_fake = torch.tensor([-1.0, 0.5], dtype=F64)
    torch.testing.assert_close(losses.ipm_d_loss(d_real, d_fake), torch.tensor(-0.25 - 2.0, dtype=F64),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(losses.ipm_g_loss(d_fake), torch.tensor(0.25, dtype=F64), rtol=0, atol=1e-15)
    # random sizes against sums written out; the gradients are -1/B on real and +1/B' on fake
    g = _gen(1)
    d_real = (3 * torch.randn(41, generator=g, dtype=F64)).requires_grad_(True)
    d_fake = (3 * torch.randn(17, generator=g, dtype=F64)).requires_grad_(True)
    loss = losses.ipm_d_loss(d_real, d_fake)
    assert loss.item() == pytest.approx(math.fsum(d_fake.tolist()) / 17 - math.fsum(d_real.tolist()) / 41,
                                        rel=1e-13, abs=1e-14)
    loss.backward()
    torch.testing.assert_close(d_real.grad, torch.full((41,), -1 / 41, dtype=F64), rtol=1e-15, atol=0)
    torch.testing.assert_close(d_fake.grad, torch.full((17,), 1 / 17, dtype=F64), rtol=1e-15, atol=0)
    assert losses.ipm_g_loss(d_fake.detach()).item() == pytest.approx(-math.fsum(d_fake.tolist()) / 17, rel=1e-13)


@pytest.mark.parametrize("a, b, c", [(0.0, 1.0, 1.0), (-1.0, 1.0, 0.0), (-1.0, 1.0, 1.0)])
def test_lsgan_losses_equal_closed_forms(a, b, c):
    # Mao et al. 2017, Eq. (2): 1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2 and 1/2 E (D(G(z)) - c)^2
    g = _gen(2)
    d_real, d_fake = 2 * torch.randn(29, generator=g, dtype=F64), 2 * torch.randn(13, generator=g, dtype=F64)
    want_d = 0.5 * math.fsum((r - b) ** 2 for r in d_real.tolist()) / 29 \
        + 0.5 * math.fsum((f - a) ** 2 for f in d_fake.tolist()) / 13
    want_g = 0.5 * math.fsum((f - c) ** 2 for f in d_fake.tolist()) / 13
    assert losses.lsgan_d_loss(d_real, d_fake, a=a, b=b).item() == pytest.approx(want_d, rel=1e-13)
    assert losses.lsgan_g_loss(d_fake, c=c).item() == pytest.approx(want_g, rel=1e-13)
    # the optimal D for fixed G outputs (b p_data + a p_g) / (p_data + p_g): at the targets the loss is 0
    assert losses.lsgan_d_loss(torch.full((3,), b, dtype=F64), torch.full((2,), a, dtype=F64), a=a, b=b).item() == 0
    # gradients: d/d d_real_i = (d_real_i - b) / B, d/d d_fake_j = (d_fake_j - a) / B'
    d_r, d_f = d_real.clone().requires_grad_(True), d_fake.clone().requires_grad_(True)
    losses.lsgan_d_loss(d_r, d_f, a=a, b=b).backward()
    torch.testing.assert_close(d_r.grad, (d_real - b) / 29, rtol=1e-14, atol=1e-16)
    torch.testing.assert_close(d_f.grad, (d_fake - a) / 13, rtol=1e-14, atol=1e-16)


def test_lsgan_defaults_are_the_01_coding():
    d_real, d_fake = torch.tensor([1.0, 0.5], dtype=F64), torch.tensor([0.0, 2.0], dtype=F64)
    # a = 0, b = 1: 1/2 mean((0, 0.25)) + 1/2 mean((0, 4)) = 0.0625 + 1 ; c = 1: 1/2 mean((1, 1)) = 0.5
    assert losses.lsgan_d_loss(d_real, d_fake).item() == 1.0625
    assert losses.lsgan_g_loss(d_fake).item() == 0.5


ALL_LOSSES = [
    (losses.d_loss_minimax, 2), (losses.hinge_d_loss, 2), (losses.ipm_d_loss, 2), (losses.lsgan_d_loss, 2),
    (losses.g_loss_minimax, 1), (losses.g_loss_nonsaturating, 1), (losses.hinge_g_loss, 1), (losses.ipm_g_loss, 1),
    (losses.lsgan_g_loss, 1),
]


@pytest.mark.parametrize("fn, n_args", ALL_LOSSES, ids=[f.__name__ for f, _ in ALL_LOSSES])
@pytest.mark.parametrize("bad", [torch.zeros(4, 1), torch.zeros(()), torch.zeros(0), torch.zeros(2, 3), [0.0, 1.0]],
                         ids=["B1", "scalar", "empty", "B3", "list"])
def test_bad_shapes_name_the_argument(fn, n_args, bad):
    ok = torch.zeros(4)
    if n_args == 2:
        with pytest.raises(ValueError, match=r"d_real must be discriminator outputs of shape \(B,\)"):
            fn(bad, ok)
        with pytest.raises(ValueError, match=r"d_fake must be discriminator outputs of shape \(B,\)"):
            fn(ok, bad)
    else:
        with pytest.raises(ValueError, match=r"d_fake must be discriminator outputs of shape \(B,\)"):
            fn(bad)
    if isinstance(bad, torch.Tensor) and bad.shape == (4, 1):  # the common mistake gets a hint
        with pytest.raises(ValueError, match="squeeze"):
            fn(*([bad] * n_args))


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


def test_bad_penalty_inputs_raise():
    lin = nn.Linear(2, 1)
    x = torch.randn(8, 2)
    with pytest.raises(ValueError, match="weight must be"):
        gradient_penalty(lin, x, x, -1.0)
    with pytest.raises(ValueError, match="weight must be"):
        gradient_penalty(lin, x, x, float("inf"))
    with pytest.raises(ValueError, match="real has shape"):
        gradient_penalty(lin, x, torch.randn(6, 2))
    with pytest.raises(ValueError, match="gamma must be"):
        r1_penalty(lin, x, -0.1)
    with pytest.raises(ValueError, match="gamma must be"):
        r2_penalty(lin, x, True)  # a bool is not a number here
    with pytest.raises(ValueError, match="real must be a batch"):
        r1_penalty(lin, torch.randn(8), 1.0)
    with pytest.raises(ValueError, match="fake must be a batch"):
        r2_penalty(lin, torch.randn(8), 1.0)
    with pytest.raises(ValueError, match="critic must map"):
        gradient_penalty(lambda v: v, x, x)  # (B, 2) output is no critic
    bn_critic = nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 1))
    for call in (lambda: gradient_penalty(bn_critic, x, x), lambda: r1_penalty(bn_critic, x, 1.0),
                 lambda: r2_penalty(bn_critic, x, 1.0)):
        with pytest.raises(ValueError, match="batch norm"):
            call()
