"""verify: the reference solution executes and earns full marks under its own rubric."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .course import Course
from .grading.batch import execution_settings, make_task, reference_seconds
from .grading.pipeline import grade_one
from .grading.results import GradeResult, Submission
from .rubric import load_rubric


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
    ref = reference_seconds(course, rubric, profile, settings, log=log)
    scratch = course.cache_dir / "verify" / f"{name}-{profile}"
    if scratch.exists():
        import shutil
        shutil.rmtree(scratch)
    sub = Submission("_reference", name, course.source_notebook(name))
    result = grade_one(make_task(course, rubric, sub, profile, settings, ref, scratch, 0))
    check = Verification(name, result)
    if result.status != "graded":
        check.problems.append(f"status {result.status}: {result.message}")
    for part in result.parts:
        if part.kind == "reflection":
            if part.points == 0:
                check.problems.append(f"{part.id}: the reference has no answer ({part.explanation})")
        elif part.points != part.max_points:
            check.problems.append(f"{part.id}: {part.points}/{part.max_points:g}: {part.explanation}")
    check.problems += result.flags
    return check
