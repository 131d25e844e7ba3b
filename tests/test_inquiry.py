"""The one-variable inquiry loop: its checks on plain data, the rubric's `inquiry` part, and the
demo's notebooks executed by papermill in the sandbox (one variable changed, two changed, a change
inside the noise), re-scored with reflections whose quoted numbers match the measured runs and do not."""

from __future__ import annotations

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.demo import _replace
from autograder.grading.score import ScoringInput, score_inquiry
from autograder.inquiry import grade_inquiry, measured
from autograder.inquiry.log import all_quotable
from autograder.rubric import RubricError, load_rubric, parse_rubric

ASSIGNMENT = "inquiry_csxa"


@pytest.fixture(scope="module")
def spec(course):
    return load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml").part("inquiry").options


def _log(spec, variant_changes: dict, baseline=(0.979, 0.948), variant=(0.565, 0.667), **extra) -> dict:
    base = dict(spec["baseline"]["tiny"])
    runs = [{"config": c, "seed": s, "metrics": {"macro_f1": v, "accuracy": v + 0.01}}
            for c, values in (("baseline", baseline), ("variant", variant)) for s, v in enumerate(values)]
    return {"baseline": base, "variant": {**base, **variant_changes}, "runs": runs,
            "hypothesis": "A smaller learning rate will lower the validation macro-F1 because the network stays undertrained.",
            **extra}


GOOD = ("I changed only the learning rate, from 0.02 to 0.005. Macro-F1 fell from 0.96 to 0.62 on average "
        "(0.98 and 0.95 for the baseline seeds, 0.57 and 0.67 for the variant). The drop is far larger than the "
        "spread between the two seeds, although two seeds are little evidence of its exact size. With steps four "
        "times smaller the network covers less distance in six epochs and stays undertrained.")


def _by_name(grade):
    return {c.name: c for c in grade.checks}


# ---- the checks on plain data -------------------------------------------------------------------

def test_a_good_reflection_on_a_one_variable_experiment_passes_every_check(spec):
    grade = grade_inquiry(spec, "tiny", _log(spec, {"lr": 0.005}), GOOD)
    failed = {c.name: c.explanation for c in grade.checks if not c.passed}
    assert not failed, failed
    assert grade.points == sum(spec["checks"].values()) and not grade.flags
    checks = _by_name(grade)
    assert "lr 0.02 -> 0.005" in checks["one_variable"].explanation
    assert "go down" in checks["states_hypothesis"].explanation
    assert "measured macro_f1: baseline 0.964, variant 0.616" in checks["direction_matches"].explanation


def test_two_changed_variables_or_a_changed_baseline_fail_the_design_check(spec):
    two = _by_name(grade_inquiry(spec, "tiny", _log(spec, {"lr": 0.005, "epochs": 3}), GOOD))
    assert not two["one_variable"].passed
    assert "2 variables changed" in two["one_variable"].explanation and "epochs 6 -> 3" in two["one_variable"].explanation
    assert not two["names_variable"].passed and "epochs" in two["names_variable"].explanation

    log = _log(spec, {"lr": 0.005})
    log["baseline"] = {**log["baseline"], "epochs": 12}     # both runs moved away from the course's baseline
    tampered = _by_name(grade_inquiry(spec, "tiny", log, GOOD))["one_variable"]
    assert not tampered.passed and "baseline run itself was changed" in tampered.explanation

    same = _by_name(grade_inquiry(spec, "tiny", _log(spec, {}), GOOD))
    assert not same["one_variable"].passed and "nothing was changed" in same["one_variable"].explanation


def test_quoted_numbers_must_be_measured_ones(spec):
    log = _log(spec, {"lr": 0.005})
    invented = GOOD.replace("fell from 0.96 to 0.62", "fell from 0.91 to 0.62")
    check = _by_name(grade_inquiry(spec, "tiny", log, invented))["numbers_match"]
    assert not check.passed and "0.91" in check.explanation and "match no run" in check.explanation
    percent = GOOD.replace("fell from 0.96 to 0.62", "fell from 96% to 62%")
    assert _by_name(grade_inquiry(spec, "tiny", log, percent))["numbers_match"].passed
    vague = "I changed the learning rate from 0.02 to 0.005 and macro-F1 got worse, across both seeds."
    check = _by_name(grade_inquiry(spec, "tiny", log, vague))["numbers_match"]
    assert not check.passed and "quotes no measured value" in check.explanation


def test_the_claimed_direction_must_be_the_measured_one(spec):
    down = _log(spec, {"lr": 0.005})
    wrong = GOOD.replace("Macro-F1 fell from 0.96 to 0.62 on average", "Macro-F1 improved a lot on average")
    check = _by_name(grade_inquiry(spec, "tiny", down, wrong))["direction_matches"]
    assert not check.passed and "claims up, but macro_f1 went down" in check.explanation

    # class weights off: +0.027 while the baseline's seeds differ by 0.031 -- no direction
    noisy = _log(spec, {"class_weights": False}, variant=(0.987, 0.994))
    claim = ("I turned the class weights off (they were on in the baseline). Macro-F1 improved from 0.96 to 0.99, "
             "because without class weights the network stops over-predicting the rare classes.")
    check = _by_name(grade_inquiry(spec, "tiny", noisy, claim))["direction_matches"]
    assert not check.passed and "within the run-to-run spread" in check.explanation
    careful = claim + " But the baseline's two seeds differ by 0.03, about as much as the change, so this may be noise."
    assert _by_name(grade_inquiry(spec, "tiny", noisy, careful))["direction_matches"].passed
    flat = ("I turned the class weights off (on in the baseline). Macro-F1 showed no clear change, 0.96 versus 0.99, "
            "within the noise between seeds.")
    graded = _by_name(grade_inquiry(spec, "tiny", noisy, flat))
    assert graded["direction_matches"].passed and graded["names_variable"].passed and graded["variance"].passed


def test_hypothesis_mechanism_and_variance_are_each_explained(spec):
    log = _log(spec, {"lr": 0.005}, hypothesis="I will change the learning rate and see what happens.")
    bare = ("I changed the learning rate from 0.02 to 0.005. Macro-F1 fell from 0.96 to 0.62.")
    checks = _by_name(grade_inquiry(spec, "tiny", log, bare))
    assert not checks["states_hypothesis"].passed and "direction" in checks["states_hypothesis"].explanation
    assert not checks["mechanism"].passed and "explains why" in checks["mechanism"].explanation
    assert not checks["variance"].passed and "run-to-run" in checks["variance"].explanation
    assert checks["numbers_match"].passed and checks["direction_matches"].passed
    # a hypothesis written in the reflection counts too
    stated = "My hypothesis was that a smaller learning rate would lower the macro-F1. " + bare
    assert _by_name(grade_inquiry(spec, "tiny", log, stated))["states_hypothesis"].passed


def test_a_log_that_does_not_belong_to_the_exported_model_is_flagged(spec):
    log = _log(spec, {"lr": 0.005})
    assert not grade_inquiry(spec, "tiny", log, GOOD, exported={"macro_f1": 0.565}).flags
    flags = grade_inquiry(spec, "tiny", log, GOOD, exported={"macro_f1": 0.80}).flags
    assert flags and "0.800" in flags[0] and "may not belong" in flags[0]


def test_measured_direction_uses_the_seed_spread(spec):
    m = measured(_log(spec, {"lr": 0.005}), "macro_f1", 0.01)
    assert m.direction == "down" and m.spread == pytest.approx(0.102)
    assert measured(_log(spec, {}, variant=(0.987, 0.994)), "macro_f1", 0.01).direction == "unclear"


# ---- the rubric -----------------------------------------------------------------------------------

RUBRIC = """assignment: x
title: X
version: 1
{dataset}parts:
  - id: inquiry
    kind: inquiry
    title: Inquiry
    cell: reflection
    inquiry:
      metric: macro_f1
      baseline: {{tiny: {{{baseline}}}}}
      checks: {{one_variable: 2, {check}: 1}}
      variables:
        lr: {{names: [learning rate], mechanisms: [steps overshoot]}}
"""


def test_inquiry_rubric_errors_are_specific():
    def rubric(dataset="dataset: csxa\n", check="variance", baseline="lr: 0.1"):
        return parse_rubric(RUBRIC.format(dataset=dataset, check=check, baseline=baseline))

    assert rubric().part("inquiry").points == 3
    with pytest.raises(RubricError, match=r"baseline variables epochs have no entry under `variables`"):
        rubric(baseline="lr: 0.1, epochs: 3")
    with pytest.raises(RubricError, match=r":\d+: .*did you mean 'variance'"):
        rubric(check="varience")
    with pytest.raises(RubricError, match="needs `dataset:`"):
        rubric(dataset="")


# ---- executed notebooks ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded(demo_run):
    """The demo's inquiry cohort, graded in the sandbox: the reference design (the learning rate
    only), a design that also shortens training (two variables), and a change inside the noise
    claimed as an improvement."""
    return demo_run.course, demo_run.run.results(ASSIGNMENT)


def _executed(result):
    from pathlib import Path

    return nbformat.read(Path(result.output_dir) / "work" / f"{ASSIGNMENT}.ipynb", as_version=4)


def _rescored(course, result, reflection: str):
    """The executed notebook with another reflection (a markdown cell: its text does not change
    what ran), scored again with the same evaluation."""
    nb = _replace(_executed(result), "reflection", reflection)
    part = load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml").part("inquiry")
    return {c["name"]: c for c in score_inquiry(part, ScoringInput("tiny", nb, result.evaluation)).details["checks"]}


def _unmeasured(log) -> float:
    """A macro-F1 no run measured: the value farthest from everything the log holds."""
    values = all_quotable(log, 0.01).values()
    best = max((c / 100 for c in range(5, 96)), key=lambda c: min(abs(c - v) for v in values))
    assert min(abs(best - v) for v in values) > 0.03
    return best


def _reflection_quoting(log, invent: bool = False) -> str:
    m = measured(log, "macro_f1", 0.01)
    before = _unmeasured(log) if invent else m.baseline_mean
    (name, (old, new)), = [(k, (log["baseline"][k], v)) for k, v in log["variant"].items() if log["baseline"][k] != v][:1]
    word = "fell" if m.change < 0 else "rose"
    return (f"I changed the learning rate from {old:g} to {new:g}. The mean macro-F1 {word} from "
            f"{before:.2f} to {m.variant_mean:.2f} over the two seeds, whose results differ by "
            f"{m.spread:.2f} at most, so the seed-to-seed variance is real. Smaller steps leave the network "
            "undertrained after the same number of epochs.")


def test_executed_one_variable_experiment_is_checked_and_explained(course, graded):
    work, by = graded
    result = by["alice_reference"]
    assert result.status == "graded", result.message
    part = {p.id: p for p in result.parts}
    assert part["tests"].points == 1
    checks = {c["name"]: c for c in part["inquiry"].details["checks"]}
    for name in ("one_variable", "names_variable", "states_hypothesis", "mechanism", "variance"):
        assert checks[name]["passed"], (name, checks[name]["explanation"])
    log = result.evaluation["inquiry"]["log"]
    assert [r["config"] for r in log["runs"]] == ["baseline", "baseline", "variant", "variant"]
    assert not part["inquiry"].details["flags"], "the exported model is the logged variant's"
    # quoted numbers that match the measured runs, and the same reflection with a wrong one
    matching = _rescored(course, result, _reflection_quoting(log))
    assert matching["numbers_match"]["passed"] and matching["direction_matches"]["passed"]
    wrong = _rescored(course, result, _reflection_quoting(log, invent=True))
    assert not wrong["numbers_match"]["passed"] and "match no run" in wrong["numbers_match"]["explanation"]
    html = (work.feedback_dir / "alice_reference" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "exactly one variable differs from the baseline" in html and "changed lr 0.02 -&gt; 0.005" in html
    with Gradebook(work.db_url, work.course_id) as gb:
        grade = gb.find_grade("reflection", ASSIGNMENT, ASSIGNMENT, "alice_reference")
        assert grade.auto_score == pytest.approx(part["inquiry"].points)


def test_executed_two_variable_experiment_loses_the_design_points(course, graded):
    _, by = graded
    result = by["lena_two_variables"]
    assert result.status == "graded", result.message
    part = {p.id: p for p in result.parts}["inquiry"]
    checks = {c["name"]: c for c in part.details["checks"]}
    assert not checks["one_variable"]["passed"]
    assert "lr 0.02 -> 0.005" in checks["one_variable"]["explanation"] and "epochs 6 -> 3" in checks["one_variable"]["explanation"]
    assert not checks["names_variable"]["passed"]   # the reflection never mentions the epochs
    assert part.points < by["alice_reference"].parts[1].points
    log = result.evaluation["inquiry"]["log"]
    assert log["variant"]["epochs"] == 3
    rescored = _rescored(course, result, _reflection_quoting(log))
    assert rescored["numbers_match"]["passed"] and not rescored["one_variable"]["passed"]
    assert not _rescored(course, result, _reflection_quoting(log, invent=True))["numbers_match"]["passed"]


def test_executed_change_inside_the_noise_claimed_as_a_gain_loses_the_evidence_points(graded):
    _, by = graded
    result = by["mike_overclaims"]
    assert result.status == "graded", result.message
    checks = {c["name"]: c for c in {p.id: p for p in result.parts}["inquiry"].details["checks"]}
    assert checks["one_variable"]["passed"] and checks["names_variable"]["passed"], checks
    m = measured(result.evaluation["inquiry"]["log"], "macro_f1", 0.01)
    assert m.direction == "unclear", "class weights off stays inside the seed spread on tiny"
    assert not checks["direction_matches"]["passed"] and "within the run-to-run spread" in checks["direction_matches"]["explanation"]
    assert not checks["variance"]["passed"]
