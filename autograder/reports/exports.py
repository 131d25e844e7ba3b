"""Grade exports for learning-management systems."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from ..rubric import Rubric


@dataclass(frozen=True)
class CanvasPerson:
    name: str
    canvas_id: str      # Canvas's user id: the `ID` column Canvas matches rows on
    sis_id: str = ""    # SIS User ID / SIS Login ID, when the roster says the student id is one


def canvas_people(students, roster=None, recorded: dict[str, dict] | None = None) -> tuple[dict[str, CanvasPerson], list[str]]:
    """Who each student is for Canvas, and the students Canvas could not match.

    With a roster, its student ids are taken as SIS ids and it gives Canvas ids and names; without
    one, the Canvas user id and name that `collect` recorded from a Canvas zip (submission.json).
    Anonymous-grading ids (anon_...) are not user ids: Canvas cannot match them."""
    people, missing = {}, []
    for student in sorted(students):
        info = (recorded or {}).get(student, {})
        zip_id = info.get("lms_id", "") if info.get("lms") == "canvas" else ""
        zip_id = "" if zip_id.startswith("anon_") else zip_id
        if roster is not None:   # a roster's student ids are the SIS ids
            person = CanvasPerson(roster.names.get(student) or info.get("name") or student,
                                  roster.lms_ids.get(student, "") or zip_id, student)
        else:
            person = CanvasPerson(info.get("name") or student, zip_id)
        if person.canvas_id or person.sis_id:
            people[student] = person
        else:
            missing.append(student)
    return people, missing


def canvas_csv(path: Path, rubric: Rubric, scores: dict[str, float], people: dict[str, CanvasPerson],
               canvas_assignment_id: str | None = None) -> Path:
    """A CSV that Canvas's gradebook import accepts: Student, ID, SIS User ID, SIS Login ID,
    Section, then one column named after the assignment (with its Canvas id when given), holding
    `scores` (student id -> points; the gradebook's, where formgrader's manual scores win)."""
    column = f"{rubric.title} ({canvas_assignment_id})" if canvas_assignment_id else rubric.title
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column])
        writer.writerow(["Points Possible", "", "", "", "", f"{rubric.total_points:g}"])
        for student in sorted(scores):
            p = people[student]
            writer.writerow([p.name, p.canvas_id, p.sis_id, p.sis_id, "", f"{scores[student]:g}"])
    return path
