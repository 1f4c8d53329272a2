import math

import pytest
import torch

from ganref import losses


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


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"d_real must be discriminator logits of shape \(B,\)"):
        losses.d_loss_minimax(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="d_fake"):
        losses.g_loss_nonsaturating(torch.zeros(4, 2))
