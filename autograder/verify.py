"""verify: the reference solution executes and earns full marks under its own rubric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .course import Course
from .grading.batch import execution_settings, make_task
from .grading.pipeline import grade_one
from .grading.results import GradeResult, Submission
from .grading.score import ScoringInput, score_timing
from .grading.timing import (cached_reference_seconds, cached_reference_service, machine_key, service_latency,
                             store_reference_seconds)
from .rubric import Rubric, load_rubric


@dataclass
class Verification:
    assignment: str
    result: GradeResult
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_assignment(course: Course, name: str, profile: str | None = None, sandboxed: bool = True,
                      log: Callable[[str], None] = print) -> Verification:
    course.check_assignment(name)
    profile = profile or course.default_profile
    rubric = load_rubric(course.rubric_dir / f"{name}.yaml", name)
    settings = execution_settings(course, rubric, profile, sandboxed)
    ref = cached_reference_seconds(course.cache_dir, name, profile, machine_key())
    service = cached_reference_service(course.cache_dir, name, profile, machine_key()) if ref else None
    scratch = course.cache_dir / "verify" / f"{name}-{profile}"
    if scratch.exists():
        import shutil
        shutil.rmtree(scratch)
    sub = Submission("_reference", name, course.source_notebook(name))
    result = grade_one(make_task(course, rubric, sub, profile, settings, ref, scratch, 0, reference_service=service))
    if ref is None and rubric.needs_reference_run:
        _adopt_as_reference_time(course, rubric, result, log)
    check = Verification(name, result)
    if result.status != "graded":
        check.problems.append(f"status {result.status}: {result.message}")
    for part in result.parts:
        if part.kind == "reflection":
            if part.points == 0:
                check.problems.append(f"{part.id}: the reference has no answer ({part.explanation})")
        elif part.kind == "inquiry":
            check.problems += _inquiry_problems(part, log)
        elif part.points != part.max_points:
            check.problems.append(f"{part.id}: {part.points}/{part.max_points:g}: {part.explanation}")
    check.problems += result.flags
    return check


# The reference reflection quotes the numbers of one run (the tiny profile on a CPU): on another
# profile or machine they may differ, which is worth a warning, not a failed verification.
RUN_DEPENDENT_CHECKS = ("numbers_match", "direction_matches")


def _inquiry_problems(part, log) -> list[str]:
    checks = part.details.get("checks")
    if not checks:
        return [f"{part.id}: {part.explanation}"]
    problems = []
    for c in checks:
        if c["passed"]:
            continue
        if c["name"] in RUN_DEPENDENT_CHECKS:
            log(f"{part.id}: warning: the reference reflection fails '{c['title']}' on this run: {c['explanation']}")
        else:
            problems.append(f"{part.id}: the reference fails '{c['title']}': {c['explanation']}")
    return problems


def _adopt_as_reference_time(course: Course, rubric: Rubric, result: GradeResult, log) -> None:
    """No reference time cached on this machine yet: this run is the measurement (one notebook
    run instead of two), so its timing ratio is 1 by construction."""
    seconds = result.timings.get("train_s")
    if not seconds:
        return
    service = service_latency(result.evaluation, rubric.latency_part.id) if rubric.latency_part else None
    if rubric.latency_part and service is None:
        return   # no latency to compare with: a grading session measures the reference again
    store_reference_seconds(course.cache_dir, rubric.assignment, result.profile, machine_key(), seconds, service)
    log(f"{rubric.assignment}: stored {seconds:.1f} s as this machine's reference training time")
    result.timings["reference_train_s"] = seconds
    metric_ok = all((p.points or 0) > 0 for p in result.parts if p.kind == "metric")
    data = ScoringInput(result.profile, None, train_s=seconds, reference_train_s=seconds)
    result.parts = [score_timing(rubric.part(p.id), data, metric_ok) if p.kind == "timing" else p
                    for p in result.parts]
