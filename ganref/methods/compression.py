r"""GAN compression: a narrow student generator taught by a wide teacher and by the teacher's discriminator.

**GAN Compression: Efficient Architectures for Interactive Conditional GANs.** Muyang Li, Ji Lin,
Yaoyao Ding, Zhijian Liu, Jun-Yan Zhu, Song Han. CVPR 2020. arXiv:2003.08936.
**Discriminator-Cooperated Feature Map Distillation for GAN Compression (DCD).** Tie Hu, Mingbao Lin,
Lizhou You, Fei Chao, Rongrong Ji. CVPR 2023. arXiv:2212.14169.

A student :math:`S` of the teacher's architecture at ``1 / factor`` of its width is trained on the
same noise :math:`z` as the frozen teacher :math:`T`. The three objectives differ by one term each;
all keep the adversarial loss against a discriminator inherited from the teacher (GAN Compression,
Sec. 3.1, "inheriting the teacher discriminator") and fine-tuned against the student:

.. math::
    (a)\ \ L_S &= \lambda_{gan} L_{GAN} + \lambda_{recon}\,\mathbb{E}_z \|S(z) - T(z)\|_1 \\
    (b)\ \ L_S &= (a) + \lambda_{distill} \sum_l \mathrm{MSE}\big(f_l(S_l(z)),\ T_l(z)\big) \\
    (c)\ \ L_S &= (a) + \lambda_{CD} \sum_l \sum_k \big\| D_k(c^S_l(S_l(z))) - D_k(c^T_l(T_l(z))) \big\|_1

(a) is GAN Compression's reconstruction term (Sec. 3.1: the teacher's output is the target); (b) adds its intermediate feature distillation, a learned 1x1
convolution :math:`f_l` from the student's channels to the teacher's at matched layers :math:`l`;
(c) is DCD's discriminator-cooperated distillation: 1x1 "connectors" map both feature maps to image
channels (the teacher's connector :math:`c^T_l` random and frozen, the student's :math:`c^S_l` learned)
and the loss compares what D's layers :math:`D_k` see of them, not the pixels. :math:`L_{GAN}` is the
non-saturating loss :math:`-\mathbb{E}\log D(S(z))`; D minimizes :math:`-[\mathbb{E}\log D(x) +
\mathbb{E}\log(1 - D(S(z)))]` (Goodfellow et al. 2014, Eq. (1)). The papers' equations are cited by
section and term name: their PDFs were not read, so their equation numbers are not given here.

DCD's public code (poopit/DCD-official) has a quirk this file does not copy: its CycleGAN distiller
computes the student's "GAN loss" on the teacher's output and its pix2pix distiller never adds it,
so no adversarial gradient reaches the student. Here :math:`L_{GAN}` is :math:`D(S(z))`, part of every
objective (``tests/test_compression.py`` checks that it moves the student's weights).

Deviations from the papers:

- 8x8 digits and the book's ``nets.ConvGenerator`` (teacher width 32, students 16, 8, 4), not ResNet
  image-to-image generators; the noise z plays the role of the input image. The matched layers are
  the inputs of its two transposed convolutions, (2w, 2, 2) and (w, 4, 4); the papers hook four blocks.
- The teacher is trained first and frozen (GAN Compression's setting; DCD's code trains it online).
  DCD builds a teacher-sized D from scratch and co-trains it with the student (its "collaborative
  adversarial training", abstract); here all three objectives inherit the teacher's trained D and keep
  training it against the student, so that they differ only by their distillation term.
- DCD's connectors are 1x1 conv + BN + ReLU to 3 channels; ours are 1x1 conv + tanh to D's image
  channels (no batch norm, so a student equal to the teacher gives exactly zero loss; tanh puts the
  maps in D's input range), upsampled (nearest) from 2x2 and 4x4 to D's 8x8 input. DCD's output terms
  are VGG style and feature losses (weights 1e1, 1e4); digits have no VGG, so (c) keeps (a)'s L1.
- No once-for-all channel search (GAN Compression's second stage): the widths are fixed fractions.
- The non-saturating GAN loss that trained the teacher and its D (GAN Compression defaults to hinge).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganref.data import split_batch
from ganref.losses import d_loss_minimax, g_loss_nonsaturating
from ganref.schedules import Ramp, check_scheduled, set_lr, value_at
from ganref.train import State
from ganref.utils import check_betas, check_choice, check_config, check_number, check_positive_int

__all__ = ["CompressionConfig", "WIDTH_FACTORS", "VARIANTS", "G_LAYERS", "D_LAYERS", "make_student",
           "check_pair", "feature_maps", "activations", "make_projections", "make_connectors", "to_image",
           "output_distance", "feature_distance", "dcd_distance", "d_feature_distance", "student_modules",
           "make_optimizers", "discriminator_update",
           "scratch_step", "output_step", "feature_step", "dcd_step"]

WIDTH_FACTORS = (2, 4, 8)  # students at 1/2, 1/4, 1/8 of the teacher's width
VARIANTS = ("scratch", "output", "feature", "dcd")  # the baseline, then objectives (a), (b), (c)
G_LAYERS = ("net.0", "net.3")  # ConvGenerator: inputs of its transposed convs, (2w, 2, 2) and (w, 4, 4)
D_LAYERS = ("net.1", "net.3", "net.5")  # ConvDiscriminator: its three LeakyReLU outputs


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class CompressionConfig:
    """The weights of every term, the matched layers and the optimizer of a student run (a weight of 0
    switches its term off: ``lambda_gan=0`` gives pure distillation)."""

    lr: float | Ramp = 2e-4
    # lr = 2e-4: GAN Compression's --lr default (options/distill_options.py); a Ramp gives its linear decay
    betas: tuple[float, float] = (0.5, 0.999)
    # (0.5, 0.999): GAN Compression's --beta1 0.5 (distill_options.py) and beta2 0.999 (its distiller)
    lambda_gan: float = 1.0
    # lambda_gan = 1: GAN Compression's --lambda_gan default (base_resnet_distiller.py)
    lambda_recon: float = 100.0
    # lambda_recon = 100: GAN Compression's --lambda_recon default, an L1 (--recon_loss_type l1)
    lambda_distill: float = 1.0
    # lambda_distill = 1: GAN Compression's --lambda_distill default, MSE summed over layers
    lambda_cd: float = 1.0
    # lambda_CD = 1: DCD's weight of the discriminator-cooperated L1 (DCD-official scripts)
    g_layers: tuple[str, ...] = G_LAYERS
    # the two feature maps of ConvGenerator (the papers hook model.9, 12, 15, 18 of a ResNet G)
    d_layers: tuple[str, ...] = D_LAYERS
    # every hidden layer of ConvDiscriminator (DCD's code hooks one: model.10 / block4s.1.block.2)
    d_steps: int = 1
    # one D update per student update (GAN Compression's optimize_parameters)

    def __post_init__(self) -> None:
        check_scheduled("lr", self.lr, low=0)
        check_betas("betas", self.betas)
        for name in ("lambda_gan", "lambda_recon", "lambda_distill", "lambda_cd"):
            check_number(name, getattr(self, name), low=0)
        for name in ("g_layers", "d_layers"):
            layers = getattr(self, name)
            if not isinstance(layers, tuple) or not layers or not all(isinstance(s, str) and s for s in layers):
                raise ValueError(f"{name} must be a non-empty tuple of module names, got {layers!r}")
        check_positive_int("d_steps", self.d_steps)


# ----------------------------------------------------------------------------- students and features


def make_student(teacher: nn.Module, factor: int) -> nn.Module:
    """A fresh generator of the teacher's class and noise size at ``teacher.width // factor``
    (a ValueError unless ``factor`` is a positive divisor of the teacher's width)."""
    width, z_dim = getattr(teacher, "width", None), getattr(teacher, "z_dim", None)
    if not isinstance(width, int) or not isinstance(z_dim, int):
        raise ValueError(f"teacher must have integer width and z_dim attributes (nets.ConvGenerator), "
                         f"got {type(teacher).__name__}")
    factor = check_positive_int("factor", factor)
    if width % factor:
        divisors = [d for d in range(1, width + 1) if width % d == 0]
        raise ValueError(f"factor must be a positive divisor of the teacher's width {width}, got {factor}; "
                         f"divisors: {divisors}")
    channels = next(m for m in reversed(list(teacher.modules())) if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))
    kwargs = {"upsample": teacher.upsample} if hasattr(teacher, "upsample") else {}
    return type(teacher)(z_dim=z_dim, channels=channels.out_channels, width=width // factor, **kwargs)


def check_pair(teacher: nn.Module, student: nn.Module) -> None:
    """Refuse a teacher and a student that do not read the same noise: S must copy T(z) for the same z."""
    zt, zs = getattr(teacher, "z_dim", None), getattr(student, "z_dim", None)
    if not isinstance(zt, int) or zt != zs:
        raise ValueError(f"the teacher has z_dim {zt!r} but the student has z_dim {zs!r}: both must read the "
                         "same noise, so that the student can be taught the teacher's image for each z")


@contextmanager
def _tap(net: nn.Module, layers: Sequence[str], inputs: bool) -> Iterator[dict[str, Tensor]]:
    """Forward hooks that keep the input (``inputs``) or output of each named module of ``net``."""
    modules = dict(net.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        known = [n for n, m in modules.items() if n and not list(m.children())]
        raise ValueError(f"layers {missing} are not modules of {type(net).__name__}; its layers are {known}")
    kept: dict[str, Tensor] = {}
    handles = []
    for name in layers:
        if inputs:
            hook = lambda m, args, name=name: kept.__setitem__(name, args[0])  # noqa: E731
            handles.append(modules[name].register_forward_pre_hook(hook))
        else:
            hook = lambda m, args, out, name=name: kept.__setitem__(name, out)  # noqa: E731
            handles.append(modules[name].register_forward_hook(hook))
    try:
        yield kept
    finally:
        for h in handles:
            h.remove()


def feature_maps(G: nn.Module, z: Tensor, layers: Sequence[str] = G_LAYERS) -> tuple[Tensor, list[Tensor]]:
    """``G(z)`` (B, C, H, W) and the maps entering each named layer: (B, 2w, 2, 2), (B, w, 4, 4) for the
    defaults on ``nets.ConvGenerator``. A name that is not a module of ``G`` is a ValueError listing them."""
    with _tap(G, layers, inputs=True) as kept:
        x = G(z)
    return x, [kept[name] for name in layers]


def activations(D: nn.Module, x: Tensor, layers: Sequence[str] = D_LAYERS) -> list[Tensor]:
    """The outputs of the named layers of ``D`` on images ``x``: what D "sees" before its verdict."""
    with _tap(D, layers, inputs=False) as kept:
        D(x)
    return [kept[name] for name in layers]


def _channels(G: nn.Module, layers: Sequence[str]) -> list[int]:
    """Channels of each named feature map, from one forward pass on two rows of zeros (eval mode)."""
    was_training = G.training
    with torch.no_grad():
        _, maps = feature_maps(G.eval(), torch.zeros(2, G.z_dim, device=next(G.parameters()).device), layers)
    G.train(was_training)
    return [m.shape[1] for m in maps]


def make_projections(student: nn.Module, teacher: nn.Module, layers: Sequence[str] = G_LAYERS) -> nn.ModuleList:
    """GAN Compression's f_l: one learned 1x1 convolution per layer, student channels -> teacher channels."""
    check_pair(teacher, student)
    convs = (nn.Conv2d(cs, ct, 1) for cs, ct in zip(_channels(student, layers), _channels(teacher, layers)))
    return nn.ModuleList(convs).to(next(student.parameters()).device)  # on the student's device


def make_connectors(G: nn.Module, layers: Sequence[str] = G_LAYERS, channels: int = 1) -> nn.ModuleList:
    """DCD's connectors: per layer a 1x1 convolution to ``channels`` image channels, then tanh into [-1, 1]."""
    channels = check_positive_int("channels", channels)
    connectors = (nn.Sequential(nn.Conv2d(c, channels, 1), nn.Tanh()) for c in _channels(G, layers))
    return nn.ModuleList(connectors).to(next(G.parameters()).device)  # on G's device


def to_image(maps: Sequence[Tensor], connectors: Sequence[nn.Module], size: tuple[int, int] = (8, 8)) -> list[Tensor]:
    """Each map through its connector, upsampled (nearest) to D's input size: (B, c_l, h, w) -> (B, C, 8, 8)."""
    if len(maps) != len(connectors):
        raise ValueError(f"got {len(maps)} feature maps but {len(connectors)} connectors: one per layer")
    return [F.interpolate(c(m), size=size, mode="nearest") for m, c in zip(maps, connectors)]


# ----------------------------------------------------------------------------- the three distances


def output_distance(x_s: Tensor, x_t: Tensor, reduction: str = "mean") -> Tensor:
    """L_recon = E_z |S(z) - T(z)|_1, GAN Compression Sec. 3.1 (the teacher's image is the target).

    Args:
        x_s, x_t: (B, C, H, W) student and teacher images for the same z.
        reduction: ``"mean"`` (a scalar) or ``"none"`` (per sample, (B,), the mean over pixels).
    """
    if x_s.shape != x_t.shape:
        raise ValueError(f"student images {tuple(x_s.shape)} and teacher images {tuple(x_t.shape)} differ in shape")
    per_sample = (x_s - x_t.detach()).abs().flatten(1).mean(1)  # (B,)
    return per_sample.mean() if reduction == "mean" else per_sample


def feature_distance(maps_s: Sequence[Tensor], maps_t: Sequence[Tensor], projections: Sequence[nn.Module]) -> Tensor:
    """L_distill = sum_l MSE(f_l(S_l), T_l), GAN Compression Sec. 3.1 (intermediate feature distillation).

    Args:
        maps_s: student maps (B, c_l, h_l, w_l); maps_t: the teacher's (B, C_l, h_l, w_l) for the same z.
        projections: the learned 1x1 convolutions f_l, c_l -> C_l.
    """
    if not len(maps_s) == len(maps_t) == len(projections):
        raise ValueError(f"got {len(maps_s)} student maps, {len(maps_t)} teacher maps and {len(projections)} "
                         "projections: one of each per matched layer")
    return sum(F.mse_loss(f(s), t.detach()) for s, t, f in zip(maps_s, maps_t, projections))


def dcd_distance(maps_s: Sequence[Tensor], maps_t: Sequence[Tensor], connectors_s: Sequence[nn.Module],
                 connectors_t: Sequence[nn.Module], D: nn.Module, d_layers: Sequence[str] = D_LAYERS,
                 size: tuple[int, int] = (8, 8)) -> Tensor:
    """L_CD = sum_l sum_k mean |D_k(c^S_l(S_l)) - D_k(c^T_l(T_l))|, DCD (Hu et al. 2023), Sec. 3.

    Both maps of layer l go through their connectors to image channels, then through D; the L1 is
    taken between D's activations at each layer k of ``d_layers``. The teacher side carries no gradient.
    """
    if not len(maps_s) == len(maps_t) == len(connectors_s) == len(connectors_t):
        raise ValueError("maps_s, maps_t, connectors_s and connectors_t must have one entry per matched layer")
    n_layers = len(maps_s)
    images_s = torch.cat(to_image(maps_s, connectors_s, size))  # (L * B, C, 8, 8): one D call for all l
    with torch.no_grad():
        seen_t = activations(D, torch.cat(to_image([m.detach() for m in maps_t], connectors_t, size)), d_layers)
    seen_s = activations(D, images_s, d_layers)
    return sum(F.l1_loss(a_s, a_t) for k_s, k_t in zip(seen_s, seen_t)  # sum over D's layers k
               for a_s, a_t in zip(k_s.chunk(n_layers), k_t.chunk(n_layers)))  # and over G's layers l


def d_feature_distance(D: nn.Module, x_a: Tensor, x_b: Tensor, d_layers: Sequence[str] = D_LAYERS) -> Tensor:
    """Per sample (B,): sum over D's layers of the mean |D_k(x_a) - D_k(x_b)|, how far apart D "sees" two images."""
    return sum((a - b).abs().flatten(1).mean(1) for a, b in zip(activations(D, x_a, d_layers),
                                                                activations(D, x_b, d_layers)))


def student_modules(variant: str, student: nn.Module, teacher: nn.Module, D: nn.Module) -> dict[str, nn.Module]:
    """The modules of a run of ``variant`` (:data:`VARIANTS`): G (the student) and D, plus T (the teacher)
    for the distilled ones, P (projections, or the student's connectors) and PT (the teacher's, frozen)."""
    check_choice("variant", variant, VARIANTS)
    check_pair(teacher, student)
    modules = {"G": student, "D": D} if variant == "scratch" else {"G": student, "D": D, "T": teacher}
    if variant == "feature":
        modules["P"] = make_projections(student, teacher)
    if variant == "dcd":
        modules["P"], modules["PT"] = make_connectors(student), make_connectors(teacher).requires_grad_(False)
    return modules


def make_optimizers(state_modules: dict[str, nn.Module], cfg: CompressionConfig) -> dict[str, torch.optim.Optimizer]:
    """Adam for the student with its projections or connectors (``"G"``, ``"P"``) and for D (``"D"``)."""
    check_config(cfg, CompressionConfig, "compression.make_optimizers")
    g_params = [p for k in ("G", "P") if k in state_modules for p in state_modules[k].parameters()]
    lr = value_at(cfg.lr, 0)
    return {"G": torch.optim.Adam(g_params, lr=lr, betas=cfg.betas),
            "D": torch.optim.Adam(state_modules["D"].parameters(), lr=lr, betas=cfg.betas)}


# ----------------------------------------------------------------------------- the steps


def discriminator_update(state: State, real: Tensor, cfg: CompressionConfig) -> Tensor:
    """Set both learning rates for this step, then ``cfg.d_steps`` updates of D, each on B fresh real
    rows and B fresh student samples (one D call on both); returns the last D loss. D is left frozen
    (``requires_grad=False``) for the student's update that follows: the student's loss then builds
    no gradient for D's weights, which it would never use. The next call unfreezes it."""
    S, D, opt_d = state.modules["G"], state.modules["D"], state.optimizers["D"]
    for opt in state.optimizers.values():
        set_lr(opt, value_at(cfg.lr, state.step))
    D.requires_grad_(True)
    for x in split_batch(real, cfg.d_steps, "d_steps"):
        with torch.no_grad():
            fake = S(state.randn(x.shape[0], S.z_dim))  # (B, C, 8, 8)
        d_out = D(torch.cat([x, fake]))  # (2B,)
        d_loss = d_loss_minimax(d_out[: len(x)], d_out[len(x):])
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    D.requires_grad_(False)
    return d_loss.detach()


def _student_update(state: State, loss: Tensor) -> None:
    opt_g = state.optimizers["G"]  # the student and its projections or connectors
    opt_g.zero_grad(set_to_none=True)
    loss.backward()
    opt_g.step()


def _teacher(state: State) -> tuple[nn.Module, nn.Module, nn.Module]:
    S, T, D = state.modules["G"], state.modules["T"], state.modules["D"]
    check_pair(T, S)
    T.eval()  # frozen: it draws as at test time (batch norm's running statistics), fit() set it to train
    return S, T, D


def scratch_step(state: State, real: Tensor, cfg: CompressionConfig) -> dict[str, Tensor]:
    """The baseline: the student trained as a plain GAN, no teacher (``state.modules``: G, D)."""
    check_config(cfg, CompressionConfig, "compression.scratch_step")
    S, D = state.modules["G"], state.modules["D"]
    # --- D minimizes -[E log D(x) + E log(1 - D(S(z)))]                  Goodfellow et al. 2014, Eq. (1)
    d_loss = discriminator_update(state, real, cfg)
    # --- S minimizes lambda_gan * -E log D(S(z))                         non-saturating, ibid. Sec. 3
    g_gan = g_loss_nonsaturating(D(S(state.randn(real.shape[0] // cfg.d_steps, S.z_dim))))
    _student_update(state, cfg.lambda_gan * g_gan)
    return {"d_loss": d_loss, "g_gan": g_gan.detach()}


def output_step(state: State, real: Tensor, cfg: CompressionConfig) -> dict[str, Tensor]:
    """Objective (a): the teacher's image for the same z, plus the adversarial loss. ``state.modules``:
    ``G`` (the student), ``T`` (the frozen teacher), ``D`` (:func:`student_modules`); ``real``: (d_steps * B, C, 8, 8)."""
    check_config(cfg, CompressionConfig, "compression.output_step")
    S, T, D = _teacher(state)
    # --- D minimizes -[E log D(x) + E log(1 - D(S(z)))]                  Goodfellow et al. 2014, Eq. (1)
    d_loss = discriminator_update(state, real, cfg)
    # --- S minimizes lambda_gan * -E log D(S(z)) + lambda_recon * E|S(z) - T(z)|_1     GAN Compression 3.1
    z = state.randn(real.shape[0] // cfg.d_steps, S.z_dim)  # the same z for teacher and student
    with torch.no_grad():
        x_t = T(z)  # (B, C, 8, 8)
    x_s = S(z)
    g_gan = g_loss_nonsaturating(D(x_s))
    recon = output_distance(x_s, x_t)
    _student_update(state, cfg.lambda_gan * g_gan + cfg.lambda_recon * recon)
    return {"d_loss": d_loss, "g_gan": g_gan.detach(), "recon": recon.detach()}


def feature_step(state: State, real: Tensor, cfg: CompressionConfig) -> dict[str, Tensor]:
    """Objective (b), GAN Compression: (a) plus MSE between 1x1-projected student maps and the teacher's.

    ``state.modules["P"]`` holds the projections f_l (:func:`make_projections`), trained with the student.
    """
    check_config(cfg, CompressionConfig, "compression.feature_step")
    S, T, D = _teacher(state)
    # --- D minimizes -[E log D(x) + E log(1 - D(S(z)))]                  Goodfellow et al. 2014, Eq. (1)
    d_loss = discriminator_update(state, real, cfg)
    # --- S, f minimize lambda_gan L_GAN + lambda_recon L_recon + lambda_distill sum_l MSE(f_l(S_l), T_l)
    #     GAN Compression Sec. 3.1, full objective
    z = state.randn(real.shape[0] // cfg.d_steps, S.z_dim)
    with torch.no_grad():
        x_t, maps_t = feature_maps(T, z, cfg.g_layers)  # [(B, 2W, 2, 2), (B, W, 4, 4)]
    x_s, maps_s = feature_maps(S, z, cfg.g_layers)  # [(B, 2w, 2, 2), (B, w, 4, 4)]
    g_gan = g_loss_nonsaturating(D(x_s))
    recon = output_distance(x_s, x_t)
    distill = feature_distance(maps_s, maps_t, state.modules["P"])
    _student_update(state, cfg.lambda_gan * g_gan + cfg.lambda_recon * recon + cfg.lambda_distill * distill)
    return {"d_loss": d_loss, "g_gan": g_gan.detach(), "recon": recon.detach(), "distill": distill.detach()}


def dcd_step(state: State, real: Tensor, cfg: CompressionConfig) -> dict[str, Tensor]:
    """Objective (c), DCD: (a) plus the L1 between what D sees of the student's and the teacher's maps.

    ``state.modules["P"]`` holds the student's connectors (trained with it), ``"PT"`` the teacher's (random,
    frozen). D plays both roles at once: it judges real against student images, and its layers are the
    space the maps are compared in (DCD's collaborative scheme, with the teacher frozen).
    """
    check_config(cfg, CompressionConfig, "compression.dcd_step")
    S, T, D = _teacher(state)
    # --- D minimizes -[E log D(x) + E log(1 - D(S(z)))]                  Goodfellow et al. 2014, Eq. (1)
    d_loss = discriminator_update(state, real, cfg)
    # --- S, c^S minimize lambda_gan L_GAN + lambda_recon L_recon
    #                     + lambda_CD sum_l sum_k |D_k(c^S_l(S_l)) - D_k(c^T_l(T_l))|_1      DCD, Sec. 3
    z = state.randn(real.shape[0] // cfg.d_steps, S.z_dim)
    with torch.no_grad():
        x_t, maps_t = feature_maps(T, z, cfg.g_layers)
    x_s, maps_s = feature_maps(S, z, cfg.g_layers)
    g_gan = g_loss_nonsaturating(D(x_s))  # on the STUDENT's image: the adversarial gradient reaches S
    recon = output_distance(x_s, x_t)
    cd = dcd_distance(maps_s, maps_t, state.modules["P"], state.modules["PT"], D, cfg.d_layers, x_s.shape[-2:])
    _student_update(state, cfg.lambda_gan * g_gan + cfg.lambda_recon * recon + cfg.lambda_cd * cd)
    return {"d_loss": d_loss, "g_gan": g_gan.detach(), "recon": recon.detach(), "cd": cd.detach()}
