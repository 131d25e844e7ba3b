"""The mammography assignment (issue 15): its data, the config schema, the efficiency part kind on
its own (schema, scoring, measuring hand-built exports), the safe load of an int8 program, the
leakage and privacy checks; the demo cohort's graded results (session `demo_run`)."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from autograder.datasets import DatasetMissing, load_split
from autograder.datasets.mammo import (CONFIG_SCHEMA, ConfigError, PatientSplit, _read_full_once, cnn, config_errors,
                                       load_config, reference_fp32)
from autograder.datasets.registry import load_hidden_split
from autograder.grading.checks import run_check
from autograder.grading.checks.context import EvalContext, UnsafeArtifact, _allowed_target
from autograder.grading.efficiency import measure, quotable, score_efficiency
from autograder.grading.score import ScoringInput
from autograder.rubric import RubricError, parse_rubric

from .conftest import automatic_shortfalls

A = "mammo_efficiency"
SECRET = 4242
CONFIG = {"name": "small_adam", "epochs": 2, "batch_size": 32, "lr": 3e-3, "optimizer": "adam",
          "encoder": "small", "augmentation": "flip"}


# ---- data -------------------------------------------------------------------------------------

def test_tiny_train_has_two_views_per_patient_with_one_label():
    train = load_split("mammo", "train")
    assert isinstance(train, PatientSplit) and train.images.shape == (240, 1, 32, 32)
    assert len(train.patients) == 240 and len(set(train.patients)) == 120
    for p in set(train.patients):
        labels = {int(train.labels[i]) for i, q in enumerate(train.patients) if q == p}
        assert len(labels) == 1, "both views of a patient show the same lesion"
    assert 0.3 < float(train.labels.float().mean()) < 0.6
    # a patient's two views share their tissue: their brightness differs far less than between patients
    brightness = train.images.mean((1, 2, 3)).view(-1, 2)     # images come as (CC, MLO) pairs per patient
    assert all(train.patients[2 * i] == train.patients[2 * i + 1] for i in range(120))
    within = (brightness[:, 0] - brightness[:, 1]).abs().mean()
    between = (brightness[:, 0] - brightness[:, 0].roll(1)).abs().mean()
    assert within < between / 2


def test_hidden_split_needs_the_secret_and_has_patients_of_its_own():
    with pytest.raises(PermissionError):
        load_hidden_split("mammo", "tiny", None, None)
    a, b = (load_hidden_split("mammo", "tiny", None, s) for s in (SECRET, SECRET + 1))
    assert not torch.equal(a.images, b.images) and len(a) == 160
    assert not set(a.patients) & set(load_split("mammo", "train").patients)


def _stage_cbis(root: Path, split: str, rows: list[tuple[str, str, str]]) -> None:
    """A miniature CBIS-DDSM in JPEG form: (patient, pathology, series uid) per abnormality."""
    from PIL import Image

    (root / "cbis-ddsm" / "csv").mkdir(parents=True, exist_ok=True)
    for kind in ("mass", "calc"):
        path = root / "cbis-ddsm" / "csv" / f"{kind}_case_description_{split}_set.csv"
        lines = ["patient_id,breast density,left or right breast,image view,pathology,cropped image file path"]
        for i, (patient, pathology, uid) in enumerate(rows if kind == "mass" else []):
            lines.append(f"{patient},3,LEFT,CC,{pathology},Mass-Training_{patient}_LEFT_CC_1/1.2.3/{uid}/000000.dcm")
            folder = root / "cbis-ddsm" / "jpeg" / uid
            folder.mkdir(parents=True)
            Image.new("L", (60 + i, 50), color=40 * i).save(folder / "1-1.jpg")
        path.write_text("\n".join(lines) + "\n")


def test_full_loader_reads_the_jpeg_form_and_names_a_missing_file(tmp_path):
    with pytest.raises(DatasetMissing, match="mass_case_description_train_set.csv"):
        load_split("mammo", "train", "full", tmp_path)
    _stage_cbis(tmp_path, "train", [("P_00001", "MALIGNANT", "9.1"), ("P_00001", "BENIGN", "9.2"),
                                    ("P_00002", "BENIGN_WITHOUT_CALLBACK", "9.3")])
    train = load_split("mammo", "train", "full", tmp_path)
    assert train.images.shape == (3, 1, 128, 128)
    assert train.labels.tolist() == [1, 0, 0] and train.patients == ("P_00001", "P_00001", "P_00002")
    (tmp_path / "cbis-ddsm" / "jpeg" / "9.3" / "1-1.jpg").unlink()
    _read_full_once.cache_clear()   # read once per process (the evaluator's checks share it)
    with pytest.raises(DatasetMissing, match="9.3"):
        load_split("mammo", "train", "full", tmp_path)


# ---- the config schema ------------------------------------------------------------------------

def test_a_config_with_an_unknown_key_or_a_bad_value_names_the_file_and_the_key(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(CONFIG))
    assert load_config(good) == CONFIG
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CONFIG, "colour": "red", "lr": -1, "optimizer": "lion"}))
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    message = str(err.value)
    for expected in ("bad.json: colour: unknown key", "bad.json: lr:", "bad.json: optimizer:"):
        assert expected in message
    assert config_errors({k: v for k, v in CONFIG.items() if k != "epochs"}, "x.json") == \
        ["x.json: epochs: missing required key"]
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match="broken.json: not valid JSON"):
        load_config(tmp_path / "broken.json")
    assert set(CONFIG_SCHEMA["required"]) <= set(CONFIG)


# ---- the efficiency part kind on its own ------------------------------------------------------

RUBRIC = """
assignment: demo_eff
title: t
version: 1
dataset: mammo
parts:
  - id: eff
    kind: efficiency
    title: Efficiency
    points: {points}
    programs: {{bf16: model_bf16.pt2}}
    baseline: "autograder.datasets.mammo:reference_fp32"
    measures:
      accuracy_drop:
        points: 2
        bands:
          tiny: [{{at_most: 0.02, points: 2}}, {{at_most: 0.1, points: 1}}]
          full: [{{at_most: 0.02, points: 2}}]
      latency_b1_ratio:
        points: 1
        bands:
          tiny: [{{at_most: 2, points: 1}}]
          full: [{{at_most: 2, points: 1}}]
    written: {{cell: answer, points: 1}}
"""


def test_efficiency_rubric_is_validated_with_file_line_errors():
    part = parse_rubric(RUBRIC.format(points=4)).part("eff")
    assert part.kind == "efficiency" and part.points == 4 and part.grade_cell_ids == ("rubric_eff",)
    with pytest.raises(RubricError, match="1 program.* make 4"):
        parse_rubric(RUBRIC.format(points=5))
    with pytest.raises(RubricError, match="speed"):
        parse_rubric(RUBRIC.format(points=4).replace("latency_b1_ratio", "speed"))
    with pytest.raises(RubricError, match="baseline"):
        parse_rubric(RUBRIC.format(points=4).replace("autograder.datasets.mammo", "os"))


def _measured(bf16_accuracy: float, latency: float, val_accuracy: float = 0.9) -> dict:
    quality = lambda acc: {"accuracy": acc, "auc": 0.95}  # noqa: E731
    return {"programs": {
        "fp32": {"test": quality(0.9), "val": quality(val_accuracy), "size_bytes": 1000, "latency_s": {"1": 1e-3, "32": 1e-2}},
        "bf16": {"test": quality(bf16_accuracy), "val": quality(0.85), "size_bytes": 600,
                 "latency_s": {"1": latency, "32": 1e-2}}},
        "reference": {"size_bytes": 2000, "latency_s": {"1": 1e-3, "32": 1e-2}}}


def _scored(measured: dict, answer: str):
    import nbformat

    part = parse_rubric(RUBRIC.format(points=4)).part("eff")
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell(answer, metadata={"nbgrader": {"grade_id": "answer"}}))
    return score_efficiency(part, ScoringInput("tiny", nb, {"ok": True, "efficiency": {"eff": measured}}))


def test_efficiency_scores_each_measure_in_its_bands_and_checks_the_quoted_numbers():
    full = _scored(_measured(0.9, 1.5e-3), "fp32 reaches 0.90 and bf16 0.85 on my validation patients.")
    assert full.points == 4, full.explanation
    assert "accuracy drop 0" in full.explanation and "latency b1 ratio 1.5" in full.explanation
    worse = _scored(_measured(0.85, 3e-3), "fp32 reaches 0.90 and bf16 0.97.")
    assert worse.points == 1, worse.explanation   # accuracy drop 0.05: the lower band; too slow; 0.97 not measured
    assert "0.97" in worse.explanation and "latency b1 ratio 3" in worse.explanation
    assert quotable(_measured(0.9, 1e-3))["bf16 change of the validation accuracy"] == pytest.approx(0.05)
    missing = _scored({"programs": {}, "grader_error": "the reference model could not be built"}, "x")
    assert missing.points == 0 and missing.needs_review and "could not be built" in missing.explanation


# ---- measuring real exports, int8 included, through the evaluator's safe load ------------------

class Bf16(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = copy.deepcopy(model).to(torch.bfloat16)

    def forward(self, x):
        return self.model(x.to(torch.bfloat16)).float()


def _int8(model, calibration):
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer, get_default_x86_inductor_quantization_config)

    batch = torch.export.Dim("batch", min=1, max=65536)
    graph = torch.export.export(model, (calibration[:2],), dynamic_shapes=({0: batch},)).module()
    prepared = prepare_pt2e(graph, X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config()))
    prepared(calibration)
    quantized = convert_pt2e(prepared)
    allow_exported_model_train_eval(quantized)   # export_for_grading calls eval()
    return quantized


@pytest.fixture(scope="module")
def hand_exports(tmp_path_factory):
    """A briefly trained small CNN exported in fp32, bf16 and int8, as the notebook's export does."""
    from autograder.student import export_for_grading

    torch.manual_seed(0)
    train = load_split("mammo", "train")
    model = cnn("small")
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(3):
        for start in range(0, 240, 32):
            loss = nn.functional.cross_entropy(model(train.images[start:start + 32]), train.labels[start:start + 32])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    out = tmp_path_factory.mktemp("mammo_artifacts")
    example = train.images[:8]
    export_for_grading(model, example, out, programs={"model_bf16": (Bf16(model), example),
                                                      "model_int8": (_int8(model, train.images[:64]), example)})
    (out / "splits.json").write_text(json.dumps({"train": sorted(set(train.patients[:180])),
                                                 "val": sorted(set(train.patients[180:]))}))
    return out


def _ctx(artifacts: Path, out: Path) -> EvalContext:
    return EvalContext(artifacts, out, "mammo", "tiny", None, None, SECRET)


def test_an_int8_program_loads_the_safe_way_and_only_its_quantize_operators_are_allowed(hand_exports, tmp_path):
    program = _ctx(hand_exports, tmp_path).program("model_int8.pt2")
    targets = {str(n.target) for n in program.graph_module.graph.nodes if n.op == "call_function"}
    assert any(t.startswith("quantized_decomposed.dequantize_per_channel") for t in targets)
    assert _allowed_target(torch.ops.quantized_decomposed.quantize_per_tensor.default)
    assert not _allowed_target(torch.ops.quantized_decomposed.choose_qparams.tensor)


def test_efficiency_measures_every_precision_against_the_reference_model(hand_exports, tmp_path):
    options = {"programs": {"bf16": "model_bf16.pt2", "int8": "model_int8.pt2"},
               "baseline": "autograder.datasets.mammo:reference_fp32", "validation": {"file": "splits.json", "key": "val"}}
    measured = measure(_ctx(hand_exports, tmp_path), options)
    programs = measured["programs"]
    assert set(programs) == {"fp32", "bf16", "int8"} and not any("error" in p for p in programs.values())
    assert abs(programs["bf16"]["test"]["accuracy"] - programs["fp32"]["test"]["accuracy"]) <= 0.02
    assert programs["bf16"]["size_bytes"] < programs["fp32"]["size_bytes"]   # half the bytes per weight
    assert len(programs["fp32"]["val"]) == 2 and set(programs["int8"]["latency_s"]) == {"1", "32"}
    model, _ = reference_fp32("tiny")
    assert measured["reference"]["size_bytes"] > 4 * sum(p.numel() for p in model.parameters())
    missing = measure(_ctx(hand_exports, tmp_path), {**options, "programs": {"fp16": "model_fp16.pt2"}})
    assert "no model_fp16.pt2" in missing["programs"]["fp16"]["error"]


# ---- leakage and privacy ------------------------------------------------------------------------

def test_leakage_names_the_patients_in_both_splits(hand_exports, tmp_path):
    ctx = _ctx(hand_exports, tmp_path)
    assert run_check("mammo_leakage", ctx, {})["score"] == 1
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    patients = sorted(set(load_split("mammo", "train").patients))
    (leaky / "splits.json").write_text(json.dumps({"train": patients[:100], "val": patients[95:]}))
    result = run_check("mammo_leakage", _ctx(leaky, tmp_path), {})
    assert result["score"] == 0 and "5 of 120 patients are in both" in result["explanation"]
    assert "P_00095" in result["explanation"]


class WithAge(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = cnn("small")

    def forward(self, x, age):
        return self.model(x) + age[:, None] * 0


def test_privacy_accepts_the_image_alone_and_refuses_a_metadata_input(hand_exports, tmp_path):
    ok = run_check("mammo_privacy", _ctx(hand_exports, tmp_path), {"programs": ["model.pt2", "model_int8.pt2"]})
    assert ok["score"] == 1, ok["explanation"]
    bad = tmp_path / "bad"
    bad.mkdir()
    example = (torch.zeros(2, 1, 32, 32), torch.zeros(2))
    torch.export.save(torch.export.export(WithAge().eval(), example), bad / "model.pt2")
    torch.export.save(torch.export.export(cnn("small").eval(), (torch.zeros(2, 1, 32, 32),)), bad / "model_int8.pt2")
    two_channels = nn.Sequential(nn.Conv2d(2, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)).eval()
    torch.export.save(torch.export.export(two_channels, (torch.zeros(2, 2, 32, 32),)), bad / "model_bf16.pt2")
    result = run_check("mammo_privacy", _ctx(bad, tmp_path), {"programs": ["model.pt2", "model_bf16.pt2", "model_int8.pt2"]})
    assert result["score"] == 0
    assert "model.pt2 takes 2 inputs" in result["explanation"] and "model_bf16.pt2's input is (2, 2, 32, 32)" in result["explanation"]
    with pytest.raises(UnsafeArtifact):
        (bad / "link.pt2").symlink_to(bad / "model.pt2")
        _ctx(bad, tmp_path).program("link.pt2")


# ---- the demo cohort, graded once in the session's demo run ------------------------------------

@pytest.mark.slow
def test_demo_cohort_grades_as_intended(demo_run):
    by = demo_run.run.results(A)
    assert automatic_shortfalls(by["alice_reference"]) == []
    parts = {s: {p.id: p for p in r.parts} for s, r in by.items()}
    leak = parts["olga_image_split"]
    assert leak["leakage"].points == 0 and "in both the training and the validation" in leak["leakage"].explanation
    int8 = parts["pablo_blank_calibration"]["efficiency"]
    assert int8.details["programs"]["int8"]["accuracy_drop"] > 0.2 and "int8: accuracy drop" in int8.explanation
    assert int8.points < parts["alice_reference"]["efficiency"].points
    table = parts["quinn_retrained_final"]["results_match"]
    assert table.points == 0 and "does not describe the exported model" in table.explanation
    for student in ("olga_image_split", "pablo_blank_calibration", "quinn_retrained_final"):
        assert by[student].status == "graded" and by[student].score < by["alice_reference"].score


class Sleepy(nn.Module):
    def forward(self, x):
        import time
        time.sleep(0.2)
        return x.mean((2, 3))


def test_a_very_slow_export_is_measured_on_fewer_calls_within_the_budget(monkeypatch):
    import time

    from autograder.grading import efficiency

    monkeypatch.setattr(efficiency, "LATENCY_BUDGET_S", 1.0)
    start = time.perf_counter()
    latencies = efficiency._latencies({"fast": nn.Identity(), "slow": Sleepy()}, torch.zeros(40, 1, 4, 4))
    assert time.perf_counter() - start < 5, "bounded by the budget, not by 30 + 8 calls of 0.2 s"
    assert latencies["slow"]["1"] >= 0.2 and latencies["slow"]["32"] >= 0.2
    assert latencies["fast"]["32"] < 0.05
