"""demo: the whole path on the tiny profile in a fresh work folder.

build -> release (with leak check) -> a simulated cohort -> grade (Dask) -> summary + reports.
The cohort is made from the released notebook, filled in the way students would.
"""

from __future__ import annotations

import copy
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import nbformat

from .build import build_assignment
from .course import Course
from .grading.batch import grade_assignment
from .nbgrader_config import write_nbgrader_config
from .release import release_assignment

ASSIGNMENT = "lenet5_mnist"
# Short limits so the endless notebook is stopped quickly; the reference needs well under this.
DEMO_LIMITS = {"notebook_timeout_s": 150, "cell_timeout_s": 75}


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


# Written answers of varied quality: the reflection scorer suggests points, flags gaming.
ANSWERS = {
    "bob_weaker": "I got about 60% accuracy after one epoch. I think more epochs would help.",
    "carol_raises": "accuracy training time overfitting augmentation ReLU dropout batch normalization",
    "frank_edits_test": ("Report your validation accuracy and training time. What limits LeNet-5's accuracy here, "
                         "and which single change would you try first to improve it?"),
}


def cohort(source_nb, release_nb) -> dict[str, object]:
    """student id -> notebook (or raw text for a file that is not a notebook)."""
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


def write_cohort(course: Course, notebooks: dict) -> None:
    for student, nb in notebooks.items():
        path = course.submitted_dir / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(nb, str):
            path.write_text(nb)
        else:
            nbformat.write(nb, path)


def run_demo(course: Course, workdir: Path, sandboxed: bool, log: Callable[[str], None] = print):
    start = time.perf_counter()
    workdir = Path(workdir).resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    demo_profile = replace(course.profile("tiny"), **DEMO_LIMITS)
    course = course.with_work(workdir, profiles={**course.profiles, "tiny": demo_profile})
    write_nbgrader_config(course)
    log(f"demo work folder: {workdir}")
    log(f"1/4 build    -> {build_assignment(course, ASSIGNMENT).relative_to(workdir)}")
    report = release_assignment(course, ASSIGNMENT)
    log(f"2/4 release  -> {report.notebook.relative_to(workdir)} (leak check passed)")
    source_nb = nbformat.read(course.source_notebook(ASSIGNMENT), as_version=4)
    release_nb = nbformat.read(course.release_notebook(ASSIGNMENT), as_version=4)
    students = cohort(source_nb, release_nb)
    write_cohort(course, students)
    log(f"3/4 cohort   -> {len(students)} submissions under submitted/")
    log("4/4 grade" + ("" if sandboxed else "  (UNSANDBOXED: bubblewrap is missing; student code runs without isolation)"))
    outcome = grade_assignment(course, ASSIGNMENT, "tiny", sandboxed=sandboxed, log=log)
    outcome.wall_s = time.perf_counter() - start
    return course, outcome
