"""The Cervical Spine X-ray Atlas (CSXA, full) and its tiny stand-in, generated radiograph-like
images of the four curvature classes with a mask of where the spine is.

Full: the atlas as it ships, under `<root>/csxa/`: the label sheet `dataset.xlsx` (columns
`Number`, `Gender:female-1,male-0`, `Age`, `Disease classification: ...` and `Curvature`:
1 Lordotic, 2 Straight, 3 Sigmoid1, 4 Sigmoid2, 5 Kyphotic; some rows have no number) and the
PNGs, possibly in nested folders, named like `0001035.png`: the first four digits are the row's
`Number` (the rest is the age). The full atlas (4,963 images) and the 999-image subset that
circulates with the full sheet both load: images are matched to rows, and rows without images
and images without rows are reported.

The split is stratified by class over the sheet's rows (one row per patient, fixed seed), so it
does not depend on which images are present: the student data root may hold the train and
validation images only, and the hidden root the sheet and the test images (or the whole atlas).
`stage()` copies an atlas into both that way.

Images are grayscale: N x 1 x 224 x 224, padded to a square (the curve's angles are kept),
normalized with the mean and std of ImageNet's three channels averaged (see `GRAY_MEAN`).

ImageNet weights for ResNet-50 are read where every pretrained backbone of the course is
(`pretrained.weight_dirs`: under the data root first, then `$TORCH_HOME/hub/checkpoints/`), never
downloaded (`imagenet_resnet50_weights`). Tiny has no such weights: `pretrained_resnet50("tiny")` is the
same layout at 1/8 width, randomly initialized (the real one takes minutes per epoch on a CPU).
"""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import DatasetMissing, register, Split, tiny_seed

CLASSES = ("Lordotic", "Straight", "Sigmoid", "Kyphotic")
CURVATURE_CODES = {1: 0, 2: 1, 3: 2, 4: 2, 5: 3}   # the atlas's two Sigmoid grades are merged
ATLAS_COUNTS = (1760, 1714, 985, 504)              # full atlas, per class (Kyphotic is rarest)
FOLDER = "csxa"
SHEET = "dataset.xlsx"
IMAGE_SIZE = 224
GRAY_MEAN, GRAY_STD = 0.449, 0.226                 # ImageNet's RGB mean and std, averaged
TEST_FRACTION, VAL_FRACTION = 0.15, 0.15
WEIGHT_FILES = ("resnet50-0676ba61.pth", "resnet50-11ad3fa6.pth")   # torchvision IMAGENET1K_V1, V2
TINY_SIZE = 64
TINY_SIZES = {"train": 600, "val": 160, "test": 240}
TINY_SEEDS = {"train": 11, "val": 12}


def normalize(images: torch.Tensor) -> torch.Tensor:
    return ((images.float() - GRAY_MEAN) / GRAY_STD).contiguous()


# ---- the label sheet and the image files ------------------------------------------------------

@dataclass
class AtlasIndex:
    """Images matched to sheet rows, and what did not match."""

    labels: dict[int, int]                              # Number -> class index, every labelled row
    images: dict[int, list[Path]]                       # Number -> image files of that row
    rows_without_images: list[int] = field(default_factory=list)
    images_without_rows: list[Path] = field(default_factory=list)
    rows_without_number: int = 0
    rows_without_label: list[int] = field(default_factory=list)
    unnamed_images: list[Path] = field(default_factory=list)   # no leading 4-digit number

    @property
    def matched(self) -> int:
        return sum(len(files) for files in self.images.values())

    def summary(self) -> str:
        def some(items):
            items = [str(i) for i in items]
            return ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

        counts = np.bincount([self.labels[n] for n, files in self.images.items() for _ in files], minlength=4)
        lines = [f"CSXA: {self.matched} images matched to {len(self.images)} of {len(self.labels)} labelled rows "
                 f"({', '.join(f'{c} {k}' for c, k in zip(CLASSES, counts))})"]
        if self.rows_without_images:
            lines.append(f"  {len(self.rows_without_images)} rows have no image (numbers {some(self.rows_without_images)})")
        if self.images_without_rows:
            lines.append(f"  {len(self.images_without_rows)} images have no row in the sheet: "
                         f"{some(p.name for p in self.images_without_rows)}")
        if self.rows_without_number:
            lines.append(f"  {self.rows_without_number} sheet rows have no number and were skipped")
        if self.rows_without_label:
            lines.append(f"  {len(self.rows_without_label)} rows have no valid curvature: {some(self.rows_without_label)}")
        if self.unnamed_images:
            lines.append(f"  {len(self.unnamed_images)} PNGs are not named <4-digit number><age>.png: "
                         f"{some(p.name for p in self.unnamed_images)}")
        return "\n".join(lines)


def _header_key(value) -> str:
    return re.sub(r"\s+", " ", str(value or "")).strip().lower()


def _as_int(value) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number == int(number) else None


def read_sheet(path: Path) -> tuple[dict[int, int], int, list[int]]:
    """Number -> class index from the atlas's sheet; also the count of rows without a number
    and the numbers whose curvature is missing or unknown."""
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        rows = book.worksheets[0].iter_rows(values_only=True)
        header = [_header_key(v) for v in next(rows, ())]
        find = {name: next((i for i, h in enumerate(header) if h.startswith(name)), None)
                for name in ("number", "curvature")}
        missing = [name.capitalize() for name, i in find.items() if i is None]
        if missing:
            raise DatasetMissing(f"{path}: the first row has no {' or '.join(missing)} column "
                                 f"(found: {', '.join(h for h in header if h) or 'nothing'})")
        labels, without_number, without_label = {}, 0, []
        for row in rows:
            if row is None or all(v is None for v in row):
                continue
            number = _as_int(row[find["number"]] if find["number"] < len(row) else None)
            if number is None:
                without_number += 1
                continue
            code = _as_int(row[find["curvature"]] if find["curvature"] < len(row) else None)
            if code not in CURVATURE_CODES:
                without_label.append(number)
                continue
            labels[number] = CURVATURE_CODES[code]
        return labels, without_number, without_label
    finally:
        book.close()


def _image_number(path: Path) -> int | None:
    match = re.match(r"(\d{4})\d*$", path.stem)
    return int(match.group(1)) if match else None


def index_atlas(folder: Path) -> AtlasIndex:
    """Match the PNGs anywhere under `folder` to the rows of `folder/dataset.xlsx`."""
    folder = Path(folder)
    sheet = folder / SHEET
    if not sheet.is_file():
        raise DatasetMissing(
            f"CSXA: no label sheet at {sheet}. Put the atlas there as it ships: {SHEET} and the PNG "
            f"images (any folder layout below {folder}/). Nothing is downloaded at run time.")
    labels, without_number, without_label = read_sheet(sheet)
    index = AtlasIndex(labels, {}, rows_without_number=without_number, rows_without_label=without_label)
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".png" and p.is_file()):
        number = _image_number(path)
        if number is None:
            index.unnamed_images.append(path)
        elif number in labels:
            index.images.setdefault(number, []).append(path)
        elif number not in without_label:
            index.images_without_rows.append(path)
    index.rows_without_images = sorted(n for n in labels if n not in index.images)
    return index


def split_of_rows(labels: dict[int, int]) -> dict[int, str]:
    """Number -> "train" | "val" | "test": stratified by class over the sheet rows, fixed seed."""
    from sklearn.model_selection import train_test_split

    numbers = np.array(sorted(labels))
    y = np.array([labels[n] for n in numbers])
    rest, test = train_test_split(numbers, test_size=TEST_FRACTION, stratify=y, random_state=0)
    y_rest = np.array([labels[n] for n in rest])
    train, val = train_test_split(rest, test_size=VAL_FRACTION / (1 - TEST_FRACTION), stratify=y_rest, random_state=0)
    return {**{int(n): "train" for n in train}, **{int(n): "val" for n in val}, **{int(n): "test" for n in test}}


def read_image(path: Path, size: int = IMAGE_SIZE) -> torch.Tensor:
    """A radiograph as 1 x size x size in [0, 1]: grayscale, padded to a square, resized."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("F") if img.mode in ("I", "I;16", "F") else img.convert("L")
        array = np.asarray(img, dtype=np.float32)
    if array.max() > 255:          # 16-bit radiographs
        array = array / array.max()
    elif array.max() > 1:
        array = array / 255.0
    h, w = array.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = array
    tensor = torch.from_numpy(square)[None, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]


@lru_cache(maxsize=4)
def _cached_index(folder: str) -> AtlasIndex:
    index = index_atlas(Path(folder))
    print(index.summary())
    return index


@register("csxa", "full")
def load_full(split: str, root: Path | None, secret: int | None = None) -> Split:
    if root is None:
        which = "AUTOGRADER_HIDDEN_DATA_ROOT" if split == "test" else "AUTOGRADER_DATA_ROOT"
        raise DatasetMissing(f"CSXA needs a data root with {FOLDER}/{SHEET} and the PNGs; set {which} or pass data_root")
    folder = Path(root) / FOLDER
    index = _cached_index(str(folder))
    assignment = split_of_rows(index.labels)
    files = [(path, index.labels[n]) for n, paths in sorted(index.images.items()) if assignment[n] == split
             for path in paths]
    if not files:
        raise DatasetMissing(
            f"CSXA: none of the {split} split's images are under {folder} ({index.matched} images matched rows "
            f"of other splits). Stage the atlas with autograder.datasets.csxa.stage(...): the train and "
            f"validation images under the data root, the test images under the hidden data root.")
    with ThreadPoolExecutor(max_workers=8) as pool:
        images = torch.stack(list(pool.map(read_image, [p for p, _ in files])))
    labels = torch.tensor([label for _, label in files], dtype=torch.long)
    return Split(normalize(images), labels, CLASSES)


def stage(source: Path, data_root: Path, hidden_root: Path) -> dict[str, int]:
    """Copy an atlas as it ships into the two roots: the sheet into both, the train and
    validation images under `data_root/csxa/`, the test images under `hidden_root/csxa/`."""
    index = index_atlas(Path(source))
    assignment = split_of_rows(index.labels)
    copied = {"train": 0, "val": 0, "test": 0}
    for root in (data_root, hidden_root):
        (Path(root) / FOLDER).mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(source) / SHEET, Path(root) / FOLDER / SHEET)
    for number, paths in index.images.items():
        split = assignment[number]
        root = hidden_root if split == "test" else data_root
        for path in paths:
            target = Path(root) / FOLDER / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            copied[split] += 1
    return copied


# ---- ResNet-50: ImageNet weights from the local cache; the tiny stand-in --------------------

def imagenet_resnet50_weights(data_root: str | Path | None = None) -> Path:
    """torchvision's ImageNet ResNet-50 checkpoint (V1 or V2 file), looked for where every
    pretrained backbone of the course is (`pretrained.weight_dirs`: under the data root, then
    `$TORCH_HOME/hub/checkpoints/`). Never downloads."""
    from .pretrained import WeightsMissing, weight_dirs

    folders = weight_dirs(data_root)
    for folder in folders:
        for name in WEIGHT_FILES:
            if (folder / name).is_file():
                return folder / name
    where = "\n".join(f"  {folder / name}" for folder in folders for name in WEIGHT_FILES)
    first = folders[0]
    raise WeightsMissing(
        f"the ImageNet weights of resnet50 are not staged; looked for:\n{where}\n"
        f"Put torchvision's file {WEIGHT_FILES[0]} (IMAGENET1K_V1, or {WEIGHT_FILES[1]}, V2) into {first}/ "
        f"(graded notebooks see only the data root; torch.hub writes there when TORCH_HOME is "
        f"{first.parent.parent}). Nothing is downloaded at run time.")


class ScaledResNet50(nn.Module):
    """torchvision's ResNet-50 layout (its Bottleneck blocks, [3, 4, 6, 3], the same module names
    conv1, bn1, relu, maxpool, layer1..layer4, avgpool, fc) with every width scaled by `width`.
    At width 1 its state dict matches torchvision.models.resnet50 key for key."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0):
        from torchvision.models.resnet import Bottleneck, ResNet

        super().__init__()
        w = lambda channels: max(4, int(round(channels * width)))  # noqa: E731
        # borrow torchvision's block builder; it only needs these four attributes
        builder = ResNet.__new__(ResNet)
        nn.Module.__init__(builder)
        builder._norm_layer, builder.groups, builder.base_width, builder.dilation = nn.BatchNorm2d, 1, 64, 1
        builder.inplanes = w(64)
        self.conv1 = nn.Conv2d(3, w(64), kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w(64))
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = builder._make_layer(Bottleneck, w(64), 3)
        self.layer2 = builder._make_layer(Bottleneck, w(128), 4, stride=2)
        self.layer3 = builder._make_layer(Bottleneck, w(256), 6, stride=2)
        self.layer4 = builder._make_layer(Bottleneck, w(512), 3, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(w(512) * Bottleneck.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


TINY_WIDTH = 1 / 8


def pretrained_resnet50(profile: str, data_root: str | Path | None = None) -> nn.Module:
    """full: torchvision's ResNet-50 with ImageNet weights from the local cache.
    tiny: the same layout at 1/8 width, randomly initialized (no ImageNet weights on tiny)."""
    if profile == "tiny":
        return ScaledResNet50(width=TINY_WIDTH)
    from torchvision.models import resnet50

    path = imagenet_resnet50_weights(data_root)
    with torch.device("meta"):   # no random init of parameters that are overwritten next
        model = resnet50()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), assign=True)
    return model


# ---- tiny: generated radiograph-like images ---------------------------------------------------

def generate(n: int, seed: int | list[int], size: int = TINY_SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n grayscale images (N x 1 x size x size in [0, 1]), labels with the atlas's imbalance, and
    masks of the vertebral bodies (N x size x size, bool).

    Seven vertebral bodies (C1-C7) lie on a curve x(t), top (t=0) to bottom (t=1), anterior to
    the left: lordotic bulges anteriorly, kyphotic posteriorly, sigmoid is S-shaped (either way),
    straight has at most a slight tilt. Soft tissue, a mandible-like blob (in every class) and
    noise make up the rest."""
    rng = np.random.default_rng(seed)
    share = np.array(ATLAS_COUNTS) / sum(ATLAS_COUNTS)
    counts = np.floor(share * n).astype(int)
    counts[0] += n - counts.sum()
    labels = torch.from_numpy(rng.permutation(np.repeat(np.arange(4), counts))).long()
    uniform = lambda lo, hi, shape: torch.from_numpy(rng.uniform(lo, hi, shape)).float()  # noqa: E731
    t = torch.linspace(0.08, 0.92, 7)
    shapes = torch.stack([-torch.sin(np.pi * t), 0 * t, torch.sin(2 * np.pi * t), torch.sin(np.pi * t)])
    bend = shapes[labels] * uniform(0.09, 0.13, (n, 1)) * size
    sigmoid, straight = labels == 2, labels == 1
    bend[sigmoid] *= torch.from_numpy(rng.choice([-1.0, 1.0], (int(sigmoid.sum()), 1))).float()
    bend[straight] = uniform(-0.023, 0.023, (int(straight.sum()), 1)) * size * (t - 0.5)
    height = uniform(0.75, 0.85, (n, 1)) * size
    cx = uniform(0.3, 0.7, (n, 1)) * size + bend
    cy = uniform(0.04, 1, (n, 1)) * (0.96 * size - height) + t * height
    rx, ry = uniform(0.055, 0.07, (n, 1)) * size, height / 7 * 0.38
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    X, Y = grid.view(1, 1, -1), grid.view(1, -1, 1)
    bodies, nearest = torch.zeros(n, size, size), torch.full((n, size, size), float("inf"))
    for k in range(7):
        d = ((X - cx[:, k, None, None]) / rx[:, :, None]) ** 2 + ((Y - cy[:, k, None, None]) / ry[:, :, None]) ** 2
        bodies = torch.maximum(bodies, torch.exp(-(d - 1).clamp_min(0) * 6))
        nearest = torch.minimum(nearest, d)
    coarse = torch.from_numpy(rng.normal(0, 1, (n, 1, 4, 4))).float()
    img = 0.25 + 0.08 * F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[:, 0] + 0.1 * X / size
    jx, jy = uniform(0.09, 0.25, (n, 1, 1)) * size, uniform(0.06, 0.22, (n, 1, 1)) * size
    img = img + 0.35 * torch.exp(-(((X - jx) / (0.14 * size)) ** 2 + ((Y - jy) / (0.08 * size)) ** 2))
    img = img + uniform(0.45, 0.65, (n, 1, 1)) * bodies
    img = img + torch.from_numpy(rng.normal(0, 0.05, (n, size, size))).float()
    return img.clamp(0, 1)[:, None], labels, nearest < 1.6


def tiny_masks(split: str, secret: int | None = None) -> torch.Tensor:
    """Where the spine is in the tiny split's images (N x 64 x 64, bool); the test split's
    masks need the course secret, like its images."""
    return generate(TINY_SIZES[split], tiny_seed(split, secret, TINY_SEEDS, 5))[2]


@register("csxa", "tiny")
def load_tiny(split: str, root: Path | None = None, secret: int | None = None) -> Split:
    images, labels, _ = generate(TINY_SIZES[split], tiny_seed(split, secret, TINY_SEEDS, 5))
    return Split(normalize(images), labels, CLASSES)
