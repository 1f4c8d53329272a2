import math

import pytest
import torch

from ganref import unet


def test_timestep_embedding_is_the_transformer_sinusoid():
    k = torch.tensor([0, 1, 7, 999])
    emb = unet.timestep_embedding(k, 8)
    assert emb.shape == (4, 8) and emb.dtype == torch.float32
    half = 4
    for row, kv in enumerate(k.tolist()):
        for i in range(half):
            omega = 10_000.0 ** (-i / (half - 1))  # 1, 10000^(-1/3), 10000^(-2/3), 1e-4
            tol = 2e-6 + 1e-7 * kv * omega  # float32 angles: rounding grows with the angle (46 rad at k = 999)
            assert emb[row, i].item() == pytest.approx(math.sin(kv * omega), abs=tol)
            assert emb[row, half + i].item() == pytest.approx(math.cos(kv * omega), abs=tol)
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))


@pytest.mark.parametrize("call, match", [
    (lambda: unet.timestep_embedding(torch.zeros(3), 7), "dim must be even"),
    (lambda: unet.timestep_embedding(torch.zeros(3), 2), "dim must be an integer >= 4"),
    (lambda: unet.timestep_embedding(torch.zeros(3, 1), 8), "k must be a 1-D tensor"),
    (lambda: unet.MLPDenoiser()(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)), r"x must have shape \(B, 2\)"),
    (lambda: unet.MLPDenoiser()(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long)), r"k must be a tensor of shape \(4,\)"),
    (lambda: unet.UNet8()(torch.zeros(2, 1, 6, 6), torch.zeros(2, dtype=torch.long)), "multiples of 4"),
    (lambda: unet.UNet8(channels=3)(torch.zeros(2, 1, 8, 8), torch.zeros(2, dtype=torch.long)), r"\(B, 3, H, W\)"),
    (lambda: unet.UNet8(width=12), "multiple of groups=8"),
    (lambda: unet.UNet8(dropout=1.0), "dropout must be a finite number"),
    (lambda: unet.MLPDenoiser(depth=0), "depth must be an integer >= 1"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _randomize(net: torch.nn.Module) -> torch.nn.Module:
    """Fresh nets output 0 (zero-initialized output layers); give every weight a random value to test wiring."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net


def test_fresh_denoisers_predict_zero_noise():
    k = torch.tensor([0, 500])
    assert torch.equal(unet.MLPDenoiser()(torch.randn(2, 2), k), torch.zeros(2, 2))
    assert torch.equal(unet.UNet8()(torch.randn(2, 1, 8, 8), k), torch.zeros(2, 1, 8, 8))


def test_mlp_denoiser_shared_time_terms_equal_row_by_row():
    net = _randomize(unet.MLPDenoiser(dim=3, hidden=16, depth=2, t_dim=8))
    x, k = torch.randn(6, 3), torch.tensor([5, 0, 5, 999, 17, 0])
    rows = torch.cat([net(x[i:i + 1], k[i:i + 1]) for i in range(6)])
    torch.testing.assert_close(net(x, k), rows, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(net(x, torch.zeros(6, dtype=torch.long)), net(x, k))  # k matters


@pytest.mark.parametrize("size", [8, 16])
def test_unet_shapes_per_sample_independence_and_time_dependence(size):
    net = _randomize(unet.UNet8(channels=2, width=16, t_dim=16)).eval()
    x, k = torch.randn(5, 2, size, size), torch.tensor([0, 3, 3, 400, 999])
    out = net(x, k)
    assert out.shape == x.shape and torch.isfinite(out).all()
    # GroupNorm normalizes each sample by itself: a sample's output ignores the rest of the batch
    torch.testing.assert_close(out[1:2], net(x[1:2], k[1:2]), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(net(x, torch.full((5,), 10)), out)


def test_unet_gradients_reach_every_parameter():
    net = _randomize(unet.UNet8(width=8, t_dim=8))
    net(torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])).pow(2).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
