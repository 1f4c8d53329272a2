import pytest
import torch

from ganref import nets


def test_shapes():
    assert nets.MLPGenerator(z_dim=3)(torch.zeros(5, 3)).shape == (5, 2)
    assert nets.MLPDiscriminator()(torch.zeros(5, 2)).shape == (5,)
    g = nets.ConvGenerator(z_dim=16, channels=3)
    x = g(torch.randn(4, 16))
    assert x.shape == (4, 3, 8, 8) and x.abs().max() <= 1
    assert nets.ConvDiscriminator(channels=3)(x).shape == (4,)


def test_discriminators_have_no_batch_norm():
    for d in (nets.MLPDiscriminator(), nets.ConvDiscriminator()):
        assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in d.modules())


@pytest.mark.parametrize("call, match", [
    (lambda: nets.MLPGenerator(z_dim=2)(torch.zeros(5, 3)), r"z must have shape \(B, 2\)"),
    (lambda: nets.MLPDiscriminator()(torch.zeros(5)), r"x must have shape \(B, 2\)"),
    (lambda: nets.ConvDiscriminator()(torch.zeros(2, 1, 28, 28)), r"x must have shape \(B, 1, 8, 8\)"),
    (lambda: nets.mlp(2, 1, depth=0), "depth must be an integer >= 1"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("upsample", ["transposed", "nearest", "bilinear"])
def test_32x32_nets(upsample):
    g = nets.ConvGenerator32(z_dim=8, channels=3, width=8, upsample=upsample)
    x = g(torch.randn(2, 8))
    assert x.shape == (2, 3, 32, 32) and x.abs().max() <= 1
    assert nets.ConvDiscriminator32(channels=3, width=8)(x).shape == (2,)
    kinds = {type(m) for m in g.modules()}
    assert (torch.nn.ConvTranspose2d in kinds) == (upsample == "transposed")


def test_32x32_bad_inputs():
    with pytest.raises(ValueError, match="upsample must be one of transposed, nearest, bilinear"):
        nets.ConvGenerator32(upsample="pixelshuffle")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 32, 32\)"):
        nets.ConvDiscriminator32()(torch.zeros(2, 1, 8, 8))
