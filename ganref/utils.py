"""Run-time helpers shared by every chapter: device choice, seeding and profiles.

A *profile* sets how much compute a chapter spends:

- ``smoke``: the CI budget, each chapter in at most about a minute on 2 CPU cores;
- ``cpu``: the default, meaningful results on the embedded data in a few minutes on a laptop;
- ``full``: paper-like budgets for a GPU.

Tools that cannot pass parameters (nbval, a fresh JupyterLab kernel) read the default from the
environment variable ``GANREF_PROFILE``.
"""

from __future__ import annotations

import glob
import math
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "full")
PROFILE_ENV = "GANREF_PROFILE"
T = TypeVar("T")


def device(name: str | torch.device = "auto") -> torch.device:
    """Return a torch device: ``"auto"`` picks cuda, then mps, then cpu.

    Args:
        name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or a ``torch.device``.

    Raises:
        ValueError: for an unknown name, or a device this machine does not have.
    """
    if isinstance(name, torch.device):
        return name
    if not isinstance(name, str):
        raise ValueError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'mps', got {name!r}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be one of 'auto', 'cpu', 'cuda[:N]', 'mps', got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available on this machine; use 'auto' or 'cpu'")
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} was asked for but MPS is not available on this machine; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU ``torch.Generator`` seeded with ``seed``.

    The same seed gives the same numbers on the same machine (CPU kernels are deterministic;
    on CUDA some kernels are not, and the chapters say so where it matters).
    """
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return torch.Generator().manual_seed(int(seed))


def resolve_profile(profile: str | None = None) -> str:
    """Return the profile name: ``profile`` if given, else ``$GANREF_PROFILE``, else ``"cpu"``."""
    name = profile if profile is not None else os.environ.get(PROFILE_ENV, "cpu")
    if name not in PROFILES:
        source = "profile" if profile is not None else f"${PROFILE_ENV}"
        raise ValueError(f"{source} must be one of {', '.join(PROFILES)}, got {name!r}")
    return name


def by_profile(profile: str, *, smoke: T, cpu: T, full: T) -> T:
    """Pick the value for ``profile``: ``by_profile(p, smoke=200, cpu=5000, full=50000)``."""
    return {"smoke": smoke, "cpu": cpu, "full": full}[resolve_profile(profile)]


# --- argument checks: one checker for every config and function ---------------------------------
#
# Configs call these in ``__post_init__`` and are frozen dataclasses, so a config that exists is valid.
# Bools are rejected where numbers are expected (``lr=True`` is a bug, not 1.0); NumPy scalars are
# accepted; infinities and NaN are rejected.


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise a ValueError naming ``name`` if it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(name: str, value: object, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a float if it is a finite real number in the given range, else a ValueError.

    ``check_number("lr", lr, low=0, low_open=True)`` asks for lr > 0; ``low=0`` alone for lr >= 0.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (low is None or (v > low if low_open else v >= low)) \
            and (high is None or (v < high if high_open else v <= high))
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        raise ValueError(f"{name} must be a finite number{' ' + ' and '.join(bounds) if bounds else ''}, "
                         f"got {value!r}")
    return float(value)


def check_positive(name: str, value: object) -> float:
    """A finite number > 0 (learning rates, standard deviations, clip values)."""
    return check_number(name, value, low=0, low_open=True)


def check_betas(name: str, betas: object) -> tuple[float, float]:
    """Adam's ``(beta1, beta2)``: two finite numbers in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{name} must be two numbers in [0, 1), got {betas!r}")
    try:
        return tuple(check_number(f"{name}[{i}]", b, low=0, high=1, high_open=True)
                     for i, b in enumerate(betas))  # type: ignore[return-value]
    except ValueError:
        raise ValueError(f"{name} must be two numbers in [0, 1), got {betas!r}") from None


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_config(cfg: object, expected: type | tuple[type, ...], where: str) -> None:
    """Refuse another method's config: ``check_config(cfg, WGANConfig, "wgan.wgan_step")``."""
    if not isinstance(cfg, expected):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise TypeError(f"{where} needs a {names}, got {type(cfg).__name__}: each step takes its own "
                        "method's config")


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    A reader never sees a half-written file, and a crash leaves the old file (or none) behind.
    The temporary file is ``<name>.<pid>.<random>.tmp`` (git ignores ``*.tmp``); one left by an
    interrupted write (``kill -9``, power loss) is removed by the next write of the same path once
    its process no longer runs, and so is a pre-pid one (``<name><random>.tmp``) over an hour old.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    leftover = re.compile(re.escape(path.name) + r"(?:\.(\d+)\.[a-z0-9_]+|[a-z0-9_]{8})\.tmp")
    for old in path.parent.glob(f"{glob.escape(path.name)}*.tmp"):
        m = leftover.fullmatch(old.name)
        try:
            stale = m is not None and (not _pid_alive(int(m.group(1))) if m.group(1)
                                       else time.time() - old.stat().st_mtime > 3600)
            if stale:
                old.unlink()
        except OSError:  # gone already, or not ours to remove: the write itself still goes ahead
            pass
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; results and checkpoints are meant to be read
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (assumed alive where that cannot be checked)."""
    if os.name != "posix":  # on Windows os.kill(pid, 0) would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, under another user
        return True
    return True
