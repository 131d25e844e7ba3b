"""GoogLeNet on CIFAR-10: the data (generated tiny, batch files on full), the reference on tiny,
the learning-curve check on in-process exports (right and plausibly wrong),
and the demo's graded submissions of the assignment (honest and wrong)."""

import json
import pickle
import shutil

import matplotlib
import numpy as np
import pytest
import torch

from autograder.datasets import DatasetMissing, load_split
from autograder.datasets.cifar10 import FOLDER, TEST_FILE, TINY_CLASSES, TRAIN_FILES
from autograder.datasets.hidden import load_test_split
from autograder.grading.checks import run_check
from autograder.grading.checks.context import EvalContext
from autograder.student import export_for_grading
from reference.googlenet_cifar10 import (GoogLeNet, Inception, evaluate, figure_lines, plot_curves,
                                         random_crop_flip, save_canvas, train_model)

from .conftest import automatic_shortfalls

matplotlib.use("agg")
ASSIGNMENT = "googlenet_cifar10"
CPU = torch.device("cpu")


# ---- data ------------------------------------------------------------------------------------

def test_tiny_data_is_cifar_shaped_balanced_and_the_test_split_needs_the_secret():
    train, val = load_split("cifar10", "train"), load_split("cifar10", "val")
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.float32
    assert train.classes == TINY_CLASSES and len(train.classes) == 10
    assert torch.equal(train.labels.bincount(), torch.full((10,), len(train) // 10))
    low, high = float(train.images.min()), float(train.images.max())
    assert -1.99 - 1e-4 <= low < -1.5 and 1.5 < high <= 2.13   # [0, 1] normalized with CIFAR's statistics
    assert not torch.equal(train.images[:len(val)], val.images)
    test = load_test_split("cifar10", "tiny", None, 7)
    assert not torch.equal(test.images, load_test_split("cifar10", "tiny", None, 8).images)
    with pytest.raises(PermissionError, match="held out"):
        load_split("cifar10", "test")


def test_full_cifar_missing_names_the_files_and_where_they_go(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        load_split("cifar10", "train", "full", tmp_path)
    message = str(err.value)
    assert str(tmp_path / FOLDER) in message and "data_batch_1" in message and "data_batch_5" in message
    assert "downloaded" in message
    with pytest.raises(DatasetMissing, match=TEST_FILE):   # the test batch lives under the hidden root
        load_test_split("cifar10", "full", tmp_path, 0)


def test_full_cifar_reads_torchvision_batch_files(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / FOLDER
    folder.mkdir()
    for name in (*TRAIN_FILES, TEST_FILE):
        batch = {"data": rng.integers(0, 255, (1010, 3072), dtype=np.uint8), "labels": list(np.arange(1010) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))
    train, val = load_split("cifar10", "train", "full", tmp_path), load_split("cifar10", "val", "full", tmp_path)
    assert (len(train), len(val)) == (50, 5000) and train.images.shape[1:] == (3, 32, 32)
    assert torch.equal(val.labels.bincount(), torch.full((10,), 500))   # stratified validation split
    assert len(load_test_split("cifar10", "full", tmp_path, 0)) == 1010


# ---- the reference ---------------------------------------------------------------------------

def test_googlenet_is_faithful():
    net = GoogLeNet()
    assert sum(isinstance(m, Inception) for m in net.modules()) == 9 and net.fc.in_features == 1024
    assert sum(p.numel() for p in net.parameters()) == 5_871_914
    tiny = GoogLeNet(width=1 / 8, stem_stride=2)
    assert tiny(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    x = torch.randn(3, 3, 32, 32)
    assert random_crop_flip(x).shape == x.shape


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A short tiny run of the reference, exported as the locked export cell does."""
    torch.manual_seed(0)
    train, val = load_split("cifar10", "train"), load_split("cifar10", "val")
    model = GoogLeNet(width=1 / 8, stem_stride=2)
    history = train_model(model, train, val, epochs=3, batch_size=100, lr=0.1, device=CPU)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_accuracy"][-1] > 0.3                     # well above chance after 3 short epochs
    assert abs(evaluate(model, val.images.contiguous(memory_format=torch.channels_last), val.labels)[1]
               - history["val_accuracy"][-1]) < 1e-6
    out = tmp_path_factory.mktemp("googlenet") / "artifacts"
    export(out, model, val, history, {"val_accuracy": history["val_accuracy"][-1], "epochs": 3})
    return out, history


def export(out, model, val, history, reported, figure=None):
    artifacts = export_for_grading(model, val.images, out, history=history, reported=reported)
    figure = figure or plot_curves(history)
    save_canvas(figure, artifacts / "figures" / "accuracy_curves.png")
    (artifacts / "curves.json").write_text(json.dumps({"figure": "figures/accuracy_curves.png",
                                                       "lines": figure_lines(figure)}))
    return artifacts


def check(artifacts, tmp_path):
    ctx = EvalContext(artifacts, tmp_path, "cifar10", "tiny", None, None, 0)
    return run_check("googlenet_curves", ctx, {"tolerance": 0.01, "min_epochs": 2, "radius_px": 3})


def test_reference_curves_earn_full_marks(run, tmp_path):
    artifacts, _ = run
    result = check(artifacts, tmp_path)
    assert result["score"] == 1.0, result["explanation"]
    assert "curve_check" in result["figures"]


def _variant(artifacts, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(artifacts, copy)
    return copy


def test_curves_that_do_not_belong_to_the_run_lose_marks(run, tmp_path):
    artifacts, history = run
    # a plausible wrong submission: the history of another (longer, better) run, plotted faithfully
    other = {k: [min(1.0, v + 0.05) for v in values] + [min(1.0, values[-1] + 0.08)] for k, values in history.items()}
    wrong = _variant(artifacts, tmp_path, "other_run")
    (wrong / "history.json").write_text(json.dumps(other))
    fig = plot_curves(other)
    save_canvas(fig, wrong / "figures" / "accuracy_curves.png")
    (wrong / "curves.json").write_text(json.dumps({"figure": "figures/accuracy_curves.png", "lines": figure_lines(fig)}))
    result = check(wrong, tmp_path)
    assert result["score"] <= 0.5, result["explanation"]
    assert "not those of this model" in result["explanation"] and "reports epochs=3" in result["explanation"]


def test_a_figure_that_shows_something_else_loses_marks(run, tmp_path):
    artifacts, history = run
    # the figure plots the losses instead of the accuracies
    wrong = _variant(artifacts, tmp_path, "losses")
    fig = plot_curves({"train_accuracy": history["train_loss"], "val_accuracy": history["val_loss"]})
    save_canvas(fig, wrong / "figures" / "accuracy_curves.png")
    (wrong / "curves.json").write_text(json.dumps({"figure": "figures/accuracy_curves.png", "lines": figure_lines(fig)}))
    result = check(wrong, tmp_path)
    assert result["score"] == 0.5 and "no line showing the recorded" in result["explanation"]
    # the line data claims the history but the PNG is another picture
    blank = _variant(artifacts, tmp_path, "blank")
    matplotlib.pyplot.imsave(blank / "figures" / "accuracy_curves.png", np.ones((288, 480, 3)))
    result = check(blank, tmp_path)
    assert result["score"] == 0.75 and "0 of 6 plotted points" in result["explanation"]


# ---- the whole path on tiny --------------------------------------------------------------------

def test_demo_reference_submission_earns_full_automatic_marks(demo_run):
    """The demo's honest submission (the reference solution in the released notebook, graded with
    the cohort through Dask in the sandbox) earns full automatic marks, as `verify` requires of the
    reference; this replaces a separate verify run (verify's own logic: tests/test_verify_check.py)."""
    honest = demo_run.run.results(ASSIGNMENT)["alice_reference"]
    assert not automatic_shortfalls(honest), automatic_shortfalls(honest)
    assert {p.id: p.points for p in honest.parts if p.kind in ("tests", "metric", "artifact")} == {
        "tests": 9, "accuracy": 10, "curves": 6}


def test_demo_smoothed_curves_submission_earns_less(demo_run):
    """The demo's wrong submission smooths its history before plotting, reporting and exporting
    it: the curves no longer belong to the exported model."""
    by = demo_run.run.results(ASSIGNMENT)
    wrong, honest = by["judy_smoothed_curves"], by["alice_reference"]
    parts = {p.id: p for p in wrong.parts}
    assert wrong.status == "graded" and wrong.score < honest.score
    assert parts["tests"].points == 9 and parts["accuracy"].points == 10   # the model itself is fine
    assert parts["curves"].points < 6 and "not those of this model" in parts["curves"].explanation
    assert any("reported validation accuracy" in flag for flag in wrong.flags)
