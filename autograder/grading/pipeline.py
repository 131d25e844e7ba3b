"""One submission through sanitize -> execute -> evaluate -> score. Never raises for bad input:
every submission yields a GradeResult with a status. Runs on a Dask worker or in-process."""

from __future__ import annotations

import platform
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from ..rubric import Rubric
from ..sandbox.tree import remove_tree
from .execute import Execution, ExecutionSettings, cell_duration, cell_errors, execute
from .calibrate import load_calibrations
from .evaluate import evaluate
from .results import GRADER_ERROR, GradeResult, PartResult, Submission, file_sha256
from .sanitize import InvalidSubmission, read_submission, sanitize
from .score import VALUE_TOLERANCE, ScoringInput, score_all


@dataclass(frozen=True)
class GradingTask:
    submission: Submission
    rubric: Rubric
    profile: str
    source_notebook: Path          # assignments/<a>/<a>.ipynb: instructor cells come from here
    attempt_dir: Path              # new, empty: everything this run writes goes here
    attempt: int
    settings: ExecutionSettings
    cache_dir: Path                # holds the course secret (evaluator only)
    data_root: Path | None = None
    hidden_root: Path | None = None
    reference_train_s: float | None = None
    reference_cells: dict[str, float] | None = None   # instructor cell durations in the reference run
    seed: int = 0
    device: str = "auto"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def versions() -> dict:
    import nbgrader
    import papermill
    import torch

    from .. import __version__
    return {"autograder": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "nbgrader": nbgrader.__version__, "papermill": papermill.__version__}


def zero_parts(rubric: Rubric, why: str) -> list[PartResult]:
    return [PartResult(p.id, p.kind, p.title, 0.0, p.points, f"0 points: {why}") for p in rubric.parts]


def _status_message(execution: Execution, errors: list[dict]) -> tuple[str, str]:
    if execution.status != "ok":
        return execution.status, execution.message
    raised = [e for e in errors if not e["cell"].startswith("test_")]
    if raised:
        first = raised[0]
        return "failed", (f"{len(raised)} cell(s) raised an error; first: cell '{first['cell']}' raised "
                          f"{first['ename']}: {first['evalue'][:160]}")
    return "graded", "the notebook ran to the end"


def _parameters(task: GradingTask, artifacts: Path) -> dict:
    return {"profile": task.profile, "device": task.device, "seed": task.seed,
            "data_root": str(task.data_root) if task.data_root and task.profile != "tiny" else None,
            "artifact_dir": str(artifacts)}


def _discrepancies(evaluation: dict) -> list[str]:
    """What the notebook claims versus what the evaluator measured."""
    reported = evaluation.get("reported", {})
    claimed, measured = reported.get("val_accuracy"), evaluation.get("val_accuracy")
    try:
        if claimed is not None and measured is not None and abs(float(claimed) - float(measured)) > VALUE_TOLERANCE:
            return [f"reported validation accuracy {float(claimed):.3f} differs from the measured {float(measured):.3f}"]
    except (TypeError, ValueError):
        return [f"reported validation accuracy {claimed!r} is not a number"]
    return []


def grade_one(task: GradingTask) -> GradeResult:
    sub = task.submission
    result = GradeResult(student=sub.student, assignment=sub.assignment, status="crashed", message="",
                         profile=task.profile, attempt=task.attempt, output_dir=str(task.attempt_dir),
                         submission_sha256=file_sha256(sub.path), rubric_version=task.rubric.version,
                         started_at=_now(), runner=platform.node(), versions=versions())
    if task.attempt_dir.exists():  # a task retried after its worker died starts clean
        remove_tree(task.attempt_dir)   # no-follow and depth-safe: the notebook may have left a deep tree
    task.attempt_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        _grade_into(task, result)
    except Exception as exc:  # a grader bug must still yield a record, and say so
        result.status, result.message = "crashed", f"internal grading error: {type(exc).__name__}: {exc}"
        result.flags.append(GRADER_ERROR)
        result.parts = zero_parts(task.rubric, "grading failed") if not result.parts else result.parts
        (task.attempt_dir / "grader-error.txt").write_text(traceback.format_exc())
    result.finished_at = _now()
    result.timings["total_s"] = round(time.perf_counter() - t0, 3)
    return result


def _grade_into(task: GradingTask, result: GradeResult) -> None:
    sub, rubric = task.submission, task.rubric
    try:
        source_nb = nbformat.read(task.source_notebook, as_version=4)
        clean = sanitize(read_submission(sub.path), source_nb, sub.assignment)
    except InvalidSubmission as exc:
        result.status, result.message = "invalid", str(exc)
        result.parts = zero_parts(rubric, "the submission could not be read")
        return
    result.restored_cells = clean.restored + [f"{g} (was missing)" for g in clean.added]
    result.flags += clean.warnings
    workdir, artifacts = task.attempt_dir / "work", task.attempt_dir / "work" / "artifacts"
    t0 = time.perf_counter()
    execution = execute(clean.notebook, workdir, sub.assignment, _parameters(task, artifacts), task.settings)
    result.timings["execute_s"] = round(time.perf_counter() - t0, 3)
    result.flags += execution.flags
    executed = nbformat.read(execution.executed, as_version=4) if execution.executed else None
    errors = cell_errors(executed) if executed else []
    result.cell_errors = errors
    result.status, result.message = _status_message(execution, errors)
    t1 = time.perf_counter()
    if artifacts.is_dir() and any(artifacts.iterdir()):
        result.evaluation = evaluate(artifacts, task.attempt_dir / "grader", rubric.path, task.profile,
                                     task.hidden_root, task.cache_dir, task.data_root, threads=task.settings.threads)
    else:  # nothing to evaluate: spare the evaluator process
        result.evaluation = {"ok": False, "checks": {}, "figures": {},
                             "error": "nothing was exported: the export cell did not run or failed"}
    result.timings["evaluate_s"] = round(time.perf_counter() - t1, 3)
    train_s = cell_duration(executed, "train", task.reference_cells) if executed else None
    result.timings["cells_s"] = round(sum(float(c.metadata.get("papermill", {}).get("duration") or 0)
                                          for c in executed.cells), 3) if executed else None
    result.timings.update(train_s=train_s, reference_train_s=task.reference_train_s)
    result.flags += _discrepancies(result.evaluation) + [str(f) for f in result.evaluation.get("flags", [])]
    result.parts = score_all(rubric, ScoringInput(task.profile, executed, result.evaluation,
                                                  train_s, task.reference_train_s, load_calibrations(rubric)))
