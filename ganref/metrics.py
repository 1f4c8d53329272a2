"""Sample-quality metrics on features: FID, KID and MMD, improved precision/recall, IS, W1, sliced W.

Every metric takes plain arrays: torch tensors or NumPy arrays of shape (N, D) (features, samples
or class probabilities), is computed in float64 NumPy, and returns Python floats. Features of
8x8 digit images come from :func:`ganref.features.digit_features` (re-exported here).

Mode counting (VEEGAN coverage, stacked digits) is in :mod:`ganref.modes`.
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
features are those of a small digits classifier (:mod:`ganref.features`), not Inception-v3, so
numbers are comparable within this book, not with ImageNet-feature tables.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from torch import Tensor

from ganref.features import digit_features, digit_labels, digit_probs  # noqa: F401  (features of 8x8 digits)
from ganref.utils import check_positive, check_positive_int

__all__ = ["fid", "kid", "mmd2", "precision_recall", "knn_radii",
           "inception_score", "exact_w1", "sliced_wasserstein", "digit_scores", "digit_features", "digit_probs", "digit_labels"]

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


# ----------------------------------------------------------------------------- extreme but finite inputs
#
# Squares of values beyond ~1e154 overflow float64 and squares below ~1e-154 underflow, so FID,
# distances and k-NN balls would come out as NaN, inf, 0 or plain wrong. Metrics that scale with
# their input (FID as s^2, W1, sliced W and k-NN radii as s; precision/recall not at all) are
# computed on a copy shifted by a common centre and multiplied by a power of two, which is exact
# in floating point, then scaled back; only inputs whose largest |value| lies outside
# [2**-64, 2**64] take that path, so ordinary inputs give exactly the numbers they always did.
# KID and MMD^2 are not scale-equivariant (the cubic kernel (x.y / d + 1)^3 is not homogeneous):
# where they overflow they raise a ValueError instead of returning NaN.

_SAFE = 2.0**64


def _pow2_exponent(*arrays: np.ndarray) -> int:
    """``e`` with ``max |arrays| * 2**-e`` in [0.5, 1), or 0 where the largest |value| is in [2**-64, 2**64]."""
    top = max(float(np.abs(a).max()) for a in arrays)
    if top == 0.0 or 1.0 / _SAFE <= top <= _SAFE:
        return 0
    return math.frexp(top)[1]


def _rescaled(*arrays: np.ndarray, centre: bool = True) -> tuple[int, list[np.ndarray]]:
    """``(e, [a * 2**-e, ...])`` for extreme inputs (shifted by the first array's mean when ``centre``), else ``(0, arrays)``."""
    if _pow2_exponent(*arrays) == 0:
        return 0, list(arrays)
    if centre:
        mean = arrays[0].mean(axis=0)
        arrays = tuple(a - mean for a in arrays)
    e = _pow2_exponent(*arrays)
    return e, [np.ldexp(a, -e) for a in arrays]


def _scale_back(name: str, value: float, e: int) -> float:
    """``value * 2**e``, or a ValueError when the true value is beyond float64."""
    try:
        out = math.ldexp(value, e)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        size = math.log10(value) + e * math.log10(2.0)
        raise ValueError(f"{name} of these inputs is about 1e{size:.0f}, beyond the range of float64 "
                         "(1.8e308): rescale the inputs")
    return out




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
        the squared Frechet distance, a float >= 0 (rounding below 0 is clipped to 0). Features
        beyond [2**-64, 2**64] in size are rescaled exactly (see "extreme but finite inputs").
    Raises:
        ValueError: bad shapes or non-finite values, or a distance beyond float64's range.
    """
    x = _as_matrix("real", real, min_rows=2)
    y = _as_matrix("fake", fake, min_rows=2)
    _same_dim("real", x, "fake", y)
    e, (x, y) = _rescaled(x, y)  # extreme inputs: d^2 of (x, y) * 2**-e, times 2**(2e) below
    mu_r, mu_f = x.mean(axis=0), y.mean(axis=0)
    s_r = np.atleast_2d(np.cov(x, rowvar=False))  # (D, D)
    s_f = np.atleast_2d(np.cov(y, rowvar=False))
    root_r = _psd_sqrt(s_r)  # Sigma_r^{1/2}
    middle = root_r @ s_f @ root_r  # Sigma_r^{1/2} Sigma_f Sigma_r^{1/2}, symmetric PSD
    middle = (middle + middle.T) / 2  # remove rounding asymmetry before eigvalsh
    tr_sqrt = np.sqrt(_psd_eigvals(np.linalg.eigvalsh(middle))).sum()  # Tr((.)^{1/2})
    d2 = np.sum((mu_r - mu_f) ** 2) + np.trace(s_r) + np.trace(s_f) - 2 * tr_sqrt  # Eq. (6)
    return _scale_back("FID", float(max(d2, 0.0)), 2 * e)


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
    Raises:
        ValueError: bad arguments, or features so large that the kernel overflows float64.
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
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, as an error
        for i in range(subsets):
            idx_r = rng.choice(len(x), subset_size, replace=False)
            idx_f = rng.choice(len(y), subset_size, replace=False)
            values[i] = _mmd2_unbiased(x[idx_r], y[idx_f])
        mean, std = float(values.mean()), float(values.std())
    if not (math.isfinite(mean) and math.isfinite(std)):
        raise ValueError("KID overflowed float64: the cubic kernel (x.y / d + 1)^3 of features this large "
                         f"(largest |value| {max(np.abs(x).max(), np.abs(y).max()):.3g}) is beyond float64, "
                         "and KID is not scale-invariant; rescale the features")
    return mean, std


def _gaussian_kernel(bandwidth: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # exp(-||a - b||^2 / (2 h^2))
        sq = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2 * a @ b.T
        return np.exp(-np.maximum(sq, 0.0) / (2 * bandwidth**2))
    return k


KERNELS = ("cubic", "gaussian")


def mmd2(real: object, fake: object, kernel: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "cubic",
         bandwidth: float = 1.0) -> float:
    r"""The unbiased MMD^2 over *all* rows of both sets (no subsets), for a chosen kernel.

    With the default ``kernel="cubic"`` this is KID's estimate on the full sets: :func:`kid` averages
    the same estimate over random subsets of equal size, and since each subset's estimate is
    unbiased, its expectation is exactly this number (the sets may differ in size). ``"gaussian"``
    uses :math:`\exp(-\|x - y\|^2 / 2h^2)` with ``h = bandwidth``; a callable ``k(a, b) -> (n, m)``
    on float64 arrays gives any other kernel (e.g. an NTK). Kernel blocks are summed row block by
    row block, so memory stays bounded for any N; time is O((N + M)^2 D).

    Args:
        real, fake: (N, D) and (M, D) features, N, M >= 2.
        kernel: ``"cubic"``, ``"gaussian"`` or a callable.
        bandwidth: h of the Gaussian kernel (> 0); ignored otherwise.
    Returns:
        :math:`\frac{1}{N(N-1)}\sum_{i \ne j} k(x_i, x_j) + \frac{1}{M(M-1)}\sum_{i \ne j} k(y_i, y_j)
        - \frac{2}{NM}\sum_{i, j} k(x_i, y_j)` (Gretton et al. 2012, Eq. (3)); it can be below 0.
    """
    x = _as_matrix("real", real, min_rows=2)
    y = _as_matrix("fake", fake, min_rows=2)
    _same_dim("real", x, "fake", y)
    if callable(kernel):
        k = kernel
    elif kernel == "cubic":
        k = _cubic_kernel
    elif kernel == "gaussian":
        k = _gaussian_kernel(check_positive("bandwidth", bandwidth))
    else:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)} or a callable k(a, b), got {kernel!r}")

    def kernel_sum(a: np.ndarray, b: np.ndarray) -> float:  # sum_{i, j} k(a_i, b_j), in row blocks
        rows = _block_rows(len(b))
        return float(sum(np.sum(k(a[s:s + rows], b)) for s in range(0, len(a), rows)))

    def diagonal(a: np.ndarray) -> float:  # sum_i k(a_i, a_i)
        rows = min(len(a), 256)
        return float(sum(np.trace(k(a[s:s + rows], a[s:s + rows])) for s in range(0, len(a), rows)))

    m, n = len(x), len(y)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below, as an error
        term_xx = (kernel_sum(x, x) - diagonal(x)) / (m * (m - 1))  # mean over i != j
        term_yy = (kernel_sum(y, y) - diagonal(y)) / (n * (n - 1))
        value = term_xx + term_yy - 2 * kernel_sum(x, y) / (m * n)  # Eq. (3)
    if not math.isfinite(value):
        raise ValueError("MMD^2 overflowed float64: the features are too large for this kernel "
                         f"(largest |value| {max(np.abs(x).max(), np.abs(y).max()):.3g}); rescale them")
    return value


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
    x = x - x.mean(axis=0)
    e, (x,) = _rescaled(x, centre=False)  # extreme inputs: radii of x * 2**-e, times 2**e below
    radii = np.ldexp(np.sqrt(_knn_sq_radii(x, k)), e)
    if not np.isfinite(radii).all():
        raise ValueError("k-NN radii of these points are beyond the range of float64: rescale them")
    return radii


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
    _, (x, y) = _rescaled(x, y, centre=False)  # extreme inputs: the same balls, times 2**-e (exact)
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
    e, (a, b) = _rescaled(a, b)  # extreme inputs: W1 of (a, b) * 2**-e, times 2**e below
    cost = cdist(a, b)  # (N, N) ||x_i - y_j||_2
    rows, cols = linear_sum_assignment(cost)
    return _scale_back("W1", float(cost[rows, cols].mean()), e)


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int = 128, seed: int = 0, p: int = 2) -> Tensor:
    r"""Sliced Wasserstein distance :math:`(E_\omega W_p^p(\omega^\top x, \omega^\top y))^{1/p}`, float64.

    Directions :math:`\omega` are uniform on the sphere, drawn from ``seed``; each 1-D :math:`W_p`
    between the two empirical measures (sizes may differ) is exact: the integral over
    :math:`u \in [0, 1]` of :math:`|F^{-1}(u) - G^{-1}(u)|^p` with piecewise-constant quantiles.

    Args:
        x: (n, d); y: (m, d). n_projections: directions >= 1. seed: their seed. p: 1 or 2.
    Returns:
        scalar float64 tensor.
    """
    for name, v in (("x", x), ("y", y)):
        if not isinstance(v, Tensor) or v.ndim != 2 or len(v) == 0:
            raise ValueError(f"{name} must be a non-empty tensor of shape (N, d), got "
                             f"{tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} features but y has {y.shape[1]}: both must be (N, d) with the same d")
    check_positive_int("n_projections", n_projections)
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    gen = torch.Generator().manual_seed(check_positive_int("seed", seed, minimum=0))
    omega = torch.randn(n_projections, x.shape[1], generator=gen, dtype=torch.float64).to(x.device)
    omega = omega / omega.norm(dim=1, keepdim=True)  # (P, d) unit directions
    x, y = x.detach().to(torch.float64), y.detach().to(torch.float64)
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("x and y must hold finite values (no NaN or inf)")
    top = max(float(x.abs().max()), float(y.abs().max()))
    e = 0 if top == 0.0 or 1.0 / _SAFE <= top <= _SAFE else math.frexp(top)[1]
    if e:  # extreme inputs: SW of (x - c, y - c) * 2**-e (exact), times 2**e below
        c = x.mean(dim=0)
        x, y = x - c, y - c
        e = _pow2_exponent(x.cpu().numpy(), y.cpu().numpy())
        for step in (-e // 2, -e - (-e // 2)):  # two factors: 2.0**1074 alone would overflow
            x, y = x * 2.0**step, y * 2.0**step
    px = (x @ omega.T).sort(dim=0).values  # (n, P) sorted projections
    py = (y @ omega.T).sort(dim=0).values  # (m, P)
    n, m = len(px), len(py)
    opts = dict(dtype=torch.float64, device=px.device)
    levels = torch.unique(torch.cat([torch.arange(1, n + 1, **opts) / n, torch.arange(1, m + 1, **opts) / m]))
    widths = torch.diff(levels, prepend=levels.new_zeros(1))  # quantile pieces, (L,)
    mid = levels - widths / 2
    ix = (mid * n).floor().long().clamp(max=n - 1)  # F^{-1}(u) = px[floor(u n)] on the piece
    iy = (mid * m).floor().long().clamp(max=m - 1)
    cost = (widths[:, None] * (px[ix] - py[iy]).abs() ** p).sum(0)  # W_p^p per direction, (P,)
    value = cost.mean() ** (1.0 / p)
    if e:
        value = value.new_tensor(_scale_back("sliced Wasserstein distance", float(value), e))
    return value


# ----------------------------------------------------------------------------- one protocol for the digits

#: The book's one protocol for 8x8 digit images: every chapter that scores digits calls this.
DIGIT_PROTOCOL = dict(kid_subsets=50, kid_subset_size=100, kid_seed=0, pr_k=3, is_splits=1)


def digit_scores(fake: object, reference: object, classifier: object | None = None) -> dict[str, float]:
    """Every digit metric of generated 8x8 images against a reference, with the book's one protocol.

    FID and improved precision/recall (k = 3) on the classifier's 64 features; KID as the mean and
    std over 50 subsets of 100 rows (seed 0; fewer rows when a set is smaller); the Inception Score
    of the classifier's probabilities in one split (small N: splitting only adds bias); and the
    predicted-class histogram: how many of the 10 digits appear, and its KL to uniform (nats).

    Args:
        fake: (N, 1, 8, 8) generated images in [-1, 1].
        reference: (M, 1, 8, 8) real images, or their (M, 64) features from
            :func:`ganref.features.digit_features` (pass features to score many sets against one reference).
        classifier: the digits classifier; ``None`` loads the shipped one.
    Returns:
        ``{"fid", "kid", "kid_std", "precision", "recall", "inception_score", "classes", "class_kl"}``.
    """
    from ganref.features import N_CLASSES, N_FEATURES, _images, load_classifier

    classifier = classifier if classifier is not None else load_classifier()
    if isinstance(reference, (torch.Tensor, np.ndarray)) and reference.ndim == 2:
        if reference.shape[1] != N_FEATURES:
            raise ValueError(f"reference features must have shape (M, {N_FEATURES}), got {tuple(reference.shape)}")
        f_ref = _as_matrix("reference", reference, min_rows=2)
    else:
        f_ref = digit_features(_images("reference", reference), classifier)
    fake = _images("fake", fake)  # (N, 1, 8, 8), named in errors
    f_fake = digit_features(fake, classifier)  # (N, 64)
    probs = digit_probs(fake, classifier)  # (N, 10)
    size = min(DIGIT_PROTOCOL["kid_subset_size"], len(f_ref), len(f_fake))
    kid_mean, kid_std = kid(f_ref, f_fake, subsets=DIGIT_PROTOCOL["kid_subsets"], subset_size=size,
                            seed=DIGIT_PROTOCOL["kid_seed"])
    precision, recall = precision_recall(f_ref, f_fake, k=DIGIT_PROTOCOL["pr_k"])
    counts = np.bincount(probs.argmax(1), minlength=N_CLASSES)
    share = counts[counts > 0] / counts.sum()
    return {"fid": fid(f_ref, f_fake), "kid": kid_mean, "kid_std": kid_std, "precision": precision,
            "recall": recall, "inception_score": inception_score(probs, splits=DIGIT_PROTOCOL["is_splits"])[0],
            "classes": int((counts > 0).sum()), "class_kl": float(max(np.sum(share * np.log(N_CLASSES * share)), 0.0))}
