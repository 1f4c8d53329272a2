"""Tests for ganref.metrics: each metric against a closed form or an independent implementation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ganref import metrics
from ganref.data import grid25, ring8

# ----------------------------------------------------------------------------- mode coverage


def test_mode_coverage_one_sample_per_mode_is_perfect():
    means = ring8().means
    out = metrics.mode_coverage(means.clone(), means, std=0.02)
    assert out == {"modes": 8, "n_modes": 8, "high_quality": 1.0, "kl": 0.0}


def test_mode_coverage_constructed_counts():
    means = ring8().means.numpy()  # (8, 2), radius 2, std 0.02
    std = 0.02
    direction = np.array([1.0, 0.0])
    samples = np.concatenate([
        means[[0, 0, 0]] + 2.9 * std * direction,  # 3 high quality at mode 0 (2.9 sigma away)
        means[[1]] - 1.0 * std * direction,  # 1 high quality at mode 1
        means[[2]] + 3.1 * std * direction,  # nearest mode 2, but 3.1 sigma: low quality
        np.zeros((3, 2)),  # the centre: 100 sigma from every mode
    ])
    out = metrics.mode_coverage(samples, means, std=std)
    q = np.array([3, 1]) / 4  # histogram of the 4 high-quality samples over modes 0 and 1
    assert out["modes"] == 2
    assert out["n_modes"] == 8
    assert out["high_quality"] == pytest.approx(4 / 8, abs=1e-15)
    assert out["kl"] == pytest.approx(float(np.sum(q * np.log(q / (1 / 8)))), rel=1e-12)
    # a looser threshold lets the 3.1-sigma sample in: mode 2 is recovered as well
    loose = metrics.mode_coverage(samples, means, std=std, threshold=3.2)
    assert loose["modes"] == 3 and loose["high_quality"] == pytest.approx(5 / 8, abs=1e-15)


def test_mode_coverage_no_high_quality_sample_gives_log_k():
    g = grid25()
    far = g.means + 1.0  # every point 1/sqrt(2) * 2 from its nearest mode: > 3 * 0.05
    out = metrics.mode_coverage(far, g.means, std=g.std)
    assert out == {"modes": 0, "n_modes": 25, "high_quality": 0.0, "kl": math.log(25)}


def test_mode_coverage_total_collapse_is_log_k_too():
    means = ring8().means
    out = metrics.mode_coverage(means[[3] * 50], means, std=0.02)
    assert out["modes"] == 1 and out["high_quality"] == 1.0
    assert out["kl"] == pytest.approx(math.log(8), rel=1e-12)


def test_mode_coverage_true_mixture_matches_chi_square_tail():
    # A sample from the mixture itself: in D = 2 the squared distance / std^2 is chi^2_2, so
    # P(high quality) = P(chi^2_2 <= 9) = 1 - exp(-9/2).
    mix = ring8()
    n = 20_000
    x = mix.sample(n, torch.Generator().manual_seed(0))
    out = metrics.mode_coverage(x, mix.means, std=mix.std)
    p = 1 - math.exp(-4.5)
    assert out["modes"] == 8
    assert abs(out["high_quality"] - p) < 5 * math.sqrt(p * (1 - p) / n)  # 5 binomial std
    # multinomial counts of an even mixture: E[KL] ~ (K - 1) / (2 N) = 1.8e-4
    assert 0.0 <= out["kl"] < 1e-3


def test_mode_coverage_tensor_and_array_agree():
    mix = grid25()
    x = mix.sample(500, torch.Generator().manual_seed(1))
    assert metrics.mode_coverage(x, mix.means, mix.std) == metrics.mode_coverage(
        x.numpy(), mix.means.numpy(), mix.std)


@pytest.mark.parametrize("kwargs, word", [
    (dict(samples=np.zeros((4, 3)), means=np.zeros((8, 2)), std=0.1), "samples"),
    (dict(samples=np.zeros(4), means=np.zeros((8, 2)), std=0.1), "samples"),
    (dict(samples=np.zeros((4, 2)), means=np.zeros((2, 8, 2)), std=0.1), "means"),
    (dict(samples=np.array([[0.0, np.nan]]), means=np.zeros((8, 2)), std=0.1), "samples"),
    (dict(samples=np.zeros((4, 2)), means=np.full((8, 2), np.inf), std=0.1), "means"),
    (dict(samples=np.zeros((4, 2)), means=np.zeros((8, 2)), std=0.0), "std"),
    (dict(samples=np.zeros((4, 2)), means=np.zeros((8, 2)), std=0.1, threshold=-1.0), "threshold"),
    (dict(samples=[[0.0, 1.0]], means=np.zeros((8, 2)), std=0.1), "samples"),
])
def test_mode_coverage_bad_inputs(kwargs, word):
    with pytest.raises(ValueError, match=word):
        metrics.mode_coverage(**kwargs)


# ----------------------------------------------------------------------------- stacked modes


def test_stacked_modes_every_mode_once_is_uniform():
    grid = np.stack(np.meshgrid(*[np.arange(10)] * 3, indexing="ij"), axis=-1).reshape(-1, 3)  # (1000, 3)
    assert metrics.stacked_modes(grid) == {"modes": 1000, "n_modes": 1000, "kl": 0.0}
    assert metrics.stacked_modes(torch.from_numpy(grid)) == {"modes": 1000, "n_modes": 1000, "kl": 0.0}


def test_stacked_modes_constructed_histogram():
    labels = np.array([[1, 2, 3]] * 6 + [[3, 2, 1]] * 2)  # two modes (123 and 321), 3:1
    out = metrics.stacked_modes(labels)
    p = np.array([0.75, 0.25])
    assert out["modes"] == 2 and out["n_modes"] == 1000
    assert out["kl"] == pytest.approx(float(np.sum(p * np.log(1000 * p))), rel=1e-12)
    collapsed = metrics.stacked_modes(np.zeros((50, 3), dtype=np.int64))
    assert collapsed["modes"] == 1 and collapsed["kl"] == pytest.approx(math.log(1000), rel=1e-12)
    # two channels of 4 classes: 16 modes
    assert metrics.stacked_modes(np.array([[0, 3], [3, 0], [3, 3]]), n_classes=4)["n_modes"] == 16


@pytest.mark.parametrize("labels, n_classes, word", [
    (np.array([[0, 1, 10]]), 10, "labels3"),
    (np.array([[0, -1, 2]]), 10, "labels3"),
    (np.array([0, 1, 2]), 10, "labels3"),
    (np.array([[0.0, 1.0, 2.0]]), 10, "labels3"),
    ([[0, 1, 2]], 10, "labels3"),
    (np.array([[0, 1, 2]]), 1, "n_classes"),
])
def test_stacked_modes_bad_inputs(labels, n_classes, word):
    with pytest.raises(ValueError, match=word):
        metrics.stacked_modes(labels, n_classes=n_classes)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_expected_modes_matches_exact_enumeration(n, k):
    # every one of the K^n equally likely draw sequences, its number of distinct modes counted
    counts = np.array([len(set(seq)) for seq in itertools.product(range(k), repeat=n)], dtype=np.float64)
    mean, std = metrics.expected_modes(n, k)
    assert mean == pytest.approx(counts.mean(), rel=1e-12, abs=1e-12)
    assert std == pytest.approx(counts.std(), rel=1e-9, abs=1e-12)


def test_expected_modes_large_k_matches_the_poisson_limit_and_simulation():
    mean, std = metrics.expected_modes(2000, 1000)
    assert mean == pytest.approx(1000 * (1 - (1 - 1e-3) ** 2000), rel=1e-12)
    assert mean == pytest.approx(1000 * (1 - math.exp(-2)), rel=2e-3)  # K(1 - e^{-n/K}) for large K
    rng = np.random.default_rng(0)
    sims = np.array([np.unique(rng.integers(0, 1000, 2000)).size for _ in range(1000)])
    assert sims.mean() == pytest.approx(mean, abs=4 * std / math.sqrt(len(sims)))  # 4 standard errors
    assert sims.std() == pytest.approx(std, rel=0.1)  # a std estimated from 1000 draws is off by ~2.2%


# ----------------------------------------------------------------------------- FID


def _gaussians(n=400, d=5, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    x = rng.normal(size=(n, d)) @ a + 0.5
    y = rng.normal(size=(n, d)) @ (a + 0.5 * rng.normal(size=(d, d))) - 0.3
    return x, y


def test_fid_matches_closed_form_with_scipy_sqrtm():
    from scipy.linalg import sqrtm

    x, y = _gaussians()
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root1 = sqrtm(s1)
    cross = sqrtm(root1 @ s2 @ root1)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * cross.real)
    assert metrics.fid(x, y) == pytest.approx(expected, rel=1e-6)
    assert metrics.fid(torch.from_numpy(x), torch.from_numpy(y).float()) == pytest.approx(expected, rel=1e-5)


def test_fid_identity_symmetry_and_one_dimension():
    x, y = _gaussians()
    assert abs(metrics.fid(x, x)) < 1e-9
    assert metrics.fid(x, y) == pytest.approx(metrics.fid(y, x), rel=1e-9)
    # D = 1: the W2 distance of two Gaussians, (m1 - m2)^2 + (s1 - s2)^2
    a, b = x[:, :1], 3 * y[:, 1:2]
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert metrics.fid(a, b) == pytest.approx(expected, rel=1e-10)


def test_fid_translation_of_a_rank_deficient_set_is_the_squared_shift():
    # N < D: singular covariances, where a naive sqrtm goes complex; equal covariances give ||c||^2.
    x = np.random.default_rng(3).normal(size=(10, 32))
    c = np.linspace(-1, 1, 32)
    assert metrics.fid(x, x + c) == pytest.approx(float(c @ c), rel=1e-10)


# ----------------------------------------------------------------------------- KID


def _mmd2_loops(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, written pair by pair (Gretton et al. 2012, Eq. 3)."""
    m, n, d = len(x), len(y), x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_single_full_subset_matches_pairwise_loops():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 6))
    y = 1.2 * rng.normal(size=(120, 6)) + 0.2
    mean, std = metrics.kid(x, y, subsets=1, subset_size=120)
    assert mean == pytest.approx(_mmd2_loops(x, y), rel=1e-6)
    assert std == 0.0


def test_kid_same_distribution_is_near_zero_and_a_shift_is_not():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    mean, std = metrics.kid(x, y, subsets=30, subset_size=400)
    # each subset estimate is unbiased for MMD^2 = 0 with spread std; their mean (of correlated
    # estimates) has a spread of at most std, so |mean| < 3 std holds at the 3-sigma level.
    assert std > 0 and abs(mean) < 3 * std
    shifted, shifted_std = metrics.kid(x, y + 0.5, subsets=30, subset_size=400)
    assert shifted > 10 * shifted_std
    assert metrics.kid(x, y, subsets=5, subset_size=100, seed=7) == metrics.kid(x, y, subsets=5, subset_size=100, seed=7)
    assert metrics.kid(x, y, subsets=5, subset_size=100, seed=7) != metrics.kid(x, y, subsets=5, subset_size=100, seed=8)


def test_mmd2_matches_pairwise_loops_for_unequal_sizes(monkeypatch):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(37, 5)), 0.8 * rng.normal(size=(23, 5)) + 0.3
    expected = _mmd2_loops(x, y)
    assert metrics.mmd2(x, y) == pytest.approx(expected, rel=1e-10)
    monkeypatch.setattr(metrics, "_BLOCK_ENTRIES", 64)  # many small row blocks: the same sums
    assert metrics.mmd2(x, y) == pytest.approx(expected, rel=1e-10)
    assert metrics.mmd2(torch.from_numpy(x), y) == pytest.approx(expected, rel=1e-10)


def test_kid_averaged_over_every_subset_pair_equals_mmd2_of_the_full_sets():
    # KID's subset average is unbiased for mmd2 of the full sets: enumerate all C(6,3)^2 subset pairs
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
    subsets = list(itertools.combinations(range(6), 3))
    values = [_mmd2_loops(x[list(a)], y[list(b)]) for a in subsets for b in subsets]
    assert np.mean(values) == pytest.approx(metrics.mmd2(x, y), rel=1e-10)
    # and with one subset of all rows, kid is mmd2
    assert metrics.kid(x, y, subsets=1, subset_size=6)[0] == pytest.approx(metrics.mmd2(x, y), rel=1e-12)


# ----------------------------------------------------------------------------- precision / recall


def _pr_brute_force(real, fake, k):
    """Improved P/R from scikit-learn's exact neighbours and full distance matrices."""
    from sklearn.metrics import pairwise_distances
    from sklearn.neighbors import NearestNeighbors

    def radii(a):
        dist, _ = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(a).kneighbors(a)
        return dist[:, k]  # column 0 is the point itself

    d = pairwise_distances(fake, real)  # (M, N)
    precision = np.mean((d <= radii(real)[None, :]).any(axis=1))
    recall = np.mean((d.T <= radii(fake)[None, :]).any(axis=1))
    return precision, recall, radii(real)


@pytest.mark.parametrize("block", [None, 1000])
def test_precision_recall_matches_sklearn_brute_force(monkeypatch, block):
    if block is not None:  # force many small blocks (a 700-column block holds 1 row)
        monkeypatch.setattr(metrics, "_BLOCK_ENTRIES", block)
    rng = np.random.default_rng(4)
    real = rng.normal(size=(700, 8))
    fake = 0.7 * rng.normal(size=(500, 8)) + 0.8
    for k in (1, 3, 5):
        p, r, radii = _pr_brute_force(real, fake, k)
        assert metrics.precision_recall(real, fake, k=k) == (p, r)
        np.testing.assert_allclose(metrics.knn_radii(real, k=k), radii, rtol=1e-10)
        assert 0.05 < p < 0.95 and 0.05 < r < 0.95  # a case where both are informative


def test_precision_recall_constructed_answers():
    rng = np.random.default_rng(5)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    real = np.concatenate([c + rng.normal(size=(100, 2)) for c in centres])  # 4 modes of 100 points
    assert metrics.precision_recall(real, real.copy()) == (1.0, 1.0)
    assert metrics.precision_recall(real, real + 1000.0) == (0.0, 0.0)
    # fake covers only modes 0 and 1 (exactly their real points): precision stays 1, recall halves
    assert metrics.precision_recall(real, real[:200]) == (1.0, 0.5)
    assert metrics.precision_recall(torch.from_numpy(real), torch.from_numpy(real[:200])) == (1.0, 0.5)


# ----------------------------------------------------------------------------- Inception Score


def test_inception_score_extremes():
    c = 10
    confident_uniform = np.eye(c)[np.arange(1000) % c]  # each split holds every class equally often
    mean, std = metrics.inception_score(confident_uniform, splits=10)
    assert mean == pytest.approx(c, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    assert metrics.inception_score(np.eye(c)[np.zeros(100, dtype=int)], splits=5) == (1.0, 0.0)
    assert metrics.inception_score(np.full((100, c), 1 / c), splits=5)[0] == pytest.approx(1.0, rel=1e-12)


def test_inception_score_matches_scipy_rel_entr():
    from scipy.special import rel_entr

    probs = np.random.default_rng(6).dirichlet(0.3 * np.ones(7), size=600)
    expected = [np.exp(rel_entr(part, part.mean(0)).sum(1).mean()) for part in np.split(probs, 4)]
    mean, std = metrics.inception_score(torch.from_numpy(probs), splits=4)
    assert mean == pytest.approx(np.mean(expected), rel=1e-10)
    assert std == pytest.approx(np.std(expected), rel=1e-8)


# ----------------------------------------------------------------------------- bad inputs

_X = np.zeros((20, 4))
_BAD = [
    (metrics.fid, (np.zeros((20, 4)), np.zeros((20, 3))), {}, "real .*fake|same D"),
    (metrics.fid, (np.zeros((20, 4, 1)), _X), {}, "real"),
    (metrics.fid, (_X, np.full((20, 4), np.nan)), {}, "fake"),
    (metrics.fid, (np.zeros((1, 4)), _X), {}, "real"),
    (metrics.kid, (np.zeros((20, 4)), np.zeros((20, 3))), {}, "same D"),
    (metrics.kid, (_X, _X), {"subset_size": 21}, "subset_size"),
    (metrics.kid, (_X, _X), {"subset_size": 1}, "subset_size"),
    (metrics.kid, (_X, _X), {"subsets": 0, "subset_size": 10}, "subsets"),
    (metrics.kid, (np.array([[np.inf] * 4] * 20), _X), {"subset_size": 10}, "real"),
    (metrics.kid, (_X, np.zeros(20)), {"subset_size": 10}, "fake"),
    (metrics.precision_recall, (np.zeros((20, 4)), np.zeros((20, 3))), {}, "same D"),
    (metrics.precision_recall, (np.zeros((3, 4)), _X), {"k": 3}, "real .*k=3"),
    (metrics.precision_recall, (_X, np.zeros((3, 4))), {"k": 3}, "fake .*k=3"),
    (metrics.precision_recall, (_X, _X), {"k": 0}, "k"),
    (metrics.precision_recall, (_X, np.full((20, 4), -np.inf)), {}, "fake"),
    (metrics.precision_recall, ("real", _X), {}, "real"),
    (metrics.inception_score, (np.full((20, 4), 0.3),), {}, "probs"),
    (metrics.inception_score, (np.eye(4)[[0] * 5],), {"splits": 10}, "probs .*splits"),
    (metrics.inception_score, (np.eye(4)[[0] * 5],), {"splits": 0}, "splits"),
    (metrics.inception_score, (np.ones(10),), {}, "probs"),
    (metrics.knn_radii, (np.zeros((3, 2)),), {"k": 3}, "k=3"),
    (metrics.mmd2, (np.zeros((20, 4)), np.zeros((20, 3))), {}, "same D"),
    (metrics.mmd2, (np.zeros((1, 4)), _X), {}, "real .*at least 2 rows"),
    (metrics.mmd2, (_X, np.full((20, 4), np.nan)), {}, "fake"),
    (metrics.expected_modes, (0, 10), {}, "n_samples"),
    (metrics.expected_modes, (10, 0), {}, "n_modes"),
    (metrics.expected_modes, (10, 2.5), {}, "n_modes"),
]


@pytest.mark.parametrize("fn, args, kwargs, pattern", _BAD)
def test_bad_inputs_name_the_argument(fn, args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fn(*args, **kwargs)
