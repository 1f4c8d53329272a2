"""Values that change over a run: schedules (:class:`Ramp`) and weight averages (:class:`EMA`).

A config field may hold a :class:`Ramp` where it would hold a number (a learning rate, a penalty
weight, an EMA decay); a step reads it with :func:`value_at` at ``state.step``. DDPM, R3GAN and DMD2
need both: R3GAN decays its learning rate and gamma and raises Adam's beta2; diffusion models sample
from an EMA of their weights. :func:`ganref.train.fit` updates every EMA in ``state.ema`` after each step.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganref.utils import check_choice, check_number, check_positive_int


RAMPS = ("linear", "cosine")


@dataclass(frozen=True)
class Ramp:
    """A value that moves from ``start`` to ``end`` over ``steps`` steps, then stays at ``end``.

    ``kind="linear"`` interpolates linearly; ``"cosine"`` follows
    ``end + (start - end) (1 + cos(pi k / steps)) / 2`` (Loshchilov & Hutter 2017, without restarts).
    A config field may hold a ``Ramp`` where it would hold a number (``lr``, a penalty weight, an EMA
    decay); the step reads it with :func:`value_at`.
    """

    start: float
    end: float
    steps: int
    kind: str = "cosine"

    def __post_init__(self) -> None:
        check_number("start", self.start)
        check_number("end", self.end)
        check_positive_int("steps", self.steps)
        check_choice("kind", self.kind, RAMPS)

    def __call__(self, step: int) -> float:
        if step >= self.steps:
            return float(self.end)  # exactly the end value once the ramp is over
        t = max(step, 0) / self.steps  # progress in [0, 1)
        if self.kind == "linear":
            return self.start + (self.end - self.start) * t
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * t)) / 2


def value_at(value: float | Ramp, step: int) -> float:
    """A config field's value at ``step``: the number itself, or the ramp evaluated there."""
    return value(step) if isinstance(value, Ramp) else float(value)


def check_scheduled(name: str, value: object, **bounds: Any) -> None:
    """Validate a field that holds a number or a :class:`Ramp` (both ends checked against ``bounds``)."""
    if isinstance(value, Ramp):
        check_number(f"{name}.start", value.start, **bounds)
        check_number(f"{name}.end", value.end, **bounds)
    else:
        check_number(name, value, **bounds)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate (call it at the top of a step with a :class:`Ramp`)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


# ----------------------------------------------------------------------------- EMA


class EMA(nn.Module):
    r"""Exponential moving average of a module's weights: :math:`\bar\theta \leftarrow d\,\bar\theta + (1 - d)\,\theta`.

    After n updates with a constant ``decay`` d from :math:`\bar\theta_0 = \theta_0`, the average is
    :math:`d^n \theta_0 + (1 - d) \sum_{k=1}^{n} d^{n-k} \theta_k`. Buffers (batch-norm statistics)
    are copied, not averaged. Put it in ``State(ema={"G": EMA(G, 0.999)})``: ``fit`` updates it after
    every step and saves it in checkpoints; sample from ``state.ema["G"].module``.

    Args:
        source: the module to average (its current weights start the average).
        decay: d in [0, 1), or a :class:`Ramp` over the number of updates.
    """

    def __init__(self, source: nn.Module, decay: float | Ramp = 0.999):
        super().__init__()
        if not isinstance(source, nn.Module):
            raise ValueError(f"source must be an nn.Module, got {type(source).__name__}")
        check_scheduled("decay", decay, low=0, high=1, high_open=True)
        self.decay = decay
        self.module = copy.deepcopy(source).eval()
        self.module.requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update(self, source: nn.Module) -> None:
        d = value_at(self.decay, int(self.updates))
        mine, theirs = list(self.module.parameters()), list(source.parameters())
        if len(mine) != len(theirs) or any(a.shape != b.shape for a, b in zip(mine, theirs)):
            raise ValueError("EMA.update got a module with other parameters than the one it averages")
        for p_ema, p in zip(mine, theirs):
            p_ema.lerp_(p.detach(), 1.0 - d)  # d * ema + (1 - d) * p
        for b_ema, b in zip(self.module.buffers(), source.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def train(self, mode: bool = True) -> "EMA":  # the average is always used in eval mode
        super().train(mode)
        self.module.eval()
        return self


