"""VGG16 transfer learning: the flowers data, the staged weights, the reference on tiny, the
frozen-backbone check on in-process exports (right and wrong),
and the demo's graded submissions of the assignment (honest and wrong)."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder.datasets import DatasetMissing, load_split
from autograder.datasets.flowers import CLASSES, FOLDER, TEST_FOLDER, stage_flowers
from autograder.datasets.hidden import load_test_split
from autograder.datasets.pretrained import WEIGHT_FILES, WeightsMissing, pretrained_model
from autograder.grading.checks import run_check
from autograder.grading.checks.context import EvalContext
from autograder.student import export_for_grading
from reference.vgg16_transfer import adapt_vgg16, backbone_of, extract_features, head_accuracy, train_head

from .conftest import automatic_shortfalls

ASSIGNMENT = "vgg16_transfer"
CPU = torch.device("cpu")


# ---- data ------------------------------------------------------------------------------------

def test_tiny_flowers_are_balanced_small_and_the_test_split_needs_the_secret():
    train, val = load_split("flowers", "train"), load_split("flowers", "val")
    assert train.images.shape[1:] == (3, 32, 32) and train.classes == CLASSES
    assert torch.equal(train.labels.bincount(), torch.full((5,), len(train) // 5))
    assert not torch.equal(train.images[:len(val)], val.images)
    test = load_test_split("flowers", "tiny", None, 11)
    assert not torch.equal(test.images, load_test_split("flowers", "tiny", None, 12).images)
    with pytest.raises(PermissionError, match="held out"):
        load_split("flowers", "test")


def test_full_flowers_missing_names_the_folder_and_classes(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        load_split("flowers", "train", "full", tmp_path)
    message = str(err.value)
    assert str(tmp_path / FOLDER) in message and "daisy" in message and "tulips" in message
    assert "downloaded" in message
    with pytest.raises(DatasetMissing, match=TEST_FOLDER):   # the test photos live under the hidden root
        load_test_split("flowers", "full", tmp_path, 0)


def test_full_flowers_staged_and_read_with_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in CLASSES:
        (tmp_path / "src" / name).mkdir(parents=True)
        for i in range(10):
            pixels = rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "src" / name / f"{i}.jpg")
    counts = stage_flowers(tmp_path / "src", tmp_path / "data", tmp_path / "hidden")
    assert counts == {"train+val": 40, "test": 10}
    train, val = load_split("flowers", "train", "full", tmp_path / "data"), load_split("flowers", "val", "full", tmp_path / "data")
    test = load_test_split("flowers", "full", tmp_path / "hidden", 0)
    assert (len(train), len(val), len(test)) == (34, 6, 10)
    assert train.images.shape[1:] == (3, 224, 224) and set(val.labels.tolist()) == set(range(5))


def test_missing_vgg16_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissing) as err:
        pretrained_model("vgg16", "full", tmp_path / "data")
    message = str(err.value)
    assert WEIGHT_FILES["vgg16"] == "vgg16-397923af.pth" and "vgg16-397923af.pth" in message
    assert str(tmp_path / "data" / "torch" / "hub" / "checkpoints") in message and "downloaded" in message


# ---- the reference and the frozen-backbone check ----------------------------------------------

@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    train, val = load_split("flowers", "train"), load_split("flowers", "val")
    model = adapt_vgg16(pretrained_model("vgg16"), len(CLASSES))
    start = copy.deepcopy(model.features.state_dict())
    backbone = backbone_of(model)
    features = extract_features(backbone, train.images, 256, CPU), extract_features(backbone, val.images, 256, CPU)
    history = train_head(model.classifier, features[0], train.labels, features[1], val.labels, 15, 128, 3e-3, CPU)
    return model, start, history, features, val


def _evaluate(tmp_path, model, val):
    out = export_for_grading(model, val.images, tmp_path / "artifacts")
    ctx = EvalContext(out, tmp_path / "grader", "flowers", "tiny", None, None, secret=5)
    return run_check("vgg16_frozen_backbone", ctx, {})


def test_reference_trains_the_head_on_cached_features(trained):
    model, start, history, (_, val_features), val = trained
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert history["val_accuracy"][-1] > 0.85
    assert history["val_accuracy"][-1] == head_accuracy(model.classifier, val_features, val.labels)
    assert all(torch.equal(v, start[k]) for k, v in model.features.state_dict().items())


def test_an_unfrozen_backbone_loses_the_frozen_check(trained, tmp_path):
    """A plausible mistake: the whole network is fine-tuned (the backbone was never frozen). The
    right export earns the check in test_reference_verifies_on_tiny below."""
    model, _, _, _, val = trained
    wrong = copy.deepcopy(model)
    wrong.features.requires_grad_(True)
    optimizer = torch.optim.Adam(wrong.parameters(), lr=1e-4)
    train = load_split("flowers", "train")
    wrong.train()
    loss = F.cross_entropy(wrong(train.images[:32]), train.labels[:32])
    loss.backward()
    optimizer.step()
    result = _evaluate(tmp_path, wrong, val)
    assert result["score"] == 0.0
    assert "did not stay frozen" in result["explanation"] and "conv1_1" in result["explanation"]
    assert result["details"]["unchanged"] < result["details"]["tensors"]


# ---- the whole path on tiny --------------------------------------------------------------------

def test_demo_reference_submission_earns_full_automatic_marks(demo_run):
    """The demo's honest submission (the reference solution in the released notebook, graded with
    the cohort through Dask in the sandbox) earns full automatic marks, as `verify` requires of the
    reference; this replaces a separate verify run (verify's own logic: tests/test_verify_check.py)."""
    honest = demo_run.run.results(ASSIGNMENT)["alice_reference"]
    assert not automatic_shortfalls(honest), automatic_shortfalls(honest)
    parts = {p.id: p for p in honest.parts}
    assert parts["frozen_backbone"].points == parts["frozen_backbone"].max_points
    assert honest.evaluation["test"]["accuracy"] >= 0.9


def test_demo_unfrozen_backbone_submission_earns_less(demo_run):
    """The demo's wrong submission fine-tunes the whole network after the head: its backbone's
    weights change during training, which the frozen-backbone check and a hidden test catch."""
    by = demo_run.run.results(ASSIGNMENT)
    wrong, honest = by["heidi_unfrozen_backbone"], by["alice_reference"]
    parts = {p.id: p for p in wrong.parts}
    assert wrong.status == "graded" and wrong.score < honest.score
    assert parts["frozen_backbone"].points == 0
    assert "did not stay frozen" in parts["frozen_backbone"].explanation and "conv1_1" in parts["frozen_backbone"].explanation
    assert parts["tests"].details["cells"]["test_training"] == 0
    assert "it must stay frozen" in parts["tests"].explanation
