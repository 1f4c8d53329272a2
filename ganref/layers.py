r"""Layers with parameters or buffers that several methods share: spectral normalization.

**Spectral Normalization for Generative Adversarial Networks.** Takeru Miyato, Toshiki Kataoka,
Masanori Koyama, Yuichi Yoshida. ICLR 2018. arXiv:1802.05957.

Each weight matrix is divided by its largest singular value, estimated by one step of power
iteration per training forward with a persistent vector (Algorithm 1):

.. math::

    \bar W_{\mathrm{SN}}(W) = W / \sigma(W), \qquad
    \tilde u \leftarrow \frac{W \tilde v}{\lVert W \tilde v\rVert_2}, \quad
    \tilde v \leftarrow \frac{W^\top \tilde u}{\lVert W^\top \tilde u\rVert_2}, \quad
    \sigma(W) \approx \tilde u^\top W \tilde v .

A conv kernel (C_out, C_in, kh, kw) is reshaped to the matrix (C_out, C_in kh kw), as in the paper.
Used by SN-GAN (chapter 04) and by the projection discriminator and later chapters.

Deviations from the paper:

- Order of the power step. Algorithm 1 keeps only ``u`` and updates ``v`` then ``u``. We keep
  both vectors (as buffers, so a state dict carries them) and update ``u`` from ``v`` first, then
  ``v``: the same alternating power iteration started half a step later, with the estimate
  ``u^T W v = ||W^T u||``. This is the order of ``torch.nn.utils.parametrizations.spectral_norm``,
  and the tests check that both layers give the same weights step for step.
- Warm start. When the layer is created we run ``n_init_iterations=15`` power steps (as PyTorch
  does), so the first training forward already uses a good estimate; the paper starts from a
  random ``u``. Set ``n_init_iterations=0`` for the paper's behaviour.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ganref.utils import check_positive_int


SN_LAYERS = (nn.Linear, nn.Conv2d)


def _as_matrix(weight: Tensor, name: str = "weight") -> Tensor:
    """(out, in) or (C_out, C_in, kh, kw) -> (out, in * kh * kw), Sec. 2.1 of Miyato et al."""
    if not isinstance(weight, Tensor) or weight.ndim < 2:
        shape = tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__
        raise ValueError(f"{name} must be a tensor with at least 2 dimensions (out, in, ...), got {shape}")
    return weight.flatten(1)


def _normalize(x: Tensor, eps: float) -> Tensor:
    return x / x.norm().clamp_min(eps)  # x / max(||x||_2, eps)


class SpectralNorm(nn.Module):
    """The parametrization ``W -> W / sigma(W)`` with a persistent power-iteration state.

    Buffers ``_u`` (out,) and ``_v`` (in * kh * kw,) approximate the top left and right singular
    vectors. In training mode each call runs ``n_power_iterations`` steps; in eval mode none.
    """

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, eps: float = 1e-12,
                 n_init_iterations: int = 15, generator: torch.Generator | None = None):
        super().__init__()
        w_mat = _as_matrix(weight)  # (out, in * kh * kw)
        self.n_power_iterations = check_positive_int("n_power_iterations", n_power_iterations)
        check_positive_int("n_init_iterations", n_init_iterations, minimum=0)
        if not (isinstance(eps, (int, float)) and eps > 0):
            raise ValueError(f"eps must be a number > 0, got {eps!r}")
        self.eps = float(eps)
        h, w = w_mat.shape
        u = torch.randn(h, generator=generator, dtype=torch.float64).to(w_mat)
        v = torch.randn(w, generator=generator, dtype=torch.float64).to(w_mat)
        self.register_buffer("_u", _normalize(u, self.eps))
        self.register_buffer("_v", _normalize(v, self.eps))
        self._power_iteration(w_mat.detach(), n_init_iterations)

    @torch.no_grad()
    def _power_iteration(self, w_mat: Tensor, steps: int) -> None:
        for _ in range(steps):
            # in place, so the buffers the module owns are the ones updated
            self._u.copy_(_normalize(w_mat @ self._v, self.eps))  # u <- W v / ||W v||
            self._v.copy_(_normalize(w_mat.mT @ self._u, self.eps))  # v <- W^T u / ||W^T u||

    def forward(self, weight: Tensor) -> Tensor:
        w_mat = weight.flatten(1)  # (out, in * kh * kw)
        if self.training:
            self._power_iteration(w_mat.detach(), self.n_power_iterations)
        # u and v are constants for autograd, as in the paper's implementation; clone because the next
        # training forward updates the buffers in place while this graph may still need them
        u, v = self._u.clone(), self._v.clone()
        sigma = u @ (w_mat @ v)  # sigma(W) ~ u^T W v, Algorithm 1
        return weight / sigma  # W_SN = W / sigma(W), Eq. (8)

    def right_inverse(self, value: Tensor) -> Tensor:
        """Assigning ``module.weight = W`` stores ``W`` itself as the unnormalized weight."""
        return value


def spectral_norm(module: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12, *,
                  n_init_iterations: int = 15, generator: torch.Generator | None = None) -> nn.Module:
    """Register spectral normalization on the ``weight`` of an ``nn.Linear`` or ``nn.Conv2d``.

    After this, ``module.weight`` is ``W / sigma(W)``; the trained tensor is
    ``module.parametrizations.weight.original`` and the power-iteration state lives in
    ``module.parametrizations.weight[0]._u`` / ``._v`` (in the state dict).

    Args:
        module: the layer, changed in place.
        n_power_iterations: power steps per training forward (1 in the paper).
        eps: floor on the norms in the power step.
        n_init_iterations: power steps run once now, from a random start (0 for the paper).
        generator: the random start's generator (default: torch's global one).
    Returns:
        ``module``.
    """
    if not isinstance(module, SN_LAYERS):
        raise ValueError(f"module must be an nn.Linear or nn.Conv2d, got {type(module).__name__}")
    if parametrize.is_parametrized(module, "weight") and any(
            isinstance(p, SpectralNorm) for p in module.parametrizations.weight):
        raise ValueError(f"module {module!r} already has spectral normalization on its weight")
    sn = SpectralNorm(module.weight, n_power_iterations, eps, n_init_iterations, generator)
    parametrize.register_parametrization(module, "weight", sn)
    return module


def apply_spectral_norm(model: nn.Module, n_power_iterations: int = 1, eps: float = 1e-12, *,
                        n_init_iterations: int = 15, generator: torch.Generator | None = None) -> nn.Module:
    """Apply :func:`spectral_norm` to every ``nn.Linear`` and ``nn.Conv2d`` in ``model`` (in place)."""
    layers = [m for m in model.modules() if isinstance(m, SN_LAYERS)]
    if not layers:
        raise ValueError(f"model has no nn.Linear or nn.Conv2d layer to normalize: {type(model).__name__}")
    for m in layers:
        spectral_norm(m, n_power_iterations, eps, n_init_iterations=n_init_iterations, generator=generator)
    return model


@contextmanager
def frozen_power_iteration(model: nn.Module | object) -> Iterator[nn.Module | object]:
    """Within this block no parametrization of ``model`` runs in training mode (no power steps).

    Measuring a network (its spectra, its gradients) must not advance its SN state. Other modules
    keep their mode. Works for this module's SN and for PyTorch's.
    """
    saved = []
    for m in model.modules() if isinstance(model, nn.Module) else ():  # a plain function has no SN state
        if parametrize.is_parametrized(m):
            for plist in m.parametrizations.values():
                for p in plist:
                    saved.append((p, p.training))
                    p.train(False)
    try:
        yield model
    finally:
        for p, mode in saved:
            p.train(mode)
