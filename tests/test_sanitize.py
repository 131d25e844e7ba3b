"""sanitize: nbgrader's OverwriteCells, fed from assignments/, restores instructor cells."""

import nbformat
import pytest

from autograder.grading.sanitize import InvalidSubmission, read_submission, sanitize

from .conftest import ASSIGNMENT, cell


def test_edited_and_deleted_cells_come_back(source_nb, release_nb):
    nb = nbformat.from_dict(release_nb)
    cell(nb, "test_lenet5_architecture").source = "pass"
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in ("test_training", "export")]
    clean = sanitize(nb, source_nb, ASSIGNMENT)
    assert clean.restored == ["test_lenet5_architecture"]
    assert set(clean.added) == {"test_training", "export"}
    restored = cell(clean.notebook, "test_lenet5_architecture").source
    assert "BEGIN HIDDEN TESTS" in restored  # the hidden tests are back for grading
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in clean.notebook.cells]
    assert ids.index("test_training") == ids.index("train") + 1
    assert ids[-1] == "export"
    assert cell(nb, "test_lenet5_architecture").source == "pass"  # the input was not modified


def test_solutions_are_kept_and_kernel_is_ours(source_nb, release_nb):
    nb = nbformat.from_dict(release_nb)
    cell(nb, "lenet5").source = "class LeNet5: pass  # mine"
    nb.metadata["kernelspec"] = {"name": "evil-kernel", "display_name": "x", "language": "python"}
    clean = sanitize(nb, source_nb, ASSIGNMENT)
    assert cell(clean.notebook, "lenet5").source == "class LeNet5: pass  # mine"
    assert clean.notebook.metadata["kernelspec"]["name"] == "python3"
    assert clean.warnings


@pytest.mark.parametrize("content, match", [
    ("not json at all", "not valid JSON"),
    ('{"hello": 1}', "not a Jupyter notebook"),
    ('{"cells": 3, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}', "not a valid notebook"),
    (b"\xff\xfe\x00binary", "not a text file"),
])
def test_unreadable_files_are_invalid(tmp_path, content, match):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InvalidSubmission, match=match):
        read_submission(path)


def test_another_assignment_is_invalid(source_nb):
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    with pytest.raises(InvalidSubmission, match="right assignment"):
        sanitize(other, source_nb, ASSIGNMENT)


def test_an_unedited_release_reports_nothing_restored(source_nb, release_nb):
    clean = sanitize(release_nb, source_nb, ASSIGNMENT)
    assert clean.restored == [] and clean.added == []
    # yet the hidden tests are back for grading
    assert "BEGIN HIDDEN TESTS" in cell(clean.notebook, "test_lenet5_architecture").source
