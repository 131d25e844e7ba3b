"""Shared fixtures: the real course, and a built + released copy in a scratch work folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nbformat
import pytest

from autograder.build import build_assignment
from autograder.course import load_course
from autograder.release import release_assignment
from autograder.sandbox import bwrap_available

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "lenet5_mnist"
SANDBOXED = bwrap_available()


# Fixtures that grade or train for real (tens of seconds to minutes): a test using one is `slow`,
# so `./run test -m "not slow"` is the quick loop.
SLOW_FIXTURES = {"shared_client", "graded_cohorts", "demo_run", "demo", "batch", "two_workers", "postgres", "trained", "run", "graded",
                 "course_with_it", "exported", "artifacts", "setup"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def course():
    return load_course(REPO)


@pytest.fixture(scope="session")
def released(course, tmp_path_factory):
    """A work folder with the LeNet-5 assignment built and released (and its gradebook)."""
    work = course.with_work(tmp_path_factory.mktemp("course"))
    build_assignment(work, ASSIGNMENT)
    release_assignment(work, ASSIGNMENT)
    return work


@pytest.fixture(scope="session")
def source_nb(released):
    return nbformat.read(released.source_notebook(ASSIGNMENT), as_version=4)


@pytest.fixture(scope="session")
def release_nb(released):
    return nbformat.read(released.release_notebook(ASSIGNMENT), as_version=4)


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def cell(nb, grade_id: str):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


@pytest.fixture(scope="session")
def shared_client():
    """One two-worker grading cluster for the session's batches that need no cluster of their own
    (the graded cohorts, the small trust and gradebook batches): the workers of each new cluster
    import the grader and warm up the evaluator and the written-answer model again, about 10 s of
    CPU each. Tests of the cluster itself (killed workers, an external scheduler) start their own."""
    from autograder.grading.dispatch import grading_client

    with grading_client(2) as client:
        yield client


@pytest.fixture(scope="session")
def graded_cohorts(request, course, tmp_path_factory, shared_client):
    """The demo (every assignment's cohort built, released and graded in one Dask run) and the
    adversarial LeNet-5 cohort, graded at the same time on one two-worker cluster, in the sandbox:
    alone, each leaves a core idle at times (a notebook waiting on its limit, a batch's last
    task); together they keep both busy. Only what the selected tests use is graded.
    {fixture name: its value, or the exception that stopped it}."""
    from concurrent.futures import ThreadPoolExecutor

    from . import adversarial_cohort

    used = {name for item in request.session.items for name in item.fixturenames}
    jobs = {}
    if "adversarial_batch" in used and SANDBOXED:
        # built and released first: nbgrader's release changes the process's working folder while
        # it runs, so no two releases may overlap (the demo releases in its own thread)
        prepared = adversarial_cohort.prepare_cohort(course, tmp_path_factory.mktemp("adversarial"))
        jobs["adversarial_batch"] = lambda client: adversarial_cohort.grade_cohort(prepared, client)
    if "demo_run" in used:
        folder = tmp_path_factory.mktemp("demo")
        jobs["demo_run"] = lambda client: _graded_demo(course, folder, client)
    if not jobs:
        return {}
    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(job, shared_client) for name, job in jobs.items()}
        return {name: future.exception() or future.result() for name, future in futures.items()}


def _graded(cohorts: dict, name: str):
    value = cohorts[name]
    if isinstance(value, BaseException):
        raise value
    return value


@pytest.fixture(scope="session")
def demo_run(graded_cohorts):
    """The demo's graded run. tests/test_grading_e2e.py and the per-assignment tests assert on it.
    `.course`: the demo's course; `.run`: its DemoRun; `.submitted`: hashes of the submissions
    before grading; `.log`: the demo's log lines; `.left`: processes still running in its folder."""
    return _graded(graded_cohorts, "demo_run")


@pytest.fixture(scope="session")
def adversarial_batch(graded_cohorts):
    """The adversarial cohort's graded batch (tests/adversarial_cohort.py, test_adversarial.py)."""
    return _graded(graded_cohorts, "adversarial_batch")


# The demo measures each reference's training time on the cluster, once: six runs, about 90 s
# of the workers' CPU. The tests keep that measurement for pneumonia_service (with its service's
# latency; test_pneumonia_service asserts both) and give the others known times, about twice
# what they take here, as the small batches do (`known_reference_time`).
KNOWN_DEMO_REFERENCES = {"lenet5_mnist": 6.0, "vgg16_transfer": 4.0, "googlenet_cifar10": 16.0,
                         "resnet50_csxa": 12.0, "spine_architectures": 7.0}


def _graded_demo(course, work: Path, client):
    from types import SimpleNamespace

    from autograder.demo import run_demo

    from .adversarial_cohort import leftovers

    work.chmod(0o755)
    before, lines = {}, []

    def log(message):
        lines.append(message)
        if message.startswith("2/3 grade"):  # the submissions exist now: remember them
            before.update(tree_hashes(work / "w" / "submitted"))
            for name, seconds in KNOWN_DEMO_REFERENCES.items():
                known_reference_time(course.with_work(work / "w"), "tiny", seconds, name)

    graded_course, run = run_demo(course, work / "w", sandboxed=SANDBOXED, log=log, client=client)
    return SimpleNamespace(course=graded_course, run=run, submitted=before, log=lines, left=leftovers(work))


def automatic_shortfalls(result) -> list[str]:
    """What keeps a graded result from full automatic marks, as `verify` judges the reference:
    status graded, no flags, every test, metric and artifact part full, the written answers
    scored above 0; timing only above 0 (it is measured against the reference on a busy machine)."""
    problems = [] if result.status == "graded" else [f"status {result.status}: {result.message}"]
    problems += result.flags
    lenient = ("reflection", "inquiry", "timing")
    for p in result.parts:
        if p.kind in lenient and not (p.points or 0) > 0:
            problems.append(f"{p.id}: {p.points}/{p.max_points:g}: {p.explanation}")
        elif p.kind not in lenient and p.points != p.max_points:
            problems.append(f"{p.id}: {p.points}/{p.max_points:g}: {p.explanation}")
    return problems


def cohort_course(course, path: Path, students):
    """A built, released LeNet-5 course in `path` with some of the demo cohort's submissions,
    short time limits and a known reference time (5 s): for tests that grade a few notebooks."""
    from dataclasses import replace

    from autograder.demo import cohort, write_cohort

    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    tiny = replace(course.profile("tiny"), notebook_timeout_s=120, cell_timeout_s=90)
    work = course.with_work(path, profiles={**course.profiles, "tiny": tiny})
    build_assignment(work, ASSIGNMENT)
    release_assignment(work, ASSIGNMENT)
    source = nbformat.read(work.source_notebook(ASSIGNMENT), as_version=4)
    release = nbformat.read(work.release_notebook(ASSIGNMENT), as_version=4)
    everyone = cohort(source, release)
    write_cohort(work, {s: everyone[s] for s in students})
    known_reference_time(work, "tiny", 5.0)
    return work


def known_reference_time(work, profile: str, seconds: float, assignment: str = ASSIGNMENT) -> None:
    """A cached reference time and per-cell durations (generous: imports and export take seconds,
    tests milliseconds), so a test's batch measures no reference of its own."""
    from autograder.grading.reference_cells import write_reference_cells
    from autograder.grading.timing import machine_key, store_reference_seconds

    store_reference_seconds(work.cache_dir, assignment, profile, machine_key(), seconds)
    source = nbformat.read(work.source_notebook(assignment), as_version=4)
    write_reference_cells(work.cache_dir, assignment, profile, {
        c.metadata["nbgrader"]["grade_id"]: 0.2 if c.metadata["nbgrader"]["grade_id"].startswith("test_") else 10.0
        for c in source.cells if c.cell_type == "code" and "grade_id" in c.metadata.get("nbgrader", {})})


def course_copy(root: Path, notebook_timeout_s: float = 120, cell_timeout_s: float = 90):
    """A course root of its own (config, references, rubrics; so a test may edit them) with its
    work folder inside, short time limits and data roots of its own (empty until staged)."""
    import shutil
    from dataclasses import replace

    root.mkdir(parents=True)
    root.chmod(0o755)
    shutil.copy(REPO / "course_config.py", root)
    for folder in ("reference", "rubrics"):
        shutil.copytree(REPO / folder, root / folder)
    course = load_course(root)
    tiny = replace(course.profile("tiny"), notebook_timeout_s=notebook_timeout_s, cell_timeout_s=cell_timeout_s)
    return course.with_work(root / "w", profiles={**course.profiles, "tiny": tiny},
                            data_root=root / "data", hidden_data_root=root / "hidden")
