"""Mammography patches, malignant vs not: CBIS-DDSM (full) and a generated stand-in (tiny), with
the patient id of every image, and the experiment-config schema of `mammo_efficiency`.

Full layout: CBIS-DDSM in its commonly distributed JPEG form (never downloaded):
    <data_root>/cbis-ddsm/csv/mass_case_description_train_set.csv     what notebooks see (train)
    <data_root>/cbis-ddsm/csv/calc_case_description_train_set.csv
    <data_root>/cbis-ddsm/jpeg/<SeriesInstanceUID>/*.jpg
    <hidden_root>/cbis-ddsm/csv/{mass,calc}_case_description_test_set.csv    the official test set
    <hidden_root>/cbis-ddsm/jpeg/<SeriesInstanceUID>/*.jpg                    (evaluator only)
One image per abnormality: the ROI crop named by the row's `cropped image file path`
(`<case>/<StudyInstanceUID>/<SeriesInstanceUID>/000000.dcm`; its JPEG is the first `*.jpg`, by
name, in jpeg/<SeriesInstanceUID>/). The label is MALIGNANT vs BENIGN or BENIGN_WITHOUT_CALLBACK
(`pathology`); `patient_id` (P_00001, ...) groups a patient's views, breasts and abnormalities,
across the mass and calcification files. Crops are grey, resized to 144 and centre-cropped to 128.

CBIS-DDSM has no validation set: `train` is the whole training set with patient ids, which the
assignment splits by patient; `val` is the same set (so every dataset has the course's two student
splits; the notebook never loads it).

Tiny: 32 x 32 grey patches, two views (CC, MLO) per patient of one lesion: benign lesions are smooth
round blobs, malignant ones irregular with spicules; each patient's tissue has its own brightness
and texture, shared by both views, so a split that puts one view in training and the other in
validation measures memory of the patient rather than of the lesion.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .registry import DatasetMissing, Split, register

CLASSES = ("NOT_MALIGNANT", "MALIGNANT")
POSITIVE = 1
FOLDER = "cbis-ddsm"
CSV_FILES = {"train": ("mass_case_description_train_set.csv", "calc_case_description_train_set.csv"),
             "test": ("mass_case_description_test_set.csv", "calc_case_description_test_set.csv")}
PATHOLOGIES = {"MALIGNANT": 1, "BENIGN": 0, "BENIGN_WITHOUT_CALLBACK": 0}
FULL_SIZE, TINY_SIZE = 128, 32
MEAN, STD = 0.5, 0.25
TINY_PATIENTS = {"train": 120, "test": 80}
TINY_SEEDS = {"train": 15_001}       # the test split is drawn with the course secret
MALIGNANT_SHARE = 0.4
VIEWS = ("CC", "MLO")


@dataclass(frozen=True)
class PatientSplit(Split):
    """A split whose images carry the id of the patient they show (patients[i] for images[i])."""

    patients: tuple[str, ...] = ()

    def to(self, device) -> "PatientSplit":
        return PatientSplit(self.images.to(device), self.labels.to(device), self.classes, self.patients)


def image_shape(profile: str) -> tuple[int, int, int]:
    size = TINY_SIZE if profile == "tiny" else FULL_SIZE
    return (1, size, size)


# ---- the course's encoders ----------------------------------------------------------------------

ENCODER_WIDTHS = {"small": (8, 16, 32), "base": (16, 32, 64)}


def cnn(encoder: str = "base") -> torch.nn.Module:
    """A small CNN classifier of grey patches: three 3x3 conv + ReLU stages (max-pooling between),
    global average pooling, a linear layer to the two classes. `encoder` names its widths."""
    from torch import nn

    a, b, c = ENCODER_WIDTHS[encoder]
    return nn.Sequential(nn.Conv2d(1, a, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(a, b, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(b, c, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, len(CLASSES)))


def reference_fp32(profile: str):
    """The reference's fp32 model and an example input: what the efficiency part measures size and
    latency against (the weights' values do not change either)."""
    torch.manual_seed(0)
    return cnn("base").eval(), torch.zeros(2, *image_shape(profile))


# ---- the experiment configs: the schema the assignment publishes ------------------------------

CONFIG_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mammo_efficiency experiment config",
    "type": "object",
    "required": ["name", "epochs", "batch_size", "lr", "optimizer", "encoder", "augmentation"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,40}$"},
        "epochs": {"type": "integer", "minimum": 1, "maximum": 200},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 1024},
        "lr": {"type": "number", "exclusiveMinimum": 0, "maximum": 10},
        "optimizer": {"enum": ["sgd", "adam", "adamw"]},
        "encoder": {"enum": ["small", "base"]},
        "augmentation": {"enum": ["none", "flip", "flip_rotate"]},
        "weight_decay": {"type": "number", "minimum": 0, "maximum": 1},
        "seed": {"type": "integer", "minimum": 0},
    },
}


class ConfigError(ValueError):
    """An experiment config breaks the schema; the message names the file and the key."""


def config_errors(config, source: str) -> list[str]:
    """Every way `config` breaks CONFIG_SCHEMA, one line each: `source: key: what is wrong`."""
    import jsonschema

    lines = []
    validator = jsonschema.Draft202012Validator(CONFIG_SCHEMA)
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(map(str, error.absolute_path))
        if error.validator == "additionalProperties":
            for extra in sorted(str(k)[:40] for k in error.instance if k not in CONFIG_SCHEMA["properties"])[:10]:
                lines.append(f"{source}: {extra}: unknown key (allowed: {', '.join(CONFIG_SCHEMA['properties'])})")
        elif error.validator == "required":
            missing = [k for k in error.validator_value if k not in (error.instance or {})]
            lines.extend(f"{source}: {k}: missing required key" for k in missing)
        else:
            lines.append(f"{source}: {key or 'top level'}: {error.message[:200]}")
    return lines


def validate_config(config, source: str) -> dict:
    """`config` if it follows CONFIG_SCHEMA; else ConfigError naming `source` and each bad key."""
    errors = config_errors(config, source)
    if errors:
        raise ConfigError("\n".join(errors))
    return dict(config)


def load_config(path: str | Path) -> dict:
    """One experiment config file (JSON), validated against CONFIG_SCHEMA."""
    import json

    path = Path(path)
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path.name}: not valid JSON ({exc})") from None
    return validate_config(config, path.name)


# ---- full: CBIS-DDSM in JPEG form -------------------------------------------------------------

def _rows(root: Path, split: str) -> list[tuple[Path, int, str]]:
    """(jpeg file, label, patient id) per abnormality of the split's case-description files."""
    base = Path(root) / FOLDER
    rows = []
    for name in CSV_FILES[split]:
        path = base / "csv" / name
        if not path.is_file():
            raise DatasetMissing(
                f"CBIS-DDSM: {path} is missing. Stage the JPEG form of CBIS-DDSM as {base}/csv/<case description "
                f"files> and {base}/jpeg/<SeriesInstanceUID>/*.jpg (train files under the data root, the "
                f"*_test_set.csv files and their images under the hidden data root). Nothing is downloaded at run time.")
        with path.open(newline="") as f:
            for i, row in enumerate(csv.DictReader(f), 2):
                pathology = row.get("pathology", "").strip()
                if pathology not in PATHOLOGIES:
                    raise DatasetMissing(f"{path}:{i}: pathology {pathology!r} is not one of {sorted(PATHOLOGIES)}")
                parts = row.get("cropped image file path", "").strip().split("/")
                if len(parts) < 3:
                    raise DatasetMissing(f"{path}:{i}: no `cropped image file path` of the form case/study/series/file")
                folder = base / "jpeg" / parts[2]
                jpgs = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
                if not jpgs:
                    raise DatasetMissing(f"{path}:{i}: no JPEG in {folder} (the crop of {parts[0]})")
                rows.append((jpgs[0], PATHOLOGIES[pathology], row["patient_id"].strip()))
    return rows


def _read_full(rows) -> PatientSplit:
    from PIL import Image
    from torchvision import transforms

    transform = transforms.Compose([transforms.Grayscale(1), transforms.Resize(FULL_SIZE + FULL_SIZE // 8),
                                    transforms.CenterCrop(FULL_SIZE), transforms.ToTensor()])
    images = []
    for path, _, _ in rows:
        with Image.open(path) as image:
            images.append(transform(image.convert("L")))
    x = (torch.stack(images) - MEAN) / STD
    return PatientSplit(x.contiguous(), torch.tensor([r[1] for r in rows]), CLASSES, tuple(r[2] for r in rows))


@functools.lru_cache(maxsize=2)
def _read_full_once(root: Path, split: str) -> PatientSplit:
    """Read once per process: the evaluator's checks (leakage, results, efficiency) each need the
    training set, and decoding a few thousand JPEGs takes a while."""
    return _read_full(_rows(root, split))


@register("mammo", "full")
def load_full(split: str, root: Path | None, secret: int | None = None) -> PatientSplit:
    if root is None:
        raise DatasetMissing("CBIS-DDSM needs a data root; set AUTOGRADER_DATA_ROOT or pass data_root")
    return _read_full_once(Path(root), "test" if split == "test" else "train")


# ---- tiny: generated patches, two views per patient ---------------------------------------------

def generate(patients: int, seed, prefix: str = "P", size: int = TINY_SIZE):
    """2 x `patients` images (N x 1 x size x size in [0, 1]), labels and patient ids."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(patients) < MALIGNANT_SHARE).astype(int)
    grid = (np.arange(size) + 0.5) / size
    X, Y = np.meshgrid(grid, grid)
    images, ids, ys = [], [], []
    for p in range(patients):
        tissue = 0.25 + rng.uniform(0, 0.3)           # the patient's own brightness and texture
        texture = sum(rng.uniform(0.05, 0.15) * np.exp(-((X - a) ** 2 + (Y - b) ** 2) / (2 * r ** 2))
                      for a, b, r in rng.uniform([0, 0, 0.1], [1, 1, 0.3], (4, 3)))
        angles = rng.uniform(0, 2 * np.pi, 7)
        for _ in VIEWS:
            cx, cy = rng.uniform(0.35, 0.65, 2)
            dx, dy = X - cx, Y - cy
            radius = np.hypot(dx, dy)
            r0 = rng.uniform(0.09, 0.13)
            if labels[p]:   # irregular, spiculated: a ragged edge and bright lines leaving it
                theta = np.arctan2(dy, dx)
                edge = r0 * (1 + 0.35 * np.sin(5 * theta + angles[0]) * rng.uniform(0.6, 1))
                lesion = 0.45 / (1 + np.exp((radius - edge) / 0.01))
                for a in angles[1:]:
                    along = dx * np.cos(a) + dy * np.sin(a)
                    across = np.abs(-dx * np.sin(a) + dy * np.cos(a))
                    lesion = lesion + 0.3 * np.exp(-(across / 0.012) ** 2) * ((along > 0) & (along < r0 * 3))
            else:           # smooth and round
                lesion = 0.45 * np.exp(-(radius / r0) ** 2 * 1.5)
            img = tissue + texture + lesion + rng.normal(0, 0.03, (size, size))
            images.append(np.round(np.clip(img, 0, 1) * 255) / 255)
            ids.append(f"{prefix}_{p:05d}")
            ys.append(labels[p])
    return torch.from_numpy(np.stack(images)).float()[:, None], torch.tensor(ys), tuple(ids)


@register("mammo", "tiny")
def load_tiny(split: str, root: Path | None = None, secret: int | None = None) -> PatientSplit:
    if split == "test":
        if secret is None:
            raise PermissionError("the hidden test split needs the course secret (evaluator only)")
        images, labels, ids = generate(TINY_PATIENTS["test"], [secret, 15], prefix="T")
    else:
        images, labels, ids = generate(TINY_PATIENTS["train"], TINY_SEEDS["train"])
    return PatientSplit(((images - MEAN) / STD).contiguous(), labels, CLASSES, ids)
