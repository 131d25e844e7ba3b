"""The grading farm on a real Dask LocalCluster: two workers, a worker killed mid-task, a poison
submission that kills its worker every time, resume after a hard kill, and equality of the
one-worker results with the two-worker ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import nbformat
import pytest

from autograder.demo import ASSIGNMENT
from autograder.grading import record
from autograder.grade import grade_assignment
from autograder.grading.batch import execution_settings, make_task
from autograder.grading.dispatch import dispatch, grading_client
from autograder.grading.results import Submission
from autograder.rubric import load_rubric

from .conftest import REPO, SANDBOXED, cohort_course

FAST = ("erin_untouched", "bob_weaker", "grace_not_a_notebook", "carol_raises")


def _comparable(results):
    """status and points per part, timing left out (durations differ from run to run)."""
    return {r.student: (r.status, {p.id: p.points for p in r.parts if p.kind != "timing"}) for r in results}


@pytest.fixture(scope="module")
def two_workers(course, tmp_path_factory):
    """Two workers grade the fast cohort plus a poison copy; the worker holding `bob_weaker` is
    killed once, the worker holding the poison every time."""
    work = cohort_course(course, tmp_path_factory.mktemp("farm") / "w", FAST)
    poison = work.submitted_dir / "poison" / ASSIGNMENT
    poison.mkdir(parents=True)
    # a run long enough that the killer always finds it running (an untouched notebook is over in
    # about 4 s, sooner than a killer that lets each task start first may look)
    nb = nbformat.read(work.submitted_dir / "erin_untouched" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import time\ntime.sleep(60)"))
    nbformat.write(nb, poison / f"{ASSIGNMENT}.ipynb")
    rubric = load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml")
    settings = execution_settings(work, rubric, "tiny", SANDBOXED, threads=1)
    subs = [Submission(s, ASSIGNMENT, work.submitted_dir / s / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
            for s in (*FAST, "poison")]
    tasks = [make_task(work, rubric, s, "tiny", settings, 5.0) for s in subs]
    kills = {"bob_weaker": 0, "poison": 0}
    stop = threading.Event()

    def killer(client):
        while not stop.is_set():
            try:
                pids = client.run(os.getpid)
                # only the task a worker is running dies with it (one task per worker at a time)
                running = client.run(lambda dask_worker: [str(ts.key) for ts in dask_worker.state.executing])
                for address, keys in running.items():
                    for key in keys:
                        student = next((s for s in kills if f"-{s}-" in str(key)), None)
                        if student and (student == "poison" or kills[student] == 0) and address in pids:
                            time.sleep(1.0)  # let it start its notebook
                            os.kill(pids[address], signal.SIGKILL)
                            kills[student] += 1
                            time.sleep(1.0)
            except Exception:
                pass
            time.sleep(0.3)

    with grading_client(2) as client:
        watcher = threading.Thread(target=killer, args=(client,), daemon=True)
        watcher.start()
        try:
            results = dispatch(client, tasks, record.write_attempt)
        finally:
            stop.set()
            watcher.join(5)
    return work, {r.student: r for r in results}, kills


def test_two_workers_survive_a_killed_worker_and_a_poison_submission(two_workers):
    _, by, kills = two_workers
    assert kills["bob_weaker"] == 1 and kills["poison"] >= 1
    # a notebook runs in a child process, so dying workers are the runner's failure: never a grade
    assert by["poison"].status == "grader_error" and by["poison"].grader_side and "died" in by["poison"].message
    assert by["bob_weaker"].status == "graded" and by["bob_weaker"].score > 0
    assert {s: by[s].status for s in FAST} == {
        "erin_untouched": "failed", "bob_weaker": "graded", "grace_not_a_notebook": "invalid", "carol_raises": "failed"}
    assert len({r.runner for r in by.values() if r.status != "invalid"}) >= 1


def test_a_killed_run_resumes_and_force_regrades(course, two_workers, tmp_path, shared_client):
    """Killed half way with one worker, resumed with one worker: the finished grades are kept,
    and the results equal those of the two-worker batch."""
    _, by, _ = two_workers
    work = cohort_course(course, tmp_path / "w", FAST)
    cmd = [sys.executable, "-m", "autograder.cli", "--course", str(REPO), "--workdir", str(work.workdir),
           "grade", ASSIGNMENT, "--workers", "1"] + ([] if SANDBOXED else ["--unsandboxed"])
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and not list(work.autograded_dir.glob("*/*/attempts/*/result.json")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # hard kill half way
    proc.wait()
    finished = {p.parts[-5] for p in work.autograded_dir.glob("*/*/attempts/*/result.json")}
    assert finished and len(finished) < len(FAST)
    stamps = {p: p.stat().st_mtime for p in work.autograded_dir.glob("*/*/attempts/*/result.json")}

    # resumed with what the command used (the course's own limits: a change of limits would rerun)
    work = course.with_work(work.workdir)
    outcome = grade_assignment(work, ASSIGNMENT, "tiny", sandboxed=SANDBOXED, workers=1, log=lambda m: None,
                               client=shared_client)
    assert {r.student for r in outcome.results} == set(FAST)
    assert _comparable(outcome.results) == _comparable([by[s] for s in FAST])
    for path, mtime in stamps.items():  # finished grades were kept, not executed again
        assert path.stat().st_mtime == mtime
    for student in finished:
        assert len(record.attempts(work, student, ASSIGNMENT)) == 1
    assert all(json.loads(p.read_text())["status"] for p in work.autograded_dir.glob("*/*/attempts/*/result.json"))

    again = grade_assignment(work, ASSIGNMENT, "tiny", student="grace_not_a_notebook", sandboxed=SANDBOXED,
                             force=True, log=lambda m: None, client=shared_client)
    grace = record.attempts(work, "grace_not_a_notebook", ASSIGNMENT)
    assert len(grace) >= 2 and again.results[0].attempt == grace[-1].attempt  # a new attempt; the old one stays


@pytest.mark.slow
def test_two_courses_grading_one_student_id_at_once_each_get_their_own_result(course, tmp_path, shared_client):
    """Dask treats two submissions of one key as one task: two courses (or two instructors on one
    farm) grading the same student id and assignment at once must each get their own result."""
    rubric = load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml")
    tasks = []
    for name in ("one", "two"):
        work = cohort_course(course, tmp_path / name, ("grace_not_a_notebook",))
        sub = Submission("grace_not_a_notebook", ASSIGNMENT,
                         work.submitted_dir / "grace_not_a_notebook" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
        tasks.append(make_task(work, rubric, sub, "tiny", execution_settings(work, rubric, "tiny", SANDBOXED, 1), 5.0))
    assert tasks[0].attempt == tasks[1].attempt == 1
    results = dispatch(shared_client, tasks, lambda result: None)
    assert sorted(r.output_dir for r in results) == sorted(str(t.attempt_dir) for t in tasks)
