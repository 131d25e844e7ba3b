"""grade an assignment: discover submissions, dispatch one task each through Dask, record once.

The client (this process) alone writes the gradebook; tasks return plain GradeResults.
"""

from __future__ import annotations

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..course import Course
from ..datasets.hidden import course_secret
from ..intake.roster import valid_student_id
from ..rubric import Rubric, load_rubric
from ..sandbox import Limits, bwrap_available, SandboxUnavailable
from . import record
from .execute import ExecutionSettings
from .pipeline import GradingTask, grade_one
from .reference_cells import reference_cells, store_reference_cells
from .progress import BatchProgress
from .results import RETRY_FLAGS, GradeResult, Submission, file_sha256
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


def held_student_folders(course: Course, assignment: str) -> list[str]:
    """Folders under submitted/ whose name is not a usable student id (non-ASCII look-alikes
    such as a Cyrillic copy of a real id, spaces, ...): never graded, shown for a human."""
    return sorted(f.parent.name for f in course.submitted_dir.glob(f"*/{assignment}")
                  if not valid_student_id(f.parent.name))


def discover(course: Course, assignment: str, student: str | None = None) -> list[Submission]:
    subs = []
    for folder in sorted(course.submitted_dir.glob(f"*/{assignment}")):
        if student and folder.parent.name != student:
            continue
        if not valid_student_id(folder.parent.name):   # see held_student_folders
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
                       reference_train_s=reference_s,
                       reference_cells=reference_cells(course.cache_dir, sub.assignment, profile)
                       if reference_s else None)


def reference_seconds(course: Course, rubric: Rubric, profile: str, settings: ExecutionSettings,
                      remeasure: bool = False, log: Callable[[str], None] = print) -> float | None:
    """The reference solution's training time on this machine, measured once and cached."""
    name = rubric.assignment
    if not rubric.of_kind("timing"):
        return None     # nothing is timed: no reference run needed
    machine = machine_key()
    if not remeasure and (cached := cached_reference_seconds(course.cache_dir, name, profile, machine)) \
            and reference_cells(course.cache_dir, name, profile, machine) is not None:
        return cached
    log(f"measuring the reference training time of {name} ({profile}) on this machine, once")
    sub = Submission("_reference", name, course.source_notebook(name))
    scratch = course.cache_dir / "reference-runs" / f"{name}-{profile}-{int(time.time())}"
    result = grade_one(make_task(course, rubric, sub, profile, settings, None, scratch, 0))
    seconds = result.timings.get("train_s")
    if seconds:
        store_reference_seconds(course.cache_dir, name, profile, machine, seconds)
        store_reference_cells(course.cache_dir, name, profile, scratch / "work" / f"{name}.ipynb", machine)
    else:
        log(f"warning: the reference did not train ({result.status}: {result.message}); timing needs review")
    return seconds


def result_key(result_or_sha: GradeResult | str, rubric_version: int = 0, profile: str = "") -> str:
    """What makes a grade reusable: the submission's content, the rubric version, the profile."""
    if isinstance(result_or_sha, GradeResult):
        r = result_or_sha
        return f"{r.submission_sha256}:{r.rubric_version}:{r.profile}"
    return f"{result_or_sha}:{rubric_version}:{profile}"


def _reusable(course: Course, sub: Submission, key: str) -> GradeResult | None:
    """The newest attempt with the same key; one whose grading infrastructure failed is tried again."""
    for result in reversed(record.attempts(course, sub.student, sub.assignment)):
        if result_key(result) == key and not RETRY_FLAGS & set(result.flags):
            return result
    return None


def plan(course: Course, rubric: Rubric, subs: list[Submission], profile: str, force: bool):
    """Split submissions into those to grade and earlier results to keep (resume)."""
    todo, kept = [], []
    for sub in subs:
        key = result_key(file_sha256(sub.path), rubric.version, profile)
        previous = None if force else _reusable(course, sub, key)
        (kept.append(previous) if previous else todo.append(sub))
    return todo, kept


def grade_assignment(course: Course, assignment: str, profile: str | None = None, student: str | None = None,
                     sandboxed: bool = True, workers: int | None = None, scheduler: str | None = None,
                     force: bool = False, log: Callable[[str], None] = print, console=None) -> BatchOutcome:
    """Grade what is not graded yet (everything with force), record, and report.

    `console`: a rich Console for the live progress display (the CLI); None prints plain lines."""
    from .dispatch import InterruptedBatch, default_workers, dispatch, grading_client

    start = time.perf_counter()
    course.check_assignment(assignment)
    profile = profile or course.default_profile
    rubric = load_rubric(course.rubric_dir / f"{assignment}.yaml", assignment)
    subs = discover(course, assignment, student)
    for held in held_student_folders(course, assignment):
        log(f"not graded: submitted/{held!r} is not a valid student id (ASCII letters, digits, _.@+-); "
            "it may imitate another student's id: check it, then rename or remove the folder")
    if not subs:
        who = f"student {student!r}" if student else "any student"
        raise FileNotFoundError(f"no submission of {assignment} by {who} under {course.submitted_dir}/<student>/{assignment}/")
    todo, kept = plan(course, rubric, subs, profile, force)
    if kept:
        log(f"{len(kept)} submission(s) already graded with this rubric version and profile: kept "
            "(use --force to regrade)")
    scheduler = scheduler or course.scheduler_address
    workers = workers or default_workers(len(todo))
    threads = max(1, (os.cpu_count() or 1) // workers) if not scheduler else None
    settings = execution_settings(course, rubric, profile, sandboxed, threads)
    record.ensure_assignment_in_gradebook(course, assignment)
    course_secret(course.cache_dir)  # created by the client, before workers race for it
    results: list[GradeResult] = []
    if todo:
        ref = reference_seconds(course, rubric, profile, settings, log=log)
        tasks = [make_task(course, rubric, s, profile, settings, ref) for s in todo]
        where = f"the cluster at {scheduler}" if scheduler else f"{workers} local worker(s)"
        log(f"grading {len(tasks)} submission(s) of {assignment} on {where}, "
            f"{'sandboxed' if sandboxed else 'UNSANDBOXED'}")
        display = BatchProgress(len(tasks), console) if console is not None else None

        def done(result: GradeResult) -> None:
            record.write_attempt(result)  # at once: a killed run keeps every finished grade
            if display:
                display.update(result)
            else:
                log(f"  {result.student:<22} {result.status:<8} {result.score:5.1f}/{result.max_score:g}  {result.message[:70]}")

        try:
            with grading_client(workers, scheduler) as client, (display or nullcontext()):
                results = dispatch(client, tasks, done)
        except InterruptedBatch as stop:
            log(f"interrupted: {len(stop.finished)} finished result(s) are kept; run again to grade the rest")
            results = stop.finished
    return finish(course, rubric, results + kept, profile, start)


def flag_copied_answers(rubric: Rubric, results: list[GradeResult]) -> set[str]:
    """Near-duplicate written answers between students go to a human, as pairs. Returns the
    students whose results gained a flag (a flag already there is not added twice)."""
    from ..reflection import near_duplicates

    changed = set()
    by = {r.student: r for r in results}
    for part in rubric.answer_parts:
        answers = {r.student: p.details["answer"] for r in results for p in r.parts
                   if p.id == part.id and p.details.get("answer")}
        for a, b, similarity in near_duplicates(answers):
            for me, other in ((a, b), (b, a)):
                flag = f"{part.id}: near-duplicate of {other}'s answer (similarity {similarity:.2f})"
                if flag not in by[me].flags:
                    by[me].flags.append(flag)
                    changed.add(me)
                for p in by[me].parts:
                    if p.id == part.id:
                        p.needs_review = True
    return changed


def finish(course: Course, rubric: Rubric, results: list[GradeResult], profile: str, start: float) -> BatchOutcome:
    from ..reports import render_class_report, render_feedback

    copied = flag_copied_answers(rubric, results)
    for result in results:   # the attempt on disk keeps the flag too: exports and later reports read it
        if result.student in copied:
            record.write_attempt(result)
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
