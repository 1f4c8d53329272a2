"""Tests for ganref.cond_nets: label checks, conditional BN against plain BN, shapes of G and D for every
head, SN on the label embeddings, labeled batches, seeded conditional sampling."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganref import cond_nets as cn
from ganref.layers import apply_spectral_norm
from ganref.nets import sample


# ----------------------------------------------------------------------------- labels


def test_check_labels_errors_name_the_argument():
    ok = torch.tensor([0, 2, 1])
    assert cn.check_labels(ok, 3, 3) is ok
    with pytest.raises(ValueError, match=r"y must lie in \[0, 2\] for num_classes=3, got values in \[0, 3\]"):
        cn.check_labels(torch.tensor([0, 3]), 2, 3, "y")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\].*\[-1, 1\]"):
        cn.check_labels(torch.tensor([-1, 1]), None, 3)
    with pytest.raises(ValueError, match="labels must hold integer class indices .* got dtype torch.float32"):
        cn.check_labels(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="integer class indices"):
        cn.check_labels(torch.tensor([True, False]))
    with pytest.raises(ValueError, match=r"labels has 2 rows but the batch it labels has 3"):
        cn.check_labels(torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\), got \(2, 1\)"):
        cn.check_labels(torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must be an integer tensor"):
        cn.check_labels([0, 1])
    for bad in (1, 0, 2.0, True):
        with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
            cn.check_num_classes(bad)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        cn.CondMLPGenerator(1)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        cn.conv_discriminator("ac", num_classes=1)


# ----------------------------------------------------------------------------- conditional batch norm


@pytest.mark.parametrize("shape", [(16, 5), (16, 5, 3, 3)])
def test_conditional_bn_with_unit_gain_equals_plain_bn_for_every_label(shape):
    g = torch.Generator().manual_seed(0)
    x = 3 * torch.randn(*shape, generator=g, dtype=torch.float64) + 1
    cbn = cn.ConditionalBatchNorm(5, 4).double()
    bn = (nn.BatchNorm1d if len(shape) == 2 else nn.BatchNorm2d)(5, affine=False).double()
    for y in (torch.zeros(16, dtype=torch.long), torch.full((16,), 3), torch.randint(4, (16,), generator=g)):
        assert_close(cbn(x, y), bn(x), rtol=0, atol=1e-12)  # training mode: batch statistics
    assert_close(cbn.bn.running_mean, bn.running_mean, rtol=0, atol=1e-12)  # shared running statistics
    cbn.eval(), bn.eval()
    assert_close(cbn(x, torch.randint(4, (16,), generator=g)), bn(x), rtol=0, atol=1e-12)


def test_conditional_bn_statistics_are_shared_across_labels():
    """Two identical inputs with different labels differ only by (gamma_y, beta_y)."""
    g = torch.Generator().manual_seed(1)
    cbn = cn.ConditionalBatchNorm(3, 2).double()
    with torch.no_grad():
        cbn.gain.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]]))
        cbn.bias.weight.copy_(torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 0.5]]))
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1] * 4)
    x_hat = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-5)
    want = cbn.gain.weight[y] * x_hat + cbn.bias.weight[y]
    assert_close(cbn(x, y), want.detach(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\) or \(B, 3, H, W\)"):
        cbn(torch.zeros(8, 4), y)
    with pytest.raises(ValueError, match="y has 7 rows"):
        cbn(x, y[:7])


# ----------------------------------------------------------------------------- G and D


def test_generators_shapes_and_label_dependence():
    torch.manual_seed(0)
    G = cn.CondConvGenerator(10, z_dim=8, width=4)
    z, y = torch.randn(6, 8), torch.arange(6)
    x = G(z, y)
    assert x.shape == (6, 1, 8, 8) and float(x.detach().abs().max()) <= 1
    with torch.no_grad():
        G.norm2.bias.weight[0] += 1.0  # changing class 0's beta changes only the class-0 sample
    x2 = G(z, y)
    assert not torch.allclose(x2[0], x[0]) and torch.allclose(x2[1:], x[1:], atol=1e-6)
    assert isinstance(cn.CondConvGenerator(cbn=False).norm2, nn.BatchNorm2d)
    Gm = cn.CondMLPGenerator(3, z_dim=2, out_dim=1, hidden=8)
    assert Gm(torch.randn(5, 2), torch.zeros(5, dtype=torch.long)).shape == (5, 1)
    with pytest.raises(ValueError, match=r"z must have shape \(B, 8\)"):
        G(torch.randn(6, 7), y)
    with pytest.raises(ValueError, match="y has 5 rows but the batch it labels has 6"):
        G(z, y[:5])
    # seeded sampling of a conditional G: the same seed and labels give the same images
    assert torch.equal(sample(G, 6, 3, labels=y), sample(G, 6, 3, labels=y))


@pytest.mark.parametrize("head, classes", [("concat", None), ("ac", 10), ("projection", None), ("adc", 20),
                                           ("am", 11)])
def test_discriminator_heads(head, classes):
    torch.manual_seed(0)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 3, 9, 3])
    for D in (cn.conv_discriminator(head, 10, width=4), cn.mlp_discriminator(head, 10, (1, 8, 8), hidden=8)):
        adv, logits = D(x, y)
        assert adv.shape == (4,)
        assert (logits is None) if classes is None else logits.shape == (4, classes)
        adv_other, _ = D(x, torch.tensor([1, 1, 1, 1]))
        label_read = head in ("concat", "projection")  # only these two read y inside D
        assert label_read != torch.allclose(adv, adv_other)
        if not label_read:
            assert torch.equal(D(x)[0], adv)
        else:
            with pytest.raises(ValueError, match=f"the '{head}' discriminator reads the label"):
                D(x)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\)"):
        D(torch.randn(4, 8, 8), y)
    with pytest.raises(ValueError, match="head must be one of 'concat', 'ac', 'projection', 'adc', 'am'"):
        cn.conv_discriminator("tac")


def test_spectral_norm_reaches_the_label_embeddings():
    """apply_spectral_norm normalizes V (projection) and the concat embedding, as the authors' SNEmbedID."""
    torch.manual_seed(0)
    for D, y in ((cn.conv_discriminator("projection", 10, width=4), torch.arange(10)),
                 (cn.mlp_discriminator("concat", 3, (2,), hidden=8), torch.arange(10) % 3)):
        apply_spectral_norm(D, generator=torch.Generator().manual_seed(0))
        x = torch.randn(10, *D.in_shape)
        with torch.no_grad():
            for _ in range(300):  # training-mode forwards advance the power iterations
                D(x, y)
        D.eval()
        layer = D.v if D.head == "projection" else D.embed
        assert abs(float(torch.linalg.matrix_norm(layer.weight.detach(), 2)) - 1) < 1e-4


# ----------------------------------------------------------------------------- batches


def test_labeled_batch_sampler():
    x, y = torch.arange(20.0).view(20, 1), torch.arange(20) % 4
    sampler = cn.labeled_batch_sampler(x, y, 5, d_steps=3)
    xb, yb = sampler(torch.Generator().manual_seed(0))
    assert xb.shape == (15, 1) and torch.equal(yb, xb[:, 0].long() % 4)  # rows stay paired
    xb2, _ = sampler(torch.Generator().manual_seed(0))
    assert torch.equal(xb, xb2) and "15 rows per step" in sampler.fingerprint
    other = cn.labeled_batch_sampler(x, (y + 1) % 4, 5, d_steps=3)
    assert other.fingerprint != sampler.fingerprint  # other labels, other data
    means = torch.tensor([0.0, 100.0])
    toy = cn.labeled_batch_sampler(lambda lab, g: means[lab].view(-1, 1) + 0 * torch.randn(len(lab), 1, generator=g),
                                   2, 8)
    xt, yt = toy(torch.Generator().manual_seed(1))
    assert torch.equal(xt[:, 0], means[yt])
    with pytest.raises(ValueError, match="labels has 19 rows but the batch it labels has 20"):
        cn.labeled_batch_sampler(x, y[:19], 5)
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        cn.labeled_batch_sampler(lambda lab, g: lab, 1, 5)
    assert cn.random_labels(1000, 4, torch.Generator().manual_seed(0)).bincount().min() > 200
