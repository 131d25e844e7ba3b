"""The attempt folder's record of a grading run (`result.json`), read and written as plain data.
Kept apart from `record` (gradebook, feedback) so a worker can read an earlier attempt cheaply."""

from __future__ import annotations

import json
from pathlib import Path

from .results import GradeResult

RESULT_FILE = "result.json"


def read_attempt(attempt_dir: Path) -> GradeResult:
    return GradeResult.from_dict(json.loads((Path(attempt_dir) / RESULT_FILE).read_text()))


def write_attempt(result: GradeResult) -> Path:
    path = Path(result.output_dir) / RESULT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1, default=str))
    return path
