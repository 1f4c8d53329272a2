"""Run-time helpers shared by every chapter: device choice, seeding and profiles.

A *profile* sets how much compute a chapter spends:

- ``smoke``: the CI budget, each chapter in at most about a minute on 2 CPU cores;
- ``cpu``: the default, meaningful results on the embedded data in a few minutes on a laptop;
- ``full``: paper-like budgets for a GPU.

Tools that cannot pass parameters (nbval, a fresh JupyterLab kernel) read the default from the
environment variable ``GANREF_PROFILE``.
"""

from __future__ import annotations

import os
import random
import tempfile
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


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise a ValueError naming ``name`` if it is below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    A reader never sees a half-written file, and a crash leaves the old file (or none) behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
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
