"""Dispatch grading tasks through Dask distributed: one task per submission.

Embedded LocalCluster by default (one worker per core on a CPU machine, one per GPU on a GPU
machine, each pinned to its own GPU); an existing scheduler for a cluster of runners started
with `dask worker ADDRESS --resources GPU=1`. Tasks run their notebook in a child process, so
a crashing notebook cannot take the worker down; a worker that dies anyway is replaced and its
task retried, and after `ALLOWED_FAILURES` deaths the submission is recorded as `crashed`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import replace
from typing import Callable, Iterator

from .pipeline import GradingTask, grade_one, zero_parts
from .results import WORKER_LOST, GradeResult

ALLOWED_FAILURES = 2   # worker deaths under one task before it is declared crashed (Dask's default is 3)


def gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def default_workers(n_tasks: int) -> int:
    gpus = gpu_count()
    return max(1, min(n_tasks, gpus or os.cpu_count() or 1))


@contextmanager
def grading_client(workers: int, scheduler: str | None = None) -> Iterator:
    import dask
    from dask.distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                          "distributed.worker.daemon": False}):
        if scheduler:
            with Client(scheduler, timeout="20s") as client:
                yield client
        else:
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=":0", silence_logs=50) as cluster, Client(cluster) as client:
                yield client


def run_on_worker(task: GradingTask) -> GradeResult:
    """The Dask task: pin the worker's GPU, then grade. On an embedded cluster worker N gets GPU
    N; on a cluster, the GPU its admin gave the worker through CUDA_VISIBLE_DEVICES."""
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpu is None and gpu_count():
        from dask.distributed import get_worker
        gpu = str(int(get_worker().name) % gpu_count())
    if gpu is not None and task.settings.gpu is None:
        task = replace(task, settings=replace(task.settings, gpu=gpu.split(",")[0]))
    result = grade_one(task)
    try:
        from dask.distributed import get_worker
        result.runner = f"{result.runner}/worker-{get_worker().name}" + (f"/gpu{gpu}" if gpu else "")
    except ValueError:  # not on a worker (called in-process)
        pass
    return result


def _lost(task: GradingTask, exc: BaseException) -> GradeResult:
    from distributed.scheduler import KilledWorker

    if isinstance(exc, KilledWorker):
        message = (f"the grading worker died {ALLOWED_FAILURES + 1} times while grading this submission; "
                   "it was not retried again")
    else:
        message = f"the grading task failed: {type(exc).__name__}: {exc}"
    # a notebook runs in a child process, so a dead worker is the runner's failure, not a grade
    return GradeResult(task.submission.student, task.submission.assignment, "grader_error", message, task.profile,
                       attempt=task.attempt, output_dir=str(task.attempt_dir), rubric_version=task.rubric.version,
                       parts=zero_parts(task.rubric, "grading did not finish (a problem on the grader's side)"),
                       flags=[WORKER_LOST], inputs=dict(task.inputs))


def dispatch(client, tasks: list[GradingTask], on_result: Callable[[GradeResult], None],
             on_start: Callable[[dict], None] | None = None) -> list[GradeResult]:
    """Submit every task, call `on_result` as each finishes. Ctrl-C cancels what has not
    finished and returns what has (the caller records it)."""
    from dask.distributed import as_completed

    resources = {"GPU": 1} if client.cluster is None and _cluster_has_gpus(client) else None
    futures = {client.submit(run_on_worker, t, pure=False, resources=resources,
                             key=f"grade-{t.submission.student}-{t.submission.assignment}-{t.attempt}"): t
               for t in tasks}
    if on_start:
        on_start({"futures": futures, "client": client})
    results = []
    try:
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # KilledWorker and friends: still a record
                result = _lost(task, exc)
            results.append(result)
            on_result(result)
    except KeyboardInterrupt:
        client.cancel([f for f in futures if not f.done()])
        raise InterruptedBatch(results)
    return results


def _cluster_has_gpus(client) -> bool:
    """Ask for a GPU only when some worker of the external cluster offers one (a task asking
    for a resource no worker has would wait forever)."""
    workers = client.scheduler_info().get("workers", {}).values()
    return any(w.get("resources", {}).get("GPU") for w in workers)


class InterruptedBatch(KeyboardInterrupt):
    def __init__(self, finished: list[GradeResult]):
        super().__init__("interrupted")
        self.finished = finished
