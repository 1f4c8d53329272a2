"""The one training loop: iterate, progress bar, history, periodic evaluation, checkpoints, resume.

``fit`` knows nothing of any method. A method supplies ``step_fn(state, batch) -> {name: loss}``
and the loop does the rest. All randomness of a step comes from ``state.generator`` (a CPU
``torch.Generator`` saved in every checkpoint), so N steps in one go and N/2 + resume + N/2 give
identical parameters.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ganref.utils import atomic_write, check_positive_int

CHECKPOINT_FORMAT = "ganref-checkpoint-1"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


@dataclass
class State:
    """Everything a run needs to continue: modules, optimizers, the random stream, the step.

    Attributes:
        modules: named networks, e.g. ``{"G": G, "D": D}``.
        optimizers: named optimizers, e.g. ``{"G": opt_g, "D": opt_d}``.
        generator: CPU generator that every random draw of a step uses.
        device: where the modules live.
        step: number of completed steps.
        history: per-step values returned by the step function, by name.
        evals: ``(step, {metric: value})`` from the evaluation callback.
    """

    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    step: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)
    evals: list[tuple[int, dict[str, float]]] = field(default_factory=list)

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
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": self.history,
            "evals": [[s, dict(e)] for s, e in self.evals],
            "shapes": _shapes(self.modules),
        }

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str = "checkpoint") -> None:
        if not isinstance(ckpt, Mapping) or ckpt.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{source} is not a ganref checkpoint (expected format {CHECKPOINT_FORMAT!r})")
        mine, theirs = _shapes(self.modules), ckpt["shapes"]
        if set(mine) != set(theirs):
            raise ValueError(f"{source} holds modules {sorted(theirs)} but this run has {sorted(mine)}: "
                             "it was saved from another model")
        for name in mine:
            if mine[name] != theirs[name]:
                diff = sorted(set(mine[name].items()) ^ set(theirs[name].items()))[:2]
                raise ValueError(f"{source} was saved from another model: module {name!r} differs in "
                                 f"parameters {diff} (name, shape)")
        if set(ckpt["optimizers"]) != set(self.optimizers):
            raise ValueError(f"{source} holds optimizers {sorted(ckpt['optimizers'])} but this run has "
                             f"{sorted(self.optimizers)}")
        for k, m in self.modules.items():
            m.load_state_dict(ckpt["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(ckpt["optimizers"][k])
        self.generator.set_state(ckpt["generator"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.step = int(ckpt["step"])
        self.history = {k: list(v) for k, v in ckpt["history"].items()}
        self.evals = [(int(s), dict(e)) for s, e in ckpt["evals"]]


def _shapes(modules: Mapping[str, nn.Module]) -> dict[str, dict[str, tuple[int, ...]]]:
    return {k: {n: tuple(t.shape) for n, t in m.state_dict().items()} for k, m in modules.items()}


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` into memory, then an atomic write: never a half-written checkpoint."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def save_checkpoint(state: State, path: str | os.PathLike) -> None:
    atomic_save(state.state_dict(), path)


def load_checkpoint(state: State, path: str | os.PathLike) -> None:
    """Restore ``state`` from ``path`` (``weights_only=True``: no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=state.device, weights_only=True)
    except Exception as err:  # a corrupt file or one holding arbitrary objects
        raise ValueError(f"checkpoint {str(path)!r} could not be read as a ganref checkpoint: {err}") from err
    state.load_state_dict(ckpt, source=f"checkpoint {str(path)!r}")


def fit(
    step_fn: Callable[[State, Any], Mapping[str, Tensor | float]],
    state: State,
    data: Callable[[torch.Generator], Any],
    steps: int,
    *,
    eval_fn: Callable[[State], Mapping[str, float]] | None = None,
    eval_every: int = 0,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool = True,
    progress: bool = True,
    desc: str = "train",
    log_every: int = 1,
) -> State:
    """Run ``step_fn`` until ``state.step == steps``.

    Args:
        step_fn: one training step, ``step_fn(state, batch) -> {"d_loss": ..., "g_loss": ...}``.
        state: modules, optimizers and random stream; updated in place and returned.
        data: ``data(state.generator) -> batch`` (see :func:`ganref.data.batch_sampler`).
        steps: total number of steps of the run (a resumed run continues to this number).
        eval_fn: called every ``eval_every`` steps and at the end; its numbers go to ``state.evals``.
        checkpoint: file to write every ``checkpoint_every`` steps and at the end; if it exists and
            ``resume`` is true, the run continues from it.
        log_every: keep every ``log_every``-th step's values in ``state.history``.

    Raises:
        NonFiniteLossError: a returned value is NaN or infinite (names the step and last checkpoint).
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
    if checkpoint is not None and resume and Path(checkpoint).exists():
        load_checkpoint(state, checkpoint)
    last_good = f"{checkpoint} (step {state.step})" if checkpoint and Path(checkpoint).exists() else "none written"

    for m in state.modules.values():
        m.train()
    bar = tqdm(total=steps, initial=state.step, desc=desc, disable=not progress, mininterval=0.5)
    try:
        while state.step < steps:
            values = step_fn(state, data(state.generator))
            step = state.step + 1
            keep = step % log_every == 0
            for name, v in values.items():
                v = float(v)
                if not math.isfinite(v):
                    raise NonFiniteLossError(
                        f"{name} became {v} at step {step}; last good checkpoint: {last_good}")
                if keep:
                    state.history.setdefault(name, []).append(v)
            state.step = step
            bar.update(1)
            if progress and step % 50 == 0:
                bar.set_postfix({k: f"{float(v):.3f}" for k, v in values.items()}, refresh=False)
            if eval_fn is not None and eval_every and step % eval_every == 0 and step < steps:
                _evaluate(eval_fn, state)
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
                save_checkpoint(state, checkpoint)
                last_good = f"{checkpoint} (step {step})"
    finally:
        bar.close()
    if eval_fn is not None and (not state.evals or state.evals[-1][0] != state.step):
        _evaluate(eval_fn, state)
    if checkpoint is not None:
        save_checkpoint(state, checkpoint)
    return state


def _evaluate(eval_fn: Callable[[State], Mapping[str, float]], state: State) -> None:
    modes = {k: m.training for k, m in state.modules.items()}
    for m in state.modules.values():
        m.eval()
    try:
        with torch.no_grad():
            result = {k: float(v) for k, v in eval_fn(state).items()}
    finally:
        for k, m in state.modules.items():
            m.train(modes[k])
    state.evals.append((state.step, result))
