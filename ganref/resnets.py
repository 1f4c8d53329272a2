r"""A modern convolutional backbone without normalization: residual blocks, grouped 3x3 convolutions,
inverted bottlenecks and fix-up initialization, as R3GAN builds it (small enough for a CPU).

- R3GAN: Huang, Gokaslan, Kuleshov, Tompkin, "The GAN is dead; long live the GAN! A Modern GAN
  Baseline", NeurIPS 2024, arXiv:2501.05441, Sec. 3.3 (Config D: ResNet-ify) and Sec. 3.4 (Config E:
  grouped convolutions, inverted bottleneck; no normalization).
- Fix-up: Zhang, Dauphin, Ma, "Fixup Initialization: Residual Learning Without Normalization",
  ICLR 2019, arXiv:1901.09321 (the last layer of every residual branch starts at zero, the others are
  scaled by :math:`L^{-1/(2m - 2)}` for L branches of m layers).

A residual block maps :math:`x \mapsto x + W_3\,\phi(W_2\,\phi(W_1 x))` with :math:`W_1` a 1x1
convolution to ``expansion * C`` channels, :math:`W_2` a 3x3 convolution in groups of ``group_size``
channels, :math:`W_3` a 1x1 convolution back to C, and :math:`\phi` = LeakyReLU(0.2). Resolution and
width change only in *transition* layers between stages (a 1x1 convolution and a bilinear resampling),
never inside a block, so every residual branch is an identity at initialization (Fix-up's zero last
layer) and the whole network starts as its stem, transitions and head.

The generator starts from a linear "basis" layer (z -> C x 4 x 4) and doubles the resolution at each
stage; the discriminator mirrors it and ends with a 4x4 "basis" convolution and a linear logit.

Deviations from the paper: two stages (4x4 and 8x8) of one or two blocks and 16-64 channels instead of
its five to six stages of hundreds of channels; biases in every convolution; the downsampling filter is
the 2x2 box (``avg_pool2d``), the upsampling bilinear without the paper's extra low-pass filter; no
output nonlinearity (as in the paper).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganref.utils import check_number, check_positive_int

__all__ = ["ResidualBlock", "ResNetGenerator", "ResNetDiscriminator", "fixup_init", "count_blocks", "residual_scale"]

SLOPE = 0.2  # LeakyReLU slope of R3GAN's blocks (as in StyleGAN2)


def _widths(widths: object) -> tuple[int, ...]:
    if not isinstance(widths, (tuple, list)) or len(widths) < 1:
        raise ValueError(f"widths must be a non-empty tuple of channel counts, one per stage, got {widths!r}")
    return tuple(check_positive_int(f"widths[{i}]", w) for i, w in enumerate(widths))


class ResidualBlock(nn.Module):
    """x + conv1x1(act(conv3x3_grouped(act(conv1x1(x))))): R3GAN's block (Sec. 3.4), no normalization.

    Args:
        channels: C, the block's input and output width.
        expansion: the hidden width is ``round(expansion * C)`` (2 in the paper's Config E, an inverted
            bottleneck; 1 gives a plain 1-3-1 block).
        group_size: channels per group of the 3x3 convolution (16 in the paper); ``None``: one group
            (an ordinary convolution, Config D). The hidden width must be a multiple of it.
    """

    def __init__(self, channels: int, expansion: float = 2.0, group_size: int | None = 16):
        super().__init__()
        channels = check_positive_int("channels", channels)
        check_number("expansion", expansion, low=0, low_open=True)
        hidden = max(1, round(expansion * channels))
        groups = 1
        if group_size is not None:
            group_size = check_positive_int("group_size", group_size)
            if hidden % group_size:
                raise ValueError(f"the hidden width {hidden} (expansion {expansion:g} x {channels} channels) must be "
                                 f"a multiple of group_size={group_size}")
            groups = hidden // group_size
        self.conv1 = nn.Conv2d(channels, hidden, 1)  # W1: C -> hidden
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=groups)  # W2: grouped 3x3
        self.conv3 = nn.Conv2d(hidden, channels, 1)  # W3: hidden -> C, zero at initialization (Fix-up)

    def forward(self, x: Tensor) -> Tensor:
        h = F.leaky_relu(self.conv1(x), SLOPE)  # (B, hidden, H, W)
        h = F.leaky_relu(self.conv2(h), SLOPE)
        return x + self.conv3(h)  # (B, C, H, W)


@torch.no_grad()
def fixup_init(module: nn.Module) -> nn.Module:
    """Fix-up initialization of every :class:`ResidualBlock` in ``module`` (in place), as R3GAN uses it.

    With L blocks of m = 3 layers, each block's first two convolutions get He (Kaiming-normal, LeakyReLU
    0.2) weights scaled by :math:`L^{-1/(2m-2)} = L^{-1/4}`, its last convolution and all its biases
    start at 0 (Zhang et al. 2019, Sec. 3; R3GAN Sec. 3.3). Other layers keep PyTorch's default.
    """
    blocks = [m for m in module.modules() if isinstance(m, ResidualBlock)]
    if not blocks:
        raise ValueError(f"{type(module).__name__} has no ResidualBlock to initialize")
    scale = residual_scale(len(blocks))  # L^{-1/(2m-2)}, m = 3 layers per branch
    for b in blocks:
        for conv in (b.conv1, b.conv2):
            nn.init.kaiming_normal_(conv.weight, a=SLOPE, nonlinearity="leaky_relu")
            conv.weight.mul_(scale)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(b.conv3.weight)  # the branch is zero: the block starts as the identity
        nn.init.zeros_(b.conv3.bias)
    return module


def _stage(width: int, blocks: int, expansion: float, group_size: int | None) -> nn.Sequential:
    return nn.Sequential(*[ResidualBlock(width, expansion, group_size) for _ in range(blocks)])


class ResNetGenerator(nn.Module):
    """G: z (B, z_dim) -> x (B, channels, R, R) with R = 4 * 2^(len(widths) - 1).

    Linear basis z -> (widths[0], 4, 4); per stage: ``blocks`` residual blocks, then (between stages)
    a transition: 1x1 convolution to the next width and bilinear x2 upsampling; a 1x1 convolution to
    ``channels`` at the end. Fix-up initialized.
    """

    def __init__(self, z_dim: int = 64, channels: int = 3, widths: tuple[int, ...] = (64, 32), blocks: int = 1,
                 expansion: float = 2.0, group_size: int | None = 16):
        super().__init__()
        self.z_dim = check_positive_int("z_dim", z_dim)
        self.channels = check_positive_int("channels", channels)
        self.widths = _widths(widths)
        blocks = check_positive_int("blocks", blocks)
        self.resolution = 4 * 2 ** (len(self.widths) - 1)
        self.basis = nn.Linear(self.z_dim, self.widths[0] * 4 * 4)  # z -> (C0, 4, 4)
        self.stages = nn.ModuleList(_stage(w, blocks, expansion, group_size) for w in self.widths)
        self.transitions = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(self.widths, self.widths[1:]))
        self.to_image = nn.Conv2d(self.widths[-1], self.channels, 1)
        fixup_init(self)

    def forward(self, z: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        h = F.leaky_relu(self.basis(z), SLOPE).view(-1, self.widths[0], 4, 4)  # (B, C0, 4, 4)
        for i, stage in enumerate(self.stages):
            if i:  # transition: 1x1 conv, then bilinear x2         (B, C_i, 2H, 2W)
                h = F.interpolate(self.transitions[i - 1](h), scale_factor=2, mode="bilinear", align_corners=False)
            h = stage(h)
        return self.to_image(h)  # (B, channels, R, R), no output nonlinearity


class ResNetDiscriminator(nn.Module):
    """D: x (B, channels, R, R) -> logit (B,), the mirror of :class:`ResNetGenerator`.

    1x1 stem to ``widths[0]``; per stage: ``blocks`` residual blocks, then (between stages) a transition:
    1x1 convolution to the next width and 2x2 average pooling; a 4x4 basis convolution to (B, C, 1, 1)
    and a linear logit at the end. Fix-up initialized. No normalization, so R1/R2 apply per sample.
    """

    def __init__(self, channels: int = 3, widths: tuple[int, ...] = (32, 64), blocks: int = 1,
                 expansion: float = 2.0, group_size: int | None = 16):
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        self.widths = _widths(widths)
        blocks = check_positive_int("blocks", blocks)
        self.resolution = 4 * 2 ** (len(self.widths) - 1)
        self.stem = nn.Conv2d(self.channels, self.widths[0], 1)
        self.stages = nn.ModuleList(_stage(w, blocks, expansion, group_size) for w in self.widths)
        self.transitions = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(self.widths, self.widths[1:]))
        self.basis = nn.Conv2d(self.widths[-1], self.widths[-1], 4)  # (B, C, 4, 4) -> (B, C, 1, 1)
        self.out = nn.Linear(self.widths[-1], 1)
        fixup_init(self)

    def forward(self, x: Tensor) -> Tensor:
        r = self.resolution
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, r, r):
            raise ValueError(f"x must have shape (B, {self.channels}, {r}, {r}), got {tuple(x.shape)}")
        h = F.leaky_relu(self.stem(x), SLOPE)  # (B, C0, R, R)
        for i, stage in enumerate(self.stages):
            if i:  # transition: 1x1 conv, then 2x2 average pooling  (B, C_i, H/2, W/2)
                h = F.avg_pool2d(self.transitions[i - 1](h), 2)
            h = stage(h)
        h = F.leaky_relu(self.basis(h), SLOPE).flatten(1)  # (B, C_last)
        return self.out(h).squeeze(1)  # (B,) logits


def count_blocks(module: nn.Module) -> int:
    """Number of residual blocks (the L of Fix-up)."""
    return sum(isinstance(m, ResidualBlock) for m in module.modules())


def residual_scale(n_blocks: int, layers: int = 3) -> float:
    """Fix-up's scale :math:`L^{-1/(2m-2)}` of the non-final branch layers for L blocks of m layers."""
    n_blocks = check_positive_int("n_blocks", n_blocks)
    layers = check_positive_int("layers", layers, minimum=2)
    return math.pow(n_blocks, -1.0 / (2 * layers - 2))
