"""What a grade depends on, as fingerprints: a stored grade is reused only when all of them are
unchanged, and its run is reused (scored again, not executed again) when only scoring changed.

Content is hashed, never a number people must remember to bump (a rubric's `version:` is shown,
not trusted). Plain functions of plain data, so the client decides before any task runs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..rubric import Rubric

# Inputs of running the notebook: a change means it must run again.
RUN_KEYS = ("submission", "notebook", "profile", "limits")
# Inputs of the evaluator: a change means the stored artifacts are evaluated again (the reference
# service's latency is compared inside the evaluator, where the student's service runs).
EVALUATION_KEYS = ("evaluation", "reference_service")
# Everything else only changes scoring: re-score from the stored run and evaluation.


def digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def bytes_digest(data: bytes | None) -> str:
    """Content hash of a file's bytes, "" for no file (an absent calibration is a state too)."""
    return hashlib.sha256(data).hexdigest()[:16] if data is not None else ""


def notebook_digest(path: Path) -> str:
    """What of the built source notebook runs: its code cells (source, grade id, role tags). Its
    markdown (the rubric table, task cells showing the bands) changes with the rubric but runs nothing."""
    try:
        cells = json.loads(Path(path).read_text()).get("cells", [])
    except (OSError, ValueError, AttributeError):
        return ""
    return digest([("".join(c.get("source", "")), c.get("metadata", {}).get("nbgrader", {}).get("grade_id"),
                    c.get("metadata", {}).get("tags", [])) for c in cells if c.get("cell_type") == "code"])


def rubric_digests(rubric: Rubric) -> tuple[str, str]:
    """(whole rubric, the part the evaluator reads). The whole is the parsed content, so comments
    and layout do not count; the evaluator's part is the dataset and what metric, artifact and
    inquiry parts ask it to measure (bands and points only change scoring)."""
    whole = digest({"assignment": rubric.assignment, "dataset": rubric.dataset, "limits": rubric.limits,
                    "parts": [vars(p) for p in rubric.parts]})
    measured = digest({"dataset": rubric.dataset,
                       "parts": [(p.id, p.kind, p.metric, p.options.get("check"), p.options.get("options"))
                                 for p in rubric.parts if p.kind in ("metric", "artifact", "inquiry")]
                       + [(p.id, p.kind, {k: v for k, v in p.options.items() if k not in ("measures", "written")})
                          for p in rubric.of_kind("efficiency")]})
    return whole, measured


def grading_inputs(submission_sha: str, notebook_sha: str, profile: str, limits: dict, rubric: Rubric,
                   reference_train_s: float | None, calibration: str, reference_service: dict | None = None) -> dict:
    whole, measured = rubric_digests(rubric)
    inputs = {"submission": submission_sha, "notebook": notebook_sha, "profile": profile, "limits": digest(limits),
              "evaluation": measured, "rubric": whole,
              "reference_train_s": None if reference_train_s is None else round(float(reference_train_s), 3),
              "calibration": calibration}
    if reference_service:   # only where a part scores latency: other grades keep their fingerprints
        inputs["reference_service"] = {k: round(float(v), 3) for k, v in sorted(reference_service.items())}
    return inputs


def changed(old: dict, new: dict) -> list[str]:
    """The inputs that differ (every key when the old record has none: made before fingerprints)."""
    return [k for k in new if old.get(k) != new[k]]


def reuse(old: dict, new: dict) -> str:
    """How much of an earlier attempt can be reused: "keep" (the grade), "rescore" (the run and
    the evaluation), "reevaluate" (the run; its artifacts evaluated again) or "run"."""
    diff = changed(old, new)
    if not diff:
        return "keep"
    if any(k in diff for k in RUN_KEYS):
        return "run"
    return "reevaluate" if any(k in diff for k in EVALUATION_KEYS) else "rescore"
