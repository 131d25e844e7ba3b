"""collect keeps what an LMS tells (the Canvas user id, the name, the _LATE mark) and recognises a
notebook by this assignment's nbgrader cells, not by its file name; ambiguity is refused."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.cli import main
from autograder.intake import collect
from autograder.intake.collect import course_notebook_ids

from .conftest import REPO

A = "lenet5_mnist"


@pytest.fixture(scope="module")
def ids(course):
    found = course_notebook_ids(course)      # from the committed release/ notebooks
    assert A in found and "vgg16_transfer" in found
    return found


def released(name: str = A) -> bytes:
    return (REPO / "release" / name / f"{name}.ipynb").read_bytes()


def test_notebook_recognised_by_its_cells_whatever_its_name(tmp_path, ids):
    src = tmp_path / "in"
    (src / "bob").mkdir(parents=True)
    (src / "bob" / "Untitled.ipynb").write_bytes(released())                  # check accepts it: so does collect
    (src / "erin").mkdir()
    (src / "erin" / f"{A}.ipynb").write_bytes(released("vgg16_transfer"))     # right name, wrong assignment
    (src / "dave").mkdir()
    (src / "dave" / "a.ipynb").write_bytes(released())                        # two of this assignment's notebooks
    (src / "dave" / "b.ipynb").write_bytes(released())
    (src / "fay").mkdir()
    (src / "fay" / f"{A}.ipynb").write_bytes(nbformat.writes(nbformat.v4.new_notebook()).encode())

    report = collect(src, A, tmp_path / "course", notebook_ids=ids)

    assert [(a.student, Path(a.source).name) for a in report.accepted] == [("bob", "Untitled.ipynb")]
    why = {str(Path(r.source).relative_to(src)): r.reason for r in report.rejected}
    assert why[f"erin/{A}.ipynb"] == f"holds 'vgg16_transfer''s cells, not '{A}''s"
    assert why["dave/a.ipynb"] == why["dave/b.ipynb"]
    assert why["dave/a.ipynb"].startswith("ambiguous: 2 notebooks in this submission hold") and "a.ipynb, b.ipynb" in why["dave/a.ipynb"]
    assert "no nbgrader cells" in why[f"fay/{A}.ipynb"]
    info = json.loads((tmp_path / "course" / "submitted" / "bob" / A / "submission.json").read_text())
    assert info["file"] == "Untitled.ipynb"


def test_cli_collect_says_which_file_it_took(tmp_path, capsys):
    src = tmp_path / "in" / "bob"
    src.mkdir(parents=True)
    (src / "Untitled.ipynb").write_bytes(released())
    assert main(["--course", str(REPO), "--workdir", str(tmp_path / "w"), "collect", str(src.parent), A]) == 0
    out = capsys.readouterr().out
    assert "accepted bob" in out and "took Untitled.ipynb" in out
    assert (tmp_path / "w" / "submitted" / "bob" / A / f"{A}.ipynb").read_bytes() == released()


def test_canvas_zip_keeps_id_name_and_late_mark(tmp_path, ids):
    archive = tmp_path / "submissions.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo("doejane_LATE_12345_678_Untitled.ipynb", (2026, 10, 6, 9, 0, 0)), released())
        zf.writestr(zipfile.ZipInfo("roeann_23456_679_lenet5_mnist.ipynb", (2026, 10, 5, 9, 0, 0)), released())
    report = collect(archive, A, tmp_path / "course", notebook_ids=ids)
    assert sorted(a.student for a in report.accepted) == ["12345", "23456"] and not report.rejected
    info = {s: json.loads((tmp_path / "course" / "submitted" / s / A / "submission.json").read_text())
            for s in ("12345", "23456")}
    assert info["12345"] == {"file": "Untitled.ipynb", "source": f"{archive}!doejane_LATE_12345_678_Untitled.ipynb",
                             "lms": "canvas", "lms_id": "12345", "name": "doejane", "late": True}
    assert info["23456"]["late"] is False and info["23456"]["name"] == "roeann"
