"""Tests for ganref.methods.spectra: periodograms (Parseval), radial averages against loops, the spectral gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from ganref.methods import spectra
from ganref.methods.spectra import periodogram, power_spectrum, radial_bins, spectral_gap


# ------------------------------------------------------------------ power spectra


def test_parseval():
    x = torch.randn(3, 2, 9, 12, dtype=torch.float64)
    assert_close(periodogram(x).sum(dim=(2, 3)), x.square().sum(dim=(2, 3)), rtol=1e-12, atol=0)


@pytest.mark.parametrize("a, b", [(0, 5), (3, 4), (2, 1), (8, 0)])
def test_power_spectrum_of_a_sinusoid(a, b):
    n = 16
    y, x = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    img = torch.cos(2 * math.pi * (a * y + b * x) / n)[None, None]  # (1, 1, 16, 16)
    freqs, power = power_spectrum(img)
    k = round(math.hypot(a, b))
    assert len(freqs) == n // 2 + 1 and freqs[k].item() == pytest.approx(k / n)
    assert int(power.argmax()) == k
    bins, _ = radial_bins(n, n)
    count = int((bins == k).sum())
    n_peaks = 1 if (2 * a) % n == 0 and (2 * b) % n == 0 else 2  # (a, b) = (-a, -b) mod n at Nyquist
    # each of the two peaks holds (n^2/2)^2 / n^2 = n^2/4; where they coincide, one holds n^4 / n^2
    total = n * n / 2 if n_peaks == 2 else n * n
    assert power[k].item() == pytest.approx(total / count, rel=1e-12)
    others = torch.cat([power[:k], power[k + 1:]])
    assert others.abs().max().item() < 1e-20


@pytest.mark.parametrize("h, w", [(8, 8), (6, 10)])
def test_power_spectrum_matches_loop_average(h, w):
    img = torch.randn(2, 3, h, w, dtype=torch.float64)
    p = (np.abs(np.fft.fft2(img.numpy())) ** 2 / (h * w)).mean(axis=(0, 1))
    n = min(h, w)
    sums, counts = np.zeros(n // 2 + 1), np.zeros(n // 2 + 1)
    for i in range(h):
        for j in range(w):
            fi = (i if i <= h // 2 else i - h) / h
            fj = (j if j <= w // 2 else j - w) / w
            r = math.hypot(fi, fj) * n
            k = int(np.floor(r + 0.5))
            if k <= n // 2:
                sums[k] += p[i, j]
                counts[k] += 1
    freqs, power = power_spectrum(img)
    assert_close(power, torch.from_numpy(sums / counts), rtol=1e-12, atol=0)
    assert_close(freqs, torch.arange(n // 2 + 1, dtype=torch.float64) / n)
    # a constant image: all power at DC, c^2 H W
    _, flat = power_spectrum(torch.full((1, 1, h, w), 0.5, dtype=torch.float64))
    assert flat[0].item() == pytest.approx(0.25 * h * w, rel=1e-12) and flat[1:].abs().max() < 1e-25


def test_spectral_gap():
    _, real = power_spectrum(torch.randn(4, 1, 16, 16, dtype=torch.float64))  # 9 bins, high half = 4..8
    assert spectral_gap(real, real).item() == 0.0
    fake = real.clone()
    fake[4:] *= 3.0
    fake[:4] *= 100.0  # the low half does not count
    assert spectral_gap(real, fake, eps=0.0).item() == pytest.approx(math.log(3.0), rel=1e-12)
    assert spectral_gap(fake, real, eps=0.0).item() == pytest.approx(math.log(3.0), rel=1e-12)
    fake2 = real.clone()
    fake2[-1] *= 2.0  # only the Nyquist bin, with high_fraction 1/8 the mean runs over bins 7..8
    assert spectral_gap(real, fake2, high_fraction=0.125, eps=0.0).item() == pytest.approx(math.log(2) / 2, rel=1e-12)


def test_spectrum_errors():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        power_spectrum(torch.randn(3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        periodogram(torch.randn(1, 1, 1, 3, 3))
    with pytest.raises(ValueError, match="H, W >= 2"):
        power_spectrum(torch.randn(1, 1, 1, 8))
    with pytest.raises(ValueError, match="same size"):
        spectral_gap(torch.ones(9), torch.ones(5))
    with pytest.raises(ValueError, match="1-D power spectrum"):
        spectral_gap(torch.ones(3, 3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="non-negative"):
        spectral_gap(torch.ones(5), -torch.ones(5))
    with pytest.raises(ValueError, match="high_fraction"):
        spectral_gap(torch.ones(5), torch.ones(5), high_fraction=0.0)


def test_radial_bins_by_hand():
    # 4x4 DFT: signed indices (0, 1, -2, -1) per axis; radius = sqrt(p'^2 + q'^2) rounded; 2 sqrt(2) -> 3 > 2: dropped
    bins, freqs = radial_bins(4, 4)
    want = torch.tensor([[0, 1, 2, 1],
                         [1, 1, 2, 1],
                         [2, 2, -1, 2],
                         [1, 1, 2, 1]])
    assert torch.equal(bins, want)
    assert_close(freqs, torch.tensor([0.0, 0.25, 0.5], dtype=torch.float64), rtol=0, atol=0)


# ----------------------------------------------------------------------------- per-image spectra


def test_per_image_spectra_average_to_the_batch_spectrum_and_match_one_image_at_a_time():
    x = torch.randn(6, 3, 16, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    freqs, per_image = spectra.power_spectra(x)
    f_batch, batch = spectra.power_spectrum(x)
    torch.testing.assert_close(freqs, f_batch, rtol=0, atol=0)
    torch.testing.assert_close(per_image.mean(0), batch, rtol=1e-13, atol=0)
    one_by_one = torch.stack([spectra.power_spectrum(xi[None])[1] for xi in x])
    torch.testing.assert_close(per_image, one_by_one, rtol=1e-14, atol=0)
    _, logs = spectra.power_spectra(x, log=True)
    torch.testing.assert_close(logs, per_image.clamp_min(1e-12).log(), rtol=0, atol=0)


def test_a_cosine_puts_its_power_in_one_bin_per_image():
    h = w = 16
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    img = torch.cos(2 * math.pi * 3 * xx / w)[None, None]  # frequency (0, +-3): radius 3
    freqs, p = spectra.power_spectra(torch.cat([img, 2 * img]))
    bins, _ = spectra.radial_bins(h, w)
    n3 = int((bins == 3).sum())
    expected = torch.zeros(len(freqs), dtype=torch.float64)
    expected[3] = 2 * (h * w / 4) / n3  # H W / 4 on each of two frequencies, averaged over the bin
    torch.testing.assert_close(p[0], expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(p[1], 4 * expected, rtol=1e-12, atol=1e-12)


def test_mean_periodogram_is_parseval_normalized():
    x = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = spectra.mean_periodogram(x)
    assert p.shape == (8, 8)
    assert float(p.sum()) == pytest.approx(float((x**2).sum() / (4 * 2)), rel=1e-13)


def test_bad_images():
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
        spectra.power_spectra(torch.zeros(8, 8))
