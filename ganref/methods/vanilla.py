r"""Generative Adversarial Nets (Goodfellow, Pouget-Abadie, Mirza, Xu, Warde-Farley, Ozair, Courville,
Bengio; NeurIPS 2014; arXiv:1406.2661).

Objective, Eq. (1):

.. math::
    \min_G \max_D V(D, G) = \mathbb{E}_{x \sim p_{data}}[\log D(x)]
                            + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))]

For a fixed G the optimal discriminator is (Proposition 1)

.. math:: D^*_G(x) = \frac{p_{data}(x)}{p_{data}(x) + p_g(x)},

and at D* the value is :math:`V(D^*, G) = -\log 4 + 2\,\mathrm{JSD}(p_{data} \| p_g)` (Theorem 1).
Early in training :math:`\log(1 - D(G(z)))` saturates, so the paper suggests the generator maximize
:math:`\log D(G(z))` instead (Sec. 3): the *non-saturating* loss.

Deviations from the paper: Adam (Kingma & Ba 2015) with the DCGAN settings lr 2e-4, betas (0.5, 0.999)
instead of SGD with momentum; k = 1 discriminator step per generator step by default (the paper's
experiments also use k = 1); batches drawn with replacement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ganref.data import GaussianMixture, split_batch
from ganref.losses import d_loss_minimax, g_loss_minimax, g_loss_nonsaturating
from ganref.train import State
from ganref.utils import check_betas, check_choice, check_config, check_positive, check_positive_int

__all__ = ["VanillaConfig", "vanilla_step", "optimal_discriminator", "optimal_value", "make_optimizers"]


G_LOSSES = ("nonsaturating", "minimax")


@dataclass(frozen=True)
class VanillaConfig:
    """Hyperparameters. ``g_loss`` is ``"nonsaturating"`` (the paper's practical choice) or ``"minimax"``."""

    lr: float = 2e-4  # DCGAN's Adam settings (Radford et al. 2016, Sec. 4); the paper used SGD with momentum
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN (Radford et al. 2016, Sec. 4)
    g_loss: str = "nonsaturating"  # -log D(G(z)), Sec. 3 of the paper
    d_steps: int = 1  # k = 1 discriminator step per generator step (Algorithm 1, as in the paper's experiments)

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_betas("betas", self.betas)
        check_choice("g_loss", self.g_loss, G_LOSSES)
        check_positive_int("d_steps", self.d_steps)


def make_optimizers(G: torch.nn.Module, D: torch.nn.Module, cfg: VanillaConfig) -> dict[str, torch.optim.Optimizer]:
    check_config(cfg, VanillaConfig, "vanilla.make_optimizers")
    return {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
            "D": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)}


def vanilla_step(state: State, real: Tensor, cfg: VanillaConfig) -> dict[str, Tensor]:
    """One step of Algorithm 1: ``cfg.d_steps`` (k) discriminator updates, then a generator update.

    Args:
        real: (d_steps * B, ...) real rows, one batch of B per discriminator update.
    """
    check_config(cfg, VanillaConfig, "vanilla.vanilla_step")
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.d_steps, "d_steps")
    B = reals[0].shape[0]

    # --- D maximizes E log D(x) + E log(1 - D(G(z)))                    Eq. (1), k times
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        d_loss = d_loss_minimax(D(x), D(fake))  # = -V(D, G)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # --- G minimizes E log(1 - D(G(z)))  (minimax)                      Eq. (1)
    #     or maximizes E log D(G(z))      (non-saturating)               Sec. 3
    z = state.randn(B, G.z_dim)
    d_fake = D(G(z))
    g_loss = g_loss_nonsaturating(d_fake) if cfg.g_loss == "nonsaturating" else g_loss_minimax(d_fake)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def optimal_discriminator(x: Tensor, p_data: GaussianMixture, p_g: GaussianMixture) -> Tensor:
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)) (Proposition 1), as sigmoid(log p_data - log p_g).

    Args:
        x: (N, D) points. Returns: (N,) values in [0, 1], computed in float64.
    """
    x64 = x.double()
    return torch.sigmoid(p_data.log_prob(x64) - p_g.log_prob(x64))


def optimal_value(p_data: GaussianMixture, p_g: GaussianMixture, n: int = 200_000,
                  generator: torch.Generator | None = None) -> tuple[float, float]:
    """Monte-Carlo V(D*, G) = -log 4 + 2 JSD(p_data || p_g) (Theorem 1).

    Returns:
        (value, jsd) estimated from ``n`` samples of each distribution.
    """
    x_r, x_g = p_data.sample(n, generator).double(), p_g.sample(n, generator).double()
    log_d_real = -torch.nn.functional.softplus(p_g.log_prob(x_r) - p_data.log_prob(x_r))  # log D*(x)
    log_1m_d_fake = -torch.nn.functional.softplus(p_data.log_prob(x_g) - p_g.log_prob(x_g))  # log(1 - D*(G(z)))
    value = float(log_d_real.mean() + log_1m_d_fake.mean())
    return value, (value + math.log(4)) / 2
