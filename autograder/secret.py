"""The per-course secret seed (the tiny hidden splits are drawn with it). Readable by the grader
only: in a sandboxed run its folder is not mounted. No imports, so the client reads it cheaply."""

from __future__ import annotations

import secrets
from pathlib import Path

SECRET_FILE = "secret_seed"


def course_secret(cache_dir: Path) -> int:
    """A per-course random seed, created on first use, readable by the grader only."""
    path = Path(cache_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(secrets.randbelow(2**31)))
        path.chmod(0o600)
    return int(path.read_text().strip())
