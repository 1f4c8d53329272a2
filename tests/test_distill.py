"""Tests for ganref/methods/distill.py: the DM gradient against closed forms, the teacher's ODE pairs,
the pair cache, and bad input."""

import functools

import pytest
import torch

from ganref import checkpoint, data, nets, train, unet
from ganref.data import GaussianMixture
from ganref.methods import ddpm
from ganref.methods import distill as dl

T = 100


@pytest.fixture(scope="module")
def schedule():
    return ddpm.linear_schedule(T, 1e-3, 0.2)  # a short schedule with alpha_bar[T-1] ~ 0 like T = 1000's


def _mu(denoiser, x_k, k):
    return denoiser.x0(x_k, k)  # E[x0 | x_k], float64


def test_dm_gradient_zero_when_fake_equals_real(schedule):
    grid = data.grid25()
    exact = ddpm.MixtureDenoiser(grid, schedule)
    g = torch.Generator().manual_seed(0)
    x = grid.sample(256, g).double()
    k = torch.randint(2, T - 2, (256,), generator=g)
    x_k = ddpm.q_sample(schedule, x, k, torch.randn(256, 2, generator=g, dtype=torch.float64))
    mu = _mu(exact, x_k, k)
    grad = dl.dm_gradient(mu, _mu(exact, x_k, k), x)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_dm_gradient_points_to_the_missing_modes(schedule):
    """Student collapsed on the corner mode m0 = (-4, -4): -grad points to the mean of the other 24 modes."""
    grid = data.grid25()
    m0 = torch.tensor([[-4.0, -4.0]])
    collapsed = GaussianMixture(m0, grid.std)
    real, fake = ddpm.MixtureDenoiser(grid, schedule), ddpm.MixtureDenoiser(collapsed, schedule)
    g = torch.Generator().manual_seed(1)
    x = collapsed.sample(2000, g).double()
    k = torch.randint(int(0.02 * T), int(0.98 * T), (2000,), generator=g)
    x_k = ddpm.q_sample(schedule, x, k, torch.randn(2000, 2, generator=g, dtype=torch.float64))
    step = -dl.dm_gradient(_mu(fake, x_k, k), _mu(real, x_k, k), x).mean(0)  # descent direction
    others = (grid.means.double().sum(0) - m0[0].double()) / 24  # mean of the 24 other modes
    target = others - m0[0].double()
    cos = torch.dot(step, target) / (step.norm() * target.norm())
    assert cos > 0.999, f"cosine {cos:.4f}"
    # per sample (one noise draw each) 96% of the steps leave m0 towards the others (seed 1: 0.962)
    per = -dl.dm_gradient(_mu(fake, x_k, k), _mu(real, x_k, k), x)
    assert (per @ target > 0).float().mean() > 0.95


def test_dm_loss_gradient_is_grad_over_numel():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(5, 1, 8, 8, generator=g, dtype=torch.float64)
    dl.dm_loss(x, grad).backward()
    torch.testing.assert_close(x.grad, grad / x.numel(), rtol=1e-12, atol=1e-15)


def test_dm_gradient_normalization_closed_form():
    mu_f = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    mu_r = torch.tensor([[0.0, 0.0], [1.0, -1.0]], dtype=torch.float64)
    x = torch.tensor([[2.0, 4.0], [3.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([[1 / 3, 2 / 3], [-1 / 1.5, 1 / 1.5]], dtype=torch.float64)  # mean|x - mu_r| = 3, 1.5
    torch.testing.assert_close(dl.dm_gradient(mu_f, mu_r, x), expected, rtol=1e-14, atol=0)


def test_ode_pairs_deterministic_and_equal_to_sample_ddim(schedule):
    exact = ddpm.MixtureDenoiser(data.grid25(), schedule)
    z1, x1 = dl.ode_pairs(exact, schedule, (2,), 40, steps=5, seed=7, chunk=16)
    z2, x2 = dl.ode_pairs(exact, schedule, (2,), 40, steps=5, seed=7, chunk=16)
    assert z1.shape == x1.shape == (40, 2)
    assert torch.equal(z1, z2) and torch.equal(x1, x2)
    for i, (start, b) in enumerate(((0, 16), (16, 16), (32, 8))):
        ref = ddpm.sample_ddim(exact, schedule, (b, 2), 5, 0.0, torch.Generator().manual_seed(7 + i))
        assert torch.equal(x1[start:start + b], ref.x)
        assert torch.equal(z1[start:start + b], torch.randn(b, 2, generator=torch.Generator().manual_seed(7 + i)))
    # the same z through the sampler's own loop: DDIM from x_T = z
    z3, _ = dl.ode_pairs(exact, schedule, (2,), 40, steps=5, seed=8, chunk=16)
    assert not torch.equal(z1, z3)


def test_pair_cache_round_trip_and_refusal(tmp_path):
    """The chapter's pair cache: keyed by the teacher's weights and the profile; another key is refused."""
    path = tmp_path / "runs" / "smoke" / "pairs.npz"
    net = unet.MLPDenoiser(2, 16, 1)

    def key(model, profile):
        return dict(data="grid25", steps=5, profile=profile, weights_sha256=checkpoint.weights_sha256(model))

    calls = []

    def make():
        calls.append(1)
        return {"z": torch.arange(6.0).view(3, 2), "x": -torch.arange(6.0).view(3, 2)}

    first = checkpoint.cached_arrays(path, key(net, "smoke"), make)
    again = checkpoint.cached_arrays(path, key(net, "smoke"), make)
    assert len(calls) == 1 and set(again) == {"z", "x"}
    assert torch.equal(first["z"], again["z"]) and torch.equal(first["x"], again["x"])
    before = path.read_bytes()
    for other in (key(net, "cpu"), key(unet.MLPDenoiser(2, 16, 2), "smoke")):
        with pytest.raises(ValueError, match="another teacher, profile or setting"):
            checkpoint.cached_arrays(path, other, make)
    assert path.read_bytes() == before and len(calls) == 1
    assert not list(path.parent.glob("*.tmp"))


def test_cached_ode_pairs_equal_the_sampler_and_refuse_a_changed_file(tmp_path, schedule):
    torch.manual_seed(0)
    teacher, other = unet.MLPDenoiser(2, 16, 1).eval(), unet.MLPDenoiser(2, 16, 1).eval()
    args = dict(steps=4, seed=3, chunk=8, profile="smoke")
    with torch.no_grad():
        z, x = dl.cached_ode_pairs(tmp_path, "pairs", teacher, schedule, (2,), 20, **args)
        z0, x0 = dl.ode_pairs(teacher, schedule, (2,), 20, steps=4, seed=3, chunk=8)
    assert torch.equal(z, z0) and torch.equal(x, x0)
    (path,) = tmp_path.glob("pairs_*.npz")
    before = path.read_bytes()
    z1, x1 = dl.cached_ode_pairs(tmp_path, "pairs", teacher, schedule, (2,), 20, **args)
    assert torch.equal(z1, z0) and torch.equal(x1, x0) and path.read_bytes() == before  # read back
    dl.cached_ode_pairs(tmp_path, "pairs", other, schedule, (2,), 20, **args)  # another teacher: a file of its own
    dl.cached_ode_pairs(tmp_path, "pairs", teacher, schedule, (2,), 20, **dict(args, profile="cpu"))
    assert len(list(tmp_path.glob("pairs_*.npz"))) == 3 and path.read_bytes() == before
    # a file renamed to the name of another key (or made for another teacher) is refused, not overwritten
    for target in tmp_path.glob("pairs_*.npz"):
        target.write_bytes(before)
    for model, profile in ((other, "smoke"), (teacher, "cpu")):
        with pytest.raises(ValueError, match="another teacher"):
            dl.cached_ode_pairs(tmp_path, "pairs", model, schedule, (2,), 20, **dict(args, profile=profile))
    assert all(p.read_bytes() == before for p in tmp_path.glob("pairs_*.npz"))


def test_lr_ramp_reaches_every_optimizer(schedule):
    from ganref.schedules import Ramp

    teacher, mods = _toy(schedule)
    cfg = dl.DMD2Config(lr=Ramp(1e-3, 1e-5, 10), d_steps=1, regression="mse")
    state = train.State(mods, dl.make_optimizers(mods, cfg), torch.Generator().manual_seed(0))
    batch = (torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2))
    state.step = 5
    dl.dmd2_step(state, batch, cfg, schedule, teacher)
    for opt in state.optimizers.values():
        assert opt.param_groups[0]["lr"] == pytest.approx(Ramp(1e-3, 1e-5, 10)(5), rel=1e-12)
    with pytest.raises(ValueError, match="lr"):
        dl.D2GConfig(lr=Ramp(0.0, 1e-3, 10))


def _toy(schedule, gan=True):
    teacher = unet.MLPDenoiser(2, 16, 1).requires_grad_(False)
    G = dl.Student(dl.init_from(teacher), (2,), T - 1)
    fake = dl.init_from(teacher)
    mods = {"G": G, "fake": fake}
    if gan:
        mods["head"] = dl.GANHead(fake, torch.zeros(2, 2))
    return teacher, mods


def test_steps_run_and_update(schedule):
    teacher, mods = _toy(schedule)
    cfg = dl.DMD2Config(d_steps=2, lam_reg=0.25, regression="mse")
    state = train.State(mods, dl.make_optimizers(mods, cfg), torch.Generator().manual_seed(0))
    batch = (torch.randn(8, 2), torch.randn(8, 2), torch.randn(8, 2))
    before = [p.clone() for p in mods["G"].parameters()]
    out = dl.dmd2_step(state, batch, cfg, schedule, teacher)
    assert {"fake_loss", "dm_loss", "d_loss", "g_gan", "regression", "g_loss"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, mods["G"].parameters()))
    G = dl.Student(unet.MLPDenoiser(2, 16, 1), (2,), T - 1)
    mods = {"G": G, "D": dl.ConditionalD(nets.MLPDiscriminator(4, 16, 1))}
    cfg = dl.D2GConfig(regression="mse")
    state = train.State(mods, dl.make_optimizers(mods, cfg), torch.Generator().manual_seed(0))
    out = dl.d2g_step(state, batch, cfg)
    assert set(out) == {"d_loss", "g_loss", "regression"}


def test_gan_head_on_unet_and_student_shapes():
    net = unet.UNet8(1, 8)
    head = dl.GANHead(net, torch.zeros(2, 1, 8, 8))
    assert head(net, torch.randn(3, 1, 8, 8), torch.tensor([0, 5, 9])).shape == (3,)
    G = dl.Student(net, (1, 8, 8), 99)
    assert G.z_dim == 64 and nets.sample(G, 4, 0).shape == (4, 1, 8, 8)


def test_regression_loss_closed_form():
    a, b = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    assert dl.regression_loss(a, b).item() == 5.0
    assert dl.regression_loss(a, b, features=lambda v: 2 * v).item() == 20.0


def test_bad_input(schedule):
    with pytest.raises(ValueError, match="d_steps"):
        dl.DMD2Config(d_steps=0)
    with pytest.raises(ValueError, match="d_steps"):
        dl.D2GConfig(d_steps=0)
    for t in (dict(t_min=0.0), dict(t_max=1.5), dict(t_min=-0.1), dict(t_min=0.9, t_max=0.5)):
        with pytest.raises(ValueError, match="t_m"):
            dl.DMD2Config(**t)
    with pytest.raises(ValueError, match="regression"):
        dl.D2GConfig(regression="lpips")
    teacher, mods = _toy(schedule, gan=False)
    cfg = dl.DMD2Config(gan_g_weight=0, gan_d_weight=0)
    state = train.State(mods, dl.make_optimizers(mods, cfg), torch.Generator().manual_seed(0))
    bad = (torch.randn(8, 3), torch.randn(8, 3), torch.randn(8, 2))  # teacher pairs of another shape
    with pytest.raises(ValueError, match="student's shape"):
        dl.dmd2_step(state, bad, cfg, schedule, teacher)
    with pytest.raises(TypeError, match="DMD2Config"):
        dl.dmd2_step(state, bad, dl.D2GConfig(), schedule, teacher)
    with pytest.raises(TypeError, match="D2GConfig"):
        functools.partial(dl.d2g_step, cfg=cfg)(state, bad)
    with pytest.raises(ValueError, match="no features= was given"):
        dl.dmd2_step(state, (torch.randn(8, 2),) * 3, dl.DMD2Config(gan_g_weight=0, gan_d_weight=0, lam_reg=0.25),
                     schedule, teacher)
    with pytest.raises(ValueError, match="same"):
        dl.dm_gradient(torch.zeros(2, 2), torch.zeros(2, 3), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="row shape"):
        dl.pair_sampler(torch.zeros(4, 2), torch.zeros(4, 3), torch.zeros(4, 2), 2)
    with pytest.raises(ValueError, match="GAN head"):
        dl.GANHead(nets.MLPDiscriminator(2), torch.zeros(2, 2))
