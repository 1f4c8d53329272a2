"""One task of a batch run: execute one chapter at one seed, return everything it wrote as bytes.

A task is what a Dask worker runs (:func:`execute`); it needs ``ganref`` installed and nothing from
the client's disk: the :class:`Task` carries the chapter's source text, and the :class:`TaskResult`
carries back the executed notebook, the results JSON and the artifacts, so the client can store
them (``runner.store``) with no shared file system. The chapter runs in a private temporary
folder, which is removed before the task returns.

A chapter that raises is not an error of the task: the result says ``ok=False`` and names the cell
that raised (papermill's ``In [n]``, and the cell's first line) in ``error`` and ``cell``.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganref.pipeline import report

#: Kernels inherit the worker's environment when they start, so tasks that share a worker
#: process (a ``dask worker --nthreads 2``) take turns rather than race on ``os.environ``.
_ENV_LOCK = threading.Lock()


def kernel_config(folder: Path) -> Any:
    """The kernel manager's settings: IPC sockets in the task's own ``folder`` where they work.

    Over TCP a kernel opens ports on 127.0.0.1 and warns on stderr that its traffic is unencrypted;
    IPC opens none. Each task names its own socket files (``<folder>/kernel-ipc-<n>``): two kernels
    started in one working directory with the default name took each other's sockets. Unix sockets
    exist only off Windows and take paths of at most about 100 bytes; otherwise TCP.
    """
    from traitlets.config import Config

    prefix = os.path.join(os.path.abspath(folder), "kernel-ipc")
    if os.name != "nt" and len((prefix + "-99999").encode()) < 100:
        return Config({"KernelManager": {"transport": "ipc", "ip": prefix}})
    return Config({"KernelManager": {"transport": "tcp"}})


@dataclass(frozen=True)
class Task:
    """What a worker needs to run one chapter at one seed.

    ``threads``: threads per kernel (``$OMP_NUM_THREADS``); ``None`` lets the worker share its cores
    among its threads. ``folder``: the chapter's folder on the client; the kernel runs there when the
    worker has it too (same machine or same checkout), else in the task's temporary folder.
    """

    chapter: str
    source: str
    profile: str
    device: str
    seed: int
    threads: int | None = None
    folder: str | None = None


@dataclass
class TaskResult:
    """What a task sends back: the outputs as bytes, and where they were on the worker (to rewrite)."""

    chapter: str
    seed: int
    ok: bool
    seconds: float
    error: str = ""
    cell: dict[str, Any] | None = None
    notebook: bytes | None = None
    results: bytes | None = None
    artifacts: dict[str, bytes] = field(default_factory=dict)
    workdir: str = ""
    worker: str = ""
    interrupted: bool = False


def _threads(task: Task) -> int:
    if task.threads is not None:
        return task.threads
    try:  # a Dask worker: share the machine's cores among the worker's threads
        from distributed import get_worker

        nthreads = get_worker().state.nthreads
    except (ImportError, ValueError, AttributeError):
        nthreads = 1
    return max(1, (os.cpu_count() or 1) // max(1, nthreads))


def cell_error(err: BaseException) -> tuple[str, dict[str, Any] | None]:
    """A one-line error and, for a cell that raised (papermill), which cell: ``In [n]``, the line and its code.

    The line is IPython's ``Cell In[n], line k`` from the traceback (the line of the cell that
    raised, not of the library below it); without it, the cell's first line of code.
    """
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename is None:  # not a cell's error: a kernel that died, an unreadable source, ...
        text = str(err).strip()
        return f"{type(err).__name__}: {text.splitlines()[-1] if text else ''}".strip().rstrip(":"), None
    source = str(getattr(err, "source", "")).splitlines()
    trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(getattr(err, "traceback", None) or []))
    m = re.search(r"Cell In\s*\[\d*\],? line (\d+)", trace)
    line = int(m.group(1)) if m and 0 < int(m.group(1)) <= len(source) else None
    if line is None:
        line = next((i + 1 for i, s in enumerate(source) if s.strip() and not s.strip().startswith("#")), None)
    code = source[line - 1].strip() if line else ""
    code = code if len(code) <= 70 else code[:67] + "..."
    cell = {"index": getattr(err, "cell_index", None), "execution_count": getattr(err, "exec_count", None),
            "line": line, "code": code}
    evalue = " ".join(str(evalue).split())
    return f"{ename}: {evalue} (in cell In [{cell['execution_count']}], line {line}: {code})", cell


def _finish(results: Path, task: Task, ok: bool, error: str, cell: dict[str, Any] | None,
            seconds: float) -> tuple[bool, str]:
    """Mark the results file complete, or failed with the error; a fresh record if the chapter broke it."""
    extra: dict[str, Any] = {"seconds": round(seconds, 1)}
    if ok:
        try:
            report.mark(results, "complete", **extra)
            return True, ""
        except (OSError, ValueError) as err:  # the chapter overwrote or removed its own results file
            ok, error = False, f"the chapter left no usable results file: {err}"
    extra.update(error=error, **({"cell": cell} if cell else {}))
    try:
        report.mark(results, "failed", **extra)
    except (OSError, ValueError):
        results.unlink(missing_ok=True)
        report.Report(task.chapter, task.chapter, task.profile, task.device, task.seed, results).record()
        report.mark(results, "failed", **extra)
    return False, error


def execute(task: Task, progress: bool = False) -> TaskResult:
    """Run ``task``'s chapter with papermill in a temporary folder; never raises for a failing chapter.

    The results record exists (status ``"running"``) before the chapter's first ``record()``, so a
    chapter that fails earlier still returns a JSON that says so. A ``KeyboardInterrupt`` is handled
    like a failure (``interrupted=True``): the caller stores the outputs, then stops.
    """
    import jupytext
    import papermill

    stem = task.chapter
    with tempfile.TemporaryDirectory(prefix=f"ganref-{stem}.seed{task.seed}.") as tmp:
        work = Path(tmp)
        notebook, results = work / f"{stem}.ipynb", work / f"{stem}.json"
        report.Report(stem, stem, task.profile, task.device, task.seed, results).record()
        cwd = task.folder if task.folder and Path(task.folder).is_dir() else str(work)
        ok, error, cell, interrupted = False, "", None, False
        with _ENV_LOCK:
            threads = str(_threads(task))
            env = {"GANREF_PROFILE": task.profile, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
            before = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            start = time.perf_counter()
            try:
                source_nb = work / f".{stem}.source.ipynb"
                jupytext.write(jupytext.reads(task.source, fmt="md:myst"), source_nb)
                papermill.execute_notebook(
                    str(source_nb), str(notebook), kernel_name="python3", cwd=cwd,
                    parameters={"profile": task.profile, "device": task.device, "seed": task.seed,
                                "results_path": str(results)},
                    progress_bar=progress, log_output=False, config=kernel_config(work))
                ok = True
            except Exception as err:  # papermill.PapermillExecutionError, kernel failures, a bad source
                error, cell = cell_error(err)
            except BaseException as err:  # KeyboardInterrupt, SystemExit: keep the outputs, then stop
                error, interrupted = f"interrupted ({type(err).__name__})", True
            finally:
                for k, v in before.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            seconds = time.perf_counter() - start
        ok, error = _finish(results, task, ok, error, cell, seconds)
        artifacts = work / f"{stem}_artifacts"
        return TaskResult(
            stem, task.seed, ok, seconds, error, cell,
            notebook=notebook.read_bytes() if notebook.is_file() else None,
            results=results.read_bytes(),
            artifacts={p.name: p.read_bytes() for p in sorted(artifacts.glob("*")) if p.is_file()},
            workdir=str(work), worker=socket.gethostname(), interrupted=interrupted)


__all__ = ["Task", "TaskResult", "execute", "cell_error"]
