"""Plots: 2-D samples over the data density with D's contours, sample grids, loss curves.

Every function draws on a matplotlib ``Axes`` it is given (or makes one) and returns the figure,
so a chapter can compose panels and the tests can check what was drawn.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ganref.data import GaussianMixture


def _np(x: Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def grid_points(lim: float, n: int = 200) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """A square grid over [-lim, lim]^2: meshgrid arrays (n, n) and the points (n*n, 2) as a tensor."""
    t = np.linspace(-lim, lim, n)
    gx, gy = np.meshgrid(t, t)
    pts = torch.tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float32)
    return gx, gy, pts


def plot_2d(ax: Axes | None = None, *, fake: Tensor | np.ndarray | None = None,
            real: Tensor | np.ndarray | None = None, density: GaussianMixture | None = None,
            critic: Callable[[Tensor], Tensor] | None = None, lim: float = 3.0,
            title: str | None = None, levels: int = 10) -> Figure:
    """Generated points over the data density, with the contours of ``critic`` (e.g. sigmoid(D)).

    Args:
        fake, real: (N, 2) samples to scatter (fake in red, real in black).
        density: a closed-form mixture drawn as a shaded log-density.
        critic: maps (M, 2) points to (M,) values; drawn as contours.
        lim: half-width of the square view.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    gx, gy, pts = grid_points(lim, 160)
    if density is not None:
        logp = density.log_prob(pts.double()).reshape(gx.shape).numpy()
        ax.contourf(gx, gy, np.exp(logp - logp.max()) ** 0.25, levels=20, cmap="Greens")
    if critic is not None:
        with torch.no_grad():
            values = _np(critic(pts)).reshape(gx.shape)
        cs = ax.contour(gx, gy, values, levels=levels, cmap="coolwarm", linewidths=0.8)
        ax.clabel(cs, fontsize=6, fmt="%.2f")
    if real is not None:
        r = _np(real)
        ax.scatter(r[:, 0], r[:, 1], s=2, c="k", alpha=0.4, label="real")
    if fake is not None:
        f = _np(fake)
        ax.scatter(f[:, 0], f[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_snapshots(snapshots: Sequence[tuple[int, Tensor]], density: GaussianMixture | None = None,
                   lim: float = 3.0, title: str = "") -> Figure:
    """A row of panels, one per ``(step, samples)`` snapshot taken during training."""
    if not snapshots:
        raise ValueError("snapshots must hold at least one (step, samples) pair")
    fig, axes = plt.subplots(1, len(snapshots), figsize=(2.2 * len(snapshots), 2.4), squeeze=False)
    for ax, (step, samples) in zip(axes[0], snapshots):
        plot_2d(ax, fake=samples, density=density, lim=lim, title=f"step {step}")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def sample_grid(images: Tensor | np.ndarray, nrow: int = 8, ax: Axes | None = None,
                title: str | None = None) -> Figure:
    """Images (N, C, H, W) in [-1, 1] tiled in a grid of ``nrow`` columns (C = 1 gray, C = 3 RGB)."""
    x = _np(images)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {x.shape}")
    n, c, h, w = x.shape
    rows = -(-n // nrow)
    canvas = np.ones((rows * (h + 1) + 1, nrow * (w + 1) + 1, c))
    for i in range(n):
        r, col = divmod(i, nrow)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + col * (w + 1): 1 + col * (w + 1) + w] = \
            np.transpose((x[i] + 1) / 2, (1, 2, 0))
    if ax is None:
        _, ax = plt.subplots(figsize=(0.35 * nrow + 0.5, 0.35 * rows + 0.5))
    ax.imshow(np.clip(canvas.squeeze(-1) if c == 1 else canvas, 0, 1), cmap="gray_r" if c == 1 else None,
              interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_losses(history: Mapping[str, Sequence[float]], ax: Axes | None = None, smooth: int = 20,
                title: str | None = None) -> Figure:
    """Loss curves by name, with a moving average over ``smooth`` steps drawn on top of the raw values."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for name, values in history.items():
        v = np.asarray(values, dtype=float)
        line, = ax.plot(v, alpha=0.25, lw=0.8)
        if smooth > 1 and len(v) >= smooth:
            ax.plot(np.arange(smooth - 1, len(v)), np.convolve(v, np.ones(smooth) / smooth, mode="valid"),
                    color=line.get_color(), label=name)
        else:
            line.set_label(name)
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def figure_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a figure to PNG bytes and close it."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def figure_explorer(figures: Sequence[Figure], description: str = "frame", start: int = -1):
    """A slider over pre-rendered figures, linked in the browser (``jslink``).

    It needs no running kernel, so it works on the static site too. Returns an ipywidgets ``VBox``.
    """
    import ipywidgets as widgets

    if not figures:
        raise ValueError("figures must hold at least one matplotlib figure")
    frames = [widgets.Image(value=figure_png(f), format="png") for f in figures]
    index = start % len(frames)
    stack = widgets.Stack(frames, selected_index=index)
    slider = widgets.IntSlider(value=index, min=0, max=len(frames) - 1, description=description)
    widgets.jslink((slider, "value"), (stack, "selected_index"))
    return widgets.VBox([slider, stack])
