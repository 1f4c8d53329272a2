"""Tests for ganref/methods/compression.py: students and their widths, feature taps, the three distances
(zero when the student is the teacher, positive otherwise, gradients that reach the student and never the
teacher), the steps (against a hand-made update; the adversarial term reaches the student, unlike DCD's
public code; the frozen teacher stays frozen) and clear errors."""

from __future__ import annotations

import copy
import dataclasses
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganref import data, nets, train
from ganref.losses import d_loss_minimax, g_loss_nonsaturating
from ganref.methods import compression as C
from ganref.methods.vanilla import VanillaConfig
from ganref.schedules import Ramp

STEPS = {"scratch": C.scratch_step, "output": C.output_step, "feature": C.feature_step, "dcd": C.dcd_step}


def teacher(width: int = 8, z_dim: int = 6, seed: int = 0) -> nets.ConvGenerator:
    torch.manual_seed(seed)
    T = nets.ConvGenerator(z_dim=z_dim, channels=1, width=width)
    with torch.no_grad():  # running statistics that are not the defaults, so eval != train mode
        for _ in range(3):
            T(torch.randn(16, z_dim))
    return T.eval()


def twin(T: nn.Module) -> nn.Module:
    """A full-width student that reproduces the teacher exactly."""
    S = C.make_student(T, 1)
    S.load_state_dict(T.state_dict())
    return S.eval()


def identity_projections(S: nn.Module, T: nn.Module) -> nn.ModuleList:
    P = C.make_projections(S, T)
    with torch.no_grad():
        for f in P:
            f.weight.copy_(torch.eye(f.out_channels)[:, :, None, None])
            f.bias.zero_()
    return P


# ----------------------------------------------------------------------------- config, students, taps


def test_config_defaults_and_errors():
    cfg = C.CompressionConfig()
    assert (cfg.lr, cfg.betas, cfg.lambda_gan, cfg.lambda_recon, cfg.lambda_distill, cfg.lambda_cd, cfg.d_steps) \
        == (2e-4, (0.5, 0.999), 1.0, 100.0, 1.0, 1.0, 1)
    assert C.CompressionConfig(lr=Ramp(2e-3, 0.0, 100)).lr(50) == pytest.approx(1e-3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    for kwargs, match in [(dict(lambda_recon=-1.0), "lambda_recon must be a finite number >= 0"),
                          (dict(lambda_cd=float("nan")), "lambda_cd"), (dict(lr=-1e-3), "lr"),
                          (dict(g_layers=()), "g_layers must be a non-empty tuple"),
                          (dict(d_layers=["net.1"]), "d_layers must be a non-empty tuple"),
                          (dict(d_steps=0), "d_steps must be an integer >= 1"), (dict(betas=(0.5, 1.0)), "betas")]:
        with pytest.raises(ValueError, match=match):
            C.CompressionConfig(**kwargs)


def test_students_at_each_width_and_their_errors():
    T = teacher(width=32, z_dim=32)
    for factor, width in zip(C.WIDTH_FACTORS, (16, 8, 4)):
        S = C.make_student(T, factor)
        assert (type(S), S.width, S.z_dim) == (nets.ConvGenerator, width, 32)
        assert S(torch.randn(2, 32)).shape == (2, 1, 8, 8)
    for factor, match in [(3, r"positive divisor of the teacher's width 32, got 3; divisors: \[1, 2, 4, 8, 16, 32\]"),
                          (64, "positive divisor"), (0, "factor must be an integer >= 1, got 0"),
                          (2.0, "factor must be an integer"), (-2, "factor must be an integer >= 1")]:
        with pytest.raises(ValueError, match=match):
            C.make_student(T, factor)
    with pytest.raises(ValueError, match="integer width and z_dim"):
        C.make_student(nn.Linear(2, 2), 2)


def test_teacher_and_student_with_other_noise_sizes_are_refused():
    T, S = teacher(z_dim=6), nets.ConvGenerator(z_dim=5, channels=1, width=4)
    with pytest.raises(ValueError, match="teacher has z_dim 6 but the student has z_dim 5"):
        C.check_pair(T, S)
    for variant in C.VARIANTS:
        with pytest.raises(ValueError, match="z_dim"):
            C.student_modules(variant, S, T, nets.ConvDiscriminator(1, 4))
    modules = {"G": S, "T": T, "D": nets.ConvDiscriminator(1, 4)}
    state = train.State(modules, C.make_optimizers(modules, C.CompressionConfig()))
    with pytest.raises(ValueError, match="z_dim"):
        C.output_step(state, torch.zeros(4, 1, 8, 8), C.CompressionConfig())


def test_feature_maps_and_activations_shapes_and_hooks_removed():
    T, D = teacher(width=8), nets.ConvDiscriminator(1, 4)
    x, maps = C.feature_maps(T, torch.randn(3, 6))
    assert x.shape == (3, 1, 8, 8) and [m.shape for m in maps] == [(3, 16, 2, 2), (3, 8, 4, 4)]
    z = torch.randn(3, 6)
    assert_close(C.feature_maps(T, z)[0], T(z), rtol=0, atol=0)
    acts = C.activations(D, x)
    assert [a.shape for a in acts] == [(3, 4, 8, 8), (3, 8, 4, 4), (3, 16, 2, 2)]
    with pytest.raises(ValueError, match=r"layers \['net.9'\] are not modules of ConvGenerator; its layers are"):
        C.feature_maps(T, z, ("net.0", "net.9"))
    with pytest.raises(ValueError, match="conv5"):
        C.activations(D, x, ("conv5",))
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in [*T.modules(), *D.modules()])
    with pytest.raises(ValueError, match="not modules"):  # the error removed the hooks it had placed
        C.feature_maps(T, z, ("net.0", "fc.9"))
    assert all(not m._forward_pre_hooks for m in T.modules())


# ----------------------------------------------------------------------------- the three distances


@torch.no_grad()
def test_each_distance_is_zero_for_the_teacher_itself_and_positive_otherwise():
    T, D = teacher(), nets.ConvDiscriminator(1, 4)
    z = torch.randn(8, 6)
    x_t, maps_t = C.feature_maps(T, z)
    S = twin(T)
    x_s, maps_s = C.feature_maps(S, z)
    P = identity_projections(S, T)
    c_t = C.make_connectors(T)
    c_s = copy.deepcopy(c_t)
    assert float(C.output_distance(x_s, x_t)) == 0.0
    assert float(C.feature_distance(maps_s, maps_t, P)) == 0.0
    assert float(C.dcd_distance(maps_s, maps_t, c_s, c_t, D)) == 0.0
    assert float(C.d_feature_distance(D, x_s, x_t).abs().max()) == 0.0
    other = teacher(seed=1)  # another generator of the same shape
    x_o, maps_o = C.feature_maps(other, z)
    assert float(C.output_distance(x_o, x_t)) > 1e-3
    assert float(C.feature_distance(maps_o, maps_t, P)) > 1e-3
    assert float(C.dcd_distance(maps_o, maps_t, c_s, c_t, D)) > 1e-4
    assert (C.d_feature_distance(D, x_o, x_t) > 0).all()
    assert float(C.dcd_distance(maps_s, maps_t, C.make_connectors(S), c_t, D)) > 1e-4  # another connector


def test_distances_equal_their_closed_forms():
    T, D = teacher(), nets.ConvDiscriminator(1, 4)
    z = torch.randn(5, 6)
    x_t, maps_t = C.feature_maps(T, z)
    S = twin(T)
    P = identity_projections(S, T)
    shifted = [m + 0.25 for m in maps_t]  # every entry off by 0.25: MSE = 0.0625 per layer
    assert_close(C.feature_distance(shifted, maps_t, P), torch.tensor(2 * 0.0625), rtol=1e-6, atol=0)
    per_sample = C.output_distance(x_t + torch.arange(5.0)[:, None, None, None] * 0.1, x_t, reduction="none")
    assert_close(per_sample, torch.arange(5.0) * 0.1, rtol=1e-6, atol=1e-7)
    # DCD: the batched D call equals the plain sum over G's layers l and D's layers k
    other = teacher(seed=2)
    _, maps_o = C.feature_maps(other, z)
    c_s, c_t = C.make_connectors(other), C.make_connectors(T)
    expected = 0.0
    for m_s, m_t, f_s, f_t in zip(maps_o, maps_t, c_s, c_t):
        img_s = F.interpolate(f_s(m_s), size=(8, 8), mode="nearest")
        img_t = F.interpolate(f_t(m_t), size=(8, 8), mode="nearest")
        for k in (2, 4, 6):  # outputs of net.1, net.3, net.5
            expected = expected + (D.net[:k](img_s) - D.net[:k](img_t)).abs().mean()
    assert_close(C.dcd_distance(maps_o, maps_t, c_s, c_t, D), expected, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="differ in shape"):
        C.output_distance(x_t, x_t[:, :, :4])
    with pytest.raises(ValueError, match="one of each per matched layer"):
        C.feature_distance(maps_t, maps_t[:1], P)


def test_gradients_reach_the_student_and_never_the_teacher():
    T, D = teacher(), nets.ConvDiscriminator(1, 4)
    S = C.make_student(T, 2)
    P, c_s, c_t = C.make_projections(S, T), C.make_connectors(S), C.make_connectors(T).requires_grad_(False)
    z = torch.randn(8, 6)
    with torch.no_grad():
        x_t, maps_t = C.feature_maps(T, z)
    for name, loss_fn in [("output", lambda x, m: C.output_distance(x, x_t)),
                          ("feature", lambda x, m: C.feature_distance(m, maps_t, P)),
                          ("dcd", lambda x, m: C.dcd_distance(m, maps_t, c_s, c_t, D))]:
        S.zero_grad(set_to_none=True)
        x_s, maps_s = C.feature_maps(S, z)
        loss_fn(x_s, maps_s).backward()
        for p_name, p in S.named_parameters():
            if name == "output" or not p_name.startswith("net.3"):  # maps are taken before net.3
                assert p.grad is not None and float(p.grad.abs().sum()) > 0, (name, p_name)
    assert all(p.grad is None for p in T.parameters())
    assert all(p.grad is None for p in c_t.parameters())


# ----------------------------------------------------------------------------- the steps


def make_state(variant: str, width: int = 8, factor: int = 2, cfg: C.CompressionConfig | None = None):
    T = teacher(width=width)
    torch.manual_seed(3)
    S, D = C.make_student(T, factor), nets.ConvDiscriminator(1, 4)
    modules = C.student_modules(variant, S, T, D)
    return train.State(modules, C.make_optimizers(modules, cfg or C.CompressionConfig()),
                       torch.Generator().manual_seed(4))


def test_dcd_step_equals_a_hand_made_update():
    cfg = C.CompressionConfig(lr=1e-3, lambda_recon=3.0, lambda_cd=2.0, lambda_gan=0.5)
    state = make_state("dcd", cfg=cfg)
    # SGD: Adam's first step is lr * sign(grad), which turns float noise in the (zero) gradient of the
    # linear bias before batch norm into a full step; SGD keeps equal gradients equal updates
    state.optimizers = {"G": torch.optim.SGD([*state.modules["G"].parameters(), *state.modules["P"].parameters()]),
                        "D": torch.optim.SGD(state.modules["D"].parameters())}
    ref = copy.deepcopy(state)
    real = torch.randn(6, 1, 8, 8).clamp(-1, 1)
    out = C.dcd_step(state, real, cfg)
    S, T, D, P, PT = (ref.modules[k] for k in ("G", "T", "D", "P", "PT"))
    T.eval()
    fake = S(ref.randn(6, 6)).detach()  # D update: -[E log D(x) + E log(1 - D(S(z)))]
    d_loss = d_loss_minimax(D(real), D(fake))
    ref.optimizers["D"].zero_grad()
    d_loss.backward()
    ref.optimizers["D"].step()
    z = ref.randn(6, 6)  # student update on the same z for teacher and student
    x_t, maps_t = C.feature_maps(T, z)
    x_s, maps_s = C.feature_maps(S, z)
    loss = 0.5 * g_loss_nonsaturating(D(x_s)) + 3.0 * (x_s - x_t).abs().mean() \
        + 2.0 * C.dcd_distance(maps_s, maps_t, P, PT, D)
    ref.optimizers["G"].zero_grad()
    loss.backward()
    ref.optimizers["G"].step()
    assert_close(out["d_loss"], d_loss.detach(), rtol=1e-6, atol=1e-7)
    for k in ("G", "D", "P"):
        for a, b in zip(state.modules[k].parameters(), ref.modules[k].parameters()):
            assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("variant", C.VARIANTS)
def test_the_adversarial_loss_alone_moves_the_student(variant):
    """DCD's public code computes the student's GAN loss on the teacher's image (or never adds it): no
    gradient reaches the student. Here, with every distillation weight at 0, the GAN loss still trains it."""
    cfg = C.CompressionConfig(lr=1e-3, lambda_recon=0.0, lambda_distill=0.0, lambda_cd=0.0)
    state = make_state(variant, cfg=cfg)
    before = copy.deepcopy(state.modules["G"].state_dict())
    STEPS[variant](state, torch.randn(8, 1, 8, 8).clamp(-1, 1), cfg)
    for name, p in state.modules["G"].named_parameters():
        assert not torch.equal(p.detach(), before[name]), f"{variant}: {name} did not move"


@pytest.mark.parametrize("variant", C.VARIANTS)
def test_fit_runs_every_variant_and_keeps_the_teacher_frozen(variant):
    cfg = C.CompressionConfig(lr=Ramp(1e-3, 0.0, 4, "linear"), d_steps=2)
    state = make_state(variant, cfg=cfg)
    frozen = {k: copy.deepcopy(state.modules[k].state_dict()) for k in ("T", "PT") if k in state.modules}
    d_before = copy.deepcopy(state.modules["D"].state_dict())
    images, _ = data.digits("train")
    train.fit(functools.partial(STEPS[variant], cfg=cfg), state, data.batch_sampler(images, 4, d_steps=2), 4,
              progress=False)
    assert state.optimizers["G"].param_groups[0]["lr"] == pytest.approx(2.5e-4)  # the ramp at step 3
    expected = {"scratch": set(), "output": {"recon"}, "feature": {"recon", "distill"}, "dcd": {"recon", "cd"}}
    assert set(state.history) == {"d_loss", "g_gan"} | expected[variant]
    assert all(not torch.equal(t, d_before[n]) for n, t in state.modules["D"].state_dict().items())  # D trains
    assert not any(p.requires_grad for p in state.modules["D"].parameters())  # frozen between its updates
    for k, saved in frozen.items():  # weights AND batch-norm running statistics
        for name, t in state.modules[k].state_dict().items():
            assert torch.equal(t, saved[name]), f"{k}.{name} changed"
    if variant in ("feature", "dcd"):
        assert any(p is q for p in state.modules["P"].parameters() for g in state.optimizers["G"].param_groups
                   for q in g["params"])


def test_steps_refuse_another_config_and_unknown_layers():
    state = make_state("feature")
    real = torch.zeros(4, 1, 8, 8)
    with pytest.raises(TypeError, match="compression.feature_step needs a CompressionConfig, got VanillaConfig"):
        C.feature_step(state, real, VanillaConfig())
    with pytest.raises(ValueError, match=r"layers \['net.7'\] are not modules"):
        C.feature_step(state, real, C.CompressionConfig(g_layers=("net.0", "net.7")))
    with pytest.raises(ValueError, match="variant must be one of"):
        C.student_modules("pixel", *(teacher(),) * 2, nets.ConvDiscriminator(1, 4))
