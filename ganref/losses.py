r"""Every adversarial loss and penalty as a pure function on discriminator outputs.

Losses take logits (D(x) = sigmoid(l(x)) where a probability is meant) or raw critic values, shape
(B,), and return a scalar to minimize. Working on logits with ``softplus`` keeps every loss finite
where ``log(sigmoid(.))`` would underflow: log D = -softplus(-l), log(1 - D) = -softplus(l).

- minimax and non-saturating: Goodfellow et al., NeurIPS 2014, Eq. (1) and Sec. 3;
- hinge: Lim & Ye 2017, as used by Miyato et al., ICLR 2018 (SN-GAN), Sec. 4;
- IPM (Wasserstein critic): Arjovsky et al., ICML 2017, Eq. (3);
- least squares: Mao et al., ICCV 2017, Eq. (2) (the a-b-c coding);
- gradient penalty: Gulrajani et al., NeurIPS 2017, Eq. (3) (one epsilon per sample);
- R1 and R2: Mescheder et al., ICML 2018, Sec. 4.1 (R3GAN, Huang et al. 2024, uses both).

Penalties need each sample's input gradient on its own, so they refuse critics with batch norm.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganref.utils import check_number

Critic = Callable[[Tensor], Tensor]


def _check_logits(name: str, t: object) -> None:
    if not isinstance(t, Tensor) or t.ndim != 1 or t.shape[0] == 0:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be discriminator outputs of shape (B,) with B >= 1, got {shape}"
                         + (": squeeze the last dimension of a (B, 1) output" if shape[-1:] == (1,) else ""))


# ----------------------------------------------------------------------------- the standard GAN


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


# ----------------------------------------------------------------------------- hinge


def hinge_d_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """The discriminator's hinge loss, Sec. 4 of Miyato et al. (Lim & Ye 2017).

    ``E max(0, 1 - D(x)) + E max(0, 1 + D(G(z)))``: D is pushed to output >= 1 on real data and
    <= -1 on generated data, and samples beyond the margin give no gradient.

    Args:
        d_real: (B,) raw outputs (logits) of D on real data.
        d_fake: (B',) raw outputs of D on generated data.
    Returns:
        scalar loss for D to minimize, >= 0.
    """
    _check_logits("d_real", d_real)
    _check_logits("d_fake", d_fake)
    return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()  # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]


def hinge_g_loss(d_fake: Tensor) -> Tensor:
    """The generator's loss paired with the hinge loss: ``-E D(G(z))`` (Sec. 4 of Miyato et al.).

    Args:
        d_fake: (B,) raw outputs of D on generated data.
    Returns:
        scalar loss for G to minimize (unbounded below).
    """
    _check_logits("d_fake", d_fake)
    return -d_fake.mean()  # -E[D(G(z))]


# ----------------------------------------------------------------------------- IPM and least squares


def ipm_d_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E D(fake) - E D(real): the critic minimizes the negated W1 estimate (WGAN Eq. (3)).

    Args:
        d_real: (B,) critic values on real data; d_fake: (B',) on generated data.
    """
    _check_logits("d_real", d_real)
    _check_logits("d_fake", d_fake)
    return d_fake.mean() - d_real.mean()


def ipm_g_loss(d_fake: Tensor) -> Tensor:
    """-E D(G(z)): G minimizes the W1 estimate; E D(real) does not depend on G (WGAN Algorithm 1)."""
    _check_logits("d_fake", d_fake)
    return -d_fake.mean()


def lsgan_d_loss(d_real: Tensor, d_fake: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """1/2 E (D(x) - b)^2 + 1/2 E (D(G(z)) - a)^2, Eq. (2) of Mao et al. 2017 (fake -> a, real -> b)."""
    _check_logits("d_real", d_real)
    _check_logits("d_fake", d_fake)
    return 0.5 * (d_real - b).pow(2).mean() + 0.5 * (d_fake - a).pow(2).mean()


def lsgan_g_loss(d_fake: Tensor, c: float = 1.0) -> Tensor:
    """1/2 E (D(G(z)) - c)^2, Eq. (2) of Mao et al. 2017: G wants D to output c on its samples."""
    _check_logits("d_fake", d_fake)
    return 0.5 * (d_fake - c).pow(2).mean()


# ----------------------------------------------------------------------------- gradient penalties


def _check_no_batch_norm(critic: Critic, what: str) -> None:
    if isinstance(critic, nn.Module):
        for name, m in critic.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                raise ValueError(
                    f"critic contains batch norm ({name or 'the critic'}: {type(m).__name__}): {what} "
                    "needs each sample's gradient on its own, and batch norm mixes the samples of a batch. "
                    "Use no normalization or layer norm in the critic (Gulrajani et al. 2017, Sec. 4)")


def _input_gradients(critic: Critic, x: Tensor) -> Tensor:
    """grad_x D(x) for each row, shape of ``x``, kept in the graph (``create_graph=True``).

    The rows are independent through D (no batch norm), so the gradient of sum_i D(x_i)
    with respect to x_i is grad D(x_i).
    """
    if not x.requires_grad:
        x = x.detach().requires_grad_(True)
    d = critic(x)
    if d.shape not in ((x.shape[0],), (x.shape[0], 1)):
        raise ValueError(f"critic must map (B, ...) to (B,) or (B, 1), got {tuple(d.shape)} for input "
                         f"{tuple(x.shape)}")
    (grad,) = torch.autograd.grad(d.sum(), x, create_graph=True)
    return grad


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, weight: float = 10.0,
                     generator: torch.Generator | None = None) -> Tensor:
    r"""lambda * E (||grad D(x_hat)||_2 - 1)^2 at x_hat = eps x + (1 - eps) x_tilde (Gulrajani Eq. (3)).

    ``eps ~ U[0, 1]`` is drawn once per sample, as ``torch.rand((B, 1, ..., 1), generator=generator,
    dtype=real.dtype)`` on the CPU, and broadcast over the other dimensions; the norm runs over all
    non-batch dimensions. The result is differentiable in the critic's parameters and in
    ``real``/``fake`` (double backpropagation, ``create_graph=True``).

    Args:
        critic: D mapping (B, ...) -> (B,) or (B, 1); must not contain batch norm.
        real: (B, ...) real samples; fake: (B, ...) generated samples, the same shape.
        weight: lambda >= 0.
        generator: the random stream for eps (``state.generator`` in a step).
    Returns:
        scalar penalty.
    """
    weight = check_number("weight", weight, low=0)
    if real.shape != fake.shape or real.ndim < 2 or real.shape[0] == 0:
        raise ValueError(f"real has shape {tuple(real.shape)} and fake has {tuple(fake.shape)}: "
                         "both must be batches (B, ...) of the same shape, B >= 1")
    _check_no_batch_norm(critic, "the gradient penalty")
    eps = torch.rand((real.shape[0],) + (1,) * (real.ndim - 1), generator=generator,
                     dtype=real.dtype).to(real.device)  # (B, 1, ..., 1): one eps per sample
    x_hat = eps * real + (1 - eps) * fake  # Algorithm 1, line 6
    grad = _input_gradients(critic, x_hat)  # (B, ...)
    grad_norm = torch.linalg.vector_norm(grad.flatten(1), dim=1)  # (B,) ||grad D(x_hat)||_2
    return weight * ((grad_norm - 1) ** 2).mean()  # lambda E (||grad|| - 1)^2


def _zero_centred_penalty(critic: Critic, x: Tensor, gamma: float, name: str) -> Tensor:
    gamma = check_number("gamma", gamma, low=0)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a batch (B, ...) with B >= 1, got shape {tuple(x.shape)}")
    _check_no_batch_norm(critic, f"the {'R1' if name == 'real' else 'R2'} penalty")
    grad = _input_gradients(critic, x)  # (B, ...)
    return gamma / 2 * grad.flatten(1).pow(2).sum(1).mean()  # gamma/2 E ||grad D(x)||^2


def r1_penalty(critic: Critic, real: Tensor, gamma: float) -> Tensor:
    """R1 = gamma/2 E_{x ~ P_r} ||grad_x D(x)||^2 (Mescheder et al. 2018, Sec. 4.1), D on logits.

    Args:
        critic: D mapping (B, ...) -> (B,) or (B, 1), no batch norm; real: (B, ...); gamma >= 0.
    """
    return _zero_centred_penalty(critic, real, gamma, "real")


def r2_penalty(critic: Critic, fake: Tensor, gamma: float) -> Tensor:
    """R2 = gamma/2 E_{x ~ P_g} ||grad_x D(x)||^2 (Mescheder et al. 2018, Sec. 4.1), at generated points."""
    return _zero_centred_penalty(critic, fake, gamma, "fake")
