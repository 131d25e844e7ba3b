"""End to end on the tiny profile: the demo's cohorts of every assignment graded in one Dask run, in
the sandbox, into a real nbgrader gradebook. One run (the session's `demo_run`), many assertions:
the LeNet-5 cohort's seven ways a submission can go here, the other assignments' honest and wrong
submissions in their own test files."""

import csv
import subprocess
import sys
from dataclasses import replace

import pytest
from nbgrader.api import Gradebook

from autograder.course import CourseError
from autograder.demo import ASSIGNMENT, COHORTS, run_demo
from autograder.grading.record import latest_results

from .conftest import SANDBOXED, tree_hashes


@pytest.fixture(scope="module")
def demo(demo_run):
    """(course, LeNet-5's outcome, LeNet-5's results by student, submissions before grading)"""
    outcome = demo_run.run.outcomes[ASSIGNMENT]
    return demo_run.course, outcome, {r.student: r for r in outcome.results}, demo_run.submitted


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


def test_a_notebook_stopped_at_its_limit_leaves_nothing_running(demo_run):
    """dave_endless spins in a sandboxed cell until the per-cell limit (the adversarial cohort's
    own endless loop was the same attack, graded twice): the kernel and everything it started
    are gone after the batch."""
    assert demo_run.run.results("lenet5_mnist")["dave_endless"].status == "timeout"
    assert demo_run.left == []


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
    exported = {row["student_id"]: row for row in csv.DictReader((course.workdir / "grades.csv").open())
                if row["assignment"] == ASSIGNMENT}
    assert float(exported["alice_reference"]["raw_score"]) == pytest.approx(by["alice_reference"].score)


def test_canvas_export_carries_formgraders_manual_score(demo, tmp_path, capsys):
    """`autograder export --canvas` writes Canvas's import format with the gradebook's scores: an
    instructor's manual score from formgrader replaces the suggested one; names and Canvas ids
    come from the roster."""
    from autograder.cli import main

    course, outcome, by, _ = demo
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,lms_id,name\ncarol_raises,4711,Carol Raises\n")
    with Gradebook(course.db_url, course.course_id) as gb:
        grade = gb.find_grade("reflection", ASSIGNMENT, ASSIGNMENT, "carol_raises")
        saved, auto, top = (grade.manual_score, grade.needs_manual_grade), grade.auto_score or 0.0, grade.max_score
        assert auto < top
        grade.manual_score, grade.needs_manual_grade = top, False   # the instructor disagrees with the suggestion
        gb.db.commit()
    try:
        assert main(["--workdir", str(course.workdir), "export", ASSIGNMENT, "--canvas",
                     "--roster", str(roster), "--canvas-id", "77"]) == 0
    finally:
        with Gradebook(course.db_url, course.course_id) as gb:
            grade = gb.find_grade("reflection", ASSIGNMENT, ASSIGNMENT, "carol_raises")
            grade.manual_score, grade.needs_manual_grade = saved
            gb.db.commit()
    rows = list(csv.reader((course.workdir / "grades" / f"{ASSIGNMENT}-canvas.csv").open()))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "LeNet-5 on MNIST (77)"]
    assert rows[1][0] == "Points Possible" and float(rows[1][5]) == by["alice_reference"].max_score
    by_sis = {row[2]: row for row in rows[2:]}
    assert set(by_sis) == set(by)
    assert by_sis["carol_raises"][:2] == ["Carol Raises", "4711"]
    assert float(by_sis["carol_raises"][5]) == pytest.approx(by["carol_raises"].score - auto + top)
    assert float(by_sis["alice_reference"][5]) == pytest.approx(by["alice_reference"].score)
    waiting = [line for line in capsys.readouterr().out.splitlines() if "waiting for review" in line]
    assert not waiting or "carol_raises" not in waiting[0]   # reviewed now; others may still wait


def test_submissions_untouched_and_attempts_kept(demo):
    course, _, by, before = demo
    assert before and tree_hashes(course.submitted_dir) == before
    for student, result in by.items():
        assert (course.workdir / "autograded" / student / ASSIGNMENT / "attempts" / "001" / "result.json").is_file()
    # alice and dave wrote the same reflection: the copy flag found after the batch is in their
    # stored attempts too (where `export` and later class reports read it), and in the gradebook
    stored = {r.student: r for r in latest_results(course, ASSIGNMENT)}
    for student in ("alice_reference", "dave_endless"):
        copies = [f for f in by[student].flags if "near-duplicate" in f]
        assert copies and stored[student].flags == by[student].flags, student
    with Gradebook(course.db_url, course.course_id) as gb:
        assert gb.find_grade("reflection", ASSIGNMENT, ASSIGNMENT, "alice_reference").needs_manual_grade
    text = (course.submitted_dir / "frank_edits_test" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").read_text()
    assert "this test is in my way" in text


# ---- every assignment of the course -------------------------------------------------------------

def test_every_assignment_with_a_cohort_is_graded_and_reported(demo_run, course):
    graded, run = demo_run.course, demo_run.run
    with_cohort = [a for a in course.assignments if a in COHORTS]
    assert list(run.outcomes) == with_cohort and len(with_cohort) >= 5
    assert run.skipped == [a for a in course.assignments if a not in COHORTS]
    for name in run.skipped:
        assert any(line.startswith(f"skipping {name}") for line in demo_run.log)
    students = {}
    with Gradebook(graded.db_url, graded.course_id) as gb:
        for name, outcome in run.outcomes.items():
            students[name] = {r.student for r in outcome.results}
            assert students[name] == {p.parent.name for p in graded.submitted_dir.glob(f"*/{name}")}, name
            report = outcome.report.read_text()
            rows = {row["student"] for row in csv.DictReader(outcome.csv.open())}
            assert rows == students[name], name
            for result in outcome.results:
                assert result.student in report
                assert (graded.feedback_dir / result.student / name / f"{name}.html").is_file()
                auto = sum(g.auto_score or 0 for g in gb.find_submission(name, result.student).notebooks[0].grades)
                assert auto == pytest.approx(result.score), (name, result.student)
    assert all("alice_reference" in s for s in students.values())   # the honest student takes every course
    # the log shows the progress and, per assignment, every student's status and score
    assert sum(line.lstrip().startswith("[") and "/" in line for line in demo_run.log) >= sum(map(len, students.values()))
    for name, outcome in run.outcomes.items():
        summary = next(line for line in demo_run.log if line.strip().startswith(f"{name}: "))
        for r in outcome.results:
            assert f"{r.student} {r.status} {r.score:g}/{r.max_score:g}" in summary


def test_assignments_without_a_cohort_are_skipped_with_a_log_line(course, tmp_path):
    lines = []
    stranger = replace(course, assignments=("no_cohort_yet",))
    with pytest.raises(CourseError, match="no assignment to demonstrate"):
        run_demo(stranger, tmp_path / "w", sandboxed=SANDBOXED, log=lines.append)
    assert any(line.startswith("skipping no_cohort_yet") and "COHORTS" in line for line in lines)
