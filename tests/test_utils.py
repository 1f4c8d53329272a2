"""Tests for ganref.utils: devices, profiles, seeding, and the one argument checker every config uses."""

import dataclasses

import numpy as np
import pytest
import torch

import ganref
from ganref import utils


def test_device_auto_and_cpu():
    assert ganref.device("cpu") == torch.device("cpu")
    assert ganref.device("auto").type in ("cpu", "cuda", "mps")


@pytest.mark.parametrize("name, match", [("gpu", "device must be one of"), (3, "device must be a string")])
def test_unknown_device(name, match):
    with pytest.raises(ValueError, match=match):
        ganref.device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_missing_is_clear():
    with pytest.raises(ValueError, match="CUDA is not available"):
        ganref.device("cuda")


def test_profiles(monkeypatch):
    monkeypatch.delenv(utils.PROFILE_ENV, raising=False)
    assert ganref.resolve_profile() == "cpu"
    monkeypatch.setenv(utils.PROFILE_ENV, "smoke")
    assert ganref.resolve_profile() == "smoke"
    assert ganref.resolve_profile("full") == "full"
    assert ganref.by_profile("smoke", smoke=1, cpu=2, full=3) == 1
    with pytest.raises(ValueError, match="profile must be one of smoke, cpu, full, got 'fast'"):
        ganref.resolve_profile("fast")
    monkeypatch.setenv(utils.PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match=r"\$GANREF_PROFILE must be one of"):
        ganref.resolve_profile()


def test_seed_everything_reproduces():
    g = ganref.seed_everything(7)
    a = torch.randn(3), torch.randn(3, generator=g)
    g = ganref.seed_everything(7)
    b = torch.randn(3), torch.randn(3, generator=g)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        ganref.seed_everything(-1)


# ----------------------------------------------------------------------------- the one checker


@pytest.mark.parametrize("value", [3, 2.5, np.float32(2.5), np.float64(-1e300), np.int64(7), np.int8(-3), 0, -0.0])
def test_check_number_accepts_finite_reals_and_returns_a_float(value):
    out = utils.check_number("x", value)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), float("inf"), -float("inf"), float("nan"),
                                   np.float32("nan"), np.float64("inf"), "1.0", None, [1.0], 1 + 2j])
def test_check_number_rejects_bools_non_finite_and_non_numbers_naming_the_argument(value):
    with pytest.raises(ValueError, match=r"^gp_weight must be a finite number, got "):
        utils.check_number("gp_weight", value)


def test_check_number_bounds_and_their_message():
    assert utils.check_number("p", 0.0, low=0) == 0.0  # closed bounds include the ends
    assert utils.check_number("p", 1.0, low=0, high=1) == 1.0
    with pytest.raises(ValueError, match=r"^p must be a finite number > 0, got 0.0$"):
        utils.check_number("p", 0.0, low=0, low_open=True)
    with pytest.raises(ValueError, match=r"^p must be a finite number >= 0 and < 1, got 1$"):
        utils.check_number("p", 1, low=0, high=1, high_open=True)
    with pytest.raises(ValueError, match=r"^p must be a finite number <= 2.5, got 3$"):
        utils.check_number("p", 3, high=2.5)
    assert utils.check_number("p", np.float32(0.5), low=0, high=1, high_open=True) == 0.5


def test_check_positive():
    assert utils.check_positive("lr", 1e-4) == 1e-4
    assert utils.check_positive("lr", np.float16(0.5)) == 0.5
    for bad in (0, -1e-4, True, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"^lr must be a finite number > 0, got "):
            utils.check_positive("lr", bad)


def test_check_positive_int():
    assert utils.check_positive_int("n", np.int64(3)) == 3 and type(utils.check_positive_int("n", np.int64(3))) is int
    assert utils.check_positive_int("seed", 0, minimum=0) == 0
    for bad in (0, -2, True, 2.0, np.float64(2.0), "3", None):
        with pytest.raises(ValueError, match=r"^n must be an integer >= 1, got "):
            utils.check_positive_int("n", bad)


def test_check_betas():
    assert utils.check_betas("betas", (0.5, 0.999)) == (0.5, 0.999)
    assert utils.check_betas("betas", [0, np.float32(0.5)]) == (0.0, 0.5)  # a list and NumPy numbers are fine
    for bad in ("x", "ab", 0.5, (0.5,), (0.5, 0.9, 0.9), (1.0, 0.9), (0.5, 1.0), (-0.1, 0.9), (True, 0.9),
                (0.5, float("nan")), (0.5, float("inf")), None):
        with pytest.raises(ValueError, match=r"^betas must be two numbers in \[0, 1\), got "):
            utils.check_betas("betas", bad)


def test_check_choice():
    assert utils.check_choice("loss", "hinge", ("hinge", "nonsaturating")) == "hinge"
    for bad in ("Hinge", "", None, 1, ("hinge",)):
        with pytest.raises(ValueError, match=r"^loss must be one of 'hinge', 'nonsaturating', got "):
            utils.check_choice("loss", bad, ("hinge", "nonsaturating"))


def test_check_bool():
    assert utils.check_bool("spectral_norm", True) is True
    assert utils.check_bool("spectral_norm", np.bool_(False)) is False
    for bad in (1, 0, "True", None, 1.0):
        with pytest.raises(ValueError, match=r"^spectral_norm must be True or False, got "):
            utils.check_bool("spectral_norm", bad)


def test_check_config_names_both_configs_and_the_function():
    @dataclasses.dataclass(frozen=True)
    class AConfig:
        lr: float = 1.0

    @dataclasses.dataclass(frozen=True)
    class BConfig:
        lr: float = 1.0

    class ASubConfig(AConfig):
        pass

    utils.check_config(AConfig(), AConfig, "a.a_step")
    utils.check_config(ASubConfig(), AConfig, "a.a_step")  # a subclass is one
    utils.check_config(BConfig(), (AConfig, BConfig), "a.make_optimizers")
    with pytest.raises(TypeError, match=r"^a.a_step needs a AConfig, got BConfig: each step takes its own"):
        utils.check_config(BConfig(), AConfig, "a.a_step")
    with pytest.raises(TypeError, match=r"^a.make_optimizers needs a AConfig or BConfig, got dict"):
        utils.check_config({"lr": 1.0}, (AConfig, BConfig), "a.make_optimizers")
