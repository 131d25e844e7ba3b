"""Plain result data passed between the grading stages and persisted by `record`."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

STATUSES = ("graded", "failed", "timeout", "crashed", "invalid", "grader_error")
# Flags that mean the grading infrastructure failed, not the notebook: such results are retried,
# never replace an earlier grade, and are listed for the instructor (status "grader_error").
WORKER_LOST, GRADER_ERROR = "worker_lost", "grader_error"
RETRY_FLAGS = frozenset({WORKER_LOST, GRADER_ERROR})

STATUS_HELP = {
    "graded": "the notebook ran to the end",
    "failed": "the notebook ran, but some of its cells raised errors",
    "timeout": "the notebook did not finish within the time limit and was stopped",
    "crashed": "the notebook's process died (out of memory, killed kernel, ...)",
    "invalid": "the file is not a gradable notebook for this assignment",
    "grader_error": ("grading could not finish because of a problem on the grader's side, not in your notebook; "
                     "your instructor has been told, and any earlier grade stands"),
}


@dataclass(frozen=True)
class Submission:
    student: str
    assignment: str
    path: Path           # submitted/<student>/<assignment>/<assignment>.ipynb, never modified
    problem: str = ""    # why the folder holds no gradable notebook (the result is `invalid`)


@dataclass
class PartResult:
    id: str
    kind: str
    title: str
    points: float | None          # None: waits for a human (manual grading)
    max_points: float
    explanation: str
    needs_review: bool = False
    details: dict = field(default_factory=dict)


@dataclass
class GradeResult:
    student: str
    assignment: str
    status: str
    message: str
    profile: str
    attempt: int = 0
    parts: list[PartResult] = field(default_factory=list)
    output_dir: str = ""
    submission_sha256: str = ""
    rubric_version: int = 0
    started_at: str = ""
    finished_at: str = ""
    timings: dict = field(default_factory=dict)      # execute_s, train_s, reference_train_s, evaluate_s
    runner: str = ""
    resources: dict = field(default_factory=dict)        # what the task asked of its worker (e.g. GPU: 1)
    versions: dict = field(default_factory=dict)
    restored_cells: list[str] = field(default_factory=list)
    cell_errors: list[dict] = field(default_factory=list)
    evaluation: dict = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)           # what the grade depends on (grading/inputs.py)
    execution_flags: list[str] = field(default_factory=list)  # flags of reading and running, kept for re-scoring
    rescored_from: int | None = None                     # the attempt whose run was scored again
    returned: dict = field(default_factory=dict, repr=False)  # a carried task's files, until unpacked (never stored)

    @property
    def grader_side(self) -> bool:
        """The grader failed, not the notebook: this result never replaces a grade."""
        return self.status == "grader_error" or bool(RETRY_FLAGS & set(self.flags))

    @property
    def score(self) -> float:
        return sum(p.points or 0.0 for p in self.parts)

    @property
    def max_score(self) -> float:
        return sum(p.max_points for p in self.parts)

    @property
    def needs_review(self) -> bool:
        return any(p.needs_review for p in self.parts) or bool(self.flags)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("returned", None)
        data["score"], data["max_score"] = self.score, self.max_score
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "GradeResult":
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["parts"] = [PartResult(**p) for p in data.get("parts", [])]
        return cls(**data)


def file_sha256(path: Path) -> str:
    """Content hash of a submitted file ("" when it cannot be read)."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""
