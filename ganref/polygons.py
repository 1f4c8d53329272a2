"""Polygons: a procedurally rendered image set with sharp edges, so real high-frequency content.

**Are GANs Created Equal? A Large-Scale Study.** Mario Lucic, Karol Kurach, Marcin Michalski,
Sylvain Gelly, Olivier Bousquet. NeurIPS 2018. arXiv:1711.10337. The study trains GANs on images
of convex polygons, a set whose manifold is known, to measure precision and recall.

Each image holds one filled convex polygon with 3 to 8 vertices. The vertices sit on an ellipse
(random centre, radius, aspect ratio and rotation) at evenly spaced angles with jitter, which
keeps every polygon convex and never degenerate. The polygon is drawn in a random gray level
(or RGB colour) on a random background with at least ``MIN_CONTRAST`` between them, and
anti-aliased: each pixel's value is the fraction of its ``supersample x supersample`` sub-pixel
centres inside the polygon (box-filter supersampling). Inside-ness is the half-plane test of a
convex polygon: a point is inside iff it lies on the inner side of every edge.

Everything is fixed by ``seed``: parameters come from a NumPy PCG64 generator, rendering is
float64 arithmetic.

Deviations from the paper: this is our own renderer of the idea, not the paper's data: 32 x 32,
one polygon per image, random gray levels or colours on a random background.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ganref.utils import check_positive_int

MIN_VERTICES, MAX_VERTICES = 3, 8
MIN_CONTRAST = 0.3
CHUNK = 1024  # polygons rendered at once


def _check_vertices(vertices: Tensor) -> None:
    if not isinstance(vertices, Tensor) or vertices.ndim != 3 or vertices.shape[-1] != 2 or vertices.shape[1] < 3:
        raise ValueError("vertices must have shape (N, K, 2) with K >= 3 (x, y) points in pixel units, got "
                         f"{getattr(vertices, 'shape', type(vertices).__name__)}")


def signed_area(vertices: Tensor) -> Tensor:
    """Shoelace area of each polygon, (N, K, 2) -> (N,): positive for counter-clockwise in (x, y)."""
    _check_vertices(vertices)
    x, y = vertices[..., 0], vertices[..., 1]
    return 0.5 * (x * y.roll(-1, dims=1) - x.roll(-1, dims=1) * y).sum(dim=1)  # 1/2 sum x_i y_i+1 - x_i+1 y_i


def render_convex_polygons(vertices: Tensor, size: int, supersample: int = 4) -> Tensor:
    """Anti-aliased coverage of convex polygons on a ``size x size`` pixel grid.

    Pixel (i, j) is the square ``[j, j+1] x [i, i+1]`` in (x, y) pixel units (x = column,
    y = row). Its value is the fraction of the ``supersample^2`` evenly spaced sub-pixel centres
    that lie inside the polygon.

    Args:
        vertices: (N, K, 2) vertices in order (either orientation). A polygon with fewer vertices
            may repeat one: zero-length edges constrain nothing.
        size: output side in pixels.
        supersample: sub-pixel samples per side.
    Returns:
        (N, size, size) float64 coverage in [0, 1].
    """
    _check_vertices(vertices)
    check_positive_int("size", size)
    check_positive_int("supersample", supersample)
    if len(vertices) > CHUNK:  # bound memory at about CHUNK * size^2 * supersample floats
        return torch.cat([render_convex_polygons(vertices[i:i + CHUNK], size, supersample)
                          for i in range(0, len(vertices), CHUNK)])
    v = vertices.double()
    sign = torch.sign(signed_area(v))  # orient every polygon counter-clockwise
    if (sign == 0).any():
        raise ValueError("vertices include a polygon with zero area")
    edges = v.roll(-1, dims=1) - v  # (N, K, 2) edge i goes from v_i to v_i+1
    turn = edges[..., 0] * edges.roll(-1, dims=1)[..., 1] - edges[..., 1] * edges.roll(-1, dims=1)[..., 0]
    bad = ((turn * sign[:, None]) < -1e-9 * v.abs().amax(dim=(1, 2))[:, None] ** 2).any(dim=1)
    if bad.any():  # every turn of a convex polygon goes the same way (zero-length edges turn by 0)
        raise ValueError(f"vertices must be convex polygons in order; polygon {int(bad.nonzero()[0])} is not")
    s = supersample
    y = (torch.arange(size * s, dtype=torch.float64) + 0.5) / s  # (S,) sub-row centres
    # inside a CCW convex polygon <=> cross(e_k, p - v_k) = a_k x + b_k y + c_k >= 0 for every edge k
    a = -edges[..., 1] * sign[:, None]  # (N, K)
    b = edges[..., 0] * sign[:, None]
    c = (edges[..., 1] * v[..., 0] - edges[..., 0] * v[..., 1]) * sign[:, None]
    # scanlines: on sub-row y the inside is the interval x_lo <= x <= x_hi
    rest = b[..., None] * y + c[..., None]  # (N, K, S): a_k x + rest >= 0
    bound = -rest / a[..., None].where(a[..., None] != 0, torch.ones(()))  # x = -rest / a_k
    inf = torch.tensor(math.inf, dtype=torch.float64)
    x_lo = torch.where(a[..., None] > 0, bound, -inf).amax(dim=1)  # (N, S), a_k > 0: x >= bound
    x_hi = torch.where(a[..., None] < 0, bound, inf).amin(dim=1)  # a_k < 0: x <= bound
    empty = ((a[..., None] == 0) & (rest < 0)).any(dim=1)  # an edge parallel to the row excludes it
    x_hi = x_hi.masked_fill(empty, -inf)
    # sub-column m (centre (m + 0.5) / s) is inside iff first <= m <= last
    first = torch.ceil(x_lo * s - 0.5).clamp(-1, size * s)  # (N, S)
    last = torch.floor(x_hi * s - 0.5).clamp(-1, size * s)
    j0 = torch.arange(size, dtype=torch.float64) * s  # first sub-column of each pixel column
    hits = (torch.minimum(last[..., None], j0 + s - 1) - torch.maximum(first[..., None], j0) + 1).clamp(min=0)
    # box filter: the fraction of the s x s sub-pixel centres of each pixel that are inside
    out = hits.view(len(v), size, s, size).sum(dim=2) / (s * s)  # (N, size, size)
    return out


def random_polygon_vertices(n: int, size: int = 32, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Vertices of ``n`` random convex polygons in pixel units, and their vertex counts.

    Returns:
        vertices (n, MAX_VERTICES, 2) float64, the last vertex repeated to pad; counts (n,) int64.
    """
    check_positive_int("n", n)
    check_positive_int("size", size, minimum=4)
    rng = np.random.Generator(np.random.PCG64(_check_seed(seed)))
    counts = rng.integers(MIN_VERTICES, MAX_VERTICES + 1, size=n)
    radius = rng.uniform(0.18, 0.42, size=n) * size  # semi-major axis
    aspect = rng.uniform(0.5, 1.0, size=n)  # semi-minor / semi-major
    rotation = rng.uniform(0.0, 2 * math.pi, size=n)
    centre = rng.uniform(0.3, 0.7, size=(n, 2)) * size
    jitter = rng.uniform(-0.35, 0.35, size=(n, MAX_VERTICES))  # < 0.5: the angles stay in order
    idx = np.minimum(np.arange(MAX_VERTICES)[None, :], counts[:, None] - 1)  # pad by repeating the last
    angle = 2 * math.pi * (idx + np.take_along_axis(jitter, idx, axis=1)) / counts[:, None]  # (n, K)
    ex, ey = radius[:, None] * np.cos(angle), radius[:, None] * aspect[:, None] * np.sin(angle)  # on the ellipse
    cos_r, sin_r = np.cos(rotation)[:, None], np.sin(rotation)[:, None]
    x = centre[:, :1] + cos_r * ex - sin_r * ey  # rotate, then translate
    y = centre[:, 1:] + sin_r * ex + cos_r * ey
    return torch.from_numpy(np.stack([x, y], axis=-1)), torch.from_numpy(counts)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def polygons(n: int, size: int = 32, channels: int = 1, seed: int = 0, supersample: int = 4) -> Tensor:
    """``n`` images of one anti-aliased convex polygon each, in [-1, 1].

    Args:
        n: number of images.
        size: side in pixels (at least 4).
        channels: 1 (gray levels) or 3 (RGB colours).
        seed: fixes every image.
        supersample: sub-pixel samples per side for anti-aliasing.
    Returns:
        (n, channels, size, size) float32 in [-1, 1].
    """
    check_positive_int("n", n)
    check_positive_int("size", size, minimum=4)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB), got {channels!r}")
    vertices, _ = random_polygon_vertices(n, size, seed)
    cover = render_convex_polygons(vertices, size, supersample)  # (n, H, W) in [0, 1]
    # colours from a second stream so they do not shift the shapes of another channel count
    rng = np.random.Generator(np.random.PCG64([_check_seed(seed), 1]))
    background = rng.uniform(0.0, 1.0, size=(n, channels))
    foreground = rng.uniform(0.0, 1.0, size=(n, channels))
    low = np.abs(foreground - background).max(axis=1) < MIN_CONTRAST
    while low.any():  # redraw the foreground until it stands out (L-inf distance >= MIN_CONTRAST)
        foreground[low] = rng.uniform(0.0, 1.0, size=(int(low.sum()), channels))
        low = np.abs(foreground - background).max(axis=1) < MIN_CONTRAST
    bg = torch.from_numpy(background)[:, :, None, None]  # (n, C, 1, 1)
    fg = torch.from_numpy(foreground)[:, :, None, None]
    image = bg + (fg - bg) * cover[:, None]  # (n, C, H, W) in [0, 1]: coverage blends fg over bg
    return (2 * image - 1).float()
