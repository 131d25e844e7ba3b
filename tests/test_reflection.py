"""Reflection scorer on realistic CNN-course answers, with the real (offline) embedding model."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from autograder.reflection import (
    REFLECTION_SCHEMA,
    Calibration,
    CalibrationError,
    SpecError,
    fit_calibration,
    fit_course,
    fit_pairs,
    near_duplicates,
    spec_from_dict,
    suggest,
    suggest_many,
)
from autograder.reflection.embedding import embed, load_model

CNN = {
    "id": "reflection_cnn_vs_fc",
    "question": "Why does a CNN need far fewer parameters than a fully connected network on images?",
    "points": 4,
    "expected_words": [20, 150],
    "reference_answers": [
        "Convolutions share weights across positions: the same small filter is applied at every "
        "location of the image, so its parameters are reused instead of learned separately for each "
        "pixel. Each unit is also connected only to a local receptive field, a small patch of the "
        "input, rather than to every input pixel, so the number of weights does not grow with the "
        "image size."
    ],
    "criteria": [
        {"name": "weight_sharing", "points": 2, "phrasings": [
            "weight sharing", "shared weights", "same weights at every position",
            "the same filter is applied at every position", "the kernel is reused across the image"]},
        {"name": "local_connectivity", "points": 2, "phrasings": [
            "local receptive field", "locally connected", "small local patch",
            "each neuron sees only a small patch of the input",
            "a unit is connected to a small neighbourhood of pixels, not to all pixels"]},
    ],
    "misconceptions": [
        {"name": "pooling_learns", "penalty": 1, "phrasings": [
            "pooling layers have many learned weights", "pooling learns the parameters"]},
    ],
}

OVERFIT = {
    "id": "reflection_overfitting_augmentation",
    "question": "After your experiment the training accuracy was 99% but the validation accuracy was "
                "only 70%. What is happening, and how does data augmentation help?",
    "points": 3,
    "expected_words": [20, 150],
    "reference_answers": [
        "The model is overfitting: it memorises the training images instead of learning features "
        "that generalise, hence the large gap between training and validation accuracy. Data "
        "augmentation creates new, slightly changed training images with random flips, crops and "
        "rotations, which increases the variety of the training set and acts as a regulariser, so the "
        "network learns invariant features and validation accuracy improves."
    ],
    "criteria": [
        {"name": "overfitting", "points": 1, "phrasings": [
            "overfitting", "the model memorises the training data",
            "does not generalise to unseen images", "generalisation gap"]},
        {"name": "more_varied_data", "points": 1, "phrasings": [
            "new varied training examples", "random flips crops and rotations",
            "flipping and rotating images", "more training data", "more variety in the training set"]},
        {"name": "regularisation", "points": 1, "phrasings": [
            "acts as a regulariser", "regularization", "learn invariant features",
            "harder to memorise the training images", "generalises better"]},
    ],
    "misconceptions": [
        {"name": "augment_validation", "penalty": 1, "phrasings": [
            "augment the validation set", "apply augmentation to the test data"]},
    ],
}

LEARNING_RATE = {
    "id": "reflection_learning_rate",
    "question": "In your experiment the loss exploded to NaN with learning rate 1.0 but decreased "
                "slowly with 0.0001. Explain both observations.",
    "points": 2,
    "expected_words": [20, 120],
    "reference_answers": [
        "With a learning rate of 1.0 the update steps are too large: each step overshoots the "
        "minimum, so the loss grows and diverges until the numbers overflow to NaN. With 0.0001 the "
        "steps are tiny, so gradient descent makes very little progress per iteration and converges "
        "slowly."
    ],
    "criteria": [
        {"name": "overshooting", "points": 1, "phrasings": [
            "steps are too large", "overshoots the minimum", "the updates diverge",
            "jumps over the minimum"]},
        {"name": "tiny_steps", "points": 1, "phrasings": [
            "steps are too small", "tiny updates", "little progress per iteration",
            "needs many more iterations to converge"]},
    ],
}

ANSWERS = {
    "cnn": {
        "good": "Because a convolutional layer slides the same small filter over the whole image, the "
                "weights are shared between all positions, so only the few kernel values have to be "
                "learned. Also every neuron only looks at a small local patch of the input (its "
                "receptive field) instead of being connected to all pixels like in a dense layer.",
        "partial": "In a convolution the filter slides over the image and the same weights are used at "
                   "every location, so the number of parameters does not depend on how big the image "
                   "is. That is why CNNs are much smaller.",
        "wrong": "CNNs need fewer parameters because the pooling layers learn most of the weights and "
                 "the ReLU activation removes unnecessary neurons, which also makes training faster on "
                 "a GPU.",
        "empty": "",
    },
    "overfit": {
        "good": "The network is overfitting: it memorised the training images, so it does not "
                "generalise to the validation images. Augmentation generates new training examples "
                "with random flips, crops and colour changes, so the model sees more varied data and it "
                "becomes harder to memorise them; it has to learn features that are invariant to these "
                "changes, which closes the gap.",
        "partial": "This is overfitting, the model learned the training set by heart and performs much "
                   "worse on images it has not seen before. I am not sure what augmentation does "
                   "exactly.",
        "wrong": "The learning rate was too high so the validation accuracy is lower than the training "
                 "accuracy. Data augmentation makes the training faster because the images become "
                 "smaller.",
        "empty": "   ",
    },
    "lr": {
        "good": "With learning rate 1.0 every update step is far too large, so gradient descent "
                "overshoots the minimum, the loss grows each step and finally overflows to NaN. With "
                "0.0001 the steps are tiny, so each iteration makes very little progress and it needs "
                "many more epochs to converge.",
        "partial": "A learning rate of 1.0 is too big, so the optimizer jumps over the minimum and the "
                   "loss diverges to NaN. For the small one I don't know why it was slow.",
        "wrong": "The NaN came from a bug in the data loader that produced empty batches, and with "
                 "0.0001 the GPU was slower because of the memory usage.",
        "empty": "TODO",
    },
}

SPECS = {"cnn": CNN, "overfit": OVERFIT, "lr": LEARNING_RATE}

FILLER = (
    "Convolutional neural networks are a very important topic in deep learning and they are used "
    "in many applications such as self-driving cars, medical imaging and face recognition. "
)


@pytest.fixture(scope="session", autouse=True)
def model():
    """Load the embedding model once for the whole session."""
    return load_model()


@pytest.fixture(scope="session")
def specs():
    return {key: spec_from_dict(d) for key, d in SPECS.items()}


@pytest.fixture(scope="session")
def honest(specs):
    """Suggestions for the honest answers, one batch per question."""
    return {key: suggest_many(ANSWERS[key], specs[key]) for key in SPECS}


# ---------------------------------------------------------------- honest answers


@pytest.mark.parametrize("key", list(SPECS))
def test_good_partial_wrong_empty_are_ordered(honest, key):
    s = honest[key]
    points = {kind: s[kind].points for kind in s}
    assert points["good"] > points["partial"] > points["wrong"] >= points["empty"] == 0, points
    assert points["good"] >= 0.75 * s["good"].max_points
    assert points["wrong"] <= 0.25 * s["wrong"].max_points


@pytest.mark.parametrize("key", list(SPECS))
def test_honest_answers_are_not_flagged_and_explain_themselves(honest, specs, key):
    for kind in ("good", "partial", "wrong"):
        assert honest[key][kind].flags == [], (kind, honest[key][kind].flags)
    good = honest[key]["good"]
    assert not good.needs_review and good.confidence >= 0.6
    # Every criterion is met by a sentence of the answer, and the reasons quote it.
    assert set(good.criteria_met) == {c.name for c in specs[key].criteria}
    for name, sentence in good.criteria_met.items():
        assert sentence in ANSWERS[key]["good"]
        assert any(name in r and sentence in r for r in good.reasons)


def test_partial_answer_names_the_missing_criterion(honest):
    partial = honest["cnn"]["partial"]
    assert set(partial.criteria_met) == {"weight_sharing"}
    assert any(r.startswith("missing local_connectivity") for r in partial.reasons)


def test_misconception_costs_points_and_is_explained(honest):
    wrong = honest["cnn"]["wrong"]
    assert any(r.startswith("misconception pooling_learns") for r in wrong.reasons)


def test_empty_and_placeholder_answers_are_zero_without_review(honest, specs):
    """Nothing to read is 0 and needs no human (issue 19: a review of an empty cell wastes a look)."""
    for key in SPECS:
        empty = honest[key]["empty"]
        assert empty.points == 0 and empty.flags == ["empty"] and not empty.needs_review
    placeholders = ["NO ANSWER", "idk", "-", "see above", "I don't know.", "?", "N/A"]
    for s in suggest_many(dict(enumerate(placeholders)), specs["cnn"]).values():
        assert s.points == 0 and s.flags == ["empty"] and not s.needs_review


def test_question_words_are_not_evidence(specs):
    """Repeating the question's words ('fully connected') does not meet 'locally connected'."""
    s = suggest("A CNN needs far fewer parameters than a fully connected network on images because "
                "it is a better and more modern kind of network for this task.", specs["cnn"])
    assert s.criteria_met == {}
    assert s.points <= 1


# ---------------------------------------------------------------- gaming


def _gamed(key, spec):
    good, partial = ANSWERS[key]["good"], ANSWERS[key]["partial"]
    keywords = ", ".join(p for c in spec.criteria for p in c.phrasings if len(p.split()) <= 3)
    return {
        "question_pasted": spec.question,
        "keyword_list": keywords,
        "padding": good + " " + FILLER * 12,
        "reference_copy": spec.reference_answers[0],
        "contradiction": good + " Actually, no: that is wrong, the opposite is true.",
        "empty": "",
        "repeated": " ".join([partial] * 4),
    }


EXPECTED_FLAG = {
    "question_pasted": "question_pasted",
    "keyword_list": "keyword_list",
    "padding": "padding",
    "reference_copy": "reference_copy",
    "contradiction": "contradiction",
    "empty": "empty",
    "repeated": "padding",
}


@pytest.mark.parametrize("key", ["cnn", "overfit"])
def test_gaming_is_flagged_and_sent_to_a_human(specs, honest, key):
    """Every gaming form is flagged and routed to review. Issue 19: a flag no longer cuts the
    evidence-based points (honest answers trip the detectors too); only the empty answer, which
    is certain, is set to 0 (and needs no review). A pasted question has no evidence, so no points."""
    spec = specs[key]
    gamed = suggest_many(_gamed(key, spec), spec)
    partial_points = honest[key]["partial"].points
    for form, s in gamed.items():
        assert EXPECTED_FLAG[form] in s.flags, (form, s.flags)
        assert s.needs_review == (form != "empty"), form
        assert any(r.startswith(f"flag {EXPECTED_FLAG[form]}") for r in s.reasons)
        assert s.points == round(s.share_before_caps * s.max_points * 4) / 4 or form == "empty", form
    assert gamed["empty"].points == 0
    assert gamed["question_pasted"].points <= partial_points
    assert gamed["question_pasted"].points <= 0.25 * spec.points


def test_contradicting_a_criterion_is_flagged(specs, honest):
    answer = (ANSWERS["cnn"]["good"] + " But the weights are not shared, every position has its own "
              "separate filter weights.")
    s = suggest(answer, specs["cnn"])
    assert "contradiction" in s.flags and s.needs_review
    # the criterion said both ways is mixed evidence: it earns less than when said once
    assert s.points < honest["cnn"]["good"].points
    assert s.confidence < honest["cnn"]["good"].confidence


def test_restating_the_question_first_is_not_gaming(specs, honest):
    spec = specs["cnn"]
    s = suggest(spec.question + " " + ANSWERS["cnn"]["good"], spec)
    assert "question_pasted" not in s.flags
    assert s.points == honest["cnn"]["good"].points


# ---------------------------------------------------------------- near-duplicates


def test_near_duplicates_found_and_short_answers_exempt():
    base = ANSWERS["cnn"]["good"]
    edited = (base.replace("Because a convolutional layer", "Since a conv layer")
                  .replace("Also every neuron", "Moreover each neuron"))
    answers = {
        "s1": base,
        "s2": edited,
        "s3": ANSWERS["cnn"]["partial"],
        "s4": "Weight sharing and local connectivity.",
        "s5": "Weight sharing and local connectivity.",
        "s6": ANSWERS["overfit"]["good"],
    }
    pairs = near_duplicates(answers)
    assert [(a, b) for a, b, _ in pairs] == [("s1", "s2")], pairs
    assert pairs[0][2] >= 0.9
    # Same meaning written independently stays below the threshold.
    assert near_duplicates({"a": ANSWERS["cnn"]["good"], "b": ANSWERS["cnn"]["partial"]}) == []
    # The short canonical answers are a pair once they are long enough to count.
    assert ("s4", "s5") in {(a, b) for a, b, _ in near_duplicates(answers, min_words=3)}


# ---------------------------------------------------------------- calibration

GRADED = [  # a strict teacher: half of the answers' criteria are not worth much to them
    (ANSWERS["cnn"]["good"], 3.0),
    (ANSWERS["cnn"]["partial"], 1.0),
    (ANSWERS["cnn"]["wrong"], 0.0),
    ("Each neuron in a convolutional layer is only connected to a small neighbourhood of pixels "
     "in the previous layer, while in a fully connected network it is connected to all of them.", 1.0),
    ("The same kernel is reused across the image, so weights are shared; and each output only "
     "depends on a small local patch, its local receptive field.", 3.0),
    ("It is because of the pooling layers and the activation functions.", 0.0),
]


@pytest.fixture(scope="session")
def calibration(specs):
    return fit_calibration(specs["cnn"], GRADED)


def test_calibration_changes_the_mapping(calibration, specs, honest):
    assert calibration.n_graded == 6
    assert calibration.apply(0.6) < 0.6  # strict: a half-good answer is worth less than half
    s = suggest(ANSWERS["cnn"]["partial"], specs["cnn"], calibration)
    assert s.points < honest["cnn"]["partial"].points
    assert any("calibrated on 6 hand-graded answers" in r for r in s.reasons)


def test_calibration_round_trips_through_json(calibration, specs):
    restored = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert restored == calibration
    answer = "Filters are shared over the image, so a conv layer has few weights."
    assert suggest(answer, specs["cnn"], restored) == suggest(answer, specs["cnn"], calibration)


def test_calibration_rejects_bad_input(specs, calibration):
    with pytest.raises(CalibrationError, match="at least 2"):
        fit_calibration(specs["cnn"], GRADED[:1])
    with pytest.raises(CalibrationError, match="outside 0..4"):
        fit_calibration(specs["cnn"], [("a", 1.0), ("b", 5.0)])
    with pytest.raises(CalibrationError, match="version"):
        Calibration.from_dict({"knots_x": [0, 1], "knots_y": [0, 1]})
    bad = calibration.to_dict() | {"knots_x": [0.0, 1.0], "knots_y": [1.0, 0.0]}
    with pytest.raises(CalibrationError, match="non-decreasing"):
        Calibration.from_dict(bad)
    with pytest.raises(ValueError, match="fitted for"):
        suggest("x y z", specs["overfit"], calibration)


# ---------------------------------------------------------------- spec


def test_reference_only_items_get_criteria_from_the_reference():
    """Issue 19: an item with only a reference answer is valid; each sentence of the reference
    becomes a criterion of equal points."""
    spec = spec_from_dict(_without("criteria") | {"misconceptions": []})
    assert [c.name for c in spec.criteria] == [f"reference_point_{i}" for i in (1, 2)]
    assert sum(c.points for c in spec.criteria) == pytest.approx(spec.points)
    good, wrong = suggest_many({"good": ANSWERS["cnn"]["good"], "wrong": ANSWERS["cnn"]["wrong"]}, spec).values()
    assert good.points > wrong.points and wrong.points <= 0.25 * spec.points


def test_ordered_criterion_needs_its_order():
    spec = spec_from_dict({
        "id": "preorder", "question": "In which order does a pre-order traversal visit a binary tree's nodes?",
        "points": 1, "expected_words": [3, 40],
        "reference_answers": ["First the root, then the left subtree, then the right subtree."],
        "criteria": [{"name": "order", "points": 1, "ordered": True,
                      "phrasings": ["root, then left subtree, then right subtree"]}],
    })
    right, wrong = suggest_many({
        "right": "It visits the root first, then the whole left subtree and finally the right subtree.",
        "wrong": "It visits the left subtree first, then the root and finally the right subtree.",
    }, spec).values()
    assert right.criteria_met and right.points == 1
    assert not wrong.criteria_met and wrong.points <= 0.25


def test_schema_is_valid_and_accepts_the_example():
    jsonschema.Draft202012Validator.check_schema(REFLECTION_SCHEMA)
    jsonschema.validate(CNN, REFLECTION_SCHEMA)
    spec = spec_from_dict(CNN)
    assert spec.expected_words == (20, 150)
    assert spec.criteria[0].phrasings[0] == "weight sharing"
    assert spec.misconceptions[0].penalty == 1.0
    assert spec_from_dict({k: v for k, v in CNN.items() if k != "misconceptions"}).misconceptions == ()


def _without(key):
    return {k: v for k, v in CNN.items() if k != key}


def _with(path, value):
    d = copy.deepcopy(CNN)
    target = d
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return d


@pytest.mark.parametrize(
    "bad, message",
    [
        ("not a dict", "must be a mapping"),
        (_without("question"), "'question' is a required property"),
        (_with(["points"], -1), r"item\.points"),
        (_with(["points"], "four"), r"item\.points"),
        (_with(["expected_words"], [20]), r"item\.expected_words"),
        (_with(["expected_words"], [200, 20]), "min 200 is larger than max 20"),
        (_with(["criteria", 0, "phrasings"], []), r"item\.criteria\[0\]\.phrasings"),
        (_with(["criteria", 1, "points"], 1), "add up to 3 but the item is worth 4"),
        (_with(["criteria", 1, "name"], "weight_sharing"), "duplicate names weight_sharing"),
        (_with(["criteria", 0, "weight"], 2), "Additional properties"),
        (_with(["reference_answers"], ["  "]), r"item\.reference_answers\[0\]"),
    ],
)
def test_spec_from_dict_rejects_bad_input(bad, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(bad)


def test_embeddings_are_normalised():
    vectors = embed(["weight sharing", "local receptive field"])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors**2).sum(axis=1).max()) - 1.0) < 1e-4
    with pytest.raises(TypeError):
        embed("a single string")


def test_a_later_negated_repeat_does_not_cancel_an_asserted_concept():
    from autograder.reflection.concepts import _lexical, _prepare_sentence, phrase_stems

    wanted = [phrase_stems("the block learns what to change", frozenset())]
    asserted = _prepare_sentence("the block learns what to change about x, and if nothing should change it outputs zero",
                                 frozenset())
    assert _lexical(asserted, wanted) == (1.0, False)
    denied = _prepare_sentence("the block never learns what to change", frozenset())
    assert _lexical(denied, wanted) == (1.0, True)


# ---------------------------------------------------------------- issue 19: evidence, not policy


def test_no_evidence_earns_nothing_even_under_a_generous_calibration(specs):
    """Raw 0 maps to 0 whatever the graded answers say; off-topic text and another question's
    correct answer earn nothing."""
    generous = fit_calibration(specs["cnn"], [(a, 3.0) for a in (ANSWERS["cnn"]["wrong"], "It is faster.")]
                               + [(ANSWERS["cnn"]["good"], 4.0)], prior=[(0.0, 0.0), (1.0, 1.0)])
    assert generous.apply(0.0) == 0.0
    off_topic = ("My favourite food is pizza and I like to eat it on Fridays. The football team from our town "
                 "won the match last weekend.")
    for answer in (off_topic, ANSWERS["lr"]["good"], "NO ANSWER"):
        s = suggest(answer, specs["cnn"], generous)
        assert s.points <= 0.25 * s.max_points or s.needs_review, (answer, s.points, s.reasons)
    assert suggest(off_topic, specs["cnn"], generous).points == 0


def test_suggestion_exposes_raw_score_and_share_before_caps(honest):
    good = honest["cnn"]["good"]
    assert 0 < good.raw <= 1 and 0 < good.share_before_caps <= 1
    assert good.points == pytest.approx(round(good.share_before_caps * 4 * 4) / 4)


def test_course_calibration_pools_items_and_survives_equal_grades(specs):
    """An item whose graded answers all got the same grade gets the course's curve shaped by
    the other items; fitting it alone says why it cannot."""
    lr_all_full = [(ANSWERS["lr"]["good"], 2.0), (ANSWERS["lr"]["partial"], 2.0)]
    with pytest.raises(CalibrationError, match="same points"):
        fit_calibration(specs["lr"], lr_all_full)
    cals = fit_course([(specs["cnn"], GRADED), (specs["lr"], lr_all_full), (specs["overfit"], [])])
    assert set(cals) == {"reflection_cnn_vs_fc", "reflection_learning_rate", "reflection_overfitting_augmentation"}
    lr = cals["reflection_learning_rate"]
    assert lr.n_graded == 2 and lr.apply(0.0) == 0.0 and lr.spec_id == "reflection_learning_rate"
    assert lr.knots_y == cals["reflection_cnn_vs_fc"].knots_y   # too few of its own: the pooled curve
    assert suggest(ANSWERS["lr"]["wrong"], specs["lr"], lr).points <= 0.5
    # (raw, points) pairs are enough: no answer text needed, and a per-item fit with a prior
    cal = fit_pairs([(0.1, 0.0), (0.5, 0.5), (0.9, 1.0)] * 3, "x", prior=[(0.3, 1.0)])
    assert cal.n_graded == 9 and cal.step == 0.5 and cal.apply(0.9) == 1.0
    assert 0 < cal.local_error(0.9) < cal.local_error(0.5)  # the prior disagrees at 0.3-0.5
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


def test_exemplars_are_bounded_and_keep_every_grade():
    from autograder.reflection.calibration import MAX_EXEMPLARS, bounded_exemplars

    graded = [(f"answer {i}", 1.0) for i in range(200)] + [("the only zero", 0.0)]
    kept = bounded_exemplars(graded)
    assert len(kept) == MAX_EXEMPLARS and ("the only zero", 0.0) in kept


HONEST_SHAPES = {  # honest answers that used to trip a detector
    "contrast": ("What is the difference between a while loop and a do-while loop?",
                 "A do-while loop always runs its body at least once, a while loop checks first.",
                 "A while loop may never run its body; a do-while loop always runs it at least once."),
    "contrast_rates": ("What happens when the learning rate is too high or too low?",
                       "Too high a rate overshoots and oscillates, too low a rate converges slowly.",
                       "Too high a learning rate oscillates and does not converge. Too low a learning rate "
                       "converges very slowly."),
    "uses_question_words": ("Where do C programs begin execution?", "Execution starts in the main function.",
                            "Programs begin execution at main."),
    "uses_the_reference_words": ("What does a compiler do?", "It translates source code into machine code.",
                                 "A compiler translates source code into machine code before the program runs."),
    "formula": ("How is the weight updated in gradient descent?", "w = w - lr * gradient",
                "w_new = w_old - lr * dL/dw, so we step against the gradient"),
    "bullets": ("Name two ways to reduce overfitting.", "Data augmentation and dropout.",
                "- data augmentation with flips and crops\n- dropout between the dense layers"),
    "long_correct_list": ("Name the stages of the water cycle.", "Evaporation, condensation, precipitation.",
                          "First the sun heats water so it evaporates from lakes and seas. Then the vapour rises, "
                          "cools and condenses into clouds. Then it falls as precipitation: rain, snow or hail. "
                          "Finally it collects in rivers, lakes and the ground and flows back to the sea, and "
                          "the cycle starts again with evaporation."),
}


@pytest.mark.parametrize("shape", list(HONEST_SHAPES))
def test_honest_answer_shapes_are_not_flagged(shape):
    question, reference, answer = HONEST_SHAPES[shape]
    spec = spec_from_dict({"id": shape, "question": question, "points": 2, "reference_answers": [reference],
                           "expected_words": [1, 30]})
    s = suggest(answer, spec)
    assert s.flags == [], (shape, s.flags)
    assert s.points >= 1, (shape, s.points, s.reasons)


def test_a_one_word_answer_picked_from_the_question_is_kept():
    spec = spec_from_dict({"id": "oil", "question": "Does oil sink or float on water?", "points": 1,
                           "reference_answers": ["Oil floats on water because it is less dense."]})
    s = suggest("Float.", spec)
    assert "question_pasted" not in s.flags and s.points > 0


def test_a_keyword_dump_is_flagged_but_text_in_another_language_is_not(specs):
    dump = suggest("weight sharing local receptive field convolution kernel parameters pixels", specs["cnn"])
    german = suggest("Die Gewichte werden an jeder Position geteilt und jedes Neuron sieht nur einen kleinen "
                     "Ausschnitt des Bildes.", specs["cnn"])
    assert "keyword_list" in dump.flags and dump.needs_review
    assert "keyword_list" not in german.flags


# ---------------------------------------------------------------- item reliability

GOOD_CNN = [ANSWERS["cnn"]["good"], GRADED[4][0], ANSWERS["cnn"]["partial"]]


def test_item_check_counts_unreviewed_suggestions_far_from_the_teachers_grade(specs):
    """check_item suggests each graded answer with a calibration fitted without it: a teacher
    whose grades the scorer contradicts (0 for the answers it finds complete) shows up as
    misses; one who agrees with it does not."""
    from autograder.reflection.fitting import check_item

    spec = specs["cnn"]
    as_is = lambda keep: Calibration()  # noqa: E731 - the rubric's own scale, no routing by calibration
    agreeing = [(ANSWERS["cnn"]["good"], 4.0), (GRADED[4][0], 4.0), (ANSWERS["cnn"]["wrong"], 0.0), ("", 0.0)]
    contradicting = [(ANSWERS["cnn"]["good"], 0.0), (GRADED[4][0], 0.0), (ANSWERS["cnn"]["wrong"], 0.0), ("", 0.0)]
    assert check_item(spec, agreeing, as_is) == (4, 0)
    checked, missed = check_item(spec, contradicting, as_is)
    assert checked == 4 and missed == 2
    assert check_item(spec, agreeing[:1], as_is) == (0, 0)  # nothing to check against


def test_an_item_whose_graded_answers_the_scorer_missed_routes_more(specs, calibration):
    """The item's record lowers its suggestions' confidence (never raises it), says so where
    it sends an answer to review, and round-trips through JSON."""
    from dataclasses import replace

    spec = specs["cnn"]
    unchecked = replace(calibration, checked=0, missed=0)
    reliable = replace(calibration, checked=10, missed=0)
    by_chance = replace(calibration, checked=10, missed=2)  # 2 of 10 happen 9 % of the time at 5 %
    unreliable = replace(calibration, checked=10, missed=3)
    assert unchecked.reliability_penalty() == reliable.reliability_penalty() == by_chance.reliability_penalty() == 0.0
    assert unreliable.reliability_penalty() == pytest.approx((3 - 0.5) / 20)
    base = [suggest(a, spec, unchecked) for a in GOOD_CNN]
    for cal in (reliable, by_chance):
        for a, b in zip(base, (suggest(a, spec, cal) for a in GOOD_CNN)):
            assert (a.confidence, a.needs_review, a.points) == (b.confidence, b.needs_review, b.points)
    for a, b in zip(base, (suggest(a, spec, unreliable) for a in GOOD_CNN)):
        assert b.confidence == pytest.approx(max(0.0, a.confidence - 0.125), abs=1e-3)
        assert b.needs_review >= a.needs_review
    sure = max(base, key=lambda s: s.confidence)
    answer = GOOD_CNN[base.index(sure)]
    assert not sure.needs_review
    # an item whose graded answers were missed half the time: its surest suggestion goes to a human
    shaky = replace(calibration, checked=10, missed=6)
    routed = suggest(answer, spec, shaky)
    assert routed.needs_review and any("6 of its 10 hand-graded answers" in r for r in routed.reasons)
    assert Calibration.from_dict(json.loads(json.dumps(shaky.to_dict()))) == shaky


def test_fitted_calibrations_carry_the_item_check_and_old_dicts_still_load(specs, calibration):
    cals = fit_course([(specs["cnn"], GRADED), (specs["lr"], [(ANSWERS["lr"]["good"], 2.0)])])
    assert (cals["reflection_cnn_vs_fc"].checked, cals["reflection_learning_rate"].checked) == (6, 0)
    assert 0 <= cals["reflection_cnn_vs_fc"].missed <= 6
    assert calibration.checked == len(GRADED) and 0 <= calibration.missed <= calibration.checked
    old = {k: v for k, v in calibration.to_dict().items() if k not in ("checked", "missed")} | {"version": 2}
    restored = Calibration.from_dict(old)
    assert (restored.checked, restored.missed, restored.reliability_penalty()) == (0, 0, 0.0)
    with pytest.raises(CalibrationError, match="reliability"):
        Calibration.from_dict(calibration.to_dict() | {"checked": 2, "missed": 3})


def test_a_suggestion_its_nearest_graded_answers_outvote_loses_confidence(specs, calibration):
    """The five hand-graded answers most like this one got another grade: the suggestion loses
    NEAREST_DISAGREE_WEIGHT of its confidence, and says why where that sends it to review. An
    agreeing vote changes nothing, and with fewer than five graded answers there is no vote."""
    from dataclasses import replace

    from autograder.reflection.scorer import NEAREST_DISAGREE_WEIGHT, NEAREST_K, REVIEW_BELOW

    spec = specs["cnn"]
    unrelated = ["The cafeteria serves pasta on Mondays.", "My bike has a flat tyre.", "It rained all weekend.",
                 "The library closes at eight.", "We adopted a grey cat."]  # far below the neighbour line
    plain = replace(calibration, exemplars=[])
    answer = GRADED[3][0]   # suggested 1/4 at a confidence of about 0.8 by this calibration
    base = suggest(answer, spec, plain)
    assert base.points > 0 and not base.needs_review
    outvoted = suggest(answer, spec, replace(plain, exemplars=[(t, 0.0) for t in unrelated]))
    agreeing = suggest(answer, spec, replace(plain, exemplars=[(t, base.points / spec.points) for t in unrelated]))
    too_few = suggest(answer, spec, replace(plain, exemplars=[(t, 0.0) for t in unrelated[:NEAREST_K - 1]]))
    assert outvoted.confidence == pytest.approx(base.confidence - NEAREST_DISAGREE_WEIGHT, abs=1e-3)
    assert agreeing.confidence == too_few.confidence == base.confidence
    assert outvoted.needs_review and outvoted.confidence < REVIEW_BELOW
    assert any(f"the {NEAREST_K} most similar hand-graded answers got 0/4" in r for r in outvoted.reasons)


def test_the_course_review_line_follows_what_its_checks_show():
    """review_line: the lowest line at which (and above which) the checks show, with 95 %
    confidence, at most 5 % of suggestions off and unreviewed; None with too few checks."""
    from autograder.reflection.fitting import REVIEW_LINES, Check, review_line

    right = [Check(confidence=0.5, flagged=False, off=False)] * 200
    assert review_line(right) == 0.4   # the lowest line offered
    assert review_line(right[:50]) is None   # 50 checks cannot show 5 % at 95 %: the default
    # 30 sure-looking misses between 0.6 and 0.7: the line rises above them
    shaky = right + [Check(confidence=0.65, flagged=False, off=True)] * 30
    assert review_line(shaky) == 0.7
    # the same misses flagged go to review anyway, and do not move the line
    assert review_line(right + [Check(confidence=0.65, flagged=True, off=True)] * 30) == 0.4
    # misses that look sure everywhere: no line is safe, and the strictest stands (not the default)
    assert review_line(right + [Check(confidence=0.99, flagged=False, off=True)] * 30) == max(REVIEW_LINES)
    assert review_line(right[:58]) is None and review_line(right[:59]) == 0.4   # 59 checks can show it


def test_a_suggestion_is_routed_by_its_courses_review_line(specs, calibration):
    from dataclasses import replace

    from autograder.reflection.calibration import FORMAT_VERSION
    from autograder.reflection.scorer import REVIEW_BELOW

    spec = specs["cnn"]
    answer = GRADED[3][0]
    plain = replace(calibration, exemplars=[], checked=0, missed=0)
    base = suggest(answer, spec, plain)
    assert REVIEW_BELOW <= base.confidence < 0.9 and not base.needs_review
    strict = suggest(answer, spec, replace(plain, review_below=0.9))
    assert strict.needs_review and strict.confidence == base.confidence
    assert any("below the review line 0.90 that calibration set" in r for r in strict.reasons)
    weak = suggest(ANSWERS["cnn"]["partial"], spec, plain)
    assert weak.needs_review and weak.confidence > 0.3
    assert not suggest(ANSWERS["cnn"]["partial"], spec, replace(plain, review_below=0.3)).needs_review
    stored = replace(plain, review_below=0.55).to_dict()
    assert stored["version"] == FORMAT_VERSION and Calibration.from_dict(stored).review_below == 0.55
    assert Calibration.from_dict({k: v for k, v in stored.items() if k != "review_below"} | {"version": 3}).review_below is None
    with pytest.raises(CalibrationError, match="review line"):
        Calibration.from_dict(stored | {"review_below": 1.5})
    # a small course's checks cannot set a line: the default
    assert all(c.review_below is None for c in fit_course([(spec, GRADED)]).values())


def test_the_review_line_is_set_for_the_items_it_was_checked_on(specs):
    """Sixty checked answers can show a line; it goes to the item they came from, and an item
    nobody graded keeps the default (its suggestions have no graded neighbours)."""
    from autograder.reflection.fitting import REVIEW_LINES

    cals = fit_course([(specs["cnn"], GRADED * 10), (specs["lr"], [])])
    checked, fresh = cals["reflection_cnn_vs_fc"], cals["reflection_learning_rate"]
    assert checked.checked == 60 and checked.review_below in REVIEW_LINES
    assert fresh.review_below is None and (fresh.checked, fresh.missed) == (0, 0)


def test_graded_answers_with_full_points_join_the_references():
    """What the teacher gave full points is a correct answer in the students' words: the
    calibration keeps it (at most GRADED_REFERENCES_MAX), and a new answer worded like it finds
    more evidence than against the terse reference alone. Scored again, a graded answer is not
    its own reference (no reference_copy flag)."""
    from dataclasses import replace

    from autograder.reflection.calibration import GRADED_REFERENCES_MAX

    spec = spec_from_dict({
        "id": "cnn_params", "points": 2,
        "question": "Why does a convolutional layer need fewer parameters than a dense layer on an image?",
        "reference_answers": ["Small filters whose weights are shared across all positions."],
    })
    full = ("Every kernel only spans a few pixels, and the very same kernel values are slid over the whole "
            "picture and reused at every location, so the layer only has to learn a handful of numbers.")
    graded = [(full, 2.0), ("Because it uses ReLU and pooling, which are faster.", 0.0),
              ("Convolutions are newer and GPUs run them quickly.", 0.0), ("", 0.0)]
    cal = fit_course([(spec, graded)])["cnn_params"]
    assert cal.references == [full]
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))).references == [full]
    with pytest.raises(CalibrationError, match="references must be a list of strings"):
        Calibration.from_dict(cal.to_dict() | {"references": full})
    new = ("A kernel covers just a few pixels and its values are reused at every location of the picture, "
           "so only a handful of numbers has to be learned.")
    with_refs, without = suggest(new, spec, cal), suggest(new, spec, replace(cal, references=[]))
    assert with_refs.raw > without.raw
    again = suggest(full, spec, cal)
    assert "reference_copy" not in again.flags
    many = fit_course([(spec, [(f"{full} Reason {i}.", 2.0) for i in range(15)] + graded[1:])])["cnn_params"]
    assert len(many.references) == GRADED_REFERENCES_MAX
