r"""Conditional networks: label checks, class-conditional batch norm, conditional G and D, labeled batches.

Every class-conditional method of chapter 07 (cGAN, ACGAN, projection, ADC-GAN, AM-GAN) uses these
pieces, so that the variants differ only in how their discriminator reads the label and in their losses.

- :class:`ConditionalBatchNorm`: batch norm whose statistics are shared across classes and whose
  gain and bias are looked up per class, gain initialized to 1 and bias to 0 (de Vries et al. 2017;
  Dumoulin et al. 2017; the ``CategoricalConditionalBatchNormalization`` of Miyato & Koyama 2018).
- :class:`CondConvGenerator` (8x8 images) and :class:`CondMLPGenerator` (toy data): ``G(z, y)``; the
  label's embedding is concatenated to ``z`` (Mirza & Osindero 2014) and, in the conv G, every batch
  norm is conditional (``cbn=True``).
- :class:`CondDiscriminator`: ``D(x, y) -> (adv, logits)``: a trunk :math:`\phi`, an adversarial
  output :math:`\psi(\phi(x))` and one of five ways to read the label (:data:`HEADS`):

  ==============  =====================================================================  ==========
  head            what D computes                                                        logits
  ==============  =====================================================================  ==========
  ``concat``      the label's embedding enters as extra input channels (cGAN)            none
  ``ac``          an auxiliary K-way classifier on :math:`\phi(x)` (ACGAN)               (B, K)
  ``projection``  :math:`\psi(\phi(x)) + \langle V_y, \phi(x)\rangle` (Miyato & Koyama)   none
  ``adc``         one 2K-way classifier: 2y = (real, y), 2y + 1 = (fake, y) (ADC-GAN)    (B, 2K)
  ``am``          one (K+1)-way classifier, the last class "fake" (AM-GAN)               (B, K+1)
  ==============  =====================================================================  ==========

- :func:`labeled_batch_sampler`: ``(images, labels)`` batches for :func:`ganref.train.fit`
  (:func:`ganref.data.batch_sampler` draws rows of one tensor only); :func:`labeled_chunks` splits
  them per D update, :func:`fake_batch` draws ``(G(z, y), y)`` from the run's generator, and
  :func:`fit_conditional` trains a conditional G and D from scratch with any method's step.

Deviations: the trunk is the book's small DCGAN-style D (:class:`ganref.nets.ConvDiscriminator`'s
layers, features flattened) or an MLP, not the authors' ResNets with global sum pooling; the label
embeddings of D are bias-free linear maps of the one-hot label, so :func:`ganref.layers.apply_spectral_norm`
normalizes them as the authors' ``SNEmbedID`` does.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganref.data import _digest, split_batch
from ganref.layers import apply_spectral_norm
from ganref.train import EMA, State, fit
from ganref.utils import check_choice, check_positive_int, seed_everything

__all__ = ["HEADS", "check_num_classes", "check_labels", "random_labels", "projection", "ConditionalBatchNorm",
           "CondMLPGenerator", "CondConvGenerator", "CondDiscriminator", "conv_discriminator", "mlp_discriminator",
           "labeled_batch_sampler", "labeled_chunks", "fake_batch", "fit_conditional"]

HEADS = ("concat", "ac", "projection", "adc", "am")


# ----------------------------------------------------------------------------- label checks


def check_num_classes(num_classes: object) -> int:
    """K >= 2: a conditional model needs at least two classes."""
    return check_positive_int("num_classes", num_classes, minimum=2)


def check_labels(labels: object, n: int | None = None, num_classes: int | None = None,
                 name: str = "labels") -> Tensor:
    """Return ``labels`` if it is an integer tensor (n,) with values in [0, num_classes), else a ValueError.

    Args:
        labels: class labels.
        n: the number of rows they must match (images, logits), or ``None``.
        num_classes: K, or ``None`` to skip the range check.
        name: the argument's name in the message.
    """
    if not isinstance(labels, Tensor):
        raise ValueError(f"{name} must be an integer tensor of shape (B,), got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices (torch.long), got dtype {labels.dtype}: "
                         "class labels are indices, not values")
    if labels.ndim != 1:
        raise ValueError(f"{name} must have shape (B,), got {tuple(labels.shape)}")
    if n is not None and labels.shape[0] != n:
        raise ValueError(f"{name} has {labels.shape[0]} rows but the batch it labels has {n}: "
                         "one label per row")
    if num_classes is not None and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes - 1}] for num_classes={num_classes}, "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")
    return labels


def random_labels(n: int, num_classes: int, generator: torch.Generator,
                  device: torch.device | str = "cpu") -> Tensor:
    """``n`` labels drawn uniformly from [0, K) on the CPU from ``generator``, moved to ``device``."""
    return torch.randint(check_num_classes(num_classes), (check_positive_int("n", n),), generator=generator).to(device)


def labeled_chunks(batch: object, d_steps: int, num_classes: int) -> list[tuple[Tensor, Tensor]]:
    """Split a labeled batch ``(x, y)`` of ``d_steps * B`` rows into ``d_steps`` pairs of B rows (one per D update)."""
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise ValueError("batch must be (images, labels): draw it with cond_nets.labeled_batch_sampler")
    x, y = batch
    check_labels(y, len(x), num_classes, "labels")
    return list(zip(split_batch(x, d_steps), split_batch(y, d_steps)))


def fake_batch(state: State, G: nn.Module, n: int) -> tuple[Tensor, Tensor]:
    """``(G(z, y), y)`` with z ~ N(0, I) and y uniform on [0, K), both drawn from the run's generator."""
    y = random_labels(n, G.num_classes, state.generator, state.device)
    return G(state.randn(n, G.z_dim), y), y


def projection(psi: Tensor, phi: Tensor, v: Tensor, y: Tensor) -> Tensor:
    r"""The projection discriminator's output :math:`D(x, y) = \psi(\phi(x)) + \langle V_y, \phi(x)\rangle`.

    Miyato & Koyama 2018 (one-hot y): the log-density-ratio model
    :math:`r(y|x) + r(x)` with a log-linear :math:`p(y|x)`.

    Args:
        psi: (B,) the label-free term :math:`\psi(\phi(x))`.
        phi: (B, F) features :math:`\phi(x)`.
        v: (K, F) class embeddings :math:`V`.
        y: (B,) labels in [0, K).
    Returns:
        (B,) outputs.
    """
    if phi.ndim != 2 or v.ndim != 2 or phi.shape[1] != v.shape[1] or psi.shape != (phi.shape[0],):
        raise ValueError(f"psi (B,), phi (B, F) and v (K, F) must agree, got {tuple(psi.shape)}, "
                         f"{tuple(phi.shape)}, {tuple(v.shape)}")
    check_labels(y, phi.shape[0], v.shape[0], "y")
    return psi + (v[y] * phi).sum(dim=1)  # psi(phi(x)) + V_y . phi(x)


# ----------------------------------------------------------------------------- conditional batch norm


class ConditionalBatchNorm(nn.Module):
    r"""Class-conditional batch norm: :math:`\gamma_y \hat x + \beta_y`, :math:`\hat x` normalized with
    statistics shared across classes.

    ``gain`` (K, C) starts at 1 and ``bias`` (K, C) at 0, so a new layer is plain batch norm for every
    label (as the authors' ``CategoricalConditionalBatchNormalization``). Works on (B, C) and
    (B, C, H, W) inputs.
    """

    def __init__(self, num_features: int, num_classes: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.num_features = check_positive_int("num_features", num_features)
        self.num_classes = check_num_classes(num_classes)
        self.bn = nn.BatchNorm1d(num_features, eps=eps, momentum=momentum, affine=False)  # shared statistics
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)  # gamma_y = 1
        nn.init.zeros_(self.bias.weight)  # beta_y = 0

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.ndim not in (2, 4) or x.shape[1] != self.num_features:
            raise ValueError(f"x must have shape (B, {self.num_features}) or (B, {self.num_features}, H, W), "
                             f"got {tuple(x.shape)}")
        check_labels(y, x.shape[0], self.num_classes, "y")
        x_hat = F.batch_norm(x, self.bn.running_mean, self.bn.running_var, None, None,
                             self.training or not self.bn.track_running_stats, self.bn.momentum, self.bn.eps)
        shape = (x.shape[0], self.num_features) + (1,) * (x.ndim - 2)  # (B, C[, 1, 1])
        return self.gain(y).view(shape) * x_hat + self.bias(y).view(shape)  # gamma_y x_hat + beta_y


# ----------------------------------------------------------------------------- generators


class CondMLPGenerator(nn.Module):
    """G for toy data: ``[z ; embed(y)]`` (B, z_dim + E) -> MLP -> x (B, out_dim)."""

    def __init__(self, num_classes: int, z_dim: int = 2, out_dim: int = 2, hidden: int = 64, depth: int = 3,
                 embed_dim: int = 4, act: Callable[[], nn.Module] = lambda: nn.LeakyReLU(0.2)):
        super().__init__()
        self.num_classes, self.z_dim = check_num_classes(num_classes), check_positive_int("z_dim", z_dim)
        self.embed = nn.Embedding(num_classes, check_positive_int("embed_dim", embed_dim))
        layers: list[nn.Module] = []
        width = z_dim + embed_dim
        for _ in range(check_positive_int("depth", depth)):
            layers += [nn.Linear(width, check_positive_int("hidden", hidden)), act()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, check_positive_int("out_dim", out_dim)))

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        check_labels(y, z.shape[0], self.num_classes, "y")
        return self.net(torch.cat([z, self.embed(y)], dim=1))  # G([z ; e_y])


class CondConvGenerator(nn.Module):
    """G for 8x8 images: ``[z ; embed(y)]`` -> (2w, 2, 2) -> two stride-2 transposed convs -> (C, 8, 8).

    The layers of :class:`ganref.nets.ConvGenerator`; with ``cbn=True`` each batch norm is a
    :class:`ConditionalBatchNorm` (the label then enters at every layer), else plain batch norm.
    """

    def __init__(self, num_classes: int = 10, z_dim: int = 32, channels: int = 1, width: int = 32,
                 embed_dim: int = 16, cbn: bool = True):
        super().__init__()
        self.num_classes, self.z_dim = check_num_classes(num_classes), check_positive_int("z_dim", z_dim)
        self.width, self.cbn = check_positive_int("width", width), bool(cbn)
        self.embed = nn.Embedding(num_classes, check_positive_int("embed_dim", embed_dim))
        norm = (lambda c: ConditionalBatchNorm(c, num_classes)) if cbn else nn.BatchNorm1d
        self.fc = nn.Linear(z_dim + embed_dim, 2 * width * 2 * 2)
        self.norm1 = norm(2 * width * 2 * 2)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)  # (B, w, 4, 4)
        self.norm2 = norm(width) if cbn else nn.BatchNorm2d(width)
        self.up2 = nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1)  # (B, C, 8, 8)

    def _norm(self, layer: nn.Module, h: Tensor, y: Tensor) -> Tensor:
        return layer(h, y) if self.cbn else layer(h)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        check_labels(y, z.shape[0], self.num_classes, "y")
        h = F.relu(self._norm(self.norm1, self.fc(torch.cat([z, self.embed(y)], dim=1)), y))  # (B, 8w)
        h = F.relu(self._norm(self.norm2, self.up1(h.view(-1, 2 * self.width, 2, 2)), y))  # (B, w, 4, 4)
        return torch.tanh(self.up2(h))  # (B, C, 8, 8) in [-1, 1]


# ----------------------------------------------------------------------------- discriminator


class CondDiscriminator(nn.Module):
    r"""``D(x, y) -> (adv (B,), logits)``: trunk :math:`\phi`, output :math:`\psi` and one label head.

    Args:
        trunk: maps (B, in_channels + [E if concat], ...) to features (B, feat_dim).
        feat_dim: F, the width of :math:`\phi(x)`.
        num_classes: K.
        head: one of :data:`HEADS` (see the module docstring); ``logits`` is ``None`` for ``concat``
            and ``projection``, else (B, K), (B, 2K) or (B, K+1).
        embed_dim: E, the label channels of the ``concat`` head.
        in_shape: the shape of one input x, e.g. (1, 8, 8) or (2,).
    """

    def __init__(self, trunk: nn.Module, feat_dim: int, num_classes: int, head: str, in_shape: tuple[int, ...],
                 embed_dim: int = 4):
        super().__init__()
        self.num_classes = check_num_classes(num_classes)
        self.head = check_choice("head", head, HEADS)
        self.in_shape = tuple(in_shape)
        self.trunk = trunk
        self.psi = nn.Linear(check_positive_int("feat_dim", feat_dim), 1)  # psi(phi(x))
        # label embeddings act on one-hot y without bias, so SN normalizes them as SNEmbedID does
        self.embed = nn.Linear(num_classes, embed_dim, bias=False) if head == "concat" else None
        self.v = nn.Linear(num_classes, feat_dim, bias=False) if head == "projection" else None  # V^T (F, K)
        outputs = {"ac": num_classes, "adc": 2 * num_classes, "am": num_classes + 1}.get(head)
        self.classifier = nn.Linear(feat_dim, outputs) if outputs else None

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        if x.ndim != 1 + len(self.in_shape) or tuple(x.shape[1:]) != self.in_shape:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.in_shape))}), got {tuple(x.shape)}")
        if y is None and self.head in ("concat", "projection"):
            raise ValueError(f"the {self.head!r} discriminator reads the label: call D(x, y) with labels y")
        if y is not None:
            check_labels(y, x.shape[0], self.num_classes, "y")
        if self.embed is not None:  # cGAN: [x ; e_y] with e_y broadcast over the pixels
            e = self.embed(F.one_hot(y, self.num_classes).to(x.dtype))  # (B, E)
            x = torch.cat([x, e.view(*e.shape, *(1,) * (x.ndim - 2)).expand(-1, -1, *x.shape[2:])], dim=1)
        phi = self.trunk(x)  # (B, F)
        psi = self.psi(phi).squeeze(1)  # (B,)
        if self.v is not None:  # D = psi(phi(x)) + <V_y, phi(x)>
            return projection(psi, phi, self.v.weight.T, y), None
        return psi, (self.classifier(phi) if self.classifier is not None else None)


def conv_discriminator(head: str, num_classes: int = 10, channels: int = 1, width: int = 32,
                       embed_dim: int = 4) -> CondDiscriminator:
    """The 8x8 D of :class:`ganref.nets.ConvDiscriminator` as a trunk (features (B, 16 w)) with ``head``."""
    extra = check_positive_int("embed_dim", embed_dim) if head == "concat" else 0
    w = check_positive_int("width", width)
    trunk = nn.Sequential(
        nn.Conv2d(channels + extra, w, 3, stride=1, padding=1), nn.LeakyReLU(0.2),  # (B, w, 8, 8)
        nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 2w, 4, 4)
        nn.Conv2d(2 * w, 4 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, 4w, 2, 2)
        nn.Flatten(),  # (B, 16w): phi(x)
    )
    return CondDiscriminator(trunk, 16 * w, num_classes, head, (channels, 8, 8), embed_dim)


def mlp_discriminator(head: str, num_classes: int, in_shape: tuple[int, ...] = (2,), hidden: int = 64,
                      depth: int = 3, embed_dim: int = 4,
                      act: Callable[[], nn.Module] = lambda: nn.LeakyReLU(0.2)) -> CondDiscriminator:
    """An MLP trunk on the flattened input (``depth`` layers of ``hidden`` units; features (B, hidden)) with
    ``head``: toy points (``in_shape=(2,)``) or small images (``(1, 8, 8)``; the ``concat`` head then adds E
    label channels, i.e. 64 E inputs)."""
    in_shape = tuple(check_positive_int("in_shape", s) for s in in_shape)
    extra = check_positive_int("embed_dim", embed_dim) if head == "concat" else 0
    width = (in_shape[0] + extra) * math.prod(in_shape[1:])
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(check_positive_int("depth", depth)):
        layers += [nn.Linear(width, check_positive_int("hidden", hidden)), act()]
        width = hidden
    return CondDiscriminator(nn.Sequential(*layers), hidden, num_classes, head, in_shape, embed_dim)


# ----------------------------------------------------------------------------- labeled batches


def labeled_batch_sampler(x: Tensor | Callable[[Tensor, torch.Generator], Tensor], labels: Tensor | int,
                          batch_size: int, device: torch.device | str = "cpu",
                          d_steps: int = 1) -> Callable[[torch.Generator], tuple[Tensor, Tensor]]:
    """Make ``sample(generator) -> (x, y)`` for :func:`ganref.train.fit`, ``d_steps * batch_size`` rows each.

    Args:
        x: a tensor (N, ...) of examples drawn with replacement together with ``labels`` (N,), or a
            class-conditional sampler ``f(y, generator) -> x`` (toy mixtures), then ``labels`` is K and
            the labels are drawn uniformly.
        labels: (N,) integer labels of ``x``, or K for a sampler.
        batch_size: rows per discriminator update, B.
        d_steps: discriminator updates per step (the step splits the rows with :func:`ganref.data.split_batch`).
    Returns:
        the sampler, with a ``fingerprint`` of the data for :func:`ganref.train.fit`'s resume check.
    """
    rows = check_positive_int("batch_size", batch_size) * check_positive_int("d_steps", d_steps)
    if isinstance(x, Tensor):
        check_labels(labels, len(x), None, "labels")
        if len(x) == 0:
            raise ValueError("x must hold at least one example")

        def sample(generator: torch.Generator) -> tuple[Tensor, Tensor]:
            idx = torch.randint(len(x), (rows,), generator=generator)
            return x[idx].to(device), labels[idx].to(device)
        fingerprint = f"tensor {tuple(x.shape)} sha256:{_digest(x)} labels sha256:{_digest(labels)}"
    elif callable(x):
        k = check_num_classes(labels)

        def sample(generator: torch.Generator) -> tuple[Tensor, Tensor]:
            y = torch.randint(k, (rows,), generator=generator)
            return x(y, generator).to(device), y.to(device)
        owner = " ".join(repr(getattr(x, "__self__", "")).split())  # e.g. the ClassMixture of a bound .sample
        fingerprint = f"sampler {getattr(x, '__qualname__', type(x).__name__)} of {k} classes {owner}"
    else:
        raise ValueError(f"x must be a tensor (N, ...) or a sampler f(y, generator), got {type(x).__name__}")
    sample.fingerprint = f"{fingerprint}, {rows} rows per step"  # type: ignore[attr-defined]
    return sample


def fit_conditional(step_fn: Callable, make_optimizers: Callable, cfg: object, make_G: Callable[[], nn.Module],
                    make_D: Callable[[], nn.Module], data: Callable, steps: int, seed: int, *,
                    spectral_norm: bool = True, ema_decay: float | None = None, device: torch.device | str = "cpu",
                    callbacks: tuple = (), progress: bool = False, desc: str = "train") -> State:
    """Train a conditional GAN from scratch: seed everything with ``seed``, build G and D (spectral norm on
    every Linear and Conv2d of D when ``spectral_norm``), ``make_optimizers(G, D, cfg)``, then
    :func:`ganref.train.fit` ``step_fn(state, batch)`` for ``steps`` steps. With ``ema_decay`` the state
    also keeps ``ema["G"]``, an :class:`ganref.train.EMA` of G's weights. Returns the state."""
    gen = seed_everything(check_positive_int("seed", seed, minimum=0))
    G, D = make_G().to(device), make_D()
    if spectral_norm:
        apply_spectral_norm(D, generator=torch.Generator().manual_seed(seed))
    D = D.to(device)
    state = State({"G": G, "D": D}, make_optimizers(G, D, cfg), gen, torch.device(device),
                  ema={} if ema_decay is None else {"G": EMA(G, ema_decay)})
    return fit(step_fn, state, data, steps, callbacks=callbacks, progress=progress, desc=desc)
