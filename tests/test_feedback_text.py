"""The student-facing text rules, on their own: paths, other students' ids, scorer internals.
The same rules on pages from a real graded run: tests/test_publish.py."""

from autograder.grading.results import GradeResult, PartResult
from autograder.reports.html import render_feedback
from autograder.reports.nbgrader_feedback import clean_comment
from autograder.reports.views import private
from autograder.rubric import load_rubric

from .conftest import REPO


def test_private_cuts_paths_and_other_students_but_keeps_ordinary_text():
    text = ("FileNotFoundError: [Errno 2] No such file: '/srv/course/autograded/bob_weaker/lenet5_mnist/attempts/001/work/x.npy'; "
            "reflection: near-duplicate of bob_weaker's answer (similarity 0.97); see https://pytorch.org/docs/stable; "
            "3/4 points, lr 0.02 -> 0.005, C:\\Users\\ann\\hw.ipynb")
    out = private(text, frozenset({"bob_weaker", "al"}))
    assert "/srv" not in out and "'…/x.npy'" in out and "…/hw.ipynb" in out
    assert "bob_weaker" not in out and "near-duplicate of another student's answer" in out
    assert "https://pytorch.org/docs/stable" in out and "3/4 points, lr 0.02 -> 0.005" in out


def test_private_cuts_paths_right_after_a_terminal_colour_code():
    """A traceback line colours its file path: the colour code must not shield the path (the
    Python installation's path leaked into nbgrader's feedback when it lay under /tmp)."""
    line = "\x1b[0;32m/srv/course/.venv/lib/python3.11/site-packages/torch/nn/modules/module.py:1783\x1b[0m, in f"
    shown = private(line)
    assert "/srv/" not in shown and "site-packages" not in shown
    assert shown == "\x1b[0;32m…/module.py:1783\x1b[0m, in f"


def test_comment_loses_scorer_internals():
    comment = ("Suggested 3.5/4: met reports_results (1/1) by wording: \"97%\"; partly met proposes_one_change (0.46/1) "
               "by meaning, similarity 0.65: \"x\"; similarity to the reference answer 0.69; raw score 0.85")
    out = clean_comment(comment)
    assert "similarity" not in out and "raw score" not in out and "met reports_results (1/1)" in out


def test_feedback_of_a_flagged_answer_names_no_one_and_reads_plainly():
    rubric = load_rubric(REPO / "rubrics" / "lenet5_mnist.yaml", "lenet5_mnist")
    reasons = ["met reports_results (1/1) by wording: \"I reached 97%\"", "missing names_a_limit (0/1)",
               "similarity to the reference answer 0.69; raw score 0.85"]
    parts = [PartResult("tests", "tests", "Tests", 3.0, 6.0, "test_lenet5_architecture: 3/3; test_training: 0/3 (AssertionError: loss)",
                        details={"cells": {"test_lenet5_architecture": 3.0, "test_training": 0.0}}),
             PartResult("accuracy", "metric", "Accuracy", 10.0, 10.0, "accuracy on the hidden test split: 0.950", details={"value": 0.95}),
             PartResult("timing", "timing", "Timing", 4.0, 4.0, "training took 5.6 s",
                        details={"train_s": 5.6, "ratio": 1.8, "reference_s": 3.1}),
             PartResult("reflection", "reflection", "Reflection", 1.0, 4.0, "suggested score (confidence 0.86): ...",
                        needs_review=True, details={"reasons": reasons, "near_duplicates": {"zed_other": 0.99}})]
    result = GradeResult("amy", "lenet5_mnist", "graded", "the notebook ran to the end", "tiny", 1, parts,
                         runner="host/worker-0", flags=["reflection: near-duplicate of zed_other's answer (similarity 0.99)"])
    page = render_feedback(result, rubric, frozenset({"amy", "zed_other"}))
    assert "zed_other" not in page and "worker-0" not in page and "confidence" not in page and "raw score" not in page
    assert "You passed 1 of 2 tests." in page
    assert "Your written answer meets 1 of 2 criteria, for a suggested score of 1 of 4 points." in page
    assert page.count("<details>") == 4 and "<details open" not in page   # every part's details folded
    assert "(an instructor will review this)" in page
