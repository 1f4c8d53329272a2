"""Tests for ganref/resnets.py: Fix-up makes every block the identity, the scale L^(-1/4), grouped
convolutions, shapes, parameter counts, and per-sample independence (no normalization)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganref.resnets import (ResidualBlock, ResNetDiscriminator, ResNetGenerator, count_blocks, fixup_init,
                            residual_scale)


def test_a_fixup_block_is_the_identity_at_initialization():
    torch.manual_seed(0)
    block = fixup_init(torch.nn.Sequential(ResidualBlock(32), ResidualBlock(32)))
    x = torch.randn(4, 32, 5, 5)
    assert torch.equal(block(x), x)


def test_the_generator_starts_as_its_stem_transitions_and_head():
    torch.manual_seed(0)
    G = ResNetGenerator(z_dim=8, channels=3, widths=(32, 16), blocks=2)
    z = torch.randn(6, 8)
    h = F.leaky_relu(G.basis(z), 0.2).view(-1, 32, 4, 4)
    h = F.interpolate(G.transitions[0](h), scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(G(z), G.to_image(h), rtol=0, atol=0)


def test_fixup_scale_and_he_initialization():
    assert residual_scale(16) == pytest.approx(0.5, rel=1e-15)  # 16^(-1/4)
    assert residual_scale(9, layers=2) == pytest.approx(1 / 3, rel=1e-15)  # L^(-1/(2m-2)) with m = 2
    torch.manual_seed(0)
    blocks = torch.nn.Sequential(*[ResidualBlock(64, expansion=2.0, group_size=None) for _ in range(16)])
    fixup_init(blocks)
    assert count_blocks(blocks) == 16
    w = torch.cat([b.conv1.weight.flatten() for b in blocks])  # 16 * 128 * 64 = 131,072 weights, fan_in 64
    he_std = math.sqrt(2 / (1 + 0.2 ** 2)) / math.sqrt(64)
    assert w.std().item() == pytest.approx(0.5 * he_std, rel=0.01)  # sd error ~ 1 / sqrt(2 * 131072) = 0.2 %
    assert all(b.conv3.weight.abs().max() == 0 and b.conv1.bias.abs().max() == 0 for b in blocks)


def test_grouped_convolution_and_parameter_count():
    block = ResidualBlock(32, expansion=2.0, group_size=16)  # hidden 64 in 4 groups of 16
    assert block.conv2.groups == 4 and block.conv2.weight.shape == (64, 16, 3, 3)
    n = (32 * 64 + 64) + (64 * 16 * 9 + 64) + (64 * 32 + 32)  # conv1 + grouped conv2 + conv3
    assert sum(p.numel() for p in block.parameters()) == n
    plain = ResidualBlock(32, expansion=1.0, group_size=None)
    assert plain.conv2.groups == 1 and plain.conv2.weight.shape == (32, 32, 3, 3)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="multiple of group_size=16"):
        ResidualBlock(12, expansion=2.0, group_size=16)
    with pytest.raises(ValueError, match="widths"):
        ResNetGenerator(widths=())
    with pytest.raises(ValueError, match="expansion"):
        ResidualBlock(16, expansion=0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, 8, 8\)"):
        ResNetDiscriminator(3, (16, 32))(torch.zeros(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        ResNetGenerator(8, 3, (32, 16))(torch.zeros(2, 7))


@pytest.mark.parametrize("widths, res", [((32,), 4), ((32, 16), 8), ((64, 32, 16), 16)])
def test_shapes(widths, res):
    G = ResNetGenerator(z_dim=8, channels=3, widths=widths)
    D = ResNetDiscriminator(channels=3, widths=widths[::-1])
    x = G(torch.randn(3, 8))
    assert G.resolution == D.resolution == res and x.shape == (3, 3, res, res) and D(x).shape == (3,)


def test_each_logit_depends_only_on_its_own_sample():
    torch.manual_seed(1)
    D = ResNetDiscriminator(channels=3, widths=(16, 32), blocks=2)
    for p in D.parameters():  # leave the Fix-up zeros: make every branch active
        torch.nn.init.normal_(p, std=0.2)
    x = torch.randn(4, 3, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(D(x)[1], x)
    assert grad[1].abs().sum() > 0 and grad[[0, 2, 3]].abs().max() == 0  # no batch coupling: R1/R2 are per sample
