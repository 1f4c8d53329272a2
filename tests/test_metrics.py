"""Tests for ganref.metrics: each metric against a closed form or an independent implementation, the digits
protocol against the individual metrics. Mode counting is tested in test_modes.py."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch

from ganref import metrics
from ganref.data import digits
from ganref.features import load_classifier

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=F64)

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
    # float32 input: each entry rounded by <= EPS32 / 2 (6e-8 relative), which moves FID by ~3e-9 relative here;
    # rel=1e-5 (~80 EPS32) stays far above that and far below any real error
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
    assert mean == pytest.approx(_mmd2_loops(x, y), rel=1e-10)  # float64, the same sums in another order
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


# ----------------------------------------------------------------------------- MMD with other kernels


def _mmd2_loops_kernel(x, y, k):
    """Unbiased MMD^2 for any kernel k(a, b) on two rows, pair by pair in Python floats (Gretton et al. Eq. 3)."""
    m, n = len(x), len(y)
    xx = math.fsum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = math.fsum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = math.fsum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


@pytest.mark.parametrize("bandwidth", [0.5, 1.0, 3.0])
def test_mmd2_gaussian_kernel_matches_pairwise_loops(monkeypatch, bandwidth):
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(31, 4)), 1.3 * rng.normal(size=(19, 4)) + 0.4
    gauss = lambda a, b: math.exp(-float(np.sum((a - b) ** 2)) / (2 * bandwidth**2))  # noqa: E731
    expected = _mmd2_loops_kernel(x, y, gauss)
    assert expected > 1e-3  # the sets differ: a value worth comparing
    # float64: the kernel entries are exact to ~1e-16 relative, their sums to ~1e-14 of the terms (~1)
    got = metrics.mmd2(x, y, kernel="gaussian", bandwidth=bandwidth)
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-13)
    monkeypatch.setattr(metrics, "_BLOCK_ENTRIES", 50)  # many small row blocks: the same sums
    assert metrics.mmd2(x, y, kernel="gaussian", bandwidth=bandwidth) == pytest.approx(expected, rel=1e-10, abs=1e-13)
    # h only rescales the inputs: k_h(x, y) = k_1(x / h, y / h)
    assert metrics.mmd2(x / bandwidth, y / bandwidth, kernel="gaussian") == pytest.approx(got, rel=1e-10, abs=1e-13)


def test_mmd2_gaussian_of_identical_sets_and_far_sets():
    x = np.random.default_rng(8).normal(size=(40, 3))
    # the same set: xx = yy = xy minus the diagonal share; unbiased MMD^2 = 2 (S - tr) / (m(m-1)) - 2 S / m^2
    k = np.exp(-np.sum((x[:, None] - x[None]) ** 2, -1) / 2)
    m = len(x)
    want = 2 * (k.sum() - m) / (m * (m - 1)) - 2 * k.sum() / m**2
    assert metrics.mmd2(x, x.copy(), kernel="gaussian") == pytest.approx(want, rel=1e-12)
    # sets 50 apart per coordinate: k(x, y) = exp(-3750) = 0 in float64, so MMD^2 is the mean of the
    # off-diagonal k on each side. The kernel's ||a||^2 + ||b||^2 - 2 a.b form loses eps * ||y||^2 ~ 2e-12
    # absolute on the shifted side, hence rel=1e-10 here
    far = metrics.mmd2(x, x + 50.0, kernel="gaussian")
    assert far == pytest.approx(2 * (k.sum() - m) / (m * (m - 1)), rel=1e-10)


def test_mmd2_with_a_callable_kernel():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(23, 3)), rng.normal(size=(17, 3)) + np.array([0.5, 0.0, -1.0])
    seen = []

    def linear(a, b):  # k(a, b) = a.b, called on (n, d) and (m, d) float64 blocks
        seen.append((a.dtype, b.dtype))
        return a @ b.T

    got = metrics.mmd2(x, y, kernel=linear)
    assert all(da == np.float64 and db == np.float64 for da, db in seen)
    expected = _mmd2_loops_kernel(x, y, lambda a, b: float(a @ b))
    assert got == pytest.approx(expected, rel=1e-10)
    # closed form of the linear kernel: (|S_x|^2 - sum |x_i|^2) / (m(m-1)) + (same for y) - 2 mean_x . mean_y
    sx, sy, m, n = x.sum(0), y.sum(0), len(x), len(y)
    closed = (sx @ sx - np.sum(x * x)) / (m * (m - 1)) + (sy @ sy - np.sum(y * y)) / (n * (n - 1)) \
        - 2 * (sx / m) @ (sy / n)
    assert got == pytest.approx(closed, rel=1e-10)
    # the cubic kernel passed as a callable is the default
    assert metrics.mmd2(x, y, kernel=lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3) == \
        pytest.approx(metrics.mmd2(x, y), rel=1e-12)


@pytest.mark.parametrize("kwargs, word", [
    (dict(kernel="laplace"), "kernel must be one of cubic, gaussian or a callable"),
    (dict(kernel=None), "kernel must be one of"),
    (dict(kernel="gaussian", bandwidth=0.0), "bandwidth must be"),
    (dict(kernel="gaussian", bandwidth=float("inf")), "bandwidth must be"),
    (dict(kernel="gaussian", bandwidth=True), "bandwidth must be"),
])
def test_mmd2_kernel_errors(kwargs, word):
    with pytest.raises(ValueError, match=word):
        metrics.mmd2(np.zeros((5, 2)), np.ones((5, 2)), **kwargs)


def test_mmd2_overflow_is_a_clear_error():
    with pytest.raises(ValueError, match="overflowed float64"):
        metrics.mmd2(np.full((3, 2), 1e110), np.full((3, 2), -1e110))


# ----------------------------------------------------------------------------- exact W1


def test_exact_w1_in_one_dimension_is_the_sorted_matching():
    x = _randn(300, seed=60)
    y = torch.rand(300, generator=_gen(61), dtype=F64) * 4 - 1
    expected = (x.sort().values - y.sort().values).abs().mean().item()  # mean |x_(i) - y_(i)|
    got = metrics.exact_w1(x, y)
    assert abs(got - expected) <= 1e-12
    assert abs(got - scipy.stats.wasserstein_distance(x.numpy(), y.numpy())) <= 1e-12
    assert metrics.exact_w1(x[:, None].numpy(), y[:, None].numpy()) == pytest.approx(got, abs=1e-12)


def test_exact_w1_of_a_translated_set_is_the_translation_length():
    # W1(X, X + t) = ||t||: the identity coupling costs ||t||, and f(x) = t.x / ||t|| (1-Lipschitz)
    # shows no coupling costs less.
    x = _randn(200, 2, seed=62)
    t = torch.tensor([0.3, -0.4], dtype=F64)
    assert abs(metrics.exact_w1(x, x + t) - 0.5) <= 1e-12
    assert metrics.exact_w1(x, x[torch.randperm(200, generator=_gen(63))]) == pytest.approx(0.0, abs=1e-15)


def test_exact_w1_bad_inputs():
    with pytest.raises(ValueError, match="same size"):
        metrics.exact_w1(torch.randn(5, 2), torch.randn(6, 2))
    with pytest.raises(ValueError, match="same size"):
        metrics.exact_w1(torch.randn(5, 2), torch.randn(5, 3))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.exact_w1(torch.tensor([0.0, float("nan")]), torch.zeros(2))
    with pytest.raises(ValueError, match="x must be a torch tensor"):
        metrics.exact_w1([1.0, 2.0], [1.0, 2.0])


# ----------------------------------------------------------------------------- sliced Wasserstein


def test_sliced_wasserstein_in_1d_is_exact_wasserstein():
    x, y = _randn(7, 1, seed=50), 0.5 * _randn(11, 1, seed=51) + 1.0  # different sizes
    w1 = scipy.stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy())
    assert metrics.sliced_wasserstein(x, y, n_projections=3, p=1).item() == pytest.approx(w1, rel=1e-12)
    # W_2 between 7 and 11 points equals W_2 between the 77-point copies (equal sizes: sort and match)
    xs, ys = x[:, 0].repeat(11).sort().values, y[:, 0].repeat(7).sort().values
    w2 = ((xs - ys) ** 2).mean().sqrt().item()
    assert metrics.sliced_wasserstein(x, y, n_projections=3, p=2).item() == pytest.approx(w2, rel=1e-12)


def test_sliced_wasserstein_translation_and_seed():
    x, c = _randn(50, 3, seed=52), torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    sw = metrics.sliced_wasserstein(x, x + c, n_projections=4000, seed=1).item()
    # E (omega.c)^2 = |c|^2 / d; with 4000 directions the Monte-Carlo error of the mean is ~2% (rel 0.05 = 2.5 se)
    assert sw == pytest.approx(c.norm().item() / math.sqrt(3), rel=0.05)
    perm = x[torch.randperm(50, generator=_gen(0))]
    assert metrics.sliced_wasserstein(x, perm, 16).item() == pytest.approx(0.0, abs=1e-12)
    assert metrics.sliced_wasserstein(x, x + c, 16, seed=3) == metrics.sliced_wasserstein(x, x + c, 16, seed=3)
    assert metrics.sliced_wasserstein(x, x + c, 16, seed=3) != metrics.sliced_wasserstein(x, x + c, 16, seed=4)
    assert metrics.sliced_wasserstein(x, x + c, 16).dtype == F64
    with pytest.raises(ValueError, match="same d"):
        metrics.sliced_wasserstein(x, x[:, :2])
    with pytest.raises(ValueError, match="p must be 1 or 2"):
        metrics.sliced_wasserstein(x, x, p=3)
    with pytest.raises(ValueError, match="n_projections"):
        metrics.sliced_wasserstein(x, x, n_projections=0)
    with pytest.raises(ValueError, match="x must be a non-empty tensor"):
        metrics.sliced_wasserstein(x.numpy(), x)


# ----------------------------------------------------------------------------- the digits protocol


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.fixture(scope="module")
def digit_sets():
    images, _ = digits("train")
    fake = (images[:150] + 0.3 * torch.randn(150, 1, 8, 8, generator=_gen(0))).clamp(-1, 1)  # noisy digits
    return fake, images[200:500]


def _protocol_by_hand(fake, reference, classifier, subset_size=100):
    f_ref = metrics.digit_features(reference, classifier)
    f_fake = metrics.digit_features(fake, classifier)
    probs = metrics.digit_probs(fake, classifier)
    kid, kid_std = metrics.kid(f_ref, f_fake, subsets=50, subset_size=subset_size, seed=0)
    precision, recall = metrics.precision_recall(f_ref, f_fake, k=3)
    counts = np.bincount(probs.argmax(1), minlength=10)
    p = counts[counts > 0] / counts.sum()
    return {"fid": metrics.fid(f_ref, f_fake), "kid": kid, "kid_std": kid_std, "precision": precision,
            "recall": recall, "inception_score": metrics.inception_score(probs, splits=1)[0],
            "classes": int((counts > 0).sum()), "class_kl": float(np.sum(p * np.log(10 * p)))}


def test_digit_scores_equal_the_individual_metrics(classifier, digit_sets):
    fake, reference = digit_sets
    assert metrics.DIGIT_PROTOCOL == dict(kid_subsets=50, kid_subset_size=100, kid_seed=0, pr_k=3, is_splits=1)
    got = metrics.digit_scores(fake, reference, classifier)
    want = _protocol_by_hand(fake, reference, classifier)
    assert set(got) == set(want)
    # the same functions on the same features: equal up to float64 rounding of the same sums
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key
    assert isinstance(got["classes"], int) and 1 <= got["classes"] <= 10
    assert got["fid"] > 0 and 0 < got["precision"] <= 1 and 1 <= got["inception_score"] <= 10
    # reference features instead of images (as an array or a tensor): the same numbers
    f_ref = metrics.digit_features(reference, classifier)
    for ref in (f_ref, torch.from_numpy(f_ref)):
        again = metrics.digit_scores(fake, ref, classifier)
        for key in want:
            assert again[key] == pytest.approx(got[key], rel=1e-12, abs=1e-15), key
    # classifier=None loads the shipped one
    default = metrics.digit_scores(fake, f_ref)
    assert default == pytest.approx(got, rel=1e-12, abs=1e-15)


def test_digit_scores_shrink_the_kid_subsets_for_small_sets(classifier, digit_sets):
    fake, reference = digit_sets
    got = metrics.digit_scores(fake[:60], reference, classifier)  # 60 fake rows: subsets of 60
    want = _protocol_by_hand(fake[:60], reference, classifier, subset_size=60)
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=1e-12, abs=1e-15), key


def test_digit_scores_rank_real_digits_above_noisy_ones(classifier, digit_sets):
    fake, reference = digit_sets
    images, _ = digits("test")
    real = metrics.digit_scores(images[:150], reference, classifier)
    noisy = metrics.digit_scores(fake, reference, classifier)
    assert real["classes"] == 10 and real["class_kl"] < 0.05  # held-out digits: about 10% of each
    assert real["fid"] < noisy["fid"] and real["precision"] > noisy["precision"]
    assert real["inception_score"] > noisy["inception_score"]


@pytest.mark.parametrize("reference, word", [
    (np.zeros((50, 32)), r"reference features must have shape \(M, 64\)"),
    (torch.zeros(50, 10), r"reference features must have shape \(M, 64\)"),
    (np.zeros((1, 64)), "reference must have at least 2 rows"),
    (np.full((50, 64), np.nan), "reference holds non-finite values"),
])
def test_digit_scores_bad_reference_features(classifier, digit_sets, reference, word):
    with pytest.raises(ValueError, match=word):
        metrics.digit_scores(digit_sets[0], reference, classifier)


@pytest.mark.parametrize("which", ["fake", "reference"])
def test_digit_scores_bad_images_are_refused(classifier, digit_sets, which):
    bad = torch.zeros(20, 1, 7, 7)
    args = {"fake": digit_sets[0], "reference": digit_sets[1], which: bad}
    with pytest.raises(ValueError, match=r"must have shape \(N, 1, 8, 8\)"):
        metrics.digit_scores(args["fake"], args["reference"], classifier)


@pytest.mark.parametrize("which", ["fake", "reference"])
def test_digit_scores_bad_images_name_the_argument(classifier, digit_sets, which):
    args = {"fake": digit_sets[0], "reference": digit_sets[1], which: torch.zeros(20, 1, 7, 7)}
    with pytest.raises(ValueError, match=f"^{which}"):
        metrics.digit_scores(args["fake"], args["reference"], classifier)


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
]


@pytest.mark.parametrize("fn, args, kwargs, pattern", _BAD)
def test_bad_inputs_name_the_argument(fn, args, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        fn(*args, **kwargs)
