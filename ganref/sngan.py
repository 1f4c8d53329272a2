r"""SN-GAN: spectrally normalized discriminator, hinge loss, several D steps per G step.

**Spectral Normalization for Generative Adversarial Networks.** Takeru Miyato, Toshiki Kataoka,
Masanori Koyama, Yuichi Yoshida. ICLR 2018. arXiv:1802.05957.

Every weight of D is divided by its spectral norm (Eq. (8)), so each layer has sigma = 1 and, with
1-Lipschitz activations, the network's Lipschitz constant is bounded by the product of the layer
norms (Eq. (7)); the layer itself is :class:`ganref.spectral.SpectralNorm`. This file holds the
rest of the method: the hinge loss of Sec. 4 (Lim & Ye 2017; Tran et al. 2017),

.. math::
    L_D = \mathbb{E}_{x \sim p_{data}}[\max(0, 1 - D(x))] + \mathbb{E}_{z \sim p_z}[\max(0, 1 + D(G(z)))],
    \qquad L_G = -\mathbb{E}_{z \sim p_z}[D(G(z))],

the training step with ``n_dis`` discriminator updates per generator update, Adam(2e-4, (0, 0.9)),
and the hyper-parameter settings A-F of the paper's Table 1 (:data:`PAPER_SETTINGS`).

Deviations from the paper:

- Each D update runs D once on the concatenation of the real and the generated batch, so the
  power iteration advances once per D update (Algorithm 1); the G update runs D once more and
  advances it once more (every training-mode call advances it, as in PyTorch's ``spectral_norm``).
- The power iteration is warm-started with 15 steps when the layer is created (see
  :mod:`ganref.spectral`), not started from a random vector at the first update.
- Every D update of a G step draws its own real batch, as in Algorithm 1; the caller hands the step
  all of them at once, ``n_dis * B`` rows (:func:`dis_batch_size`), which it splits into ``n_dis``
  chunks of ``B``.
- The networks are the small DCGAN-style nets of :mod:`ganref.nets` (LeakyReLU D, no batch norm),
  not the paper's "standard CNN" or ResNet.
- :func:`conv_layer_operator_norm` is a measurement, not part of the method: the true operator
  norm of a strided, zero-padded convolution, to set beside the reshaped-kernel sigma that SN
  controls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, svds
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ganref.data import split_batch
from ganref.losses import d_loss_minimax, g_loss_nonsaturating
from ganref.spectral import SN_LAYERS, SpectralNorm, apply_spectral_norm, frozen_power_iteration
from ganref.train import State
from ganref.utils import check_positive_int

__all__ = ["SNGANConfig", "PAPER_SETTINGS", "LOSSES", "hinge_d_loss", "hinge_g_loss", "make_discriminator",
           "make_optimizers", "dis_batch_size", "train_step", "layer_sigmas", "conv_layer_operator_norm",
           "layer_input_sizes", "layer_operator_norms"]

LOSSES = ("hinge", "nonsaturating")


# ----------------------------------------------------------------------------- losses


def _check_logits(name: str, t: object) -> None:
    if not isinstance(t, Tensor) or t.ndim != 1 or t.shape[0] == 0:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be discriminator outputs of shape (B,) with B >= 1, got {shape}"
                         + (": squeeze the last dimension of a (B, 1) output" if shape[-1:] == (1,) else ""))


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


# ----------------------------------------------------------------------------- configuration


def _check_betas(betas: object) -> None:
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")


@dataclass
class SNGANConfig:
    """SN-GAN with the hinge loss: Adam(lr 2e-4, betas (0, 0.9)), n_dis = 5 (Sec. 4 of Miyato et al.).

    ``loss`` is ``"hinge"`` or ``"nonsaturating"`` (the paper's "standard" objective: Eq. (1) for D,
    ``-E log D(G(z))`` for G). ``spectral_norm=False`` gives the same GAN without SN, the baseline.
    """

    lr: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.9)
    n_dis: int = 5
    loss: str = "hinge"
    spectral_norm: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) \
                or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        _check_betas(self.betas)
        check_positive_int("n_dis", self.n_dis)
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not isinstance(self.spectral_norm, bool):
            raise ValueError(f"spectral_norm must be True or False, got {self.spectral_norm!r}")


# Table 1 of Miyato et al.: the Adam settings of their robustness study (A: WGAN-GP's; B: Warde-Farley
# & Bengio's; C: DCGAN's; D-F: aggressive learning rates and momenta).
PAPER_SETTINGS: dict[str, dict[str, object]] = {
    "A": dict(lr=1e-4, betas=(0.5, 0.9), n_dis=5),
    "B": dict(lr=1e-4, betas=(0.5, 0.999), n_dis=1),
    "C": dict(lr=2e-4, betas=(0.5, 0.999), n_dis=1),
    "D": dict(lr=1e-3, betas=(0.5, 0.9), n_dis=5),
    "E": dict(lr=1e-3, betas=(0.5, 0.999), n_dis=5),
    "F": dict(lr=1e-3, betas=(0.9, 0.999), n_dis=5),
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
    return {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
            "D": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)}


def dis_batch_size(cfg: SNGANConfig, batch_size: int) -> int:
    """Rows of real data one step consumes: ``n_dis * batch_size`` (a fresh batch per D update).

    Use it as ``ganref.data.batch_sampler(data, dis_batch_size(cfg, B))``.
    """
    return cfg.n_dis * check_positive_int("batch_size", batch_size)


# ----------------------------------------------------------------------------- the step


def train_step(state: State, real: Tensor, cfg: SNGANConfig) -> dict[str, Tensor]:
    """``cfg.n_dis`` discriminator updates, then one generator update (Algorithm 1 with Adam).

    Args:
        state: holds ``G`` (with ``z_dim``) and ``D`` (spectrally normalized or not: the step is the
            same, SN lives in D's layers) and their optimizers.
        real: (n_dis * B, ...) real rows; D update i uses rows ``i * B`` to ``(i + 1) * B``.
    Returns:
        ``d_loss`` (last D update), ``g_loss``, and ``d_real`` / ``d_fake``, the mean outputs of D
        in the last D update.
    """
    G, D = state.modules["G"], state.modules["D"]
    opt_g, opt_d = state.optimizers["G"], state.optimizers["D"]
    reals = split_batch(real, cfg.n_dis, "n_dis")
    B = reals[0].shape[0]

    # --- D minimizes E max(0, 1 - D(x)) + E max(0, 1 + D(G(z)))         hinge loss, Sec. 4
    #     (or -[E log D(x) + E log(1 - D(G(z)))], Eq. (1)), n_dis times per G update
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


# ----------------------------------------------------------------------------- measurements


def _sn_of(module: nn.Module) -> SpectralNorm | None:
    if parametrize.is_parametrized(module, "weight"):
        for p in module.parametrizations.weight:
            if isinstance(p, SpectralNorm):
                return p
    return None


@torch.no_grad()
def layer_sigmas(model: nn.Module) -> dict[str, dict[str, float]]:
    """Per Linear/Conv2d layer: SN's power-iteration estimate of sigma, the exact sigma, and the effective sigma.

    Matrices are the reshaped (out, in * kh * kw) weights, the ones SN normalizes. Reading them
    does not advance the power iteration.

    Returns:
        ``{name: {"estimate": u^T W v (Algorithm 1; NaN without SN), "exact": sigma(W) by SVD of
        the trained weight W, "effective": sigma of the weight the forward pass uses (W / estimate
        with SN, W without)}}``; the effective sigma of an SN layer is ``exact / estimate``.
    """
    out = {}
    with frozen_power_iteration(model):
        for name, m in model.named_modules():
            if not isinstance(m, SN_LAYERS):
                continue
            sn = _sn_of(m)
            w = (m.parametrizations.weight.original if sn is not None else m.weight).flatten(1).double()
            exact = float(torch.linalg.svdvals(w)[0])
            estimate = float(sn._u.double() @ (w @ sn._v.double())) if sn is not None else math.nan  # u^T W v
            effective = float(torch.linalg.svdvals(m.weight.flatten(1).double())[0])
            out[name] = {"estimate": estimate, "exact": exact, "effective": effective}
    return out


def conv_layer_operator_norm(conv: nn.Conv2d, input_size: int | tuple[int, int], tol: float = 1e-10) -> float:
    """The operator 2-norm of ``conv``'s linear part as it acts on (C_in, H, W) inputs, stride and padding included.

    This is ``max ||conv(x) - b|| / ||x||`` over inputs of that size, for the layer as it is
    (zero padding, stride, dilation, the SN-normalized weight when SN is on; the bias does not
    count). It is the norm that bounds the Lipschitz constant; the reshaped-kernel sigma that SN
    sets to 1 is not. Computed by ARPACK (``scipy.sparse.linalg.svds``, k = 1) on the operator
    ``x -> conv2d(x)`` and its adjoint ``torch.nn.grad.conv2d_input``, in float64 on the CPU, from
    a fixed start vector (deterministic).

    Args:
        conv: a ``nn.Conv2d`` with ``padding_mode="zeros"``.
        input_size: H or (H, W) of the layer's input.
        tol: ARPACK's relative tolerance.
    Returns:
        the largest singular value, a float.
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"conv must use numeric zero padding, got padding={conv.padding!r}, "
                         f"padding_mode={conv.padding_mode!r}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ValueError(f"input_size must be a positive int or a pair (H, W) of them, got {input_size!r}")
    with frozen_power_iteration(conv), torch.no_grad():
        weight = conv.weight.detach().to("cpu", torch.float64)
    kw = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
    in_shape = (1, conv.in_channels, *size)
    try:
        out_shape = tuple(F.conv2d(torch.zeros(in_shape, dtype=torch.float64), weight, **kw).shape)
    except RuntimeError as err:
        raise ValueError(f"input_size {size} is too small for {conv}: {err}") from err
    n_in, n_out = math.prod(in_shape), math.prod(out_shape)

    def matvec(x: np.ndarray) -> np.ndarray:  # A x: the convolution
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(in_shape))
        return F.conv2d(t, weight, **kw).reshape(-1).numpy()

    def rmatvec(y: np.ndarray) -> np.ndarray:  # A^T y: its adjoint (the gradient of <y, A x> in x)
        t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64).reshape(out_shape))
        return torch.nn.grad.conv2d_input(in_shape, weight, t, **kw).reshape(-1).numpy()

    op = LinearOperator((n_out, n_in), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
    if min(n_in, n_out) <= 2:  # ARPACK needs k < min(shape): form the small matrix instead
        dense = np.stack([matvec(e) for e in np.eye(n_in)], axis=1)
        return float(np.linalg.svd(dense, compute_uv=False)[0])
    v0 = np.random.default_rng(0).standard_normal(min(n_in, n_out))
    s = svds(op, k=1, tol=tol, v0=v0, return_singular_vectors=False)
    return float(s[0])


def layer_input_sizes(model: nn.Module, example: Tensor) -> dict[str, tuple[int, ...]]:
    """The input shape, without the batch dimension, that each Linear and Conv2d of ``model`` sees.

    One forward pass on ``example[:1]`` with the power iteration frozen and no gradients.

    Args:
        model: the network, e.g. D.
        example: (B, ...) a valid input batch.
    Returns:
        ``{module name: (C, H, W) or (features,)}`` in forward order.
    """
    if not isinstance(example, Tensor) or example.ndim < 2:
        shape = tuple(example.shape) if isinstance(example, Tensor) else type(example).__name__
        raise ValueError(f"example must be an input batch (B, ...), got {shape}")
    sizes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            sizes.setdefault(name, tuple(inputs[0].shape[1:]))  # (C, H, W) or (features,)
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if isinstance(m, SN_LAYERS)]
    try:
        with frozen_power_iteration(model), torch.no_grad():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
    return sizes


def layer_operator_norms(model: nn.Module, example: Tensor) -> dict[str, float]:
    """The operator 2-norm of every Linear and Conv2d layer of ``model`` at the input sizes it sees.

    A Linear layer's norm is its largest singular value; a Conv2d's is
    :func:`conv_layer_operator_norm` at its input size (:func:`layer_input_sizes` on ``example``).
    For a feed-forward chain with 1-Lipschitz activations the product of these numbers bounds
    ``||grad_x D(x)||`` for every x, a tighter bound than
    :func:`ganref.spectral.lipschitz_upper_bound` with ``conv_norm="bound"``.

    Args:
        model: the network, e.g. D.
        example: (B, ...) a valid input batch (B = 1 suffices).
    Returns:
        ``{module name: norm}`` in forward order.
    """
    sizes = layer_input_sizes(model, example)
    modules = dict(model.named_modules())
    norms = {}
    with frozen_power_iteration(model), torch.no_grad():
        for name, size in sizes.items():
            m = modules[name]
            if isinstance(m, nn.Conv2d):
                norms[name] = conv_layer_operator_norm(m, tuple(size[-2:]))
            else:  # nn.Linear: sigma of its weight
                norms[name] = float(torch.linalg.svdvals(m.weight.detach().double())[0])
    return norms
