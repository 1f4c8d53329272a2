r"""SN-GAN: spectrally normalized discriminator, hinge loss, several D steps per G step.

**Spectral Normalization for Generative Adversarial Networks.** Takeru Miyato, Toshiki Kataoka,
Masanori Koyama, Yuichi Yoshida. ICLR 2018. arXiv:1802.05957.

Every weight of D is divided by its spectral norm (Eq. (8)), so each layer has sigma = 1 and, with
1-Lipschitz activations, the network's Lipschitz constant is bounded by the product of the layer
norms (Eq. (7)); the layer itself is :class:`ganref.layers.SpectralNorm`. The hinge loss of Sec. 4 (Lim & Ye 2017;
Tran et al. 2017) is :func:`ganref.losses.hinge_d_loss` / :func:`ganref.losses.hinge_g_loss`:

.. math::
    L_D = \mathbb{E}_{x \sim p_{data}}[\max(0, 1 - D(x))] + \mathbb{E}_{z \sim p_z}[\max(0, 1 + D(G(z)))],
    \qquad L_G = -\mathbb{E}_{z \sim p_z}[D(G(z))],

this file holds the training step with ``d_steps`` (the paper's ``n_dis``) discriminator updates
per generator update, Adam(2e-4, (0, 0.9)),
and the hyper-parameter settings A-F of the paper's Table 1 (:data:`PAPER_SETTINGS`).

Deviations from the paper:

- Each D update runs D once on the concatenation of the real and the generated batch, so the
  power iteration advances once per D update (Algorithm 1); the G update runs D once more and
  advances it once more (every training-mode call advances it, as in PyTorch's ``spectral_norm``).
- The power iteration is warm-started with 15 steps when the layer is created (see
  :mod:`ganref.layers`), not started from a random vector at the first update.
- Every D update of a G step draws its own real batch, as in Algorithm 1; the caller hands the step
  all of them at once, ``d_steps * B`` rows (``batch_sampler(data, B, d_steps=cfg.d_steps)``), which
  it splits into ``d_steps`` chunks of ``B``.
- The networks are the small DCGAN-style nets of :mod:`ganref.nets` (LeakyReLU D, no batch norm),
  not the paper's "standard CNN" or ResNet.
- Measurements of SN (sigmas, operator norms of strided convolutions) are in :mod:`ganref.probes`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ganref.data import split_batch
from ganref.layers import apply_spectral_norm
from ganref.losses import d_loss_minimax, g_loss_nonsaturating, hinge_d_loss, hinge_g_loss
from ganref.train import State
from ganref.utils import check_betas, check_bool, check_choice, check_config, check_positive, check_positive_int

__all__ = ["SNGANConfig", "PAPER_SETTINGS", "LOSSES", "make_discriminator", "make_optimizers", "sngan_step"]

LOSSES = ("hinge", "nonsaturating")


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SNGANConfig:
    """SN-GAN with the hinge loss (Sec. 4 of Miyato et al.).

    ``loss`` is ``"hinge"`` or ``"nonsaturating"`` (the paper's "standard" objective: Eq. (1) for D,
    ``-E log D(G(z))`` for G). ``spectral_norm=False`` gives the same GAN without SN, the baseline.
    """

    lr: float = 2e-4  # alpha = 2e-4 (Sec. 4, setting with the best inception scores)
    betas: tuple[float, float] = (0.0, 0.9)  # beta1 = 0, beta2 = 0.9 (Sec. 4)
    d_steps: int = 5  # n_dis = 5 (Sec. 4)
    loss: str = "hinge"  # the hinge loss of Sec. 4 (Lim & Ye 2017)
    spectral_norm: bool = True  # the method itself; False: the baseline

    @property
    def n_dis(self) -> int:
        """The paper's name for ``d_steps``."""
        return self.d_steps

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_betas("betas", self.betas)
        check_positive_int("d_steps", self.d_steps)
        check_choice("loss", self.loss, LOSSES)
        check_bool("spectral_norm", self.spectral_norm)


# Table 1 of Miyato et al.: the Adam settings of their robustness study (A: WGAN-GP's; B: Warde-Farley
# & Bengio's; C: DCGAN's; D-F: aggressive learning rates and momenta).
PAPER_SETTINGS: dict[str, dict[str, object]] = {
    "A": dict(lr=1e-4, betas=(0.5, 0.9), d_steps=5),
    "B": dict(lr=1e-4, betas=(0.5, 0.999), d_steps=1),
    "C": dict(lr=2e-4, betas=(0.5, 0.999), d_steps=1),
    "D": dict(lr=1e-3, betas=(0.5, 0.9), d_steps=5),
    "E": dict(lr=1e-3, betas=(0.5, 0.999), d_steps=5),
    "F": dict(lr=1e-3, betas=(0.9, 0.999), d_steps=5),
}


def make_discriminator(D: nn.Module, cfg: SNGANConfig, generator: torch.Generator | None = None) -> nn.Module:
    """Apply spectral normalization to every Linear and Conv2d of ``D`` when ``cfg.spectral_norm`` (in place).

    Args:
        D: the discriminator (no batch norm: SN-GAN's D has none).
        cfg: the run's config.
        generator: the random start of the power iterations (for reproducible runs).
    Returns:
        ``D``.
    """
    if cfg.spectral_norm:
        apply_spectral_norm(D, generator=generator)
    return D


def make_optimizers(G: nn.Module, D: nn.Module, cfg: SNGANConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for both players with the config's lr and betas (the paper uses the same for G and D)."""
    check_config(cfg, SNGANConfig, "sngan.make_optimizers")
    return {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
            "D": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)}


# ----------------------------------------------------------------------------- the step


def sngan_step(state: State, real: Tensor, cfg: SNGANConfig) -> dict[str, Tensor]:
    """``cfg.d_steps`` (n_dis) discriminator updates, then one generator update (Algorithm 1 with Adam).

    Args:
        state: holds ``G`` (with ``z_dim``) and ``D`` (spectrally normalized or not: the step is the
            same, SN lives in D's layers) and their optimizers.
        real: (d_steps * B, ...) real rows; D update i uses rows ``i * B`` to ``(i + 1) * B``.
    Returns:
        ``d_loss`` (last D update), ``g_loss``, and ``d_real`` / ``d_fake``, the mean outputs of D
        in the last D update.
    """
    check_config(cfg, SNGANConfig, "sngan.sngan_step")
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.d_steps, "d_steps")
    B = reals[0].shape[0]

    # --- D minimizes E max(0, 1 - D(x)) + E max(0, 1 + D(G(z)))         hinge loss, Sec. 4
    #     (or -[E log D(x) + E log(1 - D(G(z)))], Eq. (1)), d_steps times per G update
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        d_out = D(torch.cat([x, fake]))  # one forward: one power-iteration step per D update
        d_real, d_fake = d_out[:B], d_out[B:]  # (B,), (B,)
        d_loss = hinge_d_loss(d_real, d_fake) if cfg.loss == "hinge" else d_loss_minimax(d_real, d_fake)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # --- G minimizes -E D(G(z))              (hinge)                      Sec. 4
    #     or -E log D(G(z))                  (non-saturating)             Goodfellow et al. 2014
    d_gen = D(G(state.randn(B, G.z_dim)))
    g_loss = hinge_g_loss(d_gen) if cfg.loss == "hinge" else g_loss_nonsaturating(d_gen)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
            "d_real": d_real.detach().mean(), "d_fake": d_fake.detach().mean()}
