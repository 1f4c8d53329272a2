"""A chapter's results record: one JSON file, rewritten atomically on every ``record``.

The runner passes ``results_path``; run by hand, a chapter writes to ``runs/<profile>/<chapter>.json``.
Layout::

    {"chapter": "01_vanilla_gan", "title": ..., "profile": "cpu", "device": "cpu", "seed": 0,
     "torch": "2.13.0", "updated": "...", "results": {...}, "references": [...]}
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganref.utils import atomic_write, resolve_profile


def _plain(value: Any, key: str) -> Any:
    """Convert tensors and numpy values to JSON types; refuse NaN and infinities."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"result {key!r} is {value}: only finite numbers can be recorded")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"result {key!r} has type {type(value).__name__}: record numbers, strings, lists or dicts")


class Report:
    """Collects a chapter's key numbers and writes them as JSON after each ``record``.

    Args:
        chapter: the chapter's name, e.g. ``"01_vanilla_gan"``.
        title: a human title for the results table.
        profile, device, seed: the run's parameters (recorded with the numbers).
        path: where to write; ``None`` writes ``runs/<profile>/<chapter>.json`` under the current directory.
    """

    def __init__(self, chapter: str, title: str, profile: str, device: str, seed: int,
                 path: str | os.PathLike | None = None):
        profile = resolve_profile(profile)
        self.path = Path(path) if path else Path("runs") / profile / f"{chapter}.json"
        self.data: dict[str, Any] = {
            "chapter": chapter, "title": title, "profile": profile, "device": str(device),
            "seed": int(seed), "torch": torch.__version__, "results": {}, "references": [],
        }

    def record(self, **results: Any) -> None:
        """Add or replace named results and rewrite the file: ``report.record(modes_ring8=7.7)``."""
        for k, v in results.items():
            self.data["results"][k] = _plain(v, k)
        self._write()

    def reference(self, key: str, value: float, source: str, note: str = "") -> None:
        """A published number to set beside ``results[key]`` in the results table."""
        self.data["references"] = [r for r in self.data["references"] if r["key"] != key]
        self.data["references"].append({"key": key, "value": _plain(value, key), "source": source, "note": note})
        self._write()

    def _write(self) -> None:
        self.data["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        atomic_write(self.path, json.dumps(self.data, indent=2, sort_keys=False) + "\n")


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results JSON written by :class:`Report`."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or "results" not in data or "chapter" not in data:
        raise ValueError(f"{path} is not a ganref results file (no 'chapter'/'results' keys)")
    return data
