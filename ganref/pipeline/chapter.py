"""The one setup call every chapter opens with: parameters -> profile, device, seed, report, budget.

A chapter's first code cell after its ``parameters`` cell is::

    ch = ganref.setup("01_vanilla_gan", "The original GAN", profile, device, seed, results_path,
                      budget=dict(smoke=dict(steps=150), cpu=dict(steps=2500), full=dict(steps=20000)))

and the rest of the chapter reads ``ch.profile``, ``ch.device``, ``ch.seed``, ``ch.budget["steps"]``
and records numbers with ``ch.report.record(...)``. Run by hand, a chapter ends with
``ch.report.complete()`` to mark its record complete; under ``ganref run`` the runner does that.

A chapter names its headline numbers, the handful that ``ganref results`` and the results page
show as mean ± std over seeds, with ``headlines=`` (or ``ch.report.headline(...)`` later)::

    ch = ganref.setup(..., headlines={"ring8_modes_mean": "higher",
                                      "digits_fid": dict(better="lower", label="FID of 8x8 digits")})
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from pathlib import Path

from ganref.pipeline.report import Report, hand_root
from ganref.utils import PROFILES, check_positive_int, device as pick_device, resolve_profile, seed_everything


@dataclass(frozen=True)
class Chapter:
    """What a chapter's cells share. ``generator`` is the CPU generator ``seed_everything(seed)`` returned."""

    name: str
    profile: str
    device: torch.device
    seed: int
    budget: Mapping[str, Any]
    report: Report
    generator: torch.Generator

    @property
    def cache_dir(self) -> Path:
        """``<project>/runs/<profile>/cache/``: what a chapter computes once and reads back on reruns
        (teachers' ODE pairs, ...), each file named by a digest of what made it."""
        return hand_root() / "runs" / self.profile / "cache"

    def check(self, ok: bool, message: str) -> bool:
        """A lesson's check on trained numbers: at ``cpu`` and ``full`` a failure raises
        ``AssertionError(message)``. ``smoke`` budgets are too small to settle such a lesson at every
        seed, so there a failure is printed and listed in ``results["smoke_unjudged"]`` instead."""
        if ok:
            return True
        if self.profile != "smoke":
            raise AssertionError(message)
        print(f"not judged at the smoke budget: {message}")
        self.report.record(smoke_unjudged=[*self.report.data["results"].get("smoke_unjudged", []), message])
        return False


def setup(name: str, title: str, profile: str | None = None, device: str | torch.device = "auto", seed: int = 0,
          results_path: str | os.PathLike | None = None, *, budget: Mapping[str, Mapping[str, Any]],
          quiet: bool = False, headlines: Mapping[str, str | Mapping[str, Any]] | None = None) -> Chapter:
    """Resolve a chapter's parameters, seed everything and open its results record.

    Args:
        name: the chapter's file stem, e.g. ``"01_vanilla_gan"``.
        title: its human title (the results table shows it).
        profile: ``"smoke"``, ``"cpu"``, ``"full"`` or ``None`` (``$GANREF_PROFILE``, else ``"cpu"``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"mps"``.
        seed: the run's seed (>= 0).
        results_path: where the results JSON goes (the runner passes its staging path); ``None``, a run
            by hand: ``<project>/runs/<profile>/interactive/<name>.json``, marked ``"running"`` until
            ``ch.report.complete()`` (see :mod:`ganref.pipeline.report`).
        budget: ``{"smoke": {...}, "cpu": {...}, "full": {...}}``, the same keys in each profile.
        quiet: do not print the one-line summary.
        headlines: result key -> what "better" means (``"higher"``, ``"lower"``, ``"closer"``), or
            -> ``dict(better=..., label=..., target=...)``; see :meth:`Report.headline`.
    Raises:
        ValueError: an unknown profile or device, a bad seed, a budget whose profiles differ in keys,
            or a headline with an unknown meaning of "better".
    """
    profile = resolve_profile(profile)
    seed = check_positive_int("seed", seed, minimum=0)
    if not isinstance(budget, Mapping) or set(budget) != set(PROFILES):
        got = sorted(budget) if isinstance(budget, Mapping) else type(budget).__name__
        raise ValueError(f"budget must map each profile {', '.join(PROFILES)} to its settings, got {got}")
    for p in PROFILES:
        if not isinstance(budget[p], Mapping):
            raise ValueError(f"budget[{p!r}] must be a dict of settings such as dict(steps=150), "
                             f"got {type(budget[p]).__name__} {budget[p]!r}")
    keys = {p: set(budget[p]) for p in PROFILES}
    if len({frozenset(k) for k in keys.values()}) != 1:
        raise ValueError("budget must give the same settings in every profile, got "
                         + "; ".join(f"{p}: {sorted(k)}" for p, k in keys.items()))
    dev = pick_device(device)
    generator = seed_everything(seed)
    report = Report(name, title, profile, dev, seed, results_path)
    if headlines is not None and not isinstance(headlines, Mapping):
        raise ValueError(f"headlines must map result keys to 'higher', 'lower' or 'closer' (or a dict), "
                         f"got {type(headlines).__name__}")
    for key, how in (headlines or {}).items():
        report.headline(key, **(dict(how) if isinstance(how, Mapping) else {"better": how}))
    chosen = dict(budget[profile])
    report.record(budget=chosen)
    if not quiet:
        print(f"profile {profile}, device {dev}, seed {seed}: {chosen}")
    return Chapter(name, profile, dev, seed, chosen, report, generator)
