"""RSNA 2024 Lumbar Spine Degenerative Classification, reduced to a 2D lab task (full), and its
tiny stand-in, generated sagittal slices with the same kind of class imbalance.

The task: the severity of **spinal canal stenosis at L4/L5** (Normal/Mild, Moderate, Severe; the
`spinal_canal_stenosis_l4_l5` column of `train.csv`) from the **labelled sagittal T2/STIR slice**:
the instance that `train_label_coordinates.csv` marks for condition "Spinal Canal Stenosis", level
"L4/L5", in a series that `train_series_descriptions.csv` describes as "Sagittal T2/STIR". The
input is a square crop centred on the labelled point, half the slice's shorter side wide (kept
inside the slice), resized to 128 x 128, scaled to [0, 1] by its 1st and 99th percentiles.

Full: the competition's files as they ship, under `<root>/rsna_spine/`: `train.csv`,
`train_series_descriptions.csv`, `train_label_coordinates.csv` and
`train_images/<study_id>/<series_id>/<instance_number>.dcm`, read with pydicom. Studies without a
severity or without a labelled L4/L5 sagittal T2/STIR point are left out. A DICOM file that is
missing or unreadable is an error naming the file. The split is by study (every study is in
exactly one split): a seeded permutation of the study ids, 15% test, 15% validation, over the
label rows, so it does not depend on which images are present; the student data root may hold
the train and validation studies only and the hidden root the test studies.

Tiny: 32 x 32 generated slices: vertebral bodies, discs and a bright CSF canal that a disc bulge
narrows at one level, a little (Normal/Mild), about half (Moderate) or almost shut (Severe);
classes drawn with the shares in TINY_SHARES (Normal/Mild the large majority, Severe the rarest,
as in the real labels). Images are N x 1 x H x W, float32, normalized with GRAY_MEAN / GRAY_STD.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .registry import DatasetMissing, register, Split, tiny_seed

CLASSES = ("Normal/Mild", "Moderate", "Severe")
SEVERITY = {"normal/mild": 0, "moderate": 1, "severe": 2}
LOSS_WEIGHTS = (1.0, 2.0, 4.0)      # the competition's sample weights per true class
FOLDER = "rsna_spine"
LABEL_COLUMN = "spinal_canal_stenosis_l4_l5"
CONDITION, LEVEL, SERIES = "spinal canal stenosis", "l4/l5", "sagittal t2/stir"
FULL_SIZE, TINY_SIZE = 128, 24
GRAY_MEAN, GRAY_STD = 0.3, 0.25
TEST_FRACTION, VAL_FRACTION = 0.15, 0.15
SPLIT_SEED = 2024
TINY_SHARES = (0.74, 0.14, 0.12)
TINY_SIZES = {"train": 400, "val": 160, "test": 240}
TINY_SEEDS = {"train": 16_001, "val": 16_002}   # the test split is drawn with the course secret


def normalize(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() - GRAY_MEAN) / GRAY_STD).contiguous()


# ---- full: the competition's files --------------------------------------------------------------

def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise DatasetMissing(f"{path} is missing: put the RSNA 2024 lumbar spine files (train.csv, "
                             "train_series_descriptions.csv, train_label_coordinates.csv, train_images/) there")
    with open(path, newline="") as f:
        return [{k.strip().lower(): (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(f)]


def labelled_slices(folder: Path) -> list[tuple[str, str, str, float, float, int]]:
    """(study, series, instance, x, y, class) of every study with an L4/L5 spinal canal severity
    and a labelled point on a sagittal T2/STIR slice, sorted by study."""
    labels = {}
    for row in _rows(folder / "train.csv"):
        severity = SEVERITY.get(row.get(LABEL_COLUMN, "").lower())
        if severity is not None:
            labels[row["study_id"]] = severity
    sagittal = {(r["study_id"], r["series_id"]) for r in _rows(folder / "train_series_descriptions.csv")
                if r.get("series_description", "").lower() == SERIES}
    points = {}
    for r in _rows(folder / "train_label_coordinates.csv"):
        key = (r["study_id"], r["series_id"])
        if r.get("condition", "").lower() == CONDITION and r.get("level", "").lower() == LEVEL and key in sagittal:
            points.setdefault(r["study_id"], (r["series_id"], r["instance_number"], float(r["x"]), float(r["y"])))
    return [(s, *points[s], labels[s]) for s in sorted(labels, key=lambda s: (len(s), s)) if s in points]


def study_split(studies: list[str]) -> dict[str, str]:
    """study -> "train" / "val" / "test": a seeded permutation of the sorted study ids."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(studies))
    n_test, n_val = round(TEST_FRACTION * len(studies)), round(VAL_FRACTION * len(studies))
    names = ["test"] * n_test + ["val"] * n_val + ["train"] * (len(studies) - n_test - n_val)
    return {studies[i]: names[rank] for rank, i in enumerate(order)}


def read_slice(path: Path, x: float, y: float, size: int = FULL_SIZE) -> torch.Tensor:
    """1 x size x size in [0, 1]: the crop centred on (x, y) of one DICOM slice."""
    import pydicom

    if not path.is_file():
        raise DatasetMissing(f"{path}: the DICOM slice is missing (the series is incomplete or not staged)")
    try:
        pixels = pydicom.dcmread(path).pixel_array.astype(np.float32)
    except Exception as exc:
        raise ValueError(f"{path}: unreadable DICOM ({type(exc).__name__}: {str(exc)[:160]})") from None
    if pixels.ndim != 2:
        raise ValueError(f"{path}: expected one 2D slice, got pixel data of shape {pixels.shape}")
    h, w = pixels.shape
    half = max(1, min(h, w) // 4)
    cy, cx = int(np.clip(round(y), half, h - half)), int(np.clip(round(x), half, w - half))
    crop = torch.from_numpy(pixels[cy - half:cy + half, cx - half:cx + half].copy())
    lo, hi = np.percentile(crop.numpy(), [1, 99])
    crop = ((crop - lo) / max(hi - lo, 1e-6)).clamp(0, 1)
    return F.interpolate(crop[None, None], size=(size, size), mode="bilinear", align_corners=False)[0]


@register("spine", "full")
def load_full(split: str, root: Path | None, secret: int | None = None) -> Split:
    what = "hidden test split" if split == "test" else "train/val"
    if root is None:
        raise DatasetMissing(f"the RSNA lumbar spine data ({what}) needs a data root; set AUTOGRADER_DATA_ROOT "
                             "or pass data_root")
    folder = Path(root) / FOLDER
    slices = labelled_slices(folder)
    which = study_split([s[0] for s in slices])
    chosen = [s for s in slices if which[s[0]] == split]
    if not chosen:
        raise DatasetMissing(f"{folder}: no labelled L4/L5 sagittal T2/STIR studies in the {split} split")
    images = [read_slice(folder / "train_images" / study / series / f"{instance}.dcm", x, y)
              for study, series, instance, x, y, _ in chosen]
    labels = torch.tensor([s[-1] for s in chosen], dtype=torch.long)
    return Split(normalize(torch.stack(images)), labels, CLASSES)


# ---- tiny: generated sagittal slices --------------------------------------------------------------

def generate(n: int, seed, size: int = TINY_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """n slices (N x 1 x size x size in [0, 1]) and labels with the shares of TINY_SHARES."""
    rng = np.random.default_rng(seed)
    counts = np.floor(np.array(TINY_SHARES) * n).astype(int)
    counts[0] += n - counts.sum()
    labels = rng.permutation(np.repeat(np.arange(3), counts))
    grid = np.arange(size) + 0.5
    X, Y = grid[None, None, :] / size, grid[None, :, None] / size
    u = lambda lo, hi: rng.uniform(lo, hi, (n, 1, 1))  # noqa: E731
    img = 0.15 + 0.05 * rng.standard_normal((n, 1, 1)) + 0 * X * Y
    # vertebral bodies (mid gray) separated by darker discs, on the left of the canal
    canal_x, canal_w = u(0.55, 0.62), u(0.1, 0.12)
    period, phase = u(0.2, 0.24), u(0, 0.2)
    bodies = (np.cos(2 * np.pi * (Y - phase) / period) > -0.55) & (X > canal_x - 0.38) & (X < canal_x - canal_w - 0.03)
    img = img + 0.35 * bodies
    # the bright CSF canal, narrowed at one disc level by a bulge from the front
    level = u(0.35, 0.65)
    narrowing = np.choose(labels, [rng.uniform(0.0, 0.2, n), rng.uniform(0.45, 0.65, n),
                                   rng.uniform(0.85, 1.0, n)])[:, None, None]
    bulge = np.exp(-((Y - level) / u(0.05, 0.07)) ** 2)
    front = canal_x - canal_w + 2 * canal_w * narrowing * bulge
    img = img + 0.6 * ((X > front) & (X < canal_x + canal_w))
    img = img + 0.2 * bulge * ((X > canal_x - canal_w - 0.03) & (X <= front))    # the bulging disc
    img = img + rng.normal(0, 0.04, (n, size, size))
    gray = np.round(np.clip(img, 0, 1) * 255) / 255
    return torch.from_numpy(gray).float()[:, None].contiguous(), torch.from_numpy(labels).long()


@register("spine", "tiny")
def load_tiny(split: str, root: Path | None = None, secret: int | None = None) -> Split:
    images, labels = generate(TINY_SIZES[split], tiny_seed(split, secret, TINY_SEEDS, 16))
    return Split(normalize(images), labels, CLASSES)
