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
  here the caller hands the step all of them at once, a batch of ``n_critic * B`` rows (see
  :func:`critic_batch_size`), which the step splits into ``n_critic`` chunks of ``B``.
- ``r1r2_step`` pairs R1 + R2 with the non-saturating loss of Goodfellow et al. 2014, not with
  R3GAN's relativistic pairing loss (RpGAN); the penalties are the ones R3GAN adds. R3GAN's
  schedules (lr 2e-4 -> 5e-5, Adam beta2 0.9 -> 0.99, gamma decayed 10x) are replaced by constants.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torch import Tensor, nn

from ganref.data import split_batch
from ganref.losses import d_loss_minimax, g_loss_nonsaturating
from ganref.train import State
from ganref.utils import check_positive_int

__all__ = [
    "WGANConfig", "WGANGPConfig", "R1R2Config", "make_optimizers", "critic_batch_size",
    "critic_loss", "generator_loss", "clip_weights", "gradient_penalty", "r1_penalty", "r2_penalty",
    "wgan_step", "wgan_gp_step", "r1r2_step", "exact_w1", "critic_weight_stats",
    "critic_gradient_norms", "critic_layer_gradient_norms", "critic_activation_gradient_norms",
]

Critic = Callable[[Tensor], Tensor]


# ----------------------------------------------------------------------------- configs


def _check_number(name: str, value: object, *, positive: bool) -> float:
    """``value`` as a float; a finite number > 0 (``positive``) or >= 0, else a ValueError naming ``name``."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value)) and (float(value) > 0 if positive else float(value) >= 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return float(value)


def _check_betas(betas: object) -> None:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2
            and all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")


@dataclass
class WGANConfig:
    """WGAN, Algorithm 1 of Arjovsky et al. 2017: RMSProp, lr 5e-5, clip c = 0.01, 5 critic steps."""

    lr: float = 5e-5
    c: float = 0.01
    n_critic: int = 5

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, positive=True)
        _check_number("c", self.c, positive=True)
        check_positive_int("n_critic", self.n_critic)


@dataclass
class WGANGPConfig:
    """WGAN-GP, Algorithm 1 of Gulrajani et al. 2017: Adam lr 1e-4, lambda 10, 5 critic steps.

    ``betas=(0.5, 0.9)`` as in the authors' toy script (Algorithm 1 states beta1 = 0). That 2-D toy
    script also uses ``gp_weight=0.1``, 3x512 ReLU MLPs and batch 256.
    """

    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    n_critic: int = 5
    gp_weight: float = 10.0

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, positive=True)
        _check_betas(self.betas)
        check_positive_int("n_critic", self.n_critic)
        _check_number("gp_weight", self.gp_weight, positive=False)


@dataclass
class R1R2Config:
    """Non-saturating GAN + R1 + R2 (Mescheder et al. 2018; both penalties as in R3GAN).

    Defaults: Adam lr 2e-4 and betas (0, 0.9), the starting values of R3GAN's schedules in its
    released presets; one D step per G step as in R3GAN. ``gamma`` depends on the data (R3GAN
    starts at 0.05 on CIFAR-10 and at 150 on FFHQ-256); the default 0.1 was tuned on grid25
    (``benchmarks/bench_wgan.py``: with 3x128 MLPs and lr 1e-3, gamma 0.1 recovered the most modes
    in a 60 s CPU budget; 10 smoothed D and lowered the high-quality share, 0.01 lost modes).
    """

    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    gamma: float = 0.1
    n_critic: int = 1

    def __post_init__(self) -> None:
        _check_number("lr", self.lr, positive=True)
        _check_betas(self.betas)
        _check_number("gamma", self.gamma, positive=False)
        check_positive_int("n_critic", self.n_critic)


def make_optimizers(G: nn.Module, D: nn.Module,
                    cfg: WGANConfig | WGANGPConfig | R1R2Config) -> dict[str, torch.optim.Optimizer]:
    """RMSProp for WGAN (Algorithm 1: momentum-free, as the paper advises), Adam for the others."""
    if isinstance(cfg, WGANConfig):
        return {"G": torch.optim.RMSprop(G.parameters(), lr=cfg.lr),
                "D": torch.optim.RMSprop(D.parameters(), lr=cfg.lr)}
    if isinstance(cfg, (WGANGPConfig, R1R2Config)):
        return {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
                "D": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)}
    raise ValueError(f"cfg must be a WGANConfig, WGANGPConfig or R1R2Config, got {type(cfg).__name__}")


def critic_batch_size(cfg: WGANConfig | WGANGPConfig | R1R2Config, batch_size: int) -> int:
    """Rows of real data one step consumes: ``n_critic * batch_size`` (a fresh batch per critic step).

    Use it as ``ganref.data.batch_sampler(data, critic_batch_size(cfg, B))``.
    """
    return cfg.n_critic * check_positive_int("batch_size", batch_size)


# ----------------------------------------------------------------------------- WGAN


def critic_loss(d_real: Tensor, d_fake: Tensor) -> Tensor:
    """E D(fake) - E D(real): the critic minimizes the negated W1 estimate (WGAN Eq. (3)).

    Args:
        d_real: (B,) critic values on real data; d_fake: (B',) on generated data.
    """
    return d_fake.mean() - d_real.mean()


def generator_loss(d_fake: Tensor) -> Tensor:
    """-E D(G(z)): G minimizes the W1 estimate; E D(real) does not depend on G (WGAN Algorithm 1)."""
    return -d_fake.mean()


@torch.no_grad()
def clip_weights(critic: nn.Module, c: float) -> None:
    """Clip every parameter of ``critic`` to [-c, c] in place (WGAN Algorithm 1, line 7)."""
    c = _check_number("c", c, positive=True)
    for p in critic.parameters():
        p.clamp_(-c, c)


def wgan_step(state: State, real: Tensor, cfg: WGANConfig) -> dict[str, Tensor]:
    """One generator step of WGAN Algorithm 1 after ``cfg.n_critic`` clipped critic steps.

    Args:
        real: (n_critic * B, ...) real rows, split into one batch of B per critic step.
    Returns:
        ``d_loss`` (last critic step), ``g_loss`` and ``w_estimate`` = E D(real) - E D(fake), which
        estimates K * W1 for the (unknown) Lipschitz constant K of the clipped critic.
    """
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.n_critic, "n_critic")
    B = reals[0].shape[0]

    # --- D maximizes E D(x) - E D(G(z)) with weights in [-c, c]        Eq. (3), Algorithm 1
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        d_loss = critic_loss(D(x), D(fake))
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        clip_weights(D, cfg.c)  # w <- clip(w, -c, c)

    # --- G minimizes -E D(G(z))                                          Algorithm 1, line 10
    g_loss = generator_loss(D(G(state.randn(B, G.z_dim))))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "w_estimate": -d_loss.detach()}


# ----------------------------------------------------------------------------- penalties


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
    weight = _check_number("weight", weight, positive=False)
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
    gamma = _check_number("gamma", gamma, positive=False)
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


# ----------------------------------------------------------------------------- steps with penalties


def wgan_gp_step(state: State, real: Tensor, cfg: WGANGPConfig) -> dict[str, Tensor]:
    """One generator step of WGAN-GP Algorithm 1 after ``cfg.n_critic`` penalized critic steps.

    Args:
        real: (n_critic * B, ...) real rows, split into one batch of B per critic step.
    Returns:
        ``d_loss`` (last critic step, penalty included), ``g_loss``, ``gp``, ``w_estimate``.
    """
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.n_critic, "n_critic")
    B = reals[0].shape[0]

    # --- D minimizes E D(G(z)) - E D(x) + lambda E (||grad D(x_hat)|| - 1)^2   Eq. (3)
    for x in reals:
        with torch.no_grad():
            fake = G(state.randn(B, G.z_dim))
        w_estimate = -critic_loss(D(x), D(fake))  # E D(x) - E D(G(z))
        gp = gradient_penalty(D, x, fake, cfg.gp_weight, generator=state.generator)
        d_loss = -w_estimate + gp
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()

    # --- G minimizes -E D(G(z))                                          Algorithm 1, line 12
    g_loss = generator_loss(D(G(state.randn(B, G.z_dim))))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "gp": gp.detach(),
            "w_estimate": w_estimate.detach()}


def r1r2_step(state: State, real: Tensor, cfg: R1R2Config) -> dict[str, Tensor]:
    """One step of the non-saturating GAN with R1 and R2 on the discriminator (as R3GAN does).

    Args:
        real: (n_critic * B, ...) real rows (B rows when ``n_critic = 1``, the default).
    Returns:
        ``d_loss`` (penalties included), ``g_loss``, ``r1``, ``r2``.
    """
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.n_critic, "n_critic")
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


# ----------------------------------------------------------------------------- W1 and diagnostics


def _as_points(name: str, x: object) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a torch tensor or numpy array of shape (N,) or (N, D), "
                         f"got {type(x).__name__}")
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N,) or (N, D) with N, D >= 1, got {tuple(np.shape(x))}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return arr


def exact_w1(x: object, y: object) -> float:
    r"""Exact W1 between the empirical measures of two samples of equal size with uniform weights.

    With N points on each side and weights 1/N, an optimal transport plan is a permutation
    (Birkhoff-von Neumann), so :math:`W_1 = \min_\sigma \frac1N \sum_i \|x_i - y_{\sigma(i)}\|_2`,
    solved exactly by ``scipy.optimize.linear_sum_assignment`` on the float64 Euclidean cost
    matrix (O(N^3): keep N to a few thousand).

    Args:
        x, y: (N,) or (N, D) tensors or arrays, the same N and D.
    Returns:
        W1 as a Python float.
    """
    a, b = _as_points("x", x), _as_points("y", y)
    if a.shape != b.shape:
        raise ValueError(f"x has shape {a.shape} but y has {b.shape}: exact_w1 needs two samples "
                         "of the same size N and dimension D")
    cost = cdist(a, b)  # (N, N) ||x_i - y_j||_2
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


@torch.no_grad()
def critic_weight_stats(critic: nn.Module, c: float, tol: float = 0.01) -> dict[str, float]:
    """How many of the critic's parameters sit at the clipping bounds (WGAN-GP Fig. 1(c) pathology).

    Args:
        critic: the critic; every parameter (weights and biases, all that WGAN clips) is counted.
        c: the clipping bound; tol: "at the bound" means within ``tol * c`` of +c or -c.
    Returns:
        ``{"n": parameter count, "at_bound": share within tol*c of +-c, "at_upper": share near +c,
        "at_lower": share near -c, "max_abs": max |w|}``.
    """
    c = _check_number("c", c, positive=True)
    tol = _check_number("tol", tol, positive=True)
    w = torch.cat([p.detach().flatten().double() for p in critic.parameters()])
    if w.numel() == 0:
        raise ValueError("critic has no parameters")
    upper, lower = (w >= c * (1 - tol)), (w <= -c * (1 - tol))
    return {"n": int(w.numel()), "at_bound": float((upper | lower).double().mean()),
            "at_upper": float(upper.double().mean()), "at_lower": float(lower.double().mean()),
            "max_abs": float(w.abs().max())}


def critic_gradient_norms(critic: Critic, x: Tensor) -> Tensor:
    """||grad_x D(x_i)||_2 for each input row: (N, ...) -> (N,), detached (for pathology plots).

    Leaves the critic's ``.grad`` untouched. Needs a critic without batch norm.
    """
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch (N, ...) with N >= 1, got shape {tuple(x.shape)}")
    _check_no_batch_norm(critic, "a per-sample gradient norm")
    with torch.enable_grad():
        grad = _input_gradients(critic, x.detach())
    return torch.linalg.vector_norm(grad.flatten(1), dim=1).detach()


def critic_layer_gradient_norms(critic: nn.Module, x: Tensor) -> dict[str, float]:
    """Frobenius norm of d E_i D(x_i) / d W for every weight matrix or kernel (ndim >= 2) of the critic.

    The layer-by-layer view of WGAN-GP Fig. 1(b): with weight clipping these norms explode or
    vanish with depth. Leaves the critic's ``.grad`` untouched.

    Returns:
        ``{parameter name: norm}`` in the order of ``critic.named_parameters()``.
    """
    named = [(n, p) for n, p in critic.named_parameters() if p.ndim >= 2]
    if not named:
        raise ValueError("critic has no weight matrices or kernels (parameters with ndim >= 2)")
    with torch.enable_grad():
        grads = torch.autograd.grad(critic(x.detach()).mean(), [p for _, p in named], allow_unused=True)
    return {n: (0.0 if g is None else float(torch.linalg.vector_norm(g))) for (n, _), g in zip(named, grads)}


def critic_activation_gradient_norms(
        critic: nn.Module, x: Tensor,
        layers: tuple[type[nn.Module], ...] = (nn.ReLU, nn.LeakyReLU)) -> dict[str, float]:
    """Mean over samples of ||d D(x_i) / d a_l(x_i)||_2 for the output a_l of every ``layers`` module.

    The view of WGAN-GP Fig. 1(b), which plots the critic's gradient with respect to successive
    layers of activations: with weight clipping it vanishes (small c) or explodes (large c) on its
    way from the output down to the input. Leaves the critic's ``.grad`` untouched; needs a critic
    without batch norm (the rows must not interact) that calls each such module once.

    Args:
        critic: D mapping (N, ...) -> (N,) or (N, 1).
        x: (N, ...) inputs.
        layers: the module types whose outputs count as "activations" (default: ReLU, LeakyReLU).
    Returns:
        ``{module name: mean gradient norm}`` in the order the forward pass reaches the modules
        (input side first).
    """
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch (N, ...) with N >= 1, got shape {tuple(x.shape)}")
    _check_no_batch_norm(critic, "a per-sample activation gradient")
    named = [(n, m) for n, m in critic.named_modules() if isinstance(m, layers)]
    if not named:
        raise ValueError(f"critic has no activation modules of types {[t.__name__ for t in layers]}")
    outputs: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            if name in outputs:
                raise ValueError(f"module {name!r} is called more than once in the critic's forward pass")
            outputs[name] = output
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in named]
    try:
        with torch.enable_grad():
            d = critic(x.detach())
            if d.shape not in ((x.shape[0],), (x.shape[0], 1)):
                raise ValueError(f"critic must map (N, ...) to (N,) or (N, 1), got {tuple(d.shape)}")
            names = list(outputs)  # forward order
            # rows are independent (no batch norm): d sum_i D(x_i) / d a_l = per-row d D(x_i) / d a_l(x_i)
            grads = torch.autograd.grad(d.sum(), [outputs[n] for n in names], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return {n: (0.0 if g is None else float(torch.linalg.vector_norm(g.flatten(1), dim=1).mean()))
            for n, g in zip(names, grads)}
