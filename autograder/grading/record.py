"""record: the one place that persists. Gradebook (nbgrader's, any SQLAlchemy URL), per-attempt
JSON, the executed notebook where formgrader looks for it, feedback HTML and the grades CSV."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
from pathlib import Path

from ..course import Course
from ..nbgrader_config import nbgrader_api, open_gradebook
from ..rubric import Rubric
from .results import RETRY_FLAGS, GradeResult

RESULT_FILE = "result.json"


class RecordError(RuntimeError):
    pass


def ensure_assignment_in_gradebook(course: Course, name: str) -> None:
    """Grade rows exist only for cells known when a submission is added: create the assignment's
    cells first, with nbgrader's own generate_assignment (into a scratch release folder)."""
    from nbgrader.api import MissingEntry

    with open_gradebook(course) as gb:
        try:
            if gb.find_assignment(name).notebooks:
                return
        except MissingEntry:
            pass
    scratch = course.with_work(course.workdir, release_dir_name=".autograder/gradebook-release")
    result = nbgrader_api(scratch, name).generate_assignment(name, force=True, create=True)
    if not result.get("success"):
        raise RecordError(f"could not register {name} in the gradebook:\n{result.get('error') or result.get('log')}")


def _cell_scores(result: GradeResult, rubric: Rubric) -> dict[str, tuple[float | None, bool]]:
    """grade cell id -> (auto score, needs manual grade)."""
    scores = {}
    for part_result in result.parts:
        part = rubric.part(part_result.id)
        if part.kind == "tests":
            cells = part_result.details.get("cells", {})
            for gid in part.cells:
                scores[gid] = (float(cells.get(gid, 0.0)), False)
        else:
            for gid in part.grade_cell_ids:
                scores[gid] = (part_result.points, part_result.needs_review)
    return scores


def record_gradebook(course: Course, rubric: Rubric, results: list[GradeResult]) -> None:
    with open_gradebook(course) as gb:
        for result in results:
            gb.update_or_create_student(result.student)
            try:
                gb.find_submission(result.assignment, result.student)
            except Exception:
                gb.add_submission(result.assignment, result.student)
            for gid, (auto, review) in _cell_scores(result, rubric).items():
                grade = gb.find_grade(gid, result.assignment, result.assignment, result.student)
                grade.auto_score = auto
                # a manual score from formgrader always wins and is never reset by a regrade
                grade.needs_manual_grade = bool(review) and grade.manual_score is None
            for part in result.parts:  # the scorer's reasons, shown beside the answer in formgrader
                if part.kind in ("reflection", "inquiry") and part.details.get("reasons"):
                    comment = gb.find_comment(rubric.part(part.id).cell, result.assignment, result.assignment,
                                              result.student)
                    comment.auto_comment = f"Suggested {part.points:g}/{part.max_points:g}: " + "; ".join(part.details["reasons"])
            gb.db.commit()


def final_scores(course: Course, assignment: str) -> dict[str, tuple[float, bool]]:
    """student -> (score, still waiting for a human) from the gradebook, where a manual score
    given in formgrader replaces the automatic or suggested one (nbgrader's Grade.score)."""
    from nbgrader.api import MissingEntry

    with open_gradebook(course) as gb:
        try:
            submissions = gb.find_assignment(assignment).submissions
        except MissingEntry:
            return {}
        return {sub.student_id: (float(sub.score), bool(sub.needs_manual_grade)) for sub in submissions}


def write_attempt(result: GradeResult) -> Path:
    path = Path(result.output_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1, default=str))
    return path


def publish_notebook(course: Course, result: GradeResult) -> bool:
    """Formgrader shows autograded/<student>/<a>/<a>.ipynb; put this attempt's executed notebook there.

    Only from a run the grader completed (no grader-error or lost-worker flag: such a run may
    have stopped before the attempt folder was sealed), and only a regular file opened without
    following a link; written through a new file, so a link at the target is replaced, never
    followed. Returns whether it published."""
    if RETRY_FLAGS & set(result.flags):
        return False
    work = Path(result.output_dir) / "work"
    try:
        folder = os.open(work, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            fd = os.open(f"{result.assignment}.ipynb", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        finally:
            os.close(folder)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as src:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        target = course.autograded_dir / result.student / result.assignment / f"{result.assignment}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.publishing")
        partial.unlink(missing_ok=True)
        with open(partial, "xb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(partial, target)
    return True


def write_csv(path: Path, rubric: Rubric, results: list[GradeResult]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "assignment", "attempt", "status", "score", "max_score",
                         *[p.id for p in rubric.parts], "needs_review", "message"])
        for r in sorted(results, key=lambda r: r.student):
            by_id = {p.id: p.points for p in r.parts}
            writer.writerow([r.student, r.assignment, r.attempt, r.status, f"{r.score:g}", f"{r.max_score:g}",
                             *["" if by_id.get(p.id) is None else f"{by_id[p.id]:g}" for p in rubric.parts],
                             "yes" if r.needs_review else "", r.message])
    return path


def attempts(course: Course, student: str, assignment: str) -> list[GradeResult]:
    """Every recorded attempt of one student, oldest first (unreadable ones skipped)."""
    found = []
    for path in sorted((course.autograded_dir / student / assignment / "attempts").glob(f"*/{RESULT_FILE}")):
        try:
            found.append(GradeResult.from_dict(json.loads(path.read_text())))
        except (ValueError, TypeError):
            continue
    return found


def latest_results(course: Course, assignment: str) -> list[GradeResult]:
    """The newest attempt of every student, read back from the attempt folders."""
    latest = [attempts(course, d.name, assignment) for d in sorted(course.autograded_dir.glob("*"))]
    return [a[-1] for a in latest if a]
