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


def test_plot_spectra_draws_each_spectrum_on_a_log_scale():
    freqs = torch.arange(5, dtype=torch.float64) / 8
    fig = viz.plot_spectra({"real": (freqs, torch.tensor([9.0, 4, 3, 2, 1])), "fake": (freqs, torch.ones(5))},
                           reference="real")
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_legend().get_texts()] == ["real", "fake"]
    real_line, fake_line = ax.get_lines()
    np.testing.assert_array_equal(real_line.get_xdata(), freqs.numpy()[1:])  # DC left out
    np.testing.assert_array_equal(real_line.get_ydata(), [4, 3, 2, 1])
    assert real_line.get_color() == "k"
    fig = viz.plot_spectra({"a": (freqs, torch.ones(5))}, skip_dc=False)
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 5
    with pytest.raises(ValueError, match="spectra must hold at least one"):
        viz.plot_spectra({})
    with pytest.raises(ValueError, match=r"spectra\['a'\] must be two 1-D arrays of equal length"):
        viz.plot_spectra({"a": (freqs, torch.ones(4))})
    with pytest.raises(ValueError, match="reference 'b' is not a label"):
        viz.plot_spectra({"a": (freqs, torch.ones(5))}, reference="b")


def test_plot_periodogram_centres_dc_and_labels_frequencies():
    p = torch.arange(1, 17, dtype=torch.float64).reshape(4, 4)  # p[0, 0] is DC
    fig = viz.plot_periodogram(p)
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown, np.fft.fftshift(np.log10(p.numpy())), rtol=0, atol=1e-15)
    assert shown[2, 2] == np.log10(1.0)  # DC lands in the middle: index H // 2, W // 2
    assert ax.images[0].get_extent() == [-0.625, 0.375, -0.625, 0.375]  # pixel edges in cycles per pixel
    assert len(fig.axes) == 2  # the colour bar
    fig = viz.plot_periodogram(-p, log=False, colorbar=False)
    np.testing.assert_array_equal(np.asarray(fig.axes[0].images[0].get_array()), np.fft.fftshift(-p.numpy()))
    assert len(fig.axes) == 1
    shown = np.asarray(viz.plot_periodogram(torch.zeros(4, 4).index_put_((torch.tensor([0]), torch.tensor([0])),
                                                                            torch.tensor([1.0]))).axes[0]
                       .images[0].get_array())
    assert shown.min() == -12 and shown.max() == 0  # zeros floored at 1e-12 of the maximum
    with pytest.raises(ValueError, match=r"power must be a 2-D periodogram \(H, W\)"):
        viz.plot_periodogram(torch.ones(1, 4, 4))


def test_plot_vector_field_draws_unit_or_scaled_arrows_and_the_scalar():
    from matplotlib.quiver import Quiver

    _, _, pts = viz.grid_points(2.0, 5)  # 25 points, spacing 1
    pts = pts.double()
    vec = torch.stack([pts[:, 0] * 3, -pts[:, 1]], 1)
    vec[12] = 0.0  # the centre: a zero vector must stay zero, not NaN
    fig = viz.plot_vector_field(points=pts, vectors=vec, values=pts[:, 0], fake=torch.zeros(4, 2), lim=2.0)
    ax = fig.axes[0]
    (q,) = [c for c in ax.collections if isinstance(c, Quiver)]
    v, n = vec.numpy().astype(float), np.linalg.norm(vec.numpy(), axis=1)
    unit = v / np.where(n > 0, n, 1)[:, None]
    np.testing.assert_allclose(np.c_[q.U, q.V], unit, rtol=0, atol=1e-12)
    np.testing.assert_allclose(q.get_array(), n / n.max(), rtol=1e-6, atol=0)  # colour: |v| / max |v|
    assert q.scale == pytest.approx(1 / 0.8)  # arrows 0.8 grid spacings long
    assert any(len(c.get_offsets()) == 4 for c in ax.collections if not isinstance(c, Quiver))
    assert ax.get_xlim() == (-2.0, 2.0)
    assert len(ax.collections) > 2  # the filled contours of ``values`` are drawn too
    q = [c for c in viz.plot_vector_field(points=pts, vectors=vec, normalize=False, lim=2.0).axes[0].collections
         if isinstance(c, Quiver)][0]
    np.testing.assert_allclose(np.c_[q.U, q.V], v / n.max(), rtol=0, atol=1e-12)  # to scale
    assert q.scale == pytest.approx(1.0)  # the longest arrow one grid spacing long
    with pytest.raises(ValueError, match=r"vectors must have the shape of points \(25, 2\)"):
        viz.plot_vector_field(points=pts, vectors=vec[:3])
    with pytest.raises(ValueError, match=r"points must have shape \(M, 2\)"):
        viz.plot_vector_field(points=pts[:, :1], vectors=vec[:, :1])
    with pytest.raises(ValueError, match=r"values must hold one number per point, \(25,\)"):
        viz.plot_vector_field(points=pts, vectors=vec, values=torch.ones(3))


def test_figure_grid_explorer_nests_stacks_and_links_each_selector_to_its_level():
    import io

    import matplotlib.pyplot as plt

    colors = {("a", 1): "red", ("a", 2): "green", ("a", 3): "blue",
              ("b", 1): "yellow", ("b", 2): "cyan", ("b", 3): "magenta"}
    figures = {}
    for key, color in colors.items():
        fig = plt.figure(figsize=(1, 1), facecolor=color)
        figures[key] = fig
    box = viz.figure_grid_explorer(figures, ["loss", "depth"])
    loss_sel, depth_sel, root = box.children
    assert [o[0] for o in loss_sel.options] == ["a", "b"] and [o[0] for o in depth_sel.options] == ["1", "2", "3"]
    assert len(root.children) == 2 and all(len(s.children) == 3 for s in root.children)
    for i, loss in enumerate("ab"):  # the image at root[i][j] is the figure for (loss_i, depth_j)
        for j, depth in enumerate((1, 2, 3)):
            pixel = plt.imread(io.BytesIO(root.children[i].children[j].value))[0, 0, :3]
            want = np.array(plt.matplotlib.colors.to_rgb(colors[(loss, depth)]))
            np.testing.assert_allclose(pixel, want, atol=1 / 255)
    pairs = {(id(link.source[0]), link.source[1], id(link.target[0]), link.target[1]) for link in box.links}
    assert pairs == {(id(loss_sel), "index", id(root), "selected_index")} | {
        (id(depth_sel), "index", id(s), "selected_index") for s in root.children}
    with pytest.raises(ValueError, match=r"no figure for \{'loss': 'b', 'depth': 2\}"):
        viz.figure_grid_explorer({k: plt.figure() for k in [("a", 1), ("a", 2), ("b", 1)]}, ["loss", "depth"])
    with pytest.raises(ValueError, match="tuple of 2 values"):
        viz.figure_grid_explorer({("a",): plt.figure()}, ["loss", "depth"])
    with pytest.raises(ValueError, match="at least one"):
        viz.figure_grid_explorer({}, ["loss"])
