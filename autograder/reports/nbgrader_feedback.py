"""What nbgrader's own `generate_feedback` may publish: the student's executed notebook, without
grader internals. Configured by autograder/nbgrader_config.py (`student_safe_feedback`).

Removed or rewritten: papermill's injected-parameters cell (server paths, the grading profile),
hidden test code (nbgrader's own ClearHiddenTests runs first; a test cell's traceback, which
quotes it, is cut to the error line), absolute paths in outputs and tracebacks, and the written-answer scorer's internals in comments (confidence, similarity, raw
score). The attempt folders beside the notebook are not copied at all (CourseDirectory.ignore).
"""

from __future__ import annotations

import re

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from .views import private

_INTERNAL = re.compile(r"\s*\(confidence [\d.]+\)|;?\s*similarity to the reference answer [\d.]+|;?\s*raw score [\d.]+"
                       r"|\s*by meaning, similarity [\d.]+")


def clean_comment(text: str) -> str:
    return private(_INTERNAL.sub("", text or ""))


class RedactForStudents(Preprocessor):
    """The last preprocessor of nbgrader's GenerateFeedback (after GetGrades)."""

    enabled = Bool(True).tag(config=True)   # nbconvert runs a preprocessor only when enabled

    def preprocess(self, nb, resources):
        nb.cells = [c for c in nb.cells if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if meta.get("comment"):
                meta["comment"] = clean_comment(meta["comment"])
            for out in cell.get("outputs", []):
                if "text" in out:
                    out["text"] = private("".join(out["text"]))
                if "evalue" in out:
                    out["evalue"] = private(out["evalue"])
                if "traceback" in out:
                    if meta.get("grade") and not meta.get("solution"):
                        # a test cell's traceback quotes its code, hidden tests included: the error only
                        out["traceback"] = [private(f"{out.get('ename', 'Error')}: {out.get('evalue', '')}")]
                    else:
                        out["traceback"] = [private(line) for line in out["traceback"]]
                for kind in ("text/plain", "text/html", "text/markdown"):
                    if kind in out.get("data", {}):
                        out["data"][kind] = private("".join(out["data"][kind]))
        nb.metadata.pop("papermill", None)
        return nb, resources
