"""demo: the whole path on the tiny profile in a fresh work folder, for every assignment of the course.

build -> release (with leak check) -> a simulated cohort per assignment -> one Dask run that grades
every submission of every assignment -> per assignment: gradebook, feedback, CSV, class report.
The cohorts are made from the released notebooks, filled in the way students would.

An assignment takes part when `COHORTS` has a cohort function for it (assignment -> function of
the source and release notebooks); the others are skipped with a log line.
"""

from __future__ import annotations

import copy
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from .build import build_assignment
from .course import Course, CourseError
from .grading.batch import BatchOutcome
from .nbgrader_config import write_nbgrader_config
from .release import release_assignment

ASSIGNMENT = "lenet5_mnist"   # the first assignment; its cohort is the one the e2e and farm tests use
PROFILE = "tiny"
# Short limits where a cohort has a notebook that never ends, so that it is stopped quickly (the
# LeNet-5 reference's cells take about 7 s in all on one thread);
# the other assignments keep the course's tiny limits.
DEMO_LIMITS = {"lenet5_mnist": {"notebook_timeout_s": 120, "cell_timeout_s": 20}}

CohortFn = Callable[[object, object], dict[str, object]]


def _strip_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if not re.search(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)", line))


def solved_release(source_nb, release_nb):
    """The released notebook filled in with the reference's solutions and answer."""
    solutions = {c.metadata["nbgrader"]["grade_id"]: _strip_markers(c.source)
                 for c in source_nb.cells if c.metadata.get("nbgrader", {}).get("solution")}
    nb = copy.deepcopy(release_nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in solutions:
            cell.source = solutions[gid]
    return nb


def _edit(nb, grade_id: str, old: str, new: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            if old not in cell.source:
                raise ValueError(f"demo edit: {old!r} not in cell {grade_id}")
            cell.source = cell.source.replace(old, new)
    return nb


def _replace(nb, grade_id: str, source: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    return nb


def _answers(nb, answers: dict[str, str]):
    """A student's own written answers (their own words: a copy of the reference's would be
    flagged as a near-duplicate of the honest student's)."""
    for grade_id, text in answers.items():
        nb = _replace(nb, grade_id, text)
    return nb


# ---- LeNet-5 on MNIST: the seven ways a submission can go ------------------------------------

# Written answers of varied quality: the reflection scorer suggests points, flags gaming.
ANSWERS = {
    "bob_weaker": "I got about 60% accuracy after one epoch. I think more epochs would help.",
    "carol_raises": "accuracy training time overfitting augmentation ReLU dropout batch normalization",
    "frank_edits_test": ("Report your validation accuracy and training time. What limits LeNet-5's accuracy here, "
                         "and which single change would you try first to improve it?"),
}


def cohort(source_nb, release_nb) -> dict[str, object]:
    """LeNet-5: student id -> notebook (or raw text for a file that is not a notebook)."""
    good = solved_release(source_nb, release_nb)
    students = {
        "alice_reference": good,
        "bob_weaker": _edit(good, "hyperparameters", 'EPOCHS = {"tiny": 20, "full": 12}[profile]', "EPOCHS = 1"),
        "carol_raises": _edit(good, "lenet5", "x = torch.flatten(x, 1)", "x = x.view(-1, 401)  # wrong size"),
        "dave_endless": _edit(good, "train_model", "    for _ in range(epochs):",
                              "    while True:  # never stops\n        pass\n    for _ in range(epochs):"),
        "erin_untouched": copy.deepcopy(release_nb),
        # a wrong architecture, and the test that would catch it replaced by `pass`: restored before grading
        "frank_edits_test": _replace(_edit(good, "lenet5", "nn.Conv2d(6, 16, kernel_size=5)",
                                           "nn.Conv2d(6, 16, kernel_size=5, bias=False)"),
                                     "test_lenet5_architecture", "pass  # this test is in my way"),
        "grace_not_a_notebook": "this is my homework, I wrote it in a text editor",
    }
    return {s: _replace(nb, "reflection", ANSWERS[s]) if s in ANSWERS else nb for s, nb in students.items()}


lenet5_cohort = cohort


# ---- the other assignments: the reference, and one plausible wrong submission each ---------------

HONEST = "alice_reference"   # the same honest student in every assignment: the reference solution


def vgg16_cohort(source_nb, release_nb) -> dict[str, object]:
    """The wrong one fine-tunes the whole network after training the head: the backbone's
    weights change during training (the frozen-backbone check and a hidden test notice)."""
    good = solved_release(source_nb, release_nb)
    last = '        history["val_accuracy"].append(head_accuracy(head, val_x, val_y))\n'
    unfrozen = _edit(good, "train_head", last, last + (
        "    # then fine-tune the whole network, backbone included, on a few batches of images\n"
        "    model.features.requires_grad_(True)\n"
        "    whole = torch.optim.Adam(model.parameters(), lr=1e-4)\n"
        "    model.train()\n"
        "    for start in range(0, 128, 64):\n"
        "        images = train_split.images[start:start + 64].to(device)\n"
        "        loss = F.cross_entropy(model(images), train_split.labels[start:start + 64].to(device))\n"
        "        whole.zero_grad()\n"
        "        loss.backward()\n"
        "        whole.step()\n"))
    return {HONEST: good, "heidi_unfrozen_backbone": _answers(unfrozen, {"reflection": (
        "The cached features are fine because VGG16 was trained on ImageNet and already knows what flowers look "
        "like. After the head had converged I also fine-tuned all layers for a couple of batches with a small "
        "learning rate of 1e-4, because more trainable parameters usually give a better accuracy and the small "
        "learning rate keeps the pre-trained weights from being destroyed. With more images I would unfreeze "
        "everything from the start and train longer.")})}


def alexnet_cohort(source_nb, release_nb) -> dict[str, object]:
    """The wrong one returns the feature maps with rows and columns swapped."""
    good = solved_release(source_nb, release_nb)
    transposed = _edit(good, "feature_maps", "return F.relu(model.features[0](image))",
                       "return F.relu(model.features[0](image)).permute(0, 2, 1)  # channel, x, y")
    return {HONEST: good, "ivan_transposed_maps": _answers(transposed, {"reflection": (
        "Filter 5 looks like a diagonal edge from dark to light and filter 12 like a green blob; the first one is "
        "bright along the edges of the vase, the second on the leaves. The first layer works directly on the RGB "
        "pixels, so its weights are small pictures we can look at. Deeper filters combine the maps of earlier "
        "layers, so their weights are not pictures; to see what they respond to I would look for the images or "
        "patches that activate them most.")})}


def googlenet_cohort(source_nb, release_nb) -> dict[str, object]:
    """The wrong one smooths the history before it is plotted, reported and exported: the curves
    no longer belong to the exported model."""
    good = solved_release(source_nb, release_nb)
    smoothed = _edit(good, "plot_curves", "    return fig", (
        "    return fig\n\n\n"
        "def smooth(values, keep=0.6):\n"
        "    out, level = [], values[0]\n"
        "    for value in values:\n"
        "        level = keep * level + (1 - keep) * value\n"
        "        out.append(level)\n"
        "    return out\n\n\n"
        "# the raw curves are noisy: hand in smoothed ones\n"
        "history = {name: smooth(values) for name, values in history.items()}"))
    return {HONEST: good, "judy_smoothed_curves": _answers(smoothed, {"fitting_analysis": (
        "The smoothed curves rise steadily and the training and validation accuracies stay close together, the "
        "gap is only a few points at the first, middle and last epoch, so the network neither overfits nor "
        "underfits much. The short training on the tiny profile is the main limit; I would train for more epochs "
        "with data augmentation so that the network sees more varied images and generalizes better.")})}


def csxa_cohort(source_nb, release_nb) -> dict[str, object]:
    """The wrong one ignores the imbalance (equal class weights) and trains with a learning rate 100
    times too large: the network collapses to predicting the most frequent class for nearly every
    image. (Equal weights alone are not wrong enough on tiny: the stand-in is easy enough that
    every class is still recognized.)"""
    good = solved_release(source_nb, release_nb)
    unweighted = _edit(good, "class_weights", "return len(labels) / (num_classes * counts.clamp_min(1))",
                       "return torch.ones(num_classes)  # every class counts the same")
    unweighted = _edit(unweighted, "hyperparameters", 'LR = {"tiny": 0.02, "full": 0.01}[profile]',
                       "LR = 2.0  # bigger steps, faster training")
    return {HONEST: good, "ken_majority_class": _answers(unweighted, {
        "reflection_overfitting": (
            "The validation loss is lowest around the middle of training and then goes up again while the training "
            "loss keeps falling, so the model starts to memorize the training images. Early stopping keeps the "
            "weights of the best epoch, before the overfitting starts."),
        "reflection_imbalance": (
            "Kyphotic is the rarest class. In the confusion matrix its row has the lowest value on the diagonal. "
            "I did not use a weighted loss because the accuracy was already good without it, and every image "
            "should count the same."),
        "reflection_interpretability": (
            "For the correct images the heatmap mostly lies on the spine. For the misclassified ones it is more "
            "spread out and partly on the background, so the network was looking at the wrong place.")})}


# ---- the inquiry loop: one variable, two variables, a claim inside the noise ----------------------

def inquiry_cohort(source_nb, release_nb) -> dict[str, object]:
    """The reference changes the learning rate only. One student also shortens training (two
    variables) and keeps a reflection about one; another turns the class weights off, a change
    smaller than the spread between seeds, and claims it as an improvement."""
    good = solved_release(source_nb, release_nb)
    design = 'VARIANT = dict(BASELINE, lr=BASELINE["lr"] / 4)'
    two = _edit(good, "design", design, 'VARIANT = dict(BASELINE, lr=BASELINE["lr"] / 4, epochs=3)')
    noisy = _replace(good, "design", (
        "VARIANT = dict(BASELINE, class_weights=False)\n"
        'HYPOTHESIS = ("Turning the class weights off will raise the validation macro-F1, because the network '
        'stops over-predicting the rare classes.")'))
    return {HONEST: good, "lena_two_variables": two, "mike_overclaims": _answers(noisy, {"reflection": (
        "I turned the class weights off; they were on in the baseline. Macro-F1 improved from 0.96 to 0.99, "
        "which shows that class weighting hurts this model. Without the weights the loss no longer pushes the "
        "network to over-predict the rare kyphotic and sigmoid spines, so the frequent classes are recognized "
        "better.")})}


def _question_of(nb, grade_id: str) -> str:
    """The instructions cell just above an answer cell, without its heading: the question."""
    cells = nb.cells
    at = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    text = next(c.source for c in reversed(cells[:at]) if c.cell_type == "markdown")
    return " ".join(line for line in text.splitlines() if not line.startswith("#")).strip()


# ---- the theory questions: the reference's answers, and one student's mixed set ----------------

def theory_cohort(source_nb, release_nb) -> dict[str, object]:
    """One student answers well, partly, wrongly, with a keyword list, with the question pasted
    back, and not at all: suggested scores, reasons and review flags in the feedback."""
    good = solved_release(source_nb, release_nb)
    mixed = _answers(copy.deepcopy(release_nb), {
        "cnn_vs_fc": ("A convolution looks at a small patch of the image and the same filter is reused at every "
                      "position, so a CNN has far fewer weights than a fully connected layer on the same image."),
        "lenet5_legacy": ("LeNet-5 was a big network trained on ImageNet with GPUs, and it was the first to use "
                          "ReLU and dropout."),
        "alexnet_vs_vgg": "AlexNet VGG 3x3 kernels depth ReLU dropout parameters receptive field GPUs",
        "transfer_learning": _question_of(release_nb, "transfer_learning"),
        "residual_connections": ("A residual block adds its input to its output, so the gradient can flow back "
                                 "through the shortcut and very deep networks still train."),
    })
    return {HONEST: good, "nora_mixed": mixed}


def pneumonia_cohort(source_nb, release_nb) -> dict[str, object]:
    """The three mistakes of the issue: a service that logs the patient's name (the seed system's:
    the privacy part fails naming the identifier), one that crashes on a non-image (no guard
    around decoding: a 500 without a JSON error and no audit line), and one that ignores the
    exported threshold (0.5 hard-coded: on tiny the threshold for recall 0.95 is about 0.2, so the
    service calls subtle pneumonias NORMAL that the model at the threshold flags)."""
    good = solved_release(source_nb, release_nb)
    logs_name = _edit(good, "service", "    audit(request_id=request_id, image_sha256=",
                      "    audit(patient=payload.get(\"patient_name\"), request_id=request_id, image_sha256=")
    crashes = _edit(good, "service", """    try:
        x = preprocess(data, PROFILE)
    except ValueError:
        return refuse(request_id, started, 422, "the image is not a PNG or JPEG")
""", "    x = preprocess(data, PROFILE)\n")
    half = _edit(good, "service", 'THRESHOLD = float(json.loads((MODEL_DIR / "reported.json").read_text())["threshold"])',
                 "THRESHOLD = 0.5  # the usual cut-off")
    return {HONEST: good, "ivan_logs_patient_name": _answers(logs_name, {"reflection_strategy": (
        "Missing a pneumonia is worse than a false alarm because the patient goes home untreated, so I chose the "
        "threshold on the validation split to reach a recall of 0.95 with the best precision. After deployment I "
        "would watch recall on confirmed cases, drift in the confidence distribution, and the latency of the "
        "service, and I log each request with the patient's name so that doctors can find the case again.")}),
        "karl_crashes_on_non_image": _answers(crashes, {"reflection_strategy": (
            "A false negative means a patient with pneumonia is not treated in time, which is dangerous; a false "
            "positive only costs an extra check by a doctor. My threshold keeps the validation recall at 0.95 or "
            "more and takes the highest precision among those. Once deployed I would track how often the service "
            "says PNEUMONIA, compare it with the radiologists' findings every week, and alert on slow answers.")}),
        "mia_ignores_threshold": _answers(half, {"reflection_strategy": (
            "In screening the worst outcome is a sick patient sent home, while a false alarm costs a second reading. "
            "I computed a threshold for recall 0.95 on the validation images, but in the service I kept the usual "
            "cut-off of 0.5 because it is the standard for a probability and easier to explain. In production I "
            "would monitor the error rate, the response time and whether the mix of patients changes.")})}


def spine_cohort(source_nb, release_nb) -> dict[str, object]:
    """Three architectures that are not what they are called, seen in the exported graphs: a
    "U-Net" without skip connections, a "ResNet" without residual additions, and a U-Net whose
    classifier reads the flattened map, so it only works at the training size."""
    good = solved_release(source_nb, release_nb)
    no_skips = _edit(_edit(_edit(good, "unet", "conv_bn(4 * w + 2 * w, 2 * w), conv_bn(2 * w + w, w)",
                                 "conv_bn(4 * w, 2 * w), conv_bn(2 * w, w)"),
                           "unet", "torch.cat([F.interpolate(b, size=e2.shape[-2:]), e2], dim=1)",
                           "F.interpolate(b, size=e2.shape[-2:])"),
                     "unet", "torch.cat([F.interpolate(d2, size=e1.shape[-2:]), e1], dim=1)",
                     "F.interpolate(d2, size=e1.shape[-2:])")
    no_residuals = _edit(good, "resnet", "return F.relu(self.body(x) + self.shortcut(x))", "return F.relu(self.body(x))")
    one_size = _edit(_edit(good, "unet", "self.fc = nn.Linear(w, num_classes)", "self.fc = nn.Linear(w * 24 * 24, num_classes)"),
                     "unet", "return self.fc(d1.mean(dim=(2, 3)))", "return self.fc(torch.flatten(d1, 1))")
    # their own comparisons, with the numbers their runs measure (tiny profile, one CPU thread)
    return {HONEST: good,
            "olga_unet_without_skips": _answers(no_skips, {"comparison": (
                "My U-Net and my ResNet were trained with the same six epochs and settings; only the architecture "
                "differed. The ResNet did better on validation: macro-F1 0.91 versus 0.76 for my U-Net. The U-Net missed "
                "most Moderate cases (recall 0.32, against 0.77 for the ResNet), while both caught 0.95 of the Severe "
                "ones. I think the residual connections make the deeper network easy to optimise in a short training "
                "run, whereas my U-Net has to rebuild the detail in its decoder. This is a single seed, so the gap might "
                "shrink with repeated runs.")}),
            "paul_resnet_without_residuals": _answers(no_residuals, {"comparison": (
                "Same budget for both networks (six epochs, batch size 32); only the architecture changed. The ResNet "
                "came out ahead with a macro-F1 of 0.91 on validation, the U-Net reached 0.87. The ResNet also had the "
                "better weighted log loss, 0.26 compared with 0.44, and found every Severe slice (recall 1.00) where the "
                "U-Net found 0.95. My explanation is that the residual blocks downsample with strides, so they see the "
                "whole narrowed canal, while averaging the U-Net's full-resolution map waters down the small bulge. "
                "With just one seed I cannot rule out that part of this is run-to-run noise.")}),
            "quinn_one_input_size": _answers(one_size, {"comparison": (
                "I trained the U-Net and the ResNet with the identical budget, changing only the architecture. "
                "Surprisingly the U-Net generalises better here: macro-F1 0.96 against 0.91 for the ResNet, and it "
                "recognises 0.86 of the Moderate slices compared with 0.77. Its weighted log loss is 0.11, much smaller "
                "than the ResNet's 0.26. Because my classifier reads the whole decoder map, it keeps where the narrowing "
                "is, and the skip connections bring the sharp edges of the canal from the encoder. One seed is not "
                "enough to be sure; I would repeat it with more seeds.")})}


def mammo_cohort(source_nb, release_nb) -> dict[str, object]:
    """Three mistakes of the mammography assignment: a split by image that puts a patient's two views
    on both sides (leakage), int8 calibrated on blank images (most of the accuracy lost), and a final
    model retrained for one epoch after the results table was written (the table no longer describes
    the exported model)."""
    good = solved_release(source_nb, release_nb)
    leaky = _edit(good, "split_by_patient",
                  "splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)\n"
                  "    train_idx, val_idx = next(splitter.split(np.zeros(len(patients)), groups=np.asarray(patients)))",
                  "rng = np.random.default_rng(seed)   # a random quarter of the images\n"
                  "    order = rng.permutation(len(patients))\n"
                  "    train_idx, val_idx = order[int(val_fraction * len(patients)):], order[:int(val_fraction * len(patients))]")
    blank = _edit(good, "reduced_precision", "prepared(calibration_images.detach())",
                  "prepared(torch.zeros_like(calibration_images))   # the observers only need the shapes")
    retrained = _edit(good, "choose_best", 'BEST = max(RESULTS, key=lambda row: (row["val_auc"], row["val_accuracy"]))["config"]',
                      'BEST = max(RESULTS, key=lambda row: (row["val_auc"], row["val_accuracy"]))["config"]\n'
                      "# final model: the best config once more, one quick epoch (the table above is already written)\n"
                      'MODELS[BEST], _ = train_one(dict(CONFIGS[BEST + ".json"], epochs=1), train_x, train_y, val_x, val_y, device)')
    return {HONEST: good,
            "olga_image_split": _answers(leaky, {"reflection_precision": (
                "Reduced precision costs nothing here. On my validation images fp32, bfloat16 and int8 all reach an "
                "accuracy of 1.00 and an AUC of 1.00, a change of 0.00. The lesions keep their shape in 8 bits. I would "
                "test the int8 model on more patients before using it.")}),
            "pablo_blank_calibration": _answers(blank, {"reflection_precision": (
                "Reduced precision hurts: int8 loses a lot. The fp32 model reaches an accuracy of 1.00 and bfloat16 "
                "the same, but int8 falls to an AUC of 0.51, about chance. Rounding to 8 bits is too coarse for "
                "mammograms, so I would deploy bfloat16 and check recall of malignant cases on new patients first.")}),
            "quinn_retrained_final": _answers(retrained, {"reflection_precision": (
                "bfloat16 and int8 give the same detection as fp32 here: accuracy 1.00 and AUC 1.00 for all three, "
                "so the change is 0.00. The shape of a malignant lesion is coarse enough for 8-bit weights. Before "
                "deploying I would check the recall of malignant cases on a bigger group of new patients.")})}


# assignment -> cohort function; an assignment without one is skipped by the demo
COHORTS: dict[str, CohortFn] = {
    "lenet5_mnist": lenet5_cohort,
    "vgg16_transfer": vgg16_cohort,
    "alexnet_filters": alexnet_cohort,
    "googlenet_cifar10": googlenet_cohort,
    "resnet50_csxa": csxa_cohort,
    "inquiry_csxa": inquiry_cohort,
    "cnn_theory": theory_cohort,
    "pneumonia_service": pneumonia_cohort,
    "mammo_efficiency": mammo_cohort,
    "spine_architectures": spine_cohort,
}


def write_cohort(course: Course, notebooks: dict, assignment: str = ASSIGNMENT) -> None:
    for student, nb in notebooks.items():
        path = course.submitted_dir / student / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(nb, str):
            path.write_text(nb)
        else:
            nbformat.write(nb, path)


# ---- grading every assignment in one Dask run ---------------------------------------------------

@dataclass
class DemoRun:
    outcomes: dict[str, BatchOutcome]                  # assignment -> its graded batch
    reference_s: dict[str, float | None] = field(default_factory=dict)   # reference training times
    skipped: list[str] = field(default_factory=list)   # assignments without a cohort function
    wall_s: float = 0.0

    def results(self, assignment: str) -> dict:
        return {r.student: r for r in self.outcomes[assignment].results}


def grade_all(course: Course, names: list[str], sandboxed: bool, log: Callable[[str], None] = print,
              workers: int | None = None, client=None) -> tuple[dict[str, BatchOutcome], dict[str, float | None]]:
    """Grade every cohort in one Dask cluster and one dispatch, through the one grading path."""
    from .grade import grade_assignments
    from .grading.timing import cached_reference_seconds, machine_key

    outcomes = grade_assignments(course, names, PROFILE, sandboxed=sandboxed, workers=workers, log=log,
                                 limits=DEMO_LIMITS, client=client)
    log("3/3 recorded: gradebook, feedback, grades CSV and class report per assignment")
    return outcomes, {n: cached_reference_seconds(course.cache_dir, n, PROFILE, machine_key()) for n in names}


MARKER = ".autograder-demo"   # written by the demo into its folder: only such a folder is ever deleted


def fresh_demo_folder(workdir: Path, log: Callable[[str], None] = print) -> Path:
    """An empty folder for the demo. An existing one is replaced only when the demo made it (its
    marker file is there); anything else, even an empty folder, is refused and left as it is."""
    workdir = workdir.resolve()
    if workdir.is_symlink() or (workdir.exists() and not workdir.is_dir()):
        raise CourseError(f"{workdir} is not a folder the demo can use; choose another --into")
    if workdir.exists():
        if not (workdir / MARKER).is_file():
            raise CourseError(
                f"refusing to use {workdir}: it exists and was not made by the demo (no {MARKER} file in it), "
                "so it may hold work of yours. Choose another --into folder, or move that one away yourself.")
        log(f"replacing the earlier demo in {workdir}")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    (workdir / MARKER).write_text("made by `autograder demo`; the next demo run replaces this folder\n")
    return workdir


def run_demo(course: Course, workdir: Path, sandboxed: bool, log: Callable[[str], None] = print,
             assignments: list[str] | None = None, workers: int | None = None, client=None) -> tuple[Course, DemoRun]:
    """Build, release, make the cohorts of, and grade `assignments` (default: every assignment of
    the course that has a cohort function) in a fresh `workdir`."""
    start = time.perf_counter()
    # every argument is checked before anything is deleted
    wanted = [course.check_assignment(a) for a in assignments] if assignments else list(course.assignments)
    skipped = [a for a in wanted if a not in COHORTS]
    names = [a for a in wanted if a in COHORTS]
    for name in skipped:
        log(f"skipping {name}: the demo has no cohort for it (add a cohort function to demo.COHORTS)")
    if not names:
        raise CourseError(f"no assignment to demonstrate: none of {wanted} has a cohort in demo.COHORTS")
    workdir = fresh_demo_folder(Path(workdir), log)
    course = course.with_work(workdir)
    write_nbgrader_config(course)
    log(f"demo work folder: {workdir}")
    log(f"1/3 build, release (with the leak check) and write a cohort, for {len(names)} assignment(s)")
    size = 0
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        build_assignment(course, name)
        report = release_assignment(course, name)
        source_nb = nbformat.read(course.source_notebook(name), as_version=4)
        release_nb = nbformat.read(report.notebook, as_version=4)
        students = COHORTS[name](source_nb, release_nb)
        write_cohort(course, students, name)
        size += len(students)
        log(f"  [{i}/{len(names)}] {name:<18} -> {report.notebook.relative_to(workdir)}  "
            f"({time.perf_counter() - t0:.0f} s)")
        log(f"        {len(students)} submissions: {', '.join(students)}")
    log(f"  {size} submissions under {course.submitted_dir.relative_to(workdir)}/<student>/<assignment>/")
    log(f"2/3 grade on the {PROFILE} profile, every assignment in one Dask run"
        + ("" if sandboxed else "  (UNSANDBOXED: student code runs without isolation)"))
    outcomes, reference = grade_all(course, names, sandboxed, log, workers, client)
    run = DemoRun(outcomes, reference, skipped, time.perf_counter() - start)
    for name, outcome in outcomes.items():
        log(f"  {name}: " + ", ".join(f"{r.student} {r.status} {r.score:g}/{r.max_score:g}"
                                      for r in sorted(outcome.results, key=lambda r: r.student)))
        log(f"    class report {outcome.report.relative_to(workdir)}, grades {outcome.csv.relative_to(workdir)}, "
            f"feedback {course.feedback_dir.relative_to(workdir)}/<student>/{name}/{name}.html")
    return course, run
