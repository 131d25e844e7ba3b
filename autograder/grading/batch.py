"""grade an assignment: discover submissions, dispatch one task each through Dask, record once.

The client (this process) alone writes the gradebook; tasks return plain GradeResults.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..course import Course
from ..datasets.hidden import course_secret
from ..rubric import Rubric, load_rubric
from ..sandbox import Limits, bwrap_available, SandboxUnavailable
from . import record
from .execute import ExecutionSettings
from .pipeline import GradingTask, grade_one
from .results import GradeResult, Submission
from .timing import cached_reference_seconds, machine_key, store_reference_seconds


@dataclass
class BatchOutcome:
    results: list[GradeResult]
    csv: Path
    report: Path
    wall_s: float


def execution_settings(course: Course, rubric: Rubric, profile: str, sandboxed: bool,
                       threads: int | None = None) -> ExecutionSettings:
    """Limits from the course profile, overridden per assignment by the rubric's `limits`."""
    values = {**vars(course.profile(profile)), **rubric.limits.get(profile, {})}
    if sandboxed and not bwrap_available():
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed, so student code cannot be sandboxed. Install it "
            "(apt-get install bubblewrap; the set-up script does this as root) or pass --unsandboxed "
            "to run untrusted notebooks without isolation, knowingly.")
    limits = Limits(wall_seconds=values["notebook_timeout_s"], memory_bytes=int(values["memory_gb"] * 2**30))
    readonly = (course.data_root,) if profile != "tiny" and course.data_root.exists() else ()
    return ExecutionSettings(limits=limits, cell_timeout_s=values["cell_timeout_s"], sandboxed=sandboxed,
                             readonly=readonly, threads=threads)


def discover(course: Course, assignment: str, student: str | None = None) -> list[Submission]:
    subs = []
    for folder in sorted(course.submitted_dir.glob(f"*/{assignment}")):
        if student and folder.parent.name != student:
            continue
        path = folder / f"{assignment}.ipynb"
        if not path.exists():
            others = sorted(folder.glob("*.ipynb"))
            path = others[0] if len(others) == 1 else path
        subs.append(Submission(folder.parent.name, assignment, path))
    return subs


def _next_attempt(course: Course, sub: Submission) -> tuple[int, Path]:
    root = course.autograded_dir / sub.student / sub.assignment / "attempts"
    done = [int(p.name) for p in root.glob("[0-9]*") if p.name.isdigit()]
    n = max(done, default=0) + 1
    return n, root / f"{n:03d}"


def make_task(course: Course, rubric: Rubric, sub: Submission, profile: str, settings: ExecutionSettings,
              reference_s: float | None, attempt_dir: Path | None = None, attempt: int = 0) -> GradingTask:
    if attempt_dir is None:
        attempt, attempt_dir = _next_attempt(course, sub)
    return GradingTask(submission=sub, rubric=rubric, profile=profile,
                       source_notebook=course.source_notebook(sub.assignment), attempt_dir=attempt_dir,
                       attempt=attempt, settings=settings, cache_dir=course.cache_dir,
                       data_root=course.data_root, hidden_root=course.hidden_data_root,
                       reference_train_s=reference_s)


def reference_seconds(course: Course, rubric: Rubric, profile: str, settings: ExecutionSettings,
                      remeasure: bool = False, log: Callable[[str], None] = print) -> float | None:
    """The reference solution's training time on this machine, measured once and cached."""
    name = rubric.assignment
    machine = machine_key()
    if not remeasure and (cached := cached_reference_seconds(course.cache_dir, name, profile, machine)):
        return cached
    log(f"measuring the reference training time of {name} ({profile}) on this machine, once")
    sub = Submission("_reference", name, course.source_notebook(name))
    scratch = course.cache_dir / "reference-runs" / f"{name}-{profile}-{int(time.time())}"
    result = grade_one(make_task(course, rubric, sub, profile, settings, None, scratch, 0))
    seconds = result.timings.get("train_s")
    if seconds:
        store_reference_seconds(course.cache_dir, name, profile, machine, seconds)
    else:
        log(f"warning: the reference did not train ({result.status}: {result.message}); timing needs review")
    return seconds


def _dispatch(tasks: list[GradingTask], workers: int, on_result: Callable[[GradeResult], None]) -> list[GradeResult]:
    """One Dask task per submission on an embedded LocalCluster."""
    from dask.distributed import Client, LocalCluster, as_completed

    results = []
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        futures = {client.submit(grade_one, t, pure=False, key=f"grade-{t.submission.student}-{t.attempt}"): t
                   for t in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the worker died under this task: still a record
                result = GradeResult(task.submission.student, task.submission.assignment, "crashed",
                                     f"the grading worker failed: {type(exc).__name__}: {exc}", task.profile,
                                     attempt=task.attempt, output_dir=str(task.attempt_dir))
            results.append(result)
            on_result(result)
    return results


def grade_assignment(course: Course, assignment: str, profile: str | None = None, student: str | None = None,
                     sandboxed: bool = True, workers: int | None = None,
                     log: Callable[[str], None] = print) -> BatchOutcome:
    start = time.perf_counter()
    course.check_assignment(assignment)
    profile = profile or course.default_profile
    rubric = load_rubric(course.rubric_dir / f"{assignment}.yaml", assignment)
    subs = discover(course, assignment, student)
    if not subs:
        raise FileNotFoundError(f"no submissions under {course.submitted_dir}/<student>/{assignment}/")
    workers = workers or max(1, min(len(subs), os.cpu_count() or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    settings = execution_settings(course, rubric, profile, sandboxed, threads)
    record.ensure_assignment_in_gradebook(course, assignment)
    course_secret(course.cache_dir)  # created by the client, before workers race for it
    ref = reference_seconds(course, rubric, profile, settings, log=log)
    tasks = [make_task(course, rubric, s, profile, settings, ref) for s in subs]
    log(f"grading {len(tasks)} submission(s) of {assignment} with {workers} worker(s), "
        f"{'sandboxed' if sandboxed else 'UNSANDBOXED'}")

    def done(result: GradeResult) -> None:
        record.write_attempt(result)
        log(f"  {result.student:<16} {result.status:<8} {result.score:5.1f}/{result.max_score:g}  {result.message[:70]}")

    results = _dispatch(tasks, workers, done)
    return finish(course, rubric, results, profile, start)


def finish(course: Course, rubric: Rubric, results: list[GradeResult], profile: str, start: float) -> BatchOutcome:
    from ..reports import render_class_report, render_feedback

    record.record_gradebook(course, rubric, results)
    for result in results:
        record.publish_notebook(course, result)
        page = render_feedback(result, rubric)
        html = course.feedback_dir / result.student / result.assignment / f"{result.assignment}.html"
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page)
        if Path(result.output_dir).is_dir():  # the attempt keeps its own copy
            (Path(result.output_dir) / "feedback.html").write_text(page)
    every = {r.student: r for r in record.latest_results(course, rubric.assignment)}
    every.update({r.student: r for r in results})
    csv_path = record.write_csv(course.workdir / "grades" / f"{rubric.assignment}.csv", rubric, list(every.values()))
    report = course.workdir / "reports" / f"{rubric.assignment}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    links = {s: os.path.relpath(course.feedback_dir / s / rubric.assignment / f"{rubric.assignment}.html",
                                report.parent) for s in every}
    report.write_text(render_class_report(rubric, list(every.values()), profile, links))
    return BatchOutcome(results, csv_path, report, time.perf_counter() - start)
