r"""Denoising diffusion GANs: a few large denoising steps, each one a conditional GAN.

- **DDGAN**: Zhisheng Xiao, Karsten Kreis, Arash Vahdat. *Tackling the Generative Learning Trilemma
  with Denoising Diffusion GANs.* ICLR 2022. arXiv:2112.07804.

A diffusion model's reverse step :math:`p_\theta(x_k | x_{k+1})` is Gaussian, which is right only for
small steps; for T = 2..8 large steps the true :math:`q(x_k | x_{k+1})` is multimodal. DDGAN keeps the
forward chain and matches each reverse step adversarially (Sec. 3.2):

.. math::
    \min_\theta \sum_{k=0}^{T-1} \mathbb E_{q(x_{k+1})}\, D_{\rm adv}\big(q(x_k | x_{k+1}) \,\|\,
        p_\theta(x_k | x_{k+1})\big),

with a time-conditional discriminator :math:`D_\phi(x_k, k, x_{k+1})` trained on real pairs
:math:`x_0 \sim q(x_0),\ x_k \sim q(x_k | x_0),\ x_{k+1} \sim q(x_{k+1} | x_k)` against fake ones, and the
generator implicit through the DDPM posterior (Sec. 3.3):

.. math::
    p_\theta(x_k | x_{k+1}) = \int p(z)\, q\big(x_k \,\big|\, x_{k+1},\ x_0 = G_\theta(x_{k+1}, z, k)\big)\, dz .

Losses are the non-saturating ones, :math:`-\log D(\text{real}) - \log(1 - D(\text{fake}))` for D and
:math:`-\log D(\text{fake})` for G, plus R1 on the real :math:`x_k`. Sampling: :math:`x_T \sim N(0, I)`,
then T calls of G, each followed by a posterior draw. The noise levels discretize the VP SDE
(Song et al. 2021): :math:`t_k = (k/T)(1 - 10^{-3}) + 10^{-3}`,
:math:`\bar\alpha(t) = \exp(-\tfrac12 t^2(\beta_{\max} - \beta_{\min}) - t\beta_{\min})`,
:math:`\beta_k = 1 - \bar\alpha(t_k) / \bar\alpha(t_{k-1})`, k = 1..T (the authors' ``train_ddgan.py``).

Index convention (shared with :mod:`ganref.methods.ddpm`): level :math:`x_0` is the data, levels
1..T are noisy; row k of the :class:`~ganref.methods.ddpm.Schedule` holds the step from level k to k+1,
so ``alpha_bar[k]`` belongs to :math:`x_{k+1}` and ``ddpm.posterior(schedule, x0, x_next, k)`` is
:math:`q(x_k | x_{k+1}, x_0)`, with zero variance at k = 0.

R1 weights: the README's CIFAR-10 recipe uses :math:`\gamma = 0.02` applied every 15 steps
(``--lazy_reg 15``); the paper's text and the script's default say :math:`\gamma = 0.05`. The authors'
code does not multiply a lazy R1 by its interval (StyleGAN2 does); neither does this file.

Deviations from the paper: small MLPs (here :class:`PairGenerator` / :class:`PairDiscriminator`) in place
of NCSN++ with AdaGN and minibatch-std; z enters by concatenation, not a mapping network; constant
learning rates unless a :class:`~ganref.schedules.Ramp` is given (the authors decay with a cosine);
:math:`x_0` of a real pair is the data itself (the authors' code adds noise of std 1e-4 through a dummy
:math:`\beta_0 = 10^{-8}`); equation numbers are not given here because the paper's PDF could not be
read: sections are cited instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ganref.data import GaussianMixture, split_batch
from ganref.losses import d_loss_minimax, g_loss_nonsaturating, r1_penalty
from ganref.methods.ddpm import Samples, Schedule, posterior, q_sample
from ganref.schedules import Ramp, check_scheduled, set_lr, value_at
from ganref.train import State
from ganref.unet import TimeEmbedding
from ganref.utils import check_betas, check_bool, check_config, check_number, check_positive, check_positive_int

__all__ = ["vp_schedule", "q_pair", "posterior_sample", "MixtureGenerator", "PairGenerator",
           "PairDiscriminator", "DDGANConfig", "make_optimizers", "ddgan_step", "sample"]

Generator = Callable[[Tensor, Tensor, Tensor], Tensor]  # G(x_next (B, ...), z (B, nz), k (B,) long) -> x0' (B, ...)


# ----------------------------------------------------------------------------- the schedule and the pairs


def vp_schedule(T: int, beta_min: float = 0.1, beta_max: float = 20.0) -> Schedule:
    """The VP-SDE noise levels of DDGAN at T steps, as a DDPM :class:`Schedule` of T betas (float64).

    ``t_k = (k / T)(1 - 1e-3) + 1e-3``, ``log alpha_bar(t) = -t^2 (beta_max - beta_min) / 2 - t beta_min``,
    ``beta_k = 1 - alpha_bar(t_k) / alpha_bar(t_{k-1})``; for T = 4 about 0.478, 0.849, 0.956, 0.987.
    """
    T = check_positive_int("T", T)
    beta_min = check_positive("beta_min", beta_min)
    beta_max = check_positive("beta_max", beta_max)
    if beta_min >= beta_max:
        raise ValueError(f"beta_min must be smaller than beta_max, got beta_min={beta_min:g}, beta_max={beta_max:g}")
    t = torch.arange(T + 1, dtype=torch.float64) / T * (1 - 1e-3) + 1e-3  # (T + 1,) t_0..t_T
    log_abar = -0.5 * t**2 * (beta_max - beta_min) - t * beta_min  # the VP SDE's alpha_bar(t) (Song et al. 2021)
    return Schedule.from_betas(1.0 - torch.exp(log_abar[1:] - log_abar[:-1]))  # (T,)


def q_pair(schedule: Schedule, x0: Tensor, k: Tensor, eps: Tensor, eps_step: Tensor) -> tuple[Tensor, Tensor]:
    """A real training pair per sample: x_k ~ q(x_k | x0), then x_{k+1} ~ q(x_{k+1} | x_k).

    Args:
        x0: (B, ...) data; k: (B,) LongTensor in 0..T-1; eps, eps_step: (B, ...) standard normal.
    Returns:
        x_k (the data itself where k = 0) and x_{k+1}, both (B, ...).
    """
    if not isinstance(eps_step, Tensor) or eps_step.shape != x0.shape:
        raise ValueError(f"eps_step must have x0's shape {tuple(x0.shape)}, got "
                         f"{tuple(eps_step.shape) if isinstance(eps_step, Tensor) else type(eps_step).__name__}")
    if not isinstance(k, Tensor) or k.dtype != torch.long or k.shape != x0.shape[:1] \
            or (len(k) and (int(k.min()) < 0 or int(k.max()) >= schedule.T)):
        raise ValueError(f"k must be a LongTensor of shape ({len(x0)},) with steps in 0..{schedule.T - 1}, got "
                         f"{k.tolist() if isinstance(k, Tensor) and k.numel() <= 8 else type(k).__name__}")
    # 1. x_k = sqrt(abar) x0 + sqrt(1 - abar) eps at level k (row k - 1); x_0 is the data (DDPM Eq. (4))
    noisy = q_sample(schedule, x0, (k - 1).clamp(min=0), eps)
    x_k = torch.where((k > 0).view(-1, *([1] * (x0.ndim - 1))).to(x0.device), noisy, x0)
    # 2. x_{k+1} = sqrt(1 - beta) x_k + sqrt(beta) eps', one forward step (DDPM Eq. (2))
    beta = schedule.betas[k.cpu()].to(x0.device, x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return x_k, (1 - beta).sqrt() * x_k + beta.sqrt() * eps_step


def posterior_sample(schedule: Schedule, x0_pred: Tensor, x_next: Tensor, k: Tensor, noise: Tensor) -> Tensor:
    """x_k ~ q(x_k | x_{k+1}, x0 = x0_pred): posterior mean plus its std times ``noise``, no noise at k = 0.

    Args:
        x0_pred: (B, ...) the generator's x0; x_next: (B, ...) x_{k+1}; k: (B,) LongTensor in 0..T-1;
        noise: (B, ...) standard normal.
    """
    if not isinstance(noise, Tensor) or noise.shape != x_next.shape:
        raise ValueError(f"noise must have x_next's shape {tuple(x_next.shape)}, got "
                         f"{tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__}")
    mean, var = posterior(schedule, x0_pred, x_next, k)  # DDPM Eq. (6)-(7), var = 0 at k = 0
    nonzero = (k > 0).to(x_next.device, x_next.dtype).view_as(var)  # the authors' no-noise mask at k = 0
    return mean + nonzero * var.sqrt() * noise


class MixtureGenerator:
    r"""The perfect DDGAN generator for a Gaussian mixture: x0' ~ q(x0 | x_{k+1}) exactly, driven by z.

    Component j of N(mu_j, s^2 I) reaches level k+1 as N(sqrt(a) mu_j, (a s^2 + 1 - a) I), a =
    ``alpha_bar[k]``; given x_{k+1} it is chosen with the responsibilities r_j, and inside it

    .. math:: x_0 | x_{k+1}, j \sim \mathcal N\Big(v\big(\tfrac{\mu_j}{s^2} + \tfrac{\sqrt a\, x_{k+1}}{1 - a}\big),\ v I\Big),
        \qquad v = \Big(\tfrac{1}{s^2} + \tfrac{a}{1 - a}\Big)^{-1}.

    ``z[:, 0]`` picks j by inverting the cumulative r (through the normal CDF); ``z[:, 1:1+D]`` is the
    Gaussian noise; so ``posterior_sample(G(x_{k+1}, z, k))`` draws the true q(x_k | x_{k+1}).
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule):
        if not isinstance(mixture, GaussianMixture):
            raise ValueError(f"mixture must be a ganref.data.GaussianMixture, got {type(mixture).__name__}")
        self.mixture, self.schedule, self.z_dim = mixture, schedule, 1 + mixture.dim

    def __call__(self, x_next: Tensor, z: Tensor, k: Tensor) -> Tensor:
        if x_next.ndim != 2 or x_next.shape[1] != self.mixture.dim or z.shape != (len(x_next), self.z_dim):
            raise ValueError(f"x_next must be (B, {self.mixture.dim}) and z (B, {self.z_dim}), got "
                             f"{tuple(x_next.shape)} and {tuple(z.shape)}")
        x, mu, s2 = x_next.detach().cpu().double(), self.mixture.means.double(), self.mixture.std**2
        a = self.schedule.alpha_bar[k.cpu()][:, None]  # (B, 1) alpha_bar of level k + 1
        logits = (a.sqrt() * (x @ mu.T) - 0.5 * a * mu.pow(2).sum(1)[None]) / (a * s2 + 1 - a)  # (B, K)
        u = 0.5 * (1 + torch.erf(z[:, :1].detach().cpu().double() / math.sqrt(2)))  # (B, 1) uniform
        j = (torch.softmax(logits, 1).cumsum(1) < u).sum(1).clamp(max=len(mu) - 1)  # (B,) component
        v = 1 / (1 / s2 + a / (1 - a))  # (B, 1) variance inside a component
        mean = v * (mu[j] / s2 + a.sqrt() * x / (1 - a))  # (B, D)
        return (mean + v.sqrt() * z[:, 1:].detach().cpu().double()).to(x_next.device, x_next.dtype)


# ----------------------------------------------------------------------------- networks


class PairGenerator(nn.Module):
    """G(x_{k+1}, z, k) -> x0' for flat data (B, dim): a LeakyReLU MLP on [x_{k+1}, z], the step's
    embedding added to every hidden layer; ``tanh=True`` bounds x0' to [-1, 1] (images)."""

    def __init__(self, dim: int = 2, z_dim: int = 2, hidden: int = 128, depth: int = 3, t_dim: int = 32,
                 tanh: bool = False):
        super().__init__()
        self.dim, self.z_dim = check_positive_int("dim", dim), check_positive_int("z_dim", z_dim)
        self.tanh = check_bool("tanh", tanh)
        depth = check_positive_int("depth", depth)
        self.time = TimeEmbedding(t_dim, hidden)
        self.inp = nn.Linear(dim + z_dim, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.t_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, dim)

    def forward(self, x_next: Tensor, z: Tensor, k: Tensor) -> Tensor:
        if x_next.ndim != 2 or x_next.shape[1] != self.dim or z.shape != (len(x_next), self.z_dim) \
                or k.shape != (len(x_next),):
            raise ValueError(f"G needs x_next (B, {self.dim}), z (B, {self.z_dim}) and k (B,), got "
                             f"{tuple(x_next.shape)}, {tuple(z.shape)}, {tuple(k.shape)}")
        k_unique, row = torch.unique(k, return_inverse=True)  # time terms once per distinct step
        emb = self.time(k_unique)  # (U, hidden)
        h = nn.functional.leaky_relu(self.inp(torch.cat([x_next, z], 1)) + emb[row], 0.2)  # (B, hidden)
        for layer, proj in zip(self.hidden, self.t_proj):
            h = nn.functional.leaky_relu(layer(h) + proj(emb)[row], 0.2)
        x0 = self.out(h)  # (B, dim)
        return torch.tanh(x0) if self.tanh else x0


class PairDiscriminator(nn.Module):
    """D(x_k, k, x_{k+1}) -> (B,) logits for flat data: a LeakyReLU(0.2) MLP on [x_k, x_{k+1}], the step's
    embedding added to every hidden layer (the authors concatenate x_k and x_{k+1} on channels)."""

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, t_dim: int = 32):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        depth = check_positive_int("depth", depth)
        self.time = TimeEmbedding(t_dim, hidden)
        self.inp = nn.Linear(2 * dim, hidden)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.t_proj = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.out = nn.Linear(hidden, 1)

    def forward(self, x_k: Tensor, k: Tensor, x_next: Tensor) -> Tensor:
        if x_k.shape != x_next.shape:
            raise ValueError(f"x_k has shape {tuple(x_k.shape)} but x_next has {tuple(x_next.shape)}: "
                             f"a pair must have the same (B, {self.dim}) shape")
        if x_k.ndim != 2 or x_k.shape[1] != self.dim or k.shape != (len(x_k),):
            raise ValueError(f"D needs x_k and x_next (B, {self.dim}) and k (B,), got {tuple(x_k.shape)}, "
                             f"{tuple(k.shape)}")
        k_unique, row = torch.unique(k, return_inverse=True)
        emb = self.time(k_unique)  # (U, hidden)
        h = nn.functional.leaky_relu(self.inp(torch.cat([x_k, x_next], 1)) + emb[row], 0.2)  # (B, hidden)
        for layer, proj in zip(self.hidden, self.t_proj):
            h = nn.functional.leaky_relu(layer(h) + proj(emb)[row], 0.2)
        return self.out(h).squeeze(1)  # (B,)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class DDGANConfig:
    """Hyperparameters of :func:`ddgan_step`; the defaults are the README's CIFAR-10 recipe (T = 4)."""

    lr_g: float | Ramp = 1.6e-4  # README CIFAR-10 (--lr_g 1.6e-4; cosine decay to 1e-5 there)
    lr_d: float | Ramp = 1.25e-4  # README CIFAR-10 (--lr_d 1.25e-4)
    betas: tuple[float, float] = (0.5, 0.9)  # train_ddgan.py: Adam(beta1=0.5, beta2=0.9)
    r1_gamma: float = 0.02  # README CIFAR-10 (--r1_gamma 0.02); the paper's text and the script's default: 0.05
    lazy_reg: int = 15  # README CIFAR-10 (--lazy_reg 15): R1 every 15 steps, not multiplied by 15
    d_steps: int = 1  # one D update per G update (train_ddgan.py)

    def __post_init__(self) -> None:
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            check_scheduled(name, value, low=0)
            if not isinstance(value, Ramp):
                check_positive(name, value)
        check_betas("betas", self.betas)
        check_number("r1_gamma", self.r1_gamma, low=0)
        check_positive_int("lazy_reg", self.lazy_reg)
        check_positive_int("d_steps", self.d_steps)


def make_optimizers(G: nn.Module, D: nn.Module, cfg: DDGANConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for G (``lr_g``) and D (``lr_d``), the names :func:`ddgan_step` reads."""
    check_config(cfg, DDGANConfig, "ddgan.make_optimizers")
    return {"G": torch.optim.Adam(G.parameters(), lr=value_at(cfg.lr_g, 0), betas=cfg.betas),
            "D": torch.optim.Adam(D.parameters(), lr=value_at(cfg.lr_d, 0), betas=cfg.betas)}


def ddgan_step(state: State, x0: Tensor, cfg: DDGANConfig, schedule: Schedule) -> dict[str, Tensor]:
    """One DDGAN step on the data batch ``x0`` (d_steps * B, ...): ``d_steps`` D updates, one G update.

    ``state.modules`` holds ``"G"`` (called ``G(x_{k+1}, z, k)``, with a ``z_dim``) and ``"D"`` (called
    ``D(x_k, k, x_{k+1})``). Bind the rest for :func:`ganref.train.fit` with
    ``functools.partial(ddgan_step, cfg=cfg, schedule=schedule)``.
    """
    check_config(cfg, DDGANConfig, "ddgan.ddgan_step")
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    set_lr(opt_g, value_at(cfg.lr_g, state.step))
    set_lr(opt_d, value_at(cfg.lr_d, state.step))
    reals = split_batch(x0, cfg.d_steps, "d_steps")
    B, dev = reals[0].shape[0], x0.device
    r1 = torch.zeros((), device=dev)

    def fake_pair(real: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        k = torch.randint(0, schedule.T, (B,), generator=state.generator).to(dev)  # (B,) a step per sample
        x_k, x_next = q_pair(schedule, real, k, state.randn(*real.shape), state.randn(*real.shape))
        x0_pred = G(x_next, state.randn(B, G.z_dim), k)  # x0' = G(x_{k+1}, z, k)
        return k, x_k, x_next, posterior_sample(schedule, x0_pred, x_next, k, state.randn(*real.shape))

    # --- D maximizes E_{q(x_{k+1})} [ E_{q(x_k | x_{k+1})} log D(x_k, k, x_{k+1})
    #                                 + E_{p_theta(x_k | x_{k+1})} log(1 - D(x_k', k, x_{k+1})) ] - R1   Sec. 3.2
    for real in reals:
        k, x_k, x_next, x_fake = fake_pair(real)
        d_loss = d_loss_minimax(D(x_k, k, x_next), D(x_fake.detach(), k, x_next))
        if cfg.r1_gamma > 0 and state.step % cfg.lazy_reg == 0:
            # gamma/2 E ||grad_{x_k} D(x_k, k, x_{k+1})||^2 at the real x_k only; lazy, not scaled by lazy_reg
            r1 = r1_penalty(lambda x: D(x, k, x_next), x_k, cfg.r1_gamma)
            d_loss = d_loss + r1
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # --- G minimizes E_{q(x_{k+1}), z} [ -log D(x_k', k, x_{k+1}) ],
    #     x_k' ~ q(x_k | x_{k+1}, x0 = G(x_{k+1}, z, k)): fresh k and pairs     non-saturating, Sec. 3.2-3.3
    k, _, x_next, x_fake = fake_pair(reals[-1])
    g_loss = g_loss_nonsaturating(D(x_fake, k, x_next))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": (d_loss - r1).detach(), "g_loss": g_loss.detach(), "r1": r1.detach()}


# ----------------------------------------------------------------------------- sampling


@torch.no_grad()
def sample(G: Generator, schedule: Schedule, shape: tuple[int, ...], generator: torch.Generator | None = None,
           device: torch.device | str | None = None, trajectory: bool = False) -> Samples:
    """DDGAN's sampler: x_T ~ N(0, I), then T steps of x0' = G(x_{k+1}, z, k) and a posterior draw.

    Args:
        G: the generator (put in eval mode for the call if it is a module), with a ``z_dim`` attribute.
        schedule: the schedule G was trained on; T = ``schedule.T`` network calls.
        shape: (B, ...) of the samples.
        generator: CPU generator; x_T is its first draw (the same x_T as ``ddpm.sample_ddpm``).
        device: where G runs; ``None``: G's parameters' device (CPU for a plain callable).
        trajectory: keep x_T and every x_k (T + 1 states).
    Returns:
        :class:`ganref.methods.ddpm.Samples` (x on the CPU, nfe = T, trajectory or None).
    """
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2 \
            or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"shape must be (B, ...) with positive integers, got {shape!r}")
    z_dim = getattr(G, "z_dim", None)
    if not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError(f"G must have a positive integer z_dim attribute (the noise size), got {z_dim!r}")
    if device is None:
        first = next(G.parameters(), None) if isinstance(G, nn.Module) else None
        device = first.device if first is not None else "cpu"
    was_training = isinstance(G, nn.Module) and G.training
    if was_training:
        G.eval()
    B = shape[0]
    x = torch.randn(*shape, generator=generator).to(device)  # 1. x_T ~ N(0, I)
    path, nfe = [x.cpu()] if trajectory else None, 0
    try:
        for k in range(schedule.T - 1, -1, -1):
            kk = torch.full((B,), k, dtype=torch.long, device=device)
            # 2. x0' = G(x_{k+1}, z, k), a fresh z ~ N(0, I) at every step
            x0_pred = G(x, torch.randn(B, z_dim, generator=generator).to(device), kk)
            nfe += 1
            # 3. x_k ~ q(x_k | x_{k+1}, x0') (DDPM Eq. (7)); no noise at k = 0
            x = posterior_sample(schedule, x0_pred, x, kk, torch.randn(*shape, generator=generator).to(device))
            if path is not None:
                path.append(x.cpu())
    finally:
        if was_training:
            G.train()
    return Samples(x.cpu(), nfe, torch.stack(path) if path is not None else None)
