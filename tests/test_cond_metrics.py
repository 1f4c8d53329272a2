"""Tests for ganref.cond_metrics: exact H(Y|X) of the toys against scipy's quadrature, intra-class FID in
closed form, the label-swap sanity generator, GAN-test and CAS on real digits, errors."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from scipy import integrate, stats

from ganref import cond_metrics as cm, data, metrics
from ganref.features import accuracy, digit_features, digit_labels, load_classifier


# ----------------------------------------------------------------------------- toys


def _scipy_entropy_1d(means, stds):
    """H(Y|X) and the Bayes accuracy of equiprobable 1-D Gaussian classes, by scipy.integrate.quad."""
    def joint(x):
        return np.array([stats.norm.pdf(x, m, s) / len(means) for m, s in zip(means, stds)])

    def h(x):
        p = joint(x)
        post = p / p.sum()
        return -float(np.sum(p * np.log(np.where(post > 0, post, 1.0))))
    lo, hi = min(m - 12 * s for m, s in zip(means, stds)), max(m + 12 * s for m, s in zip(means, stds))
    return (integrate.quad(h, lo, hi, limit=400, epsabs=1e-12)[0],
            integrate.quad(lambda x: float(joint(x).max()), lo, hi, limit=400, epsabs=1e-12)[0])


@pytest.mark.parametrize("gap, h_ref, acc_ref", [(3.0, 0.6136, 0.7267), (3.5, 0.5296, 0.7692)])
def test_overlap_1d_entropy_matches_scipy_quadrature(gap, h_ref, acc_ref):
    h, acc = cm.overlap_1d(gap).conditional_entropy()
    h_sp, acc_sp = _scipy_entropy_1d([0.0, gap, 2 * gap], [1.0, 2.0, 3.0])
    assert abs(h - h_sp) < 1e-7 and abs(acc - acc_sp) < 1e-7
    assert abs(h - h_ref) < 1e-4 and abs(acc - acc_ref) < 1e-4  # the reference sheet's values


def test_overlap_2d_entropy_and_bayes_accuracy():
    h, acc = cm.overlap_2d(1.0).conditional_entropy()
    # the posterior depends on x_1 only: P(y=1|x) = sigmoid(x_1 - 1/2); quadrature over x_1
    h_sp, acc_sp = _scipy_entropy_1d([0.0, 1.0], [1.0, 1.0])
    assert abs(h - h_sp) < 1e-6 and abs(h - 0.5817) < 1e-4
    # max_y p(x, y) has a kink at x_1 = 1/2, so the grid rule is only O(h^2) accurate for the accuracy
    assert abs(acc - stats.norm.cdf(0.5)) < 1e-5 and abs(acc_sp - stats.norm.cdf(0.5)) < 1e-9


def test_posterior_entropy_of_data_samples_is_the_exact_value():
    mix = cm.overlap_1d()
    g = torch.Generator().manual_seed(0)
    y = torch.randint(3, (200_000,), generator=g)
    x = mix.sample(y, g)
    h = cm.posterior_entropy(mix, x)
    assert abs(h - mix.conditional_entropy()[0]) < 0.005  # Monte-Carlo: std about 0.001
    # far right only the widest class (std 3) has mass: no posterior entropy there
    assert cm.posterior_entropy(mix, torch.tensor([[20.0], [25.0]])) < 1e-8
    post = mix.posterior(x[:5])
    assert torch.allclose(post.sum(1), torch.ones(5, dtype=torch.float64))
    want = float(-post[torch.arange(5), y[:5]].log().mean())
    assert abs(cm.posterior_cross_entropy(mix, x[:5], y[:5]) - want) < 1e-12
    with pytest.raises(ValueError, match=r"y must lie in \[0, 2\]"):
        mix.sample(torch.tensor([3]))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        cm.ClassMixture(torch.zeros(1, 1, dtype=torch.float64), torch.ones(1, dtype=torch.float64))


# ----------------------------------------------------------------------------- per-class metrics


def _exact_gaussian_sample(n, mean, std, seed):
    """n points whose sample mean and (ddof=1) std are exactly ``mean`` and ``std``."""
    z = np.random.default_rng(seed).standard_normal(n)
    return (mean + std * (z - z.mean()) / z.std(ddof=1))[:, None]


def test_intra_fid_of_1d_gaussians_equals_the_closed_form():
    # per class FID(N(m1, s1^2), N(m2, s2^2)) = (m1 - m2)^2 + (s1 - s2)^2
    real_ms, fake_ms = [(0, 1), (3, 2), (6, 3)], [(0, 1), (3, 1), (6, 3)]
    real = np.concatenate([_exact_gaussian_sample(400, m, s, i) for i, (m, s) in enumerate(real_ms)])
    fake = np.concatenate([_exact_gaussian_sample(300, m, s, 10 + i) for i, (m, s) in enumerate(fake_ms)])
    lr, lf = torch.arange(3).repeat_interleave(400), torch.arange(3).repeat_interleave(300)
    mean, per = cm.intra_fid(real, lr, fake, lf)
    assert np.allclose(per, [0.0, 1.0, 0.0], atol=1e-10) and abs(mean - 1 / 3) < 1e-10
    assert metrics.fid(real, fake) < 0.4  # pooled, the marginals are close; the per-class view is not
    # a per-class metric is the mean of the metric within each class
    p, r = cm.class_precision_recall(real, lr, fake, lf, k=3)
    want = [metrics.precision_recall(real[lr == c], fake[lf == c], 3) for c in range(3)]
    assert abs(p - np.mean([w[0] for w in want])) < 1e-12 and abs(r - np.mean([w[1] for w in want])) < 1e-12
    m, per_mmd = cm.class_mmd(real, lr, fake, lf)
    assert abs(per_mmd[1] - metrics.mmd2(real[400:800], fake[300:600], kernel="gaussian")) < 1e-12
    assert per_mmd[1] > 10 * max(abs(per_mmd[0]), abs(per_mmd[2]))


def test_per_class_errors():
    a, la = np.zeros((6, 2)), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="class 2 has 2 real and 1 fake rows"):
        cm.intra_fid(a, la, a[:5], la[:5])
    with pytest.raises(ValueError, match="fake_labels has 5 rows but the batch it labels has 6"):
        cm.intra_fid(a, la, a, la[:5])
    with pytest.raises(ValueError, match="real_labels must hold integer class indices"):
        cm.intra_fid(a, la.float(), a, la)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\] for num_classes=2"):
        cm.intra_fid(a, la, a, la, num_classes=2)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        cm.intra_fid(a, la, a, la, num_classes=1)
    with pytest.raises(ValueError, match=r"real has shape \(6, 2\) but fake has \(6, 3\)"):
        cm.intra_fid(a, la, np.zeros((6, 3)), la)


def test_pca_projection_of_full_dimension_keeps_fid():
    g = np.random.default_rng(0)
    a, b = g.standard_normal((200, 5)) @ g.standard_normal((5, 5)), g.standard_normal((150, 5)) + 0.3
    proj = cm.pca_projection(a, 5)  # a rotation (and a shift): FID does not change
    assert abs(metrics.fid(proj(a), proj(b)) - metrics.fid(a, b)) < 1e-9
    assert proj(b).shape == (150, 5) and cm.pca_projection(a, 2)(b).shape == (150, 2)
    with pytest.raises(ValueError, match="dim=6 is larger than the 5 feature columns"):
        cm.pca_projection(a, 6)


# ----------------------------------------------------------------------------- digits: GAN-test, CAS, label swap


@pytest.fixture(scope="module")
def digits():
    x_tr, y_tr = data.digits("train")
    x_te, y_te = data.digits("test")
    return x_tr, y_tr, x_te, y_te, load_classifier()


def test_gan_test_of_real_held_out_digits_is_the_classifier_accuracy(digits):
    x_tr, y_tr, x_te, y_te, clf = digits
    pred = digit_labels(x_te, clf)[:, 0]
    assert cm.gan_test_accuracy(pred, y_te) == accuracy(clf, x_te, y_te)
    assert cm.gan_test_accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 0])) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="labels has 2 rows but the batch it labels has 3"):
        cm.gan_test_accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 2]))


def test_label_swap_generator_is_exposed_by_intra_fid_and_cas(digits):
    x_tr, y_tr, x_te, y_te, clf = digits
    swapped = cm.swap_labels(y_te, 3, 8)
    assert torch.equal(swapped == 3, y_te == 8) and torch.equal(swapped == 8, y_te == 3)
    assert torch.equal(swapped[(y_te != 3) & (y_te != 8)], y_te[(y_te != 3) & (y_te != 8)])
    honest = cm.conditional_digit_scores(x_te, y_te, x_tr, y_tr, x_te, y_te, clf, (x_tr, y_tr))
    swap = cm.conditional_digit_scores(x_te, swapped, x_tr, y_tr, x_te, y_te, clf, (x_tr, cm.swap_labels(y_tr, 3, 8)))
    assert swap["fid"] == honest["fid"] and swap["precision"] == honest["precision"]  # marginal metrics are blind
    assert swap["intra_fid"] > 5 * honest["intra_fid"]
    assert swap["gan_test"] < honest["gan_test"] - 0.18  # two of ten classes wrong
    assert swap["cas"] < 0.82 * honest["cas"] + 0.01  # CAS <= 0.8 x real accuracy, up to rounding of the split
    assert honest["cas"] > 0.95 and honest["gan_test"] == pytest.approx(accuracy(clf, x_te, y_te))
    # the CAS of real pairs is what a direct scikit-learn fit gives
    from sklearn.linear_model import LogisticRegression
    clf_lr = LogisticRegression(C=1.0, max_iter=2000).fit(x_tr.reshape(len(x_tr), -1).double().numpy(), y_tr.numpy())
    direct = float((clf_lr.predict(x_te.reshape(len(x_te), -1).double().numpy()) == y_te.numpy()).mean())
    assert honest["cas"] == direct
    assert set(honest) >= {"fid", "kid", "precision", "recall", "inception_score", "intra_fid", "intra_kid",
                           "class_precision", "class_recall", "gan_test", "cas"}
    with pytest.raises(ValueError, match="train_labels must hold at least two classes"):
        cm.cas(x_tr[:5], torch.zeros(5, dtype=torch.long), x_te, y_te)


def test_intra_fid_in_pca_features_is_well_conditioned(digits):
    """The reason for COND_PROTOCOL["pca_dim"]: per-class covariances of 36 held-out digits stay invertible."""
    x_tr, y_tr, x_te, y_te, clf = digits
    f_tr, f_te = digit_features(x_tr, clf), digit_features(x_te, clf)
    proj = cm.pca_projection(f_tr, cm.COND_PROTOCOL["pca_dim"])
    worst = max(np.linalg.cond(np.cov(proj(f_te)[y_te.numpy() == c], rowvar=False)) for c in range(10))
    full = min(np.linalg.cond(np.cov(f_te[y_te.numpy() == c], rowvar=False)) for c in range(10))
    assert worst < 1e3 < 1e12 < full
