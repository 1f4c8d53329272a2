"""Metrics on extreme but finite inputs (issue 11, item 8): a right number or a clear ValueError, never NaN.

Before: KID returned (nan, nan) from 1e100 up, precision/recall returned (1.0, 1.0) at 1e160 and at
1e-200, knn_radii returned inf, FID raised numpy's LinAlgError from 1e100 up and returned
6.7e-320 for a true 7.8e-321 at 1e-160, exact_w1 raised scipy's "cost matrix is infeasible" and
sliced_wasserstein returned inf at 1e160 and 0.0 at 1e-200.

Scales are powers of two so that scaling the inputs is exact: the metrics that scale with their
input (FID as s^2, W1, sliced W, k-NN radii as s) must scale exactly that way, and precision/recall
must not move at all. Ordinary inputs never take the rescaling path, so their numbers are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganref import metrics


@pytest.fixture(scope="module")
def xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 4)), rng.normal(size=(50, 4)) + 0.5


BIG = [2.0**332, 2.0**400, 2.0**664, 2.0**1000]  # ~1e100, ~2.6e120, ~1e200, ~1e301
SMALL = [2.0**-400, 2.0**-664, 2.0**-1000]  # ~4e-121, ~1e-200, ~9e-302


@pytest.mark.parametrize("scale", [2.0**332, 2.0**400])  # ~1e100, ~1e120: (x.y / d + 1)^3 overflows
def test_kid_and_mmd_raise_instead_of_nan(xy, scale):
    x, y = xy
    with pytest.raises(ValueError, match=r"KID overflowed float64.*not scale-invariant; rescale the features"):
        metrics.kid(x * scale, y * scale, subsets=3, subset_size=20)
    with pytest.raises(ValueError, match="MMD\\^2 overflowed float64"):
        metrics.mmd2(x * scale, y * scale)
    with pytest.raises(ValueError, match="MMD\\^2 overflowed float64"):
        metrics.mmd2(x * 2.0**600, y * 2.0**600, kernel="gaussian")


@pytest.mark.parametrize("scale", BIG + SMALL)
def test_precision_recall_and_knn_radii_are_scale_free(xy, scale):
    x, y = xy
    assert metrics.precision_recall(x * scale, y * scale) == metrics.precision_recall(x, y)
    np.testing.assert_allclose(metrics.knn_radii(x * scale), metrics.knn_radii(x) * scale, rtol=1e-12, atol=0)


@pytest.mark.parametrize("scale", [2.0**332, 2.0**500, 2.0**-300, 2.0**-400])
def test_fid_scales_as_the_square(xy, scale):
    x, y = xy
    expected = metrics.fid(x, y) * scale**2
    assert math.isclose(metrics.fid(x * scale, y * scale), expected, rel_tol=1e-12)


def test_fid_beyond_float64_raises_and_tiny_fid_is_correctly_rounded(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"FID of these inputs is about 1e3\d\d, beyond the range of float64"):
        metrics.fid(x * 2.0**532, y * 2.0**532)  # ~1e160: d^2 ~ 1e320
    tiny = metrics.fid(x * 2.0**-532, y * 2.0**-532)  # ~1e-160: d^2 ~ 1e-320, a subnormal
    assert math.isclose(tiny, metrics.fid(x, y) * 2.0**-1064, rel_tol=1e-3)
    assert metrics.fid(x * 2.0**-700, y * 2.0**-700) == 0.0  # d^2 ~ 1e-421: rounds to 0 in float64


@pytest.mark.parametrize("scale", BIG + SMALL)
def test_wasserstein_distances_scale_linearly(xy, scale):
    x, y = xy
    a, b = x[:40], y[:40]
    assert math.isclose(metrics.exact_w1(a * scale, b * scale), metrics.exact_w1(a, b) * scale, rel_tol=1e-12)
    sw = metrics.sliced_wasserstein(torch.tensor(x * scale), torch.tensor(y * scale), n_projections=16)
    base = metrics.sliced_wasserstein(torch.tensor(x), torch.tensor(y), n_projections=16)
    assert sw.dtype == torch.float64 and math.isclose(float(sw), float(base) * scale, rel_tol=1e-9)


def test_metrics_of_nan_are_still_refused(xy):
    x, y = xy
    bad = x.copy()
    bad[0, 0] = np.nan
    for call in (metrics.fid, metrics.precision_recall, metrics.exact_w1):
        with pytest.raises(ValueError, match="non-finite"):
            call(bad, x)
    with pytest.raises(ValueError, match="finite"):
        metrics.sliced_wasserstein(torch.tensor(bad), torch.tensor(y))
