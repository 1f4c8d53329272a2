"""Dask for the runner: an embedded ``LocalCluster`` or an existing scheduler, and one progress bar.

:func:`connect` opens a ``distributed.Client``: on a ``LocalCluster`` of ``jobs`` single-threaded
worker processes started for the command and closed after it, or on the scheduler at ``--scheduler``
(``dask scheduler`` and ``dask worker ADDRESS`` started by hand, on this machine or others, each
worker with ganref installed). :func:`as_finished` submits the tasks and yields each result as it
arrives, under one tqdm bar over all tasks.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import uuid
from typing import Any, Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

#: How long to wait for an existing scheduler to answer before saying it cannot be reached.
CONNECT_TIMEOUT_S = 20


@contextlib.contextmanager
def connect(jobs: int, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: on ``scheduler``, else on a ``LocalCluster`` of ``jobs`` processes x 1 thread.

    Raises:
        ValueError: the scheduler cannot be reached (the message names the address and ``--scheduler``).
    """
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError) as err:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r} (--scheduler): {err}; start one "
                             "with `dask scheduler` and its workers with `dask worker ADDRESS`") from None
        with client:
            yield client
        return
    # A free port for the scheduler's HTTP server (never a clash with another cluster on 8787); no memory
    # limit of Dask's (a worker only waits for its kernel, a process of its own); one task per worker.
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit=None, silence_logs=logging.ERROR) as local, \
            Client(local, set_as_default=False) as client:
        yield client


def submission_order(tasks: Sequence[T], priority: Callable[[T], int] | None = None) -> list[T]:
    """``tasks`` highest priority first, ties in their given order. The scheduler hands a task to an
    idle worker as soon as it is submitted, so priorities alone would not stop the first tasks
    submitted from starting first: the order of submission has to follow them too."""
    return sorted(tasks, key=lambda t: -priority(t)) if priority else list(tasks)


def as_finished(client: Any, fn: Callable[[T], Any], tasks: Sequence[T], progress: bool = True,
                name: Callable[[T], str] = str, priority: Callable[[T], int] | None = None) -> Iterator[tuple[T, Any]]:
    """Submit ``fn(task)`` for every task; yield ``(task, result)`` in the order they finish.

    ``priority(task)``: Dask starts the tasks of higher priority first (ties in submission order).

    ``result`` is the exception when the task itself failed on the cluster (its worker died, it
    could not be unpickled there, ...). Tasks not yet finished when the caller stops (Ctrl-C) are
    cancelled.
    """
    from distributed import as_completed
    from tqdm.auto import tqdm

    futures = {client.submit(fn, t, key=f"ganref-{name(t)}-{uuid.uuid4().hex[:8]}", pure=False,
                             priority=priority(t) if priority else 0): t for t in submission_order(tasks, priority)}
    bar = tqdm(total=len(futures), desc="tasks", unit="task", file=sys.stderr, disable=not progress, leave=True)
    try:
        for future in as_completed(futures, loop=client.loop):
            try:
                result = future.result()
            except Exception as err:  # the task failed on the cluster, not the chapter
                result = err
            yield futures[future], result
            bar.update(1)
    finally:
        bar.close()
        unfinished = [f for f in futures if not f.done()]
        if unfinished:
            client.cancel(unfinished)


def say(line: str) -> None:
    """Print a line without breaking the progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()
