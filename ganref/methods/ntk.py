r"""The neural tangent kernel view of GANs: the discriminator as a kernel machine.

Paper card
----------
**A Neural Tangent Kernel Perspective of GANs.** Jean-Yves Franceschi, Emmanuel de Bézenac,
Ibrahim Ayed, Mickaël Chen, Sylvain Lamprier, Patrick Gallinari. ICML 2022, arXiv:2106.05566.
Kernels from Jacot, Gabriel & Hongler 2018 (arXiv:1806.07572), Arora et al. 2019
(arXiv:1904.11955), Cho & Saul 2009 (arc-cosine kernels).

Idea. Trained by gradient flow at infinite width, a discriminator moves in function space along its
neural tangent kernel :math:`\Theta`. On real points :math:`X_r` (:math:`n_r` of them) and generated
points :math:`X_g` (:math:`n_g`), with :math:`X = X_r \cup X_g`, the discriminator minimizes

.. math::  \mathcal{L}(f) = \frac{1}{n_r}\sum_{x \in X_r} \ell_r(f(x)) + \frac{1}{n_g}\sum_{x \in X_g} \ell_g(f(x)),
           \qquad \partial_t f_t(x) = -\eta \sum_{x_j \in X} \Theta(x, x_j)\, m_j\, \ell_j'(f_t(x_j)),

with :math:`m_j = 1/n_r` on real and :math:`1/n_g` on generated points. The losses (``loss=``),
each with the generator's per-sample loss :math:`c(u)`:

- ``"ipm"``: :math:`\ell_r(u) = -u`, :math:`\ell_g(u) = u`; :math:`c(u) = -u`.
- ``"lsgan"``: :math:`\ell_r(u) = \frac12 (u - 1)^2`, :math:`\ell_g(u) = \frac12 (u + 1)^2` (targets
  +1 / -1); :math:`c(u) = \frac12 (u - 1)^2`.
- ``"vanilla"``: :math:`\ell_r(u) = -\log\sigma(u)`, :math:`\ell_g(u) = -\log(1 - \sigma(u))`
  (binary cross-entropy on logits); :math:`c(u) = -\log\sigma(u)` (non-saturating).

IPM gives :math:`f_t = f_0 + \eta t\,(\frac{1}{n_r}\sum_{X_r}\Theta(\cdot, x) - \frac{1}{n_g}\sum_{X_g}\Theta(\cdot, x))`,
the MMD witness function of the kernel :math:`\Theta`. Least squares has a closed form, the logistic
(vanilla) loss is integrated numerically. Generated points then move down the generator's loss
through the trained discriminator, :math:`x \leftarrow x - \mathrm{lr}\,\nabla_x c(f_t(x))`, with
:math:`f_t` held fixed (no gradient through its training set): the paper's GAN(TK)\ :sup:`2`
particle experiment, with no generator network.

Deviations from the paper:

- :math:`f_0 = 0` unless ``f0`` is given (the random initial function of an infinite-width network
  is a Gaussian process; we drop it, as a centred initialization would).
- Least squares uses :math:`\varphi(\lambda) = (1 - e^{-\eta t \lambda})/\lambda` with its limit
  :math:`\varphi(0) = \eta t` where a pseudo-inverse would put 0: both are exact on the null space
  of :math:`\Theta`, ours also for tiny eigenvalues. The logistic flow uses fixed-step RK4.
- At a query point equal to a training point the ReLU NTK has a cone-shaped kink; its gradient
  there is the symmetric derivative (the limit of central differences), to which the cone adds
  nothing.
- The vanilla generator loss is the non-saturating one. :class:`ParticleConfig`'s defaults are
  sized for a CPU chapter, not taken from the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from ganref.metrics import sliced_wasserstein
from ganref.utils import check_choice, check_number, check_positive, check_positive_int

LOSSES = ("ipm", "lsgan", "vanilla")
KernelFn = Callable[[Tensor, Tensor], Tensor]
_CHUNK_BYTES = 2**28  # default memory for one chunk of per-sample Jacobians (256 MiB)
_ARCCOS_KINK = 1e-12  # |cos| above 1 - this: the angle's gradient is set to 0 (kink of the ReLU NTK)


# ----------------------------------------------------------------------------------------------
# Empirical NTK of a finite network
# ----------------------------------------------------------------------------------------------

def empirical_ntk(model: nn.Module, x1: Tensor, x2: Tensor | None = None, *, chunk_size: int | None = None,
                  dtype: torch.dtype | None = None) -> Tensor:
    r"""Empirical NTK :math:`\Theta(x_1, x_2) = J(x_1) J(x_2)^\top` of a scalar-output model.

    :math:`J(x) = \partial f_\theta(x) / \partial\theta` over every trainable parameter, by
    ``torch.func`` (``vmap(jacrev(functional_call))``). Jacobians are held for at most two chunks of
    ``chunk_size`` samples at a time, so memory is ``O(chunk_size * n_params)`` whatever N1, N2; the
    price of small chunks is time, as each chunk of ``x2`` is recomputed for every chunk of ``x1``.
    Layers whose output depends on the batch (batch norm in train mode) are not supported.

    Args:
        model: maps (B, ...) to (B,) or (B, 1).
        x1: (N1, ...) inputs; x2: (N2, ...) inputs with the same feature shape, or None for ``x1``.
        chunk_size: samples per Jacobian chunk; None picks the largest chunk whose Jacobian takes at
            most 256 MiB (e.g. 127 samples for a 3x512 MLP in float32).
        dtype: compute in this dtype (e.g. ``torch.float64``) on a cast *copy* of the parameters;
            None keeps the parameters' dtype. Inputs are cast to the compute dtype.
    Returns:
        (N1, N2) kernel matrix; exactly symmetric when ``x2`` is None.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    _check_batch("x1", x1)
    symmetric = x2 is None or x2 is x1
    if x2 is None:
        x2 = x1
    _check_batch("x2", x2)
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(f"x1 has feature shape {tuple(x1.shape[1:])} but x2 has {tuple(x2.shape[1:])}: "
                         "both must be (N, *F) with the same F")
    if dtype is not None and not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype such as torch.float64, got {dtype}")
    params = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameters: its NTK is zero")
    buffers = {n: b.detach() for n, b in model.named_buffers()}
    if dtype is not None:  # cast copies; the model itself is untouched
        params = {n: p.to(dtype) for n, p in params.items()}
        buffers = {n: b.to(dtype) if b.is_floating_point() else b for n, b in buffers.items()}
    p0 = next(iter(params.values()))
    n_params = sum(p.numel() for p in params.values())
    if chunk_size is None:  # one chunk's Jacobian within _CHUNK_BYTES
        chunk_size = max(1, _CHUNK_BYTES // (n_params * p0.element_size()))
    chunk_size = check_positive_int("chunk_size", chunk_size)
    x1 = x1.detach().to(p0.device, p0.dtype)
    x2 = x1 if symmetric else x2.detach().to(p0.device, p0.dtype)

    with torch.no_grad():  # one scalar per sample, else the "NTK" is not a matrix
        probe = functional_call(model, (params, buffers), (x1[:2],))
    if tuple(probe.shape) not in ((len(x1[:2]),), (len(x1[:2]), 1)):
        raise ValueError(f"model must return one scalar per sample, shape (B,) or (B, 1); on a batch of "
                         f"{len(x1[:2])} it returned {tuple(probe.shape)}")

    def f_one(p: dict[str, Tensor], x: Tensor) -> Tensor:  # f_theta(x) for one sample x (*F)
        return functional_call(model, (p, buffers), (x.unsqueeze(0),)).reshape(())

    jac = vmap(jacrev(f_one), in_dims=(None, 0))  # x (c, *F) -> {name: (c, *param.shape)}

    def block(ja: dict[str, Tensor], jb: dict[str, Tensor]) -> Tensor:  # sum_p J_a,p J_b,p^T
        return sum(a.flatten(1) @ b.flatten(1).T for a, b in zip(ja.values(), jb.values()))

    n1, n2 = len(x1), len(x2)
    theta = x1.new_zeros(n1, n2)
    for i in range(0, n1, chunk_size):
        j1 = jac(params, x1[i:i + chunk_size])
        for j in range(i if symmetric else 0, n2, chunk_size):
            if symmetric and j == i:
                b = block(j1, j1)
                theta[i:i + chunk_size, j:j + chunk_size] = (b + b.T) / 2
                continue
            b = block(j1, jac(params, x2[j:j + chunk_size]))
            theta[i:i + chunk_size, j:j + chunk_size] = b
            if symmetric:
                theta[j:j + chunk_size, i:i + chunk_size] = b.T
    return theta


def _check_batch(name: str, x: object) -> None:
    if not isinstance(x, Tensor) or x.ndim < 2 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a floating tensor of shape (N, *F) with a batch dimension, got {got}")


# ----------------------------------------------------------------------------------------------
# Infinite width: ReLU network in NTK parameterization
# ----------------------------------------------------------------------------------------------

class NTKMLP(nn.Module):
    r"""ReLU MLP in NTK parameterization: x (B, in_dim) -> f(x) (B,).

    ``depth`` hidden layers of ``width`` units, then a scalar readout. Every layer computes
    :math:`h' = \frac{w_{std}}{\sqrt{fan\_in}} W h + b_{std} b` with :math:`W, b \sim N(0, 1)`,
    so its empirical NTK tends to :func:`relu_ntk` as ``width`` grows (Jacot et al. 2018).
    """

    def __init__(self, in_dim: int, width: int, depth: int, w_std: float = 1.0, b_std: float = 0.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.in_dim = check_positive_int("in_dim", in_dim)
        check_positive_int("width", width)
        self.depth = check_positive_int("depth", depth)
        self.w_std, self.b_std = _check_stds(w_std, b_std)
        dims = [in_dim] + [width] * depth + [1]
        self.weights = nn.ParameterList(nn.Parameter(torch.randn(o, i, generator=generator))
                                        for i, o in zip(dims[:-1], dims[1:]))
        self.biases = nn.ParameterList(nn.Parameter(torch.randn(o, generator=generator)) for o in dims[1:])

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        h = x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = self.w_std / math.sqrt(w.shape[1]) * h @ w.T + self.b_std * b  # NTK-parameterized Dense
            if layer < self.depth:
                h = torch.relu(h)
        return h.squeeze(1)  # (B,)


def relu_ntk(x1: Tensor, x2: Tensor | None, depth: int, w_std: float = 1.0, b_std: float = 0.0) -> Tensor:
    r"""Infinite-width NTK of :class:`NTKMLP` (neural-tangents' ``stax`` convention), float64.

    Recursion over the ``depth + 1`` Dense layers (Jacot et al. 2018, Arora et al. 2019), with
    :math:`(u, v) \sim N(0, [[\Sigma^l(x,x), \Sigma^l(x,x')], [\Sigma^l(x,x'), \Sigma^l(x',x')]])`:

    .. math::  \Sigma^1 = \Theta^1 = w^2\, x \cdot x' / d + b^2, \qquad
               \Sigma^{l+1} = w^2\, E[\mathrm{relu}(u)\,\mathrm{relu}(v)] + b^2, \qquad
               \Theta^{l+1} = \Sigma^{l+1} + w^2\, E[\mathrm{relu}'(u)\,\mathrm{relu}'(v)]\, \Theta^l,

    and the expectations are Cho & Saul's arc-cosine kernels of degree 1 and 0: with
    :math:`\cos\theta = \Sigma^l(x,x') / \sqrt{\Sigma^l(x,x)\Sigma^l(x',x')}`,
    :math:`E[\mathrm{relu}(u)\mathrm{relu}(v)] = \frac{\sqrt{\Sigma^l(x,x)\Sigma^l(x',x')}}{2\pi}
    (\sin\theta + (\pi - \theta)\cos\theta)` and :math:`E[\mathrm{relu}'(u)\mathrm{relu}'(v)] =
    \frac{\pi - \theta}{2\pi}`. Differentiable in both inputs (see the module's deviations at x = x').

    Args:
        x1: (N1, d); x2: (N2, d) or None for ``x1``.
        depth: number of hidden ReLU layers, >= 1.
        w_std, b_std: weight and bias standard deviations of every layer.
    Returns:
        (N1, N2) float64 kernel :math:`\Theta^{depth+1}`.
    """
    return _relu_kernels(x1, x2, depth, w_std, b_std)[1]


def relu_nngp(x1: Tensor, x2: Tensor | None, depth: int, w_std: float = 1.0, b_std: float = 0.0) -> Tensor:
    r"""Infinite-width NNGP kernel :math:`\Sigma^{depth+1}` of :class:`NTKMLP` (the covariance of its
    output at initialization), float64; same recursion and arguments as :func:`relu_ntk`."""
    return _relu_kernels(x1, x2, depth, w_std, b_std)[0]


def _relu_kernels(x1: Tensor, x2: Tensor | None, depth: int, w_std: float, b_std: float) -> tuple[Tensor, Tensor]:
    depth = check_positive_int("depth", depth)
    w_std, b_std = _check_stds(w_std, b_std)
    x2 = x1 if x2 is None else x2
    for name, x in (("x1", x1), ("x2", x2)):
        if not isinstance(x, Tensor) or x.ndim != 2:
            raise ValueError(f"{name} must be a tensor of shape (N, d), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"x1 has {x1.shape[1]} features but x2 has {x2.shape[1]}: both must be (N, d) with the same d")
    x1, x2 = x1.to(torch.float64), x2.to(torch.float64)
    w2, b2, d = w_std ** 2, b_std ** 2, x1.shape[1]
    sigma = w2 * (x1 @ x2.T) / d + b2  # Sigma^1(x, x'), (N1, N2)
    q1 = w2 * (x1 * x1).sum(1) / d + b2  # Sigma^1(x, x), (N1,)
    q2 = w2 * (x2 * x2).sum(1) / d + b2  # Sigma^1(x', x'), (N2,)
    theta = sigma  # Theta^1 = Sigma^1
    for _ in range(depth):
        norm = torch.sqrt(q1[:, None] * q2[None, :]).clamp_min(1e-300)  # sqrt(Sigma(x,x) Sigma(x',x'))
        cos = (sigma / norm).clamp(-1.0, 1.0)
        angle = _arccos(cos)
        e_relu = norm * (torch.sin(angle) + (math.pi - angle) * cos) / (2 * math.pi)  # arc-cosine, degree 1
        e_step = (math.pi - angle) / (2 * math.pi)  # arc-cosine, degree 0
        sigma_next = w2 * e_relu + b2  # Sigma^{l+1}
        theta = sigma_next + w2 * e_step * theta  # Theta^{l+1}
        sigma = sigma_next
        q1, q2 = w2 * q1 / 2 + b2, w2 * q2 / 2 + b2  # E[relu(u)^2] = Sigma(x,x) / 2 on the diagonal
    return sigma, theta


def _arccos(c: Tensor) -> Tensor:
    """arccos with exact values; its gradient is 0 where |c| > 1 - 1e-12 (the kink at x = x').

    There the angle behaves like |x - x'|, a cone with no derivative; setting its gradient to 0 gives
    the kernel's symmetric derivative instead of NaN (arccos' is infinite at 1).
    """
    smooth = c.abs() < 1 - _ARCCOS_KINK
    c_safe = torch.where(smooth, c, torch.zeros_like(c))  # keeps the unused branch's gradient finite
    return torch.where(smooth, torch.arccos(c_safe), torch.arccos(c).detach())


def _check_stds(w_std: float, b_std: float) -> tuple[float, float]:
    if not (isinstance(w_std, (int, float)) and math.isfinite(w_std) and w_std > 0):
        raise ValueError(f"w_std must be a finite number > 0, got {w_std!r}")
    if not (isinstance(b_std, (int, float)) and math.isfinite(b_std) and b_std >= 0):
        raise ValueError(f"b_std must be a finite number >= 0, got {b_std!r}")
    return float(w_std), float(b_std)


# ----------------------------------------------------------------------------------------------
# The infinite-width discriminator after training time t
# ----------------------------------------------------------------------------------------------

def discriminator_flow(kernel_fn: KernelFn, x_real: Tensor, x_fake: Tensor, x_query: Tensor, loss: str,
                       t: float, eta: float = 1.0, f0: Callable[[Tensor], Tensor] | None = None,
                       ode_steps: int | None = None) -> Tensor:
    r"""The discriminator :math:`f_t` after kernel gradient flow for time ``t``, at ``x_query``.

    Trained on ``x_real`` and ``x_fake`` (both treated as constants) with the loss of the module
    table, from :math:`f_0` (0 or ``f0``). The result is differentiable in ``x_query`` (and in what
    ``kernel_fn`` and ``f0`` depend on), which is how particles take their gradients.

    - ``ipm``: :math:`f_t = f_0 + \eta t\, \Theta(\cdot, X) w`, :math:`w_j = 1/n_r` real, :math:`-1/n_g` fake.
    - ``lsgan``: targets :math:`y = +1` real, :math:`-1` fake; with :math:`M = \mathrm{diag}(m)`,
      :math:`\tilde\Theta = M^{1/2}\Theta(X,X)M^{1/2} = U\Lambda U^\top`,
      :math:`f_t = f_0 - \Theta(\cdot, X) M^{1/2} U \varphi(\Lambda) U^\top M^{1/2} (f_0(X) - y)`,
      :math:`\varphi(\lambda) = (1 - e^{-\eta t\lambda})/\lambda`, :math:`\varphi(0) = \eta t`.
      With :math:`n_r = n_g = n` this is :math:`f_0 + \Theta(\cdot,X)\Theta^{-1}(I - e^{-\eta t\Theta/n})(y - f_0)`.
    - ``vanilla``: RK4 on :math:`\dot f(X) = -\eta\Theta(X,X) M g`, :math:`\dot a = g`,
      :math:`g = \sigma(f(X)) - 1_{real}`; then :math:`f_t = f_0 - \eta\,\Theta(\cdot, X) M a_t`.

    Args:
        kernel_fn: ``kernel_fn(a, b) -> (Na, Nb)``, e.g. ``functools.partial(relu_ntk, depth=3)``.
        x_real: (n_r, d); x_fake: (n_g, d); x_query: (N, d).
        loss: one of ``"ipm"``, ``"lsgan"``, ``"vanilla"``.
        t: training time >= 0; eta: learning rate > 0.
        f0: the initial discriminator, ``f0(x) -> (N,)``; None for 0.
        ode_steps: RK4 steps (vanilla only); None picks enough for stability, at least 64.
    Returns:
        (N,) float64 values :math:`f_t(x_{query})`.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
    if not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0):
        raise ValueError(f"t must be a finite number >= 0, got {t!r}")
    if not (isinstance(eta, (int, float)) and math.isfinite(eta) and eta > 0):
        raise ValueError(f"eta must be a finite number > 0, got {eta!r}")
    for name, x in (("x_real", x_real), ("x_fake", x_fake), ("x_query", x_query)):
        if not isinstance(x, Tensor) or x.ndim != 2 or len(x) == 0:
            raise ValueError(f"{name} must be a non-empty tensor of shape (N, d), got "
                             f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not x_real.shape[1] == x_fake.shape[1] == x_query.shape[1]:
        raise ValueError(f"x_real, x_fake and x_query have {x_real.shape[1]}, {x_fake.shape[1]} and "
                         f"{x_query.shape[1]} features: all must be (N, d) with the same d")
    n_r, n_g, n_q = len(x_real), len(x_fake), len(x_query)
    x_train = torch.cat([x_real, x_fake]).detach().to(torch.float64)  # X, (n, d)
    k_xx = _kernel(kernel_fn, x_train, x_train)  # Theta(X, X), (n, n)
    k_qx = _kernel(kernel_fn, x_query.to(torch.float64), x_train)  # Theta(x_query, X), (N, n)
    opts = dict(dtype=torch.float64, device=k_xx.device)
    m = torch.cat([torch.full((n_r,), 1.0 / n_r, **opts), torch.full((n_g,), 1.0 / n_g, **opts)])
    is_real = torch.cat([torch.ones(n_r, **opts), torch.zeros(n_g, **opts)])
    f0_x = _initial(f0, x_train, "x_train").detach() if f0 is not None else torch.zeros(n_r + n_g, **opts)
    f0_q = _initial(f0, x_query, "x_query") if f0 is not None else torch.zeros(n_q, **opts)

    if loss == "ipm":  # linear in t: eta t times the MMD witness function of Theta
        w = m * (2 * is_real - 1)  # -dL/df(X): +1/n_r real, -1/n_g fake
        return f0_q + eta * t * k_qx @ w
    if loss == "lsgan":  # exact solution of the linear ODE df/dt = -eta Theta M (f - y)
        y = 2 * is_real - 1
        sqrt_m = m.sqrt()
        lam, u = torch.linalg.eigh(sqrt_m[:, None] * k_xx * sqrt_m[None, :])  # M^1/2 Theta M^1/2 = U Lam U^T
        lam = lam.clamp_min(0.0)
        phi = torch.where(lam > 0, -torch.expm1(-eta * t * lam) / torch.where(lam > 0, lam, 1.0),
                          torch.full_like(lam, eta * t))  # (1 - exp(-eta t lam)) / lam, -> eta t at 0
        g0 = sqrt_m * (f0_x - y)
        return f0_q - k_qx @ (sqrt_m * (u @ (phi * (u.T @ g0))))
    # vanilla: integrate f(X) and a = int_0^t g ds together, g = sigma(f(X)) - 1[real]
    if ode_steps is None:
        lam_max = torch.linalg.eigvalsh(m.sqrt()[:, None] * k_xx * m.sqrt()[None, :])[-1].item()
        ode_steps = max(64, math.ceil(eta * t * max(lam_max, 0.0) / 4 / 0.5))  # h * eta * lam_max * sigma' <= 0.5
    ode_steps = check_positive_int("ode_steps", ode_steps)

    def rhs(f: Tensor) -> tuple[Tensor, Tensor]:
        g = torch.sigmoid(f) - is_real  # dl/du of -log sigma (real) and -log(1 - sigma) (fake)
        return -eta * k_xx @ (m * g), g

    h = t / ode_steps
    f, a = f0_x, torch.zeros_like(f0_x)
    for _ in range(ode_steps):  # classical RK4 on (f, a)
        k1f, k1a = rhs(f)
        k2f, k2a = rhs(f + h / 2 * k1f)
        k3f, k3a = rhs(f + h / 2 * k2f)
        k4f, k4a = rhs(f + h * k3f)
        f = f + h / 6 * (k1f + 2 * k2f + 2 * k3f + k4f)
        a = a + h / 6 * (k1a + 2 * k2a + 2 * k3a + k4a)
    return f0_q - eta * k_qx @ (m * a)


def _kernel(kernel_fn: KernelFn, a: Tensor, b: Tensor) -> Tensor:
    k = kernel_fn(a, b)
    if not isinstance(k, Tensor) or tuple(k.shape) != (len(a), len(b)):
        got = tuple(k.shape) if isinstance(k, Tensor) else type(k).__name__
        raise ValueError(f"kernel_fn(a, b) must return a ({len(a)}, {len(b)}) tensor, got {got}")
    return k.to(torch.float64)


def _initial(f0: Callable[[Tensor], Tensor], x: Tensor, name: str) -> Tensor:
    out = f0(x)
    if not isinstance(out, Tensor) or out.reshape(-1).shape != (len(x),):
        raise ValueError(f"f0({name}) must return one value per point, ({len(x)},), got "
                         f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}")
    return out.reshape(-1).to(torch.float64)


# ----------------------------------------------------------------------------------------------
# Particles: GAN(TK)^2 without a generator network
# ----------------------------------------------------------------------------------------------

def generator_loss(f_fake: Tensor, loss: str) -> Tensor:
    """Per-particle generator loss c(f) of the module docstring: -f, (f - 1)^2 / 2 or softplus(-f)."""
    if loss == "ipm":
        return -f_fake
    if loss == "lsgan":
        return 0.5 * (f_fake - 1) ** 2
    if loss == "vanilla":
        return F.softplus(-f_fake)  # -log sigma(f), non-saturating
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def particle_step(x_fake: Tensor, x_real: Tensor, kernel_fn: KernelFn, loss: str, lr: float,
                  t: float = 1.0, eta: float = 1.0, ode_steps: int | None = None) -> Tensor:
    r"""One generator step on particles: :math:`x_i \leftarrow x_i - \mathrm{lr}\,\nabla_x c(f_t(x))|_{x_i}`.

    :math:`f_t` is :func:`discriminator_flow` trained from :math:`f_0 = 0` on ``x_real`` and the
    current ``x_fake``; the gradient flows only through f's input (the discriminator is held fixed),
    by autograd through ``kernel_fn``.

    Args:
        x_fake: (n_g, d) particles; x_real: (n_r, d) target samples.
        kernel_fn, loss, t, eta, ode_steps: as in :func:`discriminator_flow`.
        lr: particle step size > 0.
    Returns:
        (n_g, d) moved particles, in ``x_fake``'s dtype.
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    x = x_fake.detach().to(torch.float64).requires_grad_(True)
    with torch.enable_grad():
        f = discriminator_flow(kernel_fn, x_real, x_fake.detach(), x, loss, t, eta, ode_steps=ode_steps)
        (grad,) = torch.autograd.grad(generator_loss(f, loss).sum(), x)  # per-particle gradients
    return (x - lr * grad).detach().to(x_fake.dtype)


@dataclass(frozen=True)
class ParticleConfig:
    """GAN(TK)^2 particle run: ReLU-NTK discriminator, trained for ``t`` per generator step."""

    # CPU-sized defaults chosen for the chapter, not the paper's (see Deviations above)
    loss: str = "ipm"  # one of LOSSES
    depth: int = 3  # hidden layers of the infinite-width ReLU network
    w_std: float = 1.0  # weight std of the NTK parametrization
    b_std: float = 1.0  # bias std (0 gives a kernel blind to the norm of x)
    t: float = 1.0  # discriminator training time per generator step
    eta: float = 1.0  # discriminator learning rate in the gradient flow
    lr: float = 1.0  # particle (generator) step size
    steps: int = 200  # generator steps
    record_every: int = 10  # particles and sliced W1 kept every this many steps

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_positive_int("depth", self.depth)
        check_positive("w_std", self.w_std)
        check_number("b_std", self.b_std, low=0)
        check_positive("t", self.t)
        check_positive("eta", self.eta)
        check_positive("lr", self.lr)
        check_positive_int("steps", self.steps)
        check_positive_int("record_every", self.record_every)


def particle_flow(x_fake: Tensor, x_real: Tensor, cfg: ParticleConfig, n_projections: int = 64,
                  seed: int = 0) -> dict[str, Tensor]:
    """Run ``cfg.steps`` particle steps with the ReLU NTK of ``cfg``; record every ``cfg.record_every``.

    Returns:
        ``{"step": (K,), "particles": (K, n_g, d), "sliced_wasserstein": (K,)}``, step 0 included.
    """
    steps, every = check_positive_int("steps", cfg.steps), check_positive_int("record_every", cfg.record_every)

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        return relu_ntk(a, b, cfg.depth, cfg.w_std, cfg.b_std)

    rec_step, rec_x, rec_sw, x = [], [], [], x_fake.detach()
    for s in range(steps + 1):
        if s % every == 0 or s == steps:
            rec_step.append(s)
            rec_x.append(x.clone())
            rec_sw.append(sliced_wasserstein(x, x_real, n_projections, seed))
        if s < steps:
            x = particle_step(x, x_real, kernel, cfg.loss, cfg.lr, cfg.t, cfg.eta)
    return {"step": torch.tensor(rec_step), "particles": torch.stack(rec_x), "sliced_wasserstein": torch.stack(rec_sw)}


