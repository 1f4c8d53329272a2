"""Data: toy 2-D mixtures, the swiss roll, and scikit-learn's 8x8 digits.

Every set here is generated in code or bundled with a package, so every chapter runs offline.

- ``ring8``: 8 Gaussians evenly spaced on a circle of radius 2, std 0.02 (VEEGAN, Srivastava et al. 2017).
- ``grid25``: 25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05 (VEEGAN; PacGAN, Lin et al. 2018).
- ``swiss_roll``: the 2-D swiss roll used in the WGAN-GP toy experiments.
- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits, scaled to [-1, 1], with labels.
- ``stacked_digits``: three digits drawn independently, one per channel: 10^3 = 1,000 modes (the
  stacked-MNIST protocol of Metz et al. 2017, used by VEEGAN and PacGAN), on the 8x8 digits so that
  it runs offline. Deviation: 8x8 digits instead of 28x28 MNIST.

Real data sets in their published file formats (MNIST, Fashion-MNIST, CIFAR-10) are in
:mod:`ganref.datasets`.

Training draws batches with replacement through a ``torch.Generator`` (see :func:`batch_sampler`),
so a run's data stream is fixed by its seed and resumes exactly from a checkpoint.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ganref.utils import check_positive_int

TOY_SETS = ("ring8", "grid25", "swiss_roll")


@dataclass(frozen=True)
class GaussianMixture:
    """An equal-weight isotropic Gaussian mixture in closed form.

    Attributes:
        means: (K, D) component means.
        std: the common standard deviation of every component.
    """

    means: Tensor
    std: float

    def __post_init__(self) -> None:
        if self.means.ndim != 2:
            raise ValueError(f"means must have shape (K, D), got {tuple(self.means.shape)}")
        if not self.std > 0:
            raise ValueError(f"std must be > 0, got {self.std!r}")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` points, shape (n, D), float32."""
        check_positive_int("n", n)
        k = torch.randint(len(self.means), (n,), generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=self.means.dtype)
        return (self.means[k] + self.std * noise).float()

    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) for points ``x`` of shape (N, D); returns (N,) in x's dtype (use float64 for tails)."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")
        means = self.means.to(x)
        sq = (x[:, None, :] - means[None]).pow(2).sum(-1)  # (N, K), exact (cdist uses a lossy matmul form)
        log_norm = -0.5 * self.dim * math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(-sq / (2 * self.std**2), dim=1) + log_norm - math.log(len(means))

    def with_std(self, std: float) -> "GaussianMixture":
        return GaussianMixture(self.means, std)


def ring8(radius: float = 2.0, std: float = 0.02, modes: int = 8) -> GaussianMixture:
    """8 Gaussians on a circle of radius 2 with std 0.02 (the VEEGAN ring)."""
    angle = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return GaussianMixture(torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1), std)


def grid25(spacing: float = 2.0, std: float = 0.05, side: int = 5) -> GaussianMixture:
    """25 Gaussians at {-4, -2, 0, 2, 4}^2 with std 0.05 (the VEEGAN/PacGAN grid)."""
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    gx, gy = torch.meshgrid(ticks, ticks, indexing="ij")
    return GaussianMixture(torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), std)


def swiss_roll(n: int, generator: torch.Generator | None = None, noise: float = 0.25, scale: float = 7.5) -> Tensor:
    """The 2-D swiss roll (as scikit-learn's ``make_swiss_roll``, x and z coordinates), divided by ``scale``.

    Returns (n, 2) float32 points, roughly within [-2, 2]^2.
    """
    check_positive_int("n", n)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    x = torch.stack([t * t.cos(), t * t.sin()], dim=1)
    x = x + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return (x / scale).float()


def toy(name: str) -> Callable[[int, torch.Generator | None], Tensor]:
    """Return a sampler ``f(n, generator) -> (n, 2)`` for a toy set named ``name``."""
    if name == "ring8":
        return ring8().sample
    if name == "grid25":
        return grid25().sample
    if name == "swiss_roll":
        return swiss_roll
    raise ValueError(f"dataset must be one of {', '.join(TOY_SETS)}, got {name!r}")


def mixture(name: str) -> GaussianMixture:
    """The closed-form mixture behind ``ring8`` or ``grid25``."""
    if name == "ring8":
        return ring8()
    if name == "grid25":
        return grid25()
    raise ValueError(f"mixture must be 'ring8' or 'grid25', got {name!r}")


def digits(split: str = "all", test_fraction: float = 0.2, seed: int = 0) -> tuple[Tensor, Tensor]:
    """scikit-learn's 8x8 digits as images in [-1, 1] and integer labels.

    Args:
        split: ``"all"`` (1,797 images), ``"train"`` or ``"test"`` (a stratified split fixed by ``seed``).
    Returns:
        images (N, 1, 8, 8) float32 in [-1, 1], labels (N,) int64.
    """
    from sklearn.datasets import load_digits

    if split not in ("all", "train", "test"):
        raise ValueError(f"split must be 'all', 'train' or 'test', got {split!r}")
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0 * 2 - 1  # (N, 1, 8, 8)
    labels = torch.tensor(bunch.target, dtype=torch.int64)
    if split == "all":
        return images, labels
    from sklearn.model_selection import train_test_split

    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels.numpy()
    )
    idx = torch.as_tensor(idx_train if split == "train" else idx_test)
    return images[idx], labels[idx]


def split_batch(real: Tensor, n: int, name: str = "d_steps") -> tuple[Tensor, ...]:
    """Split (n * B, ...) real rows into n chunks of (B, ...): a fresh batch per discriminator update.

    Methods with ``n`` discriminator steps per generator step draw ``batch_sampler(data, B, d_steps=n)``.
    ``name`` is the config field that sets ``n`` (it appears in the error message).
    """
    if not isinstance(real, Tensor) or real.ndim < 1 or real.shape[0] == 0 or real.shape[0] % n:
        shape = tuple(real.shape) if isinstance(real, Tensor) else type(real).__name__
        raise ValueError(f"real must be a batch of {name} * B = {n} * B rows, got {shape}: "
                         f"draw it with batch_sampler(data, B, d_steps={n})")
    return real.chunk(n)


def batch_sampler(data: Tensor | Callable[[int, torch.Generator], Tensor], batch_size: int,
                  device: torch.device | str = "cpu", d_steps: int = 1) -> Callable[[torch.Generator], Tensor]:
    """Make ``sample(generator) -> batch`` for :func:`ganref.train.fit`.

    Args:
        data: a tensor (N, ...) to draw rows from with replacement, or a sampler ``f(n, generator)``
            such as ``ring8().sample``.
        batch_size: rows per discriminator update, B.
        device: where batches are placed.
        d_steps: discriminator updates per step; each batch then holds ``d_steps * B`` rows, a fresh
            B for each update (the step splits them with :func:`split_batch`).
    Returns:
        the sampler; its ``fingerprint`` attribute describes the data, so that a checkpoint can
        refuse to resume on other data.
    """
    rows = check_positive_int("batch_size", batch_size) * check_positive_int("d_steps", d_steps)
    if isinstance(data, Tensor):
        if data.ndim < 1 or len(data) == 0:
            raise ValueError(f"data must be a non-empty tensor (N, ...), got shape {tuple(data.shape)}")
        table = data

        def sample(generator: torch.Generator) -> Tensor:
            idx = torch.randint(len(table), (rows,), generator=generator)
            return table[idx].to(device)
        fingerprint = f"tensor {tuple(table.shape)} {table.dtype} sha256:{_digest(table)}"
    elif callable(data):
        def sample(generator: torch.Generator) -> Tensor:
            return data(rows, generator).to(device)
        fingerprint = f"sampler {getattr(data, '__qualname__', type(data).__name__)}{_describe_owner(data)}"
    else:
        raise ValueError(f"data must be a tensor or a callable f(n, generator), got {type(data).__name__}")
    sample.fingerprint = f"{fingerprint}, {rows} rows per step"  # type: ignore[attr-defined]
    return sample


def _digest(table: Tensor) -> str:
    return hashlib.sha256(table.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def _describe_owner(fn: object) -> str:
    """A bound method's object, e.g. the GaussianMixture a ``mix.sample`` belongs to."""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, GaussianMixture):
        return f" of {len(owner.means)} Gaussians, std {owner.std:g}, means sum {float(owner.means.sum()):.6g}"
    return ""


def stacked_digits(n: int, seed: int = 0, split: str = "all") -> tuple[Tensor, Tensor]:
    """Stacked digits: three independently drawn 8x8 digits as the three channels of one image.

    With 10 classes per channel there are 10^3 = 1,000 modes, the stacked-MNIST protocol of
    Metz et al. 2017 (VEEGAN, PacGAN) on scikit-learn's 8x8 digits.

    Args:
        n: number of images.
        seed: fixes the draw (the same seed gives the same images).
        split: ``"all"``, ``"train"`` or ``"test"``: the pool of :func:`digits` each channel is drawn
            from (the train/test split itself is the fixed one of ``digits(split)``).
    Returns:
        images (n, 3, 8, 8) float32 in [-1, 1]; labels (n, 3) int64, ``labels[i, c]`` the digit
        in channel ``c`` of image ``i`` (its mode is ``100 * l0 + 10 * l1 + l2``).
    """
    n = check_positive_int("n", n)
    seed = check_positive_int("seed", seed, minimum=0)
    images, labels = digits(split)  # (N, 1, 8, 8), (N,)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(labels), (n, 3), generator=generator)  # (n, 3): one source digit per channel
    return images[idx, 0], labels[idx]  # (n, 3, 8, 8), (n, 3)
