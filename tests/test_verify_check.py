"""verify (the reference earns full marks) and check (a student's self-check), on real notebooks."""

import nbformat
import pytest

from autograder.check import check_notebook
from autograder.cli import main
from autograder.demo import solved_release
from autograder.verify import verify_assignment

from .conftest import ASSIGNMENT, SANDBOXED


@pytest.mark.slow
def test_reference_verifies_with_full_marks(released):
    check = verify_assignment(released, ASSIGNMENT, "tiny", sandboxed=SANDBOXED, log=lambda m: None)
    assert check.ok, check.problems
    assert check.result.status == "graded"
    auto = [p for p in check.result.parts if p.kind != "reflection"]
    assert sum(p.points for p in auto) == sum(p.max_points for p in auto)


def test_build_check_passes_on_the_committed_course():
    assert main(["build", "--check"]) == 0


@pytest.mark.slow
def test_check_reports_what_is_missing_and_what_passes(source_nb, release_nb, tmp_path):
    untouched = tmp_path / "untouched.ipynb"
    nbformat.write(release_nb, untouched)
    report = check_notebook(untouched)
    todo = " ".join(text for kind, text in report.lines if kind == "missing")
    assert not report.ok
    assert "lenet5" in todo and "reflection" in todo and "no exported model" in todo

    solved = tmp_path / "solved.ipynb"
    nb = solved_release(source_nb, release_nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "reflection":
            cell.source = "My model reached 96% because ..."
    nbformat.write(nb, solved)
    report = check_notebook(solved)
    assert report.ok, report.lines
    text = " ".join(t for _, t in report.lines)
    assert "public tests: 6/6" in text and "exported model loads" in text and "hidden" in text
    assert "61706" not in text  # nothing from the hidden tests
