"""Tests for ganref.layers: spectral normalization against PyTorch's and the SVD, its state, freezing it."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrizations
from torch.testing import assert_close

from ganref.layers import SN_LAYERS, SpectralNorm, apply_spectral_norm, frozen_power_iteration, spectral_norm
from ganref.nets import ConvDiscriminator
from ganref.probes import sigma_exact


def _sn(module: nn.Module) -> SpectralNorm:
    return module.parametrizations.weight[0]


def _make(kind: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    layer = nn.Linear(7, 5) if kind == "linear" else nn.Conv2d(3, 4, 3, padding=1)
    return layer.double()


def _input(kind: str, n: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    shape = (n, 7) if kind == "linear" else (n, 3, 5, 5)
    return torch.randn(*shape, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["linear", "conv"])
@pytest.mark.parametrize("n_iter", [1, 3])
def test_sn_matches_torch_parametrization_step_for_step(kind, n_iter):
    ours = _make(kind, 0)
    ref = parametrizations.spectral_norm(copy.deepcopy(ours), n_power_iterations=n_iter)
    spectral_norm(ours, n_power_iterations=n_iter)
    with torch.no_grad():  # the same starting vectors
        _sn(ours)._u.copy_(ref.parametrizations.weight[0]._u)
        _sn(ours)._v.copy_(ref.parametrizations.weight[0]._v)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.1)
    opt_ref = torch.optim.SGD(ref.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x = _input(kind, 8, g)
        for model, opt in ((ours, opt_ours), (ref, opt_ref)):
            opt.zero_grad()
            # two forwards in one graph, as in a D step on real and fake
            (model(x).square().mean() - model(0.5 * x).mean()).backward()
            opt.step()
        # float64, the same operations in another order: agreement to ~1e4 ulps
        assert_close(ours.parametrizations.weight.original, ref.parametrizations.weight.original,
                     rtol=1e-12, atol=1e-12)
        assert_close(ours.weight, ref.weight, rtol=1e-12, atol=1e-12)
        assert_close(_sn(ours)._u, ref.parametrizations.weight[0]._u, rtol=1e-12, atol=1e-12)
    # the weights did move, so the comparison covered changing matrices
    assert not torch.allclose(ours.parametrizations.weight.original, _make(kind, 0).weight)


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_sn_converges_to_svd_sigma(kind):
    layer = spectral_norm(_make(kind, 2), n_init_iterations=0, generator=torch.Generator().manual_seed(0))
    w = layer.parametrizations.weight.original.detach().clone()
    sigma = sigma_exact(w)
    x = _input(kind)
    layer(x)
    sigma_hat = (w.flatten()[0] / layer.weight.flatten()[0]).item()  # W_SN = W / sigma_hat
    assert abs(sigma_hat / sigma.item() - 1) > 1e-3  # one step from a random start is not there yet
    for _ in range(200):
        layer(x)
    # convergence of the power iteration, not rounding, sets these tolerances
    sigma_hat = (w.flatten()[0] / layer.weight.flatten()[0]).item()
    assert sigma_hat == pytest.approx(sigma.item(), rel=1e-5)
    assert sigma_exact(layer.weight).item() == pytest.approx(1.0, rel=1e-5)
    assert sigma.item() == pytest.approx(np.linalg.svd(w.flatten(1).numpy(), compute_uv=False)[0], rel=1e-12)


def test_warm_start_runs_the_power_iteration_at_creation():
    # n_init_iterations=k then m training forwards equals 0 then k + m forwards: the same alternating steps
    x = _input("conv")
    warm = spectral_norm(_make("conv", 5), n_init_iterations=15, generator=torch.Generator().manual_seed(3))
    cold = spectral_norm(_make("conv", 5), n_init_iterations=0, generator=torch.Generator().manual_seed(3))
    for _ in range(15):
        cold(x)
    warm(x)
    cold(x)
    assert_close(_sn(warm)._u, _sn(cold)._u, rtol=0, atol=0)
    assert_close(warm.weight, cold.weight, rtol=0, atol=0)


def test_eval_mode_does_not_update_u_and_state_dict_round_trips():
    layer = spectral_norm(_make("conv", 3))
    x = _input("conv")
    u0 = _sn(layer)._u.clone()
    layer(x)
    assert not torch.equal(_sn(layer)._u, u0)  # a training forward advances u
    layer.eval()
    u1, v1, w1 = _sn(layer)._u.clone(), _sn(layer)._v.clone(), layer.weight.detach().clone()
    for _ in range(3):
        layer(x)
    assert torch.equal(_sn(layer)._u, u1) and torch.equal(_sn(layer)._v, v1)
    assert_close(layer.weight, w1, rtol=0, atol=0)

    state = layer.state_dict()
    assert {"parametrizations.weight.0._u", "parametrizations.weight.0._v",
            "parametrizations.weight.original"} <= set(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    fresh = spectral_norm(_make("conv", 4), generator=torch.Generator().manual_seed(9)).eval()
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(_sn(fresh)._u, u1) and torch.equal(_sn(fresh)._v, v1)
    assert_close(fresh(x), layer(x), rtol=0, atol=0)


def test_frozen_power_iteration_stops_sn_steps_and_restores_modes():
    d = apply_spectral_norm(ConvDiscriminator(width=4).double(), generator=torch.Generator().manual_seed(0))
    torch_sn = parametrizations.spectral_norm(nn.Linear(4, 3).double())
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    sns = [m for m in d.modules() if isinstance(m, SpectralNorm)]
    us = [m._u.clone() for m in sns]
    u_torch = torch_sn.parametrizations.weight[0]._u.clone()
    with frozen_power_iteration(d) as same, frozen_power_iteration(torch_sn):
        assert same is d
        d(x)
        torch_sn(torch.randn(2, 4, dtype=torch.float64))
        assert all(not m.training for m in sns)
        assert d.training and d.net[0].training  # only the parametrizations leave training mode
    assert all(torch.equal(u, m._u) for u, m in zip(us, sns))
    assert torch.equal(torch_sn.parametrizations.weight[0]._u, u_torch)
    assert all(m.training for m in d.modules())  # modes restored
    d(x)  # and outside the block the iteration runs again
    assert not torch.equal(us[0], sns[0]._u)
    # an eval-mode SN stays in eval mode after the block; a plain function passes through
    d.eval()
    with frozen_power_iteration(d):
        pass
    assert not any(m.training for m in sns)
    fn = lambda v: v  # noqa: E731
    with frozen_power_iteration(fn) as same:
        assert same is fn


def test_apply_spectral_norm_and_errors():
    d = apply_spectral_norm(ConvDiscriminator(width=4))
    assert sum(isinstance(m, SpectralNorm) for m in d.modules()) == 4
    assert sum(isinstance(m, SN_LAYERS) for m in d.modules()) == 4
    with pytest.raises(ValueError, match="already has spectral normalization"):
        spectral_norm(d.out)
    with pytest.raises(ValueError, match="nn.Linear or nn.Conv2d"):
        spectral_norm(nn.ConvTranspose2d(2, 2, 3))
    with pytest.raises(ValueError, match="n_power_iterations"):
        spectral_norm(nn.Linear(3, 3), n_power_iterations=0)
    with pytest.raises(ValueError, match="n_init_iterations"):
        spectral_norm(nn.Linear(3, 3), n_init_iterations=-1)
    with pytest.raises(ValueError, match="eps"):
        spectral_norm(nn.Linear(3, 3), eps=0.0)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        SpectralNorm(torch.ones(3))
    with pytest.raises(ValueError, match="no nn.Linear"):
        apply_spectral_norm(nn.ReLU())
