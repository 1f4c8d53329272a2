"""Tests for ganref.methods.conditional: every loss against hand-computed values, the softmax-before-CE
bug caught, the projection D's output by hand, the five steps through train.fit, configs and errors."""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from ganref import cond_metrics, cond_nets, train
from ganref.losses import hinge_d_loss
from ganref.methods import conditional as C

f64 = dict(dtype=torch.float64)


# ----------------------------------------------------------------------------- losses by hand


def test_acgan_class_loss_hand_values():
    # CE([2, 1, 0], 0) = ln(e^2 + e + 1) - 2
    want = math.log(math.e ** 2 + math.e + 1) - 2
    assert abs(float(C.acgan_class_loss(torch.tensor([[2.0, 1.0, 0.0]], **f64), torch.tensor([0]))) - want) < 1e-12
    assert abs(want - 0.407606) < 1e-6
    # zero logits: ln K
    assert abs(float(C.acgan_class_loss(torch.zeros(5, 10, **f64), torch.arange(5))) - math.log(10)) < 1e-12
    # the batch mean of per-row values
    g = torch.Generator().manual_seed(0)
    logits, y = torch.randn(7, 4, generator=g, **f64), torch.randint(4, (7,), generator=g)
    rows = [math.log(sum(math.exp(v) for v in logits[i].tolist())) - float(logits[i, y[i]]) for i in range(7)]
    assert abs(float(C.acgan_class_loss(logits, y)) - sum(rows) / 7) < 1e-12


@pytest.mark.parametrize("k, floor", [(10, 1.461150), (3, 0.551445)])
def test_softmax_before_cross_entropy_is_caught(k, floor):
    """Public ACGAN code applied a softmax before a cross-entropy (PyTorch-GAN #141): the loss then cannot
    fall below ln(e + K - 1) - 1 on perfect predictions. Every class loss here must reach 0 instead."""
    y = torch.arange(k)
    perfect = 40.0 * F.one_hot(y, k).to(torch.float64)  # confident, correct logits
    buggy = F.cross_entropy(perfect.softmax(1), y)  # CE applies log-softmax to probabilities
    exact_floor = math.log(math.e + k - 1) - 1
    assert abs(exact_floor - floor) < 1e-6
    assert abs(float(buggy) - exact_floor) < 1e-12
    assert float(C.acgan_class_loss(perfect, y)) < 1e-12
    assert float(C.amgan_g_loss(40.0 * F.one_hot(y, k + 1).double(), y)) < 1e-12
    fake_k = torch.full((k,), k)
    am_real, am_fake = 40.0 * F.one_hot(y, k + 1).double(), 40.0 * F.one_hot(fake_k, k + 1).double()
    assert float(C.amgan_d_loss(am_real, y, am_fake)) < 1e-12
    assert float(C.adc_d_loss(40.0 * F.one_hot(2 * y, 2 * k).double(), y,
                              40.0 * F.one_hot(2 * y + 1, 2 * k).double(), y)) < 1e-12
    # and a softmax inserted before the loss is seen: the result stays above the floor
    assert float(C.acgan_class_loss(perfect.softmax(1), y)) > floor - 1e-6


def test_adc_losses_hand_values():
    logits = torch.tensor([[1.0, 0.0, 0.5, 2.0]], **f64)  # K = 2: [real 0, fake 0, real 1, fake 1]
    y = torch.tensor([1])
    lse = math.log(math.e + 1 + math.exp(0.5) + math.exp(2))
    assert abs(lse - 0.5 - 2.046006) < 1e-6 and abs(lse - 2 - 0.546006) < 1e-6
    assert abs(float(C.adc_d_loss(logits, y, logits, y)) - ((lse - 0.5) + (lse - 2.0))) < 1e-12
    assert float(C.adc_g_loss(logits, y)) == pytest.approx(1.5, abs=1e-12)  # l[2y+1] - l[2y], exactly
    # on random logits the G term is the mean of l[2y+1] - l[2y], whatever the other logits are
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(9, 20, generator=g, **f64), torch.randint(10, (9,), generator=g)
    rows = logits[torch.arange(9), 2 * y + 1] - logits[torch.arange(9), 2 * y]
    assert abs(float(C.adc_g_loss(logits, y)) - float(rows.mean())) < 1e-12
    # its gradient is +1/B at 2y + 1, -1/B at 2y, 0 elsewhere
    logits.requires_grad_(True)
    C.adc_g_loss(logits, y).backward()
    want = torch.zeros(9, 20, **f64)
    want[torch.arange(9), 2 * y + 1], want[torch.arange(9), 2 * y] = 1 / 9, -1 / 9
    assert_close(logits.grad, want, rtol=0, atol=1e-15)
    # zero logits: D = 2 ln(2K), G = 0
    z, yy = torch.zeros(6, 20, **f64), torch.arange(6)
    assert abs(float(C.adc_d_loss(z, yy, z, yy)) - 2 * math.log(20)) < 1e-12
    assert abs(2 * math.log(20) - 5.991465) < 1e-6
    assert float(C.adc_g_loss(z, yy)) == 0.0


def test_amgan_losses_hand_values():
    logits = torch.tensor([[1.0, 0.0, 0.0]], **f64)  # K = 2, the last logit is "fake"
    lse = math.log(math.e + 2)
    assert abs(float(C.amgan_g_loss(logits)) - (lse - 1)) < 1e-12  # dynamic label argmax_{k<K} = 0
    assert abs(lse - 1 - 0.551445) < 1e-6
    fake_ce = float(C.amgan_d_loss(torch.tensor([[0.0, 0.0, 0.0]], **f64), torch.tensor([0]), logits)) - math.log(3)
    assert abs(fake_ce - lse) < 1e-12 and abs(lse - 1.551445) < 1e-6
    # the given label overrides the argmax
    assert abs(float(C.amgan_g_loss(logits, torch.tensor([1]))) - lse) < 1e-12
    # CE over K + 1 = CE over the K real classes + softplus(l_fake - LSE_K(l)) (the LabelGAN form)
    l = torch.tensor([[1.0, 0.5, 0.0]], **f64)
    ce3 = float(C.amgan_g_loss(l, torch.tensor([0])))
    ce2 = float(F.cross_entropy(l[:, :2], torch.tensor([0])))
    assert abs(ce3 - (ce2 + float(F.softplus(l[0, 2] - torch.logsumexp(l[0, :2], 0))))) < 1e-12
    assert abs(ce3 - 0.680270) < 1e-6
    # zero logits, K = 10: D = 2 ln 11, G = ln 11
    z = torch.zeros(4, 11, **f64)
    assert abs(float(C.amgan_d_loss(z, torch.arange(4), z)) - 2 * math.log(11)) < 1e-12
    assert abs(float(C.amgan_g_loss(z)) - math.log(11)) < 1e-12
    # no gradient through the argmax: the gradient is softmax(l) - onehot(c) (per row, / B)
    l = torch.tensor([[0.3, 2.0, -1.0, 0.5]], **f64, requires_grad=True)
    C.amgan_g_loss(l).backward()
    assert_close(l.grad, l.detach().softmax(1) - F.one_hot(torch.tensor([1]), 4).double(), rtol=0, atol=1e-15)


def test_projection_output_by_hand():
    phi = torch.tensor([[1.0, 2.0]], **f64)
    psi = phi @ torch.tensor([0.5, -1.0], **f64) + 0.1  # -1.4
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], **f64)
    outs = [float(C.projection(psi, phi, v, torch.tensor([c]))) for c in range(3)]
    assert outs == pytest.approx([-0.4, 0.6, 1.6], abs=1e-12)
    d1 = C.projection(psi, phi, v, torch.tensor([1]))
    assert float(hinge_d_loss(d1, d1.new_full((1,), -5.0))) == pytest.approx(0.4, abs=1e-12)  # relu(1 - 0.6)
    assert float(hinge_d_loss(d1.new_full((1,), 5.0), d1)) == pytest.approx(1.6, abs=1e-12)  # relu(1 + 0.6)
    # the same numbers from the discriminator module (identity trunk, no SN)
    D = cond_nets.CondDiscriminator(nn.Identity(), 2, 3, "projection", (2,)).double()
    with torch.no_grad():
        D.psi.weight.copy_(torch.tensor([[0.5, -1.0]])), D.psi.bias.fill_(0.1), D.v.weight.copy_(v.T)
        adv, logits = D(phi.repeat(3, 1), torch.arange(3))
    assert logits is None and adv.tolist() == pytest.approx([-0.4, 0.6, 1.6], abs=1e-12)
    # with V = 0 the output ignores y
    with torch.no_grad():
        D.v.weight.zero_()
        adv0, _ = D(phi.repeat(3, 1), torch.arange(3))
    assert adv0.tolist() == pytest.approx([-1.4] * 3, abs=1e-12)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [
    lambda y: C.acgan_class_loss(torch.zeros(3, 4), y),
    lambda y: C.adc_d_loss(torch.zeros(3, 8), y, torch.zeros(3, 8), torch.zeros(3, dtype=torch.long)),
    lambda y: C.adc_g_loss(torch.zeros(3, 8), y),
    lambda y: C.amgan_d_loss(torch.zeros(3, 5), y, torch.zeros(3, 5)),
    lambda y: C.amgan_g_loss(torch.zeros(3, 5), y),
])
def test_losses_reject_bad_labels(fn):
    with pytest.raises(ValueError, match=r"must lie in \[0, 3\]"):
        fn(torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match="integer class indices"):
        fn(torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="has 2 rows but the batch it labels has 3"):
        fn(torch.tensor([0, 1]))


def test_losses_reject_bad_logits():
    with pytest.raises(ValueError, match=r"logits must be class logits of shape \(B, K\)"):
        C.acgan_class_loss(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="2K columns"):
        C.adc_g_loss(torch.zeros(2, 5), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="logits_fake must have 6 columns"):
        C.amgan_d_loss(torch.zeros(2, 6), torch.zeros(2, dtype=torch.long), torch.zeros(2, 5))


def test_unknown_variant_and_configs():
    with pytest.raises(ValueError, match="variant must be one of 'cgan', 'acgan', 'projection', 'adcgan', 'amgan'"):
        C.get_variant("infogan")
    assert [C.get_variant(n).head for n in C.VARIANTS] == ["concat", "ac", "projection", "adc", "am"]
    with pytest.raises(ValueError, match="d_class_loss must be one of"):
        C.ACGANConfig(d_class_loss="fake")
    with pytest.raises(ValueError, match="label must be one of"):
        C.AMGANConfig(label="random")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        C.ProjectionConfig(lr=0.0)
    with pytest.raises(ValueError, match="adc_weight must be a finite number >= 0"):
        C.ADCGANConfig(adc_weight=-1.0)
    with pytest.raises(ValueError, match="d_steps must be an integer >= 1"):
        C.CGANConfig(d_steps=0)
    assert C.ProjectionConfig().d_steps == 5 and C.ADCGANConfig().d_steps == 4
    assert C.ACGANConfig().d_class_loss == "real"


# ----------------------------------------------------------------------------- the steps


def _toy_run(name: str, cfg=None, steps: int = 3, seed: int = 0) -> train.State:
    mix = cond_metrics.overlap_2d()
    cfg = cfg or C.get_variant(name).config(d_steps=2)
    data = cond_nets.labeled_batch_sampler(mix.sample, 2, 16, d_steps=cfg.d_steps)
    return C.train_variant(name, lambda: cond_nets.CondMLPGenerator(2, hidden=16),
                           lambda head: cond_nets.mlp_discriminator(head, 2, hidden=16), data, steps, seed, cfg)


@pytest.mark.parametrize("name", list(C.VARIANTS))
def test_each_step_trains_and_is_reproducible(name):
    a, b = _toy_run(name), _toy_run(name)
    assert a.step == 3 and all(math.isfinite(v) for h in a.history.values() for v in h)
    assert a.history == b.history
    for (k, p), q in zip(a.modules["G"].state_dict().items(), b.modules["G"].state_dict().values()):
        assert torch.equal(p, q), k
    # spectral norm is on every layer of D, the label embeddings included
    assert all(hasattr(m, "parametrizations") for m in a.modules["D"].modules() if isinstance(m, nn.Linear))


def test_acgan_paper_rule_adds_the_fake_class_loss():
    runs = {rule: _toy_run("acgan", C.ACGANConfig(d_class_loss=rule)) for rule in ("real", "real_and_fake")}
    assert runs["real"].history["d_class"] != runs["real_and_fake"].history["d_class"]


def test_steps_refuse_other_configs_and_unlabeled_batches():
    state = _toy_run("projection", C.ProjectionConfig(d_steps=1), steps=1)
    batch = (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="conditional.projection_step needs a ProjectionConfig, got ADCGANConfig"):
        C.projection_step(state, batch, C.ADCGANConfig())
    with pytest.raises(ValueError, match="batch must be \\(images, labels\\)"):
        C.projection_step(state, torch.zeros(4, 2), C.ProjectionConfig(d_steps=1))
    with pytest.raises(ValueError, match="labels must lie in"):
        C.projection_step(state, (torch.zeros(4, 2), torch.full((4,), 2)), C.ProjectionConfig(d_steps=1))
    with pytest.raises(TypeError, match="train_variant\\('cgan'\\) needs a CGANConfig"):
        C.train_variant("cgan", None, None, None, 1, 0, C.AMGANConfig())


def test_train_variant_with_fit_resumes_exactly(tmp_path):
    """The conditional steps draw all randomness from the run's generator: resume gives the same weights."""
    mix = cond_metrics.overlap_1d()
    cfg = C.ADCGANConfig(d_steps=1)
    data = cond_nets.labeled_batch_sampler(mix.sample, 3, 8)

    def state():
        torch.manual_seed(0)
        G, D = cond_nets.CondMLPGenerator(3, out_dim=1, hidden=8), cond_nets.mlp_discriminator("adc", 3, (1,), hidden=8)
        return train.State({"G": G, "D": D}, C.make_optimizers(G, D, cfg), torch.Generator().manual_seed(0))

    step = functools.partial(C.adcgan_step, cfg=cfg)
    whole = train.fit(step, state(), data, 6, progress=False)
    ckpt = tmp_path / "run.pt"
    train.fit(step, state(), data, 3, checkpoint=ckpt, progress=False)
    resumed = train.fit(step, state(), data, 6, checkpoint=ckpt, progress=False)
    for p, q in zip(whole.modules["G"].parameters(), resumed.modules["G"].parameters()):
        assert torch.equal(p, q)
    assert whole.history == resumed.history
