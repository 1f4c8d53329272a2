r"""Wasserstein GANs and gradient penalties.

- **WGAN**: Arjovsky, Chintala, Bottou, "Wasserstein GAN", ICML 2017, arXiv:1701.07875.
- **WGAN-GP**: Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville, "Improved Training of Wasserstein
  GANs", NeurIPS 2017, arXiv:1704.00028.
- **R1 / R2**: Mescheder, Geiger, Nowozin, "Which Training Methods for GANs do actually Converge?",
  ICML 2018, arXiv:1801.04406.
- **R3GAN** (R1 and R2 together): Huang, Gokaslan, Kuleshov, Tompkin, "The GAN is dead; long live
  the GAN! A Modern GAN Baseline", NeurIPS 2024, arXiv:2501.05441.

The Wasserstein-1 distance in its Kantorovich-Rubinstein dual form (WGAN Eq. (2)-(3)):

.. math::
    W_1(P_r, P_g) = \sup_{\|f\|_L \le 1} \mathbb{E}_{x \sim P_r}[f(x)] - \mathbb{E}_{x \sim P_g}[f(x)]

WGAN keeps the critic :math:`f_w` K-Lipschitz by clipping every weight to :math:`[-c, c]` after each
critic update (Algorithm 1). WGAN-GP replaces clipping by a penalty at random interpolates
(Eq. (3) of Gulrajani et al.):

.. math::
    L = \mathbb{E}_{\tilde x \sim P_g}[D(\tilde x)] - \mathbb{E}_{x \sim P_r}[D(x)]
        + \lambda\, \mathbb{E}_{\hat x}\big[(\|\nabla_{\hat x} D(\hat x)\|_2 - 1)^2\big],
    \qquad \hat x = \epsilon x + (1 - \epsilon)\tilde x,\ \epsilon \sim U[0, 1]

with one :math:`\epsilon` per sample (Algorithm 1, line 4). The zero-centred penalties of
Mescheder et al. (Sec. 4.1) act on a standard GAN discriminator (logits :math:`D`):

.. math::
    R_1 = \frac{\gamma}{2} \mathbb{E}_{x \sim P_r}\|\nabla_x D(x)\|^2, \qquad
    R_2 = \frac{\gamma}{2} \mathbb{E}_{x \sim P_g}\|\nabla_x D(x)\|^2

Deviations from the papers:

- WGAN-GP's Algorithm 1 states Adam :math:`\beta_1 = 0`; our default is :math:`\beta_1 = 0.5`, the
  value in the authors' released 2-D toy script ``gan_toy.py`` (``WGANGPConfig(betas=(0.0, 0.9))``
  gives Algorithm 1 exactly).
- Every critic step of a generator step draws its own real batch, as in both papers' Algorithm 1;
  here the caller hands the step all of them at once, a batch of ``d_steps * B`` rows (``batch_sampler(data, B,
  d_steps=cfg.d_steps)``), which the step splits into ``d_steps`` chunks of ``B``. ``d_steps`` is the
  book's one name for the paper's ``n_critic`` (kept as a read-only alias on the configs).
- ``r1r2_step`` pairs R1 + R2 with the non-saturating loss of Goodfellow et al. 2014, not with
  R3GAN's relativistic pairing loss (RpGAN); the penalties are the ones R3GAN adds. R3GAN's
  schedules (lr 2e-4 -> 5e-5, Adam beta2 0.9 -> 0.99, gamma decayed 10x) are replaced by constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganref.data import split_batch
from ganref.losses import (d_loss_minimax, g_loss_nonsaturating, gradient_penalty, ipm_d_loss, ipm_g_loss,
                           r1_penalty, r2_penalty)
from ganref.train import State
from ganref.utils import check_betas, check_config, check_number, check_positive, check_positive_int

__all__ = ["WGANConfig", "WGANGPConfig", "R1R2Config", "make_optimizers", "clip_weights",
           "wgan_step", "wgan_gp_step", "r1r2_step"]


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class WGANConfig:
    """WGAN, Algorithm 1 of Arjovsky et al. 2017."""

    lr: float = 5e-5  # alpha = 5e-5, RMSProp (Algorithm 1)
    c: float = 0.01  # clipping parameter c (Algorithm 1)
    d_steps: int = 5  # n_critic = 5 critic steps per generator step (Algorithm 1)

    @property
    def n_critic(self) -> int:
        """The paper's name for ``d_steps``."""
        return self.d_steps

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_positive("c", self.c)
        check_positive_int("d_steps", self.d_steps)


@dataclass(frozen=True)
class WGANGPConfig:
    """WGAN-GP, Algorithm 1 of Gulrajani et al. 2017 (Algorithm 1 states beta1 = 0; see Deviations).

    The authors' 2-D toy script also uses ``gp_weight=0.1``, 3x512 ReLU MLPs and batch 256.
    """

    lr: float = 1e-4  # alpha = 1e-4 (Algorithm 1)
    betas: tuple[float, float] = (0.5, 0.9)  # the authors' gan_toy.py; Algorithm 1: (0, 0.9)
    d_steps: int = 5  # n_critic = 5 (Algorithm 1)
    gp_weight: float = 10.0  # lambda = 10 (Algorithm 1)

    @property
    def n_critic(self) -> int:
        """The paper's name for ``d_steps``."""
        return self.d_steps

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_betas("betas", self.betas)
        check_positive_int("d_steps", self.d_steps)
        check_number("gp_weight", self.gp_weight, low=0)


@dataclass(frozen=True)
class R1R2Config:
    """Non-saturating GAN + R1 + R2 (Mescheder et al. 2018; both penalties as in R3GAN).

    ``gamma`` depends on the data (R3GAN starts at 0.05 on CIFAR-10 and at 150 on FFHQ-256).
    """

    lr: float = 2e-4  # R3GAN's released presets, start of its lr schedule
    betas: tuple[float, float] = (0.0, 0.9)  # R3GAN's released presets, start of its beta2 schedule
    gamma: float = 0.1  # tuned on grid25 (benchmarks/bench_wgan.py: 3x128 MLPs, lr 1e-3, 60 s CPU
    #                     budget: 0.1 recovered the most modes; 10 lowered high quality, 0.01 lost modes)
    d_steps: int = 1  # one D step per G step, as in R3GAN

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_betas("betas", self.betas)
        check_number("gamma", self.gamma, low=0)
        check_positive_int("d_steps", self.d_steps)


def make_optimizers(G: nn.Module, D: nn.Module,
                    cfg: WGANConfig | WGANGPConfig | R1R2Config) -> dict[str, torch.optim.Optimizer]:
    """RMSProp for WGAN (Algorithm 1: momentum-free, as the paper advises), Adam for the others."""
    if isinstance(cfg, WGANConfig):
        return {"G": torch.optim.RMSprop(G.parameters(), lr=cfg.lr),
                "D": torch.optim.RMSprop(D.parameters(), lr=cfg.lr)}
    if isinstance(cfg, (WGANGPConfig, R1R2Config)):
        return {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
                "D": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)}
    check_config(cfg, (WGANConfig, WGANGPConfig, R1R2Config), "wgan.make_optimizers")
    raise AssertionError("unreachable")


# ----------------------------------------------------------------------------- WGAN


@torch.no_grad()
def clip_weights(critic: nn.Module, c: float) -> None:
    """Clip every parameter of ``critic`` to [-c, c] in place (WGAN Algorithm 1, line 7)."""
    c = check_positive("c", c)
    for p in critic.parameters():
        p.clamp_(-c, c)


def wgan_step(state: State, real: Tensor, cfg: WGANConfig) -> dict[str, Tensor]:
    """One generator step of WGAN Algorithm 1 after ``cfg.d_steps`` (n_critic) clipped critic steps.

    Args:
        real: (d_steps * B, ...) real rows, split into one batch of B per critic step.
    Returns:
        ``d_loss`` (last critic step), ``g_loss`` and ``w_estimate`` = E D(real) - E D(fake), which
        estimates K * W1 for the (unknown) Lipschitz constant K of the clipped critic.
    """
    check_config(cfg, WGANConfig, "wgan.wgan_step")
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.d_steps, "d_steps")
    B = reals[0].shape[0]

    # --- D maximizes E D(x) - E D(G(z)) with weights in [-c, c]        Eq. (3), Algorithm 1
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        d_loss = ipm_d_loss(D(x), D(fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        clip_weights(D, cfg.c)  # w <- clip(w, -c, c)

    # --- G minimizes -E D(G(z))                                          Algorithm 1, line 10
    g_loss = ipm_g_loss(D(G(state.randn(B, G.z_dim))))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "w_estimate": -d_loss.detach()}


# ----------------------------------------------------------------------------- steps with penalties


def wgan_gp_step(state: State, real: Tensor, cfg: WGANGPConfig) -> dict[str, Tensor]:
    """One generator step of WGAN-GP Algorithm 1 after ``cfg.d_steps`` (n_critic) penalized critic steps.

    Args:
        real: (d_steps * B, ...) real rows, split into one batch of B per critic step.
    Returns:
        ``d_loss`` (last critic step, penalty included), ``g_loss``, ``gp``, ``w_estimate``.
    """
    check_config(cfg, WGANGPConfig, "wgan.wgan_gp_step")
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.d_steps, "d_steps")
    B = reals[0].shape[0]

    # --- D minimizes E D(G(z)) - E D(x) + lambda E (||grad D(x_hat)|| - 1)^2   Eq. (3)
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        w_estimate = -ipm_d_loss(D(x), D(fake))  # E D(x) - E D(G(z))
        gp = gradient_penalty(D, x, fake, cfg.gp_weight, generator=state.generator)
        d_loss = -w_estimate + gp
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # --- G minimizes -E D(G(z))                                          Algorithm 1, line 12
    g_loss = ipm_g_loss(D(G(state.randn(B, G.z_dim))))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "gp": gp.detach(),
            "w_estimate": w_estimate.detach()}


def r1r2_step(state: State, real: Tensor, cfg: R1R2Config) -> dict[str, Tensor]:
    """One step of the non-saturating GAN with R1 and R2 on the discriminator (as R3GAN does).

    Args:
        real: (d_steps * B, ...) real rows (B rows when ``d_steps = 1``, the default).
    Returns:
        ``d_loss`` (penalties included), ``g_loss``, ``r1``, ``r2``.
    """
    check_config(cfg, R1R2Config, "wgan.r1r2_step")
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.d_steps, "d_steps")
    B = reals[0].shape[0]

    # --- D maximizes E log D(x) + E log(1 - D(G(z))) - R1 - R2          Mescheder et al. Sec. 4.1
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        r1 = r1_penalty(D, x, cfg.gamma)  # gamma/2 E_real ||grad D||^2
        r2 = r2_penalty(D, fake, cfg.gamma)  # gamma/2 E_fake ||grad D||^2
        d_loss = d_loss_minimax(D(x), D(fake)) + r1 + r2
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # --- G minimizes -E log D(G(z))  (non-saturating)                    Goodfellow et al. 2014, Sec. 3
    g_loss = g_loss_nonsaturating(D(G(state.randn(B, G.z_dim))))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "r1": r1.detach(), "r2": r2.detach()}
