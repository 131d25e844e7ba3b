"""Grading on a cluster of runners as an admin starts one: `dask scheduler` and `dask worker`
processes on loopback, each worker pinned to its own GPU (CUDA_VISIBLE_DEVICES, --resources GPU=1),
graded through `--scheduler`; a scheduler lost mid-batch; K notebooks per GPU. No GPU is needed to
check the pinning: the device setting is what each notebook sees in its sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.demo import ASSIGNMENT as A
from autograder.grading import record
from autograder.grade import grade_assignment
from autograder.grading.cpu_env import GPU_SHARE_ENV
from autograder.grading.dispatch import SchedulerLost, default_workers, gpu_of_worker, memory_fraction
from autograder.grading.execute import ExecutionSettings, _child_env
from autograder.sandbox import Limits

from .conftest import SANDBOXED, cohort_course

STUDENTS = ("bob_weaker", "carol_raises", "grace_not_a_notebook")
SHOW_DEVICE = 'import os\nprint("CUDA_VISIBLE_DEVICES=" + str(os.environ.get("CUDA_VISIBLE_DEVICES")))'


def _quiet(_):
    pass


# ---- pinning and sharing, as plain functions --------------------------------------------------

def test_k_workers_share_each_gpu_and_each_keeps_its_share():
    assert [gpu_of_worker(i, gpus=2, per_gpu=3) for i in range(6)] == ["0", "0", "0", "1", "1", "1"]
    assert [gpu_of_worker(i, gpus=2) for i in range(4)] == ["0", "1", "0", "1"]
    assert memory_fraction(1) is None and memory_fraction(4) == 0.25
    shared = ExecutionSettings(Limits(), 60, gpu="1", per_gpu=4, gpu_memory_fraction=memory_fraction(4))
    assert _child_env(shared)[GPU_SHARE_ENV] == "0.25"
    assert GPU_SHARE_ENV not in _child_env(replace(shared, gpu_memory_fraction=None))
    assert default_workers(10) >= 1 and default_workers(1, per_gpu=4) == 1


# ---- an external scheduler with separately started workers -----------------------------------

def _hidden(folder: Path) -> list[str]:
    """A command prefix that runs a process with `folder` covered by an empty tmpfs (a private
    mount namespace): a runner that does not share the course folder."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", 'mount -t tmpfs none "$0" && exec "$@"',
            str(folder)]


@contextmanager
def dask_cluster(folder: Path, gpus: tuple[str, ...], hide: Path | None = None):
    """`dask scheduler` and one `dask worker --resources GPU=1` per GPU, as separate processes on
    loopback (with `hide`: workers that cannot see that folder); every process is stopped on the
    way out, also when the test fails."""
    from dask.distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    address_file, procs = folder / "scheduler.json", []
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "2",
           "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}

    def start(args, prefix=(), **extra):
        log = open(folder / f"{args[0]}-{len(procs)}.log", "wb")
        procs.append(subprocess.Popen([*prefix, sys.executable, "-m", "dask", *args], env={**env, **extra},
                                      cwd="/", stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0",
               "--scheduler-file", str(address_file)])
        deadline = time.time() + 60
        while not address_file.is_file() and time.time() < deadline:
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        for gpu in gpus:
            start(["worker", address, "--nthreads", "1", "--resources", "GPU=1", "--name", f"runner-gpu{gpu}",
                   "--dashboard-address", ":0"], _hidden(hide) if hide else (), CUDA_VISIBLE_DEVICES=gpu)
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(len(gpus), timeout=90)
        yield address, procs
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def _with_device_cells(course) -> None:
    """Each notebook that runs shows, in a cell of the student's, the device setting it sees."""
    for student in STUDENTS:
        path = course.submitted_dir / student / A / f"{A}.ipynb"
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:
            continue   # not a notebook
        nb.cells.insert(1, nbformat.v4.new_code_cell(SHOW_DEVICE))
        nbformat.write(nb, path)


def _seen_device(result) -> str | None:
    path = Path(result.output_dir) / "work" / f"{A}.ipynb"
    if not path.is_file():
        return None
    for cell in nbformat.read(path, as_version=4).cells:
        for out in cell.get("outputs", []):
            if "CUDA_VISIBLE_DEVICES=" in str(out.get("text", "")):
                return str(out["text"]).split("=", 1)[1].strip()
    return None


def _comparable(results):
    return {r.student: (r.status, {p.id: p.points for p in r.parts if p.kind != "timing"}) for r in results}


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="hiding the course folder from the runners needs a mount namespace (root)")
def test_grading_through_an_external_scheduler_with_gpu_labelled_workers(course, tmp_path, demo_run):
    """The same submissions as the demo's embedded run (plus a cell that shows the device), graded
    by runners that cannot see the course folder: every task carries what it needs."""
    external = cohort_course(course, tmp_path / "external", STUDENTS)
    _with_device_cells(external)
    with dask_cluster(tmp_path / "cluster", gpus=("0", "1"), hide=external.workdir) as (address, _):
        from dask.distributed import Client

        with Client(address) as client:    # the runners really do not see it
            assert not any(client.run(os.path.exists, str(external.submitted_dir)).values())
        lines = []
        outcome = grade_assignment(external, A, "tiny", sandboxed=SANDBOXED, scheduler=address, log=lines.append)
    assert any(f"the cluster at {address}" in line for line in lines)
    assert any("no shared folder" in line for line in lines)
    by = {r.student: r for r in outcome.results}
    assert set(by) == set(STUDENTS)
    for result in by.values():
        assert result.resources == {"GPU": 1}, result.student          # every task asked for a GPU
        gpu = result.runner.rsplit("/gpu", 1)[1]
        assert f"runner-gpu{gpu}" in result.runner
        if result.status != "invalid":                                   # and its notebook saw that GPU only
            assert _seen_device(result) == gpu, (result.student, result.runner)
    embedded = [r for r in demo_run.run.outcomes[A].results if r.student in STUDENTS]
    assert _comparable(outcome.results) == _comparable(embedded)
    with Gradebook(external.db_url, external.course_id) as gb:
        for r in outcome.results:
            assert float(gb.find_submission(A, r.student).score) == pytest.approx(r.score)
            assert (external.feedback_dir / r.student / A / f"{A}.html").is_file()


@pytest.mark.slow
def test_a_scheduler_lost_mid_batch_is_reported_and_the_next_run_resumes(course, tmp_path):
    work = cohort_course(course, tmp_path / "w", ("grace_not_a_notebook", "carol_raises", "erin_untouched"))
    with dask_cluster(tmp_path / "first", gpus=("0",)) as (address, procs):
        import threading

        def kill_scheduler_after_the_first_result():
            deadline = time.time() + 240
            while time.time() < deadline and not list(work.autograded_dir.glob("*/*/attempts/*/result.json")):
                time.sleep(0.2)
            os.killpg(procs[0].pid, signal.SIGKILL)

        killer = threading.Thread(target=kill_scheduler_after_the_first_result, daemon=True)
        killer.start()
        started = time.time()
        with pytest.raises(SchedulerLost, match="next `autograder grade` grades the rest") as lost:
            grade_assignment(work, A, "tiny", sandboxed=SANDBOXED, scheduler=address, shared_folder=True, log=_quiet)
        killer.join()
    assert time.time() - started < 240
    finished = {r.student for r in lost.value.finished}
    recorded = {p.parts[-5] for p in work.autograded_dir.glob("*/*/attempts/*/result.json")}
    assert finished and finished <= recorded and len(recorded) < 3
    with dask_cluster(tmp_path / "second", gpus=("0",)) as (address, _):
        again = grade_assignment(work, A, "tiny", sandboxed=SANDBOXED, scheduler=address, shared_folder=True,
                                 log=_quiet)
    assert {r.student for r in again.results} == {"grace_not_a_notebook", "carol_raises", "erin_untouched"}
    for student in recorded:          # what was recorded before the loss was kept, not run again
        assert len(record.attempts(work, student, A)) == 1
