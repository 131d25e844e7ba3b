"""How long each instructor cell took in the reference run, per (machine, assignment, profile).

Timing scores the `train` cell plus the student's own cells. Work can also hide in an
instructor cell: training started in a thread by a student cell and waited on by a test cell.
So every instructor cell is compared with its own duration in the reference run on the same
machine, and what it took beyond that counts as training time (`execute.cell_duration`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat

from .timing import machine_key


def _cache_file(cache_dir: Path, assignment: str, profile: str, machine: str) -> Path:
    return Path(cache_dir) / "timing" / f"{assignment}-{profile}-{machine}.cells.json"


def cell_seconds(nb: nbformat.NotebookNode) -> dict[str, float]:
    """grade id -> papermill's duration, for every instructor cell that ran."""
    durations = {}
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        duration = cell.metadata.get("papermill", {}).get("duration")
        if gid and duration is not None:
            durations[gid] = float(duration)
    return durations


def store_reference_cells(cache_dir: Path, assignment: str, profile: str, executed: Path,
                          machine: str | None = None) -> Path | None:
    """Keep the per-cell durations of the reference's executed notebook (None if it has none)."""
    try:
        durations = cell_seconds(nbformat.read(executed, as_version=4))
    except (OSError, ValueError):
        return None
    if not durations:
        return None
    return write_reference_cells(cache_dir, assignment, profile, durations, machine)


def write_reference_cells(cache_dir: Path, assignment: str, profile: str, durations: dict[str, float],
                          machine: str | None = None) -> Path:
    path = _cache_file(cache_dir, assignment, profile, machine or machine_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": durations, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}))
    return path


def reference_cells(cache_dir: Path, assignment: str, profile: str,
                    machine: str | None = None) -> dict[str, float] | None:
    path = _cache_file(cache_dir, assignment, profile, machine or machine_key())
    try:
        cells = json.loads(path.read_text())["cells"]
        return {str(k): float(v) for k, v in cells.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
