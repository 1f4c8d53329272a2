r"""Mode counting: VEEGAN coverage of Gaussian mixtures, stacked-digit modes, and the toy-GAN runs.

- Mode coverage: VEEGAN, Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using
  Implicit Variational Learning", arXiv:1705.07761 (Sec. 5.1: high-quality samples within three
  standard deviations of the nearest mode; a mode is recovered if it has one).
- Stacked digits: Metz et al. 2017 (Unrolled GANs, arXiv:1611.02163) and PacGAN (Lin et al. 2018,
  arXiv:1712.04086): 1,000 modes, their number covered and :math:`KL(p_{modes} \| U)`;
  :func:`expected_modes` gives the number a perfect uniform generator covers with n samples.
- :func:`toy_gan`: the MLP GAN on a 2-D mixture that chapters 01-03 and 13 share (3x128 ReLU MLPs,
  batch 256, 2-D Gaussian noise), any method's step, and its VEEGAN score from 2,500 samples.

KL divergences are in nats, with :math:`0 \log 0 = 0`; "KL to uniform" of a histogram
:math:`p` over K bins is :math:`KL(p \| U_K) = \sum_k p_k \log(K p_k)`, in [0, log K].
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ganref.data import batch_sampler, mixture
from ganref.layers import apply_spectral_norm
from ganref.metrics import _BLOCK_ENTRIES, _as_matrix, _same_dim
from ganref.nets import MLPDiscriminator, MLPGenerator, sample
from ganref.train import Every, State, fit
from ganref.utils import check_positive, check_positive_int, seed_everything


def _kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || U_K) = sum_k p_k log(K p_k) in nats, p = counts / sum(counts), 0 log 0 = 0."""
    k = counts.size
    p = counts[counts > 0] / counts.sum()
    return float(max(np.sum(p * np.log(k * p)), 0.0))  # tiny negative rounding -> 0


def mode_coverage(samples: object, means: object, std: float, threshold: float = 3.0) -> dict[str, float | int]:
    """Modes recovered and high-quality samples of a Gaussian mixture (VEEGAN protocol, Sec. 5.1).

    Each sample is assigned to its nearest mode (Euclidean). It is *high quality* if its
    distance to that mode is at most ``threshold * std``; a mode is *recovered* if at least one
    high-quality sample is assigned to it.

    Args:
        samples: (N, D) generated points (tensor or array).
        means: (K, D) mode centres, e.g. ``ganref.data.ring8().means``.
        std: the modes' common standard deviation (0.02 for ring8, 0.05 for grid25).
        threshold: high quality within ``threshold`` standard deviations (3 in VEEGAN).
    Returns:
        ``{"modes": recovered count, "n_modes": K, "high_quality": share of samples that are high
        quality, "kl": KL(q || U_K)}`` where q is the histogram of the high-quality samples over the
        K modes, in nats with 0 log 0 = 0 (0 when they spread evenly, log K when all fall on one
        mode). With no high-quality sample q is undefined; ``kl`` is then log K, the value of
        total collapse, so that more collapse never reads as a better score.
    """
    x = _as_matrix("samples", samples)
    mu = _as_matrix("means", means)
    _same_dim("samples", x, "means", mu)
    std = check_positive("std", std)
    threshold = check_positive("threshold", threshold)
    k = mu.shape[0]

    counts = np.zeros(k, dtype=np.int64)  # high-quality samples per mode
    rows = max(1, _BLOCK_ENTRIES // (k * x.shape[1]))  # the (B, K, D) differences stay bounded
    for start in range(0, x.shape[0], rows):
        block = x[start:start + rows]
        d2 = np.sum((block[:, None, :] - mu[None, :, :]) ** 2, axis=2)  # (B, K) squared distances
        nearest = d2.argmin(axis=1)
        good = d2[np.arange(len(block)), nearest] <= (threshold * std) ** 2  # ||x - mu_k|| <= 3 sigma
        counts += np.bincount(nearest[good], minlength=k)
    n_good = int(counts.sum())
    return {
        "modes": int((counts > 0).sum()),
        "n_modes": int(k),
        "high_quality": n_good / x.shape[0],
        "kl": _kl_to_uniform(counts) if n_good else math.log(k),
    }


def stacked_modes(labels3: object, n_classes: int = 10) -> dict[str, float | int]:
    """Modes covered on stacked digits: each channel's predicted digit, read as one base-10 number.

    With 3 channels and 10 classes there are 1,000 modes (Metz et al. 2017; PacGAN, Lin et al. 2018).

    Args:
        labels3: (N, M) integer class predictions, one column per channel (M = 3 for stacked
            digits), each in [0, n_classes); e.g. from :func:`ganref.features.digit_labels`.
        n_classes: classes per channel.
    Returns:
        ``{"modes": distinct modes seen, "n_modes": n_classes ** M, "kl": KL(p || U)}`` with p the
        histogram of the N samples over the modes, in nats with 0 log 0 = 0.
    """
    n_classes = check_positive_int("n_classes", n_classes, minimum=2)
    if isinstance(labels3, torch.Tensor):
        labels = labels3.detach().cpu().numpy()
    elif isinstance(labels3, np.ndarray):
        labels = labels3
    else:
        raise ValueError(f"labels3 must be a torch tensor or numpy array of shape (N, 3), "
                         f"got {type(labels3).__name__}")
    if labels.ndim != 2 or labels.shape[0] < 1 or labels.shape[1] < 1:
        raise ValueError(f"labels3 must have shape (N, 3) (one predicted digit per channel), "
                         f"got {tuple(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels3 must hold integer class labels, got dtype {labels.dtype}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels3 must lie in [0, {n_classes}) (n_classes={n_classes}), "
                         f"got values in [{labels.min()}, {labels.max()}]")
    n_modes = n_classes ** labels.shape[1]
    place = n_classes ** np.arange(labels.shape[1] - 1, -1, -1, dtype=np.int64)  # (100, 10, 1)
    mode = labels.astype(np.int64) @ place  # (N,) mode index: the channels read as one number
    counts = np.bincount(mode, minlength=n_modes)
    return {"modes": int((counts > 0).sum()), "n_modes": int(n_modes), "kl": _kl_to_uniform(counts)}


def expected_modes(n_samples: int, n_modes: int) -> tuple[float, float]:
    """Mean and std of the number of distinct modes hit by ``n_samples`` uniform draws over ``n_modes``.

    The yardstick for :func:`stacked_modes`: a generator that matches a uniform 1,000-mode data
    set still covers only about :math:`K(1 - e^{-n/K})` modes with n samples. With
    :math:`q_1 = (1 - 1/K)^n` (a given mode is missed) and :math:`q_2 = (1 - 2/K)^n` (two given
    modes are both missed), the count of covered modes :math:`K - \\sum_m 1[m \\text{ missed}]` has

    :math:`\\mathbb{E} = K(1 - q_1)`, :math:`\\mathrm{Var} = K q_1 (1 - q_1) + K(K - 1)(q_2 - q_1^2)`.

    Args:
        n_samples: number of independent draws n.
        n_modes: number of equally likely modes K.
    Returns:
        (mean, std) of the number of distinct modes covered.
    """
    n = check_positive_int("n_samples", n_samples)
    k = check_positive_int("n_modes", n_modes)
    q1 = math.exp(n * math.log1p(-1.0 / k)) if k > 1 else 0.0  # (1 - 1/K)^n; log1p keeps it accurate for large K
    q2 = math.exp(n * math.log1p(-2.0 / k)) if k > 2 else 0.0  # (1 - 2/K)^n; 0 for K = 2 (and unused for K = 1)
    mean = k * (1.0 - q1)
    var = k * q1 * (1.0 - q1) + k * (k - 1) * (q2 - q1 * q1)  # Var of a sum of K dependent indicators
    scale = k * q1 * (1.0 - q1) + k * (k - 1) * (q2 + q1 * q1)  # size of the terms that cancel
    if var <= 8 * np.finfo(np.float64).eps * scale:  # rounding noise (e.g. n = 1, where Var = 0 exactly)
        var = 0.0
    return float(mean), float(math.sqrt(var))


# ----------------------------------------------------------------------------- the toy-GAN run


@dataclass
class ToyRun:
    """One MLP GAN trained on a 2-D mixture: its state, final samples, VEEGAN score and snapshots."""

    state: State
    samples: torch.Tensor  # (n_eval, 2), drawn with seed EVAL_Z_SEED + run seed
    coverage: dict[str, float | int]
    snapshots: list[tuple[int, torch.Tensor]]  # (step, (1000, 2) samples of one fixed z)


EVAL_Z_SEED = 30_000  # the VEEGAN samples of run seed s are drawn with seed 30_000 + s
SNAPSHOT_Z_SEED = 1  # snapshots show the same 1,000 noise vectors at every step


def toy_gan(name: str, step_fn: Callable, cfg: object, make_optimizers: Callable, seed: int, steps: int, *,
            width: int = 128, depth: int = 3, batch_size: int = 256, snapshots: int = 0, n_eval: int = 2500,
            device: torch.device | str = "cpu", progress: bool = False, desc: str | None = None) -> ToyRun:
    """Train the book's toy GAN on mixture ``name`` with any method's step, and score it (VEEGAN).

    G and D are ``depth`` x ``width`` ReLU MLPs with 2-D Gaussian noise (VEEGAN's and the WGAN-GP toy
    script's setting, narrower by default); real batches of ``batch_size`` per discriminator update.

    Args:
        name: ``"ring8"`` or ``"grid25"`` (a :func:`ganref.data.mixture`).
        step_fn: ``step_fn(state, real, cfg)``, e.g. ``vanilla.vanilla_step``.
        cfg: its config (its ``d_steps`` field, if any, sets the rows per step; ``spectral_norm=True``
            puts spectral normalization on D, as ``sngan.make_discriminator`` does).
        make_optimizers: ``make_optimizers(G, D, cfg)``.
        seed: the run's seed (weights, batches, noise).
        steps: generator steps.
        snapshots: how many evenly spaced snapshots of 1,000 fixed-noise samples to keep (0: none).
        n_eval: samples for the VEEGAN protocol (2,500 as in the paper).
    """
    mix = mixture(name)
    steps = check_positive_int("steps", steps)
    snapshots = check_positive_int("snapshots", snapshots, minimum=0)
    n_eval = check_positive_int("n_eval", n_eval)
    gen = seed_everything(seed)
    G = MLPGenerator(z_dim=2, out_dim=2, hidden=width, depth=depth).to(device)
    D = MLPDiscriminator(in_dim=2, hidden=width, depth=depth).to(device)
    if getattr(cfg, "spectral_norm", False):  # SN-GAN: its D is spectrally normalized (power iteration seeded apart)
        apply_spectral_norm(D, generator=torch.Generator().manual_seed(seed))
    state = State({"G": G, "D": D}, make_optimizers(G, D, cfg), gen, torch.device(device))
    batches = batch_sampler(mix.sample, batch_size, device=device, d_steps=getattr(cfg, "d_steps", 1))
    callbacks = []
    if snapshots:
        z_fixed = torch.randn(1000, 2, generator=torch.Generator().manual_seed(SNAPSHOT_Z_SEED)).to(device)
        every = math.ceil(steps / snapshots)  # snapshots - 1 frames on the schedule, the last at `steps`
        callbacks.append(Every(every, lambda s: G(z_fixed).cpu(), "snapshots"))
    fit(functools.partial(step_fn, cfg=cfg), state, batches, steps, callbacks=callbacks,
        progress=progress, desc=desc or f"{name} seed {seed}")
    shots = list(state.records.get("snapshots", []))
    if snapshots and (not shots or shots[-1][0] != steps):
        shots.append((steps, _sample_fixed(G, z_fixed)))
    samples = sample(G, n_eval, EVAL_Z_SEED + seed, device)
    return ToyRun(state, samples, mode_coverage(samples, mix.means, mix.std), shots)


@torch.no_grad()
def _sample_fixed(G: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """G(z) in eval mode on the CPU, G's mode restored."""
    was = G.training
    G.eval()
    try:
        return G(z).cpu()
    finally:
        G.train(was)
