"""What collect() reports: plain data, for the CLI and for tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


@dataclass
class Accepted:
    student: str
    path: Path  # the notebook as installed: submitted/<student>/<assignment>/<assignment>.ipynb
    submitted_at: datetime  # aware, UTC; also written to timestamp.txt
    source: str  # where it came from (a path, or 'archive.zip!entry name')
    replaced_previous: bool  # an earlier, different submission was moved to .attempts/


@dataclass
class Rejected:
    source: str
    reason: str


@dataclass
class CollectReport:
    accepted: list[Accepted] = field(default_factory=list)
    skipped: list[Rejected] = field(default_factory=list)  # already collected, identical content
    rejected: list[Rejected] = field(default_factory=list)
