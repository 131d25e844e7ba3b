"""release: nbgrader's generate_assignment into release/, then a proof that nothing leaked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .course import Course
from .nbgrader_config import generate_assignment

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS", "BEGIN MARK SCHEME")
# Lines too generic to prove a leak (they also occur in starter code).
_MIN_SIGNIFICANT = 16


class ReleaseError(RuntimeError):
    pass


@dataclass
class LeakReport:
    notebook: Path
    leaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.leaks


def _regions(source: str, begin: str, end: str) -> list[str]:
    """Lines strictly between `### BEGIN x` and `### END x` markers."""
    out, inside = [], False
    for line in source.splitlines():
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line.strip())
    return out


def secrets_of(source_nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """What must never appear in a release: solution code, hidden tests, reference answers."""
    found = {"solution": [], "hidden test": [], "reference answer": []}
    for cell in source_nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution"):
            found["solution"] += _regions(cell.source, "BEGIN SOLUTION", "END SOLUTION")
        if cell.cell_type == "code" and meta.get("grade"):
            found["hidden test"] += _regions(cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
        if cell.cell_type == "markdown" and meta.get("solution"):
            found["reference answer"] += [s.strip() for s in re.split(r"(?<=[.!?])\s+", cell.source)]
    return {kind: sorted({line for line in lines if len(line) >= _MIN_SIGNIFICANT and not line.startswith("#")})
            for kind, lines in found.items()}


def check_leaks(source: Path, release: Path) -> LeakReport:
    source_nb = nbformat.read(source, as_version=4)
    text = Path(release).read_text()
    released = nbformat.reads(text, as_version=4)
    visible = "\n".join(c.source + "\n" + "\n".join(str(o) for o in c.get("outputs", [])) for c in released.cells)
    report = LeakReport(Path(release))
    report.leaks += [f"marker {m!r}" for m in MARKERS if m in text]
    for kind, lines in secrets_of(source_nb).items():
        report.leaks += [f"{kind}: {line[:70]!r}" for line in lines if line in visible]
    return report


def release_assignment(course: Course, name: str) -> LeakReport:
    course.check_assignment(name)
    source = course.source_notebook(name)
    if not source.is_file():
        raise ReleaseError(f"no source notebook at {source}; run `autograder build {name}` first")
    result = generate_assignment(course, name)
    if not result.get("success"):
        raise ReleaseError(f"nbgrader generate_assignment failed for {name}:\n{result.get('error') or result.get('log')}")
    released = course.release_notebook(name)
    if not released.is_file():
        raise ReleaseError(f"nbgrader reported success but wrote no {released}")
    report = check_leaks(source, released)
    if not report.ok:
        raise ReleaseError(f"{released} leaks instructor material:\n  " + "\n  ".join(report.leaks))
    return report
