"""The spine_architectures assignment (issue 16): architecture checks on exported graphs (each
property present and absent, on small hand-built modules), the spine data (tiny, and the full
RSNA loader on a tiny DICOM tree written with pydicom), the hidden-split metrics, and the
comparison's "which is better" check. All quick; the graded demo cohort is asserted in
test_spine_cohort_grades_as_intended through the session demo_run fixture."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder.datasets import DatasetMissing, load_split
from autograder.datasets.registry import load_hidden_split
from autograder.datasets.spine import CLASSES, FOLDER, LOSS_WEIGHTS, load_full, study_split
from autograder.grading.graph_checks import (GraphView, check_architecture, check_two_sizes, parameter_count,
                                             residual_additions, skip_concatenations)

SIZES = ((24, 24), (40, 32))


_EXPORTED: dict = {}


def export(module: nn.Module, size=(24, 24), channels: int = 1):
    """Exported like the notebook does (dynamic batch, height and width), saved and loaded back;
    once per architecture (its layers and settings), since the checks look at the structure only."""
    from autograder.student import _export_program

    settings = tuple(tuple(sorted((k, v) for k, v in vars(m).items() if isinstance(v, (bool, int, str))))
                     for m in module.modules())
    key = (type(module).__name__, settings, repr(module), size, channels)
    if key not in _EXPORTED:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "m.pt2"
            _export_program(module.eval(), torch.zeros(2, channels, *size), path, dynamic_size=True)
            _EXPORTED[key] = torch.export.load(io.BytesIO(path.read_bytes()))
    return _EXPORTED[key]


def cbr(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.ReLU())


class TinyUNet(nn.Module):
    def __init__(self, skips=2, upsample=True, pool="mean"):
        super().__init__()
        self.skips, self.upsample, self.pool = skips, upsample, pool
        self.e1, self.e2, self.b = cbr(1, 4), cbr(4, 8), cbr(8, 8)
        self.d2 = cbr(8 + 8 * (skips >= 1), 4)
        self.d1 = cbr(4 + 4 * (skips >= 2), 4)
        self.fc = nn.Linear(4 if upsample else 8, 3)

    def forward(self, x):
        e1 = self.e1(x)
        e2 = self.e2(F.max_pool2d(e1, 2))
        b = self.b(F.max_pool2d(e2, 2))
        if not self.upsample:
            return self.fc(b.mean((2, 3)))
        u = F.interpolate(b, size=e2.shape[-2:])
        d2 = self.d2(torch.cat([u, e2], 1) if self.skips >= 1 else u)
        u = F.interpolate(d2, size=e1.shape[-2:])
        d1 = self.d1(torch.cat([u, e1], 1) if self.skips >= 2 else u)
        if self.pool == "mean":
            return self.fc(d1.mean((2, 3)))
        return self.fc(d1[:, :, 0, 0])          # no pooling: one pixel of the map


class Parallel(nn.Module):
    """Two branches of the same input concatenated (Inception-like): not a skip connection."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = cbr(1, 4), cbr(1, 4), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(torch.cat([self.a(x), self.b(x)], 1).mean((2, 3)))


class Block(nn.Module):
    def __init__(self, cin, cout, stride=1, residual=True):
        super().__init__()
        self.residual = residual
        self.body = nn.Sequential(cbr(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1), nn.BatchNorm2d(cout))
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.short(x)) if self.residual else F.relu(self.body(x))


class TinyResNet(nn.Module):
    def __init__(self, residual=True, adaptive=True, width=4):
        super().__init__()
        self.adaptive = adaptive
        self.stem = cbr(1, width)
        self.blocks = nn.Sequential(Block(width, width, 1, residual), Block(width, 2 * width, 2, residual))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width if adaptive else 2 * width * 12 * 12, 3)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(self.pool(x) if self.adaptive else x, 1))


class SumOfTwoMaps(nn.Module):
    """An addition of two unrelated maps of the same shape: not a residual connection."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.pool, self.fc = cbr(1, 4), cbr(1, 4), nn.AdaptiveAvgPool2d(1), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.a(x) + self.b(torch.ones_like(x))), 1))


def findings(module, require, size=(24, 24)):
    return {f.name: f for f in check_architecture(export(module, size), require, SIZES)}


# ---- the graph checks -------------------------------------------------------------------------------

def test_view_evaluates_symbolic_sizes_at_two_input_sizes():
    view = GraphView(export(TinyUNet()), SIZES)
    assert view.dynamic
    sizes = {s for n, s in view.spatial.items() if view.scales(n)}
    assert ((24, 24), (40, 32)) in sizes and ((12, 12), (20, 16)) in sizes and ((6, 6), (10, 8)) in sizes


def test_skip_concatenations_present_counted_and_absent():
    assert len(skip_concatenations(GraphView(export(TinyUNet(skips=2)), SIZES))) == 2
    one = findings(TinyUNet(skips=1), {"skip_concatenations": 2})["skip_concatenations"]
    assert not one.passed and one.value == 1 and "at least 2" in one.sentence
    none = findings(TinyUNet(skips=0), {"skip_concatenations": 1})["skip_concatenations"]
    assert not none.passed and none.value == 0
    assert not findings(Parallel(), {"skip_concatenations": 1})["skip_concatenations"].passed, \
        "two parallel branches of the same input are not an encoder-decoder skip"


def test_bottleneck_present_and_absent():
    assert findings(TinyUNet(), {"bottleneck": True})["bottleneck"].passed
    flat = findings(TinyUNet(upsample=False), {"bottleneck": True})["bottleneck"]
    assert not flat.passed and "never upsampled" in flat.sentence
    assert not findings(Parallel(), {"bottleneck": True})["bottleneck"].passed


def test_global_pool_before_linear_present_and_absent():
    assert findings(TinyUNet(), {"global_pool_before_linear": True})["global_pool_before_linear"].passed
    picked = findings(TinyUNet(pool="pixel"), {"global_pool_before_linear": True})["global_pool_before_linear"]
    assert not picked.passed and picked.sentence == ("The last linear layer does not follow a global pooling over "
                                                     "height and width.")


def test_residual_additions_present_and_absent():
    assert len(residual_additions(GraphView(export(TinyResNet()), SIZES))) == 2, "identity and projection shortcut"
    plain = findings(TinyResNet(residual=False), {"residual_additions": 1})["residual_additions"]
    assert not plain.passed and plain.value == 0
    assert not findings(SumOfTwoMaps(), {"residual_additions": 1})["residual_additions"].passed


def test_adaptive_pool_before_classifier_present_and_absent():
    assert findings(TinyResNet(), {"adaptive_pool_before_classifier": True})["adaptive_pool_before_classifier"].passed
    mean = findings(TinyUNet(), {"adaptive_pool_before_classifier": True})["adaptive_pool_before_classifier"]
    assert not mean.passed, "a mean over H and W is global pooling, but not an adaptive pooling layer"


def test_parameter_budget_counts_the_exported_parameters():
    model = TinyResNet()
    program = export(model)
    assert parameter_count(program) == sum(p.numel() for p in model.parameters())
    over = findings(TinyResNet(width=16), {"parameter_budget": 5000})["parameter_budget"]
    assert not over.passed and "more than the budget of 5,000" in over.sentence
    assert findings(TinyResNet(), {"parameter_budget": 5000})["parameter_budget"].passed


def test_a_model_that_works_at_one_size_only():
    """A flatten into the classifier exports (at its one size) but fails at the other, and none of
    the pooling properties hold."""
    static = export(TinyResNet(adaptive=False))
    two = check_two_sizes(static, SIZES, 1)
    assert not two.passed and "fails on a 40x32 input" in two.sentence
    assert check_two_sizes(export(TinyResNet()), SIZES, 1).passed
    found = {f.name: f for f in check_architecture(static, {"adaptive_pool_before_classifier": True,
                                                           "residual_additions": 2}, SIZES)}
    assert not found["adaptive_pool_before_classifier"].passed and found["residual_additions"].passed


def test_each_failed_property_is_one_sentence_and_unknown_properties_are_refused():
    failed = [f for f in check_architecture(export(TinyResNet(residual=False, adaptive=False)),
                                            {"residual_additions": 1, "adaptive_pool_before_classifier": True,
                                             "two_sizes": True, "skip_concatenations": 1}, SIZES) if not f.passed]
    assert len(failed) == 4
    assert all(f.sentence.endswith(".") and f.sentence[0].isupper() and f.sentence.count(". ") == 0 for f in failed)
    with pytest.raises(ValueError, match="unknown architecture properties"):
        check_architecture(export(TinyResNet()), {"attention": True}, SIZES)


# ---- the data ----------------------------------------------------------------------------------------

def test_tiny_splits_are_imbalanced_slices_and_the_test_split_needs_the_secret():
    train, val = load_split("spine", "train"), load_split("spine", "val")
    assert train.images.shape[1:] == (1, 24, 24) and train.classes == CLASSES
    shares = torch.bincount(train.labels, minlength=3).float() / len(train)
    assert shares[0] > 0.7 and shares[2] < shares[1] < 0.2, "Normal/Mild the majority, Severe the rarest"
    with pytest.raises(PermissionError):
        load_split("spine", "test")
    a, b = (load_hidden_split("spine", "tiny", None, s) for s in (1, 2))
    assert not torch.equal(a.images, b.images) and not torch.equal(a.images[:len(val)], val.images)


def write_rsna_tree(root: Path, studies: dict[str, str], broken: str | None = None, missing: str | None = None):
    """A miniature RSNA 2024 layout: the three CSVs and one sagittal T2/STIR DICOM per study."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = root / FOLDER
    folder.mkdir(parents=True)
    with open(folder / "train.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study_id", "spinal_canal_stenosis_l4_l5", "spinal_canal_stenosis_l5_s1"])
        w.writerows([[s, label, "Normal/Mild"] for s, label in studies.items()] + [["999", "", "Severe"]])
    with open(folder / "train_series_descriptions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study_id", "series_id", "series_description"])
        for s in studies:
            w.writerows([[s, f"{s}1", "Sagittal T2/STIR"], [s, f"{s}2", "Axial T2"]])
    with open(folder / "train_label_coordinates.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["study_id", "series_id", "instance_number", "condition", "level", "x", "y"])
        for s in studies:
            w.writerows([[s, f"{s}1", 7, "Spinal Canal Stenosis", "L4/L5", 30.0, 40.0],
                         [s, f"{s}1", 8, "Spinal Canal Stenosis", "L3/L4", 30.0, 20.0]])
    rng = np.random.default_rng(0)
    for s in studies:
        path = folder / "train_images" / s / f"{s}1" / "7.dcm"
        path.parent.mkdir(parents=True)
        if s == missing:
            continue
        if s == broken:
            path.write_bytes(b"not a dicom file")
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = pydicom.uid.MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 64, 48, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = rng.integers(0, 4096, (64, 48), dtype=np.uint16).tobytes()
        ds.save_as(path, enforce_file_format=True)


def test_full_loader_reads_the_labelled_slices_of_a_dicom_tree_split_by_study(tmp_path):
    labels = ["Normal/Mild", "Moderate", "Severe", "Normal/Mild"] * 5
    studies = {str(1000 + i): label for i, label in enumerate(labels)}
    write_rsna_tree(tmp_path, studies)
    which = study_split(sorted(studies, key=lambda s: (len(s), s)))
    splits = {name: load_full(name, tmp_path) for name in ("train", "val", "test")}
    assert sum(len(s) for s in splits.values()) == 20, "study 999 has no severity and no slice: left out"
    for name, split in splits.items():
        assert split.images.shape[1:] == (1, 128, 128) and split.classes == CLASSES
        expected = [CLASSES.index(studies[s]) for s in sorted(studies, key=lambda s: (len(s), s)) if which[s] == name]
        assert split.labels.tolist() == expected, "each study in exactly one split, with its L4/L5 severity"
    assert len(splits["test"]) == 3 and len(splits["val"]) == 3


def test_full_loader_names_a_missing_or_unreadable_dicom_file(tmp_path):
    studies = {str(1000 + i): "Normal/Mild" for i in range(20)}
    which = study_split(sorted(studies, key=lambda s: (len(s), s)))
    victim = next(s for s in studies if which[s] == "train")
    write_rsna_tree(tmp_path / "a", studies, broken=victim)
    with pytest.raises(ValueError, match=rf"{victim}/{victim}1/7\.dcm: unreadable DICOM"):
        load_full("train", tmp_path / "a")
    write_rsna_tree(tmp_path / "b", studies, missing=victim)
    with pytest.raises(DatasetMissing, match=rf"{victim}/{victim}1/7\.dcm: the DICOM slice is missing"):
        load_full("train", tmp_path / "b")
    with pytest.raises(DatasetMissing, match="train.csv is missing"):
        load_full("train", tmp_path / "nothing")


# ---- the hidden-split metrics and the comparison ---------------------------------------------------

def test_hidden_metrics_weigh_the_log_loss_by_true_class():
    from autograder.grading.checks.spine_architectures import hidden_metrics

    class Fixed(nn.Module):   # always 0.8 / 0.1 / 0.1
        def forward(self, x):
            return torch.log(torch.tensor([[0.8, 0.1, 0.1]])).expand(x.shape[0], 3)

    labels = torch.tensor([0, 0, 1, 2])
    m = hidden_metrics(export(Fixed()), torch.zeros(4, 1, 24, 24), labels, CLASSES, LOSS_WEIGHTS)
    expected = (2 * -np.log(0.8) + 2 * -np.log(0.1) + 4 * -np.log(0.1)) / (1 + 1 + 2 + 4)
    assert m["log_loss"] == pytest.approx(expected, rel=1e-5)
    assert m["recall"] == {"Normal/Mild": 1.0, "Moderate": 0.0, "Severe": 0.0}
    assert m["confusion_matrix"] == [[2, 0, 0], [1, 0, 0], [1, 0, 0]]


@pytest.mark.parametrize("text, passed", [
    ("The ResNet generalises better: macro-F1 0.94 against 0.85 for the U-Net.", True),
    ("The U-Net is worse than the ResNet here.", True),
    ("The U-Net generalises better than the ResNet.", False),
    ("The ResNet reached 0.94 and the U-Net 0.85.", False),      # no verdict
])
def test_the_configuration_called_better_must_be_the_measured_better_one(text, passed):
    from autograder.inquiry.checks import check_better
    from autograder.inquiry.log import Measured

    m = Measured("macro_f1", (0.85,), (0.94,), 0.01)
    ok, why = check_better(text, {"architecture": ("U-Net", "ResNet")}, m)
    assert ok is passed, why
    tie = Measured("macro_f1", (0.90,), (0.905,), 0.01)
    assert check_better("The U-Net generalises better.", {"architecture": ("U-Net", "ResNet")}, tie)[0]


def test_archive_vetting_accepts_the_guards_of_a_dynamic_size_unet_and_nothing_more_of_torch():
    """F.interpolate at dynamic sizes leaves `torch.sym_max(...)` in the guards: allowed; any
    other use of `torch` in a guard is still refused."""
    from autograder.grading.checks.context import _GUARD_ATTRS, _GUARD_NAMES, UnsafeArtifact, _check_expression

    _check_expression("(torch.sym_max(1, L['x'].size()[3] // 2)*torch.sym_min(1, L['x'].size()[2] // 2)) != 1",
                      "a guard", _GUARD_NAMES, _GUARD_ATTRS)
    for bad in ("torch.load('x')", "torch", "torch.size(1)", "torch.sym_max.__globals__", "torch.sym_max.x(1)"):
        with pytest.raises(UnsafeArtifact):
            _check_expression(bad, "a guard", _GUARD_NAMES, _GUARD_ATTRS)
    with pytest.raises(UnsafeArtifact):   # not in symbolic-shape strings, which allow no attributes
        _check_expression("torch.sym_max(1, s0)", "a shape", _GUARD_NAMES)


# ---- the demo cohort, graded in the session's demo run --------------------------------------------

A = "spine_architectures"


def _parts(result) -> dict:
    return {p.id: p for p in result.parts}


def test_demo_reference_earns_full_automatic_marks(demo_run):
    from .conftest import automatic_shortfalls

    honest = demo_run.run.results(A)["alice_reference"]
    assert not automatic_shortfalls(honest), automatic_shortfalls(honest)
    checks = {c["name"]: c["passed"] for c in _parts(honest)["comparison"].details["checks"]}
    assert all(passed for name, passed in checks.items() if name != "numbers_match"), checks


def test_demo_cohort_loses_exactly_the_missing_architecture_properties(demo_run):
    by = demo_run.run.results(A)
    no_skips = _parts(by["olga_unet_without_skips"])
    assert no_skips["unet_graph"].points == pytest.approx(6 * 4 / 5)
    assert "at least 2 skip connections are required" in no_skips["unet_graph"].explanation
    assert no_skips["resnet_graph"].points == 5
    no_residuals = _parts(by["paul_resnet_without_residuals"])
    assert no_residuals["resnet_graph"].points == pytest.approx(5 * 3 / 4)
    assert "at least 3 residual connections are required" in no_residuals["resnet_graph"].explanation
    assert no_residuals["unet_graph"].points == 6
    one_size = _parts(by["quinn_one_input_size"])
    explanation = one_size["unet_graph"].explanation
    assert one_size["unet_graph"].points == pytest.approx(6 * 3 / 5)
    assert "does not follow a global pooling" in explanation and "fails on a 40x32 input" in explanation
    assert one_size["tests"].details["cells"]["test_unet"] == 0


def test_hidden_split_check_scores_both_halves_and_sends_a_log_that_is_not_the_models_to_a_human(tmp_path):
    from autograder.grading.checks import run_check
    from autograder.grading.checks.context import EvalContext
    from autograder.grading.checks.spine_architectures import hidden_metrics
    from autograder.student import export_for_grading

    val = load_split("spine", "val")
    torch.manual_seed(0)
    unet, resnet = TinyUNet().eval(), TinyResNet().eval()
    logged = hidden_metrics(export(unet), val.images, val.labels, val.classes, [1.0] * 3)["macro_f1"]
    options = {"program": "unet.pt2", "label": "U-Net", "logged_as": "baseline",
               "macro_f1": {"tiny": [[0.0, 1.0]]}, "log_loss": {"tiny": [[0.01, 1.0]]}}
    for name, value in (("honest", logged), ("forged", min(1.0, logged + 0.3))):
        artifacts = export_for_grading(resnet, val.images, tmp_path / name, programs={"unet": (unet, val.images)},
                                       experiments={"runs": [{"config": "baseline", "seed": 0,
                                                              "metrics": {"macro_f1": value}}]}, dynamic_size=True)
        ctx = EvalContext(artifacts, tmp_path / f"{name}-out", "spine", "tiny", None, None, 7)
        (tmp_path / f"{name}-out").mkdir()
        result = run_check("spine_hidden_split", ctx, options)
        assert result["score"] == 0.5, "any macro-F1 earns its half; an untrained model's log loss is not 0.01"
        assert "weighted log loss" in result["explanation"] and Path(result["figures"]["confusion_unet"]).is_file()
        assert result["needs_review"] is (name == "forged"), result["explanation"]
    assert "the log may not belong to this model" in result["explanation"]
