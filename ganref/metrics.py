"""Sample-quality metrics on features: mode coverage, FID, KID, improved precision/recall, IS.

Every metric takes plain arrays: torch tensors or NumPy arrays of shape (N, D) (features, samples
or class probabilities), is computed in float64 NumPy, and returns Python floats. Features of
8x8 digit images come from :func:`ganref.classifier.digit_features` (re-exported here).

- Mode coverage: VEEGAN, Srivastava et al. 2017, "VEEGAN: Reducing Mode Collapse in GANs using
  Implicit Variational Learning", arXiv:1705.07761 (Sec. 5.1: high-quality samples within three
  standard deviations of the nearest mode; a mode is recovered if it has one).
- Stacked digits: Metz et al. 2017 (Unrolled GANs, arXiv:1611.02163) and PacGAN (Lin et al. 2018,
  arXiv:1712.04086): 1,000 modes, their number covered and :math:`KL(p_{modes} \\| U)`;
  :func:`expected_modes` gives the number a perfect uniform generator covers with n samples.
- FID: Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
  Equilibrium", arXiv:1706.08500:
  :math:`d^2 = \\|\\mu_1 - \\mu_2\\|^2
  + \\mathrm{Tr}(\\Sigma_1 + \\Sigma_2 - 2(\\Sigma_1^{1/2}\\Sigma_2\\Sigma_1^{1/2})^{1/2})`.
- KID: Binkowski et al. 2018, "Demystifying MMD GANs", arXiv:1801.01401: unbiased MMD^2 with the
  cubic polynomial kernel :math:`k(x, y) = (x^\\top y / d + 1)^3`, averaged over subsets;
  :func:`mmd2` is the same estimate on the full sets, the value KID's subset average is unbiased for.
- Precision/recall: Kynkaanniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models", arXiv:1904.06991 (k-NN balls, Eq. (1)-(2)).
- IS: Salimans et al. 2016, "Improved Techniques for Training GANs", arXiv:1606.03498:
  :math:`IS = \\exp(\\mathbb{E}_x KL(p(y|x) \\| p(y)))`.

Conventions (one for the whole module):

- KL divergences are in nats, with :math:`0 \\log 0 = 0`; "KL to uniform" of a histogram
  :math:`p` over K bins is :math:`KL(p \\| U_K) = \\sum_k p_k \\log(K p_k)`, in [0, log K].
- Standard deviations over subsets or splits are population std (``ddof=0``), as in the
  reference implementations of KID and IS, so numbers compare with published tables.

Deviations from the papers: FID takes the matrix square root through symmetric
eigendecompositions in float64 (the trace equals the paper's, and it never turns complex); the
features are those of a small digits classifier (:mod:`ganref.classifier`), not Inception-v3, so
numbers are comparable within this book, not with ImageNet-feature tables.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ganref.classifier import digit_features, digit_labels, digit_probs  # noqa: F401  (features of 8x8 digits)
from ganref.utils import check_positive_int

__all__ = ["mode_coverage", "stacked_modes", "expected_modes", "fid", "kid", "mmd2", "precision_recall", "knn_radii",
           "inception_score", "digit_features", "digit_probs", "digit_labels"]

# Rows per block of a chunked pairwise-distance computation are chosen so that one block holds at
# most this many float64 entries (2**22 entries = 32 MiB; with its temporaries ~100 MiB), whatever N is.
_BLOCK_ENTRIES = 2**22


# ----------------------------------------------------------------------------- input checks


def _as_matrix(name: str, x: object, min_rows: int = 1) -> np.ndarray:
    """Return ``x`` as a float64 (N, D) array, or raise a ValueError naming ``name``."""
    if isinstance(x, torch.Tensor):
        arr = x.detach().cpu().to(torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        arr = x
    else:
        raise ValueError(f"{name} must be a torch tensor or numpy array of shape (N, D), got {type(x).__name__}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got an array with {arr.ndim} dimension(s), "
                         f"shape {tuple(arr.shape)}")
    if arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one feature column, got shape {tuple(arr.shape)}")
    if arr.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} rows, got shape {tuple(arr.shape)}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise ValueError(f"{name} holds non-finite values (NaN or inf) in {bad} of {arr.shape[0]} rows")
    return arr


def _same_dim(name_a: str, a: np.ndarray, name_b: str, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} has shape {tuple(a.shape)} but {name_b} has {tuple(b.shape)}: "
                         "both must be (N, D) with the same D")


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or not float(value) > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _kl_to_uniform(counts: np.ndarray) -> float:
    """KL(p || U_K) = sum_k p_k log(K p_k) in nats, p = counts / sum(counts), 0 log 0 = 0."""
    k = counts.size
    p = counts[counts > 0] / counts.sum()
    return float(max(np.sum(p * np.log(k * p)), 0.0))  # tiny negative rounding -> 0


# ----------------------------------------------------------------------------- mode coverage


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
    std = _positive_float("std", std)
    threshold = _positive_float("threshold", threshold)
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
            digits), each in [0, n_classes); e.g. from :func:`ganref.classifier.digit_labels`.
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


# ----------------------------------------------------------------------------- FID


def _psd_eigvals(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with rounding noise removed: those below D * eps * max(w) become 0.

    (The tolerance of ``numpy.linalg.matrix_rank``.) Left in, the square root would turn noise of
    1e-16 into 1e-8 per eigenvalue: singular covariances (N <= D, dead features) would lose half
    their digits.
    """
    tol = w.size * np.finfo(np.float64).eps * max(float(w.max()), 0.0)
    return np.where(w > tol, w, 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(_psd_eigvals(w))) @ v.T


def fid(real: object, fake: object) -> float:
    """Frechet distance between Gaussian fits of two feature sets (Heusel et al. 2017, Eq. (6)).

    :math:`d^2 = \\|\\mu_r - \\mu_f\\|^2 + \\mathrm{Tr}(\\Sigma_r) + \\mathrm{Tr}(\\Sigma_f)
    - 2\\,\\mathrm{Tr}\\big((\\Sigma_r^{1/2}\\Sigma_f\\Sigma_r^{1/2})^{1/2}\\big)`

    The last trace is computed from two symmetric eigendecompositions in float64:
    :math:`\\Sigma_r^{1/2}\\Sigma_f\\Sigma_r^{1/2}` is symmetric PSD, so its square root's trace is
    the sum of the square roots of its (clipped, non-negative) eigenvalues. This equals
    :math:`\\mathrm{Tr}((\\Sigma_r\\Sigma_f)^{1/2})` of the paper and never turns complex.
    Eigenvalues below ``D * eps * max`` count as rounding noise and are set to 0, which keeps
    singular covariances (N <= D, dead features) accurate to ~1e-12 instead of ~1e-7.

    Args:
        real, fake: (N, D) and (M, D) features, N, M >= 2 (covariances use ``ddof=1``).
    Returns:
        the squared Frechet distance, a float >= 0 (rounding below 0 is clipped to 0).
    """
    x = _as_matrix("real", real, min_rows=2)
    y = _as_matrix("fake", fake, min_rows=2)
    _same_dim("real", x, "fake", y)
    mu_r, mu_f = x.mean(axis=0), y.mean(axis=0)
    s_r = np.atleast_2d(np.cov(x, rowvar=False))  # (D, D)
    s_f = np.atleast_2d(np.cov(y, rowvar=False))
    root_r = _psd_sqrt(s_r)  # Sigma_r^{1/2}
    middle = root_r @ s_f @ root_r  # Sigma_r^{1/2} Sigma_f Sigma_r^{1/2}, symmetric PSD
    middle = (middle + middle.T) / 2  # remove rounding asymmetry before eigvalsh
    tr_sqrt = np.sqrt(_psd_eigvals(np.linalg.eigvalsh(middle))).sum()  # Tr((.)^{1/2})
    d2 = np.sum((mu_r - mu_f) ** 2) + np.trace(s_r) + np.trace(s_f) - 2 * tr_sqrt  # Eq. (6)
    return float(max(d2, 0.0))


# ----------------------------------------------------------------------------- KID


def _cubic_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """k(a, b) = (a . b / d + 1)^3, the KID kernel (Binkowski et al. 2018, Sec. 4)."""
    base = a @ b.T / a.shape[1] + 1.0
    return base * base * base  # (.)^3, cheaper than np.power


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 estimate (Gretton et al. 2012, Eq. (3)): diagonal terms k(x_i, x_i) left out."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))  # mean over i != j
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2 * k_xy.mean())


def kid(real: object, fake: object, subsets: int = 100, subset_size: int = 1000,
        seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: unbiased MMD^2 with a cubic kernel, averaged over random subsets.

    Binkowski et al. 2018 (arXiv:1801.01401): :math:`k(x, y) = (x^\\top y / d + 1)^3`. Each of
    ``subsets`` rounds draws ``subset_size`` rows of ``real`` and of ``fake`` without replacement
    (a NumPy generator seeded with ``seed``) and computes the unbiased MMD^2 between them; the
    estimate is unbiased, so it can be slightly negative when the two sets match.

    Args:
        real, fake: (N, D) and (M, D) features with N, M >= subset_size.
        subsets: number of random subsets.
        subset_size: rows per subset (>= 2).
        seed: seed of the subset draws.
    Returns:
        (mean, std) of the MMD^2 estimates over the subsets (population std, ``ddof=0``).
    """
    subsets = check_positive_int("subsets", subsets)
    subset_size = check_positive_int("subset_size", subset_size, minimum=2)
    seed = check_positive_int("seed", seed, minimum=0)
    x = _as_matrix("real", real)
    y = _as_matrix("fake", fake)
    _same_dim("real", x, "fake", y)
    for name, arr in (("real", x), ("fake", y)):
        if subset_size > len(arr):
            raise ValueError(f"subset_size={subset_size} is larger than the {len(arr)} rows of {name}: "
                             f"pass subset_size <= {min(len(x), len(y))} or more samples")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        idx_r = rng.choice(len(x), subset_size, replace=False)
        idx_f = rng.choice(len(y), subset_size, replace=False)
        values[i] = _mmd2_unbiased(x[idx_r], y[idx_f])
    return float(values.mean()), float(values.std())


def mmd2(real: object, fake: object) -> float:
    """The unbiased MMD^2 of KID's cubic kernel over *all* rows of both sets (no subsets).

    :func:`kid` averages this estimate over random subsets of equal size; since each subset's
    estimate is unbiased, its expectation over the subsets drawn without replacement is exactly
    this number computed on the full sets (which may differ in size). Kernel blocks are summed
    row block by row block, so memory stays bounded for any N; time is O((N + M)^2 D).

    Args:
        real, fake: (N, D) and (M, D) features, N, M >= 2.
    Returns:
        :math:`\\frac{1}{N(N-1)}\\sum_{i \\ne j} k(x_i, x_j) + \\frac{1}{M(M-1)}\\sum_{i \\ne j} k(y_i, y_j)
        - \\frac{2}{NM}\\sum_{i, j} k(x_i, y_j)` (Gretton et al. 2012, Eq. (3)); it can be below 0.
    """
    x = _as_matrix("real", real, min_rows=2)
    y = _as_matrix("fake", fake, min_rows=2)
    _same_dim("real", x, "fake", y)

    def kernel_sum(a: np.ndarray, b: np.ndarray) -> float:  # sum_{i, j} k(a_i, b_j), in row blocks
        rows = _block_rows(len(b))
        return float(sum(_cubic_kernel(a[s:s + rows], b).sum() for s in range(0, len(a), rows)))

    def diagonal(a: np.ndarray) -> float:  # sum_i k(a_i, a_i)
        return float(np.sum((np.sum(a * a, axis=1) / a.shape[1] + 1.0) ** 3))

    m, n = len(x), len(y)
    term_xx = (kernel_sum(x, x) - diagonal(x)) / (m * (m - 1))  # mean over i != j
    term_yy = (kernel_sum(y, y) - diagonal(y)) / (n * (n - 1))
    return term_xx + term_yy - 2 * kernel_sum(x, y) / (m * n)  # Eq. (3)


# ----------------------------------------------------------------------------- precision / recall


def _sq_dists(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (len(a), len(b)) via ||a||^2 + ||b||^2 - 2 a.b, clipped at 0."""
    d2 = np.sum(a * a, axis=1)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0, out=d2)


def _block_rows(n_cols: int) -> int:
    return max(1, _BLOCK_ENTRIES // max(n_cols, 1))


def knn_radii(x: object, k: int = 3) -> np.ndarray:
    """Distance of each row to its k-th nearest neighbour among the *other* rows (chunked).

    Args:
        x: (N, D) points with N > k.
        k: which neighbour (1 = nearest). A duplicate of a point counts as a neighbour at distance 0.
    Returns:
        (N,) float64 radii.
    """
    k = check_positive_int("k", k)
    x = _as_matrix("x", x)
    if len(x) <= k:
        raise ValueError(f"x has {len(x)} rows but k={k} needs at least k + 1 = {k + 1}")
    return np.sqrt(_knn_sq_radii(x - x.mean(axis=0), k))


def _knn_sq_radii(x: np.ndarray, k: int) -> np.ndarray:
    x_sq = np.sum(x * x, axis=1)
    out = np.empty(len(x))
    rows = _block_rows(len(x))
    for start in range(0, len(x), rows):
        d2 = _sq_dists(x[start:start + rows], x, x_sq)  # (B, N)
        d2[np.arange(len(d2)), np.arange(start, start + len(d2))] = np.inf  # exclude the point itself
        smallest = torch.topk(torch.from_numpy(d2), k, dim=1, largest=False).values  # (B, k), shares d2's memory
        out[start:start + rows] = smallest[:, k - 1].numpy()  # the k-th smallest squared distance
    return out


def precision_recall(real: object, fake: object, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, Eq. (1)-(2)).

    Each point's ball has the radius of its k-th nearest neighbour in its own set (itself
    excluded). Precision is the share of fake points inside at least one real ball
    (:math:`\\|\\phi_f - \\phi_r\\| \\le r_k(\\phi_r)`); recall is the share of real points inside at
    least one fake ball. Distances are computed in row blocks of at most 2**22 entries, so memory
    stays bounded (about 100 MiB beyond the inputs) for any N; time is O((N + M)^2 D).

    Args:
        real, fake: (N, D) and (M, D) features, both with more than k rows.
        k: neighbour that sets the radius (3 in the paper).
    Returns:
        (precision, recall), each in [0, 1].
    """
    k = check_positive_int("k", k)
    x = _as_matrix("real", real)
    y = _as_matrix("fake", fake)
    _same_dim("real", x, "fake", y)
    for name, arr in (("real", x), ("fake", y)):
        if len(arr) <= k:
            raise ValueError(f"{name} has {len(arr)} rows but k={k} needs at least k + 1 = {k + 1} "
                             "(each radius is the distance to the k-th other point)")
    centre = x.mean(axis=0)  # distances do not change; centring cuts the rounding of ||a||^2 + ||b||^2 - 2ab
    x, y = x - centre, y - centre
    r2_real = _knn_sq_radii(x, k)  # (N,) squared radii of the real balls
    r2_fake = _knn_sq_radii(y, k)  # (M,)
    x_sq = np.sum(x * x, axis=1)
    fake_in_real = np.zeros(len(y), dtype=bool)  # precision: fake point inside some real ball
    real_in_fake = np.zeros(len(x), dtype=bool)  # recall: real point inside some fake ball
    rows = _block_rows(len(x))
    for start in range(0, len(y), rows):
        d2 = _sq_dists(y[start:start + rows], x, x_sq)  # (B, N) fake-to-real
        fake_in_real[start:start + rows] = (d2 <= r2_real[None, :]).any(axis=1)
        real_in_fake |= (d2 <= r2_fake[start:start + rows, None]).any(axis=0)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


# ----------------------------------------------------------------------------- Inception Score


def inception_score(probs: object, splits: int = 10) -> tuple[float, float]:
    """Inception Score of class probabilities from any classifier (Salimans et al. 2016, Sec. 4).

    :math:`IS = \\exp\\big(\\mathbb{E}_x KL(p(y|x) \\| p(y))\\big)`, with :math:`p(y)` the mean of
    :math:`p(y|x)` within each split. The N rows are cut into ``splits`` consecutive parts (as in
    the paper's code), the score is computed on each, and the mean and std are returned.

    Args:
        probs: (N, C) softmax outputs: non-negative rows summing to 1 (within 1e-4), N >= splits.
        splits: number of consecutive splits.
    Returns:
        (mean, std) over the splits (population std); 1 <= IS <= C.
    """
    splits = check_positive_int("splits", splits)
    p = _as_matrix("probs", probs)
    if p.min() < 0 or np.abs(p.sum(axis=1) - 1).max() > 1e-4:
        raise ValueError("probs must be class probabilities (softmax outputs): non-negative rows that sum "
                         f"to 1, got values in [{p.min():.3g}, {p.max():.3g}] and row sums in "
                         f"[{p.sum(axis=1).min():.6g}, {p.sum(axis=1).max():.6g}]")
    if len(p) < splits:
        raise ValueError(f"probs has {len(p)} rows but splits={splits} needs at least one row per split")
    scores = []
    for part in np.array_split(p, splits):
        p_y = part.mean(axis=0, keepdims=True)  # marginal p(y) of the split
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(part > 0, part * np.log(part / p_y), 0.0)  # p log(p / p_y), 0 log 0 = 0
        scores.append(math.exp(terms.sum(axis=1).mean()))  # exp(E_x KL(p(y|x) || p(y)))
    return float(np.mean(scores)), float(np.std(scores))
