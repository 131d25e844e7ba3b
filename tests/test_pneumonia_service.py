"""The pneumonia service assignment (issue 14): its data, and the grading of a running service.

The dataset tests are quick. The graded tests run three real notebooks through the one grading
path (sandbox, Dask, evaluator, gradebook) on the tiny profile: the reference, the seed system's
mistake (the audit log records the patient's name) and a service that crashes on start-up; then
the service check on its own for a service that hangs before it ever answers."""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

import nbformat
import numpy as np
import psutil
import pytest
import torch

from autograder.build import build_assignment
from autograder.datasets import DatasetMissing, load_split
from autograder.datasets.pneumonia import CLASSES, encode_png, preprocess
from autograder.datasets.registry import load_hidden_split
from autograder.demo import HONEST, _edit, pneumonia_cohort, write_cohort
from autograder.grade import grade_assignment
from autograder.release import release_assignment

from .conftest import SANDBOXED, course_copy

A = "pneumonia_service"
MISTAKE = "ivan_logs_patient_name"
CRASHES = "judy_service_crashes"
UNGUARDED = "karl_500_on_non_image"
SERVICE_PARTS = ("service_health", "service_predictions", "service_bad_input", "service_audit", "service_privacy")


# ---- data -------------------------------------------------------------------------------------

def test_tiny_splits_are_small_imbalanced_chest_images():
    train, val = load_split("pneumonia", "train"), load_split("pneumonia", "val")
    assert train.images.shape == (600, 3, 32, 32) and val.images.shape == (200, 3, 32, 32)
    assert train.classes == CLASSES == ("NORMAL", "PNEUMONIA")
    normal_share = float((train.labels == 0).float().mean())
    assert 0.2 < normal_share < 0.32, "about a quarter NORMAL, as in the published training set"
    # the classes differ visibly: PNEUMONIA lungs are brighter on average
    lungs = train.images[:, 0, 10:24, 4:28].mean((1, 2))
    assert lungs[train.labels == 1].mean() > lungs[train.labels == 0].mean()


def test_hidden_split_needs_and_depends_on_the_secret():
    with pytest.raises(PermissionError):
        load_split("pneumonia", "test")
    with pytest.raises(PermissionError):
        load_hidden_split("pneumonia", "tiny", None, None)
    a, b = (load_hidden_split("pneumonia", "tiny", None, s) for s in (11, 12))
    again = load_hidden_split("pneumonia", "tiny", None, 11)
    assert torch.equal(a.images, again.images) and not torch.equal(a.images, b.images)
    assert not torch.equal(a.images[:200], load_split("pneumonia", "val").images)


def test_a_tiny_image_survives_png_and_the_service_refuses_non_images():
    image = load_split("pneumonia", "val").images[3]
    assert torch.equal(preprocess(encode_png(image), "tiny")[0], image)
    with pytest.raises(ValueError, match="not a PNG or JPEG"):
        preprocess(b"a discharge letter", "tiny")


def test_full_profile_names_the_missing_folders(tmp_path):
    with pytest.raises(DatasetMissing) as missing:
        load_split("pneumonia", "train", "full", tmp_path)
    message = str(missing.value)
    assert str(tmp_path / "chest_xray" / "train" / "NORMAL") in message
    assert str(tmp_path / "chest_xray" / "train" / "PNEUMONIA") in message and "Nothing is downloaded" in message
    (tmp_path / "chest_xray" / "train" / "NORMAL").mkdir(parents=True)
    with pytest.raises(DatasetMissing, match="hidden test split"):
        load_hidden_split("pneumonia", "full", tmp_path / "hidden", 0)


def test_full_profile_reads_the_published_layout(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, counts in (("train", {"NORMAL": 5, "PNEUMONIA": 15}), ("val", {"NORMAL": 2, "PNEUMONIA": 2})):
        for name, count in counts.items():
            folder = tmp_path / "chest_xray" / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (300, 260), dtype=np.uint8)).save(folder / f"{i}.jpeg")
    train, val = (load_split("pneumonia", s, "full", tmp_path) for s in ("train", "val"))
    assert train.images.shape[1:] == (3, 224, 224)
    assert len(train) + len(val) == 24 and len(val) == 2 + 4, "val: 10% of train plus the published 4"


# ---- the service, graded ----------------------------------------------------------------------

def _crashing(nb):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == "service":
            cell.source = 'Path("app.py").write_text("raise RuntimeError(\'the model file is corrupt\')\\n")\n'
    return nb


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    course = course_copy(tmp_path_factory.mktemp("pneumonia") / "course", notebook_timeout_s=180, cell_timeout_s=120)
    build_assignment(course, A)
    release_assignment(course, A)
    source = nbformat.read(course.source_notebook(A), as_version=4)
    release = nbformat.read(course.release_notebook(A), as_version=4)
    cohort = pneumonia_cohort(source, release)
    cohort[CRASHES] = _crashing(copy.deepcopy(cohort[HONEST]))
    cohort[UNGUARDED] = _edit(cohort[HONEST], "service", """    try:
        x = preprocess(data, PROFILE)
    except ValueError:
        return refuse(request_id, started, 422, "the image is not a PNG or JPEG")
""", "    x = preprocess(data, PROFILE)\n")
    write_cohort(course, cohort, A)
    outcome = grade_assignment(course, A, "tiny", sandboxed=SANDBOXED, workers=2, log=lambda _: None)
    return course, {r.student: r for r in outcome.results}


def _parts(result) -> dict:
    return {p.id: p for p in result.parts}


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOXED, reason="the service runs only inside the sandbox")
def test_the_reference_service_earns_every_service_point(graded):
    _, results = graded
    parts = _parts(results[HONEST])
    assert results[HONEST].status == "graded", results[HONEST].message
    for part in (*SERVICE_PARTS, "recall", "precision", "tests"):
        assert parts[part].points == parts[part].max_points, (part, parts[part].explanation)
    assert "p50" in parts["service_health"].explanation and "p95" in parts["service_health"].explanation
    assert "48 of 48" in parts["service_predictions"].explanation
    assert "7 of 7 bad inputs" in parts["service_bad_input"].explanation
    assert "ROC AUC" in parts["recall"].explanation


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOXED, reason="the service runs only inside the sandbox")
def test_logging_the_patient_name_fails_the_privacy_part_with_the_reason(graded):
    _, results = graded
    parts = _parts(results[MISTAKE])
    assert parts["service_privacy"].points == 0
    assert "patient identifiers (patient_name" in parts["service_privacy"].explanation
    for part in ("service_health", "service_predictions", "service_bad_input", "service_audit"):
        assert parts[part].points == parts[part].max_points, (part, parts[part].explanation)


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOXED, reason="the service runs only inside the sandbox")
def test_a_service_that_fails_on_a_non_image_loses_the_bad_input_and_audit_points(graded):
    _, results = graded
    parts = _parts(results[UNGUARDED])
    bad = parts["service_bad_input"].explanation
    assert "5 of 7 bad inputs" in bad and "(a non-image got 500; a truncated PNG got 500)" in bad
    assert "alive afterwards" in bad and 0 < parts["service_bad_input"].points < parts["service_bad_input"].max_points
    assert "53 lines for 55 /predict requests" in parts["service_audit"].explanation
    for part in ("service_health", "service_predictions", "service_privacy"):
        assert parts[part].points == parts[part].max_points, (part, parts[part].explanation)


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOXED, reason="the service runs only inside the sandbox")
def test_a_service_that_crashes_on_start_fails_its_parts_and_nothing_else(graded):
    course, results = graded
    result = results[CRASHES]
    parts = _parts(result)
    assert result.status == "graded"
    for part in SERVICE_PARTS:
        assert parts[part].points == 0
        assert "never answered GET /health" in parts[part].explanation
        assert "the model file is corrupt" in parts[part].explanation
    assert parts["recall"].points == parts["recall"].max_points, "the exported model is still scored"
    work = Path(result.output_dir) / "work"
    assert not (work / "service.sock").exists() and not (work / "service.sock").is_symlink()


@pytest.mark.slow
@pytest.mark.skipif(not SANDBOXED, reason="the service runs only inside the sandbox")
def test_a_service_that_hangs_is_stopped_at_its_deadline_and_leaves_nothing(graded, tmp_path):
    """The check on its own, on a copy of the reference's work folder whose app never answers."""
    from autograder.grading.checks import run_check
    from autograder.grading.checks.context import EvalContext
    from autograder.secret import course_secret

    course, results = graded
    work = tmp_path / "work"
    shutil.copytree(Path(results[HONEST].output_dir) / "work", work, symlinks=True)
    work.chmod(0o755)
    (work / "app.py").write_text("import time\nwhile True:\n    time.sleep(1)\n")
    ctx = EvalContext(work / "artifacts", tmp_path / "out", "pneumonia", "tiny", None, None,
                      course_secret(course.cache_dir))
    (tmp_path / "out").mkdir()
    options = {"images": 4, "start_timeout_s": 6, "total_timeout_s": 30}
    started = time.monotonic()
    result = run_check("pneumonia_service_health", ctx, options)
    assert result["score"] == 0 and "never answered GET /health" in result["explanation"], result
    assert time.monotonic() - started < 30, "stopped at the start-up deadline, not the run's"
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if "app:app" in " ".join(p.info["cmdline"] or [])]
    assert not leftovers, "the service and everything it started are gone"
    assert not (work / "service.sock").exists()


def test_the_grader_never_connects_through_a_link_the_student_made(tmp_path):
    """service.sock as a link to another socket (outside the work folder) is refused, not followed."""
    import os
    import socket

    from autograder.grading.checks.pneumonia_service import _connect

    elsewhere = tmp_path / "other.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(elsewhere))
    work = tmp_path / "work"
    work.mkdir()
    (work / "service.sock").symlink_to(elsewhere)
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert _connect(fd) == (None, None)
        (work / "service.sock").unlink()
        server.close()
        os.rename(elsewhere, work / "service.sock")   # the socket itself, in the folder: accepted
        client, sock_fd = _connect(fd)
        assert client is not None
        client.close()
        os.close(sock_fd)
    finally:
        os.close(fd)


@pytest.mark.slow
@pytest.mark.parametrize("threshold, part, fails", [
    (0.0, "pneumonia_precision", "precision on the hidden split is 0.7"),    # everyone is sent for a second look
    ("median", "pneumonia_recall", "recall on the hidden split is 0.5"),     # the recall goal ignored
])
def test_a_threshold_that_ignores_the_screening_goal_loses_its_metric_part(graded, tmp_path, threshold, part, fails):
    import json

    from autograder.grading.checks import run_check
    from autograder.grading.checks.context import EvalContext
    from autograder.secret import course_secret

    course, results = graded
    artifacts = tmp_path / "artifacts"
    shutil.copytree(Path(results[HONEST].output_dir) / "work" / "artifacts", artifacts)
    secret = course_secret(course.cache_dir)
    if threshold == "median":   # half of the hidden pneumonias fall below it
        test = load_hidden_split("pneumonia", "tiny", None, secret)
        model = torch.export.load(artifacts / "model.pt2").module()
        with torch.no_grad():
            p = torch.softmax(model(test.images), 1)[:, 1]
        threshold = float(p[test.labels == 1].median()) + 1e-7
    reported = json.loads((artifacts / "reported.json").read_text())
    (artifacts / "reported.json").write_text(json.dumps({**reported, "threshold": threshold}))
    (tmp_path / "out").mkdir()
    ctx = EvalContext(artifacts, tmp_path / "out", "pneumonia", "tiny", None, None, secret)
    bands = [{"at_least": 0.95, "score": 1.0}, {"at_least": 0.8, "score": 0.5}]
    result = run_check(part, ctx, {"bands": {"tiny": bands}})
    assert result["score"] == 0 and fails in result["explanation"], result["explanation"]
    assert (tmp_path / "out" / "confusion_matrix.png").is_file()
