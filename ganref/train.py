"""The one training loop: iterate, progress bar, history, callbacks, EMA, checkpoints, resume.

``fit`` knows nothing of any method. A method supplies ``step_fn(state, batch) -> {name: loss}``
and the loop does the rest. All randomness of a step comes from ``state.generator`` (a CPU
``torch.Generator`` saved in every checkpoint), so N steps in one go and N/2 + resume + N/2 give
identical parameters, histories and callback records. Callbacks and evaluations run on their own
generator, so what they draw never changes the training stream.

:class:`EMA` (an exponential moving average of a module's weights) and :class:`Ramp` (a schedule
that a config field can hold instead of a number) live in :mod:`ganref.schedules` and are re-exported here.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ganref.checkpoint import (CHECKPOINT_FORMAT, NonFiniteError, _differences, _non_finite, _read,
                               describe_run, load_checkpoint, save_checkpoint)
from ganref.schedules import EMA, Ramp, check_scheduled, set_lr, value_at
from ganref.utils import check_positive_int

__all__ = ["State", "Every", "fit", "EMA", "Ramp", "value_at", "set_lr", "check_scheduled", "save_checkpoint",
           "load_checkpoint", "describe_run", "NonFiniteError", "NonFiniteLossError", "CHECKPOINT_FORMAT"]

EVAL_SEED = 7_919  # callbacks at step k draw from a generator seeded with EVAL_SEED + k


NonFiniteLossError = NonFiniteError  # the name chapters 01-06 knew


# ----------------------------------------------------------------------------- state


@dataclass(frozen=True)
class Every:
    """A callback: ``fn(state)`` every ``every`` steps, its return value kept in ``state.records[name]``.

    It may return any object (samples, spectra, fields, dicts of numbers); to be saved in a checkpoint
    it must be made of tensors, numbers, strings, lists, tuples and dicts. It runs in eval mode, under
    ``torch.no_grad()``, with ``state.generator`` replaced by its own generator.
    """

    every: int
    fn: Callable[["State"], Any]
    name: str

    def __post_init__(self) -> None:
        check_positive_int("every", self.every)
        if not callable(self.fn):
            raise ValueError(f"fn must be callable as fn(state), got {type(self.fn).__name__}")
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")


@dataclass
class State:
    """Everything a run needs to continue: modules, optimizers, the random stream, the step.

    Attributes:
        modules: named networks, e.g. ``{"G": G, "D": D}``.
        optimizers: named optimizers, e.g. ``{"G": opt_g, "D": opt_d}``.
        generator: CPU generator that every random draw of a step uses.
        device: where the modules live.
        ema: averages of modules, by the name of the module they average: ``{"G": EMA(G)}``.
        step: number of completed steps.
        history: per-step values returned by the step function, by name.
        evals: ``(step, {metric: value})`` from the evaluation function.
        records: ``{callback name: [(step, object), ...]}`` from callbacks.
        elapsed: seconds spent in ``fit`` (steps and callbacks), over all resumed parts of the run.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    ema: dict[str, EMA] = field(default_factory=dict)
    step: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    records: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    elapsed: float = 0.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ema) - set(self.modules))
        if unknown:
            raise ValueError(f"ema averages modules {unknown} that are not in modules {sorted(self.modules)}")

    def randn(self, *shape: int) -> Tensor:
        """Standard normal noise of ``shape`` from the run's generator, on the run's device."""
        return torch.randn(*shape, generator=self.generator).to(self.device)

    def rand(self, *shape: int) -> Tensor:
        """Uniform [0, 1) noise of ``shape`` from the run's generator, on the run's device."""
        return torch.rand(*shape, generator=self.generator).to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "ema": {k: e.state_dict() for k, e in self.ema.items()},
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "evals": [[s, dict(e)] for s, e in self.evals],
            "records": {k: [[s, v] for s, v in r] for k, r in self.records.items()},
            "elapsed": self.elapsed,
            "shapes": _shapes(self.modules),
        }

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str = "checkpoint") -> None:
        if not isinstance(ckpt, Mapping) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{source} is not a ganref checkpoint (expected format {CHECKPOINT_FORMAT!r})")
        step = ckpt.get("step")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"{source} holds step {step!r}: a checkpoint's step must be an integer >= 0")
        mine, theirs = _shapes(self.modules), ckpt["shapes"]
        if set(mine) != set(theirs):
            raise ValueError(f"{source} holds modules {sorted(theirs)} but this run has {sorted(mine)}: "
                             "it was saved from another model")
        for name in mine:
            if mine[name] != theirs[name]:
                diff = sorted(set(mine[name].items()) ^ set(theirs[name].items()))[:2]
                raise ValueError(f"{source} was saved from another model: module {name!r} differs in "
                                 f"parameters {diff} (name, shape)")
        for what, have in (("optimizers", self.optimizers), ("ema", self.ema)):
            if set(ckpt[what]) != set(have):
                raise ValueError(f"{source} holds {what} {sorted(ckpt[what])} but this run has {sorted(have)}")
        bad = _non_finite({"modules": ckpt["modules"], "optimizers": ckpt["optimizers"], "ema": ckpt["ema"]})
        if bad:
            raise ValueError(f"{source} holds non-finite values ({bad}): it is not a good checkpoint")
        for k, m in self.modules.items():
            m.load_state_dict(ckpt["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        for k, e in self.ema.items():
            e.load_state_dict(ckpt["ema"][k])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.step = step
        self.history = {k: list(v) for k, v in ckpt["history"].items()}
        self.evals = [(int(s), dict(e)) for s, e in ckpt["evals"]]
        self.records = {k: [(int(s), v) for s, v in r] for k, r in ckpt["records"].items()}
        self.elapsed = float(ckpt["elapsed"])


def _shapes(modules: Mapping[str, nn.Module]) -> dict[str, dict[str, tuple[int, ...]]]:
    return {k: {n: tuple(t.shape) for n, t in m.state_dict().items()} for k, m in modules.items()}


# ----------------------------------------------------------------------------- the loop


def fit(
    step_fn: Callable[[State, Any], Mapping[str, Tensor | float]],
    state: State,
    data: Callable[[torch.Generator], Any],
    steps: int,
    *,
    eval_fn: Callable[[State], Mapping[str, float]] | None = None,
    eval_every: int = 0,
    callbacks: Sequence[Every] = (),
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = True,
    run_info: Mapping[str, Any] | None = None,
    progress: bool = True,
    desc: str = "train",
    log_every: int = 1,
) -> State:
    """Run ``step_fn`` until ``state.step == steps``.

    Args:
        step_fn: one training step, ``step_fn(state, batch) -> {"d_loss": ..., "g_loss": ...}``.
        state: modules, optimizers, EMAs and random stream; updated in place and returned.
        data: ``data(state.generator) -> batch`` (see :func:`ganref.data.batch_sampler`).
        steps: total number of steps of the run (a resumed run continues to this number).
        eval_fn: called every ``eval_every`` steps; its numbers go to ``state.evals``.
        callbacks: :class:`Every` callbacks; their results go to ``state.records``.
        checkpoint: file to write every ``checkpoint_every`` steps and at the end, after checking
            that every weight is finite; if it exists and ``resume`` is true, the run continues from
            it, provided it was made with the same config, seed and data (see :func:`describe_run`).
        run_info: more settings the checkpoint must match on resume (e.g. ``{"width": 64}``).
        log_every: keep every ``log_every``-th step's values in ``state.history``.

    Evaluations and callbacks run only on their schedule (step divisible by ``every``), on a generator
    of their own, so a run's parameters and records do not depend on them or on where it was resumed.

    Raises:
        NonFiniteError: a returned value is NaN or infinite, or a weight is at a checkpoint (names
            the step and the last good checkpoint).
        ValueError: a checkpoint from another run (the message lists the differences), or one
            ahead of ``steps``.
    """
    check_positive_int("steps", steps, minimum=0)
    check_positive_int("eval_every", eval_every, minimum=0)
    check_positive_int("checkpoint_every", checkpoint_every, minimum=0)
    check_positive_int("log_every", log_every)
    if not callable(step_fn):
        raise ValueError(f"step_fn must be callable, got {type(step_fn).__name__}")
    if not callable(data):
        raise ValueError(f"data must be callable as data(generator) -> batch, got {type(data).__name__}")
    if checkpoint_every and checkpoint is None:
        raise ValueError("checkpoint_every > 0 needs a checkpoint path")
    if eval_fn is not None and not callable(eval_fn):
        raise ValueError(f"eval_fn must be callable as eval_fn(state), got {type(eval_fn).__name__}")
    callbacks = list(callbacks)
    if not all(isinstance(c, Every) for c in callbacks):
        raise ValueError("callbacks must be train.Every(every, fn, name) objects")
    names = [c.name for c in callbacks]
    if len(set(names)) != len(names):
        raise ValueError(f"callback names must be unique, got {names}")
    if eval_fn is not None and eval_every:
        callbacks.append(Every(eval_every, eval_fn, "__eval__"))

    info = describe_run(step_fn, state, data, run_info)
    last_good = "none written"
    if checkpoint is not None and resume and Path(checkpoint).exists():
        saved = _read(Path(checkpoint), state.device)
        diffs = _differences(dict(saved.get("run", {})) if isinstance(saved, Mapping) else {}, info)
        if diffs:
            raise ValueError(f"checkpoint {str(checkpoint)!r} was made by another run; refusing to resume. "
                             f"Differences: {'; '.join(diffs)}. Use resume=False or another checkpoint path")
        if isinstance(saved, Mapping) and isinstance(saved.get("step"), int) and saved["step"] > steps:
            raise ValueError(f"checkpoint {str(checkpoint)!r} is at step {saved['step']}, past steps={steps}: "
                             "ask for at least as many steps, or use resume=False")
        state.load_state_dict(saved, source=f"checkpoint {str(checkpoint)!r}")
        last_good = f"{checkpoint} (step {state.step})"

    saved_at = state.step if last_good != "none written" else -1
    for m in state.modules.values():
        m.train()
    bar = tqdm(total=steps, initial=state.step, desc=desc, disable=not progress, mininterval=0.5)
    start = time.perf_counter() - state.elapsed
    try:
        while state.step < steps:
            values = step_fn(state, data(state.generator))
            step = state.step + 1
            keep = step % log_every == 0
            for name, v in values.items():
                v = float(v)
                if not math.isfinite(v):
                    raise NonFiniteError(f"{name} became {v} at step {step}; last good checkpoint: {last_good}")
                if keep:
                    state.history.setdefault(name, []).append(v)
            for name, ema in state.ema.items():
                ema.update(state.modules[name])
            state.step = step
            bar.update(1)
            if progress and step % 50 == 0:
                bar.set_postfix({k: f"{float(v):.3f}" for k, v in values.items()}, refresh=False)
            for cb in callbacks:
                if step % cb.every == 0:
                    _run_callback(cb, state)
            state.elapsed = time.perf_counter() - start
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
                save_checkpoint(state, checkpoint, info, last_good)
                last_good, saved_at = f"{checkpoint} (step {step})", step
    finally:
        bar.close()
    state.elapsed = time.perf_counter() - start
    if checkpoint is not None and saved_at != state.step:
        save_checkpoint(state, checkpoint, info, last_good)
    return state


def _run_callback(cb: Every, state: State) -> None:
    """Run one callback in eval mode on its own random streams, then restore everything."""
    modes = {k: m.training for k, m in state.modules.items()}
    run_generator = state.generator
    state.generator = torch.Generator().manual_seed(EVAL_SEED + state.step)
    devices = [state.device] if state.device.type == "cuda" else []
    for m in state.modules.values():
        m.eval()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            result = cb.fn(state)
    finally:
        state.generator = run_generator
        for k, m in state.modules.items():
            m.train(modes[k])
    if cb.name == "__eval__":
        if not isinstance(result, Mapping):
            raise ValueError(f"eval_fn must return a dict of numbers, got {type(result).__name__}")
        state.evals.append((state.step, {k: float(v) for k, v in result.items()}))
    else:
        state.records.setdefault(cb.name, []).append((state.step, result))
