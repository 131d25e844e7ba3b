"""The theory assignment (cnn_theory): six written questions scored by the rubric's criteria with
the real reflection scorer (the offline MiniLM model). tests/test_reflection.py covers the engine on
its own small specs; these tests are about this assignment's criteria working on realistic answers:
the reference verifies, hand-written good/partial/wrong answers come out in that order, gaming of
these questions is flagged and routed to review, and copied answers between students are found in pairs."""

from __future__ import annotations

import re
from dataclasses import replace

import nbformat
import pytest

from autograder.build import build_assignment
from autograder.reflection import near_duplicates, suggest_many
from autograder.reflection.embedding import load_model
from autograder.rubric import load_rubric, reflection_spec
from autograder.verify import verify_assignment

from .conftest import SANDBOXED

ASSIGNMENT = "cnn_theory"
QUESTIONS = ["cnn_vs_fc", "lenet5_legacy", "alexnet_vs_vgg", "transfer_learning", "residual_connections",
             "xray_triage"]

# Written in a student's voice, independently of the rubric's phrasings and reference answers.
ANSWERS = {
    "cnn_vs_fc": {
        "good": "In a conv layer every output unit only sees a small window of the previous layer, like 3x3 "
                "pixels, because nearby pixels belong together, whereas a dense layer wires every pixel to "
                "every unit. The same kernel is slid across the whole image so its weights are shared between "
                "all positions. Because of that a conv layer has a tiny number of weights compared with a dense "
                "layer on a 224x224 image, which would need millions, so it trains faster and overfits less. "
                "If a cat moves to the left the feature map just moves with it, and by stacking layers the "
                "network goes from edges to textures to whole object parts.",
        "partial": "A CNN uses filters that slide over the image and the same filter weights are used everywhere, "
                   "so it needs much fewer parameters than a dense network where every pixel has its own weight.",
        "wrong": "CNNs are better because they are newer and run on GPUs, and the ReLU activation makes them "
                 "faster. Also their pooling layers learn which parts of the picture are important, which a "
                 "dense network cannot do.",
    },
    "lenet5_legacy": {
        "good": "LeNet-5 was made by Yann LeCun's group in 1998 to read handwritten digits, for example zip "
                "codes and the amounts on bank checks. It is tiny by today's standards: two 5x5 conv layers "
                "with average-pooling subsampling after each, then fully connected layers of 120 and 84 units "
                "and the output, with tanh, around 60k weights. The general recipe is still what we do: "
                "conv and pooling blocks that build up features, a classifier on top, and everything learned "
                "end to end with backprop instead of hand-made features. What changed is mostly scale and "
                "details: we use ReLU instead of tanh, max pooling, batch norm and dropout, and we train much "
                "deeper models on GPUs with huge datasets like ImageNet.",
        "partial": "LeNet-5 is an early CNN from the nineties that recognized handwritten digits like MNIST. It "
                   "had a few convolution layers and some pooling and then dense layers at the end.",
        "wrong": "LeNet-5 is the network that won the ImageNet competition and started deep learning. It is "
                 "mostly used today for object detection in self-driving cars because it is very accurate.",
    },
    "alexnet_vs_vgg": {
        "good": "AlexNet (2012) was the first big ImageNet winner: 5 conv layers and 3 fully connected ones, "
                "with big filters at the start (11x11 with stride 4, then 5x5), ReLU, dropout and LRN, and it "
                "was split across two GPUs. VGG went the other way and uses only 3x3 filters, two or three in "
                "a row before each max pool, and goes to 16 or 19 layers. Putting two 3x3 convs on top of each "
                "other covers the same 5x5 area but with 18 weights instead of 25 (per channel) and with an "
                "extra ReLU in between, so you get more depth and non-linearity for fewer weights. The "
                "downside is that VGG16 ends up with around 138M parameters overall, mostly in the big dense "
                "layers, so it is slow and uses a lot of memory.",
        "partial": "AlexNet used large 11x11 filters and only 8 layers, while VGG uses small 3x3 filters and is "
                   "much deeper, with 16 layers.",
        "wrong": "AlexNet and VGG are basically the same network, VGG just has more training data. Both use "
                 "sigmoid activations and were trained on the MNIST dataset, and VGG is smaller so it is faster.",
    },
    "transfer_learning": {
        "good": "With so few images I would not train from scratch but take something like a ResNet trained "
                "on ImageNet, because its first layers already detect edges, colours and textures that are "
                "useful for pretty much any photos. First I would freeze the whole backbone, swap the last "
                "linear layer for a new one with my number of classes and train only that head. If I get more "
                "labelled data, or the head alone is not good enough, I would unfreeze the last block or two "
                "and fine-tune them with a much smaller learning rate (like 1e-4) so the pretrained weights "
                "only shift a bit. Training everything on a few hundred images would just overfit, and if my "
                "images look nothing like ImageNet, e.g. microscope images, I would need to retrain more layers.",
        "partial": "I would download a model pretrained on ImageNet and change the last layer to my number of "
                   "classes, then train it on my images. That way I don't need as much data.",
        "wrong": "Transfer learning means you transfer your images to a bigger dataset and train a new network "
                 "from the beginning with a high learning rate. The more layers you retrain the better, "
                 "because more parameters always means more accuracy.",
    },
    "residual_connections": {
        "good": "In a ResNet block the input x goes around the two or three conv layers and gets added back "
                "to their output, so the block outputs F(x) + x. The layers therefore only have to learn what "
                "to change about x (the residual) and if nothing should change they can just go to zero. When "
                "backpropagating, the addition passes the gradient straight to the earlier layers because the "
                "derivative of the identity is 1, so it doesn't get multiplied down to almost nothing like in "
                "a deep plain network. He et al. showed that plain networks with more layers got worse even on "
                "the training data, and with shortcuts they could train 152 layers.",
        "partial": "A residual connection is a skip connection: the input of a block is added to the output of "
                   "the block. This makes it easier to train deep networks like ResNet-50.",
        "wrong": "Residual connections add extra weights to the network so it can learn faster, and they "
                 "work like dropout to stop the network from overfitting on the training set.",
    },
    "xray_triage": {
        "good": "Since there are only a few labelled X-rays I would take a CNN pretrained on ImageNet (or even "
                "better on a public chest X-ray dataset) and fine-tune it, with augmentation like small "
                "rotations and brightness changes, and a weighted loss or oversampling because the urgent "
                "cases are rare. I would not look at accuracy, since predicting 'not urgent' for everything "
                "already scores high; instead I would check the sensitivity for the urgent class, the "
                "confusion matrix and how many urgent scans are missed, and then pick the threshold so that "
                "almost no urgent case is missed, even if that means more false alarms. In the hospital the "
                "model should only reorder the reading queue: a radiologist still reads every scan and makes "
                "the diagnosis. Before going live I would test it on X-rays from that hospital's own machines "
                "and keep monitoring it, because scanners and patients change over time.",
        "partial": "I would use transfer learning with a pretrained ResNet and data augmentation because there "
                   "are only a few labels. To evaluate it I would use a test set and look at the accuracy and "
                   "the confusion matrix.",
        "wrong": "I would train a big CNN from scratch on the images for many epochs. If the accuracy is above "
                 "95% the model is good enough and the hospital can let it diagnose the X-rays on its own, "
                 "which saves the cost of radiologists.",
    },
}

# Another student's good answer to each question, in other words.
OTHER_GOOD = {
    "cnn_vs_fc": (
        "Fully connected layers treat every pixel independently, so for a 256x256 RGB image one neuron "
        "already needs about 200k weights and the model memorizes instead of generalizing. Convolutions "
        "exploit that pixels close to each other are related: a neuron is only connected to a small "
        "region of the input. The filter is also shared over the entire image, so one cat-ear detector "
        "works in every corner, and moving the input moves the output in the same way. Stacking conv "
        "layers makes the receptive field grow, so later layers see bigger structures built from the "
        "simple edges of the first layers."
    ),
    "lenet5_legacy": (
        "LeNet-5 is the classic network by LeCun et al. from 1998 for recognizing digits (MNIST, and it "
        "was used by banks to read cheques). It has 7 layers: C1 conv, S2 subsampling, C3 conv, S4 "
        "subsampling, C5, F6 and the output, with around 60,000 parameters and tanh activations. Its main"
        " ideas, convolution to extract local features, pooling to downsample and fully connected layers "
        "to classify, trained end to end with backpropagation, are exactly what AlexNet, VGG and ResNet "
        "still do. Modern CNNs differ by using ReLU and max pooling, being much deeper and trained on "
        "GPUs with datasets like ImageNet that did not exist then."
    ),
    "alexnet_vs_vgg": (
        "AlexNet, winner of ILSVRC 2012, used 5 convolutional and 3 dense layers with a big 11x11 first "
        "filter, ReLU instead of tanh, dropout in the dense layers, overlapping pooling and was trained "
        "on two GPUs. VGG-16 replaced all the big kernels by 3x3 convolutions stacked in 5 blocks and "
        "went much deeper. A stack of 3x3 layers gets the same receptive field as a bigger kernel with "
        "fewer parameters and more ReLUs, which makes the decision function more discriminative. The cost"
        " is that VGG has a huge number of parameters, around 138 million, and needs a lot of memory and "
        "computation."
    ),
    "transfer_learning": (
        "Training a CNN from zero on a few hundred images would massively overfit, so I would take a "
        "network trained on ImageNet and reuse its features. The simplest option is to freeze all conv "
        "layers and only train a new fully connected output layer for my classes. If that underfits and I"
        " have a bit more data, I unfreeze the last conv block and fine-tune it with a low learning rate "
        "so I don't wreck the pretrained weights. The more different my data is from ImageNet (for "
        "example medical images) and the more data I have, the more layers I would retrain."
    ),
    "residual_connections": (
        "A residual connection is a shortcut that adds a block's input directly to its output: y = F(x) +"
        " x. So the convolution layers only need to model the residual, and an identity mapping is easy "
        "because F can just be zero. During backprop the gradient of y with respect to x contains the "
        "term 1 from the shortcut, so the gradient can go backwards through the skip path without being "
        "multiplied by the weights of every layer, and the first layers still learn. This solved the "
        "degradation problem where adding layers to a plain network made training error worse, and "
        "allowed ResNets with over 100 layers."
    ),
    "xray_triage": (
        "I would fine-tune an ImageNet-pretrained ResNet on the labelled X-rays, using augmentation and "
        "class weights because urgent cases are a small minority. For the evaluation I care most about "
        "recall on urgent cases, since missing one is much worse than a false alarm, so I'd look at the "
        "confusion matrix and sensitivity and set a low decision threshold to get sensitivity near 100%. "
        "The model should only be used to sort the list so urgent scans are seen first, a radiologist "
        "still reads every image. I would validate it on the hospital's own data before using it and "
        "monitor it afterwards, because a new scanner or different patients could shift the data."
    ),
}

# Gaming, per question: the terms without an explanation, and a sentence that takes back a
# criterion the good answer met.
KEYWORDS = {
    "cnn_vs_fc": "local connectivity, weight sharing, fewer parameters, translation equivariance, "
                 "feature hierarchy",
    "lenet5_legacy": "LeCun 1998, handwritten digits, conv pool conv pool, tanh, backpropagation, ReLU, "
                     "max pooling, GPUs, ImageNet",
    "alexnet_vs_vgg": "11x11 kernels, ReLU, dropout, two GPUs, LRN; 3x3 convolutions, 16/19 layers, "
                      "receptive field, 138M parameters",
    "transfer_learning": "ImageNet weights, frozen backbone, new head, fine-tuning, small learning rate, "
                         "overfitting, domain gap",
    "residual_connections": "skip connection, identity shortcut, F(x) + x, gradient flow, degradation, "
                            "152 layers",
    "xray_triage": "transfer learning, augmentation, class weights, sensitivity, confusion matrix, threshold, "
                   "radiologist in the loop, monitoring, dataset shift",
}
TAKE_BACK = {
    "cnn_vs_fc": "On second thought, the weights are not shared between positions; every location learns "
                 "its own kernel.",
    "lenet5_legacy": "Then again, today's networks are not trained end to end with backprop, the features "
                     "are designed by hand.",
    "alexnet_vs_vgg": "Actually, no: VGG does not use only 3x3 filters, it uses large 11x11 ones like AlexNet.",
    "transfer_learning": "But you should not freeze the backbone and train only the head, with few images "
                         "every layer has to be retrained.",
    "residual_connections": "But the input is not added to the output of the block, the shortcut only "
                            "copies it forward.",
    "xray_triage": "Then again, a radiologist does not need to read every scan, the model can decide alone.",
}
FILLER = ("Deep learning has changed computer vision a lot in the last ten years and it is used in many "
          "places such as phones, cars, hospitals and factories, and it will probably become even more "
          "important in the future. ")


def _gamed(spec, good: str) -> dict[str, str]:
    return {
        "question_pasted": spec.question,
        "keyword_list": KEYWORDS[spec.id],
        "reference_copy": spec.reference_answers[0],
        "padding": good + " " + FILLER * 10,
        "contradiction": good + " " + TAKE_BACK[spec.id],
        "empty": "",
    }


@pytest.fixture(scope="module")
def rubric(course):
    return load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml", ASSIGNMENT)


@pytest.fixture(scope="module")
def specs(rubric):
    load_model()
    return {p.id: reflection_spec(p) for p in rubric.parts}


@pytest.fixture(scope="module")
def scored(specs):
    """Honest and gamed answers to each question, scored in one batch per question."""
    return {qid: suggest_many({**ANSWERS[qid], "other_good": OTHER_GOOD[qid],
                               **_gamed(specs[qid], ANSWERS[qid]["good"])}, specs[qid])
            for qid in QUESTIONS}


@pytest.fixture(scope="module")
def reference_answers(course):
    """The model answers of the committed source notebook, by question."""
    nb = nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id") in QUESTIONS}


def test_rubric_is_six_written_questions_without_a_dataset(rubric, specs):
    assert rubric.dataset is None and not rubric.evaluates_artifacts
    assert [p.id for p in rubric.parts] == QUESTIONS and {p.kind for p in rubric.parts} == {"reflection"}
    for spec in specs.values():
        assert 3 <= len(spec.criteria) <= 4 and 1 <= len(spec.misconceptions) <= 2
        assert all(len(c.phrasings) >= 3 for c in spec.criteria)


# ---- the reference ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def course_with_it(course):
    return course if ASSIGNMENT in course.assignments else replace(course, assignments=course.assignments + (ASSIGNMENT,))


def test_reference_verifies_and_earns_most_points(course_with_it, tmp_path_factory):
    work = course_with_it.with_work(tmp_path_factory.mktemp("theory"))
    build_assignment(work, ASSIGNMENT)
    check = verify_assignment(work, ASSIGNMENT, "tiny", sandboxed=SANDBOXED, log=lambda m: None)
    assert check.ok, check.problems
    points = {p.id: p.points for p in check.result.parts}
    assert list(points) == QUESTIONS
    assert all(points[q] > 0 for q in QUESTIONS), points
    assert sum(points.values()) >= 0.75 * sum(p.max_points for p in check.result.parts), points
    assert not any(p.details.get("flags") for p in check.result.parts)


def test_release_holds_no_model_answer(course, reference_answers):
    nb = nbformat.read(course.release_notebook(ASSIGNMENT), as_version=4)
    released = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") in QUESTIONS}
    assert set(released) == set(QUESTIONS) and set(released.values()) == {"YOUR ANSWER HERE"}
    text = nbformat.writes(nb)
    assert not any(answer[:60] in text for answer in reference_answers.values())


# ---- honest answers -----------------------------------------------------------------------------

@pytest.mark.parametrize("qid", QUESTIONS)
def test_good_partial_wrong_are_ordered(scored, qid):
    s = scored[qid]
    points = {kind: s[kind].points for kind in ("good", "partial", "wrong")}
    assert points["good"] > points["partial"] > points["wrong"], points
    for good in ("good", "other_good"):
        assert s[good].points >= 0.75 * s[good].max_points, s[good].reasons
        assert s[good].points > points["partial"]
    for kind in ("good", "other_good", "partial", "wrong"):
        assert s[kind].flags == [], (kind, s[kind].flags)


def _penalties(reasons: list[str]) -> dict[str, float]:
    found = (re.match(r"misconception (\w+) \(-([\d.]+)\)", r) for r in reasons)
    return {m[1]: float(m[2]) for m in found if m}


@pytest.mark.parametrize("qid", QUESTIONS)
def test_wrong_ideas_cost_points_and_good_answers_keep_theirs(scored, specs, qid):
    s = scored[qid]
    assert _penalties(s["wrong"].reasons), s["wrong"].reasons
    assert sum(_penalties(s["good"].reasons).values()) <= 0.25, s["good"].reasons
    # the good answer meets most criteria, each quoted from the answer
    met = s["good"].criteria_met
    assert len(met) >= len(specs[qid].criteria) - 1, s["good"].reasons
    assert all(sentence in ANSWERS[qid]["good"] for sentence in met.values())


def test_named_misconceptions_are_the_ones_asserted(scored):
    assert set(_penalties(scored["residual_connections"]["wrong"].reasons)) >= {"adds_parameters"}
    assert set(_penalties(scored["xray_triage"]["wrong"].reasons)) == {"replaces_radiologist", "accuracy_is_enough"}
    assert set(_penalties(scored["alexnet_vs_vgg"]["wrong"].reasons)) >= {"sigmoid_activations"}


def test_partial_answers_name_what_is_missing(scored):
    partial = scored["xray_triage"]["partial"]
    assert {"transfer_and_imbalance", "right_metrics"} <= set(partial.criteria_met)
    missing = [r for r in partial.reasons if r.startswith("missing ")]
    assert any("threshold_for_sensitivity" in r for r in missing)
    assert any("human_in_the_loop_and_monitoring" in r for r in missing)


# ---- gaming -------------------------------------------------------------------------------------

GAMED = ["question_pasted", "keyword_list", "reference_copy", "padding", "contradiction", "empty"]


@pytest.mark.parametrize("qid", QUESTIONS)
def test_gaming_is_flagged_and_routed(scored, qid):
    """Every gaming form of these questions is flagged and sent to a human. Issue 19: a flag no
    longer caps the points at 25% (honest answers trip detectors too); the points stay what the
    evidence gives, and only the empty answer (certain) is 0, without review. A pasted question
    carries no evidence."""
    s = scored[qid]
    for form in GAMED:
        got = s[form]
        assert form in got.flags, (form, got.flags, got.reasons[:3])
        assert got.needs_review == (form != "empty"), form
    assert s["empty"].points == 0
    assert s["question_pasted"].points <= min(0.25 * s["question_pasted"].max_points, s["partial"].points)


# ---- copying between students -------------------------------------------------------------------

COPIED = {  # a classmate's good answer, lightly edited
    "cnn_vs_fc": ANSWERS["cnn_vs_fc"]["good"]
    .replace("In a conv layer", "In a convolutional layer").replace("whereas", "while")
    .replace("If a cat moves", "If a dog moves").replace("trains faster", "learns faster"),
    "lenet5_legacy": ANSWERS["lenet5_legacy"]["good"]
    .replace("was made by", "was built by").replace("It is tiny", "It is very small")
    .replace("The general recipe", "The basic recipe").replace("huge datasets", "big datasets"),
    "alexnet_vs_vgg": ANSWERS["alexnet_vs_vgg"]["good"]
    .replace("the first big", "the first famous").replace("went the other way", "did the opposite")
    .replace("The downside", "The problem"),
    "transfer_learning": ANSWERS["transfer_learning"]["good"]
    .replace("pretty much any photos", "almost any photos").replace("swap the last", "replace the last")
    .replace("would just overfit", "would overfit"),
    "residual_connections": ANSWERS["residual_connections"]["good"]
    .replace("goes around", "skips").replace("straight to", "directly to")
    .replace("He et al. showed", "The ResNet paper showed"),
    "xray_triage": ANSWERS["xray_triage"]["good"]
    .replace("Since there are only", "As there are just").replace("brightness", "contrast")
    .replace("Before going live", "Before using it").replace("keep monitoring it", "keep watching it"),
}


@pytest.mark.parametrize("qid", QUESTIONS)
def test_copies_are_paired_and_honest_answers_are_not(qid, reference_answers):
    short = "Weight sharing and local receptive fields."
    answers = {
        "ann": ANSWERS[qid]["good"],
        "ben": COPIED[qid],
        "cat": reference_answers[qid],          # independent good answers
        "dan": OTHER_GOOD[qid],
        "gus": ANSWERS[qid]["partial"],
        "eve": short,
        "fay": short,
    }
    pairs = near_duplicates(answers)
    assert [(a, b) for a, b, _ in pairs] == [("ann", "ben")], pairs
    assert near_duplicates({"ann": ANSWERS[qid]["good"], "cat": reference_answers[qid]}) == []


def test_demo_shows_suggested_scores_reasons_and_review_flags(demo_run):
    """The demo's theory cohort: the reference's answers and one student's mixed set (partial,
    wrong, a keyword list, the question pasted back, nothing) graded through the whole pipeline."""
    by = demo_run.run.results(ASSIGNMENT)
    alice, nora = ({p.id: p for p in by[s].parts} for s in ("alice_reference", "nora_mixed"))
    assert by["nora_mixed"].status == "graded" and by["alice_reference"].status == "graded"
    assert "keyword_list" in nora["alexnet_vs_vgg"].details["flags"] and nora["alexnet_vs_vgg"].needs_review
    assert "question_pasted" in nora["transfer_learning"].details["flags"]
    assert nora["xray_triage"].points == 0 and "no answer" in nora["xray_triage"].explanation
    assert 0 < nora["cnn_vs_fc"].points < alice["cnn_vs_fc"].points
    assert nora["lenet5_legacy"].points < alice["lenet5_legacy"].points
    assert by["alice_reference"].score >= 0.75 * by["alice_reference"].max_score > by["nora_mixed"].score
    html = (demo_run.course.feedback_dir / "nora_mixed" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "suggested score" in html and "an instructor will review this" in html
    assert "nora_mixed" in demo_run.run.outcomes[ASSIGNMENT].report.read_text()


def test_calibrate_fits_the_suggestions_to_grades_given_in_the_gradebook(demo_run, tmp_path, capsys):
    """The exam workflow: a teacher grades some answers in formgrader (manual scores in the
    gradebook), runs `autograder calibrate`, and the suggestions follow those grades. On a copy of
    the demo's graded theory assignment (its attempts and gradebook), so the demo keeps its own.
    Two items whose graded answers all share one grade still get a curve, and the item nobody
    graded gets the other items' pooled curve."""
    import shutil

    from nbgrader.api import Gradebook

    from autograder import cli
    from autograder.grading import record
    from autograder.grading.calibrate import load_calibrations, read_calibrations
    from autograder.reflection import suggest
    from autograder.reflection.calibration import FORMAT_VERSION
    from autograder.reflection.text import answer_text

    from .conftest import course_copy

    root = tmp_path / "course"
    course = course_copy(root)
    for attempts in demo_run.course.autograded_dir.glob(f"*/{ASSIGNMENT}"):
        shutil.copytree(attempts, course.autograded_dir / attempts.parent.name / ASSIGNMENT)
    sqlite = "sqlite:///"
    shutil.copy(demo_run.course.db_url.removeprefix(sqlite), course.db_url.removeprefix(sqlite))
    rubric = load_rubric(course.rubric_dir / f"{ASSIGNMENT}.yaml")
    # the teacher's shares; xray_triage is left ungraded; both got full points on two items
    teacher = {
        "alice_reference": dict.fromkeys(QUESTIONS[:-1], 1.0),
        "nora_mixed": {"cnn_vs_fc": 1.0, "lenet5_legacy": 0.0, "alexnet_vs_vgg": 0.0, "transfer_learning": 0.0,
                       "residual_connections": 1.0},
    }
    with Gradebook(course.db_url, course.course_id) as gb:
        for student, shares in teacher.items():
            for qid, share in shares.items():
                gb.find_grade(rubric.part(qid).cell, ASSIGNMENT, ASSIGNMENT, student).manual_score = (
                    share * rubric.part(qid).points)
        gb.db.commit()

    capsys.readouterr()
    assert cli.main(["--course", str(root), "--workdir", str(course.workdir), "calibrate", ASSIGNMENT]) == 0
    log = capsys.readouterr().out
    for qid in QUESTIONS[:-1]:
        assert f"{qid}: 2 hand-graded answer(s) in the gradebook; calibration: the assignment's pooled curve" in log
    assert "xray_triage: 0 hand-graded answer(s) in the gradebook; calibration: the assignment's pooled curve" in log
    assert "review line: the default 0.6 (about 60 hand-graded answers are needed to set one)" in log

    stored, _ = read_calibrations(rubric)
    assert set(stored) == set(QUESTIONS)
    assert all(d["version"] == FORMAT_VERSION and d["n_graded"] == d["checked"] == len(teacher)
               for q, d in stored.items() if q != "xray_triage")
    assert stored["xray_triage"]["n_graded"] == 0 and stored["xray_triage"]["knots_y"][-1] > 0
    calibrations = load_calibrations(stored)
    answers = {r.student: {p.id: answer_text(p.details.get("answer", "")) for p in r.parts}
               for r in record.latest_results(course, ASSIGNMENT)}
    changed = 0
    for student, shares in teacher.items():
        for qid, share in shares.items():
            spec = reflection_spec(rubric.part(qid))
            before = suggest(answers[student][qid], spec)
            after = suggest(answers[student][qid], spec, calibrations[qid])
            assert after.points == share * spec.points, (student, qid, after.reasons)
            changed += before.points != after.points
    assert changed >= 3   # the uncalibrated scorer gave partial points where the teacher did not
    assert not (demo_run.course.rubric_dir / f"{ASSIGNMENT}.calibration.json").exists()
