r"""Distilling a diffusion model into a one-step generator: regression + conditional GAN, and DMD2.

- **Diffusion2GAN**: Minguk Kang et al. *Distilling Diffusion Models into Conditional GANs.* ECCV 2024.
  arXiv:2405.05967.
- **DMD**: Tianwei Yin et al. *One-step Diffusion with Distribution Matching Distillation.* CVPR 2024. arXiv:2311.18828.
- **DMD2**: Tianwei Yin et al. *Improved Distribution Matching Distillation for Fast Image Synthesis.*
  NeurIPS 2024. arXiv:2405.14867.

A teacher eps-network (chapter 08) maps noise z to data by its deterministic DDIM ODE; a student G(z)
does it in one call. **Diffusion2GAN** regresses G on the teacher's pairs (z, x) and adds a
conditional GAN whose D sees the pair (z, x):

.. math::
    L_G = d(G(z), x) + \lambda_{\rm GAN}\, \mathbb E_z[-\log D(z, G(z))], \qquad
    L_D = -\mathbb E[\log D(z, x)] - \mathbb E[\log(1 - D(z, G(z)))] .

**DMD** matches distributions: with :math:`\mu(x_k, k)` the x0-prediction of a denoiser, the gradient of
KL(p_fake || p_real) w.r.t. a sample x is (DMD Eq. (7)-(8), DMD2 Eq. (2))

.. math::
    \nabla_x \mathrm{KL} \approx \frac{\mu_{\rm fake}(x_k, k) - \mu_{\rm real}(x_k, k)}
        {\mathrm{mean}_{C,H,W}\,|x - \mu_{\rm real}(x_k, k)|}, \qquad x_k = \sqrt{\bar\alpha_k}x + \sqrt{1-\bar\alpha_k}\epsilon,

with :math:`\mu_{\rm real}` the frozen teacher and :math:`\mu_{\rm fake}` a copy of it trained with the
denoising loss on the student's samples. DMD2 drops DMD's regression term, updates the fake score
``d_steps`` = 5 times per generator update (two time-scale rule) and puts a GAN head on the fake
score's bottleneck features (non-saturating, G weight 3e-3, D weight 1e-2).

Deviations from the papers:

- The perceptual distance is LPIPS with unit weights on the book's digits classifier's conv layers
  (``DigitsClassifier.perceptual``), not E-LatentLPIPS (Diffusion2GAN) or VGG LPIPS (DMD); on 2-D data
  it is plain MSE. (FID reads the same network's last hidden layer: related features, not the loss
  itself.) Diffusion2GAN's D is a fresh conditional net (z and x concatenated), not the teacher U-Net;
  no R1, multi-scale or mix-and-match.
- Teacher and fake score predict eps (chapter 08); mu = x0_hat from eps. DMD's t ~ U[0.02T, 0.98T] is
  kept as fractions of the discrete k in 0..T-1; the fake score trains on every k.
- The student is the teacher's network evaluated at the fixed step k = T - 1, initialized from the
  teacher's weights, its output read as x (DMD initializes from the teacher's x0-prediction at T).
- Adam on small nets with short budgets, not AdamW at lr 2e-6 on ImageNet-size batches; no backward simulation.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ganref.checkpoint import cached_arrays, key_digest, weights_sha256
from ganref.losses import d_loss_minimax, g_loss_nonsaturating
from ganref.methods.ddpm import Schedule, eps_loss, predict_x0, q_sample, sample_ddim
from ganref.schedules import Ramp, check_scheduled, set_lr, value_at
from ganref.train import State
from ganref.unet import MLPDenoiser, UNet8
from ganref.utils import check_betas, check_choice, check_config, check_number, check_positive_int

__all__ = ["ode_pairs", "cached_ode_pairs", "pair_sampler", "Student", "ConditionalD", "GANHead",
           "regression_loss", "dm_gradient", "dm_loss", "D2GConfig", "DMD2Config", "make_optimizers",
           "d2g_step", "dmd2_step", "init_from"]

Features = Callable[[Tensor], Tensor]  # image -> (B, F) differentiable features, e.g. DigitsClassifier.perceptual


# ----------------------------------------------------------------------------- the teacher's ODE pairs


def ode_pairs(eps_model: Callable, schedule: Schedule, shape: tuple[int, ...], n: int, steps: int = 50,
              seed: int = 0, chunk: int = 500, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """``n`` pairs (z, x): x is the teacher's DDIM (eta = 0) sample from x_T = z (Song et al. Eq. (12)).

    Chunk i is ``sample_ddim(eps_model, schedule, (b, *shape), steps, 0.0, Generator().manual_seed(seed + i))``
    and z its first draw of that generator (reproducible from ``seed``). Returns z, x: (n, *shape) float32, CPU.
    """
    n, chunk = check_positive_int("n", n), check_positive_int("chunk", chunk)
    zs, xs = [], []
    for i, start in enumerate(tqdm(range(0, n, chunk), desc=f"teacher ODE pairs (DDIM-{steps})", leave=False)):
        b = min(chunk, n - start)
        zs.append(torch.randn(b, *shape, generator=torch.Generator().manual_seed(seed + i)))  # x_T of the chunk
        xs.append(sample_ddim(eps_model, schedule, (b, *shape), steps, 0.0,
                              torch.Generator().manual_seed(seed + i), device).x)
    return torch.cat(zs), torch.cat(xs)


def cached_ode_pairs(folder: str | os.PathLike, name: str, eps_model: nn.Module, schedule: Schedule,
                     shape: tuple[int, ...], n: int, steps: int = 50, seed: int = 0, chunk: int = 500,
                     device: torch.device | str | None = None, **settings: object) -> tuple[Tensor, Tensor]:
    """:func:`ode_pairs` cached in ``folder`` as ``<name>_<key digest>.npz``.

    The key holds ``settings`` (profile, data, ...), the sampler's arguments and the SHA-256 of the
    teacher's weights, so another teacher or setting gets a file of its own; a file whose stored key is not
    the one its name promises is refused and left as it is (:func:`ganref.checkpoint.cached_arrays`)."""
    key = dict(settings, shape=list(shape), n=n, steps=steps, seed=seed, chunk=chunk,
               weights_sha256=weights_sha256(eps_model))
    path = os.path.join(folder, f"{name}_{key_digest(key)}.npz")
    arrays = cached_arrays(path, key, lambda: dict(zip(("z", "x"), ode_pairs(eps_model, schedule, shape, n, steps,
                                                                              seed, chunk, device))))
    return arrays["z"], arrays["x"]


def pair_sampler(z: Tensor, x: Tensor, real: Tensor, batch_size: int, device: torch.device | str = "cpu"):
    """``sampler(generator) -> (z_b, x_b, real_b)``: random teacher pairs and, drawn apart, real data rows."""
    if z.shape != x.shape or real.shape[1:] != x.shape[1:]:
        raise ValueError(f"z {tuple(z.shape)}, x {tuple(x.shape)} and real {tuple(real.shape)} must share their row shape")
    batch_size = check_positive_int("batch_size", batch_size)

    def sampler(generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        i = torch.randint(len(z), (batch_size,), generator=generator)
        j = torch.randint(len(real), (batch_size,), generator=generator)
        return z[i].to(device), x[i].to(device), real[j].to(device)

    sampler.fingerprint = f"pairs{tuple(z.shape)}-real{tuple(real.shape)}-b{batch_size}"
    return sampler


# ----------------------------------------------------------------------------- networks


class Student(nn.Module):
    """One-step G(z) = net(z, k_fix): a denoiser network at a fixed step, its output read as x (B, *shape).

    ``z_dim`` = prod(shape), so ``nets.sample`` works; z may come flat (B, z_dim) or shaped (B, *shape).
    """

    def __init__(self, net: nn.Module, shape: tuple[int, ...], k: int):
        super().__init__()
        self.net, self.shape, self.k = net, tuple(shape), check_positive_int("k", k, minimum=0)
        self.z_dim = int(np.prod(self.shape))

    def forward(self, z: Tensor) -> Tensor:
        z = z.reshape(z.shape[0], *self.shape)  # (B, *shape)
        return self.net(z, torch.full((z.shape[0],), self.k, dtype=torch.long, device=z.device))


class ConditionalD(nn.Module):
    """Diffusion2GAN's conditional D(z, x) -> logit (B,): z and x joined (features for points, channels
    for images) and passed to ``net`` (``nets.MLPDiscriminator(4)`` or ``nets.ConvDiscriminator(2)``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        if z.shape != x.shape:
            raise ValueError(f"z has shape {tuple(z.shape)} but x has {tuple(x.shape)}: D sees matching pairs")
        return self.net(torch.cat([z, x], dim=1)).reshape(-1)  # (B,)


def _bottleneck(net: nn.Module) -> tuple[nn.Module, bool]:  # where the GAN head reads: (module, its input?)
    if isinstance(net, MLPDenoiser):
        return net.out, True  # SiLU(h) before the output layer, (B, hidden)
    if isinstance(net, UNet8):
        return net.mid, False  # the middle block's output, (B, 2w, H/4, W/4)
    raise ValueError(f"the GAN head reads MLPDenoiser or UNet8 features, got {type(net).__name__}")


class GANHead(nn.Module):
    """DMD2's classifier on the fake score's bottleneck: features(fake_net(x_k, k)) -> logit (B,), an MLP
    (DMD2: conv/GroupNorm stack)."""

    def __init__(self, fake_net: nn.Module, example: Tensor, hidden: int = 64):
        super().__init__()
        self._where = _bottleneck(fake_net)
        with torch.no_grad():  # one dry run sizes the MLP
            f = self.features(fake_net, example[:2], torch.zeros(2, dtype=torch.long, device=example.device))
        self.mlp = nn.Sequential(nn.Linear(f.shape[1], hidden), nn.SiLU(), nn.Linear(hidden, 1)).to(example.device)

    def features(self, fake_net: nn.Module, x_k: Tensor, k: Tensor) -> Tensor:
        module, read_input = self._where
        got: list[Tensor] = []
        hook = (module.register_forward_pre_hook(lambda m, a: got.append(a[0])) if read_input else
                module.register_forward_hook(lambda m, a, out: got.append(out)))
        try:
            fake_net(x_k, k)
        finally:
            hook.remove()
        return got[0].flatten(1)  # (B, F)

    def forward(self, fake_net: nn.Module, x_k: Tensor, k: Tensor) -> Tensor:
        return self.mlp(self.features(fake_net, x_k, k)).reshape(-1)  # (B,)


# ----------------------------------------------------------------------------- losses


def regression_loss(x_hat: Tensor, x: Tensor, features: Features | None = None) -> Tensor:
    """d(G(z), x): squared distance of ``features(.)`` (the perceptual variant, e.g.
    ``DigitsClassifier.perceptual``; E-LatentLPIPS in Diffusion2GAN Eq. (3)), or of the samples themselves
    when ``features`` is None (the MSE ablation); summed over features, averaged over the batch."""
    if x_hat.shape != x.shape:
        raise ValueError(f"student output has shape {tuple(x_hat.shape)} but the teacher's x has {tuple(x.shape)}")
    if features is not None:
        x_hat, x = features(x_hat), features(x)  # (B, F)
    return (x_hat - x).pow(2).flatten(1).sum(1).mean()


def dm_gradient(mu_fake: Tensor, mu_real: Tensor, x: Tensor) -> Tensor:
    """DMD's distribution-matching gradient per sample, (mu_fake - mu_real) / mean_{C,H,W} |x - mu_real|
    (DMD Eq. (7)-(8) with its weight w_t; DMD2 Eq. (2)); all (B, ...), returns (B, ...), NaN set to 0."""
    if not (mu_fake.shape == mu_real.shape == x.shape):
        raise ValueError(f"mu_fake {tuple(mu_fake.shape)}, mu_real {tuple(mu_real.shape)} and x {tuple(x.shape)} "
                         "must have the same (B, ...) shape")
    norm = (x - mu_real).abs().flatten(1).mean(1).view(-1, *([1] * (x.ndim - 1)))  # (B, 1, ...)
    return torch.nan_to_num((mu_fake - mu_real) / norm)


def dm_loss(x: Tensor, grad: Tensor) -> Tensor:
    """0.5 * mean((x - stopgrad(x - grad))^2): a loss whose gradient w.r.t. x is grad / x.numel()."""
    return 0.5 * nn.functional.mse_loss(x, (x - grad).detach())


@dataclass(frozen=True)
class D2GConfig:
    """Diffusion2GAN-style student: regression to the teacher's pairs + lambda * conditional GAN."""

    lr: float | Ramp = 1e-4
    # book's choice: Diffusion2GAN does not state its optimizer settings for the student (a Ramp decays it)
    betas: tuple[float, float] = (0.5, 0.999)
    # book's choice (the GAN chapters' Adam betas)
    lam_gan: float = 0.1
    # book's choice: Diffusion2GAN does not state lambda_GAN (GunwooHan/E-LatentLPIPS#5); 0 = regression only
    regression: str = "feature"
    # Diffusion2GAN: a perceptual distance (E-LatentLPIPS); "mse" is its Table ablation
    d_steps: int = 1
    # Diffusion2GAN: one D step per G step

    def __post_init__(self) -> None:
        check_scheduled("lr", self.lr, low=0, low_open=True)
        check_betas("betas", self.betas)
        check_number("lam_gan", self.lam_gan, low=0)
        check_choice("regression", self.regression, ("feature", "mse"))
        check_positive_int("d_steps", self.d_steps)


@dataclass(frozen=True)
class DMD2Config:
    """DMD2: distribution matching + two time-scale fake-score updates + optional GAN head and DMD regression."""

    lr: float | Ramp = 1e-4
    # book's choice for tiny nets (DMD2 ImageNet: AdamW 2e-6); a Ramp decays it
    betas: tuple[float, float] = (0.9, 0.999)
    # DMD2: AdamW (0.9, 0.999)
    d_steps: int = 5
    # DMD2: dfake_gen_update_ratio 5 (ImageNet, SDXL); 1 is DMD's 1:1
    t_min: float = 0.02
    # DMD: t ~ U[0.02 T, 0.98 T]
    t_max: float = 0.98
    # DMD: t ~ U[0.02 T, 0.98 T]
    gan_g_weight: float = 3e-3
    # DMD2 ImageNet: gen_cls_loss_weight 3e-3; 0 turns the GAN head off
    gan_d_weight: float = 1e-2
    # DMD2: guidance_cls_loss_weight 1e-2
    lam_reg: float = 0.0
    # DMD2 drops it; DMD uses 0.25 (0.5 for unconditional CIFAR)
    regression: str = "feature"
    # DMD: LPIPS (here DigitsClassifier.perceptual), "mse" for points

    def __post_init__(self) -> None:
        check_scheduled("lr", self.lr, low=0, low_open=True)
        check_betas("betas", self.betas)
        check_positive_int("d_steps", self.d_steps)
        check_number("t_min", self.t_min, low=0, high=1, low_open=True)
        check_number("t_max", self.t_max, low=0, high=1, low_open=True)
        if self.t_min > self.t_max:
            raise ValueError(f"t_min must be <= t_max, got t_min={self.t_min}, t_max={self.t_max}")
        for name in ("gan_g_weight", "gan_d_weight", "lam_reg"):
            check_number(name, getattr(self, name), low=0)
        check_choice("regression", self.regression, ("feature", "mse"))


def make_optimizers(modules: dict[str, nn.Module], cfg: D2GConfig | DMD2Config) -> dict[str, torch.optim.Optimizer]:
    """Adam for "G" and for "D" (Diffusion2GAN's ConditionalD) or "fake" (+ "head"; DMD2)."""
    check_config(cfg, (D2GConfig, DMD2Config), "distill.make_optimizers")
    lr = value_at(cfg.lr, 0)
    opts = {"G": torch.optim.Adam(modules["G"].parameters(), lr=lr, betas=cfg.betas)}
    if "D" in modules:
        opts["D"] = torch.optim.Adam(modules["D"].parameters(), lr=lr, betas=cfg.betas)
    if "fake" in modules:
        params = [*modules["fake"].parameters(), *(modules["head"].parameters() if "head" in modules else [])]
        opts["fake"] = torch.optim.Adam(params, lr=lr, betas=cfg.betas)
    return opts


def _set_lrs(state: State, cfg: D2GConfig | DMD2Config) -> None:  # every optimizer at the step's lr
    for opt in state.optimizers.values():
        set_lr(opt, value_at(cfg.lr, state.step))


def _distance_features(cfg: D2GConfig | DMD2Config, features: Features | None) -> Features | None:
    if cfg.regression == "mse":
        return None
    if features is None:
        raise ValueError("cfg.regression is 'feature' but no features= was given: pass a differentiable "
                         "image -> (B, F) map such as classifier.perceptual, or set regression='mse'")
    return features


def _check_pair(G: nn.Module, z: Tensor, x: Tensor) -> None:
    if z.shape != x.shape or tuple(z.shape[1:]) != G.shape:
        raise ValueError(f"teacher pairs z {tuple(z.shape)}, x {tuple(x.shape)} do not match the student's shape {G.shape}")


# ----------------------------------------------------------------------------- steps


def d2g_step(state: State, batch: tuple[Tensor, Tensor, Tensor], cfg: D2GConfig,
             features: Features | None = None) -> dict[str, Tensor]:
    """Diffusion2GAN-style step on teacher pairs ``batch = (z, x, real)`` (``real`` is unused here)."""
    check_config(cfg, D2GConfig, "distill.d2g_step")
    G, (z, x, _) = state.modules["G"], batch
    _check_pair(G, z, x)
    _set_lrs(state, cfg)
    out: dict[str, Tensor] = {}

    # --- D maximizes E log D(z, x_teacher) + E log(1 - D(z, G(z)))           Diffusion2GAN Sec. 3.2
    for _ in range(cfg.d_steps if cfg.lam_gan > 0 else 0):
        d_loss = d_loss_minimax(state.modules["D"](z, x), state.modules["D"](z, G(z).detach()))
        state.optimizers["D"].zero_grad(set_to_none=True)
        d_loss.backward()
        state.optimizers["D"].step()
        out["d_loss"] = d_loss.detach()

    # --- G minimizes d(G(z), x) + lambda_GAN * E[-log D(z, G(z))]             Diffusion2GAN Eq. (3)-(4)
    reg = regression_loss(x_hat := G(z), x, _distance_features(cfg, features))
    g_loss = reg + (cfg.lam_gan * g_loss_nonsaturating(state.modules["D"](z, x_hat)) if cfg.lam_gan > 0 else 0.0)
    state.optimizers["G"].zero_grad(set_to_none=True)
    g_loss.backward()
    state.optimizers["G"].step()
    return {**out, "g_loss": g_loss.detach(), "regression": reg.detach()}


def dmd2_step(state: State, batch: tuple[Tensor, Tensor, Tensor], cfg: DMD2Config, schedule: Schedule,
              teacher: nn.Module, features: Features | None = None) -> dict[str, Tensor]:
    """DMD2 step: ``cfg.d_steps`` fake-score (+ GAN head) updates, then one generator update.

    ``batch = (z_pair, x_pair, real)``: teacher pairs (used only when ``cfg.lam_reg > 0``, DMD) and real data
    (the GAN head's positives). ``teacher`` is the frozen eps-network (the real score)."""
    check_config(cfg, DMD2Config, "distill.dmd2_step")
    G, fake, opt_f = state.modules["G"], state.modules["fake"], state.optimizers["fake"]
    z_pair, x_pair, real = batch
    _check_pair(G, z_pair, x_pair)
    _set_lrs(state, cfg)
    head = state.modules.get("head") if cfg.gan_g_weight > 0 or cfg.gan_d_weight > 0 else None
    B, T, ks = real.shape[0], schedule.T, schedule.timesteps  # ks: the network's step of each schedule row

    def noised(x: Tensor, k: Tensor) -> Tensor:
        return q_sample(schedule, x, k, state.randn(*x.shape))  # x_k ~ q(x_k | x), DDPM Eq. (4)

    # --- fake score minimizes E ||eps - eps_fake(x_k, k)||^2 on x = stopgrad(G(z)), k ~ U{0..T-1}   DMD Eq. (6)
    #     GAN head (with the fake trunk) maximizes E log C(real_k) + E log(1 - C(G(z)_k))     DMD2 Sec. 4.3
    for _ in range(cfg.d_steps):
        x = G(state.randn(B, G.z_dim)).detach()
        k = torch.randint(0, T, (B,), generator=state.generator)
        eps = state.randn(*x.shape)
        loss = fake_loss = eps_loss(fake(q_sample(schedule, x, k, eps), ks[k].to(x.device)), eps)
        if head is not None:
            kr, kf = (torch.randint(0, T, (B,), generator=state.generator) for _ in range(2))
            d_loss = d_loss_minimax(head(fake, noised(real, kr), ks[kr].to(x.device)),
                                    head(fake, noised(x, kf), ks[kf].to(x.device)))
            loss = loss + cfg.gan_d_weight * d_loss
        opt_f.zero_grad(set_to_none=True)
        loss.backward()
        opt_f.step()

    # --- G minimizes KL(p_fake || p_real) through 0.5 ||x - sg(x - grad)||^2, k ~ U[t_min T, t_max T)  DMD Eq. (7)
    #     + gan_g_weight * E[-log C(G(z)_k)] (DMD2) + lam_reg * d(G(z_pair), x_pair) (DMD Eq. (9))
    x = G(state.randn(B, G.z_dim))
    lo, hi = int(cfg.t_min * T), max(int(cfg.t_min * T) + 1, int(cfg.t_max * T))
    k = torch.randint(lo, min(hi, T), (B,), generator=state.generator)
    with torch.no_grad():
        x_k = noised(x.detach(), k)
        mu_real = predict_x0(schedule, x_k, k, teacher(x_k, ks[k].to(x.device)))  # x0_hat of the teacher
        mu_fake = predict_x0(schedule, x_k, k, fake(x_k, ks[k].to(x.device)))  # x0_hat of the fake score
        grad = dm_gradient(mu_fake, mu_real, x.detach())
    g_loss = dm_loss(x, grad)
    out = {"fake_loss": fake_loss.detach(), "dm_loss": g_loss.detach()}
    if head is not None:
        kg = torch.randint(0, T, (B,), generator=state.generator)
        g_gan = g_loss_nonsaturating(head(fake, noised(x, kg), ks[kg].to(x.device)))
        g_loss = g_loss + cfg.gan_g_weight * g_gan
        out.update(d_loss=d_loss.detach(), g_gan=g_gan.detach())
    if cfg.lam_reg > 0:
        reg = regression_loss(G(z_pair), x_pair, _distance_features(cfg, features))
        g_loss = g_loss + cfg.lam_reg * reg
        out["regression"] = reg.detach()
    state.optimizers["G"].zero_grad(set_to_none=True)
    g_loss.backward()
    state.optimizers["G"].step()
    fake.zero_grad(set_to_none=True)  # the G loss reached the fake net through the head; the fake steps own it
    return {**out, "g_loss": g_loss.detach()}


def init_from(net: nn.Module) -> nn.Module:
    """A trainable copy of ``net`` (student and fake score start from the teacher, DMD Sec. 3)."""
    return copy.deepcopy(net).requires_grad_(True).train()
