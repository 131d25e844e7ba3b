"""Dispatch grading tasks through Dask distributed: one task per submission.

Embedded LocalCluster by default (one worker per core on a CPU machine, one per GPU on a GPU
machine, each pinned to its own GPU); an existing scheduler for a cluster of runners started
with `dask worker ADDRESS --resources GPU=1`. Tasks run their notebook in a child process, so
a crashing notebook cannot take the worker down; a worker that dies anyway is replaced and its
task retried, and after `ALLOWED_FAILURES` deaths the submission is recorded as `crashed`.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from dataclasses import replace
from concurrent.futures import CancelledError
from typing import Callable, Iterator

from .cpu_env import GPU_SHARE_ENV
from .pipeline import GradingTask, grade_one, zero_parts
from .results import WORKER_LOST, GradeResult

ALLOWED_FAILURES = 2   # worker deaths under one task before it is declared crashed (Dask's default is 3)


def gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def default_workers(n_tasks: int, per_gpu: int = 1) -> int:
    gpus = gpu_count()
    return max(1, min(n_tasks, gpus * per_gpu or os.cpu_count() or 1))


def gpu_of_worker(index: int, gpus: int, per_gpu: int = 1) -> str:
    """Embedded cluster: workers 0..K-1 share GPU 0, K..2K-1 GPU 1, and so on."""
    return str((index // max(1, per_gpu)) % gpus)


def memory_fraction(per_gpu: int) -> float | None:
    """Each of K notebooks on one GPU may allocate 1/K of its memory (None: the whole GPU)."""
    return None if per_gpu <= 1 else round(1.0 / per_gpu, 4)


@contextmanager
def grading_client(workers: int, scheduler: str | None = None) -> Iterator:
    import dask
    from dask.distributed import Client, LocalCluster

    # worker-saturation 1: a worker holds only the task it runs, so a worker that dies takes no
    # queued submission with it (each death counts against every task the worker held)
    with dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
                          "distributed.scheduler.worker-saturation": 1.0,
                          "distributed.worker.daemon": False}):
        if scheduler:
            with Client(scheduler, timeout="20s") as client:
                yield client
        else:
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=":0", silence_logs=50) as cluster, Client(cluster) as client:
                yield client


def _worker():
    from dask.distributed import get_worker
    try:
        return get_worker()
    except ValueError:  # not on a worker (called in-process)
        return None


def run_on_worker(task: GradingTask) -> GradeResult:
    """The Dask task: pin the worker's GPU and its memory share, then grade. On an embedded
    cluster worker N gets GPU N // K; on a cluster, the GPU its admin gave the worker through
    CUDA_VISIBLE_DEVICES (and AUTOGRADER_GPU_MEMORY_FRACTION when K workers share one)."""
    worker = _worker()
    gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
    if gpu is None and worker is not None and gpu_count():
        gpu = gpu_of_worker(int(worker.name), gpu_count(), task.settings.per_gpu)
    settings = task.settings
    if gpu and settings.gpu is None:
        settings = replace(settings, gpu=gpu.split(",")[0])
    if os.environ.get(GPU_SHARE_ENV) and settings.gpu_memory_fraction is None:
        settings = replace(settings, gpu_memory_fraction=float(os.environ[GPU_SHARE_ENV]))
    task = replace(task, settings=settings)
    if task.carried is not None:
        from .carried import run_carried
        result = run_carried(task)
    else:
        result = grade_one(task)
    if worker is not None:
        result.runner = f"{result.runner}/worker-{worker.name}" + (f"/gpu{gpu}" if gpu else "")
        state = worker.state.tasks.get(worker.get_current_task())
        result.resources = dict(getattr(state, "resource_restrictions", None) or {})
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

    resources = task_resources(client)
    futures = {client.submit(run_on_worker, t, pure=False, resources=resources,
                             key=task_key("grade", t.submission.student, t.submission.assignment, t.attempt)): t
               for t in tasks}
    if on_start:
        on_start({"futures": futures, "client": client})
    results = []
    try:
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = _received(future.result())
            except (CancelledError, OSError) as exc:   # the scheduler is gone: no verdict on the task
                raise SchedulerLost(results, exc) from exc
            except Exception as exc:  # KilledWorker and friends: still a record
                result = _lost(task, exc)
            results.append(result)
            on_result(result)
    except KeyboardInterrupt:
        client.cancel([f for f in futures if not f.done()])
        raise InterruptedBatch(results)
    if client.status != "running" and len(results) < len(futures):
        raise SchedulerLost(results, RuntimeError(f"client {client.status}"))
    return results


def task_key(*names) -> str:
    """A readable Dask key that no other task on the scheduler has: Dask treats two submissions of
    one key as one task, so two courses (or two instructors on one farm) grading the same student
    id and assignment at once would otherwise receive each other's result."""
    return "-".join(map(str, names)) + f"-{uuid.uuid4().hex[:12]}"


def task_resources(client) -> dict | None:
    """What every task asks of its worker: a GPU when the external cluster offers GPUs."""
    return {"GPU": 1} if client.cluster is None and _cluster_has_gpus(client) else None


def _received(result: GradeResult) -> GradeResult:
    """A carried task's files, written into its attempt folder here, on the client."""
    if result.returned:
        from .carried import unpack
        unpack(result)
    return result


def run_reference(client, task: GradingTask) -> GradeResult:
    """One reference run on the cluster (carried or not), its files received."""
    future = client.submit(run_on_worker, task, pure=False, resources=task_resources(client),
                           key=task_key("reference", task.submission.assignment, task.profile))
    return _received(future.result())


def _cluster_has_gpus(client) -> bool:
    """Ask for a GPU only when some worker of the external cluster offers one (a task asking
    for a resource no worker has would wait forever)."""
    workers = client.scheduler_info().get("workers", {}).values()
    return any(w.get("resources", {}).get("GPU") for w in workers)


class SchedulerLost(RuntimeError):
    """The connection to the scheduler broke mid-batch: the finished results are kept, the rest
    is graded by the next `grade`."""

    def __init__(self, finished: list[GradeResult], cause: BaseException):
        super().__init__(f"lost the Dask scheduler after {len(finished)} result(s) ({type(cause).__name__}: {cause}); "
                         "every finished result is recorded, and the next `autograder grade` grades the rest")
        self.finished = finished


class InterruptedBatch(KeyboardInterrupt):
    def __init__(self, finished: list[GradeResult]):
        super().__init__("interrupted")
        self.finished = finished
