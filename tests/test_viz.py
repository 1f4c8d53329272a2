import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from ganref import data, viz


def test_plot_2d_draws_points_density_and_contours():
    fig = viz.plot_2d(fake=torch.zeros(10, 2), real=torch.ones(5, 2), density=data.ring8(),
                      critic=lambda x: x[:, 0], lim=3)
    ax = fig.axes[0]
    offsets = [c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets())]
    assert any(len(o) == 10 for o in offsets) and any(len(o) == 5 for o in offsets)
    assert ax.get_xlim() == (-3, 3)


def test_sample_grid_tiles_images():
    imgs = -torch.ones(10, 1, 8, 8)
    fig = viz.sample_grid(imgs, nrow=4)
    arr = fig.axes[0].images[0].get_array()
    assert arr.shape == (3 * 9 + 1, 4 * 9 + 1)
    assert np.isclose(arr[1:9, 1:9], 0).all()  # -1 maps to 0 (white on gray_r)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1 or 3, H, W\)"):
        viz.sample_grid(torch.zeros(3, 2, 8, 8))


def test_losses_and_snapshots_and_explorer():
    fig = viz.plot_losses({"d_loss": list(np.linspace(1, 0, 50)), "g_loss": [1.0] * 50}, smooth=10)
    assert len(fig.axes[0].get_legend().get_texts()) == 2
    fig = viz.plot_snapshots([(1, torch.zeros(5, 2)), (2, torch.ones(5, 2))])
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="snapshots must hold"):
        viz.plot_snapshots([])
    import matplotlib.pyplot as plt

    box = viz.figure_explorer([plt.subplots()[0] for _ in range(3)])
    slider, stack = box.children
    assert slider.max == 2 and stack.selected_index == 2 and len(stack.children) == 3
    assert viz.figure_png(plt.subplots()[0])[:4] == b"\x89PNG"
