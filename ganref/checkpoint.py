"""Checkpoints: written atomically after every weight is checked finite, read with ``weights_only=True``.

A checkpoint also records the run that made it (config, seed, data; :func:`describe_run`), so that
:func:`ganref.train.fit` can refuse to resume a changed run and list the differences.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from ganref.utils import atomic_write

if TYPE_CHECKING:
    from ganref.train import State

CHECKPOINT_FORMAT = "ganref-checkpoint-2"


class NonFiniteError(RuntimeError):
    """A loss or a weight became NaN or infinite; the message names the step and the last good checkpoint."""


def _non_finite(tree: Any, where: str = "") -> str:
    """The first place in a nested state dict that holds a NaN or an infinity ('' when none)."""
    if isinstance(tree, Tensor):
        return where if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else ""
    if isinstance(tree, float):
        return where if not math.isfinite(tree) else ""
    items = tree.items() if isinstance(tree, Mapping) else enumerate(tree) if isinstance(tree, (list, tuple)) else ()
    for k, v in items:
        bad = _non_finite(v, f"{where}.{k}" if where else str(k))
        if bad:
            return bad
    return ""


def _checkpointable(obj: Any, where: str) -> None:
    """Refuse objects that ``torch.load(weights_only=True)`` could not read back."""
    if obj is None or isinstance(obj, (Tensor, bool, int, float, str)):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _checkpointable(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise ValueError(f"{where} has a key of type {type(k).__name__}: checkpoints keep str or int keys")
            _checkpointable(v, f"{where}[{k!r}]")
        return
    raise ValueError(f"{where} is a {type(obj).__name__}, which a checkpoint cannot hold: return tensors, "
                     "numbers, strings, lists or dicts from callbacks, or run without a checkpoint")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` into memory, then an atomic write: never a half-written checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names and bytes, in name order): what identifies trained weights."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def key_digest(key: Mapping[str, Any], length: int = 12) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``key`` as sorted JSON: a file name for a cache entry."""
    return hashlib.sha256(json.dumps(dict(key), sort_keys=True).encode()).hexdigest()[:length]


def cached_arrays(path: str | os.PathLike, key: Mapping[str, Any],
                  make: Callable[[], Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The tensors stored at ``path`` (a .npz, no pickles) if written for ``key``, else ``make()`` stored there.

    ``key`` (JSON-able: settings, seeds, a :func:`weights_sha256`) says what made the arrays; the file is
    written atomically, so a stopped run leaves no half file.

    Raises:
        ValueError: the file exists but was written for another key (it is left as it is: remove it or
            pick another path), or ``make()`` returned the name ``"key"``.
    """
    key = json.loads(json.dumps(dict(key), sort_keys=True))  # what reading it back gives
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as f:
            have = json.loads(str(f["key"]))
            if have != key:
                diff = {k: (have.get(k), v) for k in sorted(set(key) | set(have)) if have.get(k) != (v := key.get(k))}
                raise ValueError(f"cache {path} was written for another teacher, profile or setting "
                                 f"(field: (in file, wanted) = {diff}); nothing was overwritten: delete it to rebuild")
            return {name: torch.from_numpy(f[name]) for name in f.files if name != "key"}
    arrays = {name: t.detach().cpu() for name, t in make().items()}
    if "key" in arrays:
        raise ValueError("make() must not return an array named 'key': the cache keeps its key under that name")
    buf = io.BytesIO()
    np.savez(buf, key=np.array(json.dumps(key, sort_keys=True)), **{n: t.numpy() for n, t in arrays.items()})
    atomic_write(path, buf.getvalue())
    return arrays


def save_checkpoint(state: "State", path: str | os.PathLike, run_info: Mapping[str, Any] | None = None,
                    last_good: str = "none written") -> None:
    """Verify that every weight and optimizer value is finite, then write ``state`` atomically.

    Raises:
        NonFiniteError: a weight, buffer or optimizer value is NaN or infinite; the file at ``path``
            (the last good checkpoint, if any) is left as it was.
    """
    ckpt = state.state_dict()
    bad = _non_finite({"modules": ckpt["modules"], "optimizers": ckpt["optimizers"], "ema": ckpt["ema"]})
    if bad:
        raise NonFiniteError(f"{bad} became non-finite by step {state.step}; the checkpoint was not written; "
                             f"last good checkpoint: {last_good}")
    for name, rec in state.records.items():
        _checkpointable([v for _, v in rec], f"callback {name!r}'s result")
    ckpt["run"] = dict(run_info or {})
    atomic_save(ckpt, path)


def _read(path: Path, device: torch.device) -> Mapping[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # a corrupt file or one holding arbitrary objects
        raise ValueError(f"checkpoint {str(path)!r} could not be read as a ganref checkpoint: {err}") from err


def load_checkpoint(state: "State", path: str | os.PathLike) -> dict[str, Any]:
    """Restore ``state`` from ``path`` (``weights_only=True``: no arbitrary unpickling); return its run info."""
    path = Path(path)
    ckpt = _read(path, state.device)
    state.load_state_dict(ckpt, source=f"checkpoint {str(path)!r}")
    return dict(ckpt.get("run", {}))


def describe_run(step_fn: Callable, state: "State", data: Callable, extra: Mapping[str, Any] | None = None) -> dict:
    """What a checkpoint records about its run, so that resume can refuse a changed one.

    The config is the dataclass the step function was given (``functools.partial(step, cfg=cfg)`` or a
    lambda that closes over ``cfg``), the seed is the run generator's initial seed, the data is the
    sampler's ``fingerprint`` (:func:`ganref.data.batch_sampler` sets one); ``extra`` adds anything else.
    """
    configs = {}
    candidates: dict[str, Any] = {}
    if isinstance(step_fn, functools.partial):
        candidates.update({f"arg{i}": a for i, a in enumerate(step_fn.args)}, **step_fn.keywords)
    elif inspect.isfunction(step_fn):
        candidates.update(inspect.getclosurevars(step_fn).nonlocals)
    for name, value in candidates.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            configs[name] = {"type": type(value).__name__, **{k: repr(v) for k, v in dataclasses.asdict(value).items()}}
    info = {"config": configs, "seed": int(state.generator.initial_seed()),
            "data": str(getattr(data, "fingerprint", "unknown"))}
    info.update({k: repr(v) for k, v in (extra or {}).items()})
    return info


def _differences(saved: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key, "<absent>"), now.get(key, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} in the checkpoint, {b} now")
    return out
