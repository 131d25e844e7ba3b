"""No wrong, stale or lost grade (issue 11): preflight refuses before any student code runs and names
the file and the fix; a failure of the grader's own side is a status of its own that never
replaces a grade; a grade is reused, scored again or run again according to fingerprints of what
it depends on; the demo deletes only a folder it made.

One small real course (LeNet-5, tiny profile, a copy of the course root so its rubric can change)
graded through the real pipeline: sandbox, Dask, evaluator, nbgrader gradebook."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbgrader.api import Gradebook

from autograder.build import build_assignment
from autograder.course import CourseError
from autograder.demo import MARKER, cohort, run_demo, write_cohort
from autograder.grading import record
from autograder.grade import grade_assignment
from autograder.grading.preflight import PreflightError
from autograder.grading.run_notebook import MAX_CELL_BYTES, limit_notebook, limit_outputs
from autograder.release import release_assignment

from .conftest import SANDBOXED, course_copy, known_reference_time, tree_hashes

A = "lenet5_mnist"
STUDENTS = ("alice_reference", "bob_weaker")


def _scores(course) -> dict[str, float]:
    with Gradebook(course.db_url, course.course_id) as gb:
        return {s.student_id: float(s.score) for s in gb.find_assignment(A).submissions}


def _quiet(_):
    pass


@pytest.fixture(scope="module")
def graded(tmp_path_factory, shared_client):
    """Two honest-to-goodness submissions and a folder with two notebooks, graded once."""
    course = course_copy(tmp_path_factory.mktemp("trust") / "course")
    build_assignment(course, A)
    release_assignment(course, A)
    source = nbformat.read(course.source_notebook(A), as_version=4)
    release = nbformat.read(course.release_notebook(A), as_version=4)
    write_cohort(course, {s: nb for s, nb in cohort(source, release).items() if s in STUDENTS})
    two = course.submitted_dir / "tina_two_notebooks" / A
    two.mkdir(parents=True)
    for name in ("draft.ipynb", "final.ipynb"):
        nbformat.write(release, two / name)
    known_reference_time(course, "tiny", 5.0)
    outcome = grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=2, log=_quiet, client=shared_client)
    return course, {r.student: r for r in outcome.results}


# ---- preflight: refused before anything runs, with the file and the fix ------------------------

def _nothing_ran(course, before: dict) -> bool:
    return {p: len(record.attempts(course, p, A)) for p in before} == before


def _attempt_counts(course) -> dict[str, int]:
    return {d.name: len(record.attempts(course, d.name, A)) for d in course.autograded_dir.iterdir()}


@pytest.mark.slow
def test_full_profile_without_data_is_refused_and_no_grade_changes(graded):
    course, _ = graded
    scores, counts = _scores(course), _attempt_counts(course)
    with pytest.raises(PreflightError) as refused:
        grade_assignment(course, A, "full", sandboxed=SANDBOXED, workers=1, force=True, log=_quiet)
    message = str(refused.value)
    assert "nothing was graded" in message
    assert str(course.data_root / "MNIST" / "raw") in message and "train-images-idx3-ubyte" in message
    assert str(course.hidden_data_root / "MNIST" / "raw") in message and "t10k-images-idx3-ubyte" in message
    assert _scores(course) == scores and _nothing_ran(course, counts)


@pytest.mark.slow
def test_read_only_gradebook_is_found_before_any_submission_runs(graded):
    course, _ = graded
    path = course.workdir / "gradebook.db"
    read_only = replace(course, gradebook_url=f"sqlite:///file:{path}?mode=ro&uri=true")
    counts = _attempt_counts(course)
    with pytest.raises(PreflightError, match=r"gradebook .* cannot be written .*--db"):
        grade_assignment(read_only, A, "tiny", sandboxed=SANDBOXED, workers=1, force=True, log=_quiet)
    assert _nothing_ran(course, counts)


@pytest.mark.slow
@pytest.mark.parametrize("broken, words", [
    ("{not json", "not valid JSON"),
    (json.dumps({"reflection": {"version": 99}}), "part 'reflection': calibration version 99"),
    (json.dumps({"reflection": {"version": 4, "knots_x": [0, 1], "knots_y": [0, 1], "references": "a text"}}),
     "references must be a list of strings"),
])
def test_a_broken_calibration_file_is_refused_before_anything_runs(graded, broken, words):
    """Not a failure of every task: one message naming the file, the part and the fix."""
    course, _ = graded
    path = course.rubric_dir / f"{A}.calibration.json"
    counts = _attempt_counts(course)
    path.write_text(broken)
    try:
        with pytest.raises(PreflightError) as refused:
            grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=1, force=True, log=_quiet)
    finally:
        path.unlink()
    message = str(refused.value)
    assert str(path) in message and words in message and f"autograder calibrate {A}" in message
    assert _nothing_ran(course, counts)


@pytest.mark.slow
def test_rubric_naming_a_cell_the_notebook_lacks_is_refused(graded, tmp_path):
    course, _ = graded
    rubric = course.rubric_dir / f"{A}.yaml"
    text = rubric.read_text()
    counts = _attempt_counts(course)
    rubric.write_text(text.replace("test_training: 3", "test_trainig: 3"))
    try:
        with pytest.raises(PreflightError) as refused:
            grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=1, log=_quiet)
    finally:
        rubric.write_text(text)
    message = str(refused.value)
    assert str(rubric) in message and "test_trainig" in message and "autograder build" in message
    assert _nothing_ran(course, counts)


@pytest.mark.slow
def test_stale_built_notebook_is_refused(graded):
    course, _ = graded
    reference = course.reference_dir / f"{A}.py"
    text = reference.read_text()
    reference.write_text(text + "\n# a later edit of the reference\n")
    try:
        with pytest.raises(PreflightError, match=r"is stale.*autograder build lenet5_mnist"):
            grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=1, log=_quiet)
    finally:
        reference.write_text(text)


# ---- invalid submissions name what they hold ----------------------------------------------------

@pytest.mark.slow
def test_two_notebooks_neither_named_is_invalid_with_the_files_named(graded):
    course, by = graded
    tina = by["tina_two_notebooks"]
    assert tina.status == "invalid" and not tina.grader_side
    assert "draft.ipynb" in tina.message and "final.ipynb" in tina.message and f"{A}.ipynb" in tina.message
    html = (course.feedback_dir / "tina_two_notebooks" / A / f"{A}.html").read_text()
    assert "out of memory" not in html and str(course.workdir) not in html
    assert "draft.ipynb" in html


# ---- fingerprints: kept, scored again, or run again --------------------------------------------

@pytest.mark.slow
def test_unchanged_inputs_keep_every_grade(graded, shared_client):
    course, _ = graded
    counts, lines = _attempt_counts(course), []
    outcome = grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=1, log=lines.append,
                                   client=shared_client)
    assert outcome.results and _attempt_counts(course) == counts
    assert any(line.startswith("3 grade(s) kept") for line in lines)


@pytest.mark.slow
def test_a_changed_band_rescores_without_running_and_says_what_changed(graded, shared_client):
    """A band changes and `version:` stays: the grades follow the rubric, from the stored runs."""
    course, by = graded
    alice = by["alice_reference"]
    accuracy = next(p for p in alice.parts if p.id == "accuracy")
    assert accuracy.points == 10
    rubric = course.rubric_dir / f"{A}.yaml"
    text = rubric.read_text()
    assert "version: 1" in text
    rubric.write_text(text.replace("- {at_least: 0.90, points: 10}", "- {at_least: 0.999, points: 10}"))
    lines = []
    try:
        build_assignment(course, A)   # as preflight asks: the task cell shows the new band
        outcome = grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=1, log=lines.append,
                                   client=shared_client)
    finally:
        rubric.write_text(text)
        build_assignment(course, A)
    now = {r.student: r for r in outcome.results}
    new = now["alice_reference"]
    assert new.attempt == 2 and new.rescored_from == 1
    assert next(p for p in new.parts if p.id == "accuracy").points == 7
    assert new.score == pytest.approx(alice.score - 3)
    work = Path(new.output_dir) / "work"
    assert not (work / "artifacts").exists() and not (work / f"{A}.input.ipynb").exists()   # nothing ran
    assert (work / f"{A}.ipynb").is_file()                                                  # formgrader's copy
    assert _scores(course)["alice_reference"] == pytest.approx(new.score)
    assert any("score again" in line and "rubric" in line for line in lines)
    changed = next(line for line in lines if line.startswith("scored again"))
    assert "alice_reference" in changed and "bob_weaker" not in changed


@pytest.mark.slow
def test_a_new_calibration_scores_the_written_answers_again_from_the_stored_runs(graded, shared_client):
    """What `autograder calibrate` writes beside the rubric is read once by the next grade, reaches
    every task and scores the written answers with it, read by the course's reading it holds;
    nothing runs again."""
    from autograder.reflection import Calibration, reading, suggest
    from autograder.reflection.calibration import calibrations_to_dict
    from autograder.reflection.text import answer_text
    from autograder.rubric import load_rubric, reflection_spec

    course, _ = graded
    spec = reflection_spec(load_rubric(course.rubric_dir / f"{A}.yaml", A).part("reflection"))
    before = {r.student: r for r in record.latest_results(course, A) if r.student in STUDENTS}
    assert all(_part(r, "reflection").points > 0 for r in before.values())
    path = course.rubric_dir / f"{A}.calibration.json"
    assert not path.exists()
    # a teacher who gave no written answer any point: every raw score maps to none; and a reading
    # (learned from made-up grades: any reading reads answers differently from MiniLM as shipped)
    tuned = reading.learn([(f"The loss fell in epoch {i}.", "Training converged.", (i % 3) / 2)
                           for i in range(reading.MIN_PAIRS)])
    cal = Calibration(knots_x=[0.0, 1.0], knots_y=[0.0, 0.0], reading=tuned)
    path.write_text(json.dumps(calibrations_to_dict({"reflection": cal})))
    lines = []
    try:
        outcome = grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=1, log=lines.append,
                                   client=shared_client)
    finally:
        path.unlink()
    now = {r.student: r for r in outcome.results}
    for student, old in before.items():
        new = now[student]
        assert new.rescored_from == old.attempt and _part(new, "reflection").points == 0
        assert not (Path(new.output_dir) / "work" / "artifacts").exists()   # nothing ran
        answer = answer_text(_part(new, "reflection").details["answer"])
        assert _part(new, "reflection").details["raw"] == pytest.approx(suggest(answer, spec, cal).raw)
        assert _part(new, "reflection").details["raw"] != pytest.approx(suggest(answer, spec, replace(cal, reading=None)).raw)
        assert _scores(course)[student] == pytest.approx(new.score)
    assert any("score again" in line and "calibration" in line for line in lines)


def _part(result, part_id: str):
    return next(p for p in result.parts if p.id == part_id)


# ---- a grader-side failure never replaces a grade -----------------------------------------------

def _idx(path: Path, array: np.ndarray, images: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">I", 0x0803 if images else 0x0801) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _stage_small_mnist(course) -> None:
    """A small MNIST in torchvision's IDX format, from scikit-learn's digits (6,000 train images:
    the last 5,000 are the validation split), and its test files under the hidden root."""
    from sklearn.datasets import load_digits
    import torch
    import torch.nn.functional as F

    digits = load_digits()
    big = F.interpolate(torch.from_numpy(digits.images).float().unsqueeze(1), size=(28, 28), mode="bilinear")
    images = (big[:, 0] / 16 * 255).clamp(0, 255).numpy()
    reps = np.resize(np.arange(len(images)), 7000)
    raw, hidden = course.data_root / "MNIST" / "raw", course.hidden_data_root / "MNIST" / "raw"
    _idx(raw / "train-images-idx3-ubyte", images[reps[:6000]], True)
    _idx(raw / "train-labels-idx1-ubyte", digits.target[reps[:6000]], False)
    _idx(hidden / "t10k-images-idx3-ubyte", images[reps[6000:]], True)
    _idx(hidden / "t10k-labels-idx1-ubyte", digits.target[reps[6000:]], False)


@pytest.mark.slow
def test_runner_missing_the_hidden_data_is_a_grader_error_that_keeps_the_grade(graded, shared_client):
    """Graded on the full profile through a cluster of runners (sharing the course folder), then
    regraded on a runner whose hidden data is gone: a grader error naming the runner and the file, listed for the
    instructor; the gradebook, CSV and feedback keep the grade; the next run retries it."""
    course, _ = graded
    _stage_small_mnist(course)
    full = replace(course.profile("full"), notebook_timeout_s=300, cell_timeout_s=240)
    course = replace(course, profiles={**course.profiles, "full": full})
    known_reference_time(course, "full", 5.0)
    address = shared_client.scheduler.address   # the session's cluster, reached as runners are: by address
    first = grade_assignment(course, A, "full", student="alice_reference", sandboxed=SANDBOXED,
                             scheduler=address, shared_folder=True, force=True, log=_quiet)
    assert first.results[0].status == "graded"
    assert next(p for p in first.results[0].parts if p.id == "accuracy").points > 0
    grade, feedback = _scores(course)["alice_reference"], course.feedback_dir / "alice_reference" / A / f"{A}.html"
    page, csv_before = feedback.read_bytes(), (course.workdir / "grades" / f"{A}.csv").read_text()
    moved = course.hidden_data_root.with_name("hidden-away")
    course.hidden_data_root.rename(moved)
    try:
        lost = grade_assignment(course, A, "full", student="alice_reference", sandboxed=SANDBOXED,
                                scheduler=address, shared_folder=True, force=True, log=_quiet)
    finally:
        moved.rename(course.hidden_data_root)
    failed = lost.results[0]
    assert failed.status == "grader_error" and failed.grader_side
    assert "t10k-images-idx3-ubyte" in failed.message and "runner" in failed.message
    assert [f.student for f in lost.grader_failures] == ["alice_reference"]
    assert _scores(course)["alice_reference"] == grade                       # the gradebook kept it
    assert feedback.read_bytes() == page                                      # so did the feedback
    assert (course.workdir / "grades" / f"{A}.csv").read_text() == csv_before  # and the CSV
    report = lost.report.read_text()
    assert "Grader errors" in report and "t10k-images-idx3-ubyte" in report
    standing = record.standing(record.attempts(course, "alice_reference", A))
    assert standing.attempt == first.results[0].attempt
    again = grade_assignment(course, A, "full", student="alice_reference", sandboxed=SANDBOXED,
                             scheduler=address, shared_folder=True, log=_quiet)
    assert again.results and again.results[0].status == "graded" and not again.grader_failures


# ---- the demo deletes only what it made ---------------------------------------------------------

def test_demo_refuses_a_folder_it_did_not_make_and_checks_arguments_first(course, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "gradebook.db").write_text("an instructor's real gradebook")
    before = tree_hashes(mine)
    with pytest.raises(CourseError, match="unknown assignment"):
        run_demo(course, mine, sandboxed=SANDBOXED, assignments=["nosuch"], log=_quiet)
    with pytest.raises(CourseError, match=f"not made by the demo.*{MARKER}"):
        run_demo(course, mine, sandboxed=SANDBOXED, assignments=[A], log=_quiet)
    assert tree_hashes(mine) == before
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / MARKER).write_text("made by the demo")
    (demo / "gradebook.db").write_text("a finished demo, with a manual grade")
    before = tree_hashes(demo)
    with pytest.raises(CourseError, match="unknown assignment 'lenet_mnst'"):   # a typo loses nothing
        run_demo(course, demo, sandboxed=SANDBOXED, assignments=["lenet_mnst"], log=_quiet)
    assert tree_hashes(demo) == before


def test_demo_cli_with_a_typo_keeps_the_folder(tmp_path):
    from autograder.cli import main

    folder = tmp_path / "somewhere"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert main(["demo", "--into", str(folder), "nosuch"]) == 2
    assert (folder / "notes.txt").read_text() == "keep me"


# ---- the output cap holds whatever the timing ---------------------------------------------------

@pytest.mark.parametrize("pieces", [1, 18, 300])
def test_one_cells_outputs_stay_within_the_cell_budget(pieces):
    """However the kernel's timing splits 1.1 MB of output (one stream, 18 of 64 KiB, 300 small
    ones), the cell keeps at most its budget, and an error at the end still counts."""
    cell = nbformat.v4.new_code_cell("print(...)")
    total = 18 * 65536
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="y" * (total // pieces))
                    for _ in range(pieces)]
    cell.outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="late", traceback=["tb"]))
    assert limit_outputs(cell) > 0
    assert len(json.dumps(cell.outputs)) <= MAX_CELL_BYTES + 4096
    assert cell.outputs[-1].output_type == "error" or any(o.output_type == "error" for o in cell.outputs)


def test_a_notebook_of_many_loud_cells_stays_within_its_total():
    nb = nbformat.v4.new_notebook()
    for _ in range(40):
        cell = nbformat.v4.new_code_cell("print(...)")
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="z" * 400_000)]
        nb.cells.append(cell)
    limit_notebook(nb, total=4 * 2**20)
    assert len(nbformat.writes(nb)) < 4 * 2**20 + 40 * 8192
