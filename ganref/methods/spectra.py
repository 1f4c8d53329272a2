r"""Frequency spectra of images: what up-convolutions leave in generated samples.

**Watch your Up-Convolution: CNN Based Generative Deep Neural Networks are Failing to Reproduce
Spectral Distributions.** Ricard Durall, Margret Keuper, Janis Keuper. CVPR 2020.
arXiv:2003.01826. **Fourier Spectrum Discrepancies in Deep Network Generated Images.** Tarik
Dzanic, Karan Shah, Freddie Witherden. NeurIPS 2020. arXiv:1911.06465. Both compare the
azimuthally averaged power spectrum of real and generated images; generators built from
up-convolutions get the high frequencies wrong. :func:`power_spectrum` and :func:`spectral_gap`.

Spectral *normalization* (a layer) is in :mod:`ganref.layers`; singular values of convolutions
(network measurements) are in :mod:`ganref.probes`.

Deviations from the papers: the periodogram is ``|FFT2(x)|^2 / (H W)`` (so it sums to ``sum x^2``,
Parseval) and the average is taken over integer radius bins up to the Nyquist radius, dropping the
corner frequencies beyond it. The papers process the spectra further (Dzanic et al. fit power laws
to the high-frequency decay; Durall et al. use a log scale), which we leave to the chapter.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _check_images(images: Tensor) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (B, C, H, W), got {shape}")
    if images.shape[2] < 2 or images.shape[3] < 2 or images.numel() == 0:
        raise ValueError(f"images must be non-empty with H, W >= 2, got {tuple(images.shape)}")


def periodogram(images: Tensor) -> Tensor:
    """``|FFT2(x)|^2 / (H W)`` per image and channel, (B, C, H, W) in FFT order (DC at [0, 0]).

    With this normalization ``periodogram(x).sum() == (x ** 2).sum()`` (Parseval).
    """
    _check_images(images)
    h, w = images.shape[-2:]
    return torch.fft.fft2(images).abs().square() / (h * w)  # |X_pq|^2 / (H W)


def radial_bins(h: int, w: int) -> tuple[Tensor, Tensor]:
    """The radius bin of every frequency of an H x W DFT, and each bin's frequency.

    The radius of frequency (p, q) is ``n * sqrt((p'/H)^2 + (q'/W)^2)`` with ``p', q'`` the signed
    frequency indices and ``n = min(H, W)`` (for square images: ``sqrt(p'^2 + q'^2)``), rounded to
    the nearest integer. Bins run from 0 to ``n // 2`` (Nyquist); corner frequencies beyond it get -1.

    Returns:
        bins (H, W) int64, freqs (n // 2 + 1,) in cycles per pixel, from 0 to about 0.5.
    """
    n = min(h, w)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]  # p' / H, cycles per pixel
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    bins = torch.round(n * torch.sqrt(fy**2 + fx**2)).long()  # (H, W)
    bins[bins > n // 2] = -1
    return bins, torch.arange(n // 2 + 1, dtype=torch.float64) / n


def mean_periodogram(images: Tensor) -> Tensor:
    """:func:`periodogram` averaged over the batch and channels: (H, W) float64 on the CPU, FFT order."""
    return periodogram(images.detach().double()).mean(dim=(0, 1)).cpu()


def _radial_average(p: Tensor) -> tuple[Tensor, Tensor]:
    """Average (..., H, W) periodograms over the radius bins of :func:`radial_bins`: (K,), (..., K)."""
    bins, freqs = radial_bins(*p.shape[-2:])
    keep = bins >= 0
    flat = p[..., keep]  # (..., F) the frequencies inside the Nyquist radius
    total = torch.zeros(*p.shape[:-2], len(freqs), dtype=torch.float64).index_add_(-1, bins[keep], flat)
    count = torch.bincount(bins[keep], minlength=len(freqs)).double()  # frequencies per bin
    return freqs, total / count  # every bin 0..n//2 holds at least one frequency


def power_spectrum(images: Tensor) -> tuple[Tensor, Tensor]:
    """The azimuthally averaged power spectrum, mean over the batch and channels.

    ``power[k]`` is the mean of :func:`periodogram` over all images, channels and frequencies in
    radius bin ``k`` (see :func:`radial_bins`). A constant image c puts ``c^2 H W`` at ``k = 0``;
    ``cos(2 pi (a y / H + b x / W))`` puts ``H W / 4`` on each of its two frequencies.

    Args:
        images: (B, C, H, W), any range.
    Returns:
        freqs (K,) in cycles per pixel and power (K,), both float64 on the CPU, K = min(H, W) // 2 + 1.
    """
    return _radial_average(mean_periodogram(images))


def power_spectra(images: Tensor, log: bool = False) -> tuple[Tensor, Tensor]:
    """One azimuthally averaged power spectrum per image (mean over its channels): the per-image version.

    ``power_spectra(x)[1].mean(0)`` equals ``power_spectrum(x)[1]`` (up to float64 rounding). Per-image
    spectra are the features of spectral classifiers and of a "spectrum FID" (chapters 04 and 05).

    Args:
        images: (B, C, H, W), any range.
        log: return ``log(max(power, 1e-12))`` (natural log) instead of the power.
    Returns:
        freqs (K,) and power (B, K), float64 on the CPU.
    """
    p = periodogram(images.detach().double()).mean(dim=1).cpu()  # (B, H, W)
    freqs, power = _radial_average(p)
    return freqs, power.clamp_min(1e-12).log() if log else power


def spectral_gap(real_spectrum: Tensor, fake_spectrum: Tensor, high_fraction: float = 0.5,
                 eps: float = 1e-12) -> Tensor:
    """Mean absolute log-ratio of two power spectra over their high frequencies.

    ``mean_k |log((fake_k + eps) / (real_k + eps))|`` over bins ``k >= (1 - high_fraction) * K``,
    with K the last (Nyquist) bin; with the default, frequencies from 0.25 to 0.5 cycles per pixel.
    0 means equal spectra there; ``log(2) = 0.69`` is a factor of two on average.

    Args:
        real_spectrum, fake_spectrum: (K,) ``power`` outputs of :func:`power_spectrum` on images of
            the same size.
        high_fraction: the fraction of the frequency range, counted from Nyquist, in (0, 1].
    Returns:
        0-d float64 tensor.
    """
    for name, s in (("real_spectrum", real_spectrum), ("fake_spectrum", fake_spectrum)):
        if not isinstance(s, Tensor) or s.ndim != 1 or len(s) < 2:
            raise ValueError(f"{name} must be a 1-D power spectrum with at least 2 bins, "
                             f"got {getattr(s, 'shape', type(s).__name__)}")
        if not torch.isfinite(s).all() or (s < 0).any():
            raise ValueError(f"{name} must be finite and non-negative")
    if real_spectrum.shape != fake_spectrum.shape:
        raise ValueError(f"real_spectrum has {len(real_spectrum)} bins but fake_spectrum has "
                         f"{len(fake_spectrum)}: compute both on images of the same size")
    if not 0 < high_fraction <= 1:
        raise ValueError(f"high_fraction must be in (0, 1], got {high_fraction!r}")
    last = len(real_spectrum) - 1
    start = math.ceil((1 - high_fraction) * last - 1e-9)
    real, fake = real_spectrum[start:].double(), fake_spectrum[start:].double()
    return ((fake + eps) / (real + eps)).log().abs().mean()
