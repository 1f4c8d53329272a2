r"""Spectral normalization, the singular values of convolutions, and image power spectra.

**Spectral Normalization for Generative Adversarial Networks.** Takeru Miyato, Toshiki Kataoka,
Masanori Koyama, Yuichi Yoshida. ICLR 2018. arXiv:1802.05957.

Each weight matrix of D is divided by its largest singular value, estimated by one step of power
iteration per training forward with a persistent vector (Algorithm 1):

.. math::

    \bar W_{\mathrm{SN}}(W) = W / \sigma(W), \qquad
    \tilde u \leftarrow \frac{W \tilde v}{\lVert W \tilde v\rVert_2}, \quad
    \tilde v \leftarrow \frac{W^\top \tilde u}{\lVert W^\top \tilde u\rVert_2}, \quad
    \sigma(W) \approx \tilde u^\top W \tilde v .

A conv kernel (C_out, C_in, kh, kw) is reshaped to the matrix (C_out, C_in kh kw), as in the
paper. With 1-Lipschitz activations, ``||f||_Lip <= prod_l sigma(W_l)`` (Eq. 7).

**The Singular Values of Convolutional Layers.** Hanie Sedghi, Vineet Gupta, Philip M. Long.
ICLR 2019. arXiv:1805.10408. A stride-1 convolution with circular padding on an n x n input
is block-diagonalised by the 2-D DFT: its singular values are those of the C_out x C_in matrices
``K_hat[:, :, p, q]`` with ``K_hat = FFT2(kernel zero-padded to n x n)``, over all n^2 frequencies.
:func:`conv_singular_values` computes them.

**Watch your Up-Convolution: CNN Based Generative Deep Neural Networks are Failing to Reproduce
Spectral Distributions.** Ricard Durall, Margret Keuper, Janis Keuper. CVPR 2020.
arXiv:2003.01826. **Fourier Spectrum Discrepancies in Deep Network Generated Images.** Tarik
Dzanic, Karan Shah, Freddie Witherden. NeurIPS 2020. arXiv:1911.06465. Both compare the
azimuthally averaged power spectrum of real and generated images; generators built from
up-convolutions get the high frequencies wrong. :func:`power_spectrum` and :func:`spectral_gap`.

Deviations from the paper:

- Order of the power step. Algorithm 1 keeps only ``u`` and updates ``v`` then ``u``. We keep
  both vectors (as buffers, so a state dict carries them) and update ``u`` from ``v`` first, then
  ``v``: the same alternating power iteration started half a step later, with the estimate
  ``u^T W v = ||W^T u||``. This is the order of ``torch.nn.utils.parametrizations.spectral_norm``,
  and the tests check that both layers give the same weights step for step.
- Warm start. When the layer is created we run ``n_init_iterations=15`` power steps (as PyTorch
  does), so the first training forward already uses a good estimate; the paper starts from a
  random ``u``. Set ``n_init_iterations=0`` for the paper's behaviour.
- The reshaped-kernel sigma that SN normalizes is *not* the operator norm of a convolution; the
  true norm can be up to ``sqrt(kh kw)`` times larger (see :func:`lipschitz_upper_bound`).
- Power spectra: the periodogram is ``|FFT2(x)|^2 / (H W)`` (so it sums to ``sum x^2``, Parseval)
  and the average is taken over integer radius bins up to the Nyquist radius, dropping the
  corner frequencies beyond it. The papers process the spectra further (Dzanic et al. fit power
  laws to the high-frequency decay; Durall et al. use a log scale), which we leave to the chapter.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ganref.utils import check_positive_int

SN_LAYERS = (nn.Linear, nn.Conv2d)
CONV_NORMS = ("bound", "reshaped")


# --------------------------------------------------------------------------------------------
# Spectral normalization (Miyato et al. 2018)
# --------------------------------------------------------------------------------------------

def _as_matrix(weight: Tensor, name: str = "weight") -> Tensor:
    """(out, in) or (C_out, C_in, kh, kw) -> (out, in * kh * kw), Sec. 2.1 of Miyato et al."""
    if not isinstance(weight, Tensor) or weight.ndim < 2:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"{name} must be a tensor with at least 2 dimensions (out, in, ...), got {shape}")
    return weight.flatten(1)


def _normalize(x: Tensor, eps: float) -> Tensor:
    return x / x.norm().clamp_min(eps)  # x / max(||x||_2, eps)


class SpectralNorm(nn.Module):
    """The parametrization ``W -> W / sigma(W)`` with a persistent power-iteration state.

    Buffers ``_u`` (out,) and ``_v`` (in * kh * kw,) approximate the top left and right singular
    vectors. In training mode each call runs ``n_power_iterations`` steps; in eval mode none.
    """

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, eps: float = 1e-12,
                 n_init_iterations: int = 15, generator: torch.Generator | None = None):
        super().__init__()
        w_mat = _as_matrix(weight)  # (out, in * kh * kw)
        self.n_power_iterations = check_positive_int("n_power_iterations", n_power_iterations)
        check_positive_int("n_init_iterations", n_init_iterations, minimum=0)
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps must be a number > 0, got {eps!r}")
        self.eps = float(eps)
        h, w = w_mat.shape
        u = torch.randn(h, generator=generator, dtype=torch.float64).to(w_mat)
        v = torch.randn(w, generator=generator, dtype=torch.float64).to(w_mat)
        self.register_buffer("_u", _normalize(u, self.eps))
        self.register_buffer("_v", _normalize(v, self.eps))
        self._power_iteration(w_mat.detach(), n_init_iterations)

    @torch.no_grad()
    def _power_iteration(self, w_mat: Tensor, steps: int) -> None:
        for _ in range(steps):
            # in place, so the buffers the module owns are the ones updated
            self._u.copy_(_normalize(w_mat @ self._v, self.eps))  # u <- W v / ||W v||
            self._v.copy_(_normalize(w_mat.mT @ self._u, self.eps))  # v <- W^T u / ||W^T u||

    def forward(self, weight: Tensor) -> Tensor:
        w_mat = weight.flatten(1)  # (out, in * kh * kw)
        if self.training:
            self._power_iteration(w_mat.detach(), self.n_power_iterations)
        # u and v are constants for autograd, as in the paper's implementation; clone because the next
        # training forward updates the buffers in place while this graph may still need them
        u, v = self._u.clone(), self._v.clone()
        sigma = u @ (w_mat @ v)  # sigma(W) ~ u^T W v, Algorithm 1
        return weight / sigma  # W_SN = W / sigma(W), Eq. (8)

    def right_inverse(self, value: Tensor) -> Tensor:
        """Assigning ``module.weight = W`` stores ``W`` itself as the unnormalized weight."""
        return value


def spectral_norm(module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12, *,
                  n_init_iterations: int = 15, generator: torch.Generator | None = None) -> nn.Module:
    """Register spectral normalization on the ``weight`` of an ``nn.Linear`` or ``nn.Conv2d``.

    After this, ``module.weight`` is ``W / sigma(W)``; the trained tensor is
    ``module.parametrizations.weight.original`` and the power-iteration state lives in
    ``module.parametrizations.weight[0]._u`` / ``._v`` (in the state dict).

    Args:
        module: the layer, changed in place.
        n_power_iterations: power steps per training forward (1 in the paper).
        eps: floor on the norms in the power step.
        n_init_iterations: power steps run once now, from a random start (0 for the paper).
        generator: the random start's generator (default: torch's global one).
    Returns:
        ``module``.
    """
    if not isinstance(module, SN_LAYERS):
        raise ValueError(f"module must be an nn.Linear or nn.Conv2d, got {type(module).__name__}")
    if parametrize.is_parametrized(module, "weight") and any(
            isinstance(p, SpectralNorm) for p in module.parametrizations.weight):
        raise ValueError(f"module {module!r} already has spectral normalization on its weight")
    sn = SpectralNorm(module.weight, n_power_iterations, eps, n_init_iterations, generator)
    parametrize.register_parametrization(module, "weight", sn)
    return module


def apply_spectral_norm(model: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12, *,
                        n_init_iterations: int = 15, generator: torch.Generator | None = None) -> nn.Module:
    """Apply :func:`spectral_norm` to every ``nn.Linear`` and ``nn.Conv2d`` in ``model`` (in place)."""
    layers = [m for m in model.modules() if isinstance(m, SN_LAYERS)]
    if not layers:
        raise ValueError(f"model has no nn.Linear or nn.Conv2d layer to normalize: {type(model).__name__}")
    for m in layers:
        spectral_norm(m, n_power_iterations, eps, n_init_iterations=n_init_iterations, generator=generator)
    return model


@contextmanager
def frozen_power_iteration(model: nn.Module) -> Iterator[nn.Module]:
    """Within this block no parametrization of ``model`` runs in training mode (no power steps).

    Measuring a network (its spectra, its gradients) must not advance its SN state. Other modules
    keep their mode. Works for this module's SN and for PyTorch's.
    """
    saved = []
    for m in model.modules():
        if parametrize.is_parametrized(m):
            for plist in m.parametrizations.values():
                for p in plist:
                    saved.append((p, p.training))
                    p.train(False)
    try:
        yield model
    finally:
        for p, mode in saved:
            p.train(mode)


# --------------------------------------------------------------------------------------------
# Exact norms: the reshaped matrix (what SN controls) and the convolution operator (Sedghi et al.)
# --------------------------------------------------------------------------------------------

def sigma_exact(weight: Tensor) -> Tensor:
    """The largest singular value of ``weight`` reshaped to (out, in * kh * kw), by SVD.

    Args:
        weight: (out, in) or (C_out, C_in, kh, kw).
    Returns:
        0-d tensor, the value that SN's power iteration estimates.
    """
    return torch.linalg.svdvals(_as_matrix(weight).detach())[0]


def _check_input_size(weight: Tensor, input_size: int | tuple[int, int]) -> tuple[int, int]:
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a conv kernel of shape (C_out, C_in, kh, kw), got {shape}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        raise ValueError(f"input_size must be an int or a pair (H, W) of ints, got {input_size!r}")
    kh, kw = weight.shape[2:]
    if size[0] < kh or size[1] < kw:
        raise ValueError(f"input_size {size} is smaller than the kernel ({kh}, {kw}): "
                         "the circular convolution needs H >= kh and W >= kw")
    return size


def conv_singular_values(weight: Tensor, input_size: int | tuple[int, int]) -> Tensor:
    """All singular values of a stride-1 2-D convolution with circular padding (Sedghi et al. 2019).

    The operator maps (C_in, H, W) to (C_out, H, W); it is the same for convolution and
    cross-correlation (PyTorch's convention) and for any circular shift of the output, since these
    change K_hat only by conjugation and unit-modulus phases per frequency.

    Args:
        weight: (C_out, C_in, kh, kw) kernel.
        input_size: H or (H, W), each at least the kernel's size.
    Returns:
        (H * W * min(C_out, C_in),) singular values, descending.
    """
    h, w = _check_input_size(weight, input_size)
    k_hat = torch.fft.fft2(weight.detach(), s=(h, w))  # (C_out, C_in, H, W), kernel zero-padded to H x W
    blocks = k_hat.permute(2, 3, 0, 1)  # (H, W, C_out, C_in): one matrix per frequency (Sedghi et al.)
    return torch.linalg.svdvals(blocks).flatten().sort(descending=True).values


def conv_operator_norm(weight: Tensor, input_size: int | tuple[int, int]) -> Tensor:
    """The operator 2-norm of a stride-1 circular 2-D convolution on ``input_size`` (0-d tensor)."""
    return conv_singular_values(weight, input_size)[0]


# --------------------------------------------------------------------------------------------
# Network-level measurements: spectra, Lipschitz bound, gradient norms
# --------------------------------------------------------------------------------------------

def _sn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SN_LAYERS)]


def layer_spectra(model: nn.Module) -> dict[str, Tensor]:
    """Singular values of every Linear/Conv2d weight as it acts in the forward pass (after SN).

    Convs are reshaped to (C_out, C_in kh kw), the matrix SN normalizes. Reading the weights does
    not advance the power iteration. Call it every few hundred steps and stack the values to see
    how the spectrum of each layer moves during training.

    Returns:
        ``{module name: (min(out, in * kh * kw),) float64 singular values, descending, on the CPU}``.
    """
    out = {}
    with frozen_power_iteration(model), torch.no_grad():
        for name, m in _sn_layers(model):
            out[name] = torch.linalg.svdvals(m.weight.flatten(1).double()).cpu()
    return out


def lipschitz_upper_bound(model: nn.Module, conv_norm: str = "bound") -> float:
    r"""The product of the layers' norms, Eq. (7) of Miyato et al.: ``prod_l ||W_l||``.

    It bounds the Lipschitz constant (for the l2 norm of flattened inputs) of a feed-forward
    chain of the model's Linear and Conv2d layers with 1-Lipschitz activations in between
    (ReLU, LeakyReLU with slope <= 1, tanh, flatten). Residual branches, normalization layers and
    attention break it; a module with its own parameters other than Linear/Conv2d is refused.

    Args:
        conv_norm: how a conv layer counts.
            ``"bound"``: ``sqrt(kh kw) * sigma(W_reshaped)``, a true bound on the conv's operator
            norm for any stride and padding: per frequency ``K_hat = W_reshaped (I (x) p)`` with
            ``p`` the kh*kw unit phases, ``||I (x) p|| = sqrt(kh kw)``; strides and zero padding
            only restrict or embed a circular convolution on a larger grid, which cannot raise it.
            ``"reshaped"``: ``sigma(W_reshaped)``, what SN sets to 1. The product is then 1 for an
            SN network, but it is not a bound: a conv can stretch an input by more.
    Returns:
        the product, a float.
    """
    if conv_norm not in CONV_NORMS:
        raise ValueError(f"conv_norm must be one of {', '.join(CONV_NORMS)}, got {conv_norm!r}")
    for name, m in model.named_modules():
        own = [n for n, _ in m.named_parameters(recurse=False)]
        if own and not isinstance(m, SN_LAYERS) and not isinstance(m, parametrize.ParametrizationList):
            raise ValueError(f"lipschitz_upper_bound covers Linear and Conv2d layers with 1-Lipschitz "
                             f"activations; module {name!r} ({type(m).__name__}) has parameters of its own")
    spectra = layer_spectra(model)
    if not spectra:
        raise ValueError(f"model has no nn.Linear or nn.Conv2d layer: {type(model).__name__}")
    bound = 1.0
    for name, m in _sn_layers(model):
        sigma = float(spectra[name][0])
        if isinstance(m, nn.Conv2d) and conv_norm == "bound":
            sigma *= math.sqrt(m.kernel_size[0] * m.kernel_size[1])
        bound *= sigma  # Eq. (7): ||f||_Lip <= prod_l sigma(W_l)
    return bound


def gradient_norms(model: nn.Module, x: Tensor) -> Tensor:
    """Per-sample ``||grad_x D(x_i)||_2``, the local slope to set beside :func:`lipschitz_upper_bound`.

    Samples must not interact in the forward pass (no batch norm in training mode). The power
    iteration is frozen and parameter ``.grad`` fields are left untouched.

    Args:
        model: D, returning (B,) or (B, 1) outputs.
        x: (B, ...) inputs.
    Returns:
        (B,) gradient norms, detached.
    """
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ValueError(f"x must be a batch of inputs (B, ...), got {getattr(x, 'shape', type(x).__name__)}")
    x = x.detach().requires_grad_(True)
    with frozen_power_iteration(model), torch.enable_grad():
        d = model(x)
        if d.shape not in ((len(x),), (len(x), 1)):
            raise ValueError(f"model must return one value per sample, (B,) or (B, 1), got {tuple(d.shape)}")
        (grad,) = torch.autograd.grad(d.sum(), x)  # row i of the sum depends on x_i alone
    return grad.flatten(1).norm(dim=1)


# --------------------------------------------------------------------------------------------
# Image power spectra (Durall et al. 2020; Dzanic et al. 2020)
# --------------------------------------------------------------------------------------------

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
    p = periodogram(images.detach().double()).mean(dim=(0, 1)).cpu()  # (H, W)
    bins, freqs = radial_bins(*p.shape)
    keep = bins >= 0
    total = torch.zeros(len(freqs), dtype=torch.float64).index_add_(0, bins[keep], p[keep])
    count = torch.zeros(len(freqs), dtype=torch.float64).index_add_(
        0, bins[keep], torch.ones_like(p[keep]))
    return freqs, total / count  # every bin 0..n//2 holds at least one frequency


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
