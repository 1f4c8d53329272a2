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
