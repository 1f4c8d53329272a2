"""Tests for ganref/benchmark.py: ceilings against closed forms and brute force, the stacked-digit
mode counter on real data and on a one-image generator, seed summaries, discriminator rejection."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from ganref import benchmark, data
from ganref.features import load_classifier
from ganref.modes import expected_modes, stacked_modes


def test_high_quality_ceiling_is_the_chi_square_cdf():
    assert benchmark.high_quality_ceiling(3.0, 2) == pytest.approx(1 - math.exp(-4.5), rel=0, abs=1e-15)
    assert benchmark.high_quality_ceiling(3.0, 1) == pytest.approx(math.erf(3 / math.sqrt(2)), rel=0, abs=1e-15)
    assert benchmark.high_quality_ceiling(2.0, 3) == pytest.approx(scipy.stats.chi2.cdf(4.0, 3), rel=1e-13)
    with pytest.raises(ValueError, match="threshold"):
        benchmark.high_quality_ceiling(-1.0)


def test_high_quality_ceiling_matches_real_grid_samples():
    grid = data.grid25()
    from ganref.modes import mode_coverage
    hq = mode_coverage(grid.sample(100_000, torch.Generator().manual_seed(0)), grid.means, grid.std)["high_quality"]
    p = benchmark.high_quality_ceiling()
    assert abs(hq - p) < 4 * math.sqrt(p * (1 - p) / 100_000)  # 4 binomial standard errors (0.13 points)


def test_confusion_and_marginal_by_hand():
    c = benchmark.confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 2, 0]), n_classes=3)
    np.testing.assert_array_equal(c, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    np.testing.assert_allclose(benchmark.predicted_marginal(c), [2 / 6, 2 / 6, 2 / 6], rtol=1e-15)
    with pytest.raises(ValueError, match="same shape"):
        benchmark.confusion_matrix(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        benchmark.confusion_matrix(np.array([0, 3]), np.array([0, 1]), n_classes=3)


def test_stacked_mode_probs_are_the_product_of_channel_marginals():
    q = np.array([0.5, 0.3, 0.2])
    p = benchmark.stacked_mode_probs(q, channels=3)
    assert p.shape == (27,) and p.sum() == pytest.approx(1.0, abs=1e-15)
    assert p[1 * 9 + 2 * 3 + 0] == pytest.approx(0.3 * 0.2 * 0.5, rel=1e-15)  # mode (1, 2, 0)
    np.testing.assert_allclose(benchmark.stacked_mode_probs(np.full(10, 0.1)), np.full(1000, 1e-3), rtol=1e-12)


def test_expected_coverage_by_brute_force_and_for_equal_modes():
    p, n = np.array([0.5, 0.3, 0.2]), 4
    counts = []
    weights = []
    for seq in itertools.product(range(3), repeat=n):  # all 81 sequences of 4 draws
        counts.append(len(set(seq)))
        weights.append(np.prod(p[list(seq)]))
    counts, weights = np.array(counts), np.array(weights)
    mean = float(weights @ counts)
    std = math.sqrt(float(weights @ (counts - mean) ** 2))
    got = benchmark.expected_coverage(p, n)
    assert got[0] == pytest.approx(mean, rel=1e-13) and got[1] == pytest.approx(std, rel=1e-11)
    for n_samples, k in ((1000, 1000), (26_000, 1000), (50, 25)):
        np.testing.assert_allclose(benchmark.expected_coverage(np.full(k, 1 / k), n_samples),
                                   expected_modes(n_samples, k), rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def pool_predictions():
    classifier = load_classifier()
    images, labels = data.digits("all")
    with torch.no_grad():
        pred = classifier(images).argmax(1).numpy()  # (1797,) one digit image at a time
    return classifier, labels.numpy(), pred


def test_stacked_mode_counter_classifies_each_channel_on_its_own(pool_predictions):
    classifier = pool_predictions[0]
    images, _ = data.stacked_digits(500, seed=3)
    with torch.no_grad():  # an independent per-channel pass: three (N, 1, 8, 8) batches
        cols = [classifier(images[:, c:c + 1]).argmax(1).numpy() for c in range(3)]
    expected = stacked_modes(np.stack(cols, axis=1))
    assert benchmark.stacked_digit_modes(images, classifier) == expected


def test_real_stacked_digits_reach_the_classifier_limited_ceiling(pool_predictions):
    classifier, labels, pred = pool_predictions
    q = benchmark.predicted_marginal(benchmark.confusion_matrix(labels, pred))  # sum_t pi_t C_tk
    small = benchmark.stacked_ceiling(q, 2000)
    got = benchmark.stacked_digit_modes(data.stacked_digits(2000, seed=11)[0], classifier)
    assert abs(got["modes"] - small["modes"]) < 4 * small["modes_std"]  # ~865 +- 9 modes
    large = benchmark.stacked_ceiling(q, 20_000)
    got = benchmark.stacked_digit_modes(data.stacked_digits(20_000, seed=12)[0], classifier)
    assert got["modes"] == 1000 and large["modes"] > 999.99
    # plug-in KL = KL(p || U) + (K - 1) / 2n + O(n^-2); its sd is about sqrt((K - 1) / 2) / n = 0.0011
    assert abs(got["kl"] - large["kl_finite"]) < 0.004 and large["kl"] < 0.005


def test_a_generator_that_always_returns_one_image_gets_one_mode(pool_predictions):
    one = data.stacked_digits(1, seed=0)[0]
    result = benchmark.stacked_digit_modes(one.repeat(300, 1, 1, 1), pool_predictions[0])
    assert result["modes"] == 1 and result["kl"] == pytest.approx(math.log(1000), rel=1e-12)


def test_seed_summaries():
    s = benchmark.seed_summary([1.0, 2.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0, "per_seed": [1.0, 2.0, 3.0]}
    assert benchmark.seed_summary([4])["std"] == 0.0
    rows = [{"modes": 25, "high_quality": 0.9}, {"modes": 24, "high_quality": 0.8}]
    out = benchmark.summarize_runs(rows, keys=("modes", "high_quality"))
    assert out["modes"]["mean"] == 24.5 and out["high_quality"]["std"] == pytest.approx(math.sqrt(0.005))
    with pytest.raises(ValueError, match="missing"):
        benchmark.summarize_runs(rows)
    with pytest.raises(ValueError, match="at least one"):
        benchmark.seed_summary([])


class Identity(nn.Module):
    z_dim = 2

    def forward(self, z):
        return z


def test_top_scored_keeps_the_best_scored_share_in_drawing_order():
    from ganref.nets import sample
    D = lambda x: -x.norm(dim=1)  # noqa: E731  "real" near the origin
    D_module = nn.Sequential()  # parameters for the device lookup
    D_module.forward = D  # type: ignore[method-assign]
    D_module.register_parameter("w", nn.Parameter(torch.zeros(1)))
    everything = sample(Identity(), 1000, 5)
    kept = benchmark.top_scored(Identity(), D_module, 800, 5, keep=0.8)
    radius = everything.norm(dim=1)
    expected = everything[radius <= radius.sort().values[799]]
    assert torch.equal(kept, expected)
    assert torch.equal(benchmark.top_scored(Identity(), D_module, 50, 5, keep=1.0), sample(Identity(), 50, 5))
    with pytest.raises(ValueError, match="keep"):
        benchmark.top_scored(Identity(), D_module, 50, 5, keep=0.0)
