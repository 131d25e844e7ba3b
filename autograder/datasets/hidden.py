"""Evaluator-only access to held-out test splits and the course secret.

Not imported by student helpers; in a sandboxed run neither the hidden data root
nor the secret file is mounted, so nothing here works from a student notebook.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from .registry import Split, load_hidden_split

SECRET_FILE = "secret_seed"


def course_secret(cache_dir: Path) -> int:
    """A per-course random seed, created on first use, readable by the grader only."""
    path = Path(cache_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(secrets.randbelow(2**31)))
        path.chmod(0o600)
    return int(path.read_text().strip())


def load_test_split(name: str, profile: str, hidden_root: Path | None, secret: int) -> Split:
    return load_hidden_split(name, profile, hidden_root, secret)
