"""The one grading path that the CLI, the demo, the benchmarks and the tests call: grade (and
record in the gradebook) with `grading.batch`, then publish what the gradebook holds with
`reports.publish` (feedback pages, grades CSV, class report; formgrader's manual scores win).
Kept above both packages so that grading never imports reports."""

from __future__ import annotations

import time
from typing import Callable

from .course import Course
from .grading.batch import BatchOutcome, grade_assignments as _grade_and_record
from .reports.publish import publish


def grade_assignments(course: Course, assignments: list[str], profile: str | None = None,
                      student: str | None = None, sandboxed: bool = True, workers: int | None = None,
                      scheduler: str | None = None, force: bool = False, log: Callable[[str], None] = print,
                      console=None, **options) -> dict[str, BatchOutcome]:
    """Grade what is not graded yet of each assignment in one Dask session, then publish each
    (see `grading.batch.grade_assignments` for the options)."""
    outcomes = _grade_and_record(course, assignments, profile, student, sandboxed, workers, scheduler, force,
                                 log, console, **options)
    for outcome in outcomes.values():
        began = time.perf_counter()
        published = publish(course, outcome.rubric, profile or course.default_profile, outcome.to_publish,
                            recorded=outcome.recorded)
        outcome.csv, outcome.report = published.csv, published.report
        outcome.record_s += time.perf_counter() - began
        outcome.wall_s += time.perf_counter() - began
    return outcomes


def grade_assignment(course: Course, assignment: str, profile: str | None = None, student: str | None = None,
                     sandboxed: bool = True, workers: int | None = None, scheduler: str | None = None,
                     force: bool = False, log: Callable[[str], None] = print, console=None,
                     **options) -> BatchOutcome:
    """Grade and publish what is not graded yet of one assignment."""
    return grade_assignments(course, [assignment], profile, student, sandboxed, workers, scheduler, force,
                             log, console, **options)[assignment]
