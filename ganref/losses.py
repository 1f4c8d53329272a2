"""Adversarial losses as pure functions of discriminator *logits*.

D(x) = sigmoid(l(x)). Working on logits with ``softplus`` keeps every loss finite where
``log(sigmoid(.))`` would underflow: log D = -softplus(-l), log(1 - D) = -softplus(l).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _check_logits(name: str, t: Tensor) -> None:
    if t.ndim != 1:
        raise ValueError(f"{name} must be discriminator logits of shape (B,), got {tuple(t.shape)}")


def d_loss_minimax(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """-[E log D(x) + E log(1 - D(G(z)))], the negated value V(D, G) of Eq. (1), Goodfellow et al. 2014.

    Args:
        d_real: (B,) logits on real data; d_fake: (B',) logits on generated data.
    Returns:
        scalar loss for D to minimize (binary cross-entropy, real = 1, fake = 0).
    """
    _check_logits("d_real", d_real)
    _check_logits("d_fake", d_fake)
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_loss_minimax(d_fake: Tensor) -> Tensor:
    """E log(1 - D(G(z))), the generator's term of Eq. (1): G minimizes it (saturates when D wins)."""
    _check_logits("d_fake", d_fake)
    return -F.softplus(d_fake).mean()


def g_loss_nonsaturating(d_fake: Tensor) -> Tensor:
    """-E log D(G(z)), the non-saturating generator loss (Goodfellow et al. 2014, Sec. 3)."""
    _check_logits("d_fake", d_fake)
    return F.softplus(-d_fake).mean()
