"""Grade exports for learning-management systems."""

from __future__ import annotations

import csv
from pathlib import Path

from ..rubric import Rubric


def canvas_csv(path: Path, rubric: Rubric, scores: dict[str, float], roster=None,
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
            name = (roster.names.get(student) if roster else None) or student
            canvas_id = roster.lms_ids.get(student, "") if roster else ""
            writer.writerow([name, canvas_id, student, student, "", f"{scores[student]:g}"])
    return path
