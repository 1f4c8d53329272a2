"""Tests for ganref.features: the shipped digits feature extractor and its training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganref import features as clf
from ganref import metrics
from ganref.data import digits

# float32 rounding: one operation is off by at most EPS32 / 2 of its result. Two float32 computations of the
# same quantity by different kernels (batch sizes, BLAS blocking, CPU features) differ by a multiple of EPS32
# times the magnitude of the values, never by a fixed absolute amount.
EPS32 = float(torch.finfo(torch.float32).eps)  # 1.19e-7


@pytest.fixture(scope="module")
def model():
    return clf.load_classifier()


@pytest.fixture(scope="module")
def test_split():
    return digits(split="test")


def test_shipped_weights_are_small_and_load_weights_only():
    assert clf.WEIGHTS.is_file()
    assert clf.WEIGHTS.stat().st_size < 500_000
    ckpt = torch.load(clf.WEIGHTS, weights_only=True)
    assert ckpt["format"] == clf.WEIGHTS_FORMAT


def test_shipped_classifier_accuracy_on_held_out_split(model, test_split):
    images, labels = test_split
    assert not model.training
    acc = clf.accuracy(model, images, labels)
    assert acc >= 0.97
    recorded = torch.load(clf.WEIGHTS, weights_only=True)["test_accuracy"]
    assert abs(acc - recorded) <= 1 / len(labels) + 1e-12  # the file's record, within one image


def test_outputs_shapes_and_consistency(model, test_split):
    images, _ = test_split
    x = images[:37]
    with torch.no_grad():
        feats, probs, logits = model.features(x), model.probs(x), model(x)
    assert feats.shape == (37, clf.N_FEATURES) and probs.shape == (37, 10)
    # a softmax row sums to 1 up to the rounding of ~10 float32 additions and divisions of values <= 1
    torch.testing.assert_close(probs.sum(1), torch.ones(37), rtol=0, atol=32 * EPS32)
    torch.testing.assert_close(model.head(feats), logits, rtol=0, atol=0)  # forward is head(features): the same ops
    assert torch.equal(model.predict(x), probs.argmax(1))


def test_digit_feature_helpers(model, test_split):
    images, labels = test_split
    x = images[:100]
    feats = metrics.digit_features(x, model, batch_size=32)  # several batches
    assert metrics.digit_features is clf.digit_features
    assert feats.shape == (100, clf.N_FEATURES) and feats.dtype == np.float64
    with torch.no_grad():
        want, logits = model.features(x).double().numpy(), model(x).double().numpy()
        probs = model.probs(x).double().numpy()
    # batches of 32 against one batch of 100: other BLAS blocking, so float32 sums accumulate in another
    # order. The features (up to ~30) pass through 4 layers of dot products: 64 * EPS32 * max|feature|
    # (2e-4 here) leaves a wide margin over the 1e-6..6e-6 seen, yet catches any real error (a wrong
    # row, batch mixing), which moves features by O(1).
    np.testing.assert_allclose(feats, want, rtol=0, atol=64 * EPS32 * np.abs(want).max())
    # softmax moves by at most 2 max|d logit|, so the probabilities get twice the logits' tolerance
    np.testing.assert_allclose(clf.digit_probs(x.numpy(), model), probs, rtol=0,
                               atol=2 * 64 * EPS32 * np.abs(logits).max())
    # default: the shipped classifier; the same weights and the same batches give the same bits
    np.testing.assert_array_equal(clf.digit_features(x), clf.digit_features(x, model))
    # stacked digits: channel j of image i is classified on its own
    stacked = torch.cat([images[0:30], images[30:60], images[60:90]], dim=1)  # (30, 3, 8, 8)
    labels3 = clf.digit_labels(stacked, model)
    expected = np.stack([model.predict(images[s:s + 30]).numpy() for s in (0, 30, 60)], axis=1)
    assert labels3.shape == (30, 3)
    # the argmax is stable under float32 rounding (batches of 30 vs one of 90) where the top two logits
    # are further apart than that rounding: check it, so that equality below is a sound claim
    top2 = np.sort(logits[:90], axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e3 * 64 * EPS32 * np.abs(logits).max()
    np.testing.assert_array_equal(labels3, expected)


def test_training_is_deterministic_and_leaves_global_state_alone():
    threads = torch.get_num_threads()
    rng_state = torch.get_rng_state()
    a, acc_a = clf.train_classifier(seed=3, epochs=1)
    b, acc_b = clf.train_classifier(seed=3, epochs=1)
    c, _ = clf.train_classifier(seed=4, epochs=1)
    assert acc_a == acc_b
    for (name, ta), tb, tc in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(ta, tb), name
    assert not all(torch.equal(ta, tc) for ta, tc in zip(a.state_dict().values(), c.state_dict().values()))
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_save_and_load_round_trip(tmp_path, model):
    path = tmp_path / "cnn.pt"
    clf.save_classifier(model, path, test_accuracy=0.5)
    again = clf.load_classifier(path=path)
    for ta, tb in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(ta, tb)
    assert torch.load(path, weights_only=True)["test_accuracy"] == 0.5


def test_load_refuses_other_files(tmp_path):
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a ganref digits classifier"):
        clf.load_classifier(path=tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        clf.load_classifier(path=tmp_path / "missing.pt")


def test_random_shift_moves_one_pixel_at_most():
    x = torch.full((200, 1, 8, 8), -1.0)
    x[:, 0, 3, 4] = 1.0
    out = clf.random_shift(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal((out == 1.0).flatten(1).sum(1), torch.ones(200, dtype=torch.long))  # the ink moved, whole
    rows, cols = torch.nonzero(out[:, 0] == 1.0)[:, 1:].T
    assert set(rows.tolist()) == {2, 3, 4} and set(cols.tolist()) == {3, 4, 5}  # all 9 shifts occur
    assert torch.equal(clf.random_shift(x, torch.Generator(), max_shift=0), x)


@pytest.mark.parametrize("call, word", [
    (lambda m: m.features(torch.zeros(4, 8, 8)), "x"),
    (lambda m: m.probs(torch.zeros(4, 3, 8, 8)), "x"),
    (lambda m: clf.digit_features(torch.zeros(4, 1, 7, 7), m), "images"),
    (lambda m: clf.digit_features(torch.full((4, 1, 8, 8), float("nan")), m), "images"),
    (lambda m: clf.digit_features(torch.zeros(4, 1, 8, 8, dtype=torch.long), m), "images"),
    (lambda m: clf.digit_features([[0.0]], m), "images"),
    (lambda m: clf.digit_features(torch.zeros(4, 1, 8, 8), m, batch_size=0), "batch_size"),
    (lambda m: clf.digit_labels(torch.zeros(4, 3, 8), m), "images"),
    (lambda m: clf.train_classifier(seed=-1), "seed"),
    (lambda m: clf.train_classifier(epochs=0), "epochs"),
])
def test_bad_inputs(model, call, word):
    with pytest.raises(ValueError, match=word):
        call(model)


@pytest.mark.slow
def test_retraining_reaches_the_shipped_accuracy():
    _, acc = clf.train_classifier(seed=0)
    assert acc >= 0.97


def test_perceptual_distance_is_lpips_with_unit_weights(model, test_split):
    """||P(x) - P(y)||^2 = sum_l mean_hw ||a_l(x)/|a_l(x)| - a_l(y)/|a_l(y)| ||^2 over the conv ReLUs,
    computed here from forward hooks, apart from the method's own loop (LPIPS Eq. (1), w_l = 1)."""
    x, y = test_split[0][:6].double(), test_split[0][6:12].double()
    net = clf.DigitsClassifier().double()
    net.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    acts = []
    hooks = [net.body[i].register_forward_hook(lambda m, a, out: acts.append(out)) for i in (1, 3, 6)]
    net.features(x), net.features(y)
    for h in hooks:
        h.remove()
    expected = torch.zeros(6, dtype=torch.float64)
    for ax, ay in zip(acts[:3], acts[3:]):
        nx = ax / (ax.norm(dim=1, keepdim=True) + 1e-10)
        ny = ay / (ay.norm(dim=1, keepdim=True) + 1e-10)
        expected += (nx - ny).pow(2).sum(1).mean((1, 2))
    got = (net.perceptual(x) - net.perceptual(y)).pow(2).sum(1)
    assert net.perceptual(x).shape == (6, 16 * 64 + 32 * 64 + 64 * 16)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    assert expected.min() > 0.05  # different digits are far apart
    assert (net.perceptual(x) - net.perceptual(x.clone())).abs().max() == 0
