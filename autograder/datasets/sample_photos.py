"""Photos to look at through AlexNet's first layer: the two photos bundled with scikit-learn.

Every profile uses them (a visualization needs an image, not a dataset; the profiles differ in
the weights, see pretrained.py):
    train   china.jpg and flower.jpg, centre-cropped to a square and resized to 224 x 224
    val     the same two, mirrored
    test    HIDDEN_CROPS random crops of the two photos (scale, position, mirror), drawn with the
            course secret: images the notebook has never seen, for the evaluator only.
Normalized with the ImageNet statistics, as AlexNet expects. Labels name the photo.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from .registry import Split, register

CLASSES = ("china", "flower")
SIZE = 224
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet
HIDDEN_CROPS = 4


def _photo(name: str) -> torch.Tensor:
    """3 x H x W in [0, 1]."""
    from sklearn.datasets import load_sample_image

    return torch.tensor(load_sample_image(f"{name}.jpg")).permute(2, 0, 1).float() / 255.0


def _crop(photo: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    patch = photo[:, top:top + side, left:left + side].unsqueeze(0)
    return F.interpolate(patch, size=(SIZE, SIZE), mode="bilinear", antialias=True, align_corners=False)[0]


def _normalize(images: torch.Tensor) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return ((images.clamp(0, 1) - mean) / std).contiguous()


def _centre(photo: torch.Tensor) -> torch.Tensor:
    h, w = photo.shape[1:]
    side = min(h, w)
    return _crop(photo, (h - side) // 2, (w - side) // 2, side)


def _hidden(photos: list[torch.Tensor], secret: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(secret)
    images, labels = [], []
    for i in range(HIDDEN_CROPS):
        label = i % len(photos)
        photo = photos[label]
        h, w = photo.shape[1:]
        side = int(min(h, w) * (0.35 + 0.6 * torch.rand((), generator=g)))
        top = int(torch.randint(0, h - side + 1, (), generator=g))
        left = int(torch.randint(0, w - side + 1, (), generator=g))
        image = _crop(photo, top, left, side)
        images.append(image.flip(-1) if torch.rand((), generator=g) < 0.5 else image)
        labels.append(label)
    return torch.stack(images), torch.tensor(labels)


@register("sample_photos", "tiny")
@register("sample_photos", "full")
def load(split: str, root: Path | None = None, secret: int | None = None) -> Split:
    photos = [_photo(name) for name in CLASSES]
    labels = torch.arange(len(photos))
    if split == "test":
        if secret is None:
            raise PermissionError("the hidden test split needs the course secret (evaluator only)")
        images, labels = _hidden(photos, secret)
    else:
        images = torch.stack([_centre(p) for p in photos])
        if split == "val":
            images = images.flip(-1)
    return Split(_normalize(images), labels, CLASSES)
