r"""Diffusion-GAN: instance noise from a forward diffusion, with a length T that adapts to D.

**Diffusion-GAN: Training GANs with Diffusion.** Zhendong Wang, Huangjie Zheng, Pengcheng He, Weizhu Chen,
Mingyuan Zhou. ICLR 2023. arXiv:2206.02262.

Real and generated samples both go through the same forward diffusion to a random timestep t that D
is told, ``y = sqrt(alpha_bar_t) x + sqrt(1 - alpha_bar_t) sigma eps`` (alpha_bar from the linear betas
1e-4..2e-2 rebuilt over the current T; t = 0 leaves the sample clean), and the game is

.. math::
    \min_G \max_D\; \mathbb E_{x, t, y \sim q(y | x, t)}[\log D(y, t)]
        + \mathbb E_{z, t, y_g \sim q(y | G(z), t)}[\log(1 - D(y_g, t))],

whose value at the optimal D is :math:`-\log 4 + 2\,\mathbb E_t\, \mathrm{JS}(p(y | t) \| p_g(y | t))`:
smooth in G where the JS of the clean distributions is stuck at log 2 (:func:`toy_js`). G learns through
the reparameterized :math:`y_g`. Timesteps come from a mixture over 0..T: a share of clean samples, the rest with
:math:`p(t) \propto t` ("priority", the paper's Eq. (6)) or uniform. Every 4 D updates
:math:`r_d = \mathbb E[\mathrm{sign}(D(y, t))]` on real y moves
:math:`p \leftarrow \mathrm{clip}(p + \mathrm{sign}(r_d - d_{target})\, B \cdot 4 / (1000\, \mathrm{ada\_kimg}), 0, 1)`
and :math:`T = T_{min} + \mathrm{round}(p (T_{max} - T_{min}))` (the authors' training_loop.py; p starts at 0).

Where the public code differs from the paper (each is a config field here): half of its timesteps are
t = 0 (``clean_share=0.5``); its "priority" weights t by t - 1 (``sampling="priority_code"``), the paper
by t; its StyleGAN2 D uses t only for labelled data (``t_conditional=False``).

Deviations from the paper: small MLP / conv nets (:class:`TimeMLPDiscriminator`,
:class:`TimeConvDiscriminator`, t added to every hidden layer through a sinusoidal embedding) instead of
StyleGAN2's mapping network; t is drawn per sample from the exact mixture at every step (the code redraws
a 64-entry list of t only when T changes); R1, when asked for, every D update (StyleGAN2 is lazy) and
with respect to the clean real x through the injection; the paper's PDF could not be read, so only
Eq. (6) is cited by number, from a secondary source, and the rest cites the authors' code.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ganref.data import batch_sampler, mixture, split_batch
from ganref.losses import d_loss_minimax, g_loss_nonsaturating, r1_penalty
from ganref.methods.ddpm import Schedule, linear_schedule, q_sample
from ganref.modes import EVAL_Z_SEED, ToyRun, mode_coverage
from ganref.nets import MLPGenerator, sample
from ganref.train import Every, State, fit
from ganref.unet import timestep_embedding
from ganref.utils import (check_betas, check_bool, check_choice, check_config, check_number, check_positive,
                          check_positive_int, seed_everything)

__all__ = ["SAMPLINGS", "diffusion_schedule", "inject", "timestep_probs", "sample_timesteps", "ada_update",
           "diffusion_length", "AdaptiveDiffusion", "TimeMLPDiscriminator", "TimeConvDiscriminator",
           "DiffusionGANConfig", "make_optimizers", "diffusion_gan_step", "diffused_critic", "toy_diffusion_gan",
           "toy_js", "toy_js_monte_carlo"]

SAMPLINGS = ("priority", "priority_code", "uniform")


# ----------------------------------------------------------------------------- the injection


def diffusion_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """The linear schedule rebuilt over the current T (the authors' diffusion.py): row t - 1 holds timestep t."""
    return linear_schedule(T, beta_start, beta_end)


def inject(schedule: Schedule, x: Tensor, t: Tensor, eps: Tensor, sigma: float) -> Tensor:
    """y = sqrt(alpha_bar_t) x + sqrt(1 - alpha_bar_t) sigma eps ~ q(y | x, t); y = x exactly where t = 0.

    Args:
        schedule: :func:`diffusion_schedule` of the current T (timestep t is its row t - 1).
        x: (B, ...) clean samples, real or generated: the result is differentiable in x.
        t: (B,) LongTensor in 0..T.
        eps: (B, ...) standard normal noise; sigma > 0 its scale.
    """
    check_positive("sigma", sigma)
    if not isinstance(t, Tensor) or t.dtype != torch.long or t.shape != x.shape[:1]:
        raise ValueError(f"t must be a LongTensor of shape ({len(x)},), one timestep per sample, got {t!r}")
    if len(t) and (int(t.min()) < 0 or int(t.max()) > schedule.T):
        raise ValueError(f"t must lie in 0..T = 0..{schedule.T} (0: clean), got values in "
                         f"[{int(t.min())}, {int(t.max())}]")
    y = q_sample(schedule, x, (t - 1).clamp(min=0).cpu(), sigma * eps)  # DDPM Eq. (4) with noise sigma * eps
    return torch.where((t > 0).view(-1, *([1] * (x.ndim - 1))).to(x.device), y, x)  # t = 0: the sample itself


def timestep_probs(T: int, sampling: str = "priority", clean_share: float = 0.5) -> Tensor:
    """(T + 1,) float64 probabilities of t = 0..T: ``clean_share`` at t = 0, the rest spread over 1..T.

    ``"priority"``: p(t) proportional to t (the paper's Eq. (6)); ``"priority_code"``: proportional to t - 1
    (the public code, so p(1) = 0; needs T >= 2); ``"uniform"``: 1 / T.
    """
    T = check_positive_int("T", T)
    check_choice("sampling", sampling, SAMPLINGS)
    clean_share = check_number("clean_share", clean_share, low=0, high=1)
    t = torch.arange(1, T + 1, dtype=torch.float64)
    if sampling == "priority_code" and T < 2:
        raise ValueError("sampling 'priority_code' weights t by t - 1, so it needs T >= 2, got T = 1")
    w = {"priority": t, "priority_code": t - 1, "uniform": torch.ones_like(t)}[sampling]
    return torch.cat([torch.tensor([clean_share], dtype=torch.float64), (1 - clean_share) * w / w.sum()])


def sample_timesteps(n: int, T: int, sampling: str = "priority", clean_share: float = 0.5,
                     generator: torch.Generator | None = None) -> Tensor:
    """(n,) LongTensor of independent draws of t from :func:`timestep_probs`, on the CPU."""
    probs = _probs(T, sampling, float(clean_share)) if isinstance(T, int) else timestep_probs(T, sampling, clean_share)
    return torch.multinomial(probs, check_positive_int("n", n), replacement=True, generator=generator)


# ----------------------------------------------------------------------------- the adaptive length


def ada_update(p: float, r_d: float, d_target: float, batch: int, interval: int = 4, ada_kimg: float = 100.0) -> float:
    """p + sign(r_d - d_target) * batch * interval / (ada_kimg * 1000), clipped to [0, 1] (training_loop.py)."""
    step = math.copysign(1.0, r_d - d_target) if r_d != d_target else 0.0  # sign(0) = 0
    return min(max(p + step * batch * interval / (ada_kimg * 1000), 0.0), 1.0)


def diffusion_length(p: float, T_min: int, T_max: int) -> int:
    """T = clip(T_min + round(p (T_max - T_min)), T_min, T_max); ``round`` halves to even, as NumPy's does."""
    return int(min(max(T_min + round(p * (T_max - T_min)), T_min), T_max))


class AdaptiveDiffusion(nn.Module):
    """The diffusion's running state, kept as buffers so that checkpoints hold it: p, T, and the signs of
    D on real y gathered since the last adjustment. Start: p = 0, T = T_min."""

    def __init__(self, cfg: "DiffusionGANConfig"):
        super().__init__()
        check_config(cfg, DiffusionGANConfig, "diffusion_gan.AdaptiveDiffusion")
        self.register_buffer("p", torch.zeros((), dtype=torch.float64))
        self.register_buffer("T", torch.tensor(cfg.T_min))
        self.register_buffer("sign_sum", torch.zeros((), dtype=torch.float64))  # sum of sign(D(y, t)) on real y
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))  # real rows since the last update
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # D updates since the last update
        self.register_buffer("r_d", torch.zeros((), dtype=torch.float64))  # the last r_d (0 before the first)

    def schedule(self, cfg: "DiffusionGANConfig") -> Schedule:
        return _schedule(int(self.T), cfg.beta_start, cfg.beta_end)

    @torch.no_grad()
    def observe(self, d_real: Tensor, cfg: "DiffusionGANConfig") -> None:
        """Gather sign(D(y, t)) of one D update on real y; every ``ada_interval`` updates, adjust p and T."""
        self.sign_sum += torch.sign(d_real.detach()).double().sum().cpu()
        self.seen += len(d_real)
        self.updates += 1
        if int(self.updates) == cfg.ada_interval:
            r_d = float(self.sign_sum / self.seen)  # E[sign(D(y, t))] over the interval
            p = ada_update(float(self.p), r_d, cfg.d_target, int(self.seen) // cfg.ada_interval, cfg.ada_interval,
                           cfg.ada_kimg)
            self.p.fill_(p)
            self.T.fill_(diffusion_length(p, cfg.T_min, cfg.T_max))
            self.r_d.fill_(r_d)
            for buffer in (self.sign_sum, self.seen, self.updates):
                buffer.zero_()


@functools.lru_cache(maxsize=256)
def _probs(T: int, sampling: str, clean_share: float) -> Tensor:
    return timestep_probs(T, sampling, clean_share)


@functools.lru_cache(maxsize=256)
def _schedule(T: int, beta_start: float, beta_end: float) -> Schedule:
    return diffusion_schedule(T, beta_start, beta_end)


# ----------------------------------------------------------------------------- t-conditioned discriminators


class TimeMLPDiscriminator(nn.Module):
    """D(y, t) -> (B,) logits for points: ``nets.MLPDiscriminator``'s ReLU MLP, each hidden layer shifted by a
    linear map of t's sinusoidal embedding (:func:`ganref.unet.timestep_embedding`)."""

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3, t_dim: int = 32):
        super().__init__()
        self.in_dim, self.t_dim = check_positive_int("in_dim", in_dim), check_positive_int("t_dim", t_dim, 4)
        depth = check_positive_int("depth", depth)
        self.layers = nn.ModuleList(nn.Linear(in_dim if i == 0 else hidden, hidden) for i in range(depth))
        self.t_proj = nn.Linear(t_dim, depth * hidden)  # emb(t) -> one shift per hidden layer
        self.out = nn.Linear(hidden, 1)

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        if y.ndim != 2 or y.shape[1] != self.in_dim or t.shape != y.shape[:1]:
            raise ValueError(f"D needs y (B, {self.in_dim}) and t (B,), got {tuple(y.shape)} and {tuple(t.shape)}")
        shifts = self.t_proj(timestep_embedding(t, self.t_dim)).chunk(len(self.layers), dim=1)  # depth x (B, hidden)
        h = y
        for layer, shift in zip(self.layers, shifts):
            h = torch.relu(layer(h) + shift)  # (B, hidden)
        return self.out(h).squeeze(1)  # (B,)


class TimeConvDiscriminator(nn.Module):
    """D(y, t) -> (B,) logits for 8x8 images: ``nets.ConvDiscriminator``'s convolutions, each followed by a
    per-channel shift, a linear map of t's sinusoidal embedding."""

    def __init__(self, channels: int = 1, width: int = 32, t_dim: int = 32):
        super().__init__()
        self.channels, w = check_positive_int("channels", channels), check_positive_int("width", width)
        self.t_dim = check_positive_int("t_dim", t_dim, 4)
        self.convs = nn.ModuleList([nn.Conv2d(channels, w, 3, stride=1, padding=1),  # (B, w, 8, 8)
                                    nn.Conv2d(w, 2 * w, 4, stride=2, padding=1),  # (B, 2w, 4, 4)
                                    nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1)])  # (B, 4w, 2, 2)
        self.t_proj = nn.Linear(t_dim, 7 * w)  # emb(t) -> shifts of w, 2w and 4w channels
        self.out = nn.Linear(4 * w * 2 * 2, 1)

    def forward(self, y: Tensor, t: Tensor) -> Tensor:
        if y.ndim != 4 or y.shape[1:] != (self.channels, 8, 8) or t.shape != y.shape[:1]:
            raise ValueError(f"D needs y (B, {self.channels}, 8, 8) and t (B,), got {tuple(y.shape)} and "
                             f"{tuple(t.shape)}")
        shifts = self.t_proj(timestep_embedding(t, self.t_dim)).split([c.out_channels for c in self.convs], dim=1)
        h = y
        for conv, shift in zip(self.convs, shifts):
            h = nn.functional.leaky_relu(conv(h) + shift[:, :, None, None], 0.2)
        return self.out(h.flatten(1)).squeeze(1)  # (B,)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class DiffusionGANConfig:
    """Hyperparameters of :func:`diffusion_gan_step`. The defaults follow the paper where it and the public code
    differ in what the method is (p(t) proportional to t, a D told t; T_min from its Table 5), and the code for
    the rest, which is what produced the reported numbers (the clean share, sigma, the rule's constants)."""

    lr: float = 2e-4  # the book's vanilla GAN (DCGAN's Adam); the paper's StyleGAN2 runs use StyleGAN2's own
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN (Radford et al. 2016); StyleGAN2 uses (0, 0.99)
    d_steps: int = 1  # one D update per G update (StyleGAN2's loop, which the authors' code keeps)
    sigma: float = 0.05  # noise_sd 0.05 for the StyleGAN2 variant (diffusion.py / train.py; 0.5 for ProjectedGAN)
    beta_start: float = 1e-4  # linear betas from 1e-4 (the authors' diffusion.py)
    beta_end: float = 0.02  # ... to 2e-2, rebuilt over the current T (diffusion.py)
    T_min: int = 5  # the paper's Table 5 (the code's train.py default is 10)
    T_max: int = 1000  # train.py default; the paper's Table 5 uses 500 for the uniform variant
    d_target: float = 0.6  # target of r_d (train.py; ADA's value, Karras et al. 2020)
    ada_kimg: float = 100.0  # p moves by B * 4 / (ada_kimg * 1000) per adjustment (train.py)
    ada_interval: int = 4  # adjust p every 4 D updates (training_loop.py's ada_interval)
    sampling: str = "priority"  # p(t) proportional to t, the paper's Eq. (6); the code uses t - 1
    clean_share: float = 0.5  # P(t = 0): the code's t_epl list is half zeros; 1.0 turns the diffusion off
    t_conditional: bool = True  # D(y, t) (the paper); the code's unconditional StyleGAN2 D ignores t
    r1_gamma: float = 0.0  # R1 of StyleGAN2 on images (per-dataset gamma, not restated here); 0: the 2-D toys

    def __post_init__(self) -> None:
        check_positive("lr", self.lr)
        check_betas("betas", self.betas)
        check_positive_int("d_steps", self.d_steps)
        check_positive("sigma", self.sigma)
        check_number("beta_start", self.beta_start, low=0, high=1, low_open=True, high_open=True)
        check_number("beta_end", self.beta_end, low=0, high=1, low_open=True, high_open=True)
        check_positive_int("T_min", self.T_min)
        check_positive_int("T_max", self.T_max)
        if self.T_min > self.T_max:
            raise ValueError(f"T_min must be <= T_max, got T_min={self.T_min}, T_max={self.T_max}")
        check_number("d_target", self.d_target, low=0, high=1, low_open=True, high_open=True)
        check_positive("ada_kimg", self.ada_kimg)
        check_positive_int("ada_interval", self.ada_interval)
        check_choice("sampling", self.sampling, SAMPLINGS)
        if self.sampling == "priority_code" and self.T_min < 2:
            raise ValueError(f"sampling 'priority_code' weights t by t - 1, so it needs T_min >= 2, got {self.T_min}")
        check_number("clean_share", self.clean_share, low=0, high=1)
        check_bool("t_conditional", self.t_conditional)
        check_number("r1_gamma", self.r1_gamma, low=0)


def make_optimizers(G: nn.Module, D: nn.Module, cfg: DiffusionGANConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for G and D with the config's lr and betas, under the names :func:`diffusion_gan_step` reads."""
    check_config(cfg, DiffusionGANConfig, "diffusion_gan.make_optimizers")
    return {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
            "D": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)}


def diffusion_gan_step(state: State, real: Tensor, cfg: DiffusionGANConfig) -> dict[str, Tensor | float]:
    """``cfg.d_steps`` D updates on diffused real and generated samples, then one G update through the injection.

    ``state.modules`` holds ``"G"`` (with ``z_dim``), ``"D"`` (called ``D(y, t)``) and ``"diffusion"``, an
    :class:`AdaptiveDiffusion`. ``real``: (d_steps * B, ...) rows. Returns the losses, R1, and T, p and the
    last r_d of the adaptive rule (so that ``state.history`` traces them).
    """
    check_config(cfg, DiffusionGANConfig, "diffusion_gan.diffusion_gan_step")
    G, D, diffusion = state.modules["G"], state.modules["D"], state.modules["diffusion"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.d_steps, "d_steps")
    B, dev = reals[0].shape[0], real.device
    r1 = torch.zeros((), device=dev)

    def diffuse(x: Tensor) -> tuple[Tensor, Tensor]:
        """y ~ q(y | x, t) with t ~ pi(t) per sample; and the t that D is told (0 for all if it ignores t)."""
        t = sample_timesteps(B, int(diffusion.T), cfg.sampling, cfg.clean_share, state.generator)  # (B,)
        y = inject(diffusion.schedule(cfg), x, t, state.randn(*x.shape), cfg.sigma)
        return y, (t if cfg.t_conditional else torch.zeros_like(t)).to(dev)

    # --- D maximizes E_{x, t} E_{y ~ q(y|x,t)} log D(y, t) + E_{z, t} E_{y_g ~ q(y|G(z),t)} log(1 - D(y_g, t))
    #     (+ R1 at the real samples when r1_gamma > 0); then the adaptive rule reads sign(D(y, t)) on real y
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        (y_real, t_real), (y_fake, t_fake) = diffuse(x), diffuse(fake)
        d_real = D(y_real, t_real)  # (B,)
        d_loss = d_loss_minimax(d_real, D(y_fake, t_fake))
        if cfg.r1_gamma > 0:  # gamma/2 E ||grad_x D(q(x, t), t)||^2, through the injection
            eps = state.randn(*x.shape)
            t = sample_timesteps(B, int(diffusion.T), cfg.sampling, cfg.clean_share, state.generator)
            t_d = (t if cfg.t_conditional else torch.zeros_like(t)).to(dev)
            r1 = r1_penalty(lambda v: D(inject(diffusion.schedule(cfg), v, t, eps, cfg.sigma), t_d), x, cfg.r1_gamma)
        opt_d.zero_grad(set_to_none=True)
        (d_loss + r1).backward()
        opt_d.step()
        # --- every ada_interval D updates: r_d = E sign(D(y, t)), p += sign(r_d - d_target) B*4/(ada_kimg*1000),
        #     T = T_min + round(p (T_max - T_min))                                                 training_loop.py
        diffusion.observe(d_real, cfg)

    # --- G minimizes E_{z, t} E_{y_g ~ q(y|G(z),t)} -log D(y_g, t): non-saturating, through the reparameterized y_g
    y_gen, t_gen = diffuse(G(state.randn(B, G.z_dim)))
    g_loss = g_loss_nonsaturating(D(y_gen, t_gen))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "r1": r1.detach(), "T": float(diffusion.T),
            "p": float(diffusion.p), "r_d": float(diffusion.r_d)}


def diffused_critic(D: nn.Module, schedule: Schedule, t: Tensor, eps: Tensor, sigma: float,
                    t_conditional: bool = True) -> Callable[[Tensor], Tensor]:
    """x -> D(q(x, t), t) with fixed t and eps: D as a function of the clean sample, the function whose
    gradient G receives (for ``probes.gradient_norms``). ``t``: (B,) long; ``eps``: (B, ...)."""
    t_d = t if t_conditional else torch.zeros_like(t)
    return lambda x: D(inject(schedule, x, t, eps, sigma), t_d.to(x.device))


# ----------------------------------------------------------------------------- the 2-D runs


def toy_diffusion_gan(name: str, cfg: DiffusionGANConfig, seed: int, steps: int, *, width: int = 128,
                      depth: int = 3, t_dim: int = 32, batch_size: int = 256, callbacks: Sequence[Every] = (),
                      n_eval: int = 2500, device: torch.device | str = "cpu", progress: bool = False,
                      desc: str | None = None) -> ToyRun:
    """:func:`ganref.modes.toy_gan` for Diffusion-GAN: the same G, batches, seeds and VEEGAN scoring, with
    :class:`TimeMLPDiscriminator` (the same ReLU layers plus the t embedding) and ``callbacks`` passed to fit."""
    check_config(cfg, DiffusionGANConfig, "diffusion_gan.toy_diffusion_gan")
    mix = mixture(name)
    gen = seed_everything(seed)
    G = MLPGenerator(z_dim=2, out_dim=2, hidden=width, depth=depth).to(device)
    D = TimeMLPDiscriminator(in_dim=2, hidden=width, depth=depth, t_dim=t_dim).to(device)
    state = State({"G": G, "D": D, "diffusion": AdaptiveDiffusion(cfg)}, make_optimizers(G, D, cfg), gen,
                  torch.device(device))
    fit(functools.partial(diffusion_gan_step, cfg=cfg), state,
        batch_sampler(mix.sample, batch_size, device=device, d_steps=cfg.d_steps), check_positive_int("steps", steps),
        callbacks=callbacks, progress=progress, desc=desc or f"{name} seed {seed}")
    samples = sample(G, check_positive_int("n_eval", n_eval), EVAL_Z_SEED + seed, device)
    return ToyRun(state, samples, mode_coverage(samples, mix.means, mix.std), [])


# ----------------------------------------------------------------------------- the paper's toy, exactly


def toy_js(theta: Tensor | float, alpha_bar: float, sigma: float, n: int = 4001, half_width: float = 12.0) -> Tensor:
    r"""JS(p(y | t) || p_g(y | t)) for data (0, z) against a generator (theta, z), z ~ U[0, 1], by quadrature.

    Diffused, the first coordinates are N(0, b) and N(a theta, b) with a = sqrt(alpha_bar), b = (1 - alpha_bar)
    sigma^2; the second has the same law under both and is independent of the first, so the JS is the 1-D one.
    With u = y_1 / sqrt(b) and :math:`\delta = a\theta / \sqrt b`, :math:`\log(q/p) = \delta u - \delta^2/2`, so
    :math:`\mathrm{JS} = \log 2 - \mathbb E_{u \sim N(0, 1)}\,\mathrm{softplus}(\delta u - \delta^2 / 2)`
    (both halves of the JS are equal by symmetry): a trapezoid rule on ``n`` points of [-12, 12] (float64,
    differentiable in theta). alpha_bar = 1 (t = 0, clean): log 2 for theta != 0, 0 at theta = 0.
    """
    theta = torch.as_tensor(theta, dtype=torch.float64)
    alpha_bar = check_number("alpha_bar", alpha_bar, low=0, high=1, low_open=True)
    b = (1 - alpha_bar) * check_positive("sigma", sigma) ** 2
    if b == 0:
        return torch.where(theta == 0, 0.0, math.log(2)).to(torch.float64)
    delta = math.sqrt(alpha_bar) * theta / math.sqrt(b)  # the mean gap in units of the noise std
    u = torch.linspace(-half_width, half_width, check_positive_int("n", n, minimum=3), dtype=torch.float64)
    phi = torch.exp(-u**2 / 2) / math.sqrt(2 * math.pi)  # N(0, 1) density
    f = nn.functional.softplus(delta[..., None] * u - delta[..., None] ** 2 / 2) * phi  # (..., n)
    return math.log(2) - torch.trapezoid(f, u, dim=-1)


def toy_js_monte_carlo(theta: float, alpha_bar: float, sigma: float, n: int = 200_000,
                       generator: torch.Generator | None = None) -> tuple[float, float]:
    """Monte-Carlo JS of the same pair from the densities themselves: (estimate, standard error).

    JS = 1/2 E_p log(2p / (p + q)) + 1/2 E_q log(2q / (p + q)) with n draws from each of the 1-D Gaussians.
    """
    alpha_bar = check_number("alpha_bar", alpha_bar, low=0, high=1, low_open=True, high_open=True)
    s = math.sqrt(1 - alpha_bar) * check_positive("sigma", sigma)
    mu = math.sqrt(alpha_bar) * float(theta)
    n = check_positive_int("n", n, minimum=2)
    y_p = s * torch.randn(n, generator=generator, dtype=torch.float64)
    y_q = mu + s * torch.randn(n, generator=generator, dtype=torch.float64)

    def log_ratio(y: Tensor, m_self: float, m_other: float) -> Tensor:  # log(2 f / (f + g)) = log 2 - softplus(log g/f)
        return math.log(2) - nn.functional.softplus(((y - m_self) ** 2 - (y - m_other) ** 2) / (2 * s * s))

    terms = torch.stack([log_ratio(y_p, 0.0, mu), log_ratio(y_q, mu, 0.0)]).mean(0)  # (n,) independent pairs
    return float(terms.mean()), float(terms.std() / math.sqrt(n))
