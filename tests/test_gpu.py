"""The GPU path (issue 19, item 5): one step of every method, and one chapter at ``smoke``, on CUDA.

The tests marked ``gpu`` are skipped, with the reason "CUDA is not available", on a machine without
CUDA (CI and the 2-core machines); on a GPU machine run them with ``pytest -m gpu tests/test_gpu.py``.
Each step runs on small networks with every tensor on the device, as a chapter with ``device="cuda"``
runs it (noise drawn on the CPU from the run's generator, then moved). Fast tests, never skipped, check
that every ``*_step`` function in ``ganref/methods/`` has a case here and run every case (and the
sampler and particle steps) once on the CPU, so that the cases themselves stay working without a GPU.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch

import ganref.methods
from ganref import data, nets, train, unet
from ganref.cond_nets import CondMLPGenerator, mlp_discriminator
from ganref.methods import (compression, conditional, ddgan, ddpm, diffusion_gan, distill, ntk, r3gan, sngan,
                            vanilla, wgan)
from ganref.train import State

REPO = Path(__file__).resolve().parent.parent
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
B = 32  # rows per discriminator update


def _points(n: int, seed: int, device: torch.device) -> torch.Tensor:
    return data.ring8().sample(n, torch.Generator().manual_seed(seed)).to(device)  # (n, 2)


def _images(n: int, seed: int, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(device)  # (n, 1, 8, 8)


def _gan(G: torch.nn.Module, D: torch.nn.Module, make_optimizers: Callable, cfg: object, device: torch.device) -> State:
    G, D = G.to(device), D.to(device)
    return State({"G": G, "D": D}, make_optimizers(G, D, cfg), torch.Generator().manual_seed(0), device)


# Each case builds (step, state, batch) on a device: one call of step(state, batch) is one training step.

def _toy(step_fn: Callable, cfg: object, make_optimizers: Callable) -> Callable:
    def build(device: torch.device):
        torch.manual_seed(0)
        state = _gan(nets.MLPGenerator(), nets.MLPDiscriminator(), make_optimizers, cfg, device)
        return functools.partial(step_fn, cfg=cfg), state, _points(cfg.d_steps * B, 1, device)
    return build


def _sngan(device: torch.device):
    cfg, gen = sngan.SNGANConfig(), torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    D = sngan.make_discriminator(nets.ConvDiscriminator(channels=1, width=8), cfg, generator=gen)
    state = _gan(nets.ConvGenerator(z_dim=8, channels=1, width=8), D, sngan.make_optimizers, cfg, device)
    return functools.partial(sngan.sngan_step, cfg=cfg), state, _images(cfg.d_steps * B, 1, device)


def _r3gan(device: torch.device):
    cfg = r3gan.R3GANConfig()
    torch.manual_seed(0)
    G, D = r3gan.make_nets("mlp", width=32, depth=2)
    state = r3gan.make_state(G, D, cfg, torch.Generator().manual_seed(0), device)
    return functools.partial(r3gan.r3gan_step, cfg=cfg), state, _points(cfg.d_steps * B, 1, device)


def _ddpm(device: torch.device):
    cfg, schedule = ddpm.DDPMConfig(lr=1e-3), ddpm.linear_schedule(1000)
    torch.manual_seed(0)
    net = unet.MLPDenoiser(hidden=32, depth=2, t_dim=16).to(device)
    state = State({"eps": net}, ddpm.make_optimizers(net, cfg), torch.Generator().manual_seed(0), device,
                  ema={"eps": train.EMA(net, cfg.ema_decay)})
    return functools.partial(ddpm.ddpm_step, cfg=cfg, schedule=schedule), state, _points(B, 1, device)


def _conditional(name: str) -> Callable:
    def build(device: torch.device):
        variant, K = conditional.get_variant(name), 3
        cfg = variant.config()
        torch.manual_seed(0)
        G, D = CondMLPGenerator(K, hidden=32), mlp_discriminator(variant.head, K, (2,), hidden=32)
        state = _gan(G, D, conditional.make_optimizers, cfg, device)
        y = torch.randint(K, (cfg.d_steps * B,), generator=torch.Generator().manual_seed(2))  # (kB,)
        return functools.partial(variant.step, cfg=cfg), state, (_points(cfg.d_steps * B, 1, device), y.to(device))
    return build


# Diffusion-GAN: MLP G and t-conditioned MLP D, the adaptive diffusion's buffers left on the CPU as chapter 09 does.
def _diffusion_gan(device: torch.device):
    # ada_interval=1: the rule moves p and T inside the one call; r1_gamma > 0: R1 through the injection runs too
    cfg = diffusion_gan.DiffusionGANConfig(ada_interval=1, r1_gamma=0.1)
    torch.manual_seed(0)
    G = nets.MLPGenerator(hidden=16, depth=2).to(device)
    D = diffusion_gan.TimeMLPDiscriminator(hidden=16, depth=2, t_dim=16).to(device)
    state = State({"G": G, "D": D, "diffusion": diffusion_gan.AdaptiveDiffusion(cfg)},
                  diffusion_gan.make_optimizers(G, D, cfg), torch.Generator().manual_seed(0), device)
    return functools.partial(diffusion_gan.diffusion_gan_step, cfg=cfg), state, _points(cfg.d_steps * B, 1, device)


# DDGAN: pair G and D on the VP schedule at T = 4; R1 runs, as state.step = 0 is a multiple of lazy_reg.
def _ddgan(device: torch.device):
    cfg, schedule = ddgan.DDGANConfig(), ddgan.vp_schedule(4)
    torch.manual_seed(0)
    G, D = ddgan.PairGenerator(hidden=16, depth=2, t_dim=16), ddgan.PairDiscriminator(hidden=16, depth=2, t_dim=16)
    state = _gan(G, D, ddgan.make_optimizers, cfg, device)
    return functools.partial(ddgan.ddgan_step, cfg=cfg, schedule=schedule), state, _points(cfg.d_steps * B, 1, device)


def _distill(device: torch.device, schedule: ddpm.Schedule) -> tuple[torch.nn.Module, distill.Student, tuple]:
    """A frozen MLP teacher on the device, a student copied from it (the net at k = T - 1), and a batch
    (z, x, real) of chapter 11's pair sampler (x stands in for the teacher's ODE outputs)."""
    teacher = unet.MLPDenoiser(2, 16, 1, t_dim=16).to(device).requires_grad_(False).eval()
    G = distill.Student(distill.init_from(teacher), (2,), schedule.T - 1)
    z = torch.randn(2 * B, 2, generator=torch.Generator().manual_seed(3))  # (2B, 2)
    sampler = distill.pair_sampler(z, _points(2 * B, 1, torch.device("cpu")), _points(2 * B, 2, torch.device("cpu")),
                                   B, device)
    return teacher, G, sampler(torch.Generator().manual_seed(4))


# Diffusion2GAN: the student and a conditional MLP D(z, x); lam_gan > 0, so D is trained too (chapter 11's reg_gan).
def _d2g(device: torch.device):
    cfg = distill.D2GConfig(lam_gan=0.1, regression="mse")
    torch.manual_seed(0)
    _, G, batch = _distill(device, ddpm.linear_schedule(1000))
    modules = {"G": G, "D": distill.ConditionalD(nets.MLPDiscriminator(4, 16, 2)).to(device)}
    state = State(modules, distill.make_optimizers(modules, cfg), torch.Generator().manual_seed(0), device)
    return functools.partial(distill.d2g_step, cfg=cfg), state, batch


# DMD2: the student, a fake score copied from the teacher and a GAN head; lam_reg > 0 runs DMD's regression too.
def _dmd2(device: torch.device):
    cfg, schedule = distill.DMD2Config(lam_reg=0.25, regression="mse"), ddpm.linear_schedule(1000)
    torch.manual_seed(0)
    teacher, G, batch = _distill(device, schedule)
    fake = distill.init_from(teacher)
    modules = {"G": G, "fake": fake, "head": distill.GANHead(fake, batch[2][:2], hidden=16)}
    state = State(modules, distill.make_optimizers(modules, cfg), torch.Generator().manual_seed(0), device)
    return functools.partial(distill.dmd2_step, cfg=cfg, schedule=schedule, teacher=teacher), state, batch


# GAN compression: a width-8 conv teacher, its width-4 student and a conv D, all on the device before
# student_modules adds the projections or connectors, as chapter 12 does (so that any it leaves elsewhere fail here).
def _compression(variant: str) -> Callable:
    def build(device: torch.device):
        cfg = compression.CompressionConfig()
        torch.manual_seed(0)
        teacher = nets.ConvGenerator(z_dim=8, channels=1, width=8).to(device).eval()
        student, D = compression.make_student(teacher, 2).to(device), nets.ConvDiscriminator(1, 4).to(device)
        modules = compression.student_modules(variant, student, teacher, D)
        state = State(modules, compression.make_optimizers(modules, cfg), torch.Generator().manual_seed(0), device)
        step = getattr(compression, f"{variant}_step")
        return functools.partial(step, cfg=cfg), state, _images(cfg.d_steps * B, 1, device)
    return build


TRAINING_STEPS: dict[str, Callable] = {
    "vanilla_step": _toy(vanilla.vanilla_step, vanilla.VanillaConfig(), vanilla.make_optimizers),
    "wgan_step": _toy(wgan.wgan_step, wgan.WGANConfig(), wgan.make_optimizers),
    "wgan_gp_step": _toy(wgan.wgan_gp_step, wgan.WGANGPConfig(), wgan.make_optimizers),
    "r1r2_step": _toy(wgan.r1r2_step, wgan.R1R2Config(), wgan.make_optimizers),
    "sngan_step": _sngan,
    "r3gan_step": _r3gan,
    "ddpm_step": _ddpm,
    **{v.step.__name__: _conditional(name) for name, v in conditional.VARIANTS.items()},
    "diffusion_gan_step": _diffusion_gan,
    "ddgan_step": _ddgan,
    "d2g_step": _d2g,
    "dmd2_step": _dmd2,
    **{f"{variant}_step": _compression(variant) for variant in compression.VARIANTS},
}
# Steps that are not a training step of a State: a sampler step and a particle update.
OTHER_STEPS = ("ddim_step", "particle_step")


def test_every_step_function_of_the_methods_has_a_gpu_case():
    found = set()
    for info in pkgutil.iter_modules(ganref.methods.__path__):
        module = importlib.import_module(f"ganref.methods.{info.name}")
        found |= {name for name, fn in inspect.getmembers(module, inspect.isfunction)
                  if name.endswith("_step") and not name.startswith("_") and fn.__module__ == module.__name__}
    missing = sorted(found - set(TRAINING_STEPS) - set(OTHER_STEPS))
    assert not missing, f"add a case for {missing} to TRAINING_STEPS or OTHER_STEPS in tests/test_gpu.py"
    assert set(TRAINING_STEPS) | set(OTHER_STEPS) <= found, "a case names a step that ganref.methods no longer has"


def _on(device: torch.device, t: torch.Tensor) -> bool:
    return t.device.type == device.type


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", sorted(TRAINING_STEPS))
def test_one_training_step_on_cuda(name):
    check_training_step(name, torch.device("cuda"))


@pytest.mark.parametrize("name", sorted(TRAINING_STEPS))
def test_one_training_step_on_cpu(name):
    check_training_step(name, torch.device("cpu"))


def check_training_step(name: str, device: torch.device) -> None:
    """One step of case ``name`` on ``device``: finite losses there, parameters still there, finite, moved."""
    step, state, batch = TRAINING_STEPS[name](device)
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in state.modules.items()}
    out = step(state, batch)
    assert out, f"{name} returned no losses"
    for key, value in out.items():  # plain numbers (diffusion_gan_step's T, p and r_d) are host values by design
        on_device = not isinstance(value, torch.Tensor) or _on(device, value)
        assert on_device and math.isfinite(float(value)), f"{name}: {key} = {value!r}, wanted finite on {device.type}"
    for k, module in state.modules.items():
        params = list(module.parameters())
        assert all(_on(device, p) and bool(torch.isfinite(p).all()) for p in params), \
            f"{name}: {k} left {device.type} or is not finite"
        if k in state.optimizers:  # the optimizer moved at least one of its parameters
            assert any(not torch.equal(a, b) for a, b in zip(before[k], params)), f"{name}: {k} did not change"
    for k, ema in state.ema.items():
        assert all(_on(device, p) for p in ema.module.parameters()), f"{name}: the EMA of {k} is not on {device.type}"


@pytest.mark.gpu
@needs_cuda
def test_ddim_step_on_cuda():
    check_ddim_step(torch.device("cuda"))


def test_ddim_step_on_cpu():
    check_ddim_step(torch.device("cpu"))


def check_ddim_step(device: torch.device) -> None:
    schedule = ddpm.linear_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x_k, eps_hat, noise = (torch.randn(B, 2, generator=g).to(device) for _ in range(3))
    x_prev = ddpm.ddim_step(schedule, eps_hat, x_k, 999, 499, eta=1.0, noise=noise)
    assert _on(device, x_prev) and x_prev.shape == (B, 2) and bool(torch.isfinite(x_prev).all())
    on_cpu = ddpm.ddim_step(schedule, eps_hat.cpu(), x_k.cpu(), 999, 499, eta=1.0, noise=noise.cpu())
    torch.testing.assert_close(x_prev.cpu(), on_cpu)


@pytest.mark.gpu
@needs_cuda
def test_particle_step_on_cuda():
    check_particle_step(torch.device("cuda"))


def test_particle_step_on_cpu():
    check_particle_step(torch.device("cpu"))


def check_particle_step(device: torch.device) -> None:
    kernel = functools.partial(ntk.relu_ntk, depth=2, b_std=1.0)
    x_fake, x_real = _points(16, 1, device) * 0.1, _points(16, 2, device)
    moved = ntk.particle_step(x_fake, x_real, kernel, "ipm", lr=0.1)
    assert _on(device, moved) and moved.shape == x_fake.shape and bool(torch.isfinite(moved).all())
    assert not torch.equal(moved, x_fake)
    on_cpu = ntk.particle_step(x_fake.cpu(), x_real.cpu(), kernel, "ipm", lr=0.1)
    torch.testing.assert_close(moved.cpu(), on_cpu)


@pytest.mark.gpu
@needs_cuda
def test_chapter_01_at_smoke_on_cuda(tmp_path):
    check_chapter_01(tmp_path, "cuda")


def check_chapter_01(tmp_path: Path, device: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "ganref.pipeline.cli", "run", "01", "--profile", "smoke", "--device", device,
           "--out", str(tmp_path / "runs")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"`{' '.join(cmd[1:])}` failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}"
    records = sorted((tmp_path / "runs" / "smoke").glob("01_*.json"))
    assert records, f"no results JSON in {tmp_path / 'runs' / 'smoke'}"
    record = json.loads(records[0].read_text(encoding="utf-8"))
    assert record["device"].startswith(device), record["device"]
    assert record["status"] == "complete", record["status"]
    assert sorted((tmp_path / "runs" / "smoke").glob("01_*.ipynb")), "no executed notebook"
