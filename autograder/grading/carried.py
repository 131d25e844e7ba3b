"""Carried tasks: a grading task that brings what its runner needs and returns what the client
records, so a runner needs no shared folder with the instructor's machine, only the installed
project, its own data root and its own hidden data root.

Client side, `carry(task)` reads the bytes (submission, built notebook, rubric,
the course secret; for a re-score the earlier run's result and executed notebook). Runner side,
`run_carried(task)` lays them out in a private temporary folder, grades there with its own data
roots (`AUTOGRADER_DATA_ROOT`, `AUTOGRADER_HIDDEN_DATA_ROOT`, or their defaults), and returns the
result with the files to record (the executed notebook, the evaluator's figures and report) within
a size budget. Client side again, `unpack(result)` writes them into the attempt folder. The
exported model stays on the runner and is deleted with its folder.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from .pipeline import GradingTask, grade_one
from .results import GradeResult

MAX_FILE_BYTES = 16 * 2**20      # one returned file (an executed notebook is capped at 8 MB of outputs)
MAX_RETURN_BYTES = 48 * 2**20    # everything a task returns
RETURNED = ("work/{a}.ipynb", "grader", "grader-error.txt")   # feedback is rendered by the client


@dataclass(frozen=True)
class Carried:
    submission: bytes | None          # None: the folder held no notebook (Submission.problem)
    source_notebook: bytes
    rubric: bytes
    secret: int
    previous_result: bytes | None = None      # a re-score: the earlier attempt's result.json
    previous_notebook: bytes | None = None    # ... and its executed notebook


def _read(path: Path | None) -> bytes | None:
    try:
        return Path(path).read_bytes() if path else None
    except OSError:
        return None


def carry(task: GradingTask) -> GradingTask:
    """The task with the bytes its runner needs (read here, on the client)."""
    from ..secret import course_secret
    from .stored import RESULT_FILE

    sub = task.submission
    previous = Path(task.rescore_from) if task.rescore_from else None
    carried = Carried(
        submission=None if sub.problem else _read(sub.path),
        source_notebook=Path(task.source_notebook).read_bytes(),
        rubric=Path(task.rubric.path).read_bytes(),
        secret=course_secret(task.cache_dir),
        previous_result=_read(previous / RESULT_FILE) if previous else None,
        previous_notebook=_read(previous / "work" / f"{sub.assignment}.ipynb") if previous else None)
    return replace(task, carried=carried)


def runner_roots() -> tuple[Path, Path]:
    """This runner's data root and hidden data root (the course's defaults when not set)."""
    data = os.environ.get("AUTOGRADER_DATA_ROOT", "~/course-data")
    hidden = os.environ.get("AUTOGRADER_HIDDEN_DATA_ROOT", "~/course-hidden-data")
    return Path(data).expanduser(), Path(hidden).expanduser()


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _lay_out(task: GradingTask, root: Path) -> GradingTask:
    """The task's files in `root`, and the task pointing at them and at this runner's data."""
    from ..secret import SECRET_FILE
    from .stored import RESULT_FILE

    c, sub = task.carried, task.submission
    name = sub.assignment
    submission = root / "submitted" / Path(sub.path).name
    if c.submission is not None:
        _write(submission, c.submission)
    rubric_path = _write(root / "rubrics" / f"{name}.yaml", c.rubric)
    rubric = replace(task.rubric, path=rubric_path)
    cache = root / "cache"
    _write(cache / SECRET_FILE, str(c.secret).encode(), 0o600)
    previous = None
    if c.previous_result is not None:
        previous = root / "previous"
        _write(previous / RESULT_FILE, c.previous_result)
        if c.previous_notebook is not None:
            _write(previous / "work" / f"{name}.ipynb", c.previous_notebook)
    data_root, hidden_root = runner_roots()
    settings = task.settings
    if task.profile != "tiny":   # the sandbox sees this runner's data root, read-only
        settings = replace(settings, readonly=(data_root,) if data_root.exists() else ())
    return replace(task, submission=replace(sub, path=submission), rubric=rubric,
                   source_notebook=_write(root / "source" / f"{name}.ipynb", c.source_notebook),
                   attempt_dir=root / "attempt", cache_dir=cache, data_root=data_root, hidden_root=hidden_root,
                   settings=settings, rescore_from=previous, reevaluate=False, carried=None)


def _returned_files(attempt: Path, assignment: str) -> tuple[dict[str, bytes], list[str]]:
    """Regular files to record, relative to the attempt folder, within the budget; what was left."""
    wanted = []   # the folder is sealed already (no links, no special files); only regular files are read
    for pattern in RETURNED:
        path = attempt / pattern.format(a=assignment)
        if path.is_dir() and not path.is_symlink():
            wanted += sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
        elif path.is_file() and not path.is_symlink():
            wanted.append(path)
    files, left, total = {}, [], 0
    for path in wanted:
        size = path.stat().st_size
        rel = str(path.relative_to(attempt))
        if size > MAX_FILE_BYTES or total + size > MAX_RETURN_BYTES:
            left.append(rel)
            continue
        files[rel] = path.read_bytes()
        total += size
    return files, left


def _moved(value, old: str, new: str):
    """Paths under the runner's attempt folder, re-rooted at the client's."""
    if isinstance(value, str):
        return new + value[len(old):] if value.startswith(old) else value
    if isinstance(value, dict):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, old, new) for v in value]
    return value


def run_carried(task: GradingTask) -> GradeResult:
    """Runner side: grade in a private temporary folder, return the result and its files."""
    with tempfile.TemporaryDirectory(prefix="autograder-task-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)   # the sandbox's unprivileged uid must reach the attempt folder inside
        local = _lay_out(task, root)
        result = grade_one(local)
        files, left = _returned_files(local.attempt_dir, task.submission.assignment)
        old, new = str(local.attempt_dir), str(task.attempt_dir)
        result.evaluation = _moved(result.evaluation, old, new)
        result.output_dir = new
        result.returned = files
        if left:
            result.flags.append(f"files over the size budget were not brought back from the runner: {', '.join(left)}")
    return result


def unpack(result: GradeResult) -> GradeResult:
    """Client side: the returned files into the attempt folder (relative paths only)."""
    root = Path(result.output_dir)
    for rel, data in (result.returned or {}).items():
        parts = Path(rel).parts
        if not parts or Path(rel).is_absolute() or ".." in parts:
            continue
        _write(root.joinpath(*parts), data)
    result.returned = {}
    return result
