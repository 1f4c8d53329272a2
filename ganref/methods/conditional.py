r"""Class-conditional GANs side by side: cGAN, ACGAN, projection discriminator, ADC-GAN, AM-GAN.

K classes; G draws ``x = G(z, y)`` with y uniform on [0, K); logits are pre-softmax and
:math:`CE(l, y) = \log\sum_k e^{l_k} - l_y`. The networks (label embeddings, class-conditional batch
norm, one D with five label heads) are in :mod:`ganref.cond_nets`, the adversarial losses in
:mod:`ganref.losses`. The papers' equation numbers were not re-read: objectives are written as the
abstracts and the authors' code state them.

**cGAN.** M. Mirza, S. Osindero. *Conditional Generative Adversarial Nets.* 2014. arXiv:1411.1784.
The label enters G and D as extra input (an embedding, concatenated):
:math:`\min_G\max_D \mathbb{E}_{x,y}\log D(x|y) + \mathbb{E}_{z,y}\log(1 - D(G(z|y)|y))`.

**ACGAN.** A. Odena, C. Olah, J. Shlens. *Conditional Image Synthesis with Auxiliary Classifier GANs.*
ICML 2017. arXiv:1610.09585. D has a K-way classifier C on its features;
:math:`L_S = \mathbb{E}\log P(S{=}real|x_r) + \mathbb{E}\log P(S{=}fake|x_f)`,
:math:`L_C = \mathbb{E}\log P(C{=}y|x_r) + \mathbb{E}\log P(C{=}y|x_f)`; D maximizes :math:`L_S + L_C`,
G maximizes :math:`L_C - L_S`. With C the true posterior G's class term is
:math:`KL(Q_{XY}\|P_{XY}) - KL(Q_X\|P_X) + H_Q(Y|X)` (Hou et al. 2022): low conditional entropy pays.

**Projection discriminator.** T. Miyato, M. Koyama. *cGANs with Projection Discriminator.* ICLR 2018.
arXiv:1802.05637. :math:`D(x, y) = \psi(\phi(x)) + \langle V_y, \phi(x)\rangle`, V spectrally normalized;
the hinge loss of the authors' code (the model is derived for the logistic loss).

**ADC-GAN.** L. Hou, Q. Cao, H. Shen, S. Pan, X. Li, X. Cheng. *Conditional GANs with Auxiliary
Discriminative Classifier.* ICML 2022. arXiv:2107.10060. One 2K-way classifier :math:`C_d` (index 2y:
real of class y, 2y + 1: fake of class y, as in the authors' code);
:math:`\max_{D, C_d} V(G, D) + \lambda(\mathbb{E}_P \log C_d(2y|x) + \mathbb{E}_Q \log C_d(2y{+}1|x))`,
:math:`\min_G V(G, D) - \lambda(\mathbb{E}_Q \log C_d(2y|x) - \mathbb{E}_Q \log C_d(2y{+}1|x))`;
at the optimum G minimizes :math:`JS(P_X\|Q_X) + \lambda KL(Q_{XY}\|P_{XY})`: no entropy term.

**AM-GAN.** Z. Zhou, H. Cai, S. Rong, Y. Song, K. Ren, W. Zhang, Y. Yu, J. Wang. *Activation Maximization
Generative Adversarial Nets.* ICLR 2018. arXiv:1703.02000. D is one (K+1)-way classifier, class K
"fake": :math:`L_D = CE(D(x_r), y) + CE(D(x_f), K)`; G minimizes :math:`CE(D(x_f), c(x_f))`, c the
dynamic label :math:`\arg\max_{k<K} D_k(x)` (no gradient through it) or the given label (class-
conditional variant). With the given label and the optimal D, G's loss is ACGAN's class term plus
the non-saturating GAN loss (chapter 07 derives it), entropy term included.

Deviations from the papers: one small D (:mod:`ganref.cond_nets`) with spectral norm for every variant
and one G with class-conditional batch norm, so the variants differ only in how D reads the label and
in their losses; D runs once on the real and generated batch together; D updates come before the G
update (the projection code takes the G step first); ACGAN's D class loss is on real data only by
default (``d_class_loss="real"``: StudioGAN's working ACGAN, issue #74, and the ADC-GAN code;
``"real_and_fake"`` is the paper's :math:`L_C`); AM-GAN without lr schedule, input noise or dropout.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganref.cond_nets import CondDiscriminator, check_labels, fake_batch, fit_conditional, labeled_chunks, projection
from ganref.losses import d_loss_minimax, g_loss_nonsaturating, hinge_d_loss, hinge_g_loss
from ganref.train import State
from ganref.utils import check_betas, check_choice, check_config, check_number, check_positive, check_positive_int

__all__ = ["acgan_class_loss", "adc_d_loss", "adc_g_loss", "amgan_d_loss", "amgan_g_loss", "projection", "CGANConfig",
           "ACGANConfig", "ProjectionConfig", "ADCGANConfig", "AMGANConfig", "Variant", "VARIANTS", "get_variant",
           "make_optimizers", "cgan_step", "acgan_step", "projection_step", "adcgan_step", "amgan_step",
           "train_variant"]

LOSSES = ("hinge", "nonsaturating")


# ----------------------------------------------------------------------------- losses on logits


def _check_class_logits(name: str, logits: object, classes: int | None = None, even: bool = False) -> Tensor:
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"{name} must be class logits of shape (B, {classes or 'K'}) with B >= 1, got {shape}")
    if classes is not None and logits.shape[1] != classes:
        raise ValueError(f"{name} must have {classes} columns, got {logits.shape[1]}")
    if even and logits.shape[1] % 2:
        raise ValueError(f"ADC-GAN logits must have 2K columns, got {logits.shape[1]}")
    return logits


def acgan_class_loss(logits: Tensor, y: Tensor) -> Tensor:
    """ACGAN's class term, the batch mean of :math:`CE(l, y) = -\\log P(C{=}y|x)` (Odena et al. 2017), no lambda.

    Args: logits (B, K) raw outputs of the auxiliary classifier (never softmax outputs); y (B,) in [0, K).
    """
    _check_class_logits("logits", logits)
    check_labels(y, logits.shape[0], logits.shape[1], "y")
    return F.cross_entropy(logits, y)  # -E log softmax(l)_y


def adc_d_loss(logits_real: Tensor, y_real: Tensor, logits_fake: Tensor, y_fake: Tensor) -> Tensor:
    """ADC-GAN's D term, :math:`CE(l_r, 2y_r) + CE(l_f, 2y_f + 1)` on (B, 2K) logits (Hou et al. 2022).

    Index 2y is "real, class y" and 2y + 1 "fake, class y", as in the authors' code. Returns the batch
    means' sum without lambda; at zero logits it is 2 ln(2K).
    """
    _check_class_logits("logits_real", logits_real, even=True)
    _check_class_logits("logits_fake", logits_fake, logits_real.shape[1])
    k = logits_real.shape[1] // 2
    check_labels(y_real, logits_real.shape[0], k, "y_real")
    check_labels(y_fake, logits_fake.shape[0], k, "y_fake")
    return F.cross_entropy(logits_real, 2 * y_real) + F.cross_entropy(logits_fake, 2 * y_fake + 1)


def adc_g_loss(logits_fake: Tensor, y_fake: Tensor) -> Tensor:
    """ADC-GAN's G term, :math:`CE(l_f, 2y) - CE(l_f, 2y + 1) = l_{f,2y+1} - l_{f,2y}` (batch mean, no lambda)."""
    _check_class_logits("logits_fake", logits_fake, even=True)
    check_labels(y_fake, logits_fake.shape[0], logits_fake.shape[1] // 2, "y_fake")
    return F.cross_entropy(logits_fake, 2 * y_fake) - F.cross_entropy(logits_fake, 2 * y_fake + 1)


def amgan_d_loss(logits_real: Tensor, y_real: Tensor, logits_fake: Tensor) -> Tensor:
    """AM-GAN's D loss on (B, K+1) logits: :math:`CE(l_r, y_r) + CE(l_f, K)`, class K being "fake"."""
    _check_class_logits("logits_real", logits_real)
    _check_class_logits("logits_fake", logits_fake, logits_real.shape[1])
    k = logits_real.shape[1] - 1
    check_labels(y_real, logits_real.shape[0], k, "y_real")
    fake_class = torch.full((logits_fake.shape[0],), k, dtype=torch.long, device=logits_fake.device)
    return F.cross_entropy(logits_real, y_real) + F.cross_entropy(logits_fake, fake_class)


def amgan_g_loss(logits_fake: Tensor, y_fake: Tensor | None = None) -> Tensor:
    """AM-GAN's G loss on (B, K+1) logits: :math:`CE(l_f, c)` with the dynamic label
    :math:`c = \\arg\\max_{k<K} l_{f,k}` (no gradient through it), or ``y_fake`` when given (the
    class-conditional variant). At zero logits it is ln(K+1)."""
    _check_class_logits("logits_fake", logits_fake)
    if y_fake is None:
        y_fake = logits_fake[:, :-1].detach().argmax(1)  # c(x) = argmax over the K real classes
    check_labels(y_fake, logits_fake.shape[0], logits_fake.shape[1] - 1, "y_fake")
    return F.cross_entropy(logits_fake, y_fake)


# ----------------------------------------------------------------------------- configs


def _check_common(cfg: object) -> None:
    check_positive("lr", cfg.lr)
    check_betas("betas", cfg.betas)
    check_positive_int("d_steps", cfg.d_steps)
    if hasattr(cfg, "loss"):
        check_choice("loss", cfg.loss, LOSSES)


@dataclass(frozen=True)
class CGANConfig:
    """cGAN: the label concatenated into D's input; ``loss`` ``"nonsaturating"`` or ``"hinge"``."""

    lr: float = 2e-4  # DCGAN's Adam (Radford et al. 2016); the paper used SGD with momentum
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN's Adam (Radford et al. 2016)
    d_steps: int = 1  # k = 1 (Goodfellow et al. 2014, Algorithm 1)
    loss: str = "nonsaturating"  # the paper's log loss, G's side non-saturating (Goodfellow et al. 2014, Sec. 3)

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass(frozen=True)
class ACGANConfig:
    """ACGAN: adversarial loss plus ``class_weight`` times the auxiliary classifier's cross-entropy."""

    lr: float = 2e-4  # DCGAN's Adam, which ACGAN builds on (the paper's appendix was not re-read)
    betas: tuple[float, float] = (0.5, 0.999)  # DCGAN's Adam (Radford et al. 2016)
    d_steps: int = 1  # one D step per G step (Odena et al. 2017)
    loss: str = "nonsaturating"  # L_S, the log-likelihood of the right source (Odena et al. 2017)
    class_weight: float = 1.0  # L_S + L_C with equal weights (Odena et al. 2017); StudioGAN cond_lambda 1.0
    d_class_loss: str = "real"  # StudioGAN issue #74 and the ADC-GAN code; "real_and_fake" = the paper's L_C

    def __post_init__(self) -> None:
        _check_common(self)
        check_number("class_weight", self.class_weight, low=0)
        check_choice("d_class_loss", self.d_class_loss, ("real", "real_and_fake"))


@dataclass(frozen=True)
class ProjectionConfig:
    """Projection discriminator with the hinge loss (the authors' CIFAR-10 configuration)."""

    lr: float = 2e-4  # pfnet-research/sngan_projection, CIFAR-10 config: Adam alpha 2e-4
    betas: tuple[float, float] = (0.0, 0.9)  # same config: beta1 0, beta2 0.9
    d_steps: int = 5  # same config: n_dis 5
    loss: str = "hinge"  # the authors' code (the model is derived for the logistic loss)

    def __post_init__(self) -> None:
        _check_common(self)


@dataclass(frozen=True)
class ADCGANConfig:
    """ADC-GAN: adversarial loss plus ``adc_weight`` times the 2K-way classifier's terms."""

    lr: float = 2e-4  # liang-hou/adcgan CIFAR-10 scripts: G and D lr 2e-4
    betas: tuple[float, float] = (0.0, 0.999)  # BigGAN-PyTorch's default Adam, used by those scripts
    d_steps: int = 4  # same scripts: num_D_steps 4
    loss: str = "hinge"  # same scripts (BigGAN-PyTorch's hinge loss)
    adc_weight: float = 1.0  # lambda 1.0 for CIFAR-10/100 (0.5 for Tiny-ImageNet) in the authors' scripts

    def __post_init__(self) -> None:
        _check_common(self)
        check_number("adc_weight", self.adc_weight, low=0)


@dataclass(frozen=True)
class AMGANConfig:
    """AM-GAN: a (K+1)-class D; ``label`` ``"given"`` (class-conditional) or ``"dynamic"`` (argmax)."""

    lr: float = 4e-4  # AM-GANs-refactored / AM-GANs-for-reproduce: Adam lr 4e-4
    betas: tuple[float, float] = (0.5, 0.999)  # AM-GANs-refactored: beta1 0.5, beta2 0.999
    d_steps: int = 1  # one D step per G step (AM-GANs-refactored)
    label: str = "given"  # class-conditional variant (AM-GANs-for-reproduce --bPredefined True)

    def __post_init__(self) -> None:
        _check_common(self)
        check_choice("label", self.label, ("given", "dynamic"))


def make_optimizers(G: nn.Module, D: nn.Module, cfg: object) -> dict[str, torch.optim.Optimizer]:
    """Adam for both players with the config's lr and betas (every variant uses one setting for G and D)."""
    check_config(cfg, tuple(v.config for v in VARIANTS.values()), "conditional.make_optimizers")
    return {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr, betas=cfg.betas),
            "D": torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=cfg.betas)}


# ----------------------------------------------------------------------------- the steps


def _adv_d(loss: str, d_real: Tensor, d_fake: Tensor) -> Tensor:  # hinge, or -V(D, G) of Goodfellow et al.
    return hinge_d_loss(d_real, d_fake) if loss == "hinge" else d_loss_minimax(d_real, d_fake)


def _adv_g(loss: str, d_fake: Tensor) -> Tensor:  # -E D(G(z)), or the non-saturating -E log D(G(z))
    return hinge_g_loss(d_fake) if loss == "hinge" else g_loss_nonsaturating(d_fake)


def _unpack(state: State, batch: tuple[Tensor, Tensor], cfg: object):
    G, D = state.modules["G"], state.modules["D"]
    return G, D, state.optimizers["G"], state.optimizers["D"], labeled_chunks(batch, cfg.d_steps, G.num_classes)


def cgan_step(state: State, batch: tuple[Tensor, Tensor], cfg: CGANConfig) -> dict[str, Tensor]:
    """``d_steps`` D updates then one G update of the cGAN (label concatenated into D: ``head="concat"``)."""
    check_config(cfg, CGANConfig, "conditional.cgan_step")
    G, D, opt_g, opt_d, pairs = _unpack(state, batch, cfg)
    # --- D maximizes E log D(x|y) + E log(1 - D(G(z|y')|y'))              Mirza & Osindero 2014
    for x, y in pairs:
        with torch.no_grad():
            x_f, y_f = fake_batch(state, G, len(x))
        d_out, _ = D(torch.cat([x, x_f]), torch.cat([y, y_f]))
        d_loss = _adv_d(cfg.loss, d_out[:len(x)], d_out[len(x):])
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # --- G minimizes -E log D(G(z|y)|y)                                   non-saturating (or hinge)
    x_f, y_f = fake_batch(state, G, len(x))
    g_loss = _adv_g(cfg.loss, D(x_f, y_f)[0])
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def acgan_step(state: State, batch: tuple[Tensor, Tensor], cfg: ACGANConfig) -> dict[str, Tensor]:
    """``d_steps`` D updates then one G update of ACGAN (``head="ac"``: logits (B, K))."""
    check_config(cfg, ACGANConfig, "conditional.acgan_step")
    G, D, opt_g, opt_d, pairs = _unpack(state, batch, cfg)
    # --- D maximizes L_S + lambda L_C: source log-likelihood plus log P(C = y | x_real)
    #     [+ log P(C = y' | x_fake) with d_class_loss="real_and_fake", the paper's rule]
    for x, y in pairs:
        with torch.no_grad():
            x_f, y_f = fake_batch(state, G, len(x))
        d_out, logits = D(torch.cat([x, x_f]))
        d_adv = _adv_d(cfg.loss, d_out[:len(x)], d_out[len(x):])
        d_cls = acgan_class_loss(logits[:len(x)], y)
        if cfg.d_class_loss == "real_and_fake":
            d_cls = d_cls + acgan_class_loss(logits[len(x):], y_f)
        d_loss = d_adv + cfg.class_weight * d_cls
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # --- G maximizes lambda L_C - L_S: minimizes -log D(G(z, y)) + lambda CE(C(G(z, y)), y)
    x_f, y_f = fake_batch(state, G, len(x))
    d_gen, logits_gen = D(x_f)
    g_loss = _adv_g(cfg.loss, d_gen) + cfg.class_weight * acgan_class_loss(logits_gen, y_f)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "d_class": d_cls.detach()}


def projection_step(state: State, batch: tuple[Tensor, Tensor], cfg: ProjectionConfig) -> dict[str, Tensor]:
    """``d_steps`` D updates then one G update with the projection D (``head="projection"``)."""
    check_config(cfg, ProjectionConfig, "conditional.projection_step")
    G, D, opt_g, opt_d, pairs = _unpack(state, batch, cfg)
    # --- D minimizes E max(0, 1 - D(x, y)) + E max(0, 1 + D(G(z, y'), y'))
    #     with D(x, y) = psi(phi(x)) + <V_y, phi(x)>                       Miyato & Koyama 2018
    for x, y in pairs:
        with torch.no_grad():
            x_f, y_f = fake_batch(state, G, len(x))
        d_out, _ = D(torch.cat([x, x_f]), torch.cat([y, y_f]))
        d_loss = _adv_d(cfg.loss, d_out[:len(x)], d_out[len(x):])
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # --- G minimizes -E D(G(z, y), y)                                     hinge, the authors' code
    x_f, y_f = fake_batch(state, G, len(x))
    g_loss = _adv_g(cfg.loss, D(x_f, y_f)[0])
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


def adcgan_step(state: State, batch: tuple[Tensor, Tensor], cfg: ADCGANConfig) -> dict[str, Tensor]:
    """``d_steps`` D updates then one G update of ADC-GAN (``head="adc"``: logits (B, 2K))."""
    check_config(cfg, ADCGANConfig, "conditional.adcgan_step")
    G, D, opt_g, opt_d, pairs = _unpack(state, batch, cfg)
    # --- D, C_d maximize V(G, D) + lambda [E_P log C_d(2y | x) + E_Q log C_d(2y + 1 | x)]   Hou et al. 2022
    for x, y in pairs:
        with torch.no_grad():
            x_f, y_f = fake_batch(state, G, len(x))
        d_out, logits = D(torch.cat([x, x_f]))
        d_adv = _adv_d(cfg.loss, d_out[:len(x)], d_out[len(x):])
        d_cls = adc_d_loss(logits[:len(x)], y, logits[len(x):], y_f)
        d_loss = d_adv + cfg.adc_weight * d_cls
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # --- G minimizes V(G, D) - lambda [E_Q log C_d(2y | x) - E_Q log C_d(2y + 1 | x)]
    x_f, y_f = fake_batch(state, G, len(x))
    d_gen, logits_gen = D(x_f)
    g_loss = _adv_g(cfg.loss, d_gen) + cfg.adc_weight * adc_g_loss(logits_gen, y_f)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "d_class": d_cls.detach()}


def amgan_step(state: State, batch: tuple[Tensor, Tensor], cfg: AMGANConfig) -> dict[str, Tensor]:
    """``d_steps`` D updates then one G update of AM-GAN (``head="am"``: logits (B, K+1), class K fake)."""
    check_config(cfg, AMGANConfig, "conditional.amgan_step")
    G, D, opt_g, opt_d, pairs = _unpack(state, batch, cfg)
    # --- D minimizes CE(D(x), y) + CE(D(G(z, y')), K): real digits to their class, fakes to class K
    for x, y in pairs:
        with torch.no_grad():
            x_f, _ = fake_batch(state, G, len(x))
        _, logits = D(torch.cat([x, x_f]))
        d_loss = amgan_d_loss(logits[:len(x)], y, logits[len(x):])
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
    # --- G minimizes CE(D(G(z, y)), y)  (given label)  or  CE(D(G(z)), argmax_{k<K} D_k(G(z)))  (dynamic)
    x_f, y_f = fake_batch(state, G, len(x))
    _, logits_gen = D(x_f)
    g_loss = amgan_g_loss(logits_gen, y_f if cfg.label == "given" else None)
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}


# ----------------------------------------------------------------------------- the five variants


@dataclass(frozen=True)
class Variant:
    """A conditional GAN: its name, config class, D head (:data:`ganref.cond_nets.HEADS`) and step."""

    name: str
    config: type
    head: str
    step: Callable[[State, tuple[Tensor, Tensor], object], dict[str, Tensor]]


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("cgan", CGANConfig, "concat", cgan_step),
    Variant("acgan", ACGANConfig, "ac", acgan_step),
    Variant("projection", ProjectionConfig, "projection", projection_step),
    Variant("adcgan", ADCGANConfig, "adc", adcgan_step),
    Variant("amgan", AMGANConfig, "am", amgan_step),
)}


def get_variant(name: str) -> Variant:
    """The variant called ``name`` (``"cgan"``, ``"acgan"``, ``"projection"``, ``"adcgan"``, ``"amgan"``)."""
    return VARIANTS[check_choice("variant", name, tuple(VARIANTS))]


def train_variant(name: str, make_G: Callable[[], nn.Module], make_D: Callable[[str], CondDiscriminator],
                  data: Callable, steps: int, seed: int, cfg: object | None = None, **options) -> State:
    """Train variant ``name`` from scratch with :func:`ganref.cond_nets.fit_conditional` (``make_D(head)``
    builds its D); ``cfg`` defaults to the variant's config with the authors' defaults; ``options``:
    ``spectral_norm`` (default True), ``ema_decay``, ``device``, ``callbacks``, ``progress``."""
    v = get_variant(name)
    cfg = v.config() if cfg is None else cfg
    check_config(cfg, v.config, f"conditional.train_variant({name!r})")
    return fit_conditional(functools.partial(v.step, cfg=cfg), make_optimizers, cfg, make_G,
                           lambda: make_D(v.head), data, steps, seed, desc=f"{name} seed {seed}", **options)
