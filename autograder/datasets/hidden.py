"""Evaluator-only access to held-out test splits and the course secret.

Not imported by student helpers; in a sandboxed run neither the hidden data root
nor the secret file is mounted, so nothing here works from a student notebook.
"""

from __future__ import annotations

from pathlib import Path

from ..secret import SECRET_FILE, course_secret  # noqa: F401 - the evaluator's access to the secret
from .registry import Split, load_hidden_split


def load_test_split(name: str, profile: str, hidden_root: Path | None, secret: int) -> Split:
    return load_hidden_split(name, profile, hidden_root, secret)
