r"""Measurements of a network: operator norms, gradient norms, weight statistics, Lipschitz bounds.

What chapters 03 (WGAN), 04 (SN) and later ones measure about a discriminator, apart from any method.
Everything here reads a network without changing it (SN's power iteration is frozen while reading).

**The Singular Values of Convolutional Layers.** Hanie Sedghi, Vineet Gupta, Philip M. Long.
ICLR 2019. arXiv:1805.10408. A stride-1 convolution with circular padding on an n x n input
is block-diagonalised by the 2-D DFT: its singular values are those of the C_out x C_in matrices
``K_hat[:, :, p, q]`` with ``K_hat = FFT2(kernel zero-padded to n x n)``, over all n^2 frequencies.
:func:`conv_singular_values` computes them; :func:`conv_layer_operator_norm` gives the norm of a
layer as it is (zero padding, stride) with ARPACK.

With 1-Lipschitz activations, ``||f||_Lip <= prod_l sigma(W_l)`` (Miyato et al. 2018, Eq. 7). The
reshaped-kernel sigma that SN normalizes is *not* the operator norm of a convolution; the true norm
can be up to ``sqrt(kh kw)`` times larger (see :func:`lipschitz_upper_bound`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse.linalg import LinearOperator, svds
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ganref.layers import SN_LAYERS, SpectralNorm, _as_matrix, frozen_power_iteration
from ganref.losses import Critic, _check_no_batch_norm
from ganref.utils import check_positive


CONV_NORMS = ("bound", "reshaped")


def sigma_exact(weight: Tensor) -> Tensor:
    """The largest singular value of ``weight`` reshaped to (out, in * kh * kw), by SVD.

    Args:
        weight: (out, in) or (C_out, C_in, kh, kw).
    Returns:
        0-d tensor, the value that SN's power iteration estimates.
    """
    return torch.linalg.svdvals(_as_matrix(weight).detach())[0]


def _check_input_size(weight: Tensor, input_size: int | tuple[int, int]) -> tuple[int, int]:
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"weight must be a conv kernel of shape (C_out, C_in, kh, kw), got {shape}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) for s in size):
        raise ValueError(f"input_size must be an int or a pair (H, W) of ints, got {input_size!r}")
    kh, kw = weight.shape[2:]
    if size[0] < kh or size[1] < kw:
        raise ValueError(f"input_size {size} is smaller than the kernel ({kh}, {kw}): "
                         "the circular convolution needs H >= kh and W >= kw")
    return size


def conv_singular_values(weight: Tensor, input_size: int | tuple[int, int]) -> Tensor:
    """All singular values of a stride-1 2-D convolution with circular padding (Sedghi et al. 2019).

    The operator maps (C_in, H, W) to (C_out, H, W); it is the same for convolution and
    cross-correlation (PyTorch's convention) and for any circular shift of the output, since these
    change K_hat only by conjugation and unit-modulus phases per frequency.

    Args:
        weight: (C_out, C_in, kh, kw) kernel.
        input_size: H or (H, W), each at least the kernel's size.
    Returns:
        (H * W * min(C_out, C_in),) singular values, descending.
    """
    h, w = _check_input_size(weight, input_size)
    k_hat = torch.fft.fft2(weight.detach(), s=(h, w))  # (C_out, C_in, H, W), kernel zero-padded to H x W
    blocks = k_hat.permute(2, 3, 0, 1)  # (H, W, C_out, C_in): one matrix per frequency (Sedghi et al.)
    return torch.linalg.svdvals(blocks).flatten().sort(descending=True).values


def conv_operator_norm(weight: Tensor, input_size: int | tuple[int, int]) -> Tensor:
    """The operator 2-norm of a stride-1 circular 2-D convolution on ``input_size`` (0-d tensor)."""
    return conv_singular_values(weight, input_size)[0]


def _sn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SN_LAYERS)]


def layer_spectra(model: nn.Module) -> dict[str, Tensor]:
    """Singular values of every Linear/Conv2d weight as it acts in the forward pass (after SN).

    Convs are reshaped to (C_out, C_in kh kw), the matrix SN normalizes. Reading the weights does
    not advance the power iteration. Call it every few hundred steps and stack the values to see
    how the spectrum of each layer moves during training.

    Returns:
        ``{module name: (min(out, in * kh * kw),) float64 singular values, descending, on the CPU}``.
    """
    out = {}
    with frozen_power_iteration(model), torch.no_grad():
        for name, m in _sn_layers(model):
            out[name] = torch.linalg.svdvals(m.weight.flatten(1).double()).cpu()
    return out


def lipschitz_upper_bound(model: nn.Module, conv_norm: str = "bound") -> float:
    r"""The product of the layers' norms, Eq. (7) of Miyato et al.: ``prod_l ||W_l||``.

    It bounds the Lipschitz constant (for the l2 norm of flattened inputs) of a feed-forward
    chain of the model's Linear and Conv2d layers with 1-Lipschitz activations in between
    (ReLU, LeakyReLU with slope <= 1, tanh, flatten). Residual branches, normalization layers and
    attention break it; a module with its own parameters other than Linear/Conv2d is refused.

    Args:
        conv_norm: how a conv layer counts.
            ``"bound"``: ``sqrt(kh kw) * sigma(W_reshaped)``, a true bound on the conv's operator
            norm for any stride and padding: per frequency ``K_hat = W_reshaped (I (x) p)`` with
            ``p`` the kh*kw unit phases, ``||I (x) p|| = sqrt(kh kw)``; strides and zero padding
            only restrict or embed a circular convolution on a larger grid, which cannot raise it.
            ``"reshaped"``: ``sigma(W_reshaped)``, what SN sets to 1. The product is then 1 for an
            SN network, but it is not a bound: a conv can stretch an input by more.
    Returns:
        the product, a float.
    """
    if conv_norm not in CONV_NORMS:
        raise ValueError(f"conv_norm must be one of {', '.join(CONV_NORMS)}, got {conv_norm!r}")
    for name, m in model.named_modules():
        own = [n for n, _ in m.named_parameters(recurse=False)]
        if own and not isinstance(m, SN_LAYERS) and not isinstance(m, parametrize.ParametrizationList):
            raise ValueError(f"lipschitz_upper_bound covers Linear and Conv2d layers with 1-Lipschitz "
                             f"activations; module {name!r} ({type(m).__name__}) has parameters of its own")
    spectra = layer_spectra(model)
    if not spectra:
        raise ValueError(f"model has no nn.Linear or nn.Conv2d layer: {type(model).__name__}")
    bound = 1.0
    for name, m in _sn_layers(model):
        sigma = float(spectra[name][0])
        if isinstance(m, nn.Conv2d) and conv_norm == "bound":
            sigma *= math.sqrt(m.kernel_size[0] * m.kernel_size[1])
        bound *= sigma  # Eq. (7): ||f||_Lip <= prod_l sigma(W_l)
    return bound


def gradient_norms(model: Critic, x: Tensor) -> Tensor:
    """Per-sample ``||grad_x D(x_i)||_2``, the local slope to set beside :func:`lipschitz_upper_bound`.

    Samples must not interact in the forward pass (no batch norm in training mode). The power
    iteration is frozen and parameter ``.grad`` fields are left untouched.

    Args:
        model: D, returning (B,) or (B, 1) outputs.
        x: (B, ...) inputs.
    Returns:
        (B,) gradient norms, detached.
    """
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch of inputs (B, ...) with B >= 1, got {getattr(x, 'shape', type(x).__name__)}")
    _check_no_batch_norm(model, "a per-sample gradient norm")
    x = x.detach().requires_grad_(True)
    with frozen_power_iteration(model), torch.enable_grad():
        d = model(x)
        if d.shape not in ((len(x),), (len(x), 1)):
            raise ValueError(f"model must return one value per sample, (B,) or (B, 1), got {tuple(d.shape)}")
        (grad,) = torch.autograd.grad(d.sum(), x)  # row i of the sum depends on x_i alone
    return grad.flatten(1).norm(dim=1)


def _sn_of(module: nn.Module) -> SpectralNorm | None:
    if parametrize.is_parametrized(module, "weight"):
        for p in module.parametrizations.weight:
            if isinstance(p, SpectralNorm):
                return p
    return None


@torch.no_grad()
def layer_sigmas(model: nn.Module) -> dict[str, dict[str, float]]:
    """Per Linear/Conv2d layer: SN's power-iteration estimate of sigma, the exact sigma, and the effective sigma.

    Matrices are the reshaped (out, in * kh * kw) weights, the ones SN normalizes. Reading them
    does not advance the power iteration.

    Returns:
        ``{name: {"estimate": u^T W v (Algorithm 1; NaN without SN), "exact": sigma(W) by SVD of
        the trained weight W, "effective": sigma of the weight the forward pass uses (W / estimate
        with SN, W without)}}``; the effective sigma of an SN layer is ``exact / estimate``.
    """
    out = {}
    with frozen_power_iteration(model):
        for name, m in model.named_modules():
            if not isinstance(m, SN_LAYERS):
                continue
            sn = _sn_of(m)
            w = (m.parametrizations.weight.original if sn is not None else m.weight).flatten(1).double()
            exact = float(torch.linalg.svdvals(w)[0])
            estimate = float(sn._u.double() @ (w @ sn._v.double())) if sn is not None else math.nan  # u^T W v
            effective = float(torch.linalg.svdvals(m.weight.flatten(1).double())[0])
            out[name] = {"estimate": estimate, "exact": exact, "effective": effective}
    return out


def conv_layer_operator_norm(conv: nn.Conv2d, input_size: int | tuple[int, int], tol: float = 1e-10) -> float:
    """The operator 2-norm of ``conv``'s linear part as it acts on (C_in, H, W) inputs, stride and padding included.

    This is ``max ||conv(x) - b|| / ||x||`` over inputs of that size, for the layer as it is
    (zero padding, stride, dilation, the SN-normalized weight when SN is on; the bias does not
    count). It is the norm that bounds the Lipschitz constant; the reshaped-kernel sigma that SN
    sets to 1 is not. Computed by ARPACK (``scipy.sparse.linalg.svds``, k = 1) on the operator
    ``x -> conv2d(x)`` and its adjoint ``torch.nn.grad.conv2d_input``, in float64 on the CPU, from
    a fixed start vector (deterministic).

    Args:
        conv: a ``nn.Conv2d`` with ``padding_mode="zeros"``.
        input_size: H or (H, W) of the layer's input.
        tol: ARPACK's relative tolerance.
    Returns:
        the largest singular value, a float.
    """
    if not isinstance(conv, nn.Conv2d):
        raise ValueError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise ValueError(f"conv must use numeric zero padding, got padding={conv.padding!r}, "
                         f"padding_mode={conv.padding_mode!r}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
        raise ValueError(f"input_size must be a positive int or a pair (H, W) of them, got {input_size!r}")
    with frozen_power_iteration(conv), torch.no_grad():
        weight = conv.weight.detach().to("cpu", torch.float64)
    kw = dict(stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
    in_shape = (1, conv.in_channels, *size)
    try:
        out_shape = tuple(F.conv2d(torch.zeros(in_shape, dtype=torch.float64), weight, **kw).shape)
    except RuntimeError as err:
        raise ValueError(f"input_size {size} is too small for {conv}: {err}") from err
    n_in, n_out = math.prod(in_shape), math.prod(out_shape)

    def matvec(x: np.ndarray) -> np.ndarray:  # A x: the convolution
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(in_shape))
        return F.conv2d(t, weight, **kw).reshape(-1).numpy()

    def rmatvec(y: np.ndarray) -> np.ndarray:  # A^T y: its adjoint (the gradient of <y, A x> in x)
        t = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float64).reshape(out_shape))
        return torch.nn.grad.conv2d_input(in_shape, weight, t, **kw).reshape(-1).numpy()

    op = LinearOperator((n_out, n_in), matvec=matvec, rmatvec=rmatvec, dtype=np.float64)
    if min(n_in, n_out) <= 2:  # ARPACK needs k < min(shape): form the small matrix instead
        dense = np.stack([matvec(e) for e in np.eye(n_in)], axis=1)
        return float(np.linalg.svd(dense, compute_uv=False)[0])
    v0 = np.random.default_rng(0).standard_normal(min(n_in, n_out))
    s = svds(op, k=1, tol=tol, v0=v0, return_singular_vectors=False)
    return float(s[0])


def layer_input_sizes(model: nn.Module, example: Tensor) -> dict[str, tuple[int, ...]]:
    """The input shape, without the batch dimension, that each Linear and Conv2d of ``model`` sees.

    One forward pass on ``example[:1]`` with the power iteration frozen and no gradients.

    Args:
        model: the network, e.g. D.
        example: (B, ...) a valid input batch.
    Returns:
        ``{module name: (C, H, W) or (features,)}`` in forward order.
    """
    if not isinstance(example, Tensor) or example.ndim < 2:
        shape = tuple(example.shape) if isinstance(example, Tensor) else type(example).__name__
        raise ValueError(f"example must be an input batch (B, ...), got {shape}")
    sizes: dict[str, tuple[int, ...]] = {}

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            sizes.setdefault(name, tuple(inputs[0].shape[1:]))  # (C, H, W) or (features,)
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in model.named_modules() if isinstance(m, SN_LAYERS)]
    try:
        with frozen_power_iteration(model), torch.no_grad():
            model(example[:1])
    finally:
        for h in hooks:
            h.remove()
    return sizes


def layer_operator_norms(model: nn.Module, example: Tensor) -> dict[str, float]:
    """The operator 2-norm of every Linear and Conv2d layer of ``model`` at the input sizes it sees.

    A Linear layer's norm is its largest singular value; a Conv2d's is
    :func:`conv_layer_operator_norm` at its input size (:func:`layer_input_sizes` on ``example``).
    For a feed-forward chain with 1-Lipschitz activations the product of these numbers bounds
    ``||grad_x D(x)||`` for every x, a tighter bound than
    :func:`ganref.spectral.lipschitz_upper_bound` with ``conv_norm="bound"``.

    Args:
        model: the network, e.g. D.
        example: (B, ...) a valid input batch (B = 1 suffices).
    Returns:
        ``{module name: norm}`` in forward order.
    """
    sizes = layer_input_sizes(model, example)
    modules = dict(model.named_modules())
    norms = {}
    with frozen_power_iteration(model), torch.no_grad():
        for name, size in sizes.items():
            m = modules[name]
            if isinstance(m, nn.Conv2d):
                norms[name] = conv_layer_operator_norm(m, tuple(size[-2:]))
            else:  # nn.Linear: sigma of its weight
                norms[name] = float(torch.linalg.svdvals(m.weight.detach().double())[0])
    return norms


@torch.no_grad()
def critic_weight_stats(critic: nn.Module, c: float, tol: float = 0.01) -> dict[str, float]:
    """How many of the critic's parameters sit at the clipping bounds (WGAN-GP Fig. 1(c) pathology).

    Args:
        critic: the critic; every parameter (weights and biases, all that WGAN clips) is counted.
        c: the clipping bound; tol: "at the bound" means within ``tol * c`` of +c or -c.
    Returns:
        ``{"n": parameter count, "at_bound": share within tol*c of +-c, "at_upper": share near +c,
        "at_lower": share near -c, "max_abs": max |w|}``.
    """
    c = check_positive("c", c)
    tol = check_positive("tol", tol)
    params = [p.detach().flatten().double() for p in critic.parameters()]
    if not params or sum(p.numel() for p in params) == 0:
        raise ValueError("critic has no parameters")
    w = torch.cat(params)
    upper, lower = (w >= c * (1 - tol)), (w <= -c * (1 - tol))
    return {"n": int(w.numel()), "at_bound": float((upper | lower).double().mean()),
            "at_upper": float(upper.double().mean()), "at_lower": float(lower.double().mean()),
            "max_abs": float(w.abs().max())}


def critic_layer_gradient_norms(critic: nn.Module, x: Tensor) -> dict[str, float]:
    """Frobenius norm of d E_i D(x_i) / d W for every weight matrix or kernel (ndim >= 2) of the critic.

    The layer-by-layer view of WGAN-GP Fig. 1(b): with weight clipping these norms explode or
    vanish with depth. Leaves the critic's ``.grad`` untouched.

    Returns:
        ``{parameter name: norm}`` in the order of ``critic.named_parameters()``.
    """
    named = [(n, p) for n, p in critic.named_parameters() if p.ndim >= 2]
    if not named:
        raise ValueError("critic has no weight matrices or kernels (parameters with ndim >= 2)")
    with torch.enable_grad():
        grads = torch.autograd.grad(critic(x.detach()).mean(), [p for _, p in named], allow_unused=True)
    return {n: (0.0 if g is None else float(torch.linalg.vector_norm(g))) for (n, _), g in zip(named, grads)}


def critic_activation_gradient_norms(
        critic: nn.Module, x: Tensor,
        layers: tuple[type[nn.Module], ...] = (nn.ReLU, nn.LeakyReLU)) -> dict[str, float]:
    """Mean over samples of ||d D(x_i) / d a_l(x_i)||_2 for the output a_l of every ``layers`` module.

    The view of WGAN-GP Fig. 1(b), which plots the critic's gradient with respect to successive
    layers of activations: with weight clipping it vanishes (small c) or explodes (large c) on its
    way from the output down to the input. Leaves the critic's ``.grad`` untouched; needs a critic
    without batch norm (the rows must not interact) that calls each such module once.

    Args:
        critic: D mapping (N, ...) -> (N,) or (N, 1).
        x: (N, ...) inputs.
        layers: the module types whose outputs count as "activations" (default: ReLU, LeakyReLU).
    Returns:
        ``{module name: mean gradient norm}`` in the order the forward pass reaches the modules
        (input side first).
    """
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a batch (N, ...) with N >= 1, got shape {tuple(x.shape)}")
    _check_no_batch_norm(critic, "a per-sample activation gradient")
    named = [(n, m) for n, m in critic.named_modules() if isinstance(m, layers)]
    if not named:
        raise ValueError(f"critic has no activation modules of types {[t.__name__ for t in layers]}")
    outputs: dict[str, Tensor] = {}

    def keep(name: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            if name in outputs:
                raise ValueError(f"module {name!r} is called more than once in the critic's forward pass")
            outputs[name] = output
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in named]
    try:
        with torch.enable_grad():
            d = critic(x.detach())
            if d.shape not in ((x.shape[0],), (x.shape[0], 1)):
                raise ValueError(f"critic must map (N, ...) to (N,) or (N, 1), got {tuple(d.shape)}")
            names = list(outputs)  # forward order
            # rows are independent (no batch norm): d sum_i D(x_i) / d a_l = per-row d D(x_i) / d a_l(x_i)
            grads = torch.autograd.grad(d.sum(), [outputs[n] for n in names], allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    return {n: (0.0 if g is None else float(torch.linalg.vector_norm(g.flatten(1), dim=1).mean()))
            for n, g in zip(names, grads)}
