"""build: deterministic nbgrader source notebooks; release: nbgrader's, and nothing leaks."""

import nbformat
import pytest

from autograder.build import BuildError, build_notebook, stale_assignments
from autograder.build.notebook import render_assignment
from autograder.release import check_leaks
from autograder.rubric import load_rubric

from .conftest import ASSIGNMENT, cell


def test_committed_notebooks_are_fresh_and_deterministic(course):
    assert stale_assignments(course) == []
    assert render_assignment(course, ASSIGNMENT) == render_assignment(course, ASSIGNMENT)


def test_cell_roles(source_nb, course):
    rubric = load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml")
    tagged = {tag: c for c in source_nb.cells for tag in c.metadata.get("tags", [])}
    assert {"parameters", "train"} <= set(tagged)
    assert source_nb.cells[-1].metadata["nbgrader"]["grade_id"] == "export"
    assert "export_for_grading" in source_nb.cells[-1].source
    for gid, points in rubric.test_points().items():
        meta = cell(source_nb, gid).metadata["nbgrader"]
        assert meta["grade"] and meta["locked"] and meta["points"] == points
    assert "BEGIN HIDDEN TESTS" in cell(source_nb, "test_lenet5_architecture").source
    answer = cell(source_nb, "reflection")
    assert answer.cell_type == "markdown" and answer.metadata["nbgrader"]["solution"]
    for part in rubric.task_cell_parts():
        assert cell(source_nb, f"rubric_{part.id}").metadata["nbgrader"]["task"]
    assert "How this notebook is graded" in source_nb.cells[1].source


def test_bad_reference_is_a_clear_error(course):
    rubric = load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml")
    with pytest.raises(BuildError, match="unknown cell role 'solutoin'"):
        build_notebook("# %% solutoin id=x\nx = 1\n", rubric, "ref.py")
    with pytest.raises(BuildError, match="lacks: test_lenet5_architecture"):
        build_notebook("# %% export\nx = 1\n", rubric, "ref.py")


def test_release_has_no_solutions_hidden_tests_or_answers(released, source_nb, release_nb):
    report = check_leaks(released.source_notebook(ASSIGNMENT), released.release_notebook(ASSIGNMENT))
    assert report.ok, report.leaks
    assert "raise NotImplementedError()" in cell(release_nb, "lenet5").source
    assert cell(release_nb, "reflection").source.strip() == "YOUR ANSWER HERE"
    assert "61706" not in cell(release_nb, "test_lenet5_architecture").source


def test_leak_check_catches_a_planted_leak(released, release_nb, tmp_path):
    leaky = nbformat.from_dict(release_nb)
    cell(leaky, "lenet5").source += "\n        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)   # 14x14 -> 16 x 10x10"
    cell(leaky, "test_lenet5_architecture").source += '\nassert sum(p.numel() for p in net.parameters()) == 61706, "LeNet-5 has 61,706 parameters"'
    path = tmp_path / "leaky.ipynb"
    nbformat.write(leaky, path)
    report = check_leaks(released.source_notebook(ASSIGNMENT), path)
    kinds = " ".join(report.leaks)
    assert "solution" in kinds and "hidden test" in kinds


def test_release_is_committed_and_current(course, released):
    committed = course.release_notebook(ASSIGNMENT)
    assert committed.is_file(), "release/lenet5_mnist/lenet5_mnist.ipynb must be committed"
    assert committed.read_text() == released.release_notebook(ASSIGNMENT).read_text()


def test_every_committed_release_is_current(course, demo_run):
    """The demo builds and releases every assignment with the leak check in a fresh folder; the
    committed release/ notebooks must be exactly those (run `autograder release <a>` to refresh)."""
    assert set(demo_run.course.assignments) == set(course.assignments)
    stale = [a for a in course.assignments
             if course.release_notebook(a).read_text() != demo_run.course.release_notebook(a).read_text()]
    assert stale == [], f"committed releases out of date: {stale}"
