"""nbgrader configuration for a course, built from the Course data (no config files, no chdir)."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from traitlets.config import Config

from .course import Course


def nbgrader_config(course: Course) -> Config:
    c = Config()
    c.CourseDirectory.root = str(course.workdir)
    c.CourseDirectory.course_id = course.course_id
    c.CourseDirectory.source_directory = course.source_dir_name
    c.CourseDirectory.release_directory = course.release_dir_name
    c.CourseDirectory.db_url = course.db_url
    c.Execute.timeout = int(course.profile(None).cell_timeout_s)
    c.IgnorePattern.pattern = r".*(Warning|warn)\b.*"
    c.LateSubmissionPlugin.penalty_method = course.late_penalty
    return student_safe_feedback(c)


# nbgrader's CourseDirectory.ignore default, and the grader's own files beside the executed notebook
NBGRADER_IGNORE = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]
GRADER_FILES = ["attempts", "result.json"]
FEEDBACK_PREPROCESSORS = ["nbgrader.preprocessors.GetGrades", "nbgrader.preprocessors.ClearHiddenTests",
                          "autograder.reports.nbgrader_feedback.RedactForStudents",
                          "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor"]


def student_safe_feedback(c):
    """What `nbgrader generate_feedback` publishes from autograded/<student>/<a>/: the executed
    notebook without hidden tests, injected parameters, server paths or scorer internals, and not
    the attempt folders (result.json names other students in copy pairs; the grader's files hold
    hidden-split evaluations). Our own feedback comes from `autograder publish`."""
    c.CourseDirectory.ignore = NBGRADER_IGNORE + GRADER_FILES
    c.GenerateFeedback.preprocessors = FEEDBACK_PREPROCESSORS
    return c


def ensure_tools_on_path() -> None:
    """nbgrader's Gradebook shells out to `alembic`; it lives beside this interpreter."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def open_gradebook(course: Course):
    from nbgrader.api import Gradebook

    ensure_tools_on_path()
    return Gradebook(course.db_url, course.course_id)


def nbgrader_api(course: Course, assignment: str | None = None):
    """nbgrader's own API object for this course (the same one formgrader uses)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    ensure_tools_on_path()
    config = nbgrader_config(course)
    coursedir = CourseDirectory(config=config)
    if assignment:
        coursedir.assignment_id = assignment
    return NbGraderAPI(coursedir=coursedir, config=config)


def write_nbgrader_config(course: Course) -> Path:
    """An nbgrader_config.py in a work folder, so `nbgrader ...` commands work there too."""
    path = course.workdir / "nbgrader_config.py"
    path.write_text(
        "# Written by autograder for this work folder; the course itself is course_config.py.\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {course.course_id!r}\n"
        f"c.CourseDirectory.source_directory = {course.source_dir_name!r}\n"
        f"c.CourseDirectory.release_directory = {course.release_dir_name!r}\n"
        f"c.CourseDirectory.db_url = {course.db_url!r}\n"
        f"c.LateSubmissionPlugin.penalty_method = {course.late_penalty!r}\n"
        "from autograder.nbgrader_config import student_safe_feedback\n"
        "student_safe_feedback(c)\n")
    return path


# nbgrader's converters change the process's working folder while they run, so two at once in
# one process (the demo releases in a thread while other work goes on) would write into each
# other's folders: one at a time.
_CONVERTING = threading.Lock()


def generate_assignment(course: Course, assignment: str) -> dict:
    """nbgrader's generate_assignment for `assignment` (its result dict), one at a time per process."""
    with _CONVERTING:
        return nbgrader_api(course, assignment).generate_assignment(assignment, force=True, create=True)
