"""Tests for ganref.nets: shapes, no batch norm in discriminators, errors, and seeded sampling from G."""

import copy

import numpy as np
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


# ----------------------------------------------------------------------------- sample(G, n, seed)


def _conv_g():
    torch.manual_seed(0)
    G = nets.ConvGenerator(z_dim=6, width=4)
    G.train()
    with torch.no_grad():  # batch norm with non-trivial running statistics, so eval mode is visible
        G(torch.randn(64, 6) * 3 + 1)
    return G


def test_sample_is_g_of_seeded_noise_in_eval_mode():
    G = _conv_g()
    out = nets.sample(G, 20, seed=7)
    assert G.training  # the mode is restored
    G.eval()
    with torch.no_grad():
        want = G(torch.randn(20, 6, generator=torch.Generator().manual_seed(7)))
    G.train()
    assert torch.equal(out, want)  # the same ops on the same z: bit for bit
    assert out.shape == (20, 1, 8, 8) and out.device.type == "cpu" and not out.requires_grad
    with torch.no_grad():  # in training mode batch norm would use the batch's statistics: other numbers
        train_mode = copy.deepcopy(G)(torch.randn(20, 6, generator=torch.Generator().manual_seed(7)))
    assert (train_mode - want).abs().max() > 1e-3
    # same seed, same samples; another seed, others; an eval-mode G stays in eval mode
    assert torch.equal(nets.sample(G, 20, seed=7), out)
    assert not torch.equal(nets.sample(G, 20, seed=8), out)
    G.eval()
    nets.sample(G, 3, seed=0)
    assert not G.training


def test_sample_does_not_touch_the_global_stream_or_the_weights():
    G = nets.MLPGenerator(z_dim=3, hidden=8, depth=1)
    state = torch.get_rng_state()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    nets.sample(G, 10, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())
    assert nets.sample(G, 10, seed=np.int64(1)).shape == (10, 2)  # NumPy integers are integers


class _Conditional(torch.nn.Module):
    """G(z, y) = z + 10 * y (so the labels and their order show in the output)."""

    def __init__(self):
        super().__init__()
        self.z_dim = 2
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.seen = None

    def forward(self, z, labels):
        self.seen = labels
        return self.scale * z + 10 * labels[:, None].float()


def test_sample_with_labels_calls_g_with_them():
    G = _Conditional()
    labels = torch.tensor([0, 3, 1, 2])
    out = nets.sample(G, 4, seed=2, labels=labels)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out, z + 10 * labels[:, None].float())
    assert torch.equal(G.seen, labels)


class _NoZDim(torch.nn.Module):
    def forward(self, z):
        return z


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be an integer >= 1, got 0"),
    (dict(n=2.0), "n must be an integer >= 1"),
    (dict(n=True), "n must be an integer >= 1, got True"),
    (dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (dict(seed=1.5), "seed must be an integer >= 0"),
    (dict(seed=None), "seed must be an integer >= 0"),
    (dict(labels=torch.zeros(3, dtype=torch.long)), r"labels must be a tensor of shape \(4,\), got \(3,\)"),
    (dict(labels=[0, 1, 2, 3]), r"labels must be a tensor of shape \(4,\), got list"),
    (dict(G=_NoZDim()), "G must have an integer z_dim attribute"),
])
def test_sample_bad_inputs(kwargs, match):
    args = dict(G=nets.MLPGenerator(hidden=8, depth=1), n=4, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        nets.sample(**args)
