"""preflight: what can be checked before any student code runs, checked first.

Grading refuses with one message that names each file and its fix, instead of discovering the
problem after every submission ran (and recording the grader's failure as the students' grades).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from ..course import Course
from ..rubric import Rubric


class PreflightError(RuntimeError):
    """Grading cannot start; the message names the file and the fix."""


def check_notebook(course: Course, rubric: Rubric) -> list[str]:
    """The built source notebook exists and is what `build` makes of the reference and rubric now
    (as `build --check` sees it), so every cell the rubric scores is in it."""
    from ..build import BuildError
    from ..build.notebook import render_assignment

    name, path = rubric.assignment, course.source_notebook(rubric.assignment)
    if not path.is_file():
        return [f"{path} does not exist: run `autograder build {name}` (then `autograder release {name}`)"]
    try:
        fresh = render_assignment(course, name)
    except BuildError as exc:
        return [f"{course.rubric_dir / (name + '.yaml')} does not fit {course.reference_dir / (name + '.py')}: {exc}; "
                "fix the rubric or the reference, then run `autograder build " + name + "`"]
    if path.read_text() != fresh:
        return [f"{path} is stale: a fresh build from {course.reference_dir / (name + '.py')} and "
                f"{course.rubric_dir / (name + '.yaml')} differs (the rubric or the reference changed since). "
                f"Run `autograder build {name}` and, if students should get the change, `autograder release {name}`"]
    return []


def check_gradebook(course: Course) -> list[str]:
    """The gradebook opens and takes a write (rolled back): a read-only one is found now, not
    after every submission ran."""
    from nbgrader.api import Student

    from ..nbgrader_config import open_gradebook

    try:
        with open_gradebook(course) as gb:
            gb.db.add(Student(id=f"_preflight_{uuid.uuid4().hex[:8]}"))
            try:
                gb.db.flush()
            finally:
                gb.db.rollback()
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return [f"the gradebook {course.db_url} cannot be written ({reason}): make it and its folder writable "
                "by you, or pass --db with the URL of a writable gradebook"]
    return []


def check_data(course: Course, rubric: Rubric, profile: str) -> list[str]:
    """The profile's student splits under the data root and its hidden split under the hidden
    root, as the reference and the evaluator will read them. The tiny profile's data ships with
    the installed packages; only the other profiles are checked."""
    if profile == "tiny" or not rubric.dataset:
        return []
    from ..datasets.hidden import course_secret
    from ..datasets.registry import load_hidden_split, load_split

    problems = []
    for what, load in (("validation split", lambda: load_split(rubric.dataset, "val", profile, course.data_root)),
                       ("hidden test split", lambda: load_hidden_split(rubric.dataset, profile, course.hidden_data_root,
                                                                       course_secret(course.cache_dir)))):
        try:
            load()
        except FileNotFoundError as exc:   # DatasetMissing: the message says what goes where
            problems.append(f"{rubric.dataset} ({what}, profile {profile}): {exc}")
        except Exception as exc:
            problems.append(f"{rubric.dataset} ({what}, profile {profile}) could not be read: "
                            f"{type(exc).__name__}: {str(exc)[:300]}")
    return problems


def preflight(course: Course, rubric: Rubric, profile: str, scheduler: str | None = None) -> None:
    """Raise PreflightError listing every problem found. Data is checked where it is read: here for
    the embedded cluster; on a cluster of runners each runner reports its own (a grader error)."""
    problems = check_notebook(course, rubric) + check_gradebook(course)
    if not scheduler:
        problems += check_data(course, rubric, profile)
    if problems:
        raise refused(problems)


def refused(problems: list[str]) -> PreflightError:
    """Every problem found, each with its file and fix, in one refusal."""
    return PreflightError(f"nothing was graded: {len(problems)} problem(s) to fix first\n"
                          + "\n".join(f"  - {p}" for p in problems))


def reference_failed(name: str, profile: str, status: str, message: str, where: Path) -> PreflightError:
    return PreflightError(
        f"nothing was graded: the reference solution of {name} did not train on the {profile} profile "
        f"({status}: {message}), so timing would be scored against nothing. Run `autograder verify {name} "
        f"--profile {profile}` and fix what it reports (the reference run is in {where}).")


def reference_service_failed(name: str, profile: str, explanation: str, where: Path) -> PreflightError:
    return PreflightError(
        f"nothing was graded: the reference solution of {name} trained on the {profile} profile, but its "
        f"service's latency was not measured ({explanation}), so every student's latency would be scored "
        f"against nothing. Run `autograder verify {name} --profile {profile}` and fix what it reports (the "
        f"reference run is in {where}).")
