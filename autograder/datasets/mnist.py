"""MNIST (full) and its tiny stand-in, scikit-learn's bundled handwritten digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .registry import DatasetMissing, Split, register

CLASSES = tuple(str(d) for d in range(10))
MEAN, STD = 0.1307, 0.3081   # MNIST statistics, used for both so models transfer
RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
VAL_SIZE = 5000


def _to_28(images: torch.Tensor) -> torch.Tensor:
    """N x H x W in [0, 1] -> N x 28 x 28, the MNIST size."""
    if images.shape[-1] == 28:
        return images.float()
    return F.interpolate(images.float().unsqueeze(1), size=(28, 28), mode="bilinear", align_corners=False)[:, 0]


def _to_lenet_input(images: torch.Tensor) -> torch.Tensor:
    """N x 28 x 28 in [0, 1] -> N x 1 x 32 x 32 normalized (LeNet-5 expects 32 x 32)."""
    x = F.pad(_to_28(images).unsqueeze(1), (2, 2, 2, 2))
    return ((x - MEAN) / STD).contiguous()


# ---- full: torchvision's MNIST, never downloaded -------------------------------------------

def _require_raw(root: Path | None, files: tuple[str, ...], what: str) -> Path:
    if root is None:
        raise DatasetMissing(f"MNIST ({what}) needs a data root; set AUTOGRADER_DATA_ROOT or pass data_root")
    raw = root / "MNIST" / "raw"
    missing = [f for f in files if not (raw / f).is_file()]
    if missing:
        raise DatasetMissing(
            f"MNIST ({what}) is missing under {raw}: {', '.join(missing)}. "
            f"Put the uncompressed IDX files from the MNIST distribution there "
            f"(e.g. gunzip train-images-idx3-ubyte.gz into {raw}/). Nothing is downloaded at run time.")
    return root


# A private hidden set: QMNIST's 50,000 extra test digits (same writers and preprocessing as
# MNIST, never part of MNIST's public files), staged by the instructor under the hidden root.
PRIVATE_TEST_FILES = ("qmnist-test-images-idx3-ubyte", "qmnist-test-labels-idx2-int")


def _private_test(root: Path) -> Split | None:
    """QMNIST's extra digits when staged at <hidden root>/QMNIST/raw/ (uncompressed), else None."""
    if not all((root / "QMNIST" / "raw" / f).is_file() for f in PRIVATE_TEST_FILES):
        return None
    from torchvision.datasets import QMNIST

    extra = QMNIST(str(root), what="test50k", compat=True, train=False, download=False)
    return Split(_to_lenet_input(extra.data.float() / 255.0), extra.targets[:, 0].long(), CLASSES)  # column 0: the digit


@register("mnist", "full")
def load_full(split: str, root: Path | None, secret: int | None = None) -> Split:
    # torchvision's IDX readers, not its MNIST class: that one insists on all four files in one
    # folder, while here the test files live under the hidden root, away from the students.
    from torchvision.datasets.mnist import read_image_file, read_label_file

    if split == "test" and root is not None and (private := _private_test(root)) is not None:
        return private   # MNIST's own test files are public: a model can memorise them
    train = split != "test"
    files = RAW_FILES[:2] if train else RAW_FILES[2:]
    raw = _require_raw(root, files, "train/val" if train else "hidden test split") / "MNIST" / "raw"
    images = read_image_file(str(raw / files[0])).float() / 255.0
    labels = read_label_file(str(raw / files[1])).long()
    if split == "train":
        images, labels = images[:-VAL_SIZE], labels[:-VAL_SIZE]
    elif split == "val":
        images, labels = images[-VAL_SIZE:], labels[-VAL_SIZE:]
    return Split(_to_lenet_input(images), labels, CLASSES)


# ---- tiny: 1,797 real handwritten digits shipped with scikit-learn --------------------------

def _digits_partition() -> dict[str, np.ndarray]:
    """A fixed stratified partition of the 1,797 digits into train / val / test indices."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=0.2, stratify=labels, random_state=0)
    train, val = train_test_split(rest, test_size=0.15, stratify=labels[rest], random_state=0)
    return {"train": train, "val": val, "test": test}


def _jitter(images: torch.Tensor, seed: int) -> torch.Tensor:
    """A held-out stand-in drawn with the course's secret seed: 1-pixel shifts (at 28 x 28) and
    mild noise, so the hidden split is not byte-identical to the digits any student can load."""
    images = _to_28(images)
    g = torch.Generator().manual_seed(seed)
    shifts = torch.randint(-1, 2, (images.shape[0], 2), generator=g)
    out = torch.stack([torch.roll(img, (int(dy), int(dx)), dims=(0, 1)) for img, (dy, dx) in zip(images, shifts)])
    return (out + 0.02 * torch.randn(out.shape, generator=g)).clamp(0, 1)


@register("mnist", "tiny")
def load_tiny(split: str, root: Path | None = None, secret: int | None = None) -> Split:
    from sklearn.datasets import load_digits

    digits = load_digits()
    idx = _digits_partition()[split]
    images = torch.from_numpy(digits.images[idx] / 16.0).float()
    labels = torch.from_numpy(digits.target[idx]).long()
    if split == "test":
        if secret is None:
            raise PermissionError("the hidden test split needs the course secret (evaluator only)")
        images = _jitter(images, secret)
    return Split(_to_lenet_input(images), labels, CLASSES)
