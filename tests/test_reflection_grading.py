"""The reflection engine inside grading: rubric criteria validated with a line, suggestions in
score parts, copied answers flagged as pairs across a batch."""

import pytest

from autograder.grading.batch import flag_copied_answers
from autograder.grading.results import GradeResult, PartResult
from autograder.grading.score import ScoringInput, score_reflection
from autograder.rubric import RubricError, load_rubric, parse_rubric

from .conftest import ASSIGNMENT, cell


@pytest.fixture(scope="module")
def rubric(course):
    return load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml")


def test_a_typo_in_reflection_criteria_names_the_part_and_line(course):
    text = (course.rubric_dir / f"{ASSIGNMENT}.yaml").read_text()
    with pytest.raises(RubricError, match=r"r.yaml:\d+: part 'reflection': reflection criteria"):
        parse_rubric(text.replace("phrasings: [\"validation accuracy", "phrasing: [\"validation accuracy", 1), "r.yaml")


def _scored(rubric, release_nb, text):
    import copy
    nb = copy.deepcopy(release_nb)
    answer = cell(nb, "reflection")
    answer.source = text
    return score_reflection(rubric.part("reflection"), ScoringInput("tiny", nb))


def test_suggestions_order_answers_and_flag_gaming(rubric, release_nb, source_nb):
    good = _scored(rubric, release_nb, cell(source_nb, "reflection").source)
    partial = _scored(rubric, release_nb, "I got about 60% accuracy after one epoch. More epochs would help.")
    pasted = _scored(rubric, release_nb, rubric.part("reflection").options["question"])
    empty = _scored(rubric, release_nb, "YOUR ANSWER HERE")
    assert good.points > partial.points > empty.points == 0
    assert "met" in good.explanation and good.details["criteria_met"]
    assert pasted.needs_review and pasted.points <= partial.points


def _result(student, answer):
    part = PartResult("reflection", "reflection", "r", 2.0, 4.0, "", details={"answer": answer})
    return GradeResult(student, ASSIGNMENT, "graded", "", "tiny", parts=[part])


def test_copied_answers_are_flagged_in_pairs(rubric):
    text = ("LeNet-5 reached 97 percent validation accuracy in four seconds. The small training set makes it "
            "overfit, so I would add data augmentation with shifts and rotations to show it more variation.")
    results = [_result("ann", text), _result("ben", text.replace("four", "five")),
               _result("cat", "I trained for a short time and got 80%. I would use ReLU because tanh saturates "
                              "and the gradients vanish, which slows learning in the early layers.")]
    flag_copied_answers(rubric, results)
    ann, ben, cat = results
    # the pair is the instructor's (the part's details, shown in the class report); the students'
    # own flags never name each other
    assert "ben" in ann.parts[0].details["near_duplicates"] and "ann" in ben.parts[0].details["near_duplicates"]
    assert ann.flags and ben.flags and not any("ben" in f for f in ann.flags) and not any("ann" in f for f in ben.flags)
    assert not cat.flags and ann.parts[0].needs_review


def test_nbgrader_default_cell_ids_are_accepted(course):
    """An exam written in nbgrader keeps its default grade ids ("cell-<hex>")."""
    text = (course.rubric_dir / f"{ASSIGNMENT}.yaml").read_text()
    part = load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml").part("reflection")
    renamed = parse_rubric(text.replace(f"cell: {part.cell}", "cell: cell-4f2a9c0e1b", 1), "r.yaml")
    assert renamed.part("reflection").cell == "cell-4f2a9c0e1b"
    with pytest.raises(RubricError):
        parse_rubric(text.replace(f"cell: {part.cell}", "cell: Cell-XYZ!", 1), "r.yaml")


def test_calibration_and_suggestion_read_the_answer_the_same_way(rubric, release_nb, source_nb):
    """The stored answer, read by answer_text as calibration reads it, gives the suggestion's raw
    score; nbgrader's placeholder left above the answer is not part of it; list items stay apart."""
    from autograder.reflection import suggest
    from autograder.reflection.text import answer_text
    from autograder.rubric import reflection_spec

    good = cell(source_nb, "reflection").source
    wrapped = "YOUR ANSWER HERE\n\n" + good.replace(". ", ".\n", 2) + "\n\n- shifts\n- rotations"
    scored = _scored(rubric, release_nb, wrapped)
    stored = scored.details["answer"]
    assert not stored.startswith("YOUR ANSWER HERE")
    read = answer_text(stored)
    assert "\n- shifts\n- rotations" in read and "YOUR ANSWER HERE" not in read
    assert suggest(read, reflection_spec(rubric.part("reflection"))).raw == scored.details["raw"]
    assert _scored(rubric, release_nb, "YOUR ANSWER HERE\n").points == 0


def test_the_written_answer_model_is_warmed_only_for_a_notebook_with_answers(rubric, release_nb, source_nb):
    """Loading the model costs a grading process about 5 s of CPU; a blank answer scores 0 without it."""
    import copy

    from autograder.grading.pipeline import _has_written_answers

    assert rubric.answer_parts and not _has_written_answers(release_nb, rubric)   # nbgrader's placeholder only
    assert _has_written_answers(source_nb, rubric)
    one = copy.deepcopy(release_nb)
    cell(one, rubric.answer_parts[0].cell).source = "YOUR ANSWER HERE\n\nThe loss fell, so I kept the rate."
    assert _has_written_answers(one, rubric)
