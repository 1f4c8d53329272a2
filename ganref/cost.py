r"""What a network costs to run: parameters, FLOPs and MACs per sample, wall time per 1,000 samples.

The compute is counted by PyTorch, not by hand: :class:`torch.utils.flop_counter.FlopCounterMode`
dispatches every operator of a call and adds up the FLOPs of matrix products and convolutions,
2 per multiply-accumulate (MAC). For a convolution with a :math:`k \times k` kernel that is

.. math::
    \text{FLOPs} = 2\, C_{in} C_{out} k^2 H_{out} W_{out} \quad \text{(per sample)},

and for a transposed convolution the same with the *input* size :math:`H_{in} W_{in}` (each input
pixel scatters one :math:`C_{in} \times C_{out} k^2` product). Element-wise work (bias adds,
normalization, activations) is not counted: on the small nets of this book it is a few per cent of
the total, and counting it the same way for every net keeps ratios honest. MACs = FLOPs / 2, the
unit GAN-compression papers report ("56.8G MACs", Li et al. 2020).

Wall time is measured, not estimated: the median over ``repeats`` of the seconds a call takes to
produce ``n`` samples, after warm-up calls, synchronizing the device so that queued GPU work counts.
It depends on the machine and its load, so a chapter reports it beside the counts, never instead.

Chapter 12 compares generators of several widths; chapters 10 and 11 compare samplers by their
number of function evaluations: :func:`count_flops` and :func:`wall_time` take any callable, so a
4-step sampler is measured the same way as a one-step generator.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ganref.utils import check_positive_int

__all__ = ["Cost", "parameters", "count_flops", "flops_per_sample", "wall_time", "generator_cost"]


@dataclass(frozen=True)
class Cost:
    """A generator's cost: parameters, FLOPs and MACs per sample, seconds per 1,000 samples."""

    params: int
    flops: float
    macs: float
    seconds_per_1000: float


def parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalars in ``module``'s parameters, ``sum(p.numel())`` (only those with ``requires_grad``
    when ``trainable_only``). Buffers (batch-norm running statistics) are not parameters."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call ``fn()``, counted by ``FlopCounterMode`` under ``torch.no_grad()`` (forward only).

    Args:
        fn: a call with no arguments, e.g. ``lambda: G(z)`` or ``lambda: sampler(64)``.
    Returns:
        the total FLOPs of the matrix products and convolutions it ran (2 per MAC).
    """
    if not callable(fn):
        raise ValueError(f"fn must be callable with no arguments, got {type(fn).__name__}")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def flops_per_sample(fn: Callable[[int], Any], n: int = 16) -> float:
    """FLOPs per sample of ``fn(n)``, a call that makes ``n`` samples: ``count_flops(lambda: fn(n)) / n``."""
    n = check_positive_int("n", n)
    if not callable(fn):
        raise ValueError(f"fn must be callable as fn(n) -> n samples, got {type(fn).__name__}")
    return count_flops(lambda: fn(n)) / n


def _synchronize(device: torch.device | str | None) -> None:
    kind = torch.device(device).type if device is not None else "cpu"
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def wall_time(fn: Callable[[int], Any], n: int = 1000, batch_size: int | None = None, repeats: int = 5,
              warmup: int = 1, device: torch.device | str | None = None) -> float:
    """Median seconds to make ``n`` samples by calling ``fn(b)`` on batches of at most ``batch_size``.

    Args:
        fn: ``fn(b)`` makes ``b`` samples (a generator call, a whole multi-step sampler, ...).
        n: samples per measurement (1,000: "seconds per 1,000 samples").
        batch_size: rows per call; ``None``: all ``n`` in one call.
        repeats: measurements; the median is returned (robust to a busy machine's outliers).
        warmup: unmeasured runs first (allocations, kernel selection, lazy initialization).
        device: synchronized before reading the clock (``"cuda"``: queued kernels count).
    Returns:
        seconds for ``n`` samples (median over ``repeats``).
    """
    n = check_positive_int("n", n)
    batch_size = n if batch_size is None else check_positive_int("batch_size", batch_size)
    repeats = check_positive_int("repeats", repeats)
    warmup = check_positive_int("warmup", warmup, minimum=0)
    if not callable(fn):
        raise ValueError(f"fn must be callable as fn(b) -> b samples, got {type(fn).__name__}")
    sizes = [min(batch_size, n - start) for start in range(0, n, batch_size)]

    def once() -> float:
        _synchronize(device)
        start = time.perf_counter()
        for b in sizes:
            fn(b)
        _synchronize(device)
        return time.perf_counter() - start

    with torch.no_grad():
        for _ in range(warmup):
            once()
        return statistics.median(once() for _ in range(repeats))


def generator_cost(G: nn.Module, n: int = 1000, batch_size: int | None = None, repeats: int = 5,
                   seed: int = 0) -> Cost:
    """Parameters, FLOPs/MACs per sample and seconds per 1,000 samples of a generator ``G(z)``.

    ``G`` runs in eval mode (as when sampling) on its own device, from a fixed ``z ~ N(0, I)``
    of ``n`` rows drawn with ``seed``; its train/eval mode is restored afterwards.

    Args:
        G: a generator with an integer ``z_dim`` attribute.
        n: samples per timing (the FLOPs are per sample whatever ``n`` is).
        batch_size: rows per call when timing; ``None``: all ``n`` at once.
        repeats: timings (median).
    """
    z_dim = getattr(G, "z_dim", None)
    if not isinstance(G, nn.Module) or not isinstance(z_dim, int):
        raise ValueError(f"G must be a torch.nn.Module with an integer z_dim attribute, got {type(G).__name__}")
    n = check_positive_int("n", n)
    first = next(G.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)  # (n, z_dim)
    was_training = G.training
    G.eval()
    try:
        flops = flops_per_sample(lambda b: G(z[:b]), min(n, 64))
        seconds = wall_time(lambda b: G(z[:b]), n, batch_size, repeats, device=device) * 1000 / n
    finally:
        G.train(was_training)
    return Cost(params=parameters(G), flops=flops, macs=flops / 2, seconds_per_1000=seconds)
