"""Flowers: TensorFlow's flower photos (full) and a generated stand-in of drawn flowers (tiny).

Full layout (ImageFolder, one folder per class; stage it with `stage_flowers` below):
    <data_root>/flower_photos/<class>/*.jpg              train + val (a fixed stratified split)
    <hidden_root>/flower_photos_test/<class>/*.jpg       the held-out test split (evaluator only)
The test images live under the hidden root, so a sandboxed notebook never sees them.

Tiny: 32 x 32 drawings of the same five classes, told apart by what a random-weight VGG16 can
see (petal colour, count and width, size and colour of the centre), with random positions,
sizes, rotations, backgrounds and noise. The test split is drawn with the course secret.
Both profiles are normalized with the ImageNet statistics, as VGG16 expects.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import torch
import torch.nn.functional as F
from matplotlib.colors import hsv_to_rgb

from .registry import DatasetMissing, Split, image_folder, read_images, register

CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet
FOLDER, TEST_FOLDER = "flower_photos", "flower_photos_test"
FULL_SIZE, TINY_SIZE = 224, 32
VAL_FRACTION, SPLIT_SEED = 0.15, 0          # train/val split of <data_root>/flower_photos
TEST_FRACTION = 0.2                         # what stage_flowers moves to the hidden root
TINY_SIZES = {"train": 300, "val": 100, "test": 200}
TINY_SEEDS = {"train": 7_000_001, "val": 7_000_002}   # the test split uses the course secret


def _normalize(images: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return ((images - mean) / std).contiguous()


# ---- full: the photos, read with torchvision's ImageFolder, never downloaded ------------------

def _image_folder(folder: Path, what: str):
    return image_folder(folder, CLASSES, FULL_SIZE, missing_message=lambda missing: (
        f"flower photos ({what}) are missing under {folder}: no images for {', '.join(missing)}. "
        f"Expected {folder}/<class>/*.jpg for the classes {', '.join(CLASSES)} (TensorFlow's flower_photos "
        f"archive, split with autograder.datasets.flowers.stage_flowers). Nothing is downloaded at run time."))


def _read(dataset, indices) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_images(dataset, indices)
    return _normalize(images), labels


@register("flowers", "full")
def load_full(split: str, root: Path | None, secret: int | None = None) -> Split:
    what = "hidden test split" if split == "test" else "train/val"
    if root is None:
        raise DatasetMissing(f"flower photos ({what}) need a data root; set AUTOGRADER_DATA_ROOT or pass data_root")
    if split == "test":
        dataset = _image_folder(Path(root) / TEST_FOLDER, what)
        return Split(*_read(dataset, range(len(dataset))), CLASSES)
    from sklearn.model_selection import train_test_split

    dataset = _image_folder(Path(root) / FOLDER, what)
    train, val = train_test_split(list(range(len(dataset))), test_size=VAL_FRACTION,
                                  stratify=dataset.targets, random_state=SPLIT_SEED)
    return Split(*_read(dataset, sorted(train if split == "train" else val)), CLASSES)


def stage_flowers(source: str | Path, data_root: str | Path, hidden_root: str | Path,
                  test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED) -> dict[str, int]:
    """Copy the extracted `flower_photos` archive into the course layout, once: a stratified
    `test_fraction` of each class to `<hidden_root>/flower_photos_test/`, the rest to
    `<data_root>/flower_photos/`. Returns the number of images per destination."""
    import random

    source = Path(source)
    counts = {"train+val": 0, "test": 0}
    for name in CLASSES:
        files = sorted((source / name).glob("*.jpg"))
        if not files:
            raise DatasetMissing(f"no {source / name}/*.jpg: pass the folder extracted from flower_photos.tgz")
        random.Random(f"{seed}-{name}").shuffle(files)
        n_test = round(len(files) * test_fraction)
        for i, path in enumerate(files):
            kind, base = ("test", Path(hidden_root) / TEST_FOLDER) if i < n_test else ("train+val", Path(data_root) / FOLDER)
            (base / name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, base / name / path.name)
            counts[kind] += 1
    return counts


# ---- tiny: generated drawings of the five classes --------------------------------------------

# per class:         daisy  dandelion roses sunflowers tulips
_PETALS_MIN = (10, 20, 5, 13, 3)
_PETALS_MAX = (14, 28, 6, 18, 3)
_PETAL_WIDTH = (0.22, 0.12, 0.75, 0.25, 0.5)        # petal width / petal length
_CENTRE = (0.22, 0.15, 0.18, 0.45, 0.12)            # centre radius / petal length
_PETAL_HUE = (0.0, 0.14, 0.97, 0.11, 0.0)
_PETAL_HUE_JITTER = (0.5, 0.02, 0.05, 0.03, 0.5)    # daisies are white, tulips any colour
_CENTRE_HSV = ((0.14, 0.9, 0.95), (0.13, 0.9, 0.8), (0.97, 0.8, 0.45), (0.07, 0.8, 0.3), (0.15, 0.6, 0.5))


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """matplotlib's conversion, for hues that may have wrapped past 1 (jittered)."""
    hsv = torch.stack([h % 1, s, v], -1).numpy()
    return torch.from_numpy(hsv_to_rgb(hsv)).to(h.dtype)


def draw_flowers(n: int, seed: int, size: int = TINY_SIZE, supersample: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """n drawn flowers (N x 3 x size x size in [0, 1]) with balanced labels, fully determined by seed."""
    g = torch.Generator().manual_seed(seed)

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]

    def per_class(values):
        return torch.tensor(values, dtype=torch.float32)[labels]

    lo, hi = per_class(_PETALS_MIN), per_class(_PETALS_MAX)
    petals = torch.minimum(torch.floor(lo + (hi - lo + 1) * torch.rand(n, generator=g)), hi)
    width = per_class(_PETAL_WIDTH) * uniform(0.85, 1.15)
    centre = per_class(_CENTRE) * uniform(0.85, 1.15)
    white = labels == CLASSES.index("daisy")
    hue = (per_class(_PETAL_HUE) + per_class(_PETAL_HUE_JITTER) * uniform(-1, 1)) % 1
    petal_rgb = _hsv_to_rgb(hue, torch.where(white, uniform(0, 0.12), uniform(0.65, 1)),
                            torch.where(white, uniform(0.85, 1), uniform(0.7, 1)))
    c = torch.tensor(_CENTRE_HSV)[labels]
    centre_rgb = _hsv_to_rgb(c[:, 0], c[:, 1], (c[:, 2] * uniform(0.8, 1.1)).clamp(max=1))
    background = _hsv_to_rgb(uniform(0.2, 0.45), uniform(0.3, 0.8), uniform(0.15, 0.5))   # foliage

    side = size * supersample
    cx, cy, length = uniform(0.4, 0.6) * side, uniform(0.4, 0.6) * side, uniform(0.32, 0.44) * side
    rotation = uniform(0, 2 * math.pi)
    ys, xs = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    dx, dy = xs - cx.view(-1, 1, 1), ys - cy.view(-1, 1, 1)
    r, phi = torch.sqrt(dx ** 2 + dy ** 2), torch.atan2(dy, dx)
    sector = (2 * math.pi / petals).view(-1, 1, 1)
    off_axis = torch.remainder(phi - rotation.view(-1, 1, 1) + sector / 2, sector) - sector / 2
    a = (length / 2).view(-1, 1, 1)                      # petals: ellipses along each petal axis
    b = a * width.view(-1, 1, 1)
    in_petal = (((r * torch.cos(off_axis) - a) / a) ** 2 + (r * torch.sin(off_axis) / b) ** 2 <= 1).float()
    in_centre = (r <= (centre * length).view(-1, 1, 1)).float()

    def paint(canvas, mask, rgb):
        return canvas * (1 - mask[:, None]) + rgb[:, :, None, None] * mask[:, None]

    images = background[:, :, None, None].expand(n, 3, side, side)
    images = paint(paint(images, in_petal, petal_rgb), in_centre, centre_rgb)
    images = F.avg_pool2d(images, supersample)           # anti-aliased
    return (images + 0.04 * torch.randn(images.shape, generator=g)).clamp(0, 1), labels


@register("flowers", "tiny")
def load_tiny(split: str, root: Path | None = None, secret: int | None = None) -> Split:
    if split == "test":
        if secret is None:
            raise PermissionError("the hidden test split needs the course secret (evaluator only)")
        seed = secret
    else:
        seed = TINY_SEEDS[split]
    images, labels = draw_flowers(TINY_SIZES[split], seed)
    return Split(_normalize(images), labels, CLASSES)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Stage TensorFlow's flower_photos for the full profile.")
    parser.add_argument("source", help="the folder extracted from flower_photos.tgz")
    parser.add_argument("data_root")
    parser.add_argument("hidden_root")
    args = parser.parse_args()
    print(stage_flowers(args.source, args.data_root, args.hidden_root))
