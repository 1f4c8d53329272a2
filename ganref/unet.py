r"""Denoising networks for the diffusion chapters: a sinusoidal time embedding, an MLP for 2-D data and
a small U-Net for 8x8 images. Every network here is called as ``net(x_k, k) -> eps_hat`` with the
noisy batch ``x_k`` and a LongTensor ``k`` of (B,) timestep indices; the schedule lives elsewhere
(:mod:`ganref.methods.ddpm`), so that chapters 08-11 share the networks and the schedule apart.

- **Time embedding**: the sinusoidal position embedding of the Transformer (Vaswani et al. 2017,
  Sec. 3.5), applied to the diffusion step as in DDPM (Ho et al. 2020, Appendix B), then an MLP:

  .. math::
      \mathrm{emb}(k)_{i} = \sin(k\,\omega_i),\quad \mathrm{emb}(k)_{d/2 + i} = \cos(k\,\omega_i),
      \qquad \omega_i = 10000^{-i / (d/2 - 1)},\ i = 0, \dots, d/2 - 1.

- **MLPDenoiser**: residual SiLU MLP blocks, each shifted by a projection of the time embedding.
- **UNet8**: DDPM's U-Net (Ronneberger et al. 2015; Ho et al. 2020, Appendix B: residual blocks with
  GroupNorm, the time embedding added inside each block, skip connections between resolutions),
  cut down to two resolution halvings for 8x8 images (8 -> 4 -> 2 -> 4 -> 8).

Deviations from DDPM's network: no self-attention (at 8x8 and below it buys nothing measurable here),
dropout off by default (``dropout=0.1`` gives Ho's CIFAR-10 setting), two resolutions instead of four,
one residual block per resolution instead of two.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ganref.utils import check_number, check_positive_int

__all__ = ["timestep_embedding", "TimeEmbedding", "MLPDenoiser", "ResBlock", "UNet8"]


def timestep_embedding(k: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of timesteps (Vaswani et al. 2017, Sec. 3.5; DDPM's ``get_timestep_embedding``).

    Args:
        k: (B,) timesteps (integers or floats).
        dim: embedding size, even and >= 4.
        max_period: the longest wavelength, 10,000 as in both papers.
    Returns:
        (B, dim) float32: ``sin(k w_i)`` in the first half, ``cos(k w_i)`` in the second,
        ``w_i = max_period ** (-i / (dim/2 - 1))``.
    """
    dim = check_positive_int("dim", dim, minimum=4)
    if dim % 2:
        raise ValueError(f"dim must be even (half sines, half cosines), got {dim}")
    if not isinstance(k, Tensor) or k.ndim != 1:
        raise ValueError(f"k must be a 1-D tensor of B timesteps, got "
                         f"{tuple(k.shape) if isinstance(k, Tensor) else type(k).__name__}")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=k.device) / (half - 1)
    omega = torch.exp(-math.log(max_period) * exponent)  # (half,) from 1 down to 1 / max_period
    angle = k.float()[:, None] * omega[None, :]  # (B, half)
    return torch.cat([angle.sin(), angle.cos()], dim=1)  # (B, dim)


class TimeEmbedding(nn.Module):
    """k (B,) -> (B, out_dim): the sinusoidal embedding, then Linear -> SiLU -> Linear (DDPM's ``temb``)."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.dim = check_positive_int("dim", dim, minimum=4)
        self.net = nn.Sequential(nn.Linear(dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, k: Tensor) -> Tensor:
        return self.net(timestep_embedding(k, self.dim))


def _check_k(k: Tensor, batch: int) -> None:
    if not isinstance(k, Tensor) or k.shape != (batch,):
        got = tuple(k.shape) if isinstance(k, Tensor) else type(k).__name__
        raise ValueError(f"k must be a tensor of shape ({batch},), one timestep per sample, got {got}")


# ----------------------------------------------------------------------------- 2-D data


class MLPDenoiser(nn.Module):
    """eps_theta for points: (x_k (B, dim), k (B,)) -> eps_hat (B, dim).

    ``h = W_in x``; then ``depth`` residual blocks ``h <- h + W_2 SiLU(W_1 SiLU(h) + P_i emb(k))``;
    then ``W_out SiLU(h)``. The output layer starts at zero, so an untrained net predicts eps_hat = 0.
    """

    def __init__(self, dim: int = 2, hidden: int = 128, depth: int = 3, t_dim: int = 64):
        super().__init__()
        self.dim = check_positive_int("dim", dim)
        check_positive_int("hidden", hidden)
        check_positive_int("depth", depth)
        self.time = TimeEmbedding(t_dim, hidden)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.ModuleDict({"w1": nn.Linear(hidden, hidden), "t": nn.Linear(hidden, hidden),
                                                   "w2": nn.Linear(hidden, hidden)}) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        _check_k(k, x.shape[0])
        k_unique, row = torch.unique(k, return_inverse=True)  # time terms once per distinct step
        emb = self.time(k_unique)  # (U, hidden)
        h = self.inp(x)  # (B, hidden)
        for b in self.blocks:
            h = h + b["w2"](nn.functional.silu(b["w1"](nn.functional.silu(h)) + b["t"](emb)[row]))
        return self.out(nn.functional.silu(h))  # (B, dim)


# ----------------------------------------------------------------------------- images


class ResBlock(nn.Module):
    """DDPM's residual block: GN -> SiLU -> conv3x3, + Linear(emb), GN -> SiLU -> dropout -> conv3x3, + skip.

    The second convolution starts at zero, so a fresh block is the identity on its skip path.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int = 8, dropout: float = 0.0):
        super().__init__()
        for name, c in (("c_in", c_in), ("c_out", c_out)):
            if check_positive_int(name, c) % groups:
                raise ValueError(f"{name} must be a multiple of groups={groups} (GroupNorm), got {c}")
        self.norm1, self.conv1 = nn.GroupNorm(groups, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.drop = nn.GroupNorm(groups, c_out), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))  # (B, c_out, H, W)
        h = h + self.emb(emb)[:, :, None, None]  # the timestep enters every block
        h = self.conv2(self.drop(nn.functional.silu(self.norm2(h))))
        return self.skip(x) + h


class UNet8(nn.Module):
    """eps_theta for small images: (x_k (B, C, H, W), k (B,)) -> eps_hat (B, C, H, W), H and W multiples of 4.

    Resolutions for 8x8 input, with w = ``width``::

        conv -> (w, 8, 8) -> block -> down -> (w, 4, 4) -> block -> (2w, 4, 4) -> down -> (2w, 2, 2)
        -> block (middle) -> up -> (2w, 4, 4) ++ skip -> block -> (2w, 4, 4)
        -> up -> (w, 8, 8) ++ skip -> block -> (w, 8, 8) -> GN -> SiLU -> conv -> (C, 8, 8)

    Downsampling is a stride-2 3x3 convolution, upsampling nearest-neighbour then a 3x3 convolution
    (DDPM's ``resamp_with_conv``). The output convolution starts at zero.
    """

    def __init__(self, channels: int = 1, width: int = 32, t_dim: int = 64, groups: int = 8,
                 dropout: float = 0.0):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        w = check_positive_int("width", width)
        check_number("dropout", dropout, low=0, high=1, high_open=True)
        emb = 4 * w
        self.time = TimeEmbedding(t_dim, emb)
        self.inp = nn.Conv2d(channels, w, 3, padding=1)
        self.enc1 = ResBlock(w, w, emb, groups, dropout)
        self.down1 = nn.Conv2d(w, w, 3, stride=2, padding=1)
        self.enc2 = ResBlock(w, 2 * w, emb, groups, dropout)
        self.down2 = nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1)
        self.mid = ResBlock(2 * w, 2 * w, emb, groups, dropout)
        self.up2 = nn.Conv2d(2 * w, 2 * w, 3, padding=1)
        self.dec2 = ResBlock(4 * w, 2 * w, emb, groups, dropout)
        self.up1 = nn.Conv2d(2 * w, w, 3, padding=1)
        self.dec1 = ResBlock(2 * w, w, emb, groups, dropout)
        self.out = nn.Sequential(nn.GroupNorm(groups, w), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"x must have shape (B, {self.channels}, H, W) with H and W multiples of 4, "
                             f"got {tuple(x.shape)}")
        _check_k(k, x.shape[0])
        k_unique, row = torch.unique(k, return_inverse=True)
        emb = self.time(k_unique)[row]  # (B, 4w), the MLP run once per distinct step
        up = nn.functional.interpolate
        h1 = self.enc1(self.inp(x), emb)  # (B, w, 8, 8)
        h2 = self.enc2(self.down1(h1), emb)  # (B, 2w, 4, 4)
        h = self.mid(self.down2(h2), emb)  # (B, 2w, 2, 2)
        h = self.dec2(torch.cat([self.up2(up(h, scale_factor=2.0)), h2], dim=1), emb)  # (B, 2w, 4, 4)
        h = self.dec1(torch.cat([self.up1(up(h, scale_factor=2.0)), h1], dim=1), emb)  # (B, 2w -> w, 8, 8)
        return self.out(h)  # (B, C, 8, 8)
