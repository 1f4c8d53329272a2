"""ganref.schedules: Ramp against its closed forms, EMA against the closed form of the average."""

import math

import pytest
import torch
from torch import nn

from ganref.schedules import EMA, Ramp, check_scheduled, set_lr, value_at


def test_linear_and_cosine_ramps_match_their_closed_forms():
    lin = Ramp(2e-4, 5e-5, 100, kind="linear")
    cos = Ramp(2e-4, 5e-5, 100, kind="cosine")
    for k in (0, 1, 37, 50, 99, 100):
        assert lin(k) == pytest.approx(2e-4 + (5e-5 - 2e-4) * k / 100, rel=1e-15, abs=0)
        assert cos(k) == pytest.approx(5e-5 + (2e-4 - 5e-5) * (1 + math.cos(math.pi * k / 100)) / 2, rel=1e-15, abs=0)
    assert cos(50) == pytest.approx((2e-4 + 5e-5) / 2, rel=1e-15)
    assert lin(500) == cos(500) == 5e-5 and lin(-3) == 2e-4  # held at the ends
    assert value_at(0.3, 10) == 0.3 and value_at(lin, 100) == 5e-5


@pytest.mark.parametrize("kwargs, match", [
    (dict(start=1.0, end=0.0, steps=0), "steps must be an integer >= 1"),
    (dict(start=float("nan"), end=0.0, steps=3), "start must be a finite number"),
    (dict(start=True, end=0.0, steps=3), "start must be a finite number"),
    (dict(start=1.0, end=0.0, steps=3, kind="step"), "kind must be one of 'linear', 'cosine'"),
])
def test_bad_ramps(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Ramp(**kwargs)


def test_check_scheduled_checks_both_ends():
    check_scheduled("lr", Ramp(1e-3, 1e-4, 10), low=0, low_open=True)
    with pytest.raises(ValueError, match="lr.end must be a finite number > 0"):
        check_scheduled("lr", Ramp(1e-3, 0.0, 10), low=0, low_open=True)
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        check_scheduled("lr", -1.0, low=0, low_open=True)


def test_set_lr_sets_every_group():
    a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 5.0}], lr=1.0)
    set_lr(opt, 0.25)
    assert [g["lr"] for g in opt.param_groups] == [0.25, 0.25]


def test_ema_equals_the_closed_form_of_the_average():
    """theta_k = k (a known sequence): EMA_n = d^n theta_0 + (1 - d) sum_{k=1..n} d^(n-k) theta_k."""
    src = nn.Linear(3, 2).double()
    with torch.no_grad():
        src.weight.fill_(0.0)
        src.bias.fill_(0.0)
    d, n = 0.95, 40
    ema = EMA(src, d)
    for k in range(1, n + 1):
        with torch.no_grad():
            src.weight.fill_(float(k))
            src.bias.fill_(-2.0 * k)
        ema.update(src)
    closed = (1 - d) * sum(d ** (n - k) * k for k in range(1, n + 1))  # theta_0 = 0
    torch.testing.assert_close(ema.module.weight, torch.full((2, 3), closed, dtype=torch.float64), rtol=1e-13, atol=0)
    torch.testing.assert_close(ema.module.bias, torch.full((2,), -2 * closed, dtype=torch.float64), rtol=1e-13, atol=0)
    assert int(ema.updates) == n and not ema.module.weight.requires_grad


def test_ema_with_a_ramped_decay_uses_the_update_count():
    src = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        src.weight.fill_(0.0)
    ema = EMA(src, Ramp(0.0, 0.5, 2, kind="linear"))  # decays 0, 0.25, 0.5, 0.5, ...
    values, avg = [1.0, 2.0, 3.0], 0.0
    for k, v in enumerate(values):
        with torch.no_grad():
            src.weight.fill_(v)
        ema.update(src)
        d = min(k, 2) * 0.25
        avg = d * avg + (1 - d) * v
    assert float(ema.module.weight) == pytest.approx(avg, rel=1e-15)


def test_ema_copies_buffers_stays_in_eval_and_refuses_another_module():
    src = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(src, 0.9)
    src.train()
    src(torch.randn(8, 2))  # moves the running statistics
    ema.update(src)
    torch.testing.assert_close(ema.module[1].running_mean, src[1].running_mean, rtol=0, atol=0)
    ema.train()
    assert not ema.module.training
    with pytest.raises(ValueError, match="other parameters"):
        ema.update(nn.Linear(2, 3))
    with pytest.raises(ValueError, match=r"decay must be a finite number >= 0 and < 1"):
        EMA(src, 1.0)
    with pytest.raises(ValueError, match="source must be an nn.Module"):
        EMA("G")
