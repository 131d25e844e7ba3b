"""End to end on the tiny profile: the demo's cohort graded in one batch through Dask, in the
sandbox, into a real nbgrader gradebook. One run, many assertions."""

import csv
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from autograder.demo import ASSIGNMENT, run_demo

from .conftest import SANDBOXED, tree_hashes


@pytest.fixture(scope="module")
def demo(course, tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    work.chmod(0o755)
    before = {}

    def log(message):
        if message.startswith("3/4 cohort"):  # submissions exist now: remember them
            before.update(tree_hashes(work / "w" / "submitted"))

    graded_course, outcome = run_demo(course, work / "w", sandboxed=SANDBOXED, log=log)
    return graded_course, outcome, {r.student: r for r in outcome.results}, before


def parts(result):
    return {p.id: p for p in result.parts}


def test_every_submission_has_a_record_with_the_right_status(demo):
    _, _, by, _ = demo
    assert {s: r.status for s, r in by.items()} == {
        "alice_reference": "graded", "bob_weaker": "graded", "carol_raises": "failed",
        "dave_endless": "timeout", "erin_untouched": "failed", "frank_edits_test": "graded",
        "grace_not_a_notebook": "invalid"}
    assert "not valid JSON" in by["grace_not_a_notebook"].message
    assert "RuntimeError" in by["carol_raises"].message
    assert "limit" in by["dave_endless"].message


def test_reference_gets_full_automatic_marks_and_weaker_fewer(demo):
    _, _, by, _ = demo
    alice, bob = parts(by["alice_reference"]), parts(by["bob_weaker"])
    assert alice["tests"].points == alice["tests"].max_points
    assert alice["accuracy"].points == alice["accuracy"].max_points
    assert alice["timing"].points > 0
    assert alice["reflection"].points >= 3 and "met" in alice["reflection"].explanation
    assert bob["accuracy"].points < alice["accuracy"].points
    assert by["bob_weaker"].evaluation["test"]["accuracy"] < by["alice_reference"].evaluation["test"]["accuracy"]


def test_written_answers_get_suggestions_and_gaming_is_flagged(demo):
    _, _, by, _ = demo
    reflection = {s: parts(r)["reflection"] for s, r in by.items()}
    assert reflection["bob_weaker"].points < reflection["alice_reference"].points
    for gamed in ("carol_raises", "frank_edits_test"):  # keyword list; the question pasted
        assert reflection[gamed].needs_review and reflection[gamed].details["flags"], gamed
        assert reflection[gamed].points <= reflection["bob_weaker"].points + 1


def test_what_did_not_run_scores_zero(demo):
    _, _, by, _ = demo
    for student in ("carol_raises", "erin_untouched", "grace_not_a_notebook"):
        p = parts(by[student])
        assert p["accuracy"].points == 0 and p["timing"].points == 0, student
    assert parts(by["dave_endless"])["accuracy"].points == 0
    assert parts(by["erin_untouched"])["reflection"].points == 0  # no answer written


def test_edited_test_cell_was_restored_before_execution(demo):
    _, _, by, _ = demo
    frank = by["frank_edits_test"]
    assert "test_lenet5_architecture" in frank.restored_cells
    # his wrong architecture fails the restored hidden test, though his own cell was `pass`
    assert parts(frank)["tests"].details["cells"]["test_lenet5_architecture"] == 0


def test_gradebook_csv_and_feedback(demo):
    course, outcome, by, _ = demo
    with Gradebook(course.db_url, course.course_id) as gb:
        for student, result in by.items():
            sub = gb.find_submission(ASSIGNMENT, student)
            auto = sum(g.auto_score or 0 for g in sub.notebooks[0].grades)
            assert auto == pytest.approx(result.score), student
        carol = gb.find_submission(ASSIGNMENT, "carol_raises")
        assert carol.needs_manual_grade  # a gamed answer waits for a human
        comment = gb.find_comment("reflection", ASSIGNMENT, ASSIGNMENT, "alice_reference")
        assert comment.auto_comment.startswith("Suggested")
    rows = {row["student"]: row for row in csv.DictReader(outcome.csv.open())}
    assert float(rows["alice_reference"]["score"]) == by["alice_reference"].score
    html = (course.feedback_dir / "alice_reference" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "data:image/png;base64" in html and "confusion" in html and "Training curve" in html.replace("training curve", "Training curve")
    assert "alice_reference" in outcome.report.read_text()
    # nbgrader's own command lists the same grades
    subprocess.run([sys.executable, "-m", "nbgrader", "export"], cwd=course.workdir, check=True, capture_output=True)
    exported = {row["student_id"]: row for row in csv.DictReader((course.workdir / "grades.csv").open())}
    assert float(exported["alice_reference"]["raw_score"]) == pytest.approx(by["alice_reference"].score)


def test_submissions_untouched_and_attempts_kept(demo):
    course, _, by, before = demo
    assert before and tree_hashes(course.submitted_dir) == before
    for student, result in by.items():
        assert (course.workdir / "autograded" / student / ASSIGNMENT / "attempts" / "001" / "result.json").is_file()
    text = (course.submitted_dir / "frank_edits_test" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    assert "this test is in my way" in text
