"""Dataset registry: a name maps to a loader per profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

STUDENT_SPLITS = ("train", "val")


class DatasetMissing(FileNotFoundError):
    """Real data is not staged where the course expects it. The message says what goes where."""


@dataclass(frozen=True)
class Split:
    """A dataset split resident in memory: images N x C x H x W (float32, normalized), labels N."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device), self.classes)


def image_folder(folder: Path, classes: tuple[str, ...], size: int, missing_message, grey: bool = False):
    """torchvision's ImageFolder over `folder`/<class>/*, resized and centre-cropped to `size`,
    holding exactly `classes`; `missing_message(missing class folders)` says what goes where."""
    from torchvision import datasets, transforms

    missing = [c for c in classes if not (folder / c).is_dir() or not any((folder / c).iterdir())]
    if missing:
        raise DatasetMissing(missing_message(missing))
    steps = [transforms.Grayscale(3)] if grey else []
    transform = transforms.Compose([*steps, transforms.Resize(256), transforms.CenterCrop(size), transforms.ToTensor()])
    dataset = datasets.ImageFolder(str(folder), transform=transform)
    if tuple(dataset.classes) != tuple(classes):
        raise DatasetMissing(f"{folder} holds the classes {dataset.classes}; expected exactly {list(classes)}")
    return dataset


def read_images(dataset, indices) -> tuple[torch.Tensor, torch.Tensor]:
    """Images N x C x H x W and labels N of an image dataset (torchvision's ImageFolder), in
    batches; the loaders of real data normalize them their own way."""
    from torch.utils.data import DataLoader, Subset

    images, labels = [], []
    for x, y in DataLoader(Subset(dataset, list(indices)), batch_size=64):
        images.append(x)
        labels.append(y)
    return torch.cat(images), torch.cat(labels).long()


# name -> profile -> loader(split, root, seed) ; filled by the dataset modules below.
_LOADERS: dict[str, dict[str, Callable[..., Split]]] = {}


def tiny_seed(split: str, secret: int | None, seeds: dict, stream: int):
    """The generator seed of a tiny split: the public one, or for the hidden test split one drawn
    from the course secret on the dataset's own `stream` (never one of the public seeds)."""
    if split != "test":
        return seeds[split]
    if secret is None:
        raise PermissionError("the hidden test split needs the course secret (evaluator only)")
    return [secret, stream]


def register(name: str, profile: str):
    def decorate(loader):
        _LOADERS.setdefault(name, {})[profile] = loader
        return loader
    return decorate


def available() -> dict[str, tuple[str, ...]]:
    _register_all()
    return {name: tuple(sorted(by_profile)) for name, by_profile in _LOADERS.items()}


def _loader(name: str, profile: str) -> Callable[..., Split]:
    _register_all()
    if name not in _LOADERS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(_LOADERS)}")
    if profile not in _LOADERS[name]:
        raise KeyError(f"dataset {name!r} has no {profile!r} profile; it has {sorted(_LOADERS[name])}")
    return _LOADERS[name][profile]


def load_split(name: str, split: str, profile: str = "tiny", data_root: str | Path | None = None) -> Split:
    """The train or validation split of a course dataset."""
    if split not in STUDENT_SPLITS:
        raise PermissionError(
            f"split {split!r} is not available to notebooks: use 'train' or 'val'. "
            "The test split is held out and scored by the grader.")
    root = Path(data_root).expanduser() if data_root else None
    return _loader(name, profile)(split, root)


def load_hidden_split(name: str, profile: str, hidden_root: Path | None, secret: int) -> Split:
    """The held-out test split; called by the evaluator only (see hidden.py)."""
    return _loader(name, profile)("test", hidden_root, secret=secret)


def _register_all() -> None:
    """Every module of this package registers its datasets on import."""
    import importlib
    import pkgutil

    from .. import datasets

    for module in pkgutil.iter_modules(datasets.__path__):
        if module.name not in ("registry", "hidden"):
            importlib.import_module(f"{datasets.__name__}.{module.name}")
