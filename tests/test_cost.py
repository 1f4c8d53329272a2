"""Tests for ganref/cost.py: FLOP counts equal the closed forms of convolutions, transposed convolutions,
linear layers and the book's conv generator; parameters equal sum(p.numel()); wall time measures what
it says; bad input gets clear errors."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from ganref import cost, nets


@pytest.mark.parametrize("c_in, c_out, k, stride, padding, size", [
    (3, 8, 3, 1, 1, 16),  # same size out
    (16, 32, 4, 2, 1, 8),  # a discriminator's stride-2 layer: 8x8 -> 4x4
    (1, 5, 5, 1, 0, 12),  # no padding: 12 -> 8
])
def test_conv_flops_equal_the_closed_form(c_in, c_out, k, stride, padding, size):
    conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding)
    x = torch.randn(3, c_in, size, size)
    h_out = (size + 2 * padding - k) // stride + 1
    assert conv(x).shape[-1] == h_out
    expected = 2 * c_in * c_out * k * k * h_out * h_out  # per sample; bias adds are not counted
    assert cost.count_flops(lambda: conv(x)) == 3 * expected
    assert cost.flops_per_sample(lambda n: conv(x[:n]), 3) == expected


def test_transposed_conv_and_linear_flops_equal_the_closed_form():
    up = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
    x = torch.randn(5, 64, 2, 2)
    assert up(x).shape[-2:] == (4, 4)
    assert cost.count_flops(lambda: up(x)) == 5 * 2 * 64 * 32 * 4 * 4 * (2 * 2)  # per INPUT pixel
    fc = nn.Linear(32, 512)
    assert cost.count_flops(lambda: fc(torch.randn(7, 32))) == 7 * 2 * 32 * 512


@pytest.mark.parametrize("width", [4, 8, 16, 32])
def test_conv_generator_macs_and_params(width):
    z_dim = 32
    G = nets.ConvGenerator(z_dim=z_dim, channels=1, width=width)
    # fc: z -> 8w; ConvT(2w -> w, 4x4) on 2x2; ConvT(w -> 1, 4x4) on 4x4 (MACs per sample)
    macs = z_dim * 8 * width + 2 * width * width * 16 * 4 + width * 16 * 16
    c = cost.generator_cost(G, n=64, repeats=1)
    assert c.macs == macs and c.flops == 2 * macs
    assert c.params == sum(p.numel() for p in G.parameters()) == cost.parameters(G)
    assert c.params == (z_dim + 1) * 8 * width + 2 * 8 * width + (2 * width * width * 16 + width) + 2 * width \
        + (width * 16 + 1)
    assert c.seconds_per_1000 > 0
    assert G.training  # its mode is restored


def test_parameters_trainable_only_and_buffers():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    net[2].requires_grad_(False)
    assert cost.parameters(net) == 16 + 8 + 10  # running statistics are buffers, not parameters
    assert cost.parameters(net, trainable_only=True) == 16 + 8


def test_a_sampler_with_several_evaluations_counts_each():
    G = nets.ConvGenerator(z_dim=8, channels=1, width=4)
    G.eval()
    z = torch.randn(10, 8)
    one = cost.count_flops(lambda: G(z))
    assert cost.count_flops(lambda: [G(z) for _ in range(4)]) == 4 * one  # 4 NFE cost 4 times 1 NFE


def test_wall_time_measures_the_calls_it_makes():
    sizes: list[int] = []

    def fn(b: int) -> None:
        sizes.append(b)
        time.sleep(2e-5 * b)  # 20 ms per 1,000 samples

    seconds = cost.wall_time(fn, n=1000, batch_size=300, repeats=3, warmup=1)
    assert sizes == [300, 300, 300, 100] * 4  # one warm-up, three timed runs
    assert 0.02 <= seconds < 0.5
    sizes.clear()
    cost.wall_time(fn, n=50, repeats=1, warmup=0)
    assert sizes == [50]


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="fn must be callable"):
        cost.count_flops(3)
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        cost.wall_time(lambda b: None, n=0)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        cost.wall_time(lambda b: None, batch_size=-1)
    with pytest.raises(ValueError, match="repeats must be an integer >= 1"):
        cost.wall_time(lambda b: None, repeats=0)
    with pytest.raises(ValueError, match="integer z_dim"):
        cost.generator_cost(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="module must be a torch.nn.Module"):
        cost.parameters("G")
