"""Chest X-rays, NORMAL vs PNEUMONIA: the Kermany et al. set (full) and a generated stand-in (tiny).

Full layout, as the set is commonly distributed (torchvision's ImageFolder, never downloaded):
    <data_root>/chest_xray/{train,val}/{NORMAL,PNEUMONIA}/*.jpeg      what notebooks see
    <hidden_root>/chest_xray/test/{NORMAL,PNEUMONIA}/*.jpeg           the hidden split (evaluator only)
Published counts: train 5,216 (1,341 NORMAL / 3,875 PNEUMONIA), val 16 (8 / 8), test 624 (234 / 390).
The published validation folder has 16 images, too few to choose a threshold on, so `val` here is
a fixed stratified 10% of train plus those 16, and `train` is the rest (`VAL_FRACTION`, `SPLIT_SEED`).

Images are grayscale X-rays replicated to 3 channels (ResNet-18 expects RGB), resized to 256 and
centre-cropped to 224 (full) and normalized with ImageNet's statistics. `preprocess(bytes)` is the
same transform for one encoded image: the service uses it, so that it sees what the model saw.

Tiny: 32 x 32 drawings of a chest (body, two dark lung fields, noise), PNEUMONIA adding bright
patchy opacities in a lung, with the set's imbalance (about 26% NORMAL). About a third of the
pneumonias are subtle (one faint opacity, hard to tell from the noise), so, as on the real set, a
threshold of 0.5 misses more of them than screening allows and the threshold chosen for recall 0.95
lies well below it. Pixels are whole 8-bit values, so a PNG of a tiny image decodes to exactly the
tensor the model saw.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from .registry import DatasetMissing, image_folder, read_images, register, Split, tiny_seed

CLASSES = ("NORMAL", "PNEUMONIA")
POSITIVE = 1                                   # index of PNEUMONIA
FOLDER = "chest_xray"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)   # ImageNet
FULL_SIZE, TINY_SIZE = 224, 32
VAL_FRACTION, SPLIT_SEED = 0.10, 0
NORMAL_SHARE = 1341 / 5216                     # the published training imbalance
SUBTLE_SHARE = 0.35                            # tiny pneumonias with one faint opacity
TINY_SIZES = {"train": 600, "val": 200, "test": 240}
TINY_SEEDS = {"train": 14_001, "val": 14_002}  # the test split is drawn with the course secret
RESNET18_FILE = "resnet18-f37072fd.pth"        # torchvision's IMAGENET1K_V1


def normalize(images: torch.Tensor) -> torch.Tensor:
    """N x 3 x H x W in [0, 1] -> ImageNet-normalized."""
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return ((images.float() - mean) / std).contiguous()


def _size(profile: str) -> int:
    return TINY_SIZE if profile == "tiny" else FULL_SIZE


def preprocess(data: bytes, profile: str) -> torch.Tensor:
    """One PNG or JPEG (bytes) -> 1 x 3 x S x S, exactly as the loaders prepare images.
    Raises ValueError when the bytes are not an image."""
    from PIL import Image, UnidentifiedImageError
    from torchvision import transforms

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            gray = image.convert("L")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"not a PNG or JPEG image: {exc}") from None
    size = _size(profile)
    if gray.size != (size, size):
        gray = transforms.Compose([transforms.Resize(size + size // 7), transforms.CenterCrop(size)])(gray)
    x = torch.from_numpy(np.asarray(gray, dtype=np.uint8).copy()).float().div(255)
    return normalize(x.expand(1, 3, size, size))


def encode_png(image: torch.Tensor) -> bytes:
    """A normalized 3 x S x S tiny image -> PNG bytes of its (exact, 8-bit) gray pixels."""
    from PIL import Image

    gray = image[0] * STD[0] + MEAN[0]
    pixels = (gray * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


# ---- full: the Kermany et al. folders ---------------------------------------------------------

def _image_folder(folder: Path, what: str):
    return image_folder(folder, CLASSES, FULL_SIZE, grey=True, missing_message=lambda missing: (
        f"chest X-rays ({what}) are missing under {folder}: no images in "
        f"{', '.join(str(folder / c) for c in missing)}. Expected {folder}/NORMAL/*.jpeg and "
        f"{folder}/PNEUMONIA/*.jpeg (the Kermany et al. chest_xray archive: train and val under the data "
        f"root, test under the hidden data root). Nothing is downloaded at run time."))


def _read(dataset, indices) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_images(dataset, indices)
    return normalize(images), labels


def hidden_files(hidden_root: Path | None) -> list[tuple[Path, int]]:
    """(file, label) of the full hidden split, in ImageFolder's order (evaluator only)."""
    if hidden_root is None:
        raise DatasetMissing("the chest X-ray test split needs the hidden data root (AUTOGRADER_HIDDEN_DATA_ROOT)")
    dataset = _image_folder(Path(hidden_root) / FOLDER / "test", "hidden test split")
    return [(Path(p), int(y)) for p, y in dataset.samples]


@register("pneumonia", "full")
def load_full(split: str, root: Path | None, secret: int | None = None) -> Split:
    what = "hidden test split" if split == "test" else "train/val"
    if root is None:
        raise DatasetMissing(f"chest X-rays ({what}) need a data root; set AUTOGRADER_DATA_ROOT or pass data_root")
    if split == "test":
        dataset = _image_folder(Path(root) / FOLDER / "test", what)
        return Split(*_read(dataset, range(len(dataset))), CLASSES)
    from torch.utils.data import ConcatDataset
    from sklearn.model_selection import train_test_split

    train = _image_folder(Path(root) / FOLDER / "train", what)
    published_val = _image_folder(Path(root) / FOLDER / "val", what)
    rest, held = train_test_split(list(range(len(train))), test_size=VAL_FRACTION, stratify=train.targets,
                                  random_state=SPLIT_SEED)
    if split == "train":
        return Split(*_read(train, sorted(rest)), CLASSES)
    both = ConcatDataset([train, published_val])
    return Split(*_read(both, sorted(held) + [len(train) + i for i in range(len(published_val))]), CLASSES)


def imagenet_resnet18(profile: str, data_root: str | Path | None = None, width: float = 0.125) -> torch.nn.Module:
    """full: torchvision's ResNet-18 with ImageNet weights staged under the data root (never
    downloaded). tiny: the same layout at `width` (1/8: 8..64 channels), randomly initialized."""
    from torchvision.models import resnet18
    from torchvision.models.resnet import BasicBlock, ResNet

    from .pretrained import WeightsMissing, weight_dirs

    if profile == "tiny":
        model = ResNet(BasicBlock, [2, 2, 2, 2])
        w = lambda c: max(4, int(round(c * width)))  # noqa: E731
        # rebuild the same module tree at a narrower width
        model.inplanes = w(64)
        model.conv1 = torch.nn.Conv2d(3, w(64), kernel_size=7, stride=2, padding=3, bias=False)
        model.bn1 = torch.nn.BatchNorm2d(w(64))
        model.layer1 = model._make_layer(BasicBlock, w(64), 2)
        model.layer2 = model._make_layer(BasicBlock, w(128), 2, stride=2)
        model.layer3 = model._make_layer(BasicBlock, w(256), 2, stride=2)
        model.layer4 = model._make_layer(BasicBlock, w(512), 2, stride=2)
        model.fc = torch.nn.Linear(w(512), 1000)
        return model
    folders = weight_dirs(data_root)
    for folder in folders:
        if (folder / RESNET18_FILE).is_file():
            with torch.device("meta"):
                model = resnet18()
            state = torch.load(folder / RESNET18_FILE, map_location="cpu", weights_only=True)
            model.load_state_dict(state, assign=True)
            return model
    raise WeightsMissing(f"the ImageNet weights of resnet18 ({RESNET18_FILE}) are not staged; looked in "
                         f"{', '.join(str(f) for f in folders)}. Put torchvision's file there (graded notebooks see "
                         f"only the data root). Nothing is downloaded at run time.")


# ---- tiny: generated chest drawings -----------------------------------------------------------

def generate(n: int, seed, size: int = TINY_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (N x 3 x size x size in [0, 1], whole 8-bit gray levels) and labels, ~26% NORMAL."""
    rng = np.random.default_rng(seed)
    n_normal = int(round(NORMAL_SHARE * n))
    labels = rng.permutation(np.r_[np.zeros(n_normal, int), np.ones(n - n_normal, int)])
    grid = (np.arange(size) + 0.5) / size
    X, Y = grid[None, None, :], grid[None, :, None]
    u = lambda lo, hi: rng.uniform(lo, hi, (n, 1, 1))  # noqa: E731
    body = np.exp(-(((X - u(0.47, 0.53)) / u(0.42, 0.48)) ** 8 + ((Y - 0.55) / 0.5) ** 8))
    img = 0.15 + 0.55 * body
    lung_x, lung_y, rx, ry = u(0.18, 0.24), u(0.48, 0.56), u(0.13, 0.16), u(0.25, 0.3)
    lungs = np.zeros((n, size, size))
    for side in (-1, 1):
        cx = 0.5 + side * lung_x
        lungs = np.maximum(lungs, np.exp(-np.clip(((X - cx) / rx) ** 2 + ((Y - lung_y) / ry) ** 2 - 1, 0, None) * 8))
    img = img - 0.35 * lungs
    sick = labels == 1
    subtle = rng.random((n, 1, 1)) < SUBTLE_SHARE
    for k in range(3):   # patchy opacities inside a lung field: one always, two more often; one faint if subtle
        side = rng.choice([-1, 1], (n, 1, 1))
        cx, cy = 0.5 + side * lung_x + u(-0.06, 0.06), lung_y + u(-0.15, 0.15)
        r = u(0.05, 0.09)
        blob = np.exp(-((X - cx) ** 2 + (Y - cy) ** 2) / (2 * r ** 2)) * np.where(subtle, u(0.02, 0.10), u(0.2, 0.35))
        img = img + blob * sick[:, None, None] * (((rng.random((n, 1, 1)) < 0.7) & ~subtle) | (k == 0))
    img = img + rng.normal(0, 0.04, (n, size, size))
    gray = np.round(np.clip(img, 0, 1) * 255) / 255
    images = torch.from_numpy(gray).float()[:, None].expand(n, 3, size, size).contiguous()
    return images, torch.from_numpy(labels).long()


@register("pneumonia", "tiny")
def load_tiny(split: str, root: Path | None = None, secret: int | None = None) -> Split:
    images, labels = generate(TINY_SIZES[split], tiny_seed(split, secret, TINY_SEEDS, 14))
    return Split(normalize(images), labels, CLASSES)


def hidden_images(profile: str, hidden_root: Path | None, secret: int, count: int) -> list[tuple[bytes, int]]:
    """Up to `count` encoded images of the hidden split with their labels, as a client would send
    them: PNGs of the tiny images, the JPEG files themselves on full (evaluator only)."""
    if profile == "tiny":
        test = load_tiny("test", None, secret)
        return [(encode_png(test.images[i]), int(test.labels[i])) for i in range(min(count, len(test)))]
    files = hidden_files(hidden_root)
    step = max(1, len(files) // count)
    return [(path.read_bytes(), label) for path, label in files[::step][:count]]
