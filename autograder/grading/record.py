"""record: the one place that persists. Gradebook (nbgrader's, any SQLAlchemy URL), per-attempt
JSON, the executed notebook where formgrader looks for it, feedback HTML and the grades CSV."""

from __future__ import annotations

import csv
import os
import shutil
import stat
from datetime import timezone
from pathlib import Path

from ..course import Course
from ..nbgrader_config import generate_assignment, open_gradebook
from ..rubric import Rubric
from .results import GradeResult
from .stored import RESULT_FILE, read_attempt, write_attempt  # noqa: F401 - record's public API


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
    result = generate_assignment(scratch, name)
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
    """Write grades; a grader-side failure is never written (the earlier grade, if any, stands)."""
    with open_gradebook(course) as gb:
        for result in (r for r in results if not r.grader_side):
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
            _comment_task_cells(gb, rubric, result)
            gb.db.commit()


def _comment_task_cells(gb, rubric: Rubric, result: GradeResult) -> None:
    """Every task cell (accuracy, timing, artifact) gets the grader's reason as its comment, so
    formgrader shows what was measured beside the points."""
    for part in result.parts:
        if rubric.part(part.id).kind not in ("metric", "timing", "artifact", "efficiency"):
            continue
        points = "pending" if part.points is None else f"{part.points:g}/{part.max_points:g}"
        for gid in rubric.part(part.id).grade_cell_ids:
            gb.find_comment(gid, result.assignment, result.assignment, result.student).auto_comment = \
                f"{points}: {part.explanation}"


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


def publish_notebook(course: Course, result: GradeResult) -> bool:
    """Formgrader shows autograded/<student>/<a>/<a>.ipynb; put this attempt's executed notebook there.

    Only from a run the grader completed (no grader-error or lost-worker flag: such a run may
    have stopped before the attempt folder was sealed), and only a regular file opened without
    following a link; written through a new file, so a link at the target is replaced, never
    followed. Returns whether it published."""
    if result.grader_side:
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
            found.append(read_attempt(path.parent))
        except (OSError, ValueError, TypeError):
            continue
    return found


def standing(found: list[GradeResult]) -> GradeResult | None:
    """The attempt whose grade stands: the newest one the grader completed (a grader-side failure
    never replaces a grade); the newest failure only when no grade exists yet."""
    completed = [r for r in found if not r.grader_side]
    return completed[-1] if completed else (found[-1] if found else None)


def recorded(course: Course, assignment: str) -> tuple[list[GradeResult], list[GradeResult]]:
    """Every student's attempts read once: (the standing attempts, the newest attempts that are
    grader-side failures, which the instructor must look at)."""
    found = [a for a in (attempts(course, d.name, assignment) for d in sorted(course.autograded_dir.glob("*"))) if a]
    return [standing(a) for a in found], [a[-1] for a in found if a[-1].grader_side]


def latest_results(course: Course, assignment: str) -> list[GradeResult]:
    """The standing attempt of every student, read back from the attempt folders."""
    return recorded(course, assignment)[0]


def grader_failures(course: Course, assignment: str) -> list[GradeResult]:
    """Students whose newest attempt is a grader-side failure."""
    return recorded(course, assignment)[1]


def gradebook_marks(course: Course, assignment: str) -> dict[str, dict[str, dict]]:
    """student -> grade cell id -> auto, manual, needs_manual, max, comment (formgrader's manual
    comment, else the grader's). Manual scores and comments are what an instructor decided."""
    from nbgrader.api import MissingEntry

    marks: dict[str, dict[str, dict]] = {}
    with open_gradebook(course) as gb:
        try:
            submissions = gb.find_assignment(assignment).submissions
        except MissingEntry:
            return {}
        for sub in submissions:
            cells = marks.setdefault(sub.student_id, {})
            for nb in sub.notebooks:
                for g in nb.grades:
                    cells[g.name] = {"auto": g.auto_score, "manual": g.manual_score, "max": g.max_score,
                                     "needs_manual": bool(g.needs_manual_grade), "comment": None}
                for c in nb.comments:
                    entry = cells.setdefault(c.name, {"auto": None, "manual": None, "max": 0.0,
                                                      "needs_manual": False})
                    entry["comment"] = c.manual_comment or None
    return marks


def record_submission_times(course: Course, assignment: str, times: dict, duedate, penalty_method: str = "none") -> None:
    """The due date and each submission's time in the gradebook, and nbgrader's late penalty
    (its LateSubmissionPlugin, as `nbgrader autograde` applies it), so nbgrader's late-penalty
    machinery and `nbgrader export` see what collect recorded. `times`: student -> aware UTC datetime."""
    from nbgrader.plugins import LateSubmissionPlugin

    def naive_utc(when):
        return when.astimezone(timezone.utc).replace(tzinfo=None) if when else None

    plugin = LateSubmissionPlugin(penalty_method=penalty_method)
    with open_gradebook(course) as gb:
        gb.find_assignment(assignment).duedate = naive_utc(duedate)
        for student, when in times.items():
            try:
                sub = gb.find_submission(assignment, student)
            except Exception:
                continue
            sub.timestamp = naive_utc(when)
            gb.db.flush()
            for nb in sub.notebooks:
                nb.late_submission_penalty = None
                if sub.total_seconds_late > 0:
                    penalty = plugin.late_submission_penalty(student, nb.score, sub.total_seconds_late)
                    nb.late_submission_penalty = None if penalty is None else min(max(penalty, 0.0), nb.score)
        gb.db.commit()
