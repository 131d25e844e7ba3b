"""check: a student's self-check. Runs their notebook on the tiny profile with the public tests
only (the released notebook has no hidden tests), and tells what would be graded and what is
missing. No hidden data is read and no score from the hidden split is given."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .grading.execute import ExecutionSettings, cell_duration, cell_errors, execute
from .grading.sanitize import InvalidSubmission, read_submission
from .grading.score import ScoringInput, score_tests
from .rubric import Part
from .sandbox import Limits
from .export_names import HISTORY_FILE, MODEL_FILE


@dataclass
class CheckReport:
    notebook: Path
    status: str = ""
    message: str = ""
    lines: list[tuple[str, str]] = field(default_factory=list)   # (ok|missing|info, text)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and not any(kind == "missing" for kind, _ in self.lines)


def _public_tests(nb) -> Part:
    cells = {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"].get("points", 0))
             for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"}
    return Part("tests", "tests", "public tests", sum(cells.values()), cells=cells)


def _unanswered(nb) -> list[str]:
    out = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution") and ("YOUR ANSWER HERE" in cell.source or "raise NotImplementedError()" in cell.source):
            out.append(meta.get("grade_id", "?"))
    return out


def _check_export(artifacts: Path) -> tuple[str, str]:
    model = artifacts / MODEL_FILE
    if not model.is_file():
        return "missing", "no exported model: the last cell (export) did not run"
    try:
        import torch
        torch.export.load(str(model))
    except Exception as exc:
        return "missing", f"the exported model does not load: {type(exc).__name__}: {exc}"
    history = "with" if (artifacts / HISTORY_FILE).is_file() else "WITHOUT"
    return "ok", f"exported model loads ({history} a training history); the grader scores it on a hidden test split"


def check_notebook(path: Path, timeout_s: float = 600) -> CheckReport:
    report = CheckReport(Path(path))
    try:
        nb = read_submission(path)
    except InvalidSubmission as exc:
        report.status, report.message = "invalid", str(exc)
        return report
    for gid in _unanswered(nb):
        report.lines.append(("missing", f"cell '{gid}' still has the placeholder (YOUR CODE/ANSWER HERE)"))
    settings = ExecutionSettings(Limits(wall_seconds=timeout_s), cell_timeout_s=timeout_s, sandboxed=False)
    with tempfile.TemporaryDirectory(prefix="autograder-check-") as tmp:
        work = Path(tmp)
        name = Path(path).stem
        params = {"profile": "tiny", "device": "auto", "artifact_dir": str(work / "artifacts"), "seed": 0}
        execution = execute(nb, work, name, params, settings)
        report.status, report.message = execution.status, execution.message
        executed = nbformat.read(execution.executed, as_version=4) if execution.executed else None
        tests = score_tests(_public_tests(nb), ScoringInput("tiny", executed))
        report.lines.append(("ok" if tests.points == tests.max_points else "missing",
                             f"public tests: {tests.points:g}/{tests.max_points:g} ({tests.explanation})"))
        for err in cell_errors(executed) if executed else []:
            if not err["cell"].startswith("test_"):
                report.lines.append(("missing", f"cell '{err['cell']}' raised {err['ename']}: {err['evalue'][:120]}"))
        if any("train" in c.metadata.get("tags", []) for c in nb.cells):
            seconds = cell_duration(executed, "train") if executed else None
            report.lines.append(("info", f"training cell: {seconds:.1f} s on this machine" if seconds is not None
                                 else "training cell: did not complete"))
        if any(c.metadata.get("nbgrader", {}).get("grade_id") == "export" for c in nb.cells):
            report.lines.append(_check_export(work / "artifacts"))
    report.lines.append(("info", "not checked here: hidden tests, accuracy on the hidden split, timing against "
                                 "the reference on the grading runner, and your written answers"))
    return report
