r"""R3GAN: the relativistic pairing loss with R1 and R2, EMA, schedules and a modern backbone.

**The GAN is dead; long live the GAN! A Modern GAN Baseline.** Yiwen Huang, Aaron Gokaslan, Volodymyr
Kuleshov, James Tompkin. NeurIPS 2024. arXiv:2501.05441.

The relativistic pairing GAN (RpGAN; Jolicoeur-Martineau 2019, arXiv:1807.00734) scores each real
sample against a generated one, :math:`f = \mathrm{softplus}` (Sec. 2.1, Eq. (2) as we recall it):

.. math::
    L_D = \mathbb{E}_{z, x}\big[f\big(D(G(z)) - D(x)\big)\big], \qquad
    L_G = \mathbb{E}_{z, x}\big[f\big(D(x) - D(G(z))\big)\big],

and D also pays both zero-centred penalties (Mescheder et al. 2018; R3GAN Sec. 2.2-2.3, which proves
that RpGAN with R1 *and* R2 is locally convergent where R1 alone is not):

.. math::
    R_1 = \frac{\gamma}{2}\,\mathbb{E}_{x}\|\nabla_x D(x)\|^2, \qquad
    R_2 = \frac{\gamma}{2}\,\mathbb{E}_{z}\|\nabla_{\tilde x} D(\tilde x)\|^2\big|_{\tilde x = G(z)}.

Only differences :math:`D(x) - D(G(z))` enter the losses, so adding a constant to D changes nothing.
Sun et al. 2020 (arXiv:2011.01184) show that the pairing removes the mode-dropping local minima of the
standard GAN's landscape; :func:`sgan_value` and :func:`rpgan_value` compute both games' values at the
best discriminator on a 1-D grid, where chapter 13 draws the argument. The backbone (residual blocks, grouped
convolutions, no normalization, Fix-up initialization) is :mod:`ganref.resnets`.

Defaults and how sure we are of each (the paper's appendix tables and its released presets, from memory):
lr 2e-4 -> 5e-5 and Adam beta2 0.9 -> 0.99 with beta1 = 0 (sure); gamma decayed tenfold over training,
starting at 0.05 on CIFAR-10 (fairly sure) and 150 on FFHQ-256 (less sure); the ramps' shape (we use
cosine) and length (we use the run's length) are our choices (not sure of the paper's); one D step per G
step (sure); an EMA of G for sampling (sure it is used; its half-life is not reproduced here).

Deviations from the paper:

- Pairs: the i-th real row is paired with the i-th generated row of the batch (how its released code
  pairs them), so each step sees B pairs of the :math:`B^2` possible.
- R1 and R2 come from :mod:`ganref.losses`, which run D once more per penalty (the paper's code reuses
  the loss's forward pass): the same numbers, one more forward pass.
- The ramps run over the ``steps`` given to :class:`ganref.schedules.Ramp` (the chapter uses its whole
  budget); the EMA decay is a per-step constant, not the paper's half-life in images with warm-up.
- No augmentation, no mixed precision; CPU-sized networks (see :mod:`ganref.resnets`).
- The RpGAN losses live here while R3GAN is their only user; a second user would move them to
  :mod:`ganref.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganref.data import split_batch
from ganref.losses import r1_penalty, r2_penalty
from ganref.nets import ConvDiscriminator, ConvGenerator, MLPDiscriminator, MLPGenerator
from ganref.resnets import ResNetDiscriminator, ResNetGenerator
from ganref.schedules import EMA, Ramp, check_scheduled, set_lr, value_at
from ganref.train import State
from ganref.utils import check_choice, check_config, check_number, check_positive_int

__all__ = ["R3GANConfig", "BACKBONES", "REDUCTIONS", "rpgan_d_loss", "rpgan_g_loss", "make_nets", "make_optimizers",
           "make_state", "set_betas", "r3gan_step", "sgan_value", "rpgan_value"]

BACKBONES = ("mlp", "dcgan", "resnet", "resnet_plain")
REDUCTIONS = ("mean", "none")


# ----------------------------------------------------------------------------- the RpGAN losses


def _pairs(d_real: Tensor, d_fake: Tensor) -> None:
    for name, t in (("d_real", d_real), ("d_fake", d_fake)):
        if not isinstance(t, Tensor) or t.ndim != 1 or t.shape[0] == 0:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be discriminator logits of shape (B,) with B >= 1, got {shape}")
    if d_real.shape != d_fake.shape:
        raise ValueError(f"d_real has shape {tuple(d_real.shape)} and d_fake {tuple(d_fake.shape)}: RpGAN pairs "
                         "the i-th real with the i-th generated sample, so both need the same B")


def _reduce(per_pair: Tensor, reduction: str) -> Tensor:
    check_choice("reduction", reduction, REDUCTIONS)
    return per_pair.mean() if reduction == "mean" else per_pair


def rpgan_d_loss(d_real: Tensor, d_fake: Tensor, reduction: str = "mean") -> Tensor:
    """D's RpGAN loss f(D(G(z_i)) - D(x_i)), f = softplus, over the B pairs (R3GAN Sec. 2.1).

    Args:
        d_real: (B,) logits on real rows; d_fake: (B,) logits on generated rows, pair i = row i of each.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (the (B,) per-pair losses).
    Returns:
        softplus(d_fake - d_real), averaged or per pair; unchanged by adding a constant to both.
    """
    _pairs(d_real, d_fake)
    return _reduce(F.softplus(d_fake - d_real), reduction)  # f(D(G(z)) - D(x))


def rpgan_g_loss(d_real: Tensor, d_fake: Tensor, reduction: str = "mean") -> Tensor:
    """G's RpGAN loss f(D(x_i) - D(G(z_i))), f = softplus: the same pairs with the roles swapped."""
    _pairs(d_real, d_fake)
    return _reduce(F.softplus(d_real - d_fake), reduction)  # f(D(x) - D(G(z)))


# ----------------------------------------------------------------------------- configuration


def _check_ramp_direction(name: str, value: object, direction: str) -> None:
    if isinstance(value, Ramp):
        if direction == "down" and value.end > value.start:
            raise ValueError(f"{name} must not increase over training (R3GAN decays it), got a Ramp from "
                             f"{value.start:g} up to {value.end:g}")
        if direction == "up" and value.end < value.start:
            raise ValueError(f"{name} must not decrease over training (R3GAN raises it), got a Ramp from "
                             f"{value.start:g} down to {value.end:g}")


PAPER_STEPS = 10_000  # our default ramp length in steps (the paper's is in images; see the module docstring)


@dataclass(frozen=True)
class R3GANConfig:
    """RpGAN + R1 + R2 with R3GAN's schedules. ``lr``, ``beta2``, ``gamma`` and ``ema_decay`` take a number
    or a :class:`ganref.schedules.Ramp`; a chapter sets the ramps' ``steps`` to its budget.

    ``gamma = 0`` gives RpGAN without penalties (the ablation's Config "RpGAN alone").
    """

    lr: float | Ramp = field(default_factory=lambda: Ramp(2e-4, 5e-5, PAPER_STEPS))
    #   2e-4 -> 5e-5 (appendix hyper-parameter table; sure of the ends, not of the shape or length)
    beta1: float = 0.0
    #   Adam beta1 = 0 (appendix; sure)
    beta2: float | Ramp = field(default_factory=lambda: Ramp(0.9, 0.99, PAPER_STEPS))
    #   Adam beta2 0.9 -> 0.99 (appendix; sure of the ends)
    gamma: float | Ramp = field(default_factory=lambda: Ramp(0.05, 0.005, PAPER_STEPS))
    #   CIFAR-10's 0.05, decayed tenfold (appendix; fairly sure); gamma depends on the data
    d_steps: int = 1
    #   one D step per G step (Sec. 3; sure)
    ema_decay: float | Ramp = 0.999
    #   ours: the paper keeps an EMA of G (sure) with a half-life in images and warm-up (not reproduced)

    def __post_init__(self) -> None:
        check_scheduled("lr", self.lr, low=0, low_open=True)
        _check_ramp_direction("lr", self.lr, "down")
        check_number("beta1", self.beta1, low=0, high=1, high_open=True)
        check_scheduled("beta2", self.beta2, low=0, high=1, high_open=True)
        _check_ramp_direction("beta2", self.beta2, "up")
        check_scheduled("gamma", self.gamma, low=0)
        _check_ramp_direction("gamma", self.gamma, "down")
        check_positive_int("d_steps", self.d_steps)
        check_scheduled("ema_decay", self.ema_decay, low=0, high=1, high_open=True)

    @classmethod
    def scheduled(cls, steps: int, *, lr: tuple[float, float] = (2e-4, 5e-5), beta2: tuple[float, float] = (0.9, 0.99),
                  gamma: tuple[float, float] = (0.05, 0.005), kind: str = "cosine", **fields: object) -> "R3GANConfig":
        """The paper's three ramps over ``steps`` steps: ``R3GANConfig.scheduled(4000, lr=(2e-3, 2e-4))``."""
        steps = check_positive_int("steps", steps)
        ramp = lambda ends: Ramp(float(ends[0]), float(ends[1]), steps, kind)  # noqa: E731
        return cls(lr=ramp(lr), beta2=ramp(beta2), gamma=ramp(gamma), **fields)


# ----------------------------------------------------------------------------- networks and state


def make_nets(backbone: str, *, z_dim: int = 2, channels: int = 3, width: int = 128, depth: int = 3,
              blocks: int = 1) -> tuple[nn.Module, nn.Module]:
    """(G, D) for a backbone name: ``"mlp"`` (2-D data), ``"dcgan"``, ``"resnet"`` or ``"resnet_plain"`` (8x8).

    - ``mlp``: :class:`ganref.nets.MLPGenerator` / ``MLPDiscriminator``, ``depth`` x ``width`` ReLU;
    - ``dcgan``: :class:`ganref.nets.ConvGenerator` (batch norm in G) / ``ConvDiscriminator``, ``width``;
    - ``resnet``: R3GAN's Config E at CPU scale, :mod:`ganref.resnets` with widths (2w, w) in G and
      (w, 2w) in D for ``w = width``, ``blocks`` blocks per stage, inverted bottleneck (expansion 2),
      groups of 16 channels, Fix-up initialization;
    - ``resnet_plain``: the same without grouping or bottleneck expansion (Config D's plain 1-3-1 blocks).
    """
    check_choice("backbone", backbone, BACKBONES)
    if backbone == "mlp":
        return (MLPGenerator(z_dim=z_dim, out_dim=2, hidden=width, depth=depth),
                MLPDiscriminator(in_dim=2, hidden=width, depth=depth))
    if backbone == "dcgan":
        return ConvGenerator(z_dim=z_dim, channels=channels, width=width), ConvDiscriminator(channels, width)
    shape = dict(expansion=2.0, group_size=16) if backbone == "resnet" else dict(expansion=1.0, group_size=None)
    return (ResNetGenerator(z_dim, channels, (2 * width, width), blocks, **shape),
            ResNetDiscriminator(channels, (width, 2 * width), blocks, **shape))


def set_betas(optimizer: torch.optim.Optimizer, beta1: float, beta2: float) -> None:
    """Set Adam's betas in every parameter group (R3GAN raises beta2 over training)."""
    for group in optimizer.param_groups:
        group["betas"] = (beta1, beta2)


def make_optimizers(G: nn.Module, D: nn.Module, cfg: R3GANConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for both players at the schedules' step-0 values; :func:`r3gan_step` moves them along."""
    check_config(cfg, R3GANConfig, "r3gan.make_optimizers")
    betas = (cfg.beta1, value_at(cfg.beta2, 0))
    return {"G": torch.optim.Adam(G.parameters(), lr=value_at(cfg.lr, 0), betas=betas),
            "D": torch.optim.Adam(D.parameters(), lr=value_at(cfg.lr, 0), betas=betas)}


def make_state(G: nn.Module, D: nn.Module, cfg: R3GANConfig, generator: torch.Generator,
               device: torch.device | str = "cpu") -> State:
    """A :class:`ganref.train.State` with both optimizers and an EMA of G (``state.ema["G"]``)."""
    G, D = G.to(device), D.to(device)
    return State({"G": G, "D": D}, make_optimizers(G, D, cfg), generator, torch.device(device),
                 ema={"G": EMA(G, cfg.ema_decay)})


# ----------------------------------------------------------------------------- the step


def r3gan_step(state: State, real: Tensor, cfg: R3GANConfig) -> dict[str, Tensor]:
    """One R3GAN step: ``cfg.d_steps`` D updates on RpGAN + R1 + R2, then one G update on RpGAN.

    Args:
        state: ``G`` (with ``z_dim``), ``D`` (logits, no batch norm) and their Adam optimizers; an EMA of
            G in ``state.ema`` is updated by :func:`ganref.train.fit` after the step.
        real: (d_steps * B, ...) real rows, B per D update; G's pairs use the last real batch.
    Returns:
        ``d_loss`` (penalties included), ``g_loss``, ``r1``, ``r2``, ``gamma`` and ``lr`` at this step.
    """
    check_config(cfg, R3GANConfig, "r3gan.r3gan_step")
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    lr, beta2, gamma = (value_at(v, state.step) for v in (cfg.lr, cfg.beta2, cfg.gamma))  # the schedules
    for opt in (opt_g, opt_d):
        set_lr(opt, lr)
        set_betas(opt, cfg.beta1, beta2)
    reals = split_batch(real, cfg.d_steps, "d_steps")
    B = reals[0].shape[0]
    zero = torch.zeros((), device=real.device)

    # --- D minimizes E f(D(G(z)) - D(x)) + R1 + R2,  f = softplus          Sec. 2.1 (RpGAN), Sec. 2.3
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))  # (B, ...), paired row by row with x
        r1 = r1_penalty(D, x, gamma) if gamma > 0 else zero  # gamma/2 E ||grad D(x)||^2
        r2 = r2_penalty(D, fake, gamma) if gamma > 0 else zero  # gamma/2 E ||grad D(G(z))||^2
        d_loss = rpgan_d_loss(D(x), D(fake)) + r1 + r2
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # --- G minimizes E f(D(x) - D(G(z)))                                     Sec. 2.1
    with torch.no_grad():
        d_real = D(reals[-1])  # (B,) D is not updated here
    g_loss = rpgan_g_loss(d_real, D(G(state.randn(B, G.z_dim))))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "r1": r1.detach(), "r2": r2.detach(),
            "gamma": torch.tensor(gamma, dtype=torch.float64), "lr": torch.tensor(lr, dtype=torch.float64)}


# ----------------------------------------------------------------------------- the landscape argument


def _distribution(name: str, p: object) -> Tensor:
    t = torch.as_tensor(p, dtype=torch.float64)
    if t.ndim != 1 or t.numel() < 2 or (t < 0).any() or abs(float(t.sum()) - 1.0) > 1e-9:
        raise ValueError(f"{name} must be a probability vector over the cells of a grid, got shape {tuple(t.shape)}")
    return t


def sgan_value(p: object, q: object) -> float:
    r"""max_D of the standard GAN's value on a grid: :math:`-\log 4 + 2\,\mathrm{JSD}(p \| q)` (Goodfellow
    et al. 2014, Theorem 1), from the pointwise optimum :math:`D^* = p / (p + q)`.

    Args:
        p, q: (n,) the data's and the generator's mass in each cell of a grid.
    """
    p, q = _distribution("p", p), _distribution("q", q)
    m = torch.where(p + q > 0, p + q, 1.0)

    def term(a: Tensor) -> Tensor:  # a log(a / (p + q)), with 0 log 0 = 0
        return torch.where(a > 0, a * torch.log(torch.where(a > 0, a, 1.0) / m), 0.0)

    return float((term(p) + term(q)).sum())  # E_p log D* + E_q log(1 - D*), D* = p / (p + q)


def rpgan_value(coupling: object, iters: int = 200) -> float:
    r"""max_D of RpGAN's value :math:`\sum_{ij} \pi_{ij} \log \sigma(D_i - D_j)` on a grid.

    ``coupling[i, j]`` is the probability that a real sample in cell i is paired with a generated one in
    cell j: ``outer(p, q)`` for independent pairs (the expectation of Sec. 2.1), or a coupling that
    pairs each generated component with one data component (Sun et al. 2020's 1-to-1 pairing). The
    objective is concave in D (log-sigmoid of a difference), so damped Newton steps find the maximum;
    where real and generated cells separate, D runs off to +-infinity and the value approaches its
    supremum (a ridge of 1e-9 ||D||^2 keeps D finite: the value is within about 1e-7 of it).
    """
    pi = torch.as_tensor(coupling, dtype=torch.float64)
    if pi.ndim != 2 or pi.shape[0] != pi.shape[1] or (pi < 0).any() or abs(float(pi.sum()) - 1.0) > 1e-9:
        raise ValueError("coupling must be a square (n, n) matrix of probabilities summing to 1, "
                         f"got shape {tuple(pi.shape)}")
    iters = check_positive_int("iters", iters)
    used = (pi.sum(0) + pi.sum(1)) > 0  # only cells with mass enter
    pi = pi[used][:, used]
    n, ridge = pi.shape[0], 1e-9

    def objective(D: Tensor) -> float:  # sum_ij pi_ij log sigma(D_i - D_j) - ridge ||D||^2, concave
        return float((pi * F.logsigmoid(D[:, None] - D[None, :])).sum() - ridge * D.pow(2).sum())

    D = torch.zeros(n, dtype=torch.float64)
    for _ in range(iters):
        u = D[:, None] - D[None, :]  # (n, n) D_i - D_j
        s = torch.sigmoid(u)
        grad = (pi * (1 - s)).sum(1) - (pi * (1 - s)).sum(0) - 2 * ridge * D  # dF/dD
        w = pi * s * (1 - s)
        w = w + w.T
        neg_hessian = torch.diag(w.sum(1)) - w + 2 * ridge * torch.eye(n, dtype=torch.float64)  # a graph Laplacian
        step = torch.linalg.solve(neg_hessian, grad)  # Newton: D <- D + (-H)^{-1} grad
        f0, t = objective(D), 1.0
        while objective(D + t * step) < f0 and t > 1e-8:  # backtrack until the value does not fall
            t /= 2
        D = D + t * step
        if float(grad.abs().max()) < 1e-13:
            break
    return float((pi * F.logsigmoid(D[:, None] - D[None, :])).sum())
