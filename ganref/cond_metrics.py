r"""Metrics for class-conditional generation, and the overlapping-class toys with their exact posteriors.

Per-class versions of the book's metrics (each computed within one class, then averaged uniformly
over the classes, as StudioGAN and the projection discriminator's code do):

- intra-class FID (Miyato & Koyama 2018, Sec. 5) and KID: :func:`intra_fid`, :func:`intra_kid`;
- per-class improved precision/recall (Kynkaanniemi et al. 2019): :func:`class_precision_recall`;
- per-class MMD on toy data: :func:`class_mmd`;
- GAN-test (the "discriminability" of Odena et al. 2017): the share of samples ``G(z, c)`` that a fixed
  classifier trained on real data labels ``c``: :func:`gan_test_accuracy`;
- the classification accuracy score, CAS (Ravuri & Vinyals, NeurIPS 2019, arXiv:1905.10887): train a
  classifier on generated pairs ``(G(z, c), c)`` only and test it on the real held-out split, beside
  the same classifier trained on the real training split: :func:`cas`;
- :func:`conditional_digit_scores`: all of the above plus :func:`ganref.metrics.digit_scores`, the book's
  one protocol for conditional 8x8 digits (:data:`COND_PROTOCOL`).

Toys (Gong et al. 2019, TAC-GAN): :func:`overlap_1d` (N(0,1), N(3,2^2), N(6,3^2)) and :func:`overlap_2d`
(N((0,0), I), N((1,0), I)), equal weights. Their exact posterior gives the conditional entropy of
generated samples under the *true* posterior, :func:`posterior_entropy`, beside the data's own
H(Y|X) by quadrature (:meth:`ClassMixture.conditional_entropy`).

Deviations: CAS uses multinomial logistic regression on the 64 pixels (scikit-learn, lbfgs), not a
ResNet; intra-class FID and KID use the digits classifier's 64 features projected on their first
:data:`COND_PROTOCOL` ``["pca_dim"]`` principal components (fitted on the real reference), because
about 36 held-out and 144 training digits per class cannot estimate a 64 x 64 covariance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ganref import metrics
from ganref.cond_nets import check_labels, check_num_classes
from ganref.utils import check_positive, check_positive_int

__all__ = ["ClassMixture", "overlap_1d", "overlap_2d", "posterior_entropy", "posterior_cross_entropy",
           "per_class", "intra_fid", "intra_kid", "class_precision_recall", "class_mmd", "gan_test_accuracy",
           "cas", "swap_labels", "pca_projection", "conditional_digit_scores", "COND_PROTOCOL"]

#: Per-class digit protocol: PCA dimension of the features for intra-FID/KID, KID subsets, PR neighbours,
#: CAS classifier settings.
COND_PROTOCOL = dict(pca_dim=8, kid_subsets=20, kid_seed=0, pr_k=3, cas_c=1.0, cas_max_iter=2000)


# ----------------------------------------------------------------------------- toy class mixtures


@dataclass(frozen=True)
class ClassMixture:
    """K equiprobable classes, class y ~ N(means[y], stds[y]^2 I) in D dimensions (float64)."""

    means: Tensor  # (K, D)
    stds: Tensor  # (K,)

    def __post_init__(self) -> None:
        if self.means.ndim != 2 or self.stds.shape != (self.means.shape[0],):
            raise ValueError(f"means must be (K, D) and stds (K,), got {tuple(self.means.shape)}, "
                             f"{tuple(self.stds.shape)}")
        check_num_classes(self.means.shape[0])
        if not bool((self.stds > 0).all()):
            raise ValueError(f"stds must be > 0, got {self.stds.tolist()}")

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x | y) for labels y (n,): (n, D) float32."""
        check_labels(y, None, self.num_classes, "y")
        noise = torch.randn(len(y), self.dim, generator=generator, dtype=torch.float64)
        return (self.means[y] + self.stds[y, None] * noise).float()

    def log_joint(self, x: Tensor | np.ndarray) -> Tensor:
        """log p(x, y) for every class: (N, D) points -> (N, K), float64."""
        x = torch.as_tensor(x, dtype=torch.float64)
        x = x[:, None] if x.ndim == 1 and self.dim == 1 else x
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (N, {self.dim}), got {tuple(x.shape)}")
        sq = (x[:, None, :] - self.means[None]).pow(2).sum(-1)  # (N, K)
        var = self.stds.pow(2)[None]  # (1, K)
        return -sq / (2 * var) - 0.5 * self.dim * torch.log(2 * math.pi * var) - math.log(self.num_classes)

    def posterior(self, x: Tensor | np.ndarray) -> Tensor:
        """P(y | x) = p(x, y) / sum_y' p(x, y'): (N, K), float64."""
        return self.log_joint(x).softmax(dim=1)

    def _grid(self, points: int, width: float) -> tuple[Tensor, float]:
        lo = (self.means - width * self.stds[:, None]).min(0).values  # (D,)
        hi = (self.means + width * self.stds[:, None]).max(0).values
        axes = [torch.linspace(float(a), float(b), points, dtype=torch.float64) for a, b in zip(lo, hi)]
        cell = math.prod(float(ax[1] - ax[0]) for ax in axes)
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, self.dim), cell

    def conditional_entropy(self, points: int | None = None, width: float = 10.0) -> tuple[float, float]:
        r"""Exact :math:`H(Y|X) = -\int \sum_y p(x, y) \log P(y|x)\,dx` (nats) and the Bayes accuracy
        :math:`\int \max_y p(x, y)\,dx`, by a Riemann sum on a uniform grid of ``points`` per axis over
        the means +- ``width`` stds (default 200,001 points in 1-D, 1,001 per axis in 2-D): the trapezoid
        rule, since the integrands vanish at the ends; the tests match scipy's ``quad`` to 1e-7 in 1-D."""
        points = points or (200_001 if self.dim == 1 else 1_001)
        x, cell = self._grid(check_positive_int("points", points, minimum=3), check_positive("width", width))
        log_pxy = self.log_joint(x)  # (M, K)
        log_post = log_pxy - torch.logsumexp(log_pxy, 1, keepdim=True)
        p_xy = log_pxy.exp()
        return float(-(p_xy * log_post).sum() * cell), float(p_xy.max(1).values.sum() * cell)


def overlap_1d(gap: float = 3.0) -> ClassMixture:
    """TAC-GAN's 1-D toy: N(0, 1), N(gap, 2^2), N(2 gap, 3^2) (Gong et al. 2019, One_Dimensional_MOG)."""
    gap = check_positive("gap", gap)
    return ClassMixture(torch.tensor([[0.0], [gap], [2 * gap]], dtype=torch.float64),
                        torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))


def overlap_2d(gap: float = 1.0) -> ClassMixture:
    """TAC-GAN's 2-D toy: N((0, 0), I) and N((gap, 0), I) (Gong et al. 2019, 2-D_mix_gaussian)."""
    gap = check_positive("gap", gap)
    return ClassMixture(torch.tensor([[0.0, 0.0], [gap, 0.0]], dtype=torch.float64),
                        torch.ones(2, dtype=torch.float64))


def posterior_entropy(mix: ClassMixture, x: Tensor | np.ndarray) -> float:
    r""":math:`\mathbb{E}_{x \sim Q_X} H(P(\cdot|x))`: the true posterior's entropy at generated points (nats).

    For real data this is H(Y|X) of the data; a generator that avoids the class overlaps (ACGAN's
    pathology) scores lower.
    """
    post = mix.posterior(x)  # (N, K)
    return float(-(post * post.clamp_min(1e-300).log()).sum(1).mean())


def posterior_cross_entropy(mix: ClassMixture, x: Tensor | np.ndarray, y: Tensor) -> float:
    r""":math:`-\mathbb{E}_{(x, y) \sim Q} \log P(y|x)`: what ACGAN's G minimizes once the classifier is the
    true posterior, :math:`KL(Q_{XY}\|P_{XY}) - KL(Q_X\|P_X) + H_Q(Y|X)` (Hou et al. 2022)."""
    log_post = mix.log_joint(x).log_softmax(1)
    check_labels(y, log_post.shape[0], mix.num_classes, "y")
    return float(-log_post[torch.arange(len(y)), y.cpu()].mean())


# ----------------------------------------------------------------------------- per-class metrics


def _labels_np(name: str, labels: object, n: int | None) -> np.ndarray:
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(labels)
    return check_labels(labels, n, None, name).cpu().numpy()


def per_class(fn: Callable[[np.ndarray, np.ndarray], float], real: object, real_labels: object, fake: object,
              fake_labels: object, num_classes: int | None = None) -> tuple[float | np.ndarray, np.ndarray]:
    """``fn(real of class c, fake of class c)`` for every class c, and the uniform mean over classes.

    Args:
        fn: a metric on two (n, D) float64 arrays (a number, or a tuple of m numbers).
        real, fake: (N, D) and (M, D) features or points; real_labels (N,), fake_labels (M,).
        num_classes: K; ``None``: one more than the largest label.
    Returns:
        (mean over classes, (K,) or (K, m) per-class values).
    """
    x = metrics._as_matrix("real", real)
    y = metrics._as_matrix("fake", fake)
    metrics._same_dim("real", x, "fake", y)
    lr, lf = _labels_np("real_labels", real_labels, len(x)), _labels_np("fake_labels", fake_labels, len(y))
    k = check_num_classes(num_classes if num_classes is not None else int(max(lr.max(), lf.max())) + 1)
    if lr.min() < 0 or lf.min() < 0 or max(lr.max(), lf.max()) >= k:
        raise ValueError(f"labels must lie in [0, {k - 1}] for num_classes={k}")
    values = []
    for c in range(k):
        rc, fc = x[lr == c], y[lf == c]
        if len(rc) < 2 or len(fc) < 2:
            raise ValueError(f"class {c} has {len(rc)} real and {len(fc)} fake rows: each class needs at least "
                             "2 of each")
        values.append(fn(rc, fc))
    per = np.asarray(values, dtype=np.float64)  # (K,) or (K, m) for a metric with m outputs
    return (float(per.mean()) if per.ndim == 1 else per.mean(axis=0)), per


def intra_fid(real: object, real_labels: object, fake: object, fake_labels: object,
              num_classes: int | None = None) -> tuple[float, np.ndarray]:
    """Intra-class FID: :func:`ganref.metrics.fid` within each class, averaged over classes (Miyato & Koyama 2018)."""
    return per_class(metrics.fid, real, real_labels, fake, fake_labels, num_classes)


def intra_kid(real: object, real_labels: object, fake: object, fake_labels: object, num_classes: int | None = None,
              subsets: int = 20, seed: int = 0) -> tuple[float, np.ndarray]:
    """Intra-class KID: :func:`ganref.metrics.kid` within each class (subsets of the smaller class size)."""
    def kid_c(a: np.ndarray, b: np.ndarray) -> float:
        return metrics.kid(a, b, subsets=subsets, subset_size=min(len(a), len(b)), seed=seed)[0]
    return per_class(kid_c, real, real_labels, fake, fake_labels, num_classes)


def class_precision_recall(real: object, real_labels: object, fake: object, fake_labels: object,
                           num_classes: int | None = None, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall within each class (k-NN balls of that class only), averaged over classes."""
    mean, _ = per_class(lambda a, b: metrics.precision_recall(a, b, k), real, real_labels, fake, fake_labels,
                        num_classes)
    return float(mean[0]), float(mean[1])


def class_mmd(real: object, real_labels: object, fake: object, fake_labels: object, num_classes: int | None = None,
              bandwidth: float = 1.0) -> tuple[float, np.ndarray]:
    """Unbiased MMD^2 with a Gaussian kernel (:func:`ganref.metrics.mmd2`) within each class, averaged."""
    return per_class(lambda a, b: metrics.mmd2(a, b, kernel="gaussian", bandwidth=bandwidth),
                     real, real_labels, fake, fake_labels, num_classes)


def gan_test_accuracy(predicted: object, labels: object) -> float:
    """GAN-test: the share of generated samples whose predicted class (N,) equals the class asked for (N,)."""
    pred = _labels_np("predicted", predicted, None)
    return float((pred == _labels_np("labels", labels, len(pred))).mean())


def _pixels(name: str, x: object) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, dtype=np.float64)
    if arr.ndim < 2 or len(arr) == 0 or not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite examples of shape (N, ...), got shape {arr.shape}")
    return arr.reshape(len(arr), -1)


def cas(train_x: object, train_labels: object, test_x: object, test_labels: object,
        c: float = 1.0, max_iter: int = 2000) -> float:
    """Classification accuracy score: fit multinomial logistic regression on ``(train_x, train_labels)``
    (generated pairs; or real ones for the reference) and return its accuracy on ``(test_x, test_labels)``.

    Ravuri & Vinyals 2019 train a ResNet; on 8x8 digits a linear classifier on the pixels (scikit-learn
    ``LogisticRegression``, lbfgs, L2 strength ``1 / c``) is deterministic and takes about a second.
    """
    from sklearn.linear_model import LogisticRegression

    a, b = _pixels("train_x", train_x), _pixels("test_x", test_x)
    ya, yb = _labels_np("train_labels", train_labels, len(a)), _labels_np("test_labels", test_labels, len(b))
    if len(np.unique(ya)) < 2:
        raise ValueError("train_labels must hold at least two classes to train a classifier")
    clf = LogisticRegression(C=check_positive("c", c), max_iter=check_positive_int("max_iter", max_iter))
    clf.fit(a, ya)
    return float((clf.predict(b) == yb).mean())


def swap_labels(labels: Tensor, a: int, b: int) -> Tensor:
    """The label-swap sanity "generator": labels ``a`` and ``b`` exchanged, the rest unchanged."""
    check_labels(labels)
    out = labels.clone()
    out[labels == a], out[labels == b] = b, a
    return out


def pca_projection(reference: object, dim: int) -> Callable[[object], np.ndarray]:
    """Project features on the first ``dim`` principal components of ``reference`` (N, D): f -> (M, dim)."""
    ref = metrics._as_matrix("reference", reference, min_rows=2)
    dim = check_positive_int("dim", dim)
    if dim > ref.shape[1]:
        raise ValueError(f"dim={dim} is larger than the {ref.shape[1]} feature columns")
    mean = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
    basis = vt[:dim].T  # (D, dim)
    return lambda f: (metrics._as_matrix("features", f) - mean) @ basis


def conditional_digit_scores(fake: Tensor, fake_labels: Tensor, reference: Tensor, reference_labels: Tensor,
                             test: Tensor, test_labels: Tensor, classifier: object | None = None,
                             cas_pairs: tuple[Tensor, Tensor] | None = None) -> dict[str, float]:
    """Every conditional digit metric, with the book's one protocol (:data:`COND_PROTOCOL`).

    Args:
        fake, fake_labels: (N, 1, 8, 8) generated digits and the classes they were asked for.
        reference, reference_labels: the real training split (the reference of FID-type metrics).
        test, test_labels: the real held-out split (the test set of CAS).
        classifier: the digits classifier (``None``: the shipped one).
        cas_pairs: the generated (images, labels) to train CAS on (default ``fake``, ``fake_labels``);
            Ravuri & Vinyals draw as many as the real training set.
    Returns:
        :func:`ganref.metrics.digit_scores` (marginal) plus ``intra_fid``, ``intra_kid``,
        ``class_precision``, ``class_recall``, ``gan_test`` and ``cas``.
    """
    from ganref.features import digit_features, digit_labels, load_classifier

    classifier = classifier if classifier is not None else load_classifier()
    f_ref, f_fake = digit_features(reference, classifier), digit_features(fake, classifier)
    out = metrics.digit_scores(fake, f_ref, classifier)
    proj = pca_projection(f_ref, COND_PROTOCOL["pca_dim"])
    out["intra_fid"] = intra_fid(proj(f_ref), reference_labels, proj(f_fake), fake_labels)[0]
    out["intra_kid"] = intra_kid(proj(f_ref), reference_labels, proj(f_fake), fake_labels,
                                 subsets=COND_PROTOCOL["kid_subsets"], seed=COND_PROTOCOL["kid_seed"])[0]
    out["class_precision"], out["class_recall"] = class_precision_recall(f_ref, reference_labels, f_fake, fake_labels,
                                                                         k=COND_PROTOCOL["pr_k"])
    out["gan_test"] = gan_test_accuracy(digit_labels(fake, classifier)[:, 0], fake_labels)
    x_cas, y_cas = cas_pairs if cas_pairs is not None else (fake, fake_labels)
    out["cas"] = cas(x_cas, y_cas, test, test_labels, COND_PROTOCOL["cas_c"], COND_PROTOCOL["cas_max_iter"])
    return out
