"""Running expert jobs side by side: through joblib, or on a Dask cluster.

Inside ``joblib.parallel_backend("dask")`` the jobs are submitted to that
backend's Dask client directly rather than through :class:`joblib.Parallel`:
joblib's Dask backend waits forever for a task that Dask marks as failed
without running it to the end (a task whose workers kept dying, Dask's
``KilledWorker``), while the client raises that error, so a fit fails with a
clear message instead of hanging.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from joblib import Parallel, delayed, effective_n_jobs
from joblib.parallel import get_active_backend

J = TypeVar("J")
R = TypeVar("R")


def n_workers(n_jobs: int | None) -> int:
    """Jobs that run side by side for this ``n_jobs``; 0: in this process.

    In this process, one job after another: with ``n_jobs=1``, or when joblib
    resolves ``n_jobs`` to one worker, or inside a task of a Dask worker (a
    fit there is one task of a larger computation such as a grid search, so
    its experts train in that task rather than as new tasks that would wait
    for busy workers). Under joblib's Dask backend the jobs go to the cluster
    even when it has a single worker: the user asked for it to do the work.
    """
    if n_jobs == 1 or _in_dask_task():
        return 0
    workers = effective_n_jobs(n_jobs)
    if _dask_client() is not None:
        return max(1, workers)
    return 0 if workers == 1 else workers


def run_unordered(fn: Callable[[J], R], jobs: Iterable[J], n_jobs: int | None) -> Iterator[R]:
    """``fn(job)`` for every job, results as they finish (any order)."""
    client = _dask_client()
    if client is None:
        parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered")
        yield from parallel(delayed(fn)(job) for job in jobs)
        return
    from distributed import as_completed

    # Not scattered: a scattered job lives on one worker and dies with it,
    # while a job held in its task can run again on another worker. So the
    # rows do travel in the task, which is what Dask's "large graph" warns of.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        futures = [client.submit(fn, job, pure=False) for job in jobs]
    try:
        for future in as_completed(futures, loop=client.loop):
            yield future.result()
    finally:
        client.cancel(futures)


def _dask_client():
    """The client of an active joblib Dask backend, else None."""
    backend, _ = get_active_backend()
    if type(backend).__name__ != "DaskDistributedBackend":
        return None
    return backend.client


def _in_dask_task() -> bool:
    try:
        from distributed import get_worker
    except ImportError:
        return False
    try:
        get_worker()
    except ValueError:  # not in a worker
        return False
    return True
