"""publish: feedback pages, the grades CSV and the class report, rendered from the newest
attempts and the gradebook, where formgrader's manual scores and comments win.

`autograder grade` ends with it; `autograder publish A` runs it alone after manual grading in
formgrader (nothing is executed again). nbgrader's own `generate_feedback` is configured not to
publish grader internals (see autograder/nbgrader_config.py), but it renders the executed notebook,
not this feedback: use `autograder publish`.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..course import Course
from ..grading import record
from ..grading.results import GradeResult
from ..intake.timestamps import submitted_at
from ..rubric import Rubric
from .html import render_class_report, render_feedback
from .views import Lateness, apply_marks, PartView

SUBMISSION_INFO = "submission.json"   # written by collect beside the notebook: LMS id, name, late


@dataclass
class Published:
    feedback: dict[str, Path]
    csv: Path
    report: Path
    results: list[GradeResult]        # as published: manual scores applied


def submission_info(course: Course, student: str, assignment: str) -> dict:
    """What collect recorded about a submission (LMS id and name, the LMS's late mark, the file taken)."""
    try:
        data = json.loads((course.submitted_dir / student / assignment / SUBMISSION_INFO).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def lateness(course: Course, assignment: str, students) -> dict[str, Lateness]:
    due = course.due_date(assignment)
    return {s: Lateness(submitted_at(course, s, assignment), due,
                        bool(submission_info(course, s, assignment).get("late"))) for s in students}


def with_marks(result: GradeResult, rubric: Rubric, marks: dict | None) -> GradeResult:
    """A copy of `result` whose part points and review states are the gradebook's."""
    out = copy.deepcopy(result)
    for part in out.parts:
        view = apply_marks(PartView(part.id, part.title, part.points, part.max_points, "", review=part.needs_review),
                           rubric.part(part.id), marks or {})
        part.points, part.needs_review = view.points, view.review
    return out


def publish(course: Course, rubric: Rubric, profile: str | None = None,
            results: list[GradeResult] | None = None, recorded: tuple | None = None) -> Published:
    """Render every student's standing attempt (`results` replace what is on disk for their students):
    the newest one the grader completed; a grader-side failure never replaces a grade.
    `recorded`: `record.recorded(...)` when the caller has just read it."""
    name = rubric.assignment
    standing, failures = recorded or record.recorded(course, name)
    every = {r.student: r for r in standing}
    every.update({r.student: r for r in results or []})
    if not every and results is None:   # `autograder publish` before any grading
        raise FileNotFoundError(f"no graded attempts of {name} under {course.autograded_dir}; run `autograder grade {name}`")
    marks = record.gradebook_marks(course, name)
    late = lateness(course, name, every)
    others = frozenset(every)
    pages = {}
    for student, result in sorted(every.items()):
        page = render_feedback(result, rubric, others, marks.get(student), late[student])
        html = course.feedback_dir / student / name / f"{name}.html"
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(page)
        pages[student] = html
        if Path(result.output_dir).is_dir():  # the attempt keeps its own copy
            (Path(result.output_dir) / "feedback.html").write_text(page)
    final = [with_marks(r, rubric, marks.get(s)) for s, r in sorted(every.items())]
    csv_path = record.write_csv(course.workdir / "grades" / f"{name}.csv", rubric, final)
    report = course.workdir / "reports" / f"{name}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    links = {s: os.path.relpath(pages[s], report.parent) for s in every}
    profile = profile or next((r.profile for r in every.values()), "")
    report.write_text(render_class_report(rubric, list(every.values()), profile, links, marks, late, failures))
    return Published(pages, csv_path, report, final)
