import math

import numpy as np
import pytest
import torch

from ganref import data


def test_ring8_means_and_std():
    mix = data.ring8()
    assert mix.means.shape == (8, 2) and mix.std == 0.02
    torch.testing.assert_close(mix.means.norm(dim=1), torch.full((8,), 2.0, dtype=torch.float64))
    angles = torch.atan2(mix.means[:, 1], mix.means[:, 0]) % (2 * math.pi)
    torch.testing.assert_close(angles.sort().values, torch.arange(8, dtype=torch.float64) * math.pi / 4)
    # Samples: each one's offset from its nearest mean has std 0.02 per coordinate
    x = mix.sample(200_000, torch.Generator().manual_seed(0)).double()
    nearest = torch.cdist(x, mix.means).argmin(1)
    offset = x - mix.means[nearest]
    assert abs(offset.std().item() - 0.02) < 0.02 * 0.01  # 1% of std with 400k coordinates
    assert offset.mean(0).abs().max() < 5 * 0.02 / math.sqrt(200_000)
    counts = torch.bincount(nearest, minlength=8).double() / len(x)
    assert (counts - 1 / 8).abs().max() < 0.005


def test_grid25_means():
    mix = data.grid25()
    assert mix.means.shape == (25, 2) and mix.std == 0.05
    assert sorted(set(mix.means[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert len({tuple(m) for m in mix.means.tolist()}) == 25


def test_log_prob_matches_scipy_closed_form():
    from scipy.stats import multivariate_normal

    mix = data.ring8(std=0.3)
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2
    expected = sum(multivariate_normal(m.numpy(), 0.09 * np.eye(2)).pdf(x.numpy())
                   for m in mix.means) / 8
    torch.testing.assert_close(mix.log_prob(x).exp(), torch.tensor(expected), rtol=1e-10, atol=0)


def test_sampling_is_seeded():
    a = data.grid25().sample(100, torch.Generator().manual_seed(3))
    b = data.grid25().sample(100, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    s1 = data.swiss_roll(100, torch.Generator().manual_seed(3))
    s2 = data.swiss_roll(100, torch.Generator().manual_seed(3))
    assert s1.shape == (100, 2) and torch.equal(s1, s2)


def test_digits_scaled_with_labels_and_split():
    x, y = data.digits()
    assert x.shape == (1797, 1, 8, 8) and y.shape == (1797,)
    assert x.min() == -1 and x.max() == 1
    assert set(y.tolist()) == set(range(10))
    xtr, ytr = data.digits("train")
    xte, yte = data.digits("test")
    assert len(xtr) + len(xte) == 1797 and abs(len(xte) - 0.2 * 1797) < 1


def test_batch_sampler_from_tensor_and_callable():
    table = torch.arange(10.0).unsqueeze(1)
    sample = data.batch_sampler(table, 4)
    b = sample(torch.Generator().manual_seed(0))
    assert b.shape == (4, 1) and set(b.flatten().tolist()) <= set(range(10))
    s2 = data.batch_sampler(data.ring8().sample, 7)
    assert s2(torch.Generator().manual_seed(0)).shape == (7, 2)


@pytest.mark.parametrize("call, match", [
    (lambda: data.toy("moons"), "dataset must be one of"),
    (lambda: data.mixture("swiss_roll"), "mixture must be"),
    (lambda: data.digits("valid"), "split must be"),
    (lambda: data.batch_sampler(torch.zeros(3, 2), 0), "batch_size must be"),
    (lambda: data.batch_sampler(torch.zeros(0, 2), 4), "non-empty"),
    (lambda: data.ring8().sample(-5), "n must be"),
    (lambda: data.ring8().log_prob(torch.zeros(3, 3)), r"x must have shape \(N, 2\)"),
    (lambda: data.GaussianMixture(torch.zeros(2, 2), std=0.0), "std must be > 0"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_split_batch():
    chunks = data.split_batch(torch.arange(12.0).reshape(6, 2), 3, "n_dis")
    assert [c.tolist() for c in chunks] == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]
    with pytest.raises(ValueError, match=r"real must be a batch of n_dis \* B = 4 \* B rows, got \(6, 2\)"):
        data.split_batch(torch.zeros(6, 2), 4, "n_dis")


# ----------------------------------------------------------------------------- batch_sampler with d_steps


@pytest.mark.parametrize("d_steps", [1, 3])
def test_batch_sampler_draws_d_steps_batches_per_step(d_steps):
    table = torch.arange(50.0).reshape(25, 2)
    sample = data.batch_sampler(table, 4, d_steps=d_steps)
    b = sample(torch.Generator().manual_seed(0))
    assert b.shape == (d_steps * 4, 2)
    idx = torch.randint(25, (d_steps * 4,), generator=torch.Generator().manual_seed(0))  # with replacement
    assert torch.equal(b, table[idx])
    assert len(data.split_batch(b, d_steps)) == d_steps
    # a sampler function is asked for d_steps * B rows in one call
    asked = []
    fn = lambda n, g: (asked.append(n), torch.zeros(n, 2))[1]  # noqa: E731
    assert data.batch_sampler(fn, 4, d_steps=d_steps)(torch.Generator()).shape == (d_steps * 4, 2)
    assert asked == [d_steps * 4]
    mix = data.ring8()
    assert torch.equal(data.batch_sampler(mix.sample, 5, d_steps=d_steps)(torch.Generator().manual_seed(1)),
                       mix.sample(d_steps * 5, torch.Generator().manual_seed(1)))


def test_batch_sampler_fingerprint_tells_data_apart():
    fp = lambda d, b=4, k=1: data.batch_sampler(d, b, d_steps=k).fingerprint  # noqa: E731
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    assert fp(x) == fp(x.clone())  # equal data: equal fingerprints
    y = x.clone()
    y[17, 1] += 1e-6  # one number changed
    assert fp(y) != fp(x)
    assert fp(x.reshape(60, 1)) != fp(x)  # the same numbers in another shape
    assert fp(x.double()) != fp(x)  # another dtype
    assert fp(x, 4, 2) != fp(x, 4, 1)  # rows per step are part of it
    assert fp(x, 4, 2) == fp(x, 8, 1)  # 2 x 4 or 1 x 8 rows: the same stream of data (the config tells them apart)
    assert "8 rows per step" in fp(x, 4, 2)
    # mixtures: the same mixture built twice agrees, other means or another std do not
    assert fp(data.ring8().sample) == fp(data.ring8().sample)
    assert fp(data.ring8().sample) != fp(data.grid25().sample)
    assert fp(data.ring8().sample) != fp(data.ring8(std=0.05).sample)
    assert fp(data.ring8().sample) != fp(data.ring8(radius=3.0).sample)
    assert fp(data.swiss_roll) == fp(data.swiss_roll) != fp(data.ring8().sample)


@pytest.mark.parametrize("d_steps", [0, -1, True, 2.0])
def test_batch_sampler_bad_d_steps(d_steps):
    with pytest.raises(ValueError, match="d_steps must be an integer >= 1"):
        data.batch_sampler(torch.zeros(3, 2), 4, d_steps=d_steps)


def test_batch_sampler_bad_data():
    with pytest.raises(ValueError, match="data must be a tensor or a callable"):
        data.batch_sampler(np.zeros((3, 2)), 4)
