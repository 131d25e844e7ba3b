"""The course's reading (autograder/reflection/reading.py): MiniLM's biases tuned on an
assignment's hand-graded answers, stored in the calibration file and used by every suggestion."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from autograder.reflection import CalibrationError, fit_course, spec_from_dict, suggest
from autograder.reflection import fitting, reading
from autograder.reflection.calibration import READING_KEY, calibrations_from_dict, calibrations_to_dict
from autograder.reflection.embedding import embed
from autograder.reflection.scorer import course_embedder

ITEMS = {
    "shared_weights": {
        "question": "Why does a convolutional layer need fewer parameters than a dense layer on an image?",
        "reference": "The same small filter is shared across all positions of the image.",
        "right": ["one kernel is reused at every location, so only its few values are learned",
                  "the filter weights are shared over the whole picture instead of one weight per pixel",
                  "each output uses the same small set of kernel values slid across the image",
                  "weight sharing: a single 3x3 filter is applied everywhere in the input",
                  "the convolution reuses its filter at all positions so there are few parameters",
                  "because the kernel is small and its weights are identical at every position"],
        "wrong": ["convolutional layers are faster because GPUs are optimised for them",
                  "it uses ReLU activations, which need no parameters",
                  "pooling removes half of the weights after every layer",
                  "the image is converted to grayscale first, so there is less data",
                  "dense layers store the whole dataset in their weights",
                  "a convolution has more layers, so each one is smaller"],
    },
    "overfitting": {
        "question": "What does a validation loss that rises while the training loss falls tell you?",
        "reference": "The model is overfitting: it memorises the training data and generalises worse.",
        "right": ["the network memorises the training set and stops generalising to new images",
                  "it is overfitting, so we should stop early or add regularisation",
                  "the model fits noise in the training data, so unseen data gets worse",
                  "generalisation gets worse while the fit to the training examples improves: overfitting",
                  "it learned the training images by heart, which is overfitting",
                  "the gap between training and validation loss grows because the model overfits"],
        "wrong": ["the learning rate is too small, so training is slow",
                  "the model is underfitting and needs more epochs",
                  "the validation set is too easy for the model",
                  "the GPU ran out of memory during validation",
                  "training loss always falls, so nothing is wrong",
                  "the batch size must be larger for validation to work"],
    },
}


def _items(n_right: int = 6, n_wrong: int = 6):
    items = []
    for key, d in ITEMS.items():
        spec = spec_from_dict({"id": key, "points": 2, "question": d["question"], "reference_answers": [d["reference"]]})
        graded = [(a.capitalize() + ".", 2.0) for a in d["right"][:n_right]] + \
                 [(a.capitalize() + ".", 0.0) for a in d["wrong"][:n_wrong]]
        order = np.random.default_rng(0).permutation(len(graded))   # mixed, as a teacher grades them
        items.append((spec, [graded[i] for i in order]))
    return items


def _pairs(items):
    return reading.training_pairs([(s.reference_answers, [(a, p / s.points) for a, p in g]) for s, g in items])


def _loss(pairs, embed_fn) -> float:
    a, b = embed_fn([p[0] for p in pairs]), embed_fn([p[1] for p in pairs])
    return float(np.mean(((a * b).sum(1) - np.array([p[2] for p in pairs])) ** 2))


@pytest.fixture(scope="module")
def course_fit():
    """The items calibrated with a reading, once: what each of the three readings was taught and
    became, how the checks were read, the calibrations."""
    items, taught, readings, read_checks = _items(), [], [], []
    real_learn, real_reading = fitting.learn, fitting.course_reading

    def learn(pairs):
        taught.append(pairs)
        readings.append(real_learn(pairs))
        return readings[-1]

    def course_reading(items, log=None):
        read_checks.append(real_reading(items, log)[1])
        return readings[0], read_checks[0]

    checked_with, real_checks = [], fitting.checks

    def checks(spec, graded, fit, embed_fn, fold_reading=None):
        checked_with.append(fold_reading)
        return real_checks(spec, graded, fit, embed_fn, fold_reading)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fitting, "learn", learn)
        mp.setattr(fitting, "course_reading", course_reading)
        mp.setattr(fitting, "checks", checks)
        cals = fit_course(items, learn_reading=True)
    return SimpleNamespace(items=items, taught=taught, readings=readings, fold_reading=read_checks[0], cals=cals,
                           checked_with=checked_with)


@pytest.fixture(scope="module")
def learned(course_fit):
    """The items and the reading learned from all their graded answers."""
    return course_fit.items, course_fit.readings[0]


def test_training_pairs_say_what_the_teacher_counts_as_alike():
    refs = ["Filters are shared."]
    graded = [("Kernels are reused everywhere.", 1.0), ("It is faster on GPUs.", 0.0),
              ("It uses ReLU.", 0.0), ("Half right: kernels.", 0.5), ("   ", 1.0)]
    pairs = {(a, b): t for a, b, t in reading.training_pairs([(refs, graded)])}
    assert pairs[("Kernels are reused everywhere.", "Filters are shared.")] == 1.0
    assert pairs[("It is faster on GPUs.", "Filters are shared.")] == 0.0
    assert pairs[("Kernels are reused everywhere.", "It is faster on GPUs.")] == 0.0
    assert pairs[("Kernels are reused everywhere.", "Half right: kernels.")] == 0.5
    assert ("It is faster on GPUs.", "It uses ReLU.") not in pairs   # two wrong answers need not be alike
    assert not any("   " in key for key in pairs)                    # an empty answer teaches nothing
    many = [(f"Answer {i}.", float(i % 2)) for i in range(60)]
    assert len(reading.training_pairs([(refs, many)])) == reading.MAX_PAIRS_PER_ITEM


def test_a_reading_is_learned_from_the_pairs_and_reads_them_as_the_teacher_does(learned):
    items, tuned = learned
    pairs = _pairs(items)
    assert tuned is not None and tuned.pairs == len(pairs)
    assert sum(v.size for v in tuned.biases.values()) == 26_112   # the biases only
    assert _loss(pairs, reading.embedder(tuned)) < 0.8 * _loss(pairs, embed)
    # answers it never saw: right ones move toward the reference, wrong ones away
    ref = [ITEMS["shared_weights"]["reference"]]
    right = ["A single small kernel is applied at each position of the picture.",
             "Its few filter values are reused all over the image."]
    wrong = ["GPUs compute convolutions fast.", "The image gets smaller after pooling, so it is cheaper."]

    def gap(embed_fn) -> float:
        r = embed_fn(ref)[0]
        return float((embed_fn(right) @ r).mean() - (embed_fn(wrong) @ r).mean())

    assert gap(reading.embedder(tuned)) > gap(embed) + 0.05
    assert reading.learn(pairs[: reading.MIN_PAIRS - 1]) is None   # too few pairs: MiniLM as shipped


def test_the_course_calibration_carries_its_reading_once_and_suggestions_use_it(course_fit):
    items, cals = course_fit.items, course_fit.cals
    tuned = cals["shared_weights"].reading
    assert tuned is course_fit.readings[0] and all(c.reading is tuned for c in cals.values())
    assert all(c.checked == len(g) for (_, g), c in zip(items, cals.values()))
    stored = json.loads(json.dumps(calibrations_to_dict(cals)))
    assert stored[READING_KEY]["pairs"] == tuned.pairs
    assert {d["reading"] for k, d in stored.items() if k != READING_KEY} == {tuned.digest}
    back = calibrations_from_dict(stored)
    assert back["overfitting"].reading.digest == tuned.digest
    spec = items[0][0]
    answer = "Only one small filter is learned and reused at every position."
    with_reading = suggest(answer, spec, back["shared_weights"])
    assert with_reading == suggest(answer, spec, cals["shared_weights"])
    assert with_reading.raw != suggest(answer, spec, replace(back["shared_weights"], reading=None)).raw
    assert course_embedder(embed, back["shared_weights"]) is reading.embedder(tuned)
    assert course_embedder(embed, replace(back["shared_weights"], reading=None)) is embed


def test_each_check_is_read_by_a_reading_learned_without_its_answer(course_fit):
    """The review line comes from checks: a check read by a reading learned from its own answer
    would look better than a new answer fares."""
    taught, readings, fold_reading = course_fit.taught, course_fit.readings, course_fit.fold_reading
    assert len(taught) == len(readings) == 3
    assert course_fit.checked_with == [fold_reading] * len(course_fit.items)   # every item's checks
    texts = [{t for p in pairs for t in p[:2]} for pairs in taught]
    for _, graded in course_fit.items:
        for i, (answer, _) in enumerate(graded):
            assert answer in texts[0]
            # the second reading never saw the even-numbered answers, the third the odd ones
            assert (answer in texts[1]) == (i % 2 == 1) and (answer in texts[2]) == (i % 2 == 0)
            # and `checks` reads an answer's fold (its index modulo the folds) with the one that did not see it
            fold = i % min(len(graded), fitting.CHECK_FOLDS)
            assert fold_reading(fold) is reading.embedder(readings[1 if i % 2 == 0 else 2])
    assert fold_reading(0) is not reading.embedder(readings[0])


def test_a_stored_reading_that_does_not_fit_the_model_is_refused(learned):
    items, tuned = learned
    cals = fit_course(items[:1], learn_reading=False)
    stored = calibrations_to_dict({k: replace(c, reading=tuned) for k, c in cals.items()})
    good = stored[READING_KEY]
    name = next(iter(good["biases"]))
    cases = {
        "the model has no bias": {**good, "biases": {"no.such.bias": good["biases"][name]}},
        "has 2 values": {**good, "biases": {name: "AAAAAAAAAAA="}},
        "is not base64": {**good, "biases": {name: "not base64!"}},
        "version 1, method 'bitfit'": {**good, "version": 7},
    }
    for words, broken in cases.items():
        with pytest.raises(CalibrationError, match=words):
            calibrations_from_dict({**stored, READING_KEY: broken})
    nan = np.frombuffer(__import__("base64").b64decode(good["biases"][name]), "<f4").copy()
    nan[0] = np.nan
    with pytest.raises(CalibrationError, match="not finite"):
        calibrations_from_dict({**stored, READING_KEY: {**good, "biases": {name: __import__("base64").b64encode(nan.tobytes()).decode()}}})
    without = {k: v for k, v in stored.items() if k != READING_KEY}
    with pytest.raises(CalibrationError, match="part 'shared_weights' was fitted with the reading"):
        calibrations_from_dict(without)
