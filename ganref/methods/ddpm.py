r"""DDPM and DDIM: the diffusion baseline, its noise schedules and its two samplers.

- **DDPM**: Jonathan Ho, Ajay Jain, Pieter Abbeel. *Denoising Diffusion Probabilistic Models.*
  NeurIPS 2020. arXiv:2006.11239.
- **DDIM**: Jiaming Song, Chenlin Meng, Stefano Ermon. *Denoising Diffusion Implicit Models.*
  ICLR 2021. arXiv:2010.02502.
- **Cosine schedule, respacing**: Alex Nichol, Prafulla Dhariwal. *Improved Denoising Diffusion
  Probabilistic Models.* ICML 2021. arXiv:2102.09672.

The papers count t = 1..T; the authors' code and this file count k = t - 1 in 0..T-1, with
:math:`\bar\alpha_k = \prod_{s \le k} (1 - \beta_s)`, :math:`\bar\alpha_{-1} = 1`. The forward marginal
:math:`q(x_k | x_0) = \mathcal N(\sqrt{\bar\alpha_k} x_0, (1 - \bar\alpha_k) I)` (DDPM Eq. (4)) and the posterior
:math:`q(x_{k-1} | x_k, x_0)` (Eq. (6)-(7)) are Gaussian; a network learns the noise with (Eq. (14))

.. math::
    L_{\rm simple} = \mathbb E_{k, x_0, \epsilon}\|\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_k} x_0
        + \sqrt{1 - \bar\alpha_k}\epsilon, k)\|^2 .

DDPM samples ancestrally, T network calls (Algorithm 2); DDIM jumps between any two steps,
:math:`x_{k'} = \sqrt{\bar\alpha_{k'}}\hat x_0 + \sqrt{1 - \bar\alpha_{k'} - \sigma^2}\,\hat\epsilon + \sigma z`
(Eq. (12)), deterministic at :math:`\eta = 0` (Eq. (16) gives sigma).

Deviations from the papers:

- DDPM samples with :math:`\sigma_k^2 = \tilde\beta_k`; Ho's CIFAR-10 run used :math:`\beta_k` (Sec. 3.2: similar).
- :math:`\hat x_0` is never clipped (Ho's code clips it to [-1, 1] for images, which raised the digits'
  FID here; diffusers clips by default, which is wrong for the 2-D mixtures at +-4).
- Respacing (Nichol & Dhariwal Sec. 4) and DDIM keep the steps ``round(linspace(0, T - 1, S))``;
  :func:`posterior` accepts k = 0 (mean :math:`x_0`, variance 0), as the authors' code does.
- :class:`MixtureDenoiser`, the exact denoiser of a Gaussian mixture, is the book's sampler test.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from ganref.data import GaussianMixture
from ganref.schedules import Ramp, check_scheduled, set_lr, value_at
from ganref.train import State
from ganref.utils import check_betas, check_config, check_number, check_positive, check_positive_int

__all__ = ["Schedule", "linear_schedule", "cosine_schedule", "spaced_steps", "q_sample", "posterior",
           "predict_x0", "eps_loss", "eps_loss_per_sample", "ddim_step", "Samples", "sample_ddpm", "sample_ddim",
           "MixtureDenoiser", "DDPMConfig", "make_optimizers", "ddpm_step"]

EpsModel = Callable[[Tensor, Tensor], Tensor]  # eps_model(x_k (B, ...), k (B,) long) -> eps_hat (B, ...)


# ----------------------------------------------------------------------------- schedules


@dataclass(frozen=True, eq=False)
class Schedule:
    """A noise schedule: ``betas`` (T,) float64 in (0, 1), ``alpha_bar[k] = prod_{s<=k} (1 - betas[s])``, and
    ``timesteps[k]``, the step the network was trained at for row k (``arange(T)``; after :meth:`respace`
    the kept steps of the original schedule)."""

    betas: Tensor
    timesteps: Tensor | None = None
    alpha_bar: Tensor = field(init=False)

    def __post_init__(self) -> None:
        b = self.betas.detach().to("cpu", torch.float64) if isinstance(self.betas, Tensor) else None
        if b is None or b.ndim != 1 or len(b) < 1 or not bool(((b > 0) & (b < 1)).all()):
            got = f"shape {tuple(b.shape)}, values in [{b.min():g}, {b.max():g}]" if b is not None and b.numel() else \
                repr(self.betas)
            raise ValueError(f"betas must be a 1-D tensor of T >= 1 values in (0, 1), got {got}")
        ts = torch.arange(len(b)) if self.timesteps is None else self.timesteps
        if not isinstance(ts, Tensor) or ts.shape != b.shape or ts.dtype != torch.long:
            raise ValueError(f"timesteps must be a LongTensor of shape ({len(b)},), got {ts!r}")
        object.__setattr__(self, "betas", b)
        object.__setattr__(self, "timesteps", ts.cpu())
        object.__setattr__(self, "alpha_bar", torch.cumprod(1.0 - b, dim=0))  # prod_{s<=k} (1 - beta_s)

    @classmethod
    def from_betas(cls, betas: object) -> "Schedule":
        """A schedule from any betas (list, array, tensor), e.g. DDGAN's or a rescaled one."""
        return cls(torch.as_tensor(betas, dtype=torch.float64))

    def __repr__(self) -> str:
        b, a = self.betas, self.alpha_bar
        return f"Schedule(T={self.T}, betas {b[0]:.4g}..{b[-1]:.4g}, alpha_bar {a[0]:.6g}..{a[-1]:.4g})"

    @property
    def T(self) -> int:
        return len(self.betas)

    @property
    def alpha_bar_prev(self) -> Tensor:
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])  # (T,) alpha_bar[k - 1]

    def respace(self, steps: int) -> "Schedule":
        """The schedule on ``steps`` kept steps k_i (Nichol & Dhariwal Sec. 4): the same alpha_bar there,
        ``beta'_i = 1 - alpha_bar[k_i] / alpha_bar[k_{i-1}]``; ``timesteps`` maps row i to k_i for the network."""
        kept = spaced_steps(self.T, steps)
        abar = self.alpha_bar[kept]
        return Schedule(1.0 - abar / torch.cat([abar.new_ones(1), abar[:-1]]), self.timesteps[kept])


def linear_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's linear schedule, ``betas = linspace(beta_start, beta_end, T)`` (Ho et al. Sec. 4; T = 1000)."""
    T = check_positive_int("T", T)
    check_number("beta_start", beta_start, low=0, high=1, low_open=True, high_open=True)
    check_number("beta_end", beta_end, low=0, high=1, low_open=True, high_open=True)
    return Schedule(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))


def cosine_schedule(T: int, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal's cosine schedule, Eq. (17): ``f(u) = cos^2(((u / T + s) / (1 + s)) pi / 2)``,
    ``betas[k] = min(1 - f(k + 1) / f(k), max_beta)``, so alpha_bar[k] = f(k + 1) / f(0) until the clip."""
    T = check_positive_int("T", T)
    check_positive("s", s)
    check_number("max_beta", max_beta, low=0, high=1, low_open=True, high_open=True)
    u = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2  # (T + 1,)
    return Schedule(torch.clamp(1.0 - f[1:] / f[:-1], max=max_beta))


def spaced_steps(T: int, steps: int) -> Tensor:
    """``steps`` evenly spaced indices of 0..T-1, both ends kept: ``round(linspace(0, T - 1, steps))``."""
    T = check_positive_int("T", T)
    if check_positive_int("steps", steps) > T:
        raise ValueError(f"steps must be an integer in 1..T = 1..{T}, got {steps}")
    if steps == 1:
        return torch.tensor([T - 1])
    return torch.round(torch.linspace(0, T - 1, steps, dtype=torch.float64)).long()


# ----------------------------------------------------------------------------- the forward process


def _check_k(schedule: Schedule, k: Tensor, batch: int) -> Tensor:
    if not isinstance(k, Tensor) or k.shape != (batch,) or k.dtype != torch.long:
        got = f"{tuple(k.shape)} {k.dtype}" if isinstance(k, Tensor) else type(k).__name__
        raise ValueError(f"k must be a LongTensor of shape ({batch},), one step per sample, got {got}")
    if batch and (int(k.min()) < 0 or int(k.max()) >= schedule.T):
        raise ValueError(f"k must lie in 0..{schedule.T - 1} (T = {schedule.T}), got values in "
                         f"[{int(k.min())}, {int(k.max())}]")
    return k.cpu()


def _same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if not isinstance(a, Tensor) or not isinstance(b, Tensor) or a.shape != b.shape or a.ndim < 1:
        sa, sb = (tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__ for t in (a, b))
        raise ValueError(f"{name_a} has shape {sa} but {name_b} has {sb}: both must be the same (B, ...) shape")


def _per_sample(c: Tensor, like: Tensor) -> Tensor:
    """(B,) float64 coefficients -> (B, 1, ..., 1) in ``like``'s dtype and device."""
    return c.to(like.device, like.dtype).view(-1, *([1] * (like.ndim - 1)))


def q_sample(schedule: Schedule, x0: Tensor, k: Tensor, eps: Tensor) -> Tensor:
    """x_k = sqrt(alpha_bar_k) x0 + sqrt(1 - alpha_bar_k) eps ~ q(x_k | x0) (Eq. (4)); x0, eps (B, ...), k (B,)."""
    _same_shape("x0", x0, "eps", eps)
    k = _check_k(schedule, k, x0.shape[0])
    abar = schedule.alpha_bar[k]  # (B,)
    return _per_sample(abar.sqrt(), x0) * x0 + _per_sample((1 - abar).sqrt(), x0) * eps  # Eq. (4)


def posterior(schedule: Schedule, x0: Tensor, x_k: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (B, ...) and variance (B, 1, ..., 1) of q(x_{k-1} | x_k, x0) (DDPM Eq. (6)-(7)).

    x0, x_k: (B, ...); k: (B,) LongTensor in 0..T-1 (k = 0: alpha_bar_prev = 1, so mean x0, variance 0).
    """
    _same_shape("x0", x0, "x_k", x_k)
    k = _check_k(schedule, k, x0.shape[0])
    beta, abar, abar_prev = schedule.betas[k], schedule.alpha_bar[k], schedule.alpha_bar_prev[k]
    c1 = beta * abar_prev.sqrt() / (1 - abar)  # coefficient of x0, Eq. (7)
    c2 = (1 - abar_prev) * (1 - beta).sqrt() / (1 - abar)  # coefficient of x_k, Eq. (7)
    var = beta * (1 - abar_prev) / (1 - abar)  # beta_tilde, Eq. (7)
    return _per_sample(c1, x_k) * x0 + _per_sample(c2, x_k) * x_k, _per_sample(var, x_k)


def predict_x0(schedule: Schedule, x_k: Tensor, k: Tensor, eps_hat: Tensor) -> Tensor:
    """x0_hat = (x_k - sqrt(1 - alpha_bar_k) eps_hat) / sqrt(alpha_bar_k) (DDPM Eq. (15), DDIM Eq. (9))."""
    _same_shape("x_k", x_k, "eps_hat", eps_hat)
    k = _check_k(schedule, k, x_k.shape[0])
    abar = schedule.alpha_bar[k]
    return (x_k - _per_sample((1 - abar).sqrt(), x_k) * eps_hat) / _per_sample(abar.sqrt(), x_k)


def eps_loss_per_sample(eps_hat: Tensor, eps: Tensor) -> Tensor:
    """||eps - eps_hat||^2 averaged over each sample's entries: (B, ...) -> (B,) (DDPM Eq. (14), "meanflat")."""
    _same_shape("eps_hat", eps_hat, "eps", eps)
    return (eps - eps_hat).pow(2).flatten(1).mean(1)


def eps_loss(eps_hat: Tensor, eps: Tensor) -> Tensor:
    """L_simple (DDPM Eq. (14)): the batch mean of :func:`eps_loss_per_sample`."""
    return eps_loss_per_sample(eps_hat, eps).mean()


# ----------------------------------------------------------------------------- samplers


def ddim_step(schedule: Schedule, eps_hat: Tensor, x_k: Tensor, k: int, k_prev: int, eta: float = 0.0,
              noise: Tensor | None = None) -> Tensor:
    """One DDIM update from step k to step k_prev < k (Song et al. Eq. (12) with sigma from Eq. (16)).

    ``eps_hat`` (B, ...) is the network's noise prediction at (x_k, k); ``k_prev = -1`` means alpha_bar_prev = 1
    (the last step, to x0); ``eta = 0`` is deterministic, 1 on consecutive steps is DDPM's step; ``noise``
    (B, ...) ~ N(0, I) is needed when sigma > 0.
    """
    _same_shape("eps_hat", eps_hat, "x_k", x_k)
    k = check_positive_int("k", k, minimum=0)
    k_prev = check_positive_int("k_prev", k_prev, minimum=-1)
    if k >= schedule.T or k_prev >= k:
        raise ValueError(f"k must be in 0..{schedule.T - 1} and k_prev in -1..k-1, got k={k}, k_prev={k_prev}")
    eta = check_number("eta", eta, low=0)
    abar = float(schedule.alpha_bar[k])
    abar_prev = 1.0 if k_prev < 0 else float(schedule.alpha_bar[k_prev])
    # 1. predict x0 (Eq. (9))
    x0_hat = (x_k - math.sqrt(1 - abar) * eps_hat) / math.sqrt(abar)
    # 2. sigma_k(eta) (Eq. (16)); eta = 1 gives the posterior variance beta_tilde of the two steps
    var = eta**2 * (1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)
    # 3. x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z (Eq. (12))
    x_prev = math.sqrt(abar_prev) * x0_hat + math.sqrt(max(1 - abar_prev - var, 0.0)) * eps_hat
    if var > 0:
        if noise is None:
            raise ValueError(f"noise must be given when sigma > 0 (eta={eta}, k={k}, k_prev={k_prev})")
        _same_shape("noise", noise, "x_k", x_k)
        x_prev = x_prev + math.sqrt(var) * noise
    return x_prev


class Samples(NamedTuple):
    """A sampler's output: ``x`` (B, ...) on the CPU, ``nfe`` calls, ``trajectory`` (S + 1, B, ...) or None."""

    x: Tensor
    nfe: int
    trajectory: Tensor | None


@contextlib.contextmanager
def _sampling(eps_model: EpsModel, shape: tuple[int, ...], device: torch.device | str | None):
    """Check ``shape``, pick the device (the model's, else the CPU), run a module in eval mode, restore it."""
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) < 2 \
            or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"shape must be (B, ...) with positive integers, at least 2 entries, got {shape!r}")
    module = eps_model if isinstance(eps_model, nn.Module) else nn.Identity()
    first, was_training = next(module.parameters(), None), module.training
    module.eval()
    try:
        yield torch.device(device) if device is not None else first.device if first is not None else torch.device("cpu")
    finally:
        module.train(was_training)


def _noise(shape, generator, device) -> Tensor:
    return torch.randn(*shape, generator=generator).to(device)  # drawn on the CPU: the same on any device


@torch.no_grad()
def sample_ddpm(eps_model: EpsModel, schedule: Schedule, shape: tuple[int, ...],
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                trajectory: bool = False) -> Samples:
    """Ancestral sampling, DDPM Algorithm 2: T network calls (respace the schedule for fewer).

    ``eps_model(x, k)`` is called with ``schedule.timesteps[k]`` (in eval mode if a module); pass the
    training schedule, or ``schedule.respace(S)`` for S steps. ``shape`` is (B, ...); ``generator`` (CPU)
    draws x_T and every step's noise; ``trajectory=True`` keeps x after every step.
    """
    with _sampling(eps_model, shape, device) as device:
        x = _noise(shape, generator, device)  # x_T ~ N(0, I)
        path, nfe = [x.cpu()], 0
        for k in range(schedule.T - 1, -1, -1):
            kk = torch.full((shape[0],), k, dtype=torch.long)  # row k of the schedule
            # 1. predict the noise with the network at its own step
            eps_hat = eps_model(x, schedule.timesteps[kk].to(device))
            nfe += 1
            # 2. predict x0 (Eq. (15))
            x0_hat = predict_x0(schedule, x, kk, eps_hat)
            # 3. posterior mean and variance of q(x_{k-1} | x_k, x0_hat) (Eq. (7)); with 2. this is Eq. (11)
            mean, var = posterior(schedule, x0_hat, x, kk)
            # 4. add sigma z, sigma^2 = beta_tilde, unless k = 0 (Algorithm 2, line 4)
            x = mean + var.sqrt() * _noise(shape, generator, device) if k > 0 else mean
            if trajectory:
                path.append(x.cpu())
    return Samples(x.cpu(), nfe, torch.stack(path) if trajectory else None)


@torch.no_grad()
def sample_ddim(eps_model: EpsModel, schedule: Schedule, shape: tuple[int, ...], steps: int, eta: float = 0.0,
                generator: torch.Generator | None = None, device: torch.device | str | None = None,
                trajectory: bool = False) -> Samples:
    """DDIM on ``steps`` = S in 1..T kept steps of ``schedule`` (:func:`spaced_steps`; Song et al. Sec. 4.2): S calls.

    ``eta = 0`` is deterministic, ``eta = 1`` is DDPM's ancestral sampler on the respaced schedule;
    the other arguments are those of :func:`sample_ddpm`.
    """
    kept = spaced_steps(schedule.T, steps).tolist()
    eta = check_number("eta", eta, low=0)
    with _sampling(eps_model, shape, device) as device:
        x = _noise(shape, generator, device)  # x_T ~ N(0, I)
        path, nfe = [x.cpu()], 0
        for i in range(len(kept) - 1, -1, -1):
            k, k_prev = kept[i], kept[i - 1] if i > 0 else -1
            # 1. predict the noise at step k
            eps_hat = eps_model(x, schedule.timesteps[k].repeat(shape[0]).to(device))
            nfe += 1
            # 2. jump to k_prev (Eq. (12)); fresh noise only when sigma > 0
            noise = None if eta == 0 or k_prev < 0 else _noise(shape, generator, device)
            x = ddim_step(schedule, eps_hat, x, k, k_prev, eta, noise)
            if trajectory:
                path.append(x.cpu())
    return Samples(x.cpu(), nfe, torch.stack(path) if trajectory else None)


# ----------------------------------------------------------------------------- the exact denoiser


class MixtureDenoiser:
    r"""The exact eps predictor E[eps | x_k] for data from a Gaussian mixture (no training). Component
    N(mu_j, s^2 I) diffuses to N(sqrt(abar) mu_j, v I), v = abar s^2 + 1 - abar; with its responsibility
    r_j(x_k) and c = sqrt(abar) s^2 / v (float64 inside; returns x_k's dtype):

    .. math::
        \mathbb E[x_0 | x_k] = \sum_j r_j(x_k)\big(\mu_j + c\,(x_k - \sqrt{\bar\alpha_k}\mu_j)\big)
            = (1 - c\sqrt{\bar\alpha_k}) \sum_j r_j \mu_j + c\, x_k, \qquad
        \mathbb E[\epsilon | x_k] = \frac{x_k - \sqrt{\bar\alpha_k}\,\mathbb E[x_0 | x_k]}{\sqrt{1 - \bar\alpha_k}}.
    """

    def __init__(self, mixture: GaussianMixture, schedule: Schedule):
        if not isinstance(mixture, GaussianMixture):
            raise ValueError(f"mixture must be a ganref.data.GaussianMixture, got {type(mixture).__name__}")
        self.mixture, self.schedule = mixture, schedule

    def x0(self, x_k: Tensor, k: Tensor) -> Tensor:
        """E[x0 | x_k] (B, D), float64 on the CPU."""
        if x_k.ndim != 2 or x_k.shape[1] != self.mixture.dim:
            raise ValueError(f"x_k must have shape (B, {self.mixture.dim}), got {tuple(x_k.shape)}")
        k = _check_k(self.schedule, k, x_k.shape[0])
        x = x_k.detach().cpu().double()  # (B, D)
        mu, s2 = self.mixture.means.double(), self.mixture.std**2  # (K, D)
        a = self.schedule.alpha_bar[k][:, None]  # (B, 1)
        v = a * s2 + 1 - a  # (B, 1) variance of every diffused component
        # log N(x; sqrt(a) mu_j, v I) up to terms equal for all j (equal weights and variances)
        logits = (a.sqrt() * (x @ mu.T) - 0.5 * a * mu.pow(2).sum(1)[None]) / v  # (B, K)
        r = torch.softmax(logits, dim=1)  # (B, K) responsibilities
        c = a.sqrt() * s2 / v  # (B, 1) slope of each component's posterior mean
        return (1 - c * a.sqrt()) * (r @ mu) + c * x  # (B, D)

    def __call__(self, x_k: Tensor, k: Tensor) -> Tensor:
        x0 = self.x0(x_k, k)
        a = self.schedule.alpha_bar[k.cpu()][:, None]
        return ((x_k.detach().cpu().double() - a.sqrt() * x0) / (1 - a).sqrt()).to(x_k.device, x_k.dtype)


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class DDPMConfig:
    """Training of the eps-predictor with L_simple (DDPM Algorithm 1); ``lr`` may be a number or a ``Ramp``."""

    lr: float | Ramp = Ramp(0.0, 2e-4, 5000, "linear")  # 2e-4 after 5,000 warm-up steps (Ho's run_cifar.py)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's defaults (Ho et al. use Adam; no betas stated)
    grad_clip: float = 1.0  # clip the gradient norm at 1 (Ho's run_cifar.py)
    ema_decay: float = 0.9999  # EMA of the weights, decay 0.9999 (Ho et al. Appendix B)

    def __post_init__(self) -> None:
        check_scheduled("lr", self.lr, low=0, low_open=not isinstance(self.lr, Ramp))  # a ramp may start at 0
        check_betas("betas", self.betas)
        check_positive("grad_clip", self.grad_clip)
        check_number("ema_decay", self.ema_decay, low=0, high=1, high_open=True)


def make_optimizers(model: nn.Module, cfg: DDPMConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam on the eps-predictor, under the name ``"eps"`` (the name :func:`ddpm_step` reads)."""
    check_config(cfg, DDPMConfig, "ddpm.make_optimizers")
    return {"eps": torch.optim.Adam(model.parameters(), lr=value_at(cfg.lr, 0), betas=cfg.betas)}


def ddpm_step(state: State, x0: Tensor, cfg: DDPMConfig, schedule: Schedule) -> dict[str, Tensor]:
    """DDPM Algorithm 1 on ``x0`` (B, ...): one Adam update of ``state.modules["eps"]`` on L_simple.

    For :func:`ganref.train.fit` bind ``functools.partial(ddpm_step, cfg=cfg, schedule=schedule)``.
    Returns ``loss`` and ``grad_norm`` (before clipping)."""
    check_config(cfg, DDPMConfig, "ddpm.ddpm_step")
    model, opt = state.modules["eps"], state.optimizers["eps"]
    set_lr(opt, value_at(cfg.lr, state.step))

    # --- eps_theta minimizes E_{k, x0, eps} || eps - eps_theta(sqrt(abar_k) x0 + sqrt(1 - abar_k) eps, k) ||^2
    #     k ~ U{0..T-1}, eps ~ N(0, I)                                                  Eq. (14), Algorithm 1
    k = torch.randint(0, schedule.T, (x0.shape[0],), generator=state.generator)  # (B,)
    eps = state.randn(*x0.shape)  # (B, ...)
    x_k = q_sample(schedule, x0, k, eps)  # Eq. (4)
    loss = eps_loss(model(x_k, schedule.timesteps[k].to(x0.device)), eps)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return {"loss": loss.detach(), "grad_norm": grad_norm.detach()}
