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


# --- power spectra (chapter 05) -------------------------------------------------------------------

def plot_spectra(spectra: Mapping[str, tuple[Tensor | np.ndarray, Tensor | np.ndarray]], ax: Axes | None = None,
                 title: str | None = None, reference: str | None = None, skip_dc: bool = True) -> Figure:
    """Azimuthally averaged power spectra on a log scale, one line per ``{label: (freqs, power)}``.

    Args:
        spectra: label -> the ``(freqs, power)`` pair of :func:`ganref.spectral.power_spectrum`.
        reference: the label to draw in thick black (e.g. the real data).
        skip_dc: leave out the first bin (frequency 0): the mean intensity's power dwarfs the rest.
    """
    if not spectra:
        raise ValueError("spectra must hold at least one label -> (freqs, power) pair")
    if reference is not None and reference not in spectra:
        raise ValueError(f"reference {reference!r} is not a label of spectra: {', '.join(map(str, spectra))}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    start = 1 if skip_dc else 0
    for label, (freqs, power) in spectra.items():
        f, p = _np(freqs).astype(float), _np(power).astype(float)
        if f.ndim != 1 or f.shape != p.shape:
            raise ValueError(f"spectra[{label!r}] must be two 1-D arrays of equal length (freqs, power), "
                             f"got shapes {f.shape} and {p.shape}")
        style = dict(color="k", lw=2.2) if label == reference else dict(lw=1.2)
        ax.plot(f[start:], p[start:], label=label, **style)
    ax.set_yscale("log")
    ax.set_xlabel("frequency (cycles per pixel)")
    ax.set_ylabel("power")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_periodogram(power: Tensor | np.ndarray, ax: Axes | None = None, title: str | None = None,
                     log: bool = True, cmap: str = "magma", vmin: float | None = None, vmax: float | None = None,
                     colorbar: bool = True) -> Figure:
    """A 2-D periodogram (H, W) given in FFT order (DC at [0, 0]), drawn centred (``fftshift``).

    The axes are in cycles per pixel with DC in the middle. ``log`` draws ``log10(power)`` (values
    below 1e-12 of the maximum are floored there); with ``log=False`` the values are drawn as given
    (e.g. a log-ratio of two periodograms, with a diverging ``cmap``).
    """
    p = _np(power).astype(float)
    if p.ndim != 2 or min(p.shape) < 2:
        raise ValueError(f"power must be a 2-D periodogram (H, W) with H, W >= 2, got shape {p.shape}")
    if log:
        top = p.max()
        p = np.log10(np.maximum(p, 1e-12 * top if top > 0 else 1e-300))
    h, w = p.shape
    fy, fx = np.fft.fftshift(np.fft.fftfreq(h)), np.fft.fftshift(np.fft.fftfreq(w))
    extent = (fx[0] - 0.5 / w, fx[-1] + 0.5 / w, fy[0] - 0.5 / h, fy[-1] + 0.5 / h)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.4, 3))
    im = ax.imshow(np.fft.fftshift(p), origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax,
                   interpolation="nearest")
    ax.set_xlabel("$f_x$ (cycles/pixel)", fontsize=8)
    ax.set_ylabel("$f_y$", fontsize=8)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


# --- vector fields and option grids (chapter 06) --------------------------------------------------

def plot_vector_field(ax: Axes | None = None, *, points: Tensor | np.ndarray, vectors: Tensor | np.ndarray,
                      values: Tensor | np.ndarray | None = None, real: Tensor | np.ndarray | None = None,
                      fake: Tensor | np.ndarray | None = None, lim: float = 3.0, title: str | None = None,
                      normalize: bool = True, cmap: str = "viridis") -> Figure:
    """Arrows of a 2-D vector field, e.g. the direction :math:`-\\nabla_x c(D(x))` a generator moves a sample.

    Args:
        points: (M, 2) arrow tails, e.g. a grid such as ``grid_points(lim, 21)[2]``.
        vectors: (M, 2) the field at ``points``.
        values: (M,) a scalar (e.g. D(x)) drawn as filled contours under the arrows, by triangulating ``points``.
        real, fake: (N, 2) samples to scatter (black and red).
        lim: half-width of the square view.
        normalize: draw arrows of equal length coloured by :math:`|v| / \\max |v|`, so that directions stay
            readable where the field is weak; False draws them to scale (the longest one grid spacing long).
            The grid spacing is that of a square grid of M points over :math:`[-lim, lim]^2`.
        cmap: the arrows' colour map.
    Returns:
        the figure (the arrows are its ``matplotlib.quiver.Quiver``).
    """
    p, v = _np(points).astype(float), _np(vectors).astype(float)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0:
        raise ValueError(f"points must have shape (M, 2) with M >= 1, got {p.shape}")
    if v.shape != p.shape:
        raise ValueError(f"vectors must have the shape of points {p.shape}, got {v.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    if values is not None:
        s = _np(values).astype(float).reshape(-1)
        if s.shape != (len(p),):
            raise ValueError(f"values must hold one number per point, ({len(p)},), got {_np(values).shape}")
        ax.tricontourf(p[:, 0], p[:, 1], s, levels=14, cmap="RdBu_r", alpha=0.55)
    norm = np.linalg.norm(v, axis=1)
    top = norm.max()
    spacing = 2 * lim / max(np.sqrt(len(p)) - 1, 1)  # grid spacing for M points on the square
    if normalize:
        u = v / np.where(norm > 0, norm, 1.0)[:, None]  # unit arrows; zero vectors stay zero
        length = 0.8 * spacing
    else:
        u = v / top if top > 0 else v
        length = spacing
    ax.quiver(p[:, 0], p[:, 1], u[:, 0], u[:, 1], norm / top if top > 0 else norm, cmap=cmap,
              angles="xy", scale_units="xy", scale=1.0 / length, width=0.004, clim=(0, 1))
    if real is not None:
        r = _np(real)
        ax.scatter(r[:, 0], r[:, 1], s=3, c="k", alpha=0.5, label="real")
    if fake is not None:
        f = _np(fake)
        ax.scatter(f[:, 0], f[:, 1], s=3, c="tab:red", alpha=0.6, label="generated")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def figure_grid_explorer(figures: Mapping[tuple, Figure], names: Sequence[str]):
    """Pre-rendered figures over a grid of options, with one browser-linked selector per option.

    Like :func:`figure_explorer`, it needs no running kernel: the figures sit in nested ``Stack``
    widgets and each selector is ``jslink``-ed to every stack of its level, so choosing e.g. a loss,
    a depth and a bias picks the figure in the browser.

    Args:
        figures: ``{(value_1, ..., value_k): figure}`` with a figure for every combination of the values
            that appear at each position (values keep their order of first appearance).
        names: the k option names, shown beside their selectors.
    Returns:
        an ipywidgets ``VBox([selector_1, ..., selector_k, stack])``; its ``links`` attribute lists the
        ``jslink`` objects.
    """
    import itertools

    import ipywidgets as widgets

    names = list(names)
    if not figures:
        raise ValueError("figures must hold at least one (values...) -> figure entry")
    if not names:
        raise ValueError("names must name at least one option")
    for key in figures:
        if not isinstance(key, tuple) or len(key) != len(names):
            raise ValueError(f"every key of figures must be a tuple of {len(names)} values ({', '.join(names)}), "
                             f"got {key!r}")
    options = [list(dict.fromkeys(key[i] for key in figures)) for i in range(len(names))]
    for combo in itertools.product(*options):
        if combo not in figures:
            raise ValueError(f"figures has no figure for {dict(zip(names, combo))}: it needs one for every combination")
    levels: list[list] = [[] for _ in names]

    def build(prefix: tuple):  # a Stack over the next option's values, or the image itself
        if len(prefix) == len(names):
            return widgets.Image(value=figure_png(figures[prefix]), format="png")
        stack = widgets.Stack([build(prefix + (v,)) for v in options[len(prefix)]], selected_index=0)
        levels[len(prefix)].append(stack)
        return stack

    root = build(())
    selectors = [widgets.ToggleButtons(options=[(str(v), i) for i, v in enumerate(opts)], value=0, description=name)
                 for name, opts in zip(names, options)]
    links = [widgets.jslink((sel, "index"), (stack, "selected_index"))
             for sel, stacks in zip(selectors, levels) for stack in stacks]
    box = widgets.VBox([*selectors, root])
    box.links = links
    return box
