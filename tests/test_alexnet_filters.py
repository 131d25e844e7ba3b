"""AlexNet first-layer visualization: the photos, the staged weights, the reference functions, the
evaluator checks on in-process exports (right and wrong),
and the demo's graded submissions of the assignment (honest and wrong)."""


import matplotlib
import pytest
import torch
import torch.nn as nn
import torchvision

from autograder.datasets import load_split
from autograder.datasets.hidden import load_test_split
from autograder.datasets.pretrained import WEIGHT_FILES, WeightsMissing, pretrained_model
from autograder.grading.checks import run_check
from autograder.grading.checks.context import EvalContext
from autograder.student import export_for_grading
from reference.alexnet_filters import feature_maps, first_layer_filters, plot_filter_grid, plot_map_grid

from .conftest import automatic_shortfalls

matplotlib.use("agg")
ASSIGNMENT = "alexnet_filters"


def test_photos_are_alexnet_sized_and_the_hidden_crops_follow_the_secret():
    photos = load_split("sample_photos", "train")
    assert photos.images.shape == (2, 3, 224, 224) and photos.classes == ("china", "flower")
    hidden = load_test_split("sample_photos", "tiny", None, 3)
    assert hidden.images.shape[1:] == (3, 224, 224)
    assert not torch.equal(hidden.images, load_test_split("sample_photos", "tiny", None, 4).images)
    assert not any(torch.allclose(h, p) for h in hidden.images for p in photos.images)
    with pytest.raises(PermissionError):
        load_split("sample_photos", "test")


def test_weight_file_names_are_torchvisions():
    for arch, weights in (("alexnet", torchvision.models.AlexNet_Weights), ("vgg16", torchvision.models.VGG16_Weights)):
        assert weights.IMAGENET1K_V1.url.rsplit("/", 1)[1] == WEIGHT_FILES[arch]


def test_missing_alexnet_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsMissing) as err:
        pretrained_model("alexnet", "full", tmp_path / "data")
    message = str(err.value)
    assert "alexnet-owt-7be5be79.pth" in message and "downloaded" in message
    assert str(tmp_path / "data" / "torch" / "hub" / "checkpoints") in message and str(tmp_path / "torch") in message


def test_staged_weights_are_read_from_the_data_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    stand_in = pretrained_model("alexnet", "tiny")
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(stand_in.state_dict(), folder / WEIGHT_FILES["alexnet"])
    loaded = pretrained_model("alexnet", "full", tmp_path)
    assert not loaded.training and all(p.requires_grad and p.device.type == "cpu" for p in loaded.parameters())
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), stand_in.state_dict().values()))


# ---- the checks on in-process exports -----------------------------------------------------------

class FeatureMapProgram(nn.Module):
    """As in the notebook's export cell."""

    def __init__(self, model, fn):
        super().__init__()
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "fn", fn)

    def forward(self, images):
        return self.fn(self.model, images[0]).unsqueeze(0)


@pytest.fixture(scope="module")
def setup():
    photos = load_split("sample_photos", "train")
    return pretrained_model("alexnet", "tiny"), photos


def _export(tmp_path, model, photos, maps_fn):
    image = photos.images[0]
    maps = maps_fn(model, image)
    out = export_for_grading(model.features[:2], photos.images, tmp_path / "artifacts",
                             tensors={"filters": first_layer_filters(model), "feature_maps": maps},
                             figures={"a": plot_filter_grid(first_layer_filters(model)), "b": plot_map_grid(maps)},
                             programs={"feature_maps": (FeatureMapProgram(model, maps_fn), photos.images)})
    ctx = EvalContext(out, tmp_path / "grader", "sample_photos", "tiny", None, None, secret=17)
    return {name: run_check(f"alexnet_{name}", ctx, {}) for name in ("filters", "feature_maps", "grids")}


def test_reference_functions(setup):
    model, photos = setup
    filters, maps = first_layer_filters(model), feature_maps(model, photos.images[0])
    assert filters.shape == (64, 3, 11, 11) and torch.equal(filters, model.features[0].weight)
    assert maps.shape == (64, 55, 55) and maps.min() >= 0


def test_reference_export_earns_every_check(setup, tmp_path):
    results = _export(tmp_path, *setup, feature_maps)
    for name, result in results.items():
        assert result["score"] == 1.0, (name, result["explanation"])
    assert set(results["grids"]["figures"]) == {"expected_filter_grid", "expected_feature_map_grid"}


def test_transposed_feature_maps_lose_marks(setup, tmp_path):
    def transposed(model, image):   # a plausible mistake: rows and columns swapped
        return feature_maps(model, image).transpose(1, 2)

    results = _export(tmp_path, *setup, transposed)
    assert results["filters"]["score"] == 1.0
    assert results["feature_maps"]["score"] == 0.0 and "transposed" in results["feature_maps"]["explanation"]
    assert results["grids"]["score"] == 0.5   # the filter grid is right, the map grid is not
    assert "no exported figure shows them" in results["grids"]["explanation"]


# ---- the whole path on tiny --------------------------------------------------------------------

def test_demo_reference_submission_earns_full_automatic_marks(demo_run):
    """The demo's honest submission (the reference solution in the released notebook, graded with
    the cohort through Dask in the sandbox) earns full automatic marks, as `verify` requires of the
    reference; this replaces a separate verify run (verify's own logic: tests/test_verify_check.py)."""
    honest = demo_run.run.results(ASSIGNMENT)["alice_reference"]
    assert not automatic_shortfalls(honest), automatic_shortfalls(honest)
    assert {p.id: p.points for p in honest.parts if p.kind == "artifact"} == {"filters": 3, "feature_maps": 5, "figures": 4}


def test_demo_transposed_feature_maps_submission_earns_less(demo_run):
    """The demo's wrong submission returns the feature maps with rows and columns swapped."""
    by = demo_run.run.results(ASSIGNMENT)
    wrong, honest = by["ivan_transposed_maps"], by["alice_reference"]
    parts = {p.id: p for p in wrong.parts}
    assert wrong.status == "graded" and wrong.score < honest.score
    assert parts["filters"].points == 3
    assert parts["feature_maps"].points == 0 and "transposed" in parts["feature_maps"].explanation
    assert parts["figures"].points == 2 and "no exported figure shows them" in parts["figures"].explanation
    assert parts["tests"].details["cells"]["test_feature_maps"] == 0
