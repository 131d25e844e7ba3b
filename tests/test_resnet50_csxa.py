"""ResNet-50 on CSXA: the generated stand-in, the atlas loader on a fake atlas (PNGs in nested
folders + dataset.xlsx), missing data and weights, the reference on tiny, the evaluator's metrics
and checks on in-process exports (right and plausibly wrong),
and the demo's graded submissions of the assignment (honest and wrong)."""

import copy

import numpy as np
import pytest
import torch

from autograder.datasets import DatasetMissing, load_split
from autograder.datasets.csxa import (CLASSES, FOLDER, SHEET, WEIGHT_FILES, ScaledResNet50, imagenet_resnet50_weights,
                                      index_atlas, pretrained_resnet50, stage, tiny_masks)
from autograder.datasets.hidden import load_test_split
from autograder.datasets.pretrained import weight_dirs
from autograder.grading.checks import run_check
from autograder.grading.checks.context import EvalContext
from autograder.grading.evaluate import _metrics, _predict
from autograder.grading.score import ScoringInput, score_metric
from autograder.rubric import load_rubric
from autograder.student import export_for_grading
from reference.resnet50_csxa import build_model, class_weights, grad_cam, predict, train_model

from .conftest import REPO, automatic_shortfalls

ASSIGNMENT = "resnet50_csxa"
CPU = torch.device("cpu")
RUBRIC = load_rubric(REPO / "rubrics" / f"{ASSIGNMENT}.yaml")


# ---- the tiny stand-in -------------------------------------------------------------------------

def test_tiny_standin_is_imbalanced_like_the_atlas_with_masks_on_the_spine():
    train = load_split("csxa", "train")
    assert train.images.shape[1:] == (1, 64, 64) and train.classes == CLASSES
    counts = train.labels.bincount(minlength=4).tolist()
    assert counts[0] >= counts[1] > counts[2] > counts[3] > 0           # Kyphotic rarest, as in the atlas
    masks = tiny_masks("train")
    assert masks.shape == (len(train), 64, 64) and 0.03 < masks.float().mean() < 0.25
    # the spine is brighter than the rest of the image
    assert (train.images[:, 0][masks].mean() > train.images[:, 0][~masks].mean() + 1.0).item()
    test = load_test_split("csxa", "tiny", None, 5)
    assert not torch.equal(test.images, load_test_split("csxa", "tiny", None, 6).images)
    with pytest.raises(PermissionError):
        tiny_masks("test")                                              # hidden masks need the secret
    with pytest.raises(PermissionError, match="held out"):
        load_split("csxa", "test")


# ---- the atlas on disk -------------------------------------------------------------------------

HEADER = ["Number", "Gender:female-1,male-0", "Age", "Disease classification: 1. Cervical spondylosis; 2. Healthy",
          "Curvature"]


def fake_atlas(folder, rows_with_images=40, rows_without_images=8, seed=0):
    """A sheet of 48 numbered rows (codes 1-5, 12 per merged class), 2 rows without a number, and
    PNGs in nested folders for the first 40 rows, plus one PNG whose number has no row."""
    import openpyxl
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    codes = [1] * 12 + [2] * 12 + [3] * 6 + [4] * 6 + [5] * 12
    rng.shuffle(codes)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(HEADER)
    numbers = list(range(1, rows_with_images + rows_without_images + 1))
    for number, code in zip(numbers, codes):
        age = int(rng.integers(20, 80))
        sheet.append([number, int(rng.integers(0, 2)), age, int(rng.integers(1, 3)), code])
        if number <= rows_with_images:
            sub = folder / ("batch1/sub" if number % 2 else "batch2")
            sub.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 255, (30 + number % 7, 20 + number % 5), dtype=np.uint8)
            mode = "RGB" if number == 3 else "L"
            image = Image.fromarray(pixels).convert(mode)
            if number == 5:                                              # a 16-bit radiograph
                image = Image.fromarray(pixels.astype(np.uint16) * 257)
            image.save(sub / f"{number:04d}{age:03d}.png")
    sheet.append([None, 1, 50, 1, 2])                                   # rows without a number
    sheet.append(["", 0, 61, 2, 1])
    book.save(folder / SHEET)
    Image.fromarray(rng.integers(0, 255, (10, 10), dtype=np.uint8)).save(folder / "batch2" / "0999050.png")
    return dict(zip(numbers, codes))


def test_atlas_images_are_matched_to_rows_and_mismatches_reported(tmp_path, capsys):
    codes = fake_atlas(tmp_path / FOLDER)
    index = index_atlas(tmp_path / FOLDER)
    assert index.matched == 40 and len(index.labels) == 48
    assert index.rows_without_images == list(range(41, 49)) and index.rows_without_number == 2
    assert [p.name for p in index.images_without_rows] == ["0999050.png"]
    assert index.labels[next(n for n, c in codes.items() if c == 4)] == CLASSES.index("Sigmoid")   # grades merged
    summary = index.summary()
    assert "8 rows have no image" in summary and "0999050.png" in summary and "2 sheet rows have no number" in summary
    splits = {s: load_split("csxa", s, "full", tmp_path) for s in ("train", "val")}
    test = load_test_split("csxa", "full", tmp_path, 0)
    assert "40 images matched" in capsys.readouterr().out
    assert sum(len(s) for s in splits.values()) + len(test) == 40
    assert splits["train"].images.shape[1:] == (1, 224, 224) and splits["train"].images.dtype == torch.float32
    for split in (*splits.values(), test):
        assert set(split.labels.tolist()) <= {0, 1, 2, 3}


def test_staged_atlas_keeps_the_test_images_under_the_hidden_root(tmp_path):
    fake_atlas(tmp_path / "atlas")
    copied = stage(tmp_path / "atlas", tmp_path / "data", tmp_path / "hidden")
    assert sum(copied.values()) == 40 and copied["test"] > 0
    assert len(load_split("csxa", "train", "full", tmp_path / "data")) == copied["train"]
    assert len(load_split("csxa", "val", "full", tmp_path / "data")) == copied["val"]
    assert len(load_test_split("csxa", "full", tmp_path / "hidden", 0)) == copied["test"]
    visible = {p.name for p in (tmp_path / "data").rglob("*.png")}
    hidden = {p.name for p in (tmp_path / "hidden").rglob("*.png")}
    assert not visible & hidden and len(visible) == copied["train"] + copied["val"]


def test_full_csxa_missing_names_the_sheet_and_folder(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        load_split("csxa", "train", "full", tmp_path)
    message = str(err.value)
    assert str(tmp_path / FOLDER / SHEET) in message and "PNG" in message and "downloaded" in message


def test_missing_imagenet_weights_name_the_file_and_both_places(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(DatasetMissing) as err:
        pretrained_resnet50("full", tmp_path / "data")
    message = str(err.value)
    assert WEIGHT_FILES[0] in message and str(weight_dirs(tmp_path / "data")[0]) in message
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in message and "downloaded" in message


def test_staged_weights_load_into_torchvision_resnet50(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    folder = weight_dirs(tmp_path / "data")[0]                        # where the course stages weights
    folder.mkdir(parents=True)
    state = torchvision.models.resnet50().state_dict()
    torch.save(state, folder / WEIGHT_FILES[1])                        # the V2 file name is accepted too
    assert imagenet_resnet50_weights(tmp_path / "data") == folder / WEIGHT_FILES[1]
    model = pretrained_resnet50("full", tmp_path / "data")
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    # the tiny stand-in is the same layout: at width 1 it takes the same state dict
    ScaledResNet50(width=1.0).load_state_dict(state)


# ---- the reference and the evaluator's checks ------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.manual_seed(0)
    train, val = load_split("csxa", "train"), load_split("csxa", "val")
    model = build_model(pretrained_resnet50("tiny"), 4)
    history, best = train_model(model, train, val, epochs=8, batch_size=50, lr=0.02, step_size=6,
                                weights=class_weights(train.labels, 4), device=CPU, warm_up_epochs=2, weight_decay=5e-4)
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_loss"][best - 1] == min(history["val_loss"])
    return model, val, tmp_path_factory.mktemp("csxa")


def export(model, val, out, cam_images=None, matrix_split=None):
    """What the locked export cell writes; `matrix_split`: the split the confusion matrix is of."""
    from sklearn.metrics import confusion_matrix, f1_score

    predicted = predict(model, val.images).argmax(1)
    on = matrix_split or val
    matrix = confusion_matrix(on.labels, predict(model, on.images).argmax(1), labels=range(4))
    recall = np.diag(matrix) / np.maximum(matrix.sum(1), 1)
    reported = {"val_macro_f1": float(f1_score(val.labels, predicted, average="macro", zero_division=0)),
                **{f"recall_{c}": float(r) for c, r in zip(CLASSES, recall)}}
    cams, classes = grad_cam(model, val.images[:32] if cam_images is None else cam_images, model.layer1)
    return export_for_grading(model, val.images, out, reported=reported,
                              tensors={"confusion_matrix": torch.as_tensor(matrix),
                                       "gradcam": cams, "gradcam_class": classes})


def checks(artifacts, out):
    ctx = EvalContext(artifacts, out, "csxa", "tiny", None, None, 1)
    return {p.id: run_check(p.options["check"], ctx, p.options.get("options", {})) for p in RUBRIC.of_kind("artifact")}


def test_reference_export_earns_the_checks(trained):
    model, val, tmp = trained
    results = checks(export(model, val, tmp / "reference"), tmp)
    assert results["confusion_matrix"]["score"] == 1.0, results["confusion_matrix"]["explanation"]
    gradcam = results["gradcam"]
    assert gradcam["details"]["mean_correlation"] > 0.99, gradcam["explanation"]
    assert gradcam["details"]["lift"] > 1.2, gradcam["explanation"]        # the heat lies on the spine
    assert set(gradcam["figures"]) == {"gradcam_agreement", "gradcam_hidden"}


def test_wrong_confusion_matrix_and_gradcam_lose_marks(trained):
    model, val, tmp = trained
    # the confusion matrix of the training split, and Grad-CAM computed for other images than the first 32
    artifacts = export(model, val, tmp / "wrong", cam_images=val.images[32:64], matrix_split=load_split("csxa", "train"))
    results = checks(artifacts, tmp)
    assert results["confusion_matrix"]["score"] <= 0.4, results["confusion_matrix"]["explanation"]
    assert "does not match the exported model's predictions" in results["confusion_matrix"]["explanation"]
    assert results["gradcam"]["details"]["mean_correlation"] < 0.6
    assert results["gradcam"]["score"] < 0.75


def test_majority_class_model_gets_less_than_full_marks(trained):
    model, val, tmp = trained
    majority = copy.deepcopy(model)
    with torch.no_grad():                                 # always "Lordotic", the most frequent class
        majority.fc.weight.zero_()
        majority.fc.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    artifacts = export(majority, val, tmp / "majority")
    ctx = EvalContext(artifacts, tmp, "csxa", "tiny", None, None, 1)
    metrics = _metrics(ctx.test_split.labels, _predict(ctx.module(), ctx.test_split.images), ctx.test_split.classes)
    assert metrics["min_recall"] == 0.0 and metrics["accuracy"] > 0.3
    for part in RUBRIC.of_kind("metric"):
        scored = score_metric(part, ScoringInput("tiny", None, {"ok": True, "test": metrics}))
        assert scored.points < part.points, (part.id, scored.explanation)
    assert score_metric(RUBRIC.part("min_recall"), ScoringInput("tiny", None, {"ok": True, "test": metrics})).points == 0


# ---- the whole path on tiny --------------------------------------------------------------------

def test_demo_reference_submission_earns_full_automatic_marks(demo_run):
    """The demo's honest submission (the reference solution in the released notebook, graded with
    the cohort through Dask in the sandbox) earns full automatic marks, as `verify` requires of the
    reference; this replaces a separate verify run (verify's own logic: tests/test_verify_check.py)."""
    honest = demo_run.run.results(ASSIGNMENT)["alice_reference"]
    assert not automatic_shortfalls(honest), automatic_shortfalls(honest)
    assert {p.id: p.points for p in honest.parts if p.kind in ("metric", "artifact")} == {
        "macro_f1": 8, "min_recall": 6, "confusion_matrix": 4, "gradcam": 5}


def test_demo_majority_class_submission_earns_less(demo_run):
    """The demo's wrong submission uses equal class weights and a learning rate far too large:
    the network collapses to (nearly) always predicting the most frequent class."""
    by = demo_run.run.results(ASSIGNMENT)
    wrong, honest = by["ken_majority_class"], by["alice_reference"]
    parts = {p.id: p for p in wrong.parts}
    test = wrong.evaluation["test"]
    assert wrong.status == "graded" and wrong.score < honest.score
    predicted = [sum(column) for column in zip(*test["confusion_matrix"])]
    assert predicted[CLASSES.index("Lordotic")] >= 0.8 * test["n"]          # the most frequent class
    assert test["min_recall"] == 0.0
    assert parts["min_recall"].points == 0 and "below every band" in parts["min_recall"].explanation
    assert parts["macro_f1"].points < 8
    assert parts["tests"].details["cells"]["test_class_weights"] == 0
