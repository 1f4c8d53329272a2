r"""The book's mode-coverage benchmark: ceilings set by the data and the classifier, seed summaries,
and discriminator rejection.

- Toy mixtures (VEEGAN protocol, :func:`ganref.modes.mode_coverage`): even the data itself is not 100 %
  "high quality": a d-dimensional Gaussian sample lies within t standard deviations of its mean with
  probability :math:`P(\chi^2_d \le t^2)`, :math:`1 - e^{-t^2/2} = 98.89\%` for d = 2 and t = 3
  (:func:`high_quality_ceiling`).
- Stacked digits (Metz et al. 2017; PacGAN, Lin et al. 2018; R3GAN, Huang et al. 2024, Table 2): each
  channel is classified on its own (:func:`ganref.features.digit_labels`). The classifier errs, so
  even real stacked digits do not land uniformly on the 1,000 modes: if a real channel's predicted
  digit has marginal :math:`q_k = \sum_t \pi_t C_{tk}` (class frequencies :math:`\pi`, row-normalized
  confusion :math:`C`), the channels being independent, a real image's predicted mode
  :math:`m = (m_1, m_2, m_3)` has probability :math:`p_m = q_{m_1} q_{m_2} q_{m_3}`, the product of the
  per-channel confusions (:func:`stacked_ceiling`). n draws from p cover
  :math:`\sum_m 1 - (1 - p_m)^n` modes on average (:func:`expected_coverage`, which generalizes
  :func:`ganref.modes.expected_modes` to unequal modes) and their histogram's KL to uniform tends to
  :math:`KL(p \| U)`. That is the ceiling a perfect generator reaches under this classifier.
- :func:`top_scored`: the simplest discriminator rejection, keeping the best-scored share of a larger
  draw (a deterministic variant of DRS, Azadi et al., ICLR 2019, arXiv:1810.06758); benchmark tables
  report it apart from the raw generator.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import torch
from scipy.special import gammainc
from torch import nn

from ganref.features import DigitsClassifier, digit_labels
from ganref.modes import stacked_modes
from ganref.nets import sample
from ganref.utils import check_number, check_positive, check_positive_int

__all__ = ["high_quality_ceiling", "confusion_matrix", "predicted_marginal", "stacked_mode_probs",
           "expected_coverage", "stacked_ceiling", "stacked_digit_modes", "seed_summary", "summarize_runs",
           "top_scored"]


# ----------------------------------------------------------------------------- toy mixtures


def high_quality_ceiling(threshold: float = 3.0, dim: int = 2) -> float:
    """P(||x - mu|| <= threshold * sigma) for x ~ N(mu, sigma^2 I_dim): the data's own high-quality share.

    That is the chi-square CDF :math:`P(\\chi^2_d \\le t^2)` = the regularized incomplete gamma
    :math:`P(d/2, t^2/2)`; ``1 - exp(-t^2 / 2)`` in 2-D (ignoring the negligible mass that lies nearer
    another mode, which the VEEGAN protocol would also count).
    """
    t = check_positive("threshold", threshold)
    dim = check_positive_int("dim", dim)
    return float(gammainc(dim / 2, t * t / 2))


# ----------------------------------------------------------------------------- stacked digits


def confusion_matrix(true: object, pred: object, n_classes: int = 10) -> np.ndarray:
    """Counts (n_classes, n_classes): entry [t, k] = how many of class t were predicted as k."""
    n_classes = check_positive_int("n_classes", n_classes, minimum=2)
    t, k = (np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a) for a in (true, pred))
    if t.ndim != 1 or t.shape != k.shape or t.size == 0:
        raise ValueError(f"true and pred must be label vectors of the same shape (N,), got {t.shape} and {k.shape}")
    if not (np.issubdtype(t.dtype, np.integer) and np.issubdtype(k.dtype, np.integer)):
        raise ValueError(f"true and pred must hold integer labels, got dtypes {t.dtype} and {k.dtype}")
    if min(t.min(), k.min()) < 0 or max(t.max(), k.max()) >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return np.bincount(t * n_classes + k, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def predicted_marginal(confusion: object) -> np.ndarray:
    """q_k = sum_t pi_t C_tk: the share of the data predicted as k, from a confusion count matrix.

    With the counts of :func:`confusion_matrix`, pi_t C_tk is the count [t, k] over the total, so
    q is the column sums over the total.
    """
    c = np.asarray(confusion, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.sum() <= 0 or (c < 0).any():
        raise ValueError(f"confusion must be a square matrix of non-negative counts, got shape {c.shape}")
    return c.sum(axis=0) / c.sum()  # (K,)


def stacked_mode_probs(marginal: object, channels: int = 3) -> np.ndarray:
    """p_m = prod_c q_{m_c} over the K^channels modes, mode index m = sum_c m_c K^(channels - 1 - c)."""
    q = np.asarray(marginal, dtype=np.float64)
    channels = check_positive_int("channels", channels)
    if q.ndim != 1 or q.size < 2 or (q < 0).any() or not math.isclose(q.sum(), 1.0, rel_tol=0, abs_tol=1e-9):
        raise ValueError(f"marginal must be a probability vector (K,), K >= 2, got {q}")
    p = q
    for _ in range(channels - 1):
        p = np.outer(p, q).ravel()  # the first channel is the most significant digit
    return p


def expected_coverage(probs: object, n_samples: int) -> tuple[float, float]:
    """Mean and std of the number of distinct modes hit by n independent draws from ``probs``.

    With :math:`s_m = (1 - p_m)^n` (mode m missed) and :math:`s_{mm'} = (1 - p_m - p_{m'})^n` (both
    missed): :math:`\\mathbb{E} = \\sum_m (1 - s_m)`,
    :math:`\\mathrm{Var} = \\sum_m s_m (1 - s_m) + \\sum_{m \\ne m'} (s_{mm'} - s_m s_{m'})`.
    Equal p_m = 1/K gives :func:`ganref.modes.expected_modes`.
    """
    p = np.asarray(probs, dtype=np.float64)
    n = check_positive_int("n_samples", n_samples)
    if p.ndim != 1 or p.size < 1 or (p < 0).any() or not math.isclose(p.sum(), 1.0, rel_tol=0, abs_tol=1e-9):
        raise ValueError(f"probs must be a probability vector (K,), got shape {p.shape} summing to {p.sum():.6g}")
    s = np.exp(n * np.log1p(-np.minimum(p, 1.0 - 1e-300)))  # (K,) (1 - p_m)^n, accurate for small p_m
    pair = p[:, None] + p[None, :]  # (K, K) p_m + p_m'
    with np.errstate(divide="ignore", invalid="ignore"):
        s2 = np.where(pair < 1.0, np.exp(n * np.log1p(-np.minimum(pair, 1.0))), 0.0)  # (1 - p_m - p_m')^n
    np.fill_diagonal(s2, 0.0)
    cov = s2 - np.outer(s, s)
    np.fill_diagonal(cov, s * (1.0 - s))  # Var of each "missed" indicator
    return float(np.sum(1.0 - s)), float(math.sqrt(max(cov.sum(), 0.0)))


def _kl_to_uniform(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(max(np.sum(nz * np.log(p.size * nz)), 0.0))


def stacked_ceiling(marginal: object, n_samples: int, channels: int = 3) -> dict[str, float]:
    """What real stacked digits score under a classifier whose predicted-digit marginal is ``marginal``.

    Returns:
        ``{"modes": expected modes covered by n_samples draws, "modes_std": its std, "kl": the limit
        KL(p || U) in nats as n grows, "kl_finite": the same plus the plug-in estimator's first-order
        bias (K - 1) / (2n) (valid when every n p_m >> 1), "n_modes": K = K_class^channels}``.
    """
    p = stacked_mode_probs(marginal, channels)
    mean, std = expected_coverage(p, n_samples)
    kl = _kl_to_uniform(p)
    return {"modes": mean, "modes_std": std, "kl": kl, "kl_finite": kl + (p.size - 1) / (2 * n_samples),
            "n_modes": int(p.size)}


def stacked_digit_modes(images: object, classifier: DigitsClassifier | None = None) -> dict[str, float | int]:
    """Modes covered and KL to uniform of stacked digits (N, 3, 8, 8): each channel classified on its own."""
    return stacked_modes(digit_labels(images, classifier))


# ----------------------------------------------------------------------------- summaries


def seed_summary(values: Sequence[float]) -> dict[str, float | list[float]]:
    """Mean and spread of one number over seeds: mean, std (ddof = 1; 0 for one seed), min, max, per seed."""
    v = np.asarray([check_number(f"values[{i}]", x) for i, x in enumerate(values)], dtype=np.float64)
    if v.size == 0:
        raise ValueError("values must hold at least one number (one per seed)")
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "per_seed": v.tolist()}


def summarize_runs(rows: Sequence[Mapping[str, float]], keys: Sequence[str] = ("modes", "high_quality", "kl")
                   ) -> dict[str, dict[str, float | list[float]]]:
    """:func:`seed_summary` of each key over a list of per-seed score dicts (e.g. ``mode_coverage`` results)."""
    if not rows:
        raise ValueError("rows must hold one score dict per seed, got none")
    missing = sorted({k for k in keys for r in rows if k not in r})
    if missing:
        raise ValueError(f"every row must have the keys {list(keys)}; missing {missing}")
    return {k: seed_summary([float(r[k]) for r in rows]) for k in keys}


# ----------------------------------------------------------------------------- discriminator rejection


@torch.no_grad()
def top_scored(G: nn.Module, D: nn.Module, n: int, seed: int, keep: float = 0.95,
               device: torch.device | str | None = None) -> torch.Tensor:
    """The n best-scored of ceil(n / keep) samples: draw them with :func:`ganref.nets.sample` (``seed``),
    score them with D (logits, eval mode) and keep the n highest, in their drawing order.

    A deterministic form of discriminator rejection sampling (Azadi et al. 2019): it drops the
    ``1 - keep`` share that D finds least real. ``keep = 1`` returns exactly ``sample(G, n, seed)``.
    """
    n = check_positive_int("n", n)
    keep = check_number("keep", keep, low=0, high=1, low_open=True)
    candidates = sample(G, math.ceil(n / keep - 1e-9), seed, device)  # (M, ...) on the CPU
    was = D.training
    D.eval()
    try:
        dev = next(D.parameters()).device if device is None else torch.device(device)
        scores = torch.cat([D(candidates[i:i + 4096].to(dev)).cpu() for i in range(0, len(candidates), 4096)])
    finally:
        D.train(was)
    best = scores.argsort(descending=True, stable=True)[:n].sort().values  # (n,) keep the drawing order
    return candidates[best]
