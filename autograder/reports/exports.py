"""Grade exports for learning-management systems."""

from __future__ import annotations

import csv
from pathlib import Path

from ..grading.results import GradeResult
from ..rubric import Rubric


def canvas_csv(path: Path, rubric: Rubric, results: list[GradeResult], roster=None,
               canvas_assignment_id: str | None = None) -> Path:
    """A CSV that Canvas's gradebook import accepts: Student, ID, SIS User ID, SIS Login ID,
    Section, then one column named after the assignment (with its Canvas id when given).
    Scores waiting for manual grading are exported without them; the review column says so."""
    column = f"{rubric.title} ({canvas_assignment_id})" if canvas_assignment_id else rubric.title
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column])
        writer.writerow(["Points Possible", "", "", "", "", f"{rubric.total_points:g}"])
        for r in sorted(results, key=lambda r: r.student):
            name = (roster.names.get(r.student) if roster else None) or r.student
            canvas_id = roster.lms_ids.get(r.student, "") if roster else ""
            writer.writerow([name, canvas_id, r.student, r.student, "", f"{r.score:g}"])
    return path
