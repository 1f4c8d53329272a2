"""Shared networks: MLP generator/discriminator for 2-D toys, small conv nets for 8x8 images.

The discriminators have no batch norm, so every loss in the book (including the WGAN-GP
penalty, which is per sample) can use them unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ganref.utils import check_positive_int


def mlp(in_dim: int, out_dim: int, hidden: int = 128, depth: int = 3,
        act: type[nn.Module] = nn.ReLU, out_act: nn.Module | None = None) -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden`` with activation ``act``, then a linear output."""
    check_positive_int("in_dim", in_dim)
    check_positive_int("out_dim", out_dim)
    check_positive_int("hidden", hidden)
    check_positive_int("depth", depth)
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), act()]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """G: z (B, z_dim) -> x (B, out_dim)."""

    def __init__(self, z_dim: int = 2, out_dim: int = 2, hidden: int = 128, depth: int = 3):
        super().__init__()
        self.z_dim = z_dim
        self.net = mlp(z_dim, out_dim, hidden, depth)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D: x (B, in_dim) -> logit (B,). Returns logits; the probability is ``sigmoid(logit)``."""

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3,
                 act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.in_dim = in_dim
        self.net = mlp(in_dim, 1, hidden, depth, act=act)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        return self.net(x).squeeze(1)


class ConvGenerator(nn.Module):
    """DCGAN-style G for 8x8 images: z (B, z_dim) -> x (B, C, 8, 8) in [-1, 1].

    Linear to (ch, 2, 2), then two stride-2 transposed convolutions with batch norm and ReLU.
    """

    def __init__(self, z_dim: int = 32, channels: int = 1, width: int = 32):
        super().__init__()
        self.z_dim, self.width = z_dim, width
        self.fc = nn.Sequential(nn.Linear(z_dim, 2 * width * 2 * 2), nn.BatchNorm1d(2 * width * 2 * 2), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),  # (B, width, 4, 4)
            nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # (B, C, 8, 8)
            nn.Tanh(),
        )

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(self.fc(z).view(-1, 2 * self.width, 2, 2))


class ConvDiscriminator(nn.Module):
    """D for 8x8 images: x (B, C, 8, 8) -> logit (B,). LeakyReLU(0.2), no batch norm."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        self.channels = channels
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=1, padding=1), nn.LeakyReLU(0.2),  # (B, w, 8, 8)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2w, 4, 4)
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 4w, 2, 2)
        )
        self.out = nn.Linear(4 * width * 2 * 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.channels, 8, 8):
            raise ValueError(f"x must have shape (B, {self.channels}, 8, 8), got {tuple(x.shape)}")
        return self.out(self.net(x).flatten(1)).squeeze(1)


UPSAMPLING = ("transposed", "nearest", "bilinear")


def _up_block(c_in: int, c_out: int, upsample: str) -> list[nn.Module]:
    """Double the resolution: a stride-2 4x4 transposed conv, or a fixed upsampling then a 3x3 conv."""
    if upsample == "transposed":
        return [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
    return [nn.Upsample(scale_factor=2, mode=upsample), nn.Conv2d(c_in, c_out, 3, padding=1)]


class ConvGenerator32(nn.Module):
    """DCGAN-style G for 32x32 images: z (B, z_dim) -> x (B, C, 32, 32) in [-1, 1].

    Linear to (4w, 4, 4), then three resolution doublings (4 -> 8 -> 16 -> 32) with batch norm and
    ReLU. ``upsample`` picks how each doubling is done: ``"transposed"`` (stride-2 transposed
    convolutions, which can leave checkerboard artefacts; Odena et al. 2016) or ``"nearest"`` /
    ``"bilinear"`` upsampling followed by a 3x3 convolution.
    """

    def __init__(self, z_dim: int = 64, channels: int = 1, width: int = 32, upsample: str = "transposed"):
        super().__init__()
        if upsample not in UPSAMPLING:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLING)}, got {upsample!r}")
        check_positive_int("width", width)
        self.z_dim, self.width, self.upsample = z_dim, width, upsample
        w = width
        self.fc = nn.Sequential(nn.Linear(z_dim, 4 * w * 4 * 4), nn.BatchNorm1d(4 * w * 4 * 4), nn.ReLU())
        self.net = nn.Sequential(
            *_up_block(4 * w, 2 * w, upsample), nn.BatchNorm2d(2 * w), nn.ReLU(),  # (B, 2w, 8, 8)
            *_up_block(2 * w, w, upsample), nn.BatchNorm2d(w), nn.ReLU(),  # (B, w, 16, 16)
            *_up_block(w, channels, upsample), nn.Tanh(),  # (B, C, 32, 32)
        )

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(self.fc(z).view(-1, 4 * self.width, 4, 4))


class ConvDiscriminator32(nn.Module):
    """D for 32x32 images: x (B, C, 32, 32) -> logit (B,). Stride-2 4x4 convs, LeakyReLU(0.2), no batch norm."""

    def __init__(self, channels: int = 1, width: int = 32):
        super().__init__()
        check_positive_int("width", width)
        self.channels = channels
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, w, 16, 16)
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2w, 8, 8)
            nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 4w, 4, 4)
        )
        self.out = nn.Linear(4 * w * 4 * 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.channels, 32, 32):
            raise ValueError(f"x must have shape (B, {self.channels}, 32, 32), got {tuple(x.shape)}")
        return self.out(self.net(x).flatten(1)).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sample_z(n: int, z_dim: int, generator: torch.Generator | None = None,
             device: torch.device | str = "cpu") -> Tensor:
    """z ~ N(0, I), shape (n, z_dim), drawn on the CPU from ``generator`` and moved to ``device``."""
    return torch.randn(n, z_dim, generator=generator).to(device)


@torch.no_grad()
def sample(G: nn.Module, n: int, seed: int, device: torch.device | str | None = None,
           labels: Tensor | None = None) -> Tensor:
    """``n`` samples of ``G`` from z ~ N(0, I) drawn with ``seed``: eval mode, no gradients, on the CPU.

    The same (G, n, seed) gives the same samples on the same machine; ``z`` is drawn on the CPU with
    ``torch.Generator().manual_seed(seed)``, so it does not depend on the device. G's train/eval mode is
    restored afterwards. Batch-norm generators then use their running statistics, so a sample does not
    depend on the others in its batch.

    Args:
        G: a generator with a ``z_dim`` attribute, called as ``G(z)`` or ``G(z, labels)``.
        n: number of samples.
        seed: seed of the noise (>= 0).
        device: where G runs; ``None``: the device of G's parameters.
        labels: (n,) class labels for a conditional G.
    Returns:
        G's output for the n draws, on the CPU.
    """
    n = check_positive_int("n", n)
    seed = check_positive_int("seed", seed, minimum=0)
    z_dim = getattr(G, "z_dim", None)
    if not isinstance(z_dim, int):
        raise ValueError(f"G must have an integer z_dim attribute (the noise size), got {z_dim!r}")
    if labels is not None and (not isinstance(labels, Tensor) or labels.shape != (n,)):
        raise ValueError(f"labels must be a tensor of shape ({n},), got "
                         f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    if device is None:
        first = next(G.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    was_training = G.training
    G.eval()
    try:
        x = G(z) if labels is None else G(z, labels.to(device))
    finally:
        G.train(was_training)
    return x.cpu()
