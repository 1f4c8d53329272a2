"""Tests for ganref.polygons: determinism, range, exact coverage, the area bound, anti-aliasing."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch.testing import assert_close

from ganref.polygons import (
    MAX_VERTICES,
    MIN_CONTRAST,
    MIN_VERTICES,
    polygons,
    random_polygon_vertices,
    render_convex_polygons,
    signed_area,
)


@pytest.mark.parametrize("channels, size", [(1, 32), (3, 32), (1, 16)])
def test_shape_range_and_determinism(channels, size):
    x = polygons(40, size=size, channels=channels, seed=3)
    assert x.shape == (40, channels, size, size) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, polygons(40, size=size, channels=channels, seed=3))
    assert not torch.equal(x, polygons(40, size=size, channels=channels, seed=4))


def test_colours_contrast():
    x = polygons(200, seed=0)
    per_image = x.flatten(1)
    lo, hi = per_image.min(dim=1).values, per_image.max(dim=1).values
    assert ((hi - lo) >= 2 * MIN_CONTRAST - 1e-6).all()  # every polygon stands out from its background
    assert lo.min() < -0.9 and hi.max() > 0.9  # colours span the range


def test_anti_aliasing_gives_intermediate_values_on_edges():
    x = polygons(100, seed=1)[:, 0]  # (100, 32, 32)
    for img in x:
        lo, hi = img.min(), img.max()
        between = ((img > lo + 1e-6) & (img < hi - 1e-6)).sum()
        assert between > 0
    # with supersample=1 there is no anti-aliasing: two values per image
    hard = polygons(20, seed=1, supersample=1)[:, 0]
    for img in hard:
        assert len(torch.unique(img)) <= 2


def test_exact_coverage_of_an_axis_aligned_rectangle():
    # corners on the quarter-pixel grid: 4x4 supersampling covers it exactly
    x0, x1, y0, y1 = 2.25, 9.5, 3.0, 6.75
    rect = torch.tensor([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]], dtype=torch.float64)
    cover = render_convex_polygons(rect, size=12, supersample=4)[0]
    edge = torch.arange(12, dtype=torch.float64)  # pixel k spans [k, k + 1]
    cols = (torch.clamp(edge + 1, max=x1) - torch.clamp(edge, min=x0)).clamp(min=0)  # overlap with [x0, x1]
    rows = (torch.clamp(edge + 1, max=y1) - torch.clamp(edge, min=y0)).clamp(min=0)
    assert_close(cover, rows[:, None] * cols[None, :], rtol=0, atol=1e-15)
    # the other orientation renders the same
    assert_close(render_convex_polygons(rect.flip(1), 12, 4), cover[None], rtol=0, atol=0)


def test_scanline_renderer_equals_per_sample_half_plane_test():
    vertices, _ = random_polygon_vertices(6, size=12, seed=7)
    s = 4
    cover = render_convex_polygons(vertices, 12, supersample=s)
    t = (torch.arange(12 * s, dtype=torch.float64) + 0.5) / s
    py, px = torch.meshgrid(t, t, indexing="ij")  # sub-pixel centres, y = row, x = column
    for v, got in zip(vertices, cover):
        inside = torch.ones_like(px, dtype=torch.bool)
        for k in range(len(v)):  # CCW: the centre is left of (or on) every edge
            e = v[(k + 1) % len(v)] - v[k]
            inside &= e[0] * (py - v[k, 1]) - e[1] * (px - v[k, 0]) >= 0
        expected = inside.double().view(12, s, 12, s).mean(dim=(1, 3))
        assert_close(got, expected, rtol=0, atol=0)
    assert 0 < cover.mean() < 1


def test_coverage_area_within_the_boundary_bound():
    vertices, counts = random_polygon_vertices(200, size=32, seed=5)
    inside = ((vertices >= 0) & (vertices <= 32)).all(dim=(1, 2))
    vertices, counts = vertices[inside], counts[inside]
    assert len(vertices) > 50
    assert ((counts >= MIN_VERTICES) & (counts <= MAX_VERTICES)).all()
    area = signed_area(vertices).abs()
    perimeter = (vertices.roll(-1, dims=1) - vertices).norm(dim=-1).sum(dim=1)
    for s in (4, 16):
        estimate = render_convex_polygons(vertices, 32, supersample=s).sum(dim=(1, 2))
        h = 1 / s
        # a misjudged sub-pixel meets the boundary: at most sqrt(2) L / h + 2 K of them, each h^2
        bound = math.sqrt(2) * perimeter * h + 2 * MAX_VERTICES * h * h
        assert ((estimate - area).abs() <= bound).all()
    assert ((estimate - area).abs() / area).max() < 0.01  # and at s = 16 it is close


def test_vertex_counts_and_convexity():
    vertices, counts = random_polygon_vertices(500, seed=2)
    assert set(counts.tolist()) == set(range(MIN_VERTICES, MAX_VERTICES + 1))
    for v, k in zip(vertices[:50], counts[:50]):
        distinct = torch.unique(v, dim=0)
        assert len(distinct) == k
    assert (signed_area(vertices) > 0).all()


def test_speed_2000_images():
    start = time.perf_counter()
    polygons(2000, seed=0)
    assert time.perf_counter() - start < 15  # a few seconds on one core; generous on a shared machine


def test_errors():
    with pytest.raises(ValueError, match="channels"):
        polygons(4, channels=2)
    with pytest.raises(ValueError, match="n must be"):
        polygons(0)
    with pytest.raises(ValueError, match="size must be"):
        polygons(4, size=2)
    with pytest.raises(ValueError, match="seed"):
        polygons(4, seed=-1)
    with pytest.raises(ValueError, match=r"\(N, K, 2\)"):
        render_convex_polygons(torch.zeros(3, 2), 8)
    with pytest.raises(ValueError, match="zero area"):
        render_convex_polygons(torch.zeros(1, 3, 2), 8)
    dart = torch.tensor([[[0.0, 0.0], [4.0, 2.0], [8.0, 0.0], [4.0, 8.0]]])
    with pytest.raises(ValueError, match="convex"):
        render_convex_polygons(dart, 8)
