"""Fit the reflection scorer's calibration from scores an instructor gave in formgrader.

Calibrations live beside the rubric: rubrics/<a>.calibration.json, {part id: calibration}.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..course import Course
from ..nbgrader_config import open_gradebook
from ..rubric import Rubric, reflection_spec
from . import record

MIN_GRADED = 4


def calibration_path(rubric: Rubric) -> Path | None:
    return rubric.path.with_suffix(".calibration.json") if rubric.path else None


def load_calibrations(rubric: Rubric) -> dict:
    from ..reflection import Calibration

    path = calibration_path(rubric)
    if not path or not path.is_file():
        return {}
    return {part_id: Calibration.from_dict(d) for part_id, d in json.loads(path.read_text()).items()}


def hand_graded(course: Course, rubric: Rubric, part_id: str) -> list[tuple[str, float]]:
    """(answer, manual score) for every student whose answer an instructor scored."""
    part = rubric.part(part_id)
    answers = {}
    for result in record.latest_results(course, rubric.assignment):
        for p in result.parts:
            if p.id == part_id and p.details.get("answer"):
                answers[result.student] = p.details["answer"]
    graded = []
    with open_gradebook(course) as gb:
        for student, answer in answers.items():
            try:
                grade = gb.find_grade(part.cell, rubric.assignment, rubric.assignment, student)
            except Exception:
                continue
            if grade.manual_score is not None:
                graded.append((answer, float(grade.manual_score)))
    return graded


def calibrate(course: Course, rubric: Rubric) -> dict[str, int]:
    """Fit every reflection part that has criteria and enough hand-graded answers; save."""
    from ..reflection import fit_calibration

    fitted, counts = load_calibrations(rubric), {}
    for part in rubric.of_kind("reflection"):
        spec = reflection_spec(part)
        graded = hand_graded(course, rubric, part.id) if spec else []
        counts[part.id] = len(graded)
        if spec and len(graded) >= MIN_GRADED:
            fitted[part.id] = fit_calibration(spec, graded)
    path = calibration_path(rubric)
    path.write_text(json.dumps({k: v.to_dict() for k, v in fitted.items()}, indent=1))
    return counts
