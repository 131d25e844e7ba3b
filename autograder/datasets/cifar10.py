"""CIFAR-10 (full) and its tiny stand-in, ten generated classes of coloured shapes and textures.

Full: torchvision's on-disk format, never downloaded. The student-visible data root holds
`cifar-10-batches-py/data_batch_1` .. `data_batch_5` (train and validation are split from them);
the test batch lives under the *hidden* data root, `<hidden_root>/cifar-10-batches-py/test_batch`,
so a notebook cannot read it. torchvision's `CIFAR10` class insists on every batch file in one
folder (its integrity check covers the test batch too), so the batch files are read here the way
torchvision reads them.

Tiny: 32 x 32 colour images of ten shape/texture classes with a class-typical hue, random
position, size and background, and pixel noise. Train and validation are drawn with fixed seeds;
the hidden test split with the course secret.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from matplotlib.colors import hsv_to_rgb

from .registry import DatasetMissing, register, Split, tiny_seed

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
TINY_CLASSES = ("disk", "square", "triangle", "ring", "cross", "h-stripes", "v-stripes", "checker", "diagonal", "dots")
MEAN = (0.4914, 0.4822, 0.4465)   # CIFAR-10 training statistics, used for both profiles
STD = (0.2470, 0.2435, 0.2616)
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
VAL_SIZE = 5000
TINY_SIZES = {"train": 1000, "val": 500, "test": 1000}
TINY_SEEDS = {"train": 1, "val": 2}


def normalize(images: torch.Tensor) -> torch.Tensor:
    """N x 3 x 32 x 32 in [0, 1] -> normalized with the CIFAR-10 statistics."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return ((images.float() - mean) / std).contiguous()


# ---- full: torchvision's batch files, never downloaded --------------------------------------

def _require(root: Path | None, files: tuple[str, ...], what: str, root_name: str) -> Path:
    if root is None:
        raise DatasetMissing(f"CIFAR-10 ({what}) needs a data root; set {root_name} or pass data_root")
    folder = Path(root) / FOLDER
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        raise DatasetMissing(
            f"CIFAR-10 ({what}) is missing under {folder}: {', '.join(missing)}. Unpack the python "
            f"version of CIFAR-10 (cifar-10-python.tar.gz, as torchvision's CIFAR10 stores it) so that "
            f"{folder}/ holds {', '.join(files)}. The training batches go under the course data root, "
            f"the test batch under the hidden data root only. Nothing is downloaded at run time.")
    return folder


def _read_batches(folder: Path, files) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in files:
        with open(folder / name, "rb") as f:   # the batch files are pickles (staged by the instructor)
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry.get("labels", entry.get("fine_labels", [])))
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def _val_mask(labels: torch.Tensor) -> torch.Tensor:
    """A fixed, stratified choice of VAL_SIZE training images for validation."""
    from sklearn.model_selection import train_test_split

    _, val = train_test_split(np.arange(len(labels)), test_size=VAL_SIZE, stratify=labels.numpy(), random_state=0)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[torch.from_numpy(val)] = True
    return mask


@register("cifar10", "full")
def load_full(split: str, root: Path | None, secret: int | None = None) -> Split:
    if split == "test":
        folder = _require(root, (TEST_FILE,), "hidden test split", "AUTOGRADER_HIDDEN_DATA_ROOT")
        images, labels = _read_batches(folder, (TEST_FILE,))
    else:
        folder = _require(root, TRAIN_FILES, "train/val", "AUTOGRADER_DATA_ROOT")
        images, labels = _read_batches(folder, TRAIN_FILES)
        keep = _val_mask(labels)
        keep = keep if split == "val" else ~keep
        images, labels = images[keep], labels[keep]
    return Split(normalize(images.float() / 255.0), labels, CLASSES)


# ---- tiny: generated shapes and textures -----------------------------------------------------

def generate(n: int, seed: int | list[int], size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (N x 3 x size x size in [0, 1]) and labels, balanced over the ten classes."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(TINY_CLASSES)
    rng.shuffle(labels)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    col = lambda values: values[:, None, None]  # noqa: E731 - per-image scalars broadcast over pixels
    cx, cy = col(rng.uniform(0.31, 0.69, n) * size), col(rng.uniform(0.31, 0.69, n) * size)
    r = col(rng.uniform(0.19, 0.31, n) * size)
    dx, dy = (xx - cx) / r, (yy - cy) / r
    period, phase = col(rng.uniform(3.5, 6.0, n)), col(rng.uniform(0, 2 * np.pi, n))
    wave_x, wave_y = np.sin(2 * np.pi * xx / period + phase), np.sin(2 * np.pi * yy / period + phase)
    box = (np.abs(dx) < 1) & (np.abs(dy) < 1)
    disk = dx ** 2 + dy ** 2 < 1
    shapes = np.stack([
        disk,                                                        # disk
        box,                                                         # square
        (np.abs(dy) < 1) & (np.abs(dx) < (dy + 1) / 2),              # triangle
        disk & (dx ** 2 + dy ** 2 > 0.4),                            # ring
        box & ((np.abs(dx) < 0.3) | (np.abs(dy) < 0.3)),             # cross
        box & (wave_y > 0),                                          # horizontal stripes
        box & (wave_x > 0),                                          # vertical stripes
        box & ((wave_x > 0) ^ (wave_y > 0)),                         # checker
        box & (np.sin(2 * np.pi * (xx + yy) / (1.4 * period) + phase) > 0),  # diagonal stripes
        box & (wave_x > 0.3) & (wave_y > 0.3),                       # dots
    ], 1)[np.arange(n), labels]
    hue = (labels / len(TINY_CLASSES) + rng.normal(0, 0.035, n)) % 1
    fg = hsv_to_rgb(np.stack([hue, rng.uniform(0.5, 1, n), rng.uniform(0.6, 1, n)], -1))
    bg = hsv_to_rgb(np.stack([rng.uniform(0, 1, n), rng.uniform(0, 0.5, n), rng.uniform(0.1, 0.5, n)], -1))
    images = np.where(shapes[..., None], fg[:, None, None, :], bg[:, None, None, :])
    images = np.clip(images + rng.normal(0, 0.08, images.shape), 0, 1).astype(np.float32)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels).long()


@register("cifar10", "tiny")
def load_tiny(split: str, root: Path | None = None, secret: int | None = None) -> Split:
    images, labels = generate(TINY_SIZES[split], tiny_seed(split, secret, TINY_SEEDS, 3))
    return Split(normalize(images), labels, TINY_CLASSES)
