"""Fit the reflection scorer's calibration from scores an instructor gave in formgrader.

Calibrations live beside the rubric: rubrics/<a>.calibration.json, {part id: calibration}.
The assignment's items are calibrated together (reflection.fit_course): their (raw score,
points) pairs are pooled, and an item with enough graded answers of its own gets its own
curve. Answers are read exactly as suggestions read them (reflection.answer_text).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..course import Course
from ..nbgrader_config import open_gradebook
from ..rubric import Rubric, reflection_spec
from . import record

# Graded answers (over the assignment's items) before a calibration is fitted at all.
MIN_GRADED = 4


def calibration_path(rubric: Rubric) -> Path | None:
    return rubric.path.with_suffix(".calibration.json") if rubric.path else None


def read_calibrations(rubric: Rubric) -> tuple[dict, str]:
    """The stored calibrations as plain dicts ({part id: dict}, {} when there are none) and the
    file's digest (a grading input): read once per batch and carried by each task."""
    from .inputs import bytes_digest

    path = calibration_path(rubric)
    try:
        data = path.read_bytes() if path else None
    except FileNotFoundError:
        data = None
    stored = check_calibrations(path, data, rubric) if data is not None else {}
    return stored, bytes_digest(data)


def check_calibrations(path: Path, data: bytes, rubric: Rubric) -> dict:
    """The stored calibrations, or PreflightError naming the file, the part and the fix: a
    broken file must stop the batch before any student code runs, not fail every task."""
    from ..reflection import CalibrationError
    from .preflight import PreflightError, refused

    def refuse(problem: str) -> PreflightError:
        return refused([f"{path}: {problem}; run `autograder calibrate {rubric.assignment}` again, or delete "
                        "the file to suggest written-answer scores without it"])

    try:
        stored = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse(f"not valid JSON ({exc})") from None
    if not isinstance(stored, dict):
        raise refuse("must be a JSON object of {part id: calibration}")
    try:   # a part the rubric no longer has is never read: harmless
        load_calibrations(stored)
    except CalibrationError as exc:
        raise refuse(str(exc)) from None
    return stored


def load_calibrations(stored: dict) -> dict:
    """{part id: Calibration} from the plain dicts `read_calibrations` gives."""
    from ..reflection.calibration import calibrations_from_dict

    return calibrations_from_dict(stored)


def hand_graded(course: Course, rubric: Rubric, part_id: str) -> list[tuple[str, float]]:
    """(answer as the scorer reads it, manual score) for every student whose answer an
    instructor scored."""
    from ..reflection.text import answer_text

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
                graded.append((answer_text(answer), float(grade.manual_score)))
    return graded


def calibrate(course: Course, rubric: Rubric, learn_reading: bool = True,
              log: Callable[[str], None] | None = None) -> dict[str, int]:
    """Fit the assignment's reflection parts together from their hand-graded answers; save.

    Returns the number of graded answers per part. With fewer than MIN_GRADED graded answers
    over all parts, the stored calibrations are kept as they were. `learn_reading`: learn the
    course's reading of answers from the graded ones first (reflection/reading.py; a minute or
    a few on a CPU), when they give enough pairs of texts.
    """
    from ..reflection import fit_course
    from ..reflection.calibration import calibrations_to_dict

    from .preflight import PreflightError

    try:
        kept = read_calibrations(rubric)[0]
    except PreflightError:   # a broken file is replaced by what is fitted now
        kept = {}
    fitted, counts, items = kept, {}, []
    for part in rubric.of_kind("reflection"):
        spec = reflection_spec(part)
        graded = hand_graded(course, rubric, part.id) if spec else []
        counts[part.id] = len(graded)
        if spec:  # an item nobody graded yet still gets the pooled curve of the others
            items.append((spec, graded))
    if sum(counts.values()) >= MIN_GRADED:   # every item of the rubric is fitted anew
        fitted = calibrations_to_dict(fit_course(items, learn_reading=learn_reading, log=log))
    path = calibration_path(rubric)
    path.write_text(json.dumps(fitted, indent=1))
    return counts
