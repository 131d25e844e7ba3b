"""status: where each submission of an assignment stands, and what is left to do."""

from __future__ import annotations

from dataclasses import dataclass

from ..course import Course
from ..grading import record
from ..grading.batch import discover
from ..grading.results import file_sha256
from .publish import lateness


@dataclass
class StudentStatus:
    student: str
    collected: str = ""          # submission time, '' when nothing is in submitted/
    graded: str = ""             # the newest attempt's status ('graded', 'failed', ...), '' if none
    score: float | None = None   # the gradebook's (manual scores win)
    max_score: float | None = None
    needs_review: bool = False
    grader_error: bool = False   # the grader failed, not the notebook: grading again retries it
    changed: bool = False        # collected again since it was graded
    late: str = ""


@dataclass
class AssignmentStatus:
    assignment: str
    students: list[StudentStatus]
    todo: list[str]


def assignment_status(course: Course, assignment: str) -> AssignmentStatus:
    subs = {s.student: s for s in discover(course, assignment)}
    latest = {r.student: r for r in record.latest_results(course, assignment)}
    failed = {r.student for r in record.grader_failures(course, assignment)}   # newest attempt, even over a grade
    final = record.final_scores(course, assignment)
    late = lateness(course, assignment, set(subs) | set(latest))
    rows = []
    for student in sorted(set(subs) | set(latest)):
        row = StudentStatus(student, late=late[student].describe())
        when = late[student].submitted_at
        if student in subs:
            row.collected = f"{when:%Y-%m-%d %H:%M}" if when else "yes"
        if (r := latest.get(student)) is not None:
            row.graded, row.max_score = r.status, r.max_score
            row.score, row.needs_review = final.get(student, (r.score, r.needs_review))
            row.needs_review = row.needs_review or r.needs_review and student not in final
            row.grader_error = r.grader_side or student in failed
            row.changed = student in subs and file_sha256(subs[student].path) != r.submission_sha256
        rows.append(row)
    return AssignmentStatus(assignment, rows, _todo(assignment, rows))


def _todo(a: str, rows: list[StudentStatus]) -> list[str]:
    ungraded = [r.student for r in rows if r.collected and (not r.graded or r.changed)]
    errors = [r.student for r in rows if r.grader_error]
    review = [r.student for r in rows if r.needs_review]
    todo = []
    if not rows:
        todo.append(f"collect submissions: autograder collect SOURCE {a}")
    if ungraded:
        todo.append(f"grade {len(ungraded)} new or changed submission(s): autograder grade {a}")
    if errors:
        todo.append(f"grade again {len(errors)} submission(s) the grader failed on: autograder grade {a} "
                    "(they are retried)")
    if review:
        todo.append(f"review {len(review)} submission(s) in formgrader, then: autograder publish {a}")
    if rows and not (ungraded or errors or review):
        todo.append(f"nothing left: every submission is graded and reviewed (autograder export {a})")
    return todo
