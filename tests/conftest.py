"""Shared fixtures: the real course, and a built + released copy in a scratch work folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
import pytest

from autograder.build import build_assignment
from autograder.course import load_course
from autograder.release import release_assignment
from autograder.sandbox import bwrap_available

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "lenet5_mnist"
SANDBOXED = bwrap_available()


@pytest.fixture(scope="session")
def course():
    return load_course(REPO)


@pytest.fixture(scope="session")
def released(course, tmp_path_factory):
    """A work folder with the LeNet-5 assignment built and released (and its gradebook)."""
    work = course.with_work(tmp_path_factory.mktemp("course"))
    build_assignment(work, ASSIGNMENT)
    release_assignment(work, ASSIGNMENT)
    return work


@pytest.fixture(scope="session")
def source_nb(released):
    return nbformat.read(released.source_notebook(ASSIGNMENT), as_version=4)


@pytest.fixture(scope="session")
def release_nb(released):
    return nbformat.read(released.release_notebook(ASSIGNMENT), as_version=4)


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
