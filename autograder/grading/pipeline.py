"""One submission through sanitize -> execute -> evaluate -> score. Never raises for bad input:
every submission yields a GradeResult with a status. Runs on a Dask worker or in-process."""

from __future__ import annotations

import copy
import platform
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import nbformat

from ..rubric import Rubric
from ..sandbox.tree import remove_tree
from .execute import Execution, ExecutionSettings, cell_duration, cell_errors, execute
from .calibrate import load_calibrations
from .evaluate import evaluate
from .results import GRADER_ERROR, GradeResult, PartResult, Submission, file_sha256
from .stored import read_attempt
from .sanitize import InvalidSubmission, read_submission, sanitize
from .score import VALUE_TOLERANCE, ScoringInput, score_all, written_answer


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
    reference_service: dict | None = None   # the reference service's p50/p95 latency on this runner
    seed: int = 0                  # the grading seed the notebook receives as a parameter
    device: str = "auto"           # the profile's device setting, a parameter of the notebook
    inputs: dict = field(default_factory=dict)     # fingerprints of what the grade depends on
    rescore_from: Path | None = None   # an earlier attempt whose run is scored again instead of running
    reevaluate: bool = False           # with rescore_from: evaluate its artifacts again
    carried: object = None             # grading/carried.py: the bytes a runner without the course folder needs
    reference_run: bool = False        # run for the reference's measures (times; a service's latency), not graded
    calibrations: dict = field(default_factory=dict)   # written-answer calibrations {part id: dict}, read by the batch


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
    tests = len(errors) - len(raised)
    also = f" (and {tests} test cell(s) failed)" if tests else ""
    if raised:   # the error first: it is what a table of a hundred rows shows
        first = raised[0]
        return "failed", (f"cell '{first['cell']}' raised {first['ename']}: {first['evalue'][:160]} "
                          f"({len(raised)} cell(s) outside the tests raised an error{also})")
    return "graded", "the notebook ran to the end" + also


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
                         started_at=_now(), runner=platform.node(), versions=versions(), inputs=dict(task.inputs))
    if task.attempt_dir.exists():  # a task retried after its worker died starts clean
        remove_tree(task.attempt_dir)   # no-follow and depth-safe: the notebook may have left a deep tree
    task.attempt_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        if task.rescore_from:
            _rescore_into(task, result)
        else:
            _grade_into(task, result)
    except Exception as exc:  # a grader bug must still yield a record, and say so (never as a grade)
        mark_grader_error(result, task.rubric, f"internal grading error: {type(exc).__name__}: {exc}")
        (task.attempt_dir / "grader-error.txt").write_text(traceback.format_exc())
    result.finished_at = _now()
    result.timings["total_s"] = round(time.perf_counter() - t0, 3)
    return result


def mark_grader_error(result: GradeResult, rubric: Rubric, message: str) -> None:
    """The grader's own side failed: a status of its own, no points, never a student's grade."""
    result.status, result.message = "grader_error", message
    if GRADER_ERROR not in result.flags:
        result.flags.append(GRADER_ERROR)
    result.parts = zero_parts(rubric, "grading did not finish (a problem on the grader's side)")


def _grade_into(task: GradingTask, result: GradeResult) -> None:
    sub, rubric = task.submission, task.rubric
    if sub.problem:
        result.status, result.message = "invalid", sub.problem
        result.parts = zero_parts(rubric, "no gradable notebook was submitted")
        return
    t0 = time.perf_counter()
    source_nb = nbformat.read(task.source_notebook, as_version=4)   # the grader's file: its failure is ours
    try:
        clean = sanitize(read_submission(sub.path), source_nb, sub.assignment)
    except InvalidSubmission as exc:
        result.status, result.message = "invalid", str(exc)
        result.parts = zero_parts(rubric, "the submission could not be read")
        return
    result.timings["sanitize_s"] = round(time.perf_counter() - t0, 3)
    result.restored_cells = clean.restored + [f"{g} (was missing)" for g in clean.added]
    result.flags += clean.warnings
    workdir, artifacts = task.attempt_dir / "work", task.attempt_dir / "work" / "artifacts"
    # while the notebook runs, this process only waits: warm up then
    warming = _warm_up(rubric, _has_written_answers(clean.notebook, rubric))
    t0 = time.perf_counter()
    execution = execute(clean.notebook, workdir, sub.assignment, _parameters(task, artifacts), task.settings)
    result.timings["execute_s"] = round(time.perf_counter() - t0, 3)
    result.flags += execution.flags
    result.execution_flags = list(result.flags)
    executed = nbformat.read(execution.executed, as_version=4) if execution.executed else None
    errors = cell_errors(executed) if executed else []
    result.cell_errors = errors
    result.status, result.message = _status_message(execution, errors)
    warming.join()
    # a reference run is for its times (training, instructor cells) and is not scored; it is
    # evaluated only where a part is scored against what its evaluation measures (a service)
    graded = not task.reference_run
    if graded or task.rubric.latency_part is not None:
        result.evaluation = _evaluate(task, artifacts, result)
    result.timings.update(_run_stages(executed, result.timings["execute_s"]))
    result.timings["train_s"] = cell_duration(executed, "train", task.reference_cells) if executed else None
    if graded:
        _score(task, result, executed)


def _run_stages(executed, execute_s: float) -> dict:
    """Where the notebook's run went, from papermill's own clock: cells, and the start-up around
    them (sandbox and runner process before papermill started; kernel start and hand-offs inside)."""
    if executed is None:
        return {"cells_s": None}
    cells = sum(float(c.metadata.get("papermill", {}).get("duration") or 0) for c in executed.cells)
    notebook = float(executed.metadata.get("papermill", {}).get("duration") or 0)
    stages = {"cells_s": round(cells, 3)}
    if notebook:
        stages.update(runner_start_s=round(max(0.0, execute_s - notebook), 3),
                      kernel_s=round(max(0.0, notebook - cells), 3))
    return stages


def _has_written_answers(nb, rubric: Rubric) -> bool:
    """Whether an answer cell holds anything but nbgrader's placeholder: a blank answer scores 0
    without the written-answer model, so an untouched notebook need not load it."""
    return any(written_answer(part, nb) for part in rubric.answer_parts)


def _warm_up(rubric: Rubric, answers: bool) -> threading.Thread:
    """Start what this grading process keeps warm (the evaluator's fork server; the written-answer
    model, where there are answers to read) in the background; both load once per process (about
    5 s of CPU each). A failure here is seen again, and reported, where the thing is used."""
    def work() -> None:
        try:
            if rubric.evaluates_artifacts:
                from .warm_evaluator import prestart
                prestart()
            if rubric.answer_parts and answers:
                from ..reflection.embedding import load_model
                load_model()
        except Exception:
            pass

    thread = threading.Thread(target=work, name="warm-up", daemon=True)
    thread.start()
    return thread


def _evaluate(task: GradingTask, artifacts: Path, result: GradeResult) -> dict:
    t1 = time.perf_counter()
    if artifacts.is_dir() and any(artifacts.iterdir()):
        # the evaluator starts a service the notebook wrote as the notebook ran: sandboxed or not alike
        evaluation = evaluate(artifacts, task.attempt_dir / "grader", task.rubric.evaluation_plan(), task.profile,
                              task.hidden_root, task.cache_dir, task.data_root, threads=task.settings.threads,
                              sandboxed=task.settings.sandboxed,
                              reference={"service": task.reference_service} if task.reference_service else None)
    else:  # nothing to evaluate: spare the evaluator process
        evaluation = {"ok": False, "checks": {}, "figures": {},
                      "error": "nothing was exported: the export cell did not run or failed"}
    result.timings["evaluate_s"] = round(time.perf_counter() - t1, 3)
    return evaluation


def _score(task: GradingTask, result: GradeResult, executed) -> None:
    """Points from the run and the evaluation; a failure of the evaluator itself is the grader's."""
    if result.evaluation.get("grader_error"):
        mark_grader_error(result, task.rubric, f"the evaluator failed: {result.evaluation['grader_error']}")
        return
    t0 = time.perf_counter()
    result.timings["reference_train_s"] = task.reference_train_s
    result.flags += _discrepancies(result.evaluation) + [str(f) for f in result.evaluation.get("flags", [])]
    result.parts = score_all(task.rubric, ScoringInput(task.profile, executed, result.evaluation,
                                                       result.timings.get("train_s"), task.reference_train_s,
                                                       load_calibrations(task.calibrations)))
    result.timings["score_s"] = round(time.perf_counter() - t0, 3)


def _rescore_into(task: GradingTask, result: GradeResult) -> None:
    """Score an earlier attempt's run again (only scoring inputs changed): its executed notebook
    and, unless the evaluator's inputs changed, its evaluation. Nothing of the student runs."""
    old_dir = Path(task.rescore_from)
    old = read_attempt(old_dir)
    result.rescored_from = old.attempt
    for name in ("status", "message", "restored_cells", "cell_errors", "execution_flags"):
        setattr(result, name, copy.deepcopy(getattr(old, name)))
    result.flags = list(old.execution_flags)
    result.timings = {k: old.timings.get(k) for k in ("execute_s", "cells_s", "train_s") if k in old.timings}
    if old.status == "invalid":
        result.parts = zero_parts(task.rubric, "the submission could not be read")
        return
    executed_path = old_dir / "work" / f"{task.submission.assignment}.ipynb"
    executed = None
    if executed_path.is_file() and not executed_path.is_symlink():
        (task.attempt_dir / "work").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(executed_path, task.attempt_dir / "work" / executed_path.name, follow_symlinks=False)
        executed = nbformat.read(executed_path, as_version=4)
    result.evaluation = (_evaluate(task, old_dir / "work" / "artifacts", result) if task.reevaluate
                         else copy.deepcopy(old.evaluation))
    _score(task, result, executed)
